"""Tables read from disk: CSV files (parsed by pyarrow) and NPZ / NPY arrays (Keras' layout).

CSV: pyarrow parses the file (multi-threaded, numbers correctly rounded, as Python's float()
reads them) and Deepwire applies its rules to what it parsed: the same header, missing-value,
category, decimal-comma and target rules, with the same messages, as the Python reader this
replaced, which is kept here (`_load_csv_python`) for the files pyarrow cannot vouch for:
cells holding quotes, line breaks or NUL bytes, rows of the wrong length, and the like. Text
columns are handled through their distinct values, so a text target costs one pass in C.
There is no size limit: a file is refused, before it is read, only when its float32 table
(estimated from the first MiB) would not fit in the memory available.

NPZ / NPY: never unpickled; members stored uncompressed (numpy.savez) and .npy files are
memory-mapped, compressed members (numpy.savez_compressed) read whole; headers that claim
more data than the file holds are refused before numpy allocates anything.

The runtime imports only the standard library, numpy and torch at module level: pyarrow is
imported when a CSV file is read, with a DataError saying how to install it when it is missing.
"""
from __future__ import annotations

import csv
import os
import sys
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
MAX_NPZ_BYTES = 4 * 2**30         # compressed members: their total size, as their headers declare it
PROBE_BYTES = 2**20               # the first MiB: header, delimiter, column kinds, rows per byte
# A file the pyarrow reader cannot vouch for (see the module docstring) is read again by the
# Python reader when it is at most this large; a larger one is read as pyarrow reads it.
PYTHON_READER_BYTES = 64 * 2**20
# Characters that end a line for the Python reader (str.splitlines) besides \r and \n, and
# characters whose presence in a cell means pyarrow may have split the file differently.
_ODD_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_UNSURE_CHARS = ('"', "\r", "\n", "\x00", *_ODD_BREAKS)
PYARROW = "pyarrow>=14"


class _Unsure(Exception):
    """The pyarrow reader cannot vouch that it read the file as the Python reader would."""


# ----------------------------------------------------------------------------- CSV

def load_csv(path: Path, target: str | None = None) -> Dataset:
    """A CSV file with a header row. Numeric columns become float features, text columns
    are one-hot encoded ("column=value"); the target column (default: the last one) becomes
    class ids when it is text or has at most 20 distinct whole numbers, else a regression."""
    path = Path(path)
    pa_csv = _pyarrow_csv(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None
    exact = size <= PYTHON_READER_BYTES
    try:
        return _load_csv_arrow(path, target, size, exact, pa_csv)
    except _Unsure:
        if not exact:
            raise
    return _load_csv_python(path, target)


def _pyarrow_csv(path: Path):
    try:
        import pyarrow  # noqa: F401
        import pyarrow.csv as pa_csv
    except ImportError:
        raise DataError(f"reading {path.name} needs pyarrow; install it with: pip install pyarrow") from None
    return pa_csv


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux' MemAvailable, else the free pages), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        try:
            import ctypes

            class MemoryStatus(ctypes.Structure):
                _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                            ("available", ctypes.c_ulonglong), ("total_page", ctypes.c_ulonglong),
                            ("available_page", ctypes.c_ulonglong), ("total_virtual", ctypes.c_ulonglong),
                            ("available_virtual", ctypes.c_ulonglong), ("extended", ctypes.c_ulonglong)]

            status = MemoryStatus()
            status.length = ctypes.sizeof(MemoryStatus)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
                return int(status.available)
        except (OSError, AttributeError, ValueError):
            return None
        return None
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


class _Probe:
    """What the first PROBE_BYTES of a CSV file tell: delimiter, header, sample rows, rows per byte."""

    def __init__(self, path: Path, size: int, exact: bool):
        try:
            with open(path, "rb") as f:
                raw = f.read(PROBE_BYTES)
        except OSError as e:
            raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None
        self.whole = len(raw) >= size and len(raw) < PROBE_BYTES
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not self.whole:
            cut = raw.rfind(b"\n")
            if cut < 0:
                raise _unsure(exact, f"{path.name}: its first line is longer than {PROBE_BYTES // 2**20} MiB; "
                                     "is it a CSV file?")
            raw = raw[:cut + 1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV") from None
        if "\x00" in text:
            raise _unsure(exact, f"{path.name} is not a text file; choose a CSV file")
        first = text.split("\n", 1)[0]
        self.delimiter = max((",", ";", "\t"), key=first.count) if any(d in first for d in ",;\t") else ","
        lines = text.splitlines()
        try:
            rows = [r for r in csv.reader(lines, delimiter=self.delimiter) if any(c.strip() for c in r)]
        except csv.Error as e:
            if self.whole:
                raise DataError(f"{path.name} is not valid CSV ({e})") from None
            raise _unsure(exact, f"{path.name} is not valid CSV ({e})") from None
        if not rows:
            if self.whole:
                raise DataError(f"{path.name} is empty")
            raise _unsure(exact, f"{path.name} starts with a MiB of blank lines; remove them")
        if not self.whole:
            rows = rows[:-1]      # may be cut short
        # pyarrow skips the first line as the header: it must be the first row, alone on its line
        try:
            alone = bool(lines) and lines[0] == first.removesuffix("\r") \
                and next(csv.reader([lines[0]], delimiter=self.delimiter), None) == rows[0]
        except csv.Error:
            alone = False
        if not alone:
            raise _unsure(exact, f"{path.name}: its header row must be its first line, on one line; "
                                 "remove what comes before it")
        self.header_raw = rows[0]
        self.sample = rows[1:]
        self.rows_per_byte = max(len(rows), 1) / max(len(raw), 1)


def _unsure(exact: bool, message: str) -> Exception:
    return _Unsure(message) if exact else DataError(message)


def _number_sample(values: list[str]) -> bool:
    """Whether pyarrow should parse a column as float64: every sampled value is a number (not a NaN)."""
    if not values:
        return False
    for v in values:
        v = v.strip()
        if v.lower() in MISSING:
            return False
        try:
            f = float(v)
        except ValueError:
            return False
        if f != f:
            return False
    return True


class _Column:
    """A parsed column: numbers (float64 chunks) or text (codes into distinct stripped values)."""

    def __init__(self, chunks=None, codes=None, values=None):
        self.chunks = chunks           # list of float64 numpy arrays, or None
        self.codes = codes             # int64 numpy array, or None
        self.values = values           # distinct stripped values (str), codes index them
        self.counts = None             # rows per value

    @property
    def numeric(self) -> bool:
        return self.chunks is not None

    def numbers(self) -> np.ndarray:
        return np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]


def _read_arrow(path: Path, probe: _Probe, exact: bool, pa_csv):
    """The file parsed by pyarrow: (columns, rows of the wrong length seen). Columns the sample
    says are numbers are parsed as float64; when one holds something else (or a NaN, which may
    be a missing value), it is parsed again as text."""
    import pyarrow as pa

    n = len(probe.header_raw)
    names = [f"c{j}" for j in range(n)]
    sample = [r for r in probe.sample[:2000] if len(r) == n]      # a guess: a wrong one costs a second parse
    as_numbers = {j for j in range(n) if _number_sample([r[j] for r in sample])}
    delimiter = probe.delimiter
    quoted = _has_quote(path)     # no quote anywhere: no line break inside a value, so pyarrow splits freely
    while True:
        invalid: list[str] = []

        def on_invalid(row, invalid=invalid):
            text = row.text or ""
            if not text.replace(delimiter, "").strip():
                return "skip"          # a blank line: the Python reader skips it too
            invalid.append(text)
            return "skip"

        try:
            table = pa_csv.read_csv(
                path,
                read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, encoding="utf8"),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True,
                                                  escape_char=False, newlines_in_values=quoted,
                                                  ignore_empty_lines=True, invalid_row_handler=on_invalid),
                convert_options=pa_csv.ConvertOptions(
                    column_types={names[j]: pa.float64() if j in as_numbers else pa.string() for j in range(n)},
                    null_values=[], true_values=[], false_values=[], strings_can_be_null=False,
                    quoted_strings_can_be_null=False, check_utf8=True))
        except pa.ArrowInvalid as e:
            message = str(e)
            if "invalid UTF8" in message:
                raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV") from None
            bad = _failed_column(message, names)
            if bad is not None and bad in as_numbers:
                as_numbers.discard(bad)
                continue
            raise _unsure(exact, f"{path.name} is not valid CSV ({' '.join(message.split())[:200]})") from None
        except OSError as e:
            raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None
        columns = []
        again = False
        for j in range(n):
            col = table.column(j)
            if j in as_numbers:
                chunks = [c.to_numpy(zero_copy_only=False) for c in col.chunks if len(c)]
                if any(np.isnan(c).any() for c in chunks):     # "nan" is a missing value, "-nan" a NaN
                    as_numbers.discard(j)
                    again = True
                    break
                columns.append(_Column(chunks=chunks or [np.zeros(0)]))
            else:
                columns.append(_text_column(col, path, exact))
        if not again:
            return columns, invalid, table.num_rows


def _has_quote(path: Path) -> bool:
    """Whether the file holds a double quote anywhere (a memchr over the mapped file: ~0.13 s a GiB)."""
    import mmap

    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return m.find(b'"') >= 0
    except (OSError, ValueError):
        return True          # unknown: the careful way


def _failed_column(message: str, names: list[str]) -> int | None:
    """The column number in pyarrow's "In CSV column #3: CSV conversion error to double ...", or None."""
    marker = "In CSV column #"
    if marker not in message or "conversion error" not in message:
        return None
    digits = message.split(marker, 1)[1].split(":", 1)[0].strip()
    return int(digits) if digits.isdigit() and int(digits) < len(names) else None


def _text_column(col, path: Path, exact: bool) -> _Column:
    """Codes into the distinct stripped values of a text column (one dictionary pass in C)."""
    if col.num_chunks != 1:
        col = col.combine_chunks()
    else:
        col = col.chunk(0)
    encoded = col.dictionary_encode()
    raw = encoded.dictionary.to_pylist()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    for v in raw:
        if any(c in v for c in _UNSURE_CHARS):
            if "\x00" in v:
                raise _unsure(exact, f"{path.name} is not a text file; choose a CSV file")
            if exact:
                raise _Unsure(f"a cell holds {v!r}")
    stripped: dict[str, int] = {}
    remap = np.array([stripped.setdefault(v.strip(), len(stripped)) for v in raw], dtype=np.int64)
    codes = remap[indices] if len(remap) else indices.astype(np.int64)
    return _Column(codes=codes, values=list(stripped))


def _load_csv_arrow(path: Path, target: str | None, size: int, exact: bool, pa_csv) -> Dataset:
    probe = _Probe(path, size, exact)
    n = len(probe.header_raw)
    estimated_rows = int(probe.rows_per_byte * size)
    need = estimated_rows * n * 4
    free = available_memory()
    if free is not None and need > free:
        raise DataError(f"{path.name} holds about {estimated_rows:,} rows of {n} columns: about {_gib(need)} "
                        f"as float32, more than the {_gib(free)} of memory available; use fewer rows or columns, "
                        "or a machine with more memory")
    columns, invalid, nrows = _read_arrow(path, probe, exact, pa_csv)

    decimal_comma = probe.delimiter == ";"
    header = [h.strip() for h in probe.header_raw]
    _check_header(header, path, decimal_comma)
    if invalid:
        if exact:
            raise _Unsure("rows of the wrong length")
        text = " ".join(invalid[0].split())[:80]
        raise DataError(f"{path.name} has {len(invalid):,} line{'s' if len(invalid) > 1 else ''} whose number of "
                        f"values differs from the {len(header)} columns the header names (the first: '{text}'); "
                        "fix those lines")

    # rows whose every cell is blank: the Python reader skips them
    if nrows and all(not c.numeric and "" in c.values for c in columns):
        blank = np.ones(nrows, dtype=bool)
        for c in columns:
            blank &= c.codes == c.values.index("")
        if blank.any():
            for c in columns:
                c.codes = c.codes[~blank]
            nrows = int((~blank).sum())
    if nrows == 0:
        raise DataError(f"{path.name} has a header but no data rows")
    for c in columns:                 # only the values rows hold, in order of first code
        if not c.numeric:
            counts = np.bincount(c.codes, minlength=len(c.values))
            if not counts.all():
                keep = np.flatnonzero(counts)
                remap = np.full(len(c.values), -1, dtype=np.int64)
                remap[keep] = np.arange(len(keep))
                c.codes = remap[c.codes]
                c.values = [c.values[k] for k in keep]
                counts = counts[keep]
            c.counts = counts

    t = _target_index(header, target, path)
    missing = []
    for j, c in enumerate(columns):
        if not c.numeric:
            count = int(sum(k for v, k in zip(c.values, c.counts) if v.lower() in MISSING))
            if count:
                missing.append((header[j], count))
    if missing:
        _raise_missing(path, missing)

    # features: numbers, or one-hot categories
    plan = []          # (column, numbers float64 per value or None, sorted categories or None)
    width = 0
    for j, c in enumerate(columns):
        if j == t:
            continue
        if c.numeric:
            plan.append((c, None, None))
            width += 1
            continue
        numbers = _as_numbers(c.values, decimal_comma)
        if numbers is not None:
            plan.append((c, numbers, None))
            width += 1
            continue
        cats = sorted(c.values)
        if len(cats) > MAX_CATEGORIES:
            raise DataError(f"{path.name} column '{header[j]}' has {len(cats)} different text values, too many "
                            "to one-hot encode; remove it or turn it into numbers")
        plan.append((c, None, cats))
        width += len(cats)
    x = np.zeros((nrows, width), dtype=np.float32)
    feature_names: list[str] = []
    plan_names = [header[j] for j in range(len(columns)) if j != t]
    with np.errstate(over="ignore"):     # values beyond float32 become inf: reported next
        _fill(x, plan, plan_names, feature_names, nrows)
    check_finite(x, f"{path.name}")

    ct = columns[t]
    if ct.numeric:
        numbers = ct.numbers()
        text_labels = None
    else:
        per_value = _as_numbers(ct.values, decimal_comma)
        numbers = None if per_value is None else per_value[ct.codes]
        text_labels = ct
    y, class_names, task = _target(numbers, text_labels, path, header[t])
    return Dataset(name=path.stem, x=x, y=y, task=task, class_names=class_names, feature_names=feature_names,
                   description=f"{path.name}: {len(x)} rows, {x.shape[1]} features, target '{header[t]}'.")


THREADED_FILL_BYTES = 64 * 2**20     # a feature table larger than this is written by a thread per core


def _fill(x: np.ndarray, plan, plan_names: list[str], feature_names: list[str], nrows: int) -> None:
    """Write the features into x, column by column (numbers, or one-hot categories)."""
    at = 0
    numeric = []          # (x column, chunks): written block of rows by block of rows, in cache
    for (c, numbers, cats), name in zip(plan, plan_names):
        if c.numeric:
            numeric.append((at, c.chunks))
            feature_names.append(name)
            at += 1
        elif numbers is not None:
            x[:, at] = numbers[c.codes]
            feature_names.append(name)
            at += 1
        else:
            order = np.argsort(np.array(c.values, dtype=object), kind="stable")   # value code -> sorted rank
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            x[np.arange(nrows), at + rank[c.codes]] = 1.0
            feature_names.extend(f"{name}={v}" for v in cats)
            at += len(cats)
    lengths = {tuple(len(chunk) for chunk in chunks) for _, chunks in numeric}
    if len(lengths) == 1:           # the columns of one table: the same blocks
        sizes = next(iter(lengths))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else []

        def write(blocks: range) -> None:
            for k in blocks:
                block = x[starts[k]:starts[k] + sizes[k]]
                for col, chunks in numeric:
                    block[:, col] = chunks[k]

        # a large table in a thread per core: most of the time is the first touch of x's new pages, which
        # the threads take in parallel (numpy copies without the GIL): 1.05 s -> 0.58 s for 450 MB on 2 cores
        threads = min(os.cpu_count() or 1, 8) if x.nbytes > THREADED_FILL_BYTES and len(sizes) >= 2 else 1
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            cut = [len(sizes) * i // threads for i in range(threads + 1)]
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(write, [range(cut[i], cut[i + 1]) for i in range(threads)]))
        else:
            write(range(len(sizes)))
    else:
        for col, chunks in numeric:
            row = 0
            for chunk in chunks:
                x[row:row + len(chunk), col] = chunk
                row += len(chunk)

def _target(numbers: np.ndarray | None, text: _Column | None, path: Path, name: str):
    """(y, class_names, task) from the target's numbers, or from its text values when not numbers."""
    if numbers is None:
        order = np.argsort(np.array(text.values, dtype=object), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        y = rank[text.codes]
        class_names = sorted(text.values)
    elif np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)) \
            and len(np.unique(numbers)) <= MAX_INT_CLASSES:
        y, _, class_names = encode_labels(numbers.astype(np.int64))
        if class_names is None:
            class_names = [str(i) for i in range(int(y.max()) + 1)]
    else:
        check_finite(numbers[:, None], f"{path.name} target column '{name}'")
        y = numbers.astype(np.float32)
        class_names = None
    if class_names is not None:
        if len(class_names) < 2:
            raise DataError(f"{path.name} target column '{name}' has only one value; "
                            "a model needs at least two classes")
        task = classification_task(len(class_names))
    else:
        task = "regression"
    return y, class_names, task


def _check_header(header: list[str], path: Path, decimal_comma: bool) -> None:
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


def _raise_missing(path: Path, missing: list[tuple[str, int]]) -> None:
    listed = ", ".join(f"'{name}' ({count} row{'s' if count > 1 else ''})" for name, count in missing[:5])
    more = f" and {len(missing) - 5} more columns" if len(missing) > 5 else ""
    raise DataError(f"{path.name} has missing values in column {listed}{more}; "
                    "fill them in or remove those rows, then load again")


# The Python reader: every file the pyarrow reader cannot vouch for, up to PYTHON_READER_BYTES.

def _load_csv_python(path: Path, target: str | None = None) -> Dataset:
    rows, delimiter = _read_rows(path)
    decimal_comma = delimiter == ";"      # "1,5;2,5": a column whose every value reads so is numbers
    header, body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    _check_header(header, path, decimal_comma)
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
        _raise_missing(path, missing)

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
    text = None
    if numbers is None:
        uniq = sorted(set(ycol))
        lookup = {c: k for k, c in enumerate(uniq)}
        text = _Column(codes=np.array([lookup[v] for v in ycol], dtype=np.int64), values=uniq)
    y, class_names, task = _target(numbers, text, path, header[t])
    return Dataset(name=path.stem, x=x, y=y, task=task, class_names=class_names, feature_names=feature_names,
                   description=f"{path.name}: {len(x)} rows, {x.shape[1]} features, target '{header[t]}'.")


def _read_rows(path: Path) -> tuple[list[list[str]], str]:
    """The non-blank rows and the delimiter (",", ";" or a tab: the one the header row uses most)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(PYTHON_READER_BYTES + 1)
        if len(raw) > PYTHON_READER_BYTES:      # grew since it was measured
            raise DataError(f"{path.name} changed while it was read; load it again")
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


# ----------------------------------------------------------------------------- NPZ / NPY

_NPZ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error, NotImplementedError, RuntimeError,
               SyntaxError, tokenize.TokenError)     # the last two: a damaged .npy header


def load_npz(path: Path) -> Dataset:
    """Keras' layout: x_train, y_train and optionally x_test, y_test (x / y also accepted).

    Never unpickles: object arrays are refused. Channels-last images (N, H, W, C) with C in
    (1, 3, 4) become (N, C, H, W); uint8 and float inputs become float32; other integer
    inputs of shape (N, T) are token ids (int64). Integer labels are classes; float labels a
    regression; one-hot label rows become class ids. Members stored uncompressed (numpy.savez)
    are memory-mapped, compressed ones (numpy.savez_compressed) read whole.
    """
    path = Path(path)
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk = "x_train" if "x_train" in keys else "x" if "x" in keys else None
            yk = "y_train" if "y_train" in keys else "y" if "y" in keys else None
            if xk is None or yk is None:
                raise DataError(f"{path.name} must hold arrays named x_train and y_train (and optionally "
                                f"x_test, y_test); it has {', '.join(sorted(keys)) or 'none'}")
            has_test = "x_test" in keys and "y_test" in keys
            arrays = {key: _npz_member(path, z, key) for key in (xk, yk, *(("x_test", "y_test") if has_test else ()))}
            for key, a in arrays.items():
                if not isinstance(a, np.ndarray):   # NpzFile returns a non-.npy member as bytes
                    raise DataError(f"{path.name}: {key} is not a numpy array (not in .npy format); "
                                    "save the arrays with numpy.savez")
            return _keras_dataset(path.stem, path.name, arrays[xk], arrays[yk], arrays.get("x_test"),
                                  arrays.get("y_test"), xk, yk)
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise DataError(f"{path.name} holds Python objects, which are never loaded (unsafe); save plain "
                            "numeric arrays with numpy.savez") from None
        raise DataError(f"{path.name} cannot be read as NPZ ({e})") from None
    except _NPZ_ERRORS as e:
        raise DataError(f"{path.name} is not a valid NPZ file ({' '.join(str(e).split())[:200]}); "
                        "save it with numpy.savez") from None


def _npz_member(path: Path, z, key: str):
    """The member `key` of an open NpzFile: memory-mapped when stored uncompressed, else read."""
    zf = z.zip
    name = key + ".npy" if key + ".npy" in zf.namelist() else key
    info = zf.getinfo(name)
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
        try:
            return _memmap_stored(path, info)
        except _NotMapped:
            pass
    return z[key]


class _NotMapped(Exception):
    """A stored member that is read the ordinary way (np.load reports what is wrong with it)."""


def _memmap_stored(path: Path, info: zipfile.ZipInfo) -> np.ndarray:
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise _NotMapped
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
            + int.from_bytes(local[28:30], "little")
        f.seek(start)
        try:
            shape, fortran, dtype = _npy_header(f)
        except (ValueError, SyntaxError, tokenize.TokenError, EOFError):
            raise _NotMapped from None
        offset = f.tell()
    if dtype.hasobject or offset - start > info.file_size:
        raise _NotMapped
    claimed = dtype.itemsize * int(np.prod(shape, dtype=np.int64)) if shape else dtype.itemsize
    if claimed > info.file_size - (offset - start):
        raise _NotMapped               # _check_npz_sizes has refused it already
    if claimed == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def load_npy(path: Path) -> Dataset:
    """Keras' layout as separate .npy files (numpy.save) in one folder: x_train.npy and
    y_train.npy, optionally x_test.npy and y_test.npy (or x.npy and y.npy); `path` is any of
    them. Memory-mapped; never unpickled."""
    path = Path(path)
    folder = path.parent
    stem = path.stem.lower()
    names = {"x": "x", "y": "y"} if stem in ("x", "y") else {"x": "x_train", "y": "y_train"}
    if stem not in ("x", "y", "x_train", "y_train", "x_test", "y_test"):
        raise DataError(f"{path.name}: a .npy dataset is a folder of x_train.npy and y_train.npy (optionally "
                        "x_test.npy, y_test.npy) or x.npy and y.npy; choose one of them")
    wanted = [names["x"], names["y"]]
    if names["x"] == "x_train" and (folder / "x_test.npy").exists() and (folder / "y_test.npy").exists():
        wanted += ["x_test", "y_test"]
    arrays = {}
    for key in wanted:
        file = folder / f"{key}.npy"
        if not file.exists():
            raise DataError(f"{path.name}: the folder {folder.name or '.'} has no {file.name}; "
                            f"a .npy dataset needs {names['x']}.npy and {names['y']}.npy")
        arrays[key] = _read_npy(file)
    return _keras_dataset(folder.name or path.stem, path.name, arrays[names["x"]], arrays[names["y"]],
                          arrays.get("x_test"), arrays.get("y_test"), names["x"], names["y"])


def _npy_header(f) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy header at `f`'s position, which is left at the data.
    Raises ValueError for a version numpy does not write."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unknown .npy version {version}")


def _read_npy(file: Path) -> np.ndarray:
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            shape, _, dtype = _npy_header(f)
            offset = f.tell()
        if dtype.hasobject:
            raise DataError(f"{file.name} holds Python objects, which are never loaded (unsafe); save plain "
                            "numeric arrays with numpy.save")
        claimed = dtype.itemsize * int(np.prod(shape, dtype=np.int64)) if shape else dtype.itemsize
        if claimed > size - offset:
            raise DataError(f"{file.name}: its header claims {claimed:,} bytes ({'x'.join(map(str, shape))} "
                            f"{dtype}) but the file holds {size - offset:,}; the file is damaged or not a plain .npy")
        return np.load(file, mmap_mode="r" if claimed else None, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as e:
        raise DataError(f"{file.name} is not a valid .npy file ({' '.join(str(e).split())[:200]}); "
                        "save it with numpy.save") from None


def _keras_dataset(name: str, fname: str, x, y, x_test, y_test, xk: str = "x_train", yk: str = "y_train") -> Dataset:
    x = _npz_inputs(x, fname, xk)
    y = _npz_targets(y, fname, yk)
    if len(x) != len(y):
        raise DataError(f"{fname}: {xk} has {len(x)} samples but {yk} has {len(y)}")
    if x_test is not None:
        x_test = _npz_inputs(x_test, fname, "x_test")
        y_test = _npz_targets(y_test, fname, "y_test")
        if len(x_test) != len(y_test):
            raise DataError(f"{fname}: x_test has {len(x_test)} samples but y_test has {len(y_test)}")
        if x_test.shape[1:] != x.shape[1:] or x_test.dtype != x.dtype:
            raise DataError(f"{fname}: x_test samples are {x_test.shape[1:]} but x_train samples "
                            f"{x.shape[1:]}; they must match")
        if y_test.shape[1:] != y.shape[1:] or (y.dtype.kind == "f") != (y_test.dtype.kind == "f"):
            raise DataError(f"{fname}: y_test and y_train hold different kinds of targets")

    if y.dtype.kind in "iub":
        y, y_test, class_names = encode_labels(y, y_test)
        k = len(class_names) if class_names else int(max(y.max(initial=0),
                                                          y_test.max(initial=0) if y_test is not None else 0)) + 1
        if k < 2:
            raise DataError(f"{fname}: {yk} has only one class; a model needs at least two")
        task = classification_task(k)
    else:
        y = y.astype(np.float32)
        y_test = None if y_test is None else y_test.astype(np.float32)
        check_finite(y, f"{fname} {yk}")
        if y_test is not None:
            check_finite(y_test, f"{fname} y_test")
        class_names, task = None, "regression"
    return Dataset(name=name, x=x, y=y, task=task, class_names=class_names, x_test=x_test, y_test=y_test,
                   description=f"{fname}: {len(x)} samples of shape {x.shape[1:]}"
                               + (f", {len(x_test)} test samples." if x_test is not None else "."))


def _check_npz_sizes(path: Path) -> None:
    """Refuse, before numpy allocates anything, arrays whose headers claim more data than the
    file holds, or compressed ones claiming more than MAX_NPZ_BYTES in all (numpy allocates what
    a header claims; stored members are memory-mapped, bounded by the file)."""
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
                    stored = info.compress_type == zipfile.ZIP_STORED
                    if claimed > info.file_size or (not stored and claimed > MAX_NPZ_BYTES - total):
                        name = info.filename.removesuffix(".npy")
                        raise DataError(f"{path.name}: the header of {name} claims {claimed:,} bytes "
                                        f"({'x'.join(map(str, shape))} {dtype}) but the file holds "
                                        f"{info.file_size:,}; the file is damaged or not a plain NPZ")
                    if not stored:
                        total += claimed
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - only a pre-check: np.load below reports what is wrong in its own words
        return


def _check_fits(a: np.ndarray, itemsize: int, fname: str, key: str) -> None:
    need = a.size * itemsize
    free = available_memory()
    if free is not None and need > free:
        raise DataError(f"{fname}: {key} ({'x'.join(map(str, a.shape))}) needs {_gib(need)} as "
                        f"{'float32' if itemsize == 4 else 'int64'}, more than the {_gib(free)} of memory "
                        "available; use fewer samples, or a machine with more memory")


def _npz_inputs(a: np.ndarray, fname: str, key: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{fname}: {key} holds {a.dtype} values; save numbers")
    if a.ndim < 2:
        raise DataError(f"{fname}: {key} must have a sample dimension and at least one feature "
                        f"dimension, got shape {a.shape}")
    tokens = a.dtype.kind in "iu" and a.dtype != np.uint8 and a.ndim == 2 and (a.size == 0 or a.min() >= 0)
    _check_fits(a, 8 if tokens else 4, fname, key)
    if a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)
    if tokens:
        return np.ascontiguousarray(a, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):   # values beyond float32 become inf: reported next
        a = np.ascontiguousarray(a, dtype=np.float32)
    if isinstance(a, np.memmap) or not a.flags.writeable or not a.flags.owndata:
        a = np.array(a, dtype=np.float32, copy=True)     # a memory-mapped float32 array: read into memory
    check_finite(a, f"{fname} {key}")
    return a


def _npz_targets(a: np.ndarray, fname: str, key: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{fname}: {key} holds {a.dtype} values; save numbers")
    a = np.asarray(a) if not isinstance(a, np.memmap) else np.array(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2 and a.shape[1] > 1 and len(a) and np.isin(a, (0, 1)).all() and (a.sum(axis=1) == 1).all():
        a = a.argmax(axis=1).astype(np.int64)    # one-hot rows -> class ids
    if a.ndim not in (1, 2):
        raise DataError(f"{fname}: {key} must be (N,) labels or (N, k) values, got shape {a.shape}")
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    return a
