"""Image folders (one subfolder per class), decoded once into a cache file.

Every image is decoded once, resized to the chosen size and stored as uint8 (C, H, W) in a
cache file in the per-user cache folder (`image_cache_dir()`), keyed by the folder's contents
(relative paths, sizes, modification times), the size and the mode. Later loads, epochs and
runs read that file at memory speed; a changed folder has another key and is decoded again.
Decoding runs in as many processes as the machine has cores (`decode_workers()`).

The cache file: a 4096-byte header (MAGIC, FORMAT, a JSON record of the key and the shape),
the pixels, then a trailer (a JSON record: the images skipped, the count kept) ending in
DONE_MAGIC: written last, into a temporary file renamed into place, so a file under the
cache's name is whole; one that does not check out (another format, another key or shape, a
missing or damaged trailer, the wrong size) is removed and rebuilt, never read.

Where no cache can be written (a full disk, a read-only cache folder, data larger than the
cache's size limit) loading goes on without it, with a notice: the images are decoded into
memory when they fit the memory budget, else read from their files batch by batch.

`load_image_folder` returns a `Dataset` whose x is a read-only uint8 array (N, C, H, W): the
cache file mapped into memory (`CachedImages`), the cache file while it is being filled
(`FillingImages`: a large folder's first load returns once it is listed, and its rows are decoded
in the order they are read, so a run's first epoch overlaps the decoding; see OVERLAP_MIN), an
array in memory, or `LazyImages` (decoded on access). Pixels become float only per batch, on
the device (engine/runtime/data/stream.py).
Loading reports progress (`progress(dict)`), can be cancelled (`cancel()` checked between
chunks of files) and, with bad_images="skip", skips unreadable images and counts them.
`sample_images` decodes a few images for a preview without decoding the folder.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .core import DataError, Dataset, classification_task
from .idx import cache_dir

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
MAX_IMAGE_SIDE = 4096             # an image size (height, width), chosen or taken from the first image
# An image is decoded whole before it is resized, so one far larger than the image size needs is
# refused from its header (JPEGs are first decoded at 1/2, 1/4 or 1/8 scale where that suffices):
# at most MAX_DECODE_PIXELS, or IMAGE_MARGIN times the image size's pixels where that is more.
MAX_DECODE_PIXELS = 4096 * 4096   # 16.8 megapixels: any phone photo; 64 MiB as RGBA
IMAGE_MARGIN = 16                 # 4 times the image size in each direction
BAD_IMAGES = ("stop", "skip")

MAGIC = b"DWIMGC\x00\x01"
DONE_MAGIC = b"DWIMGEND"
FORMAT = 1
HEADER_BYTES = 4096
CACHE_SUFFIX = ".dwimg"
DEFAULT_CACHE_LIMIT = 20 * 2**30  # bytes of image cache files kept; DEEPWIRE_IMAGE_CACHE_GB changes it
ENV_CACHE_LIMIT = "DEEPWIRE_IMAGE_CACHE_GB"
ENV_CACHE_DIR = "DEEPWIRE_IMAGE_CACHE_DIR"
IN_PROCESS = 64                   # folders this small are decoded without starting processes
STALE_TMP_S = 24 * 3600           # a temporary cache file this old belonged to a run that was killed

Progress = Callable[[dict], None]
Cancel = Callable[[], bool]


class LoadCancelled(DataError):
    """Loading was cancelled (the `cancel` callable answered True)."""


# ----------------------------------------------------------------------------- folders

@dataclass
class FolderScan:
    """An image folder's files in a fixed order (class by class, paths sorted) with their labels."""
    folder: Path
    classes: list[str]
    files: list[str]              # paths relative to the folder, "/"-separated
    labels: np.ndarray            # int64 class ids
    sizes: list[int]
    mtimes: list[int]             # nanoseconds

    def __len__(self) -> int:
        return len(self.files)


def is_image_folder(folder: Path) -> bool:
    return any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())


def scan_folder(folder: Path) -> FolderScan:
    """The class folders and their images (any depth below each class folder), never opened."""
    folder = Path(folder)
    try:
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise DataError(f"cannot read folder {folder}: {e.strerror or e}") from None
    if len(classes) < 2:
        raise DataError(f"{folder.name} needs one subfolder per class (at least two) holding the images; "
                        f"found {len(classes)}")
    files: list[str] = []
    labels: list[int] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    for k, name in enumerate(classes):
        found: list[tuple[tuple[str, ...], int, int]] = []
        _walk(folder / name, (name,), found)
        if not found:
            raise DataError(f"class folder '{name}' has no images (png, jpg, bmp, gif, webp, tif); "
                            "add some or remove the folder")
        found.sort()
        for parts, size, mtime in found:
            files.append("/".join(parts))
            sizes.append(size)
            mtimes.append(mtime)
        labels.extend([k] * len(found))
    return FolderScan(folder, classes, files, np.array(labels, dtype=np.int64), sizes, mtimes)


def _walk(path: Path, parts: tuple[str, ...], out: list) -> None:
    try:
        entries = list(os.scandir(path))
    except OSError as e:
        raise DataError(f"cannot read folder {'/'.join(parts)}: {e.strerror or e}") from None
    for entry in entries:
        try:
            if entry.is_dir():
                _walk(Path(entry.path), parts + (entry.name,), out)
            elif (entry.is_file() and not entry.name.startswith(".")
                  and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS):
                st = entry.stat()
                out.append((parts + (entry.name,), st.st_size, st.st_mtime_ns))
        except OSError:
            continue       # removed while we looked: not part of the folder


def folder_key(scan: FolderScan, height: int, width: int, mode: str) -> str:
    """What the cache file is named after: the files (paths, sizes, times), the size and the mode."""
    h = hashlib.sha256(json.dumps([FORMAT, mode, height, width], separators=(",", ":")).encode())
    for rel, size, mtime in zip(scan.files, scan.sizes, scan.mtimes):
        h.update(f"\n{rel}\t{size}\t{mtime}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# ----------------------------------------------------------------------------- decoding

def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow; install it with: pip install pillow") from None
    return Image


def image_size_of(folder: Path, rel: str) -> tuple[int, int]:
    """(height, width) of an image from its header, refused over MAX_IMAGE_SIDE."""
    Image = _pil()
    try:
        with Image.open(folder / rel) as im:
            width, height = im.size
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {rel} ({e}); remove or replace it") from None
    if max(width, height) > MAX_IMAGE_SIDE:
        raise DataError(f"image {rel} is {width}x{height} pixels, larger than {MAX_IMAGE_SIDE} on a side; choose "
                        "an image size (height, width) to resize the images to, for example 224x224")
    return height, width


def decode_image(path: Path, height: int, width: int, mode: str, name: str) -> np.ndarray:
    """One image as uint8 (C, H, W), resized to height x width. DataError naming it when it cannot be."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            _decode_within(im, width, height, mode, name)
            if im.mode != mode:           # (a JPEG is RGB already: a copy spared)
                im = im.convert(mode)
            if im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"image {name} claims to be larger than {Image.MAX_IMAGE_PIXELS:,} pixels (a "
                        "decompression bomb?); remove or replace it") from None
    except FileNotFoundError:
        raise DataError(f"image {name} is gone: the folder changed while it was read; load it again") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:   # UnidentifiedImageError is an OSError
        raise DataError(f"cannot read image {name} ({e}); remove or replace it") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_within(im, width: int, height: int, mode: str, name) -> None:
    """Before `im` is decoded: a JPEG far larger than width x height is set to decode at a
    reduced scale (still at least that size); an image that would still take more pixels than
    the image size needs by a wide margin is refused, naming it, before any pixel is decoded."""
    full_w, full_h = im.size
    if im.format == "JPEG" and full_w >= 2 * width and full_h >= 2 * height:
        im.draft(mode, (width, height))
    allowed = max(MAX_DECODE_PIXELS, IMAGE_MARGIN * width * height)
    if im.size[0] * im.size[1] > allowed:
        raise DataError(f"image {name} is {full_w}x{full_h} pixels ({full_w * full_h / 1e6:.0f} megapixels), far "
                        f"more than {height}x{width} images need (at most {allowed / 1e6:.1f} megapixels are "
                        "decoded); shrink it first, or choose a larger image size")


def _decode_chunk(folder: str, rels: list[str], start: int, height: int, width: int, mode: str,
                  out_path: str | None, offset: int) -> tuple[int, list, bytes | None, str]:
    """Decode files start.. into the cache file at `offset` (sample `start` first) or, without a
    file, into bytes returned. (count, [(index, message) of bad images], bytes or None, write error)."""
    channels = 1 if mode == "L" else 3
    sample = channels * height * width
    bad: list[tuple[int, str]] = []
    buf = np.zeros((len(rels), channels, height, width), dtype=np.uint8)
    for j, rel in enumerate(rels):
        try:
            buf[j] = decode_image(Path(folder) / rel, height, width, mode, rel)
        except DataError as e:
            bad.append((start + j, str(e)))
    if out_path is None:
        return len(rels), bad, buf.tobytes(), ""
    try:
        fd = os.open(out_path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        try:
            data = memoryview(buf.reshape(-1))
            pos = 0
            while pos < len(data):
                pos += os.pwrite(fd, data[pos:], offset + start * sample + pos) if hasattr(os, "pwrite") \
                    else _seek_write(fd, data[pos:], offset + start * sample + pos)
        finally:
            os.close(fd)
    except OSError as e:
        return len(rels), bad, buf.tobytes(), e.strerror or str(e)
    return len(rels), bad, None, ""


def _seek_write(fd: int, data, at: int) -> int:
    os.lseek(fd, at, os.SEEK_SET)
    return os.write(fd, data)


def decode_workers() -> int:
    """Processes that decode: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _pool(workers: int):
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                  initializer=_die_with_parent if ctx is not None else None)


def _die_with_parent() -> None:
    """A decoding process ends when the process that started it does (Linux): killed while decoding, a
    training process must not leave decoders holding its pipes open."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _decode_all(scan: FolderScan, height: int, width: int, mode: str, out_path: str | None, offset: int,
                on_chunk: Callable[[int, list, bytes | None, str, int], None], cancel: Cancel | None,
                workers: int | None, first_bad: bool) -> None:
    """Decode every file in chunks, in parallel processes where it pays; on_chunk(start, bad, data,
    write_error, count) in the main process after each chunk. Raises LoadCancelled, or the first bad
    image's DataError when `first_bad`."""
    n = len(scan)
    workers = workers or decode_workers()
    if n <= IN_PROCESS or workers == 1:
        step = 32
        for start in range(0, n, step):
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled")
            count, bad, data, error = _decode_chunk(str(scan.folder), scan.files[start:start + step], start,
                                                    height, width, mode, out_path, offset)
            if bad and first_bad:
                raise DataError(bad[0][1])
            on_chunk(start, bad, data, error, count)
        return
    import concurrent.futures

    step = max(16, min(256, n // (workers * 8) or 16))
    pool = _pool(workers)
    try:
        pending = {pool.submit(_decode_chunk, str(scan.folder), scan.files[s:s + step], s, height, width, mode,
                               out_path, offset): s for s in range(0, n, step)}
        while pending:
            done, _ = concurrent.futures.wait(pending, timeout=0.2,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled")
            for fut in done:
                start = pending.pop(fut)
                count, bad, data, error = fut.result()
                if bad and first_bad:
                    raise DataError(min(bad)[1])
                on_chunk(start, bad, data, error, count)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- the cache

def image_cache_dir() -> Path:
    """Where image cache files live: $DEEPWIRE_IMAGE_CACHE_DIR, else the per-user cache folder's
    images/ (see idx.cache_dir: $DEEPWIRE_CACHE_DIR, $XDG_CACHE_HOME/deepwire, ~/.cache/deepwire)."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else cache_dir() / "images"


def cache_limit() -> int:
    """Bytes of image cache files kept at most ($DEEPWIRE_IMAGE_CACHE_GB, default 20 GiB)."""
    try:
        return max(0, int(float(os.environ[ENV_CACHE_LIMIT]) * 2**30))
    except (KeyError, ValueError):
        return DEFAULT_CACHE_LIMIT


def cache_info() -> dict:
    """{"folder", "files", "bytes", "limit"}: the image cache as it is."""
    folder = image_cache_dir()
    files = sorted(folder.glob("*" + CACHE_SUFFIX)) if folder.is_dir() else []
    total = 0
    for p in files:
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return {"folder": str(folder), "files": len(files), "bytes": total, "limit": cache_limit()}


def clear_image_cache() -> tuple[int, int]:
    """Remove every image cache file (and leftovers of killed runs): (files removed, bytes freed)."""
    folder = image_cache_dir()
    count = freed = 0
    if not folder.is_dir():
        return 0, 0
    for p in folder.iterdir():
        if p.suffix in (CACHE_SUFFIX, ".tmp") and p.is_file():
            try:
                size = p.stat().st_size
                p.unlink()
                count, freed = count + 1, freed + size
            except OSError:
                pass
    return count, freed


class CachedImages(np.memmap):
    """A cache file's pixels, mapped read-only: uint8 (N, C, H, W). Pickles as its file's name
    (a worker process or the training process maps the file itself, nothing is copied)."""

    cache_path: str = ""
    cache_offset: int = 0

    def __reduce__(self):
        if self.cache_path and self.shape and isinstance(self.base, __import__("mmap").mmap) \
                and self.offset == self.cache_offset:
            return (_map_cache, (self.cache_path, self.cache_offset, tuple(self.shape)))
        return np.asarray(self).copy().__reduce__()


def _map_cache(path: str, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=np.uint8)
    arr = CachedImages(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)
    arr.cache_path, arr.cache_offset = path, offset
    return arr


def _header(key: str, shape: tuple[int, ...], mode: str) -> bytes:
    record = json.dumps({"key": key, "shape": list(shape), "mode": mode}).encode()
    head = MAGIC + FORMAT.to_bytes(4, "little") + len(record).to_bytes(4, "little") + record
    return head.ljust(HEADER_BYTES, b"\0")


def read_cache(path: Path, key: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, list] | None:
    """(pixels, [[index, message] of skipped images]) of a whole cache file made for `key` and
    `shape` (C, H, W), else None (a file of another format, key or shape, cut short or damaged)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
            if len(head) < HEADER_BYTES or head[:8] != MAGIC or int.from_bytes(head[8:12], "little") != FORMAT:
                return None
            length = int.from_bytes(head[12:16], "little")
            record = json.loads(head[16:16 + length])
            if record.get("key") != key or list(record.get("shape", ()))[1:] != list(shape):
                return None
            f.seek(size - 16)
            tail = f.read(16)
            if tail[8:] != DONE_MAGIC:
                return None
            trailer_len = int.from_bytes(tail[:8], "little")
            f.seek(size - 16 - trailer_len)
            trailer = json.loads(f.read(trailer_len))
            kept = int(trailer["kept"])
            sample = int(np.prod(shape))
            if trailer.get("key") != key or HEADER_BYTES + kept * sample + trailer_len + 16 != size:
                return None
            bad = [list(b) for b in trailer.get("bad", [])]
            if kept + len(bad) != record["shape"][0]:
                return None
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return _map_cache(str(path), HEADER_BYTES, (kept, *shape)), bad


def _make_room(folder: Path, need: int, limit: int, keep: Path) -> bool:
    """Remove the least recently used cache files until `need` more bytes fit the limit; False
    when they cannot (need alone is over it). Leftovers of killed runs go first."""
    if need > limit:
        return False
    now = time.time()
    files = []
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        if p.suffix == ".tmp" and now - st.st_mtime > STALE_TMP_S:
            _unlink(p)
        elif p.suffix == CACHE_SUFFIX and p != keep:
            files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files):
        if total + need <= limit:
            break
        _unlink(p)
        total -= size
    return total + need <= limit


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass


def _preallocate(fd: int, size: int) -> None:
    """Claim the file's space now, so a full disk shows before any decoding (where the system can)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
    os.ftruncate(fd, size)


# ----------------------------------------------------------------------------- loading

@dataclass
class ImageFolderInfo:
    """How an image folder was read: for notices, the streaming reader and the preview."""
    folder: str
    files: list[str]                        # the kept images, in the dataset's order
    size: tuple[int, int]                   # (height, width)
    mode: str                               # "RGB" or "L"
    cache: str | None = None                # the cache file, None without one
    cache_hit: bool = False
    skipped: list = field(default_factory=list)   # [[file, message], ...]
    notes: list[str] = field(default_factory=list)


def load_image_folder(folder: Path, image_size: tuple[int, int] | None = None, grayscale: bool = False, *,
                      progress: Progress | None = None, cancel: Cancel | None = None, bad_images: str = "stop",
                      memory_budget: int | None = None, use_cache: bool = True,
                      workers: int | None = None) -> Dataset:
    """One subfolder per class; images resized to image_size (height, width), default the first
    image's size. RGB gives (3, H, W), grayscale (1, H, W): uint8 pixels 0..255, read-only.

    progress(info): {"phase": "scan" | "decode" | "ready" | "notice", "done", "total", "cache_hit",
    "skipped", "message"} after the scan, after each chunk of files and at the end. cancel(): True
    stops the loading between chunks (LoadCancelled). bad_images: "stop" (a DataError naming the
    first unreadable image) or "skip" (left out; counted in the dataset's `images.skipped`).
    memory_budget: bytes the pixels may take in memory when no cache file can be written (beyond
    it they are decoded batch by batch when read); default a quarter of the machine's memory.
    """
    folder = Path(folder)
    if bad_images not in BAD_IMAGES:
        raise DataError(f"bad_images must be one of {', '.join(BAD_IMAGES)}, not {bad_images!r}")
    _pil()
    scan = scan_folder(folder)
    n = len(scan)
    if image_size is not None:
        if len(image_size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                           and 1 <= v <= MAX_IMAGE_SIDE for v in image_size):
            raise DataError(f"image size must be two whole numbers (height, width) from 1 to {MAX_IMAGE_SIDE}; "
                            f"got {image_size!r}")
        height, width = image_size
    else:
        height, width = image_size_of(folder, scan.files[0])
    mode = "L" if grayscale else "RGB"
    shape = (1 if grayscale else 3, height, width)
    sample = int(np.prod(shape))
    report = progress or (lambda info: None)
    report({"phase": "scan", "done": 0, "total": n, "cache_hit": False, "skipped": 0})

    key = folder_key(scan, height, width, mode)
    info = ImageFolderInfo(str(folder), list(scan.files), (height, width), mode)
    x = bad = None
    cache_folder = image_cache_dir()
    path = cache_folder / f"{key}{CACHE_SUFFIX}"
    if use_cache:
        found = read_cache(path, key, shape) if path.is_file() else None
        if found is not None:
            x, bad = found
            info.cache, info.cache_hit = str(path), True
            try:
                os.utime(path)            # recently used: the last to be evicted
            except OSError:
                pass
        elif path.exists():
            _unlink(path)                 # another version's, or damaged: rebuilt
    if x is None and use_cache and _overlaps(n, bad_images, workers):
        if cancel is not None and cancel():
            raise LoadCancelled("loading cancelled")
        x, note = _start_filling(scan, key, shape, mode, path, report, cancel, workers)
        if x is not None:             # decoding goes on while the caller reads (FillingImages)
            info.cache, bad = str(path), []
        elif note:
            info.notes.append(note)
            report({"phase": "notice", "message": note})
            use_cache = False         # the file cannot be written: the fallbacks below
    if x is None and use_cache:
        x, bad, note = _build_cache(scan, key, shape, mode, path, report, cancel, bad_images, workers)
        if x is not None:
            info.cache = str(path)
        elif note:
            info.notes.append(note)
            report({"phase": "notice", "message": note})
    if x is None:
        budget = memory_budget if memory_budget is not None else machine_memory() // 4
        if n * sample <= budget:
            x, bad = _decode_to_memory(scan, shape, mode, report, cancel, bad_images, workers)
        else:
            x, bad = LazyImages(str(folder), scan.files, height, width, mode), []
            info.notes.append(f"the {n:,} images ({n * sample / 2**30:.1f} GiB as bytes) are decoded from their "
                              "files as each batch is read")
    if bad:
        if bad_images == "stop":
            raise DataError(bad[0][1])
        dropped = {int(i) for i, _ in bad}
        keep = np.array([i for i in range(n) if i not in dropped], dtype=np.int64)
        info.skipped = [[scan.files[int(i)], message] for i, message in bad]
        info.files = [scan.files[i] for i in keep]
        labels = scan.labels[keep]
        info.notes.append(f"{len(bad)} unreadable image(s) skipped, the first: {bad[0][1]}")
    else:
        labels = scan.labels
    if len(labels) == 0:
        raise DataError(f"{folder.name}: none of the {n} images could be read")
    if not isinstance(x, FillingImages):      # a FillingImages says "ready" when its file is whole
        report({"phase": "ready", "done": n, "total": n, "cache_hit": info.cache_hit, "skipped": len(bad)})
    names = list(scan.classes)
    kept = len(labels)
    description = f"{folder.name}: {kept} images of {height}x{width}, {len(names)} classes."
    if info.skipped:
        description += f" {len(info.skipped)} unreadable image(s) skipped."
    ds = Dataset(name=folder.name, x=x, y=labels, task=classification_task(len(names)), class_names=names,
                 description=description)
    ds.images = info
    return ds


def _new_cache_file(key: str, shape: tuple[int, ...], mode: str, path: Path) -> tuple[int, Path | None, str]:
    """A new temporary cache file beside `path` for pixels of `shape`, room made for it within the cache's
    limit, its header written and its size claimed: (fd, its path, "") or (-1, None, notice) when none can
    be written (loading then goes on without it)."""
    data_bytes = int(np.prod(shape))
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not _make_room(folder, HEADER_BYTES + data_bytes, cache_limit(), path):
            return -1, None, (f"the decoded images ({data_bytes / 2**30:.1f} GiB) are larger than the image "
                              f"cache's limit ({cache_limit() / 2**30:.1f} GiB, ${ENV_CACHE_LIMIT}): "
                              "they are not cached")
        tmp = folder / f"{key}.{os.getpid()}.{random.randrange(16**8):08x}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    except OSError as e:
        return -1, None, f"no image cache ({folder}: {e.strerror or e}); the images are decoded each run"
    try:
        os.write(fd, _header(key, shape, mode))
        _preallocate(fd, HEADER_BYTES + data_bytes)
    except OSError as e:
        os.close(fd)
        _unlink(tmp)
        return -1, None, (f"the image cache could not be written ({e.strerror or e}); training goes on without "
                          "it and decodes the images each run")
    return fd, tmp, ""


def _build_cache(scan: FolderScan, key: str, shape: tuple[int, int, int], mode: str, path: Path, report: Progress,
                 cancel: Cancel | None, bad_images: str, workers: int | None):
    """Decode every image into a new cache file: (pixels, bad) or (None, None, notice) when none
    can be written (loading then goes on without it)."""
    n, sample = len(scan), int(np.prod(shape))
    fd, tmp, notice = _new_cache_file(key, (n, *shape), mode, path)
    if fd < 0:
        return None, None, notice
    bad: list = []
    state = {"done": 0, "error": ""}
    try:
        def on_chunk(start, chunk_bad, _data, error, count):
            bad.extend(chunk_bad)
            state["done"] += count
            if error and not state["error"]:
                state["error"] = error
                raise _WriteFailed()
            report({"phase": "decode", "done": state["done"], "total": n, "cache_hit": False,
                    "skipped": len(bad)})
        try:
            _decode_all(scan, shape[1], shape[2], mode, str(tmp), HEADER_BYTES, on_chunk, cancel, workers,
                        bad_images == "stop")
        except _WriteFailed:
            pass
        if state["error"]:
            os.close(fd)
            fd = -1
            _unlink(tmp)
            return None, None, (f"the image cache could not be written ({state['error']}); training goes on "
                                "without it and decodes the images each run")
        bad.sort()
        kept = n - len(bad)
        if bad:                       # close the gaps left by skipped images
            dropped = {i for i, _ in bad}
            dst = 0
            for src in range(n):
                if src in dropped:
                    continue
                if src != dst:
                    block = os.pread(fd, sample, HEADER_BYTES + src * sample)
                    os.pwrite(fd, block, HEADER_BYTES + dst * sample)
                dst += 1
            os.ftruncate(fd, HEADER_BYTES + kept * sample)
        trailer = json.dumps({"key": key, "kept": kept, "bad": bad}).encode()
        os.pwrite(fd, trailer + len(trailer).to_bytes(8, "little") + DONE_MAGIC, HEADER_BYTES + kept * sample)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)         # whole, or not there at all
    except OSError as e:
        if fd >= 0:
            os.close(fd)
            fd = -1
        _unlink(tmp)
        return None, None, (f"the image cache could not be written ({e.strerror or e}); training goes on without "
                            "it and decodes the images each run")
    except BaseException:
        if fd >= 0:
            os.close(fd)
        _unlink(tmp)
        raise
    found = read_cache(path, key, shape)
    if found is None:                 # removed under us: read it from the files instead
        return None, None, "the image cache file vanished as it was written; the images are decoded each run"
    return found[0], found[1], ""


class _WriteFailed(Exception):
    pass


def _decode_to_memory(scan: FolderScan, shape, mode: str, report: Progress, cancel: Cancel | None, bad_images: str,
                      workers: int | None):
    n, sample = len(scan), int(np.prod(shape))
    x = np.zeros((n, *shape), dtype=np.uint8)
    bad: list = []
    done = [0]

    def on_chunk(start, chunk_bad, data, _error, count):
        x[start:start + count] = np.frombuffer(data, dtype=np.uint8).reshape(count, *shape)
        bad.extend(chunk_bad)
        done[0] += count
        report({"phase": "decode", "done": done[0], "total": n, "cache_hit": False, "skipped": len(bad)})

    _decode_all(scan, shape[1], shape[2], mode, None, 0, on_chunk, cancel, workers, bad_images == "stop")
    del sample
    bad.sort()
    if bad:
        x = np.delete(x, [i for i, _ in bad], axis=0)
    x.flags.writeable = False
    return x, bad


# ----------------------------------------------------------------------------- filling while read

# A folder of at least OVERLAP_MIN images, with bad_images="stop", in one process (not under
# torchrun, where process 0 fills the cache before the others read it) on Linux, is not decoded
# before loading returns: loading returns once the folder is listed, with x a FillingImages, and
# the decoding processes fill the cache file in the order its reader asks for rows (the first
# epoch's batches first), the rest in file order behind them. A batch is read as soon as its rows
# are decoded, so the first epoch runs at about the decoding rate instead of after it.
OVERLAP_MIN = 2048
FILL_CHUNK = 128                  # images per task of a decoding process
FILL_AHEAD = 4                    # tasks in flight per decoding process


def _overlaps(n: int, bad_images: str, workers: int | None) -> bool:
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    return (n >= OVERLAP_MIN and bad_images == "stop" and world <= 1 and sys.platform.startswith("linux")
            and hasattr(os, "preadv") and (workers or decode_workers()) > 1)


def _decode_rows(folder: str, rels: list[str], rows: list[int], height: int, width: int, mode: str, out_path: str,
                 offset: int) -> tuple[list[int], list, str]:
    """Decode files `rels` into the cache file at their rows (any order): (rows, [(row, message) of
    bad images], write error)."""
    channels = 1 if mode == "L" else 3
    sample = channels * height * width
    bad: list[tuple[int, str]] = []
    try:
        fd = os.open(out_path, os.O_WRONLY)
    except OSError as e:
        return rows, bad, e.strerror or str(e)
    try:
        for rel, row in zip(rels, rows):
            try:
                arr = decode_image(os.path.join(folder, rel), height, width, mode, rel)
            except DataError as e:
                bad.append((row, str(e)))
                continue
            data = memoryview(np.ascontiguousarray(arr).reshape(-1))
            pos = 0
            while pos < sample:
                pos += os.pwrite(fd, data[pos:], offset + row * sample + pos)
    except OSError as e:
        return rows, bad, e.strerror or str(e)
    finally:
        os.close(fd)
    return rows, bad, ""


_FILLERS = None        # a WeakSet of the fillers at work, set on first use: each is aborted at exit


def _abort_fillers() -> None:
    for filler in list(_FILLERS or ()):
        filler.abort()


class _Filler:
    """Decodes a folder into a temporary cache file in a background thread and a pool of
    processes, rows asked for first; commits the file (trailer, end marker, rename) once whole."""

    TODO, BUSY, DONE = 0, 1, 2

    def __init__(self, scan: FolderScan, key: str, shape, mode: str, tmp: Path, path: Path, fd: int,
                 report: Progress, cancel: Cancel | None, workers: int):
        import collections
        import threading

        self.scan, self.key, self.shape, self.mode = scan, key, tuple(shape), mode
        self.tmp, self.path, self.fd, self.report, self.cancel = tmp, path, fd, report, cancel
        self.workers = workers
        self.n = len(scan)
        self.state = np.zeros(self.n, dtype=np.int8)
        self.cond = threading.Condition()
        self.urgent: collections.deque = collections.deque()   # [rows, position]: someone waits for them
        self.wanted: collections.deque = collections.deque()   # [rows, position]: read soon (an epoch's order)
        self.background = 0                                     # the next row in file order
        self.finished: list = []                                # futures done, not yet taken in
        self.events: list[dict] = []                            # progress, told in the reader's thread
        self.done = 0
        self.error = ""                                         # why the file will never be whole
        self.committed = False
        self.committed_at = 0.0                                 # time.perf_counter() when it was
        self.demand_only = False                                # cancelled: decode only what is read
        self.pool = _pool(workers)
        self.pool.submit(int).result()      # start the processes now, from the loading thread
        self.thread = threading.Thread(target=self._run, name="deepwire-image-fill", daemon=True)
        global _FILLERS
        if _FILLERS is None:
            import atexit
            import weakref

            _FILLERS = weakref.WeakSet()
            atexit.register(_abort_fillers)
        _FILLERS.add(self)
        self.thread.start()

    # -- the reader's side (any thread but the filler's)

    def want(self, rows: np.ndarray) -> None:
        """Rows read soon, in this order (behind those already wanted)."""
        with self.cond:
            if not self.committed and not self.error:
                self.wanted.append([np.asarray(rows, dtype=np.int64), 0])
                self.cond.notify_all()

    def ready(self, rows: np.ndarray) -> None:
        """Wait until `rows` are in the file (asking for them first). DataError: a bad image
        (the run stops naming it), or the file cannot be written."""
        rows = np.asarray(rows, dtype=np.int64)
        asked = False
        while True:
            with self.cond:
                events, self.events = self.events, []
                error = self.error
                whole = error == "" and (self.committed or bool((self.state[rows] == self.DONE).all()))
                if not whole and not error and not asked:
                    self.urgent.append([rows, 0])
                    self.cond.notify_all()
                    asked = True
                elif not whole and not error:
                    self.cond.wait(0.2)
            for event in events:
                self.report(event)
            if error:
                raise DataError(error)
            if whole:
                return

    # -- the filler's side

    def _take(self, queue, k: int, out: list[int]) -> None:
        state = self.state
        while queue and len(out) < k:
            entry = queue[0]
            rows, pos = entry
            while pos < len(rows) and len(out) < k:
                r = int(rows[pos])
                pos += 1
                if state[r] == self.TODO:
                    state[r] = self.BUSY
                    out.append(r)
            entry[1] = pos
            if pos >= len(rows):
                queue.popleft()

    def _next_rows(self) -> list[int]:
        out: list[int] = []
        self._take(self.urgent, FILL_CHUNK, out)
        self._take(self.wanted, FILL_CHUNK, out)
        while not self.demand_only and len(out) < FILL_CHUNK and self.background < self.n:
            r = self.background
            self.background += 1
            if self.state[r] == self.TODO:
                self.state[r] = self.BUSY
                out.append(r)
        return out

    def _submit(self, rows: list[int]):
        fut = self.pool.submit(_decode_rows, str(self.scan.folder), [self.scan.files[r] for r in rows], rows,
                               self.shape[1], self.shape[2], self.mode, str(self.tmp), HEADER_BYTES)
        fut.add_done_callback(self._landed)
        return fut

    def _landed(self, fut) -> None:
        with self.cond:
            self.finished.append(fut)
            self.cond.notify_all()

    def _run(self) -> None:
        in_flight = 0
        try:
            while True:
                if self.cancel is not None and not self.demand_only:
                    try:
                        self.demand_only = bool(self.cancel())
                    except Exception:
                        self.demand_only = True
                with self.cond:
                    if self.error:
                        break
                    while in_flight < FILL_AHEAD * self.workers:
                        rows = self._next_rows()
                        if not rows:
                            break
                        self._submit(rows)
                        in_flight += 1
                    if self.done == self.n:
                        break
                    if not self.finished:
                        self.cond.wait(0.2)
                    landed, self.finished = self.finished, []
                for fut in landed:
                    in_flight -= 1
                    rows, bad, error = fut.result()
                    with self.cond:
                        if bad:
                            self.error = min(bad)[1]
                        elif error:
                            self.error = (f"the image cache could not be written ({error}); load the folder again "
                                          "(a full disk: free some space)")
                        else:
                            self.state[rows] = self.DONE
                            self.done += len(rows)
                            self.events.append({"phase": "decode", "done": self.done, "total": self.n,
                                                "cache_hit": False, "skipped": 0})
                        self.cond.notify_all()
            if not self.error:
                self._commit()
        except BaseException as e:   # noqa: BLE001 - the readers must hear why, never wait forever
            with self.cond:
                if not self.error:
                    self.error = f"decoding the images failed: {type(e).__name__}: {e}"
                self.cond.notify_all()
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            try:
                os.close(self.fd)
            except OSError:
                pass
            if not self.committed:
                self._discard()

    def _commit(self) -> None:
        sample = int(np.prod(self.shape))
        trailer = json.dumps({"key": self.key, "kept": self.n, "bad": []}).encode()
        os.pwrite(self.fd, trailer + len(trailer).to_bytes(8, "little") + DONE_MAGIC, HEADER_BYTES + self.n * sample)
        os.fsync(self.fd)
        os.replace(self.tmp, self.path)      # whole, or not there at all
        with self.cond:
            self.committed, self.committed_at = True, time.perf_counter()
            self.events.append({"phase": "ready", "done": self.n, "total": self.n, "cache_hit": False,
                                "skipped": 0})
            self.cond.notify_all()

    def _discard(self) -> None:
        _unlink(self.tmp)

    def abort(self) -> None:
        """Stop decoding (at exit, or its images dropped); an unfinished file is removed (never read)."""
        with self.cond:
            if not self.committed and not self.error:
                self.error = "loading was cut short (the images were dropped, or the program is ending)"
            self.cond.notify_all()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if not self.committed:
            self._discard()


class FillingImages:
    """An image folder's pixels while its cache file is being filled: uint8 (N, C, H, W),
    indexed like an array (an int, a slice or an array of ints): each access waits for the rows it
    reads, which are decoded first. `want(rows)` says which rows are read next (an epoch's order);
    the rows are read with pread, so the file's pages stay the system's cache. Pickles as the
    cache file once whole."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, filler: _Filler, shape: tuple[int, int, int, int]):
        self.filler, self._shape = filler, tuple(int(d) for d in shape)
        self.sample = int(np.prod(self._shape[1:]))
        self._pid = os.getpid()
        self._fd: tuple[int, int] | None = None       # (pid, fd)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape

    @property
    def nbytes(self) -> int:
        return int(np.prod(self._shape))

    @property
    def complete(self) -> bool:
        return self.filler.committed

    def __len__(self) -> int:
        return self._shape[0]

    def want(self, rows) -> None:
        if os.getpid() == self._pid:
            self.filler.want(rows)

    def ready(self, rows) -> None:
        """Wait until these rows are decoded (a DataError for a bad image). In a reading process
        (forked) nothing is waited for: its rows were made ready before they were handed to it."""
        if os.getpid() == self._pid:
            self.filler.ready(rows)

    def wait(self) -> np.ndarray:
        """Wait until the cache file is whole, telling the loading's progress in this thread: its
        pixels, mapped (CachedImages). For a caller that wants the folder decoded before it goes
        on (a dialog that decodes into the cache). The loading's `cancel()` answering True stops
        it: LoadCancelled, the unfinished file removed."""
        filler = self.filler
        while True:
            committed = filler.committed
            filler.ready(np.arange(0))        # tells the progress queued (the last: "ready"); a bad image raises
            if committed:
                break
            if filler.cancel is not None and filler.cancel():
                filler.abort()
                raise LoadCancelled("loading cancelled")
            with filler.cond:
                if not filler.committed and not filler.error:
                    filler.cond.wait(0.2)
        found = read_cache(self.filler.path, self.filler.key, self._shape[1:])
        if found is None:
            raise DataError(f"the image cache file {self.filler.path} vanished as it was written; load the folder "
                            "again")
        return found[0]

    def _reader(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():
            try:
                fd = os.open(self.filler.tmp, os.O_RDONLY)
            except FileNotFoundError:          # committed meanwhile: the same file under its name
                fd = os.open(self.filler.path, os.O_RDONLY)
            self._fd = (os.getpid(), fd)
        return self._fd[1]

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.ready(rows)
        fd, size = self._reader(), self.sample
        out = np.empty((len(rows), size), dtype=np.uint8)
        for j, r in enumerate(rows.tolist()):
            if os.preadv(fd, [out[j]], HEADER_BYTES + r * size) != size:
                raise DataError(f"the image cache file {self.filler.path} is shorter than it was (removed or cut?)")
        return out.reshape(len(rows), *self._shape[1:])

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.read_rows(np.arange(len(self))[[int(index)]])[0]
        return self.read_rows(np.arange(len(self))[index])

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.wait())
        return out if dtype is None else out.astype(dtype)

    def __reduce__(self):
        return self.wait().__reduce__()

    def close(self) -> None:
        """Stop filling (an unfinished file is removed, never read); a whole one stays."""
        if os.getpid() == self._pid:
            self.filler.abort()

    def __del__(self):
        fd, self._fd = self._fd, None
        if fd is not None and fd[0] == os.getpid():
            try:
                os.close(fd[1])
            except OSError:
                pass
        if os.getpid() == self._pid and not self.filler.committed:
            self.filler.abort()          # dropped before its file was whole


def _start_filling(scan: FolderScan, key: str, shape: tuple[int, int, int], mode: str, path: Path,
                   report: Progress, cancel: Cancel | None, workers: int | None):
    """A new temporary cache file, claimed whole, and its filler started: (FillingImages, "") or
    (None, notice) when no file can be written (loading then goes on without it)."""
    n = len(scan)
    fd, tmp, notice = _new_cache_file(key, (n, *shape), mode, path)
    if fd < 0:
        return None, notice
    filler = _Filler(scan, key, shape, mode, tmp, path, fd, report, cancel, workers or decode_workers())
    return FillingImages(filler, (n, *shape)), ""


class LazyImages:
    """An image folder's pixels decoded on access: uint8 (N, C, H, W), indexed like an array
    (an int, a slice or an array of ints). For folders too large for memory and without a cache."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, folder: str, files: list[str], height: int, width: int, mode: str):
        self.folder, self.files, self.height, self.width, self.mode = folder, list(files), height, width, mode

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), 1 if self.mode == "L" else 3, self.height, self.width)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.files)

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return decode_image(Path(self.folder) / self.files[int(index)], self.height, self.width, self.mode,
                                self.files[int(index)])
        rows = np.arange(len(self))[index]
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for j, i in enumerate(rows):
            out[j] = self[int(i)]
        return out


def machine_memory() -> int:
    """Bytes of physical memory (8 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    if sys.platform == "win32":
        try:
            import ctypes

            class Status(ctypes.Structure):
                _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                            ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                            ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                            ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                            ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]
            status = Status()
            status.dwLength = ctypes.sizeof(Status)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
                return int(status.ullTotalPhys)
        except Exception:
            pass
    return 8 * 2**30


# ----------------------------------------------------------------------------- preview

def sample_images(folder: Path, k: int = 8, image_size: tuple[int, int] | None = None, grayscale: bool = False,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """A preview without decoding the folder: (k decoded images uint8 (k, C, H, W), their class
    ids, the class names, the number of images). Seeded, spread over the classes; an unreadable
    image is passed over for another."""
    scan = scan_folder(Path(folder))
    if image_size is not None:
        height, width = image_size
    else:
        height, width = image_size_of(scan.folder, scan.files[0])
    mode = "L" if grayscale else "RGB"
    rng = random.Random(seed)
    by_class = [list(np.flatnonzero(scan.labels == c)) for c in range(len(scan.classes))]
    for members in by_class:
        rng.shuffle(members)
    picks: list[np.ndarray] = []
    labels: list[int] = []
    c = 0
    while len(picks) < k and any(by_class):
        members = by_class[c % len(by_class)]
        c += 1
        if not members:
            continue
        i = int(members.pop())
        try:
            picks.append(decode_image(scan.folder / scan.files[i], height, width, mode, scan.files[i]))
            labels.append(int(scan.labels[i]))
        except DataError:
            continue
    channels = 1 if grayscale else 3
    x = np.stack(picks) if picks else np.zeros((0, channels, height, width), dtype=np.uint8)
    return x, np.array(labels, dtype=np.int64), list(scan.classes), len(scan)
