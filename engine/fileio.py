"""Writing user files safely: atomic writes (the old file or the new one is always whole)."""
from __future__ import annotations

import glob
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temporary file in the same folder, fsynced and
    renamed over `path` when the block ends without an exception (and removed when it does not),
    so the old file or the new one is always whole. The new file keeps the permissions of the
    file it replaces, or gets the umask's default for a new file (not mkstemp's private 0600)."""
    path = Path(path)
    folder = path.parent
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                try:
                    os.fchmod(f.fileno(), mode)
                except OSError:
                    pass
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable where the platform allows it
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    _remove_stale_temporaries(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`:
    the old file or the new one is always whole (see atomic_writer)."""
    with atomic_writer(path) as f:
        f.write(data)


def _mode_for(path: Path) -> int:
    """The permission bits a write to `path` should leave: those of the regular file it
    replaces, else what a plain open() would give a new file (0666 less the umask)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode) & 0o777
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would change it for every thread meanwhile)
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


_UMASK_LOCK = threading.Lock()


STALE_TEMP_S = 3600   # a temporary file this old was left by a write that was killed


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of earlier writes to `path` that never finished (the process was killed
    mid-write). Recent ones are left alone: another writer may still be busy with them."""
    cutoff = time.time() - STALE_TEMP_S
    try:
        for stray in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            try:
                if stray.is_file() and stray.stat().st_mtime < cutoff:
                    stray.unlink()
            except OSError:
                pass
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
