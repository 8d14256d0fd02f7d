"""MNIST-style IDX files: reading (gzipped or not), finding them on disk, and downloading
them into a per-user cache with SHA-256 checks.

Where the four files of a built-in IDX dataset are looked for, in order:
  1. the `data_dir` the caller names (or its subfolder <name>),
  2. $DEEPWIRE_DATA_DIR/<name>/,
  3. the cache: $DEEPWIRE_CACHE_DIR, else $XDG_CACHE_HOME/deepwire, else ~/.cache/deepwire,
     then /datasets/<name>/.
Missing files are downloaded into the cache from the dataset's mirror, or from
$DEEPWIRE_DATASET_URL (a base URL; "{name}" in it is replaced by the dataset's name).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .core import DataError, Dataset, classification_task, frozen

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# The dataset's usual public mirrors, tried in order when nothing overrides them.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion_mnist": ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
}

# SHA-256 of the standard gzipped files (the same sums are published by several independent
# projects that download them; torchvision's MD5 table names the same files).
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    },
}

TIMEOUT_S = 30
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
MAX_IDX_BYTES = 2 * 1024 ** 3

# IDX type codes -> big-endian numpy dtypes
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# ----------------------------------------------------------------------------- folders

def cache_dir() -> Path:
    """The per-user cache folder: $DEEPWIRE_CACHE_DIR, else $XDG_CACHE_HOME/deepwire, else ~/.cache/deepwire."""
    env = os.environ.get("DEEPWIRE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "deepwire"
    return Path.home() / ".cache" / "deepwire"


def dataset_cache_dir(name: str) -> Path:
    return cache_dir() / "datasets" / name


def candidate_names(base: str) -> tuple[str, ...]:
    dotted = base.replace("-idx", ".idx")   # the "train-images.idx3-ubyte" spelling some copies use
    return (base, base + ".gz", dotted, dotted + ".gz")


def find_files(folder: Path) -> dict[str, Path]:
    """The IDX files present in `folder`, by their standard base name."""
    found: dict[str, Path] = {}
    for base in FILES:
        for cand in candidate_names(base):
            p = folder / cand
            if p.is_file():
                found[base] = p
                break
    return found


def search_folders(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    folders: list[Path] = []
    if data_dir:
        d = Path(data_dir).expanduser()
        folders += [d, d / name]
    env = os.environ.get("DEEPWIRE_DATA_DIR")
    if env:
        folders.append(Path(env).expanduser() / name)
    folders.append(dataset_cache_dir(name))
    return folders


def locate(name: str, data_dir: str | os.PathLike | None) -> dict[str, Path] | None:
    """The first folder holding all four files, or None."""
    for folder in search_folders(name, data_dir):
        found = find_files(folder)
        if len(found) == len(FILES):
            return found
    return None


# ----------------------------------------------------------------------------- reading

def read_idx(path: Path) -> np.ndarray:
    """One IDX file as a numpy array; a wrong magic number, size or gzip stream is a DataError."""
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _TYPES or not 1 <= head[3] <= 4:
                raise DataError(f"{path.name} is not an IDX file (bad magic number); replace it with the "
                                "original file")
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path.name} is truncated (incomplete header); download it again")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            dtype = np.dtype(_TYPES[head[2]])
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise DataError(f"{path.name} is corrupt: its header claims {expected} bytes of data; "
                                "download it again")
            if not gz and expected > os.path.getsize(path) - 4 - 4 * ndim:
                raise DataError(f"{path.name} is truncated: its header promises {expected} data bytes, the "
                                f"file holds {os.path.getsize(path) - 4 - 4 * ndim}; download it again")
            body = _read_up_to(f, expected + 1)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path.name} cannot be read ({e}); download it again") from None
    if len(body) < expected:
        raise DataError(f"{path.name} is truncated: {len(body)} of {expected} data bytes; download it again")
    if len(body) > expected:
        raise DataError(f"{path.name} is corrupt: more data than its header declares; download it again")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _read_up_to(f, n: int) -> bytes:
    """Read at most n bytes in chunks (memory follows the real data, not a corrupt header's claim)."""
    parts, got = [], 0
    while got < n:
        chunk = f.read(min(1 << 22, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_idx_set(files: dict[str, Path], name: str, class_names: list[str] | None,
                 description: str) -> Dataset:
    train_x = read_idx(files[FILES[0]])
    train_y = read_idx(files[FILES[1]])
    test_x = read_idx(files[FILES[2]])
    test_y = read_idx(files[FILES[3]])
    for label, images, labels in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        if images.ndim != 3:
            raise DataError(f"{label} images of '{name}' must have 3 dimensions (count, rows, columns), "
                            f"not {images.ndim}; check the files")
        if labels.ndim != 1:
            raise DataError(f"{label} labels of '{name}' must have 1 dimension, not {labels.ndim}; check the files")
        if len(images) != len(labels):
            raise DataError(f"'{name}' has {len(images)} {label} images but {len(labels)} labels; "
                            "the files do not belong together")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"'{name}' train images are {train_x.shape[1:]} but test images {test_x.shape[1:]}; "
                        "the files do not belong together")
    if not (np.issubdtype(train_y.dtype, np.integer) and np.issubdtype(test_y.dtype, np.integer)):
        raise DataError(f"'{name}' labels must be whole numbers; check the label files")
    y = train_y.astype(np.int64)
    y_test = test_y.astype(np.int64)
    if (len(y) and y.min() < 0) or (len(y_test) and y_test.min() < 0):
        raise DataError(f"'{name}' has negative labels; check the label files")
    if class_names is not None:
        top = max(int(y.max()) if len(y) else 0, int(y_test.max()) if len(y_test) else 0)
        if top >= len(class_names):
            raise DataError(f"'{name}' has label {top} but only {len(class_names)} classes; check the label files")
        k = len(class_names)
    else:
        k = max(int(y.max()) if len(y) else 0, int(y_test.max()) if len(y_test) else 0) + 1
    return Dataset(name=name, x=train_x.astype(np.float32), y=y, task=classification_task(max(k, 2)),
                   class_names=class_names, x_test=test_x.astype(np.float32), y_test=y_test,
                   description=description)


@functools.lru_cache(maxsize=2)
def _read_cached(key: tuple, name: str, class_names: tuple[str, ...] | None, description: str) -> Dataset:
    files = {base: Path(p) for base, p, _mtime, _size in key}
    return frozen(read_idx_set(files, name, list(class_names) if class_names else None, description))


def read_cached(files: dict[str, Path], name: str, class_names: list[str] | None, description: str) -> Dataset:
    """read_idx_set, cached in memory until a file changes."""
    key = []
    for base in FILES:
        st = files[base].stat()
        key.append((base, str(files[base]), st.st_mtime_ns, st.st_size))
    return _read_cached(tuple(key), name, tuple(class_names) if class_names else None, description)


def load_builtin_idx(name: str, data_dir: str | os.PathLike | None, class_names: list[str] | None,
                     description: str) -> Dataset:
    files = locate(name, data_dir)
    if files is None:
        download(name)
        files = locate(name, None)
        if files is None:   # pragma: no cover - download() raises instead
            raise DataError(f"'{name}' files are still missing after downloading; put them in "
                            f"{dataset_cache_dir(name)}")
    return read_cached(files, name, class_names, description)


def available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    return locate(name, data_dir) is not None


# ----------------------------------------------------------------------------- downloading

def base_urls(name: str) -> tuple[str, ...]:
    env = os.environ.get("DEEPWIRE_DATASET_URL", "").strip()
    urls = (env.replace("{name}", name),) if env else MIRRORS.get(name, ())
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def download(name: str) -> None:
    """Download the missing files of `name` into its cache folder, all or nothing.

    Each file is streamed into a temporary file next to its destination, checked against
    SHA256, and only when every file passed are they moved into place (os.replace).
    Any failure is a DataError naming the missing files and the folder to put them in.
    """
    folder = dataset_cache_dir(name)
    have = find_files(folder)
    missing = [base for base in FILES if base not in have]
    wanted = [base + ".gz" for base in missing]
    urls = base_urls(name)
    hashes = SHA256.get(name, {})

    def fail(reason: str) -> DataError:
        where = urls[0] if urls else "the dataset's website"
        return DataError(f"'{name}' is not on this computer and could not be downloaded ({reason}): "
                         f"put {', '.join(wanted)} (gzipped or not) from {where} into {folder}, "
                         "or choose a folder that has them")

    unknown = [f for f in wanted if not hashes.get(f)]
    if unknown:
        raise fail(f"no checksum is known for {', '.join(unknown)}")
    if not urls:
        raise fail("no download address is known")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fail(f"cannot create the cache folder: {e.strerror or e}") from None

    temps: dict[str, Path] = {}
    try:
        for fname in wanted:
            errors = []
            for base_url in urls:
                try:
                    temps[fname] = _fetch(base_url + fname, folder, hashes[fname])
                    break
                except _FetchError as e:
                    errors.append(str(e))
            else:
                others = len(errors) - 1
                raise fail(errors[0] + (f"; {others} other mirror{'s' if others > 1 else ''} failed too"
                                        if others else ""))
        for fname, tmp in temps.items():
            os.replace(tmp, folder / fname)
        temps.clear()
    finally:
        for tmp in temps.values():
            _unlink(tmp)


class _FetchError(Exception):
    pass


def _fetch(url: str, folder: Path, sha256: str) -> Path:
    """Stream `url` into a temporary file in `folder`; return its path once its SHA-256 matched."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise _FetchError(f"{url}: only http(s) addresses are supported")
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
                    while True:
                        chunk = resp.read(1 << 20)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > MAX_DOWNLOAD_BYTES:
                            raise _FetchError(f"{url}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB")
                        digest.update(chunk)
                        out.write(chunk)
            except urllib.error.HTTPError as e:
                raise _FetchError(f"{url}: HTTP {e.code}") from None
            except urllib.error.URLError as e:
                raise _FetchError(f"{url}: {getattr(e.reason, 'strerror', None) or e.reason}") from None
            except (OSError, ValueError) as e:
                raise _FetchError(f"{url}: {e}") from None
        if digest.hexdigest() != sha256.lower():
            raise _FetchError(f"{url}: checksum mismatch (the file is damaged or not the expected one)")
        return tmp
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass
