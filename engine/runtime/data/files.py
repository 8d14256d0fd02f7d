"""Datasets imported from disk: CSV tables, NPZ arrays (Keras' layout). Image folders: images.py."""
from __future__ import annotations

import csv
import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .core import (
    MAX_INT_CLASSES,
    DataError,
    Dataset,
    check_finite,
    classification_task,
    encode_labels,
)

MISSING = frozenset({"", "na", "n/a", "nan", "null"})
MAX_CATEGORIES = 100
MAX_CSV_BYTES = 512 * 2**20       # parsed in Python: larger tables belong in an NPZ file
MAX_NPZ_BYTES = 4 * 2**30         # the arrays' total size, as their headers declare it


# ----------------------------------------------------------------------------- CSV

def load_csv(path: Path, target: str | None = None) -> Dataset:
    """A CSV file with a header row. Numeric columns become float features, text columns
    are one-hot encoded ("column=value"); the target column (default: the last one) becomes
    class ids when it is text or has at most 20 distinct whole numbers, else a regression."""
    rows, delimiter = _read_rows(path)
    decimal_comma = delimiter == ";"      # "1,5;2,5": a column whose every value reads so is numbers
    header, body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    if all(_is_number(h) or (decimal_comma and _as_numbers([h], True) is not None) for h in header if h):
        raise DataError(f"{path.name} has no header row; add a first line with the column names")
    if any(not h for h in header):
        raise DataError(f"{path.name} has a column without a name in its header row; name every column")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path.name} has more than one column named {', '.join(repr(d) for d in dupes)}; "
                        "rename them")
    if len(header) < 2:
        raise DataError(f"{path.name} needs at least two columns: features and a target")
    if not body:
        raise DataError(f"{path.name} has a header but no data rows")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path.name} line {i + 2} has {len(row)} values but the header names "
                            f"{len(header)} columns; fix that line")

    t = _target_index(header, target, path)
    columns = [[row[j].strip() for row in body] for j in range(len(header))]

    missing = [(header[j], sum(v.lower() in MISSING for v in col)) for j, col in enumerate(columns)]
    missing = [(name, count) for name, count in missing if count]
    if missing:
        listed = ", ".join(f"'{name}' ({count} row{'s' if count > 1 else ''})" for name, count in missing[:5])
        more = f" and {len(missing) - 5} more columns" if len(missing) > 5 else ""
        raise DataError(f"{path.name} has missing values in column {listed}{more}; "
                        "fill them in or remove those rows, then load again")

    features: list[np.ndarray] = []
    feature_names: list[str] = []
    for j, col in enumerate(columns):
        if j == t:
            continue
        numbers = _as_numbers(col, decimal_comma)
        if numbers is not None:
            features.append(numbers[:, None])
            feature_names.append(header[j])
            continue
        cats = sorted(set(col))
        if len(cats) > MAX_CATEGORIES:
            raise DataError(f"{path.name} column '{header[j]}' has {len(cats)} different text values, too many "
                            "to one-hot encode; remove it or turn it into numbers")
        lookup = {c: k for k, c in enumerate(cats)}
        onehot = np.zeros((len(col), len(cats)), dtype=np.float32)
        onehot[np.arange(len(col)), [lookup[v] for v in col]] = 1.0
        features.append(onehot)
        feature_names.extend(f"{header[j]}={c}" for c in cats)
    x = np.concatenate(features, axis=1).astype(np.float32)
    check_finite(x, f"{path.name}")

    ycol = columns[t]
    numbers = _as_numbers(ycol, decimal_comma)
    if numbers is None:
        uniq = sorted(set(ycol))
        lookup = {c: k for k, c in enumerate(uniq)}
        y = np.array([lookup[v] for v in ycol], dtype=np.int64)
        class_names = uniq
    elif np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)) \
            and len(np.unique(numbers)) <= MAX_INT_CLASSES:
        y, _, class_names = encode_labels(numbers.astype(np.int64))
        if class_names is None:
            class_names = [str(i) for i in range(int(y.max()) + 1)]
    else:
        check_finite(numbers[:, None], f"{path.name} target column '{header[t]}'")
        y = numbers.astype(np.float32)
        class_names = None
    if class_names is not None:
        if len(class_names) < 2:
            raise DataError(f"{path.name} target column '{header[t]}' has only one value; "
                            "a model needs at least two classes")
        task = classification_task(len(class_names))
    else:
        task = "regression"
    return Dataset(name=path.stem, x=x, y=y, task=task, class_names=class_names, feature_names=feature_names,
                   description=f"{path.name}: {len(x)} rows, {x.shape[1]} features, target '{header[t]}'.")


def _read_rows(path: Path) -> tuple[list[list[str]], str]:
    """The non-blank rows and the delimiter (",", ";" or a tab: the one the header row uses most)."""
    try:
        with open(path, "rb") as f:
            too_large = os.fstat(f.fileno()).st_size > MAX_CSV_BYTES
            raw = b"" if too_large else f.read(MAX_CSV_BYTES + 1)
        if too_large or len(raw) > MAX_CSV_BYTES:
            raise DataError(f"{path.name} is larger than {MAX_CSV_BYTES // 2**20} MiB, too large to read as CSV; "
                            "save the data as an NPZ file (numpy.savez) instead")
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as e:
        raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None
    if "\x00" in text:
        raise DataError(f"{path.name} is not a text file; choose a CSV file")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if any(d in first for d in ",;\t") else ","
    try:
        rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise DataError(f"{path.name} is not valid CSV ({e})") from None
    if not rows:
        raise DataError(f"{path.name} is empty")
    return rows, delimiter


def _target_index(header: list[str], target: str | None, path: Path) -> int:
    if target is None:
        return len(header) - 1
    if target in header:
        return header.index(target)
    folded = [h for h in header if h.lower() == target.strip().lower()]
    if len(folded) == 1:
        return header.index(folded[0])
    raise DataError(f"{path.name} has no column '{target}'; its columns are {', '.join(header)}")


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _as_numbers(col: list[str], decimal_comma: bool = False) -> np.ndarray | None:
    """The column as numbers, or None when a value is not one. decimal_comma (a ";"-separated
    file): when not every value reads as a number, every value may instead be one written with a
    decimal comma ("1,5", "-2", "3,0e-2"; no "." and at most one ",")."""
    try:
        return np.array([float(v) for v in col], dtype=np.float64)
    except ValueError:
        if not decimal_comma:
            return None
    if any("." in v or v.count(",") > 1 for v in col):
        return None
    try:
        return np.array([float(v.replace(",", ".")) for v in col], dtype=np.float64)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- NPZ

def load_npz(path: Path) -> Dataset:
    """Keras' layout: x_train, y_train and optionally x_test, y_test (x / y also accepted).

    Never unpickles: object arrays are refused. Channels-last images (N, H, W, C) with C in
    (1, 3, 4) become (N, C, H, W); uint8 and float inputs become float32; other integer
    inputs of shape (N, T) are token ids (int64). Integer labels are classes; float labels a
    regression; one-hot label rows become class ids.
    """
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk = "x_train" if "x_train" in keys else "x" if "x" in keys else None
            yk = "y_train" if "y_train" in keys else "y" if "y" in keys else None
            if xk is None or yk is None:
                raise DataError(f"{path.name} must hold arrays named x_train and y_train (and optionally "
                                f"x_test, y_test); it has {', '.join(sorted(keys)) or 'none'}")
            x, y = z[xk], z[yk]
            has_test = "x_test" in keys and "y_test" in keys
            x_test = z["x_test"] if has_test else None
            y_test = z["y_test"] if has_test else None
            for key, a in ((xk, x), (yk, y), ("x_test", x_test), ("y_test", y_test)):
                if a is not None and not isinstance(a, np.ndarray):   # NpzFile returns a non-.npy member as bytes
                    raise DataError(f"{path.name}: {key} is not a numpy array (not in .npy format); "
                                    "save the arrays with numpy.savez")
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise DataError(f"{path.name} holds Python objects, which are never loaded (unsafe); save plain "
                            "numeric arrays with numpy.savez") from None
        raise DataError(f"{path.name} cannot be read as NPZ ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error, NotImplementedError, RuntimeError,
            SyntaxError, tokenize.TokenError) as e:   # the last two: a damaged .npy header
        raise DataError(f"{path.name} is not a valid NPZ file ({' '.join(str(e).split())[:200]}); "
                        "save it with numpy.savez") from None

    x = _npz_inputs(x, path.name, "x_train")
    y = _npz_targets(y, path.name, "y_train")
    if len(x) != len(y):
        raise DataError(f"{path.name}: x_train has {len(x)} samples but y_train has {len(y)}")
    if x_test is not None:
        x_test = _npz_inputs(x_test, path.name, "x_test")
        y_test = _npz_targets(y_test, path.name, "y_test")
        if len(x_test) != len(y_test):
            raise DataError(f"{path.name}: x_test has {len(x_test)} samples but y_test has {len(y_test)}")
        if x_test.shape[1:] != x.shape[1:] or x_test.dtype != x.dtype:
            raise DataError(f"{path.name}: x_test samples are {x_test.shape[1:]} but x_train samples "
                            f"{x.shape[1:]}; they must match")
        if y_test.shape[1:] != y.shape[1:] or (y.dtype.kind == "f") != (y_test.dtype.kind == "f"):
            raise DataError(f"{path.name}: y_test and y_train hold different kinds of targets")

    if y.dtype.kind in "iub":
        y, y_test, class_names = encode_labels(y, y_test)
        k = len(class_names) if class_names else int(max(y.max(initial=0),
                                                          y_test.max(initial=0) if y_test is not None else 0)) + 1
        if k < 2:
            raise DataError(f"{path.name}: y_train has only one class; a model needs at least two")
        task = classification_task(k)
    else:
        y = y.astype(np.float32)
        y_test = None if y_test is None else y_test.astype(np.float32)
        check_finite(y, f"{path.name} y_train")
        if y_test is not None:
            check_finite(y_test, f"{path.name} y_test")
        class_names, task = None, "regression"
    return Dataset(name=path.stem, x=x, y=y, task=task, class_names=class_names, x_test=x_test, y_test=y_test,
                   description=f"{path.name}: {len(x)} samples of shape {x.shape[1:]}"
                               + (f", {len(x_test)} test samples." if x_test is not None else "."))


def _check_npz_sizes(path: Path) -> None:
    """Refuse, before numpy allocates anything, arrays whose headers claim more data than the
    file holds or more than MAX_NPZ_BYTES in all (numpy allocates what a header claims)."""
    try:
        with zipfile.ZipFile(path) as zf:
            total = 0
            for info in zf.infolist():      # every member: NpzFile parses any member that starts like .npy
                with zf.open(info) as f:
                    if f.read(6) != np.lib.format.MAGIC_PREFIX:
                        continue
                    version = (f.read(1)[:1] or b"\0")[0], (f.read(1)[:1] or b"\0")[0]
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version in ((2, 0), (3, 0)):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        continue          # np.load reports unknown versions itself
                    claimed = dtype.itemsize
                    for d in shape:
                        claimed *= max(int(d), 0)
                    if claimed > info.file_size or claimed > MAX_NPZ_BYTES - total:
                        name = info.filename.removesuffix(".npy")
                        raise DataError(f"{path.name}: the header of {name} claims {claimed:,} bytes "
                                        f"({'x'.join(map(str, shape))} {dtype}) but the file holds "
                                        f"{info.file_size:,}; the file is damaged or not a plain NPZ")
                    total += claimed
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - only a pre-check: np.load below reports what is wrong in its own words
        return


def _npz_inputs(a: np.ndarray, fname: str, key: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{fname}: {key} holds {a.dtype} values; save numbers")
    if a.ndim < 2:
        raise DataError(f"{fname}: {key} must have a sample dimension and at least one feature "
                        f"dimension, got shape {a.shape}")
    if a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        a = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    if a.dtype.kind in "iu" and a.dtype != np.uint8 and a.ndim == 2 and (a.size == 0 or a.min() >= 0):
        return a.astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):   # values beyond float32 become inf: reported next
        a = a.astype(np.float32)
    check_finite(a, f"{fname} {key}")
    return a


def _npz_targets(a: np.ndarray, fname: str, key: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{fname}: {key} holds {a.dtype} values; save numbers")
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2 and a.shape[1] > 1 and len(a) and np.isin(a, (0, 1)).all() and (a.sum(axis=1) == 1).all():
        a = a.argmax(axis=1).astype(np.int64)    # one-hot rows -> class ids
    if a.ndim not in (1, 2):
        raise DataError(f"{fname}: {key} must be (N,) labels or (N, k) values, got shape {a.shape}")
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    return a
