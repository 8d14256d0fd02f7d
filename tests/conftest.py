import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# image folders are decoded into a cache file: the tests' go to a folder of their own, not the user's
os.environ.setdefault("DEEPWIRE_IMAGE_CACHE_DIR", tempfile.mkdtemp(prefix="deepwire-test-images-"))
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
