"""The dataset record, its error type, and the seeded train/validation/test split."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

TASKS = ("multiclass", "binary", "regression")
MAX_INT_CLASSES = 20   # a numeric target with at most this many whole-number values is a class label


class DataError(ValueError):
    """A dataset that cannot be loaded or split. The message is one line: what is wrong and what to do."""


@dataclass
class Dataset:
    """Samples in PyTorch layout (batch first): x is (N, *input_shape), y is (N,) or (N, k).

    x is float32, or int64 for token ids, or uint8 pixels 0..255 (an image folder: read-only, maybe
    the cache file mapped into memory; they become float32 batch by batch). y holds int64 class ids for "multiclass" and
    "binary", float32 values for "regression". x_test / y_test are a predefined test split
    (IDX, NPZ), else None. Arrays of built-in datasets are read-only (they are cached).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    task: str
    class_names: list[str] | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    description: str = ""
    feature_names: list[str] | None = None
    images: Any = None    # an image folder: how it was read (images.ImageFolderInfo); x is then uint8 pixels

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def dtype(self) -> str:
        return "int64" if np.issubdtype(self.x.dtype, np.integer) and self.x.dtype != np.uint8 else "float32"

    @property
    def num_classes(self) -> int | None:
        if self.task == "regression":
            return None
        if self.class_names:
            return len(self.class_names)
        tops = [int(a.max()) for a in (self.y, self.y_test) if a is not None and len(a)]
        return max(max(tops, default=0) + 1, 2 if self.task == "binary" else 1)

    @property
    def target_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.y.shape[1:])

    def __len__(self) -> int:
        return int(len(self.x))


@dataclass
class Splits:
    """Numpy arrays, each split a fresh, writable copy; validation and test may have 0 rows."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# ----------------------------------------------------------------------------- helpers

def readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.flags.writeable = False
    return a


def frozen(ds: Dataset) -> Dataset:
    """Make every array of `ds` read-only (for the in-memory caches); returns `ds`."""
    for a in (ds.x, ds.y, ds.x_test, ds.y_test):
        readonly(a)
    return ds


def fresh(ds: Dataset) -> Dataset:
    """A new record sharing the (read-only) arrays, so callers can't change a cached one."""
    return dataclasses.replace(
        ds,
        class_names=list(ds.class_names) if ds.class_names is not None else None,
        feature_names=list(ds.feature_names) if ds.feature_names is not None else None,
    )


def classification_task(num_classes: int) -> str:
    return "binary" if num_classes == 2 else "multiclass"


def encode_labels(values: np.ndarray, extra: np.ndarray | None = None,
                  names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Class ids 0..K-1 for `values` (and `extra`, the test labels, with the same mapping).

    Labels that already are 0..K-1 integers keep their ids and get no names (unless given);
    anything else is mapped through its sorted distinct values, which become the class names.
    """
    both = values if extra is None else np.concatenate([values, extra])
    uniq = np.unique(both)
    if np.issubdtype(uniq.dtype, np.number) and len(uniq) and np.array_equal(uniq, np.arange(len(uniq))):
        ids = values.astype(np.int64)
        ids_extra = None if extra is None else extra.astype(np.int64)
        return ids, ids_extra, names
    ids = np.searchsorted(uniq, values).astype(np.int64)
    ids_extra = None if extra is None else np.searchsorted(uniq, extra).astype(np.int64)
    return ids, ids_extra, [_label_name(v) for v in uniq]


def _label_name(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def check_finite(x: np.ndarray, what: str) -> None:
    if np.issubdtype(x.dtype, np.floating) and x.size and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"{what} has infinite or NaN values in {bad} sample(s); clean them and load again")


# ----------------------------------------------------------------------------- splits

def split_dataset(ds: Dataset, val_split: float = 0.1, test_split: float = 0.2, seed: int = 0) -> Splits:
    """Seeded train/validation/test split, stratified by class for classification tasks.

    Fractions are of all samples in `ds.x`. When the dataset has a predefined test split
    (`ds.x_test`), that is the test split and only validation is carved from `ds.x`.
    A class too small to stratify falls back to an unstratified (still seeded) split.
    """
    train_idx, val_idx, test_idx = split_indices(ds, val_split, test_split, seed)

    def take(a: np.ndarray, i: np.ndarray) -> np.ndarray:
        return np.array(a[i], copy=True)

    if ds.x_test is not None and ds.y_test is not None:
        x_test = np.array(ds.x_test, copy=True)
        y_test = np.array(ds.y_test, copy=True)
    else:
        x_test, y_test = take(ds.x, test_idx), take(ds.y, test_idx)
    return Splits(take(ds.x, train_idx), take(ds.y, train_idx), take(ds.x, val_idx), take(ds.y, val_idx),
                  x_test, y_test)


def split_indices(ds: Dataset, val_split: float = 0.1, test_split: float = 0.2,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """split_dataset's split as positions in ds.x: (train, validation, test); test is empty when
    the dataset has its own test split. Needs only the labels (streamed data is not read)."""
    for label, frac in (("validation split", val_split), ("test split", test_split)):
        if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0.0 <= frac < 1.0:
            raise DataError(f"the {label} must be a fraction from 0 up to (not including) 1; got {frac!r}")
    has_test = ds.x_test is not None and ds.y_test is not None
    if not has_test and val_split + test_split >= 1.0:
        raise DataError(f"validation ({val_split:g}) and test ({test_split:g}) splits leave nothing to train on; "
                        "make them add up to less than 1")
    n = len(ds.x)
    if len(ds.y) != n:
        raise DataError(f"dataset '{ds.name}' has {n} inputs but {len(ds.y)} targets")
    stratify = ds.task in ("multiclass", "binary")
    idx = np.arange(n)

    if has_test:
        n_test = 0
        test_idx = idx[:0]
        rest = idx
    else:
        n_test = int(round(test_split * n))
        rest, test_idx = _carve(idx, ds.y, n_test, stratify, seed)
    n_val = int(round(val_split * n))
    if n_val + n_test >= n and n_val + n_test > 0:
        raise DataError(f"dataset '{ds.name}' has only {n} samples: too few to split off validation and test "
                        "data; lower the splits or use more data")
    train_idx, val_idx = _carve(rest, ds.y, n_val, stratify, seed + 1)
    return train_idx, val_idx, test_idx


def _carve(idx: np.ndarray, y: np.ndarray, count: int, stratify: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `idx` into (kept, carved) with `count` carved rows, seeded; stratified when it can be."""
    if count <= 0:
        return idx, idx[:0]
    if stratify:
        try:
            return train_test_split(idx, count, seed, y[idx])
        except ValueError:
            pass   # a class with a single sample, or fewer carved rows than classes
    return train_test_split(idx, count, seed)


def train_test_split(idx: np.ndarray, count: int, seed: int, stratify: np.ndarray | None = None):
    """scikit-learn's train_test_split(idx, test_size=count, random_state=seed, stratify=...):
    (kept, carved). Without scikit-learn (an exported train.py may run without it), the same
    split from numpy_train_test_split."""
    try:
        from sklearn.model_selection import train_test_split as sklearn_split
    except ImportError:
        return numpy_train_test_split(idx, count, seed, stratify)
    kept, carved = sklearn_split(idx, test_size=count, random_state=seed, stratify=stratify)
    return kept, carved


def numpy_train_test_split(idx: np.ndarray, count: int, seed: int, stratify: np.ndarray | None = None):
    """The same split as scikit-learn's ShuffleSplit / StratifiedShuffleSplit, in numpy
    (ValueError where scikit-learn refuses to stratify)."""
    n = len(idx)
    if not 0 < count < n:
        raise ValueError(f"cannot carve {count} of {n} samples")
    n_train = n - count
    rng = np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n)
        return idx[permutation[count:]], idx[permutation[:count]]
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True, return_counts=True)
    if class_counts.min() < 2 or n_train < len(classes) or count < len(classes):
        raise ValueError("too few samples per class to stratify")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, count, rng)
    train, test = [], []
    for i in range(len(classes)):
        members = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(members[: n_i[i]])
        test.extend(members[n_i[i]: n_i[i] + t_i[i]])
    return idx[rng.permutation(train)], idx[rng.permutation(test)]


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """How many of `n_draws` samples each class gets (ties broken at random), as scikit-learn's."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
