"""Datasets: built-ins that work offline, and CSV / NPZ / IDX / image-folder imports.

Every dataset is a `Dataset` of numpy arrays in PyTorch layout with the batch first:
images (N, C, H, W) (IDX digits: (N, 28, 28)), sequences (N, T, F), token ids (N, T) int64.
`split_dataset` makes the seeded, stratified train / validation / test split.
Every failure a user can cause is a `DataError` with a one-line message.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from . import idx
from .catalog import builtin_names, describe_builtins, is_builtin, load_builtin
from .core import DataError, Dataset, Splits, split_dataset, split_indices
from .images import LoadCancelled, cache_info, clear_image_cache, is_image_folder, load_image_folder, sample_images
from .tables import load_csv, load_npy, load_npz

__all__ = ["DataError", "Dataset", "LoadCancelled", "Splits", "builtin_names", "cache_dir", "cache_info", "clear_cache",
           "clear_image_cache", "describe_builtins", "load_dataset", "sample_images", "split_dataset", "split_indices"]

cache_dir = idx.cache_dir


def load_dataset(spec: str, *, target: str | None = None, image_size: tuple[int, int] | None = None,
                 grayscale: bool = False, data_dir: str | None = None, progress=None, cancel=None,
                 bad_images: str = "stop", memory_budget: int | None = None) -> Dataset:
    """A built-in dataset by name, or a dataset read from a path.

    spec: a built-in name (see builtin_names()), or a path to a *.csv file (`target`: the
    column to predict, default the last; in a ";"-separated file, a column whose every value
    reads as a number with a decimal comma, "1,5", is numbers), a *.npz file (x_train,
    y_train[, x_test, y_test]), a folder with the four MNIST-style IDX files, or a folder with
    one subfolder of images per class (`image_size` (height, width) up to 4096, default the
    first image's; `grayscale`; an image far larger than the image size needs is refused from
    its header, a large JPEG decoded at a reduced scale: see images.MAX_DECODE_PIXELS). An image
    folder is decoded once into a per-user cache file and its x is uint8 pixels (see images.py:
    `progress`, `cancel`, `bad_images` "stop" or "skip", `memory_budget` in bytes).
    data_dir: where to look first for the IDX files of fashion_mnist / mnist.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise DataError("choose a dataset: a built-in name or a file or folder")
    text = str(spec).strip()
    if is_builtin(text):      # built-in names win over same-named files in the working folder
        return load_builtin(text, data_dir)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"'{text}' is neither a built-in dataset ({', '.join(builtin_names())}) "
                        "nor an existing file or folder")
    if path.is_dir():
        files = idx.find_files(path)
        if files:
            missing = [b for b in idx.FILES if b not in files]
            if missing:
                raise DataError(f"{path.name} holds IDX files but lacks {', '.join(missing)} (optionally .gz); "
                                "add them")
            ds = idx.read_idx_set(files, path.name, None, f"{path.name}: IDX images and labels.")
            return ds
        try:
            has_classes = is_image_folder(path)
        except OSError as e:
            raise DataError(f"cannot read folder {path}: {e.strerror or e}") from None
        if has_classes:
            return load_image_folder(path, image_size=image_size, grayscale=grayscale, progress=progress,
                                     cancel=cancel, bad_images=bad_images, memory_budget=memory_budget)
        raise DataError(f"{path.name} holds neither the four IDX files nor one subfolder of images per class")
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as e:
        raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None
    if not regular:
        raise DataError(f"{path.name} is not a regular file (a device, pipe or socket); choose a .csv or .npz file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path, target)
    if suffix == ".npz":
        return load_npz(path)
    if suffix == ".npy":
        return load_npy(path)
    raise DataError(f"{path.name}: unsupported file type '{suffix or 'none'}'; use a .csv, .npz or .npy file, "
                    "or a folder")


def clear_cache() -> None:
    """Forget datasets held in memory (the next load reads them again)."""
    from . import catalog

    catalog._made.cache_clear()
    idx._read_cached.cache_clear()
