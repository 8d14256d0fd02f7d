"""Fuzzing every loader with mutated files: a clean error (FormatError / DataError, one line naming
the file) or a valid load, never a traceback.

Graph JSON files and project zips go through `read_graph` / `load_project` and some through
`deepwire check` (in-process, and a few real `python main.py check` subprocesses); CSV, NPZ and
IDX files through `engine.runtime.data.load_dataset`. The mutations start from real files (the
templates, a saved project, valid datasets) and damage them byte by byte or field by field.

CI runs DEEPWIRE_FUZZ_EXAMPLES examples per loader (default 300); benchmarks/reliability_report.py
runs thousands and reads the counts this module writes to $DEEPWIRE_FUZZ_REPORT.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import cli
from engine.runtime.data import DataError, Dataset, load_dataset
from engine.runtime.data.idx import FILES
from engine.graph import FormatError, Graph
from engine.project import Project, load_project, read_graph, save_project
from engine.templates import TEMPLATE_DIR, load_template
from engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("DEEPWIRE_FUZZ_EXAMPLES", "300"))
# The suite's own run tries the same examples every time (a test suite passes or fails every time);
# a run that sets DEEPWIRE_FUZZ_EXAMPLES (benchmarks/reliability_report.py) explores new ones.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="DEEPWIRE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
# Fuzzing is the slow tier: hundreds of mutated files per loader.
pytestmark = pytest.mark.slow
TRIED: Counter = Counter()     # (loader, outcome) -> examples
WORK = Path(tempfile.mkdtemp(prefix="deepwire-fuzz-"))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    shutil.rmtree(WORK, ignore_errors=True)
    path = os.environ.get("DEEPWIRE_FUZZ_REPORT")
    if path:
        rows = {}
        for (loader, outcome), count in sorted(TRIED.items()):
            rows.setdefault(loader, {})[outcome] = count
        Path(path).write_text(json.dumps(rows, indent=2))


# ----------------------------------------------------------------------------- byte mutations

TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\x00", b"\xff", b"\xef\xbb\xbf", b"NaN", b"-Infinity",
          b"1e999", b"-0", b"null", b"true", b"9" * 400, b"9" * 5000, b'"\\ud800"', b"\n", b"PK\x03\x04",
          b"\x80\x04\x95", b'"format_version": 2', b'"nodes": {}', b'"port": -1', b"[" * 2000]


@st.composite
def mutated(draw, data: bytes, max_mutations: int = 4) -> bytes:
    """`data` with 1..max_mutations byte-level changes: flips, inserted tokens or random bytes,
    deleted or duplicated slices, truncation."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, max_mutations))):
        n = len(buf)
        kind = draw(st.sampled_from(["flip", "set", "insert", "token", "delete", "duplicate", "truncate"]))
        at = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and n:
            buf[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "token":
            buf[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "delete" and n:
            buf[at:at + draw(st.integers(1, 64))] = b""
        elif kind == "duplicate" and n:
            end = min(n, at + draw(st.integers(1, 256)))
            buf[at:at] = buf[at:end]
        elif kind == "truncate":
            del buf[at:]
    return bytes(buf)


def one_line_naming(message: str, name: str | None) -> None:
    assert message and "\n" not in message and len(message) < 1000, message
    if name is not None:
        assert name in message, f"{message!r} does not name {name!r}"


# ----------------------------------------------------------------------------- graph JSON files

TEMPLATE_TEXTS = [p.read_bytes() for p in sorted(TEMPLATE_DIR.glob("*.json"))]
TEMPLATE_TEXTS += [Graph.from_json(t.decode()).to_json(indent=None).encode() for t in TEMPLATE_TEXTS[:3]]


@FUZZ
@given(st.sampled_from(TEMPLATE_TEXTS).flatmap(mutated))
def test_mutated_graph_files_load_or_fail_cleanly(data):
    path = WORK / "graph.json"
    path.write_bytes(data)
    try:
        graph = read_graph(path)
    except FormatError as exc:
        one_line_naming(str(exc), None)          # Graph.from_json's messages; callers add the file name
        TRIED["graph JSON", "clean error"] += 1
        return
    assert isinstance(graph, Graph)
    TRIED["graph JSON", "valid load"] += 1


# ----------------------------------------------------------------------------- project zips

def base_project() -> bytes:
    graph = load_template("digits_mlp")
    weights = {"dense.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "dense.bias": torch.ones(3)}
    runs = [{"id": 1, "history": [{"epoch": 1, "loss": 0.5}], "test": {"accuracy": 0.9}}]
    path = WORK / "base.deepwire"
    save_project(path, Project(graph, TrainConfig(epochs=4), weights, runs, "digits"))
    return path.read_bytes()


BASE_PROJECT = base_project()
with zipfile.ZipFile(io.BytesIO(BASE_PROJECT)) as _zf:
    BASE_MEMBERS = {i.filename: _zf.read(i) for i in _zf.infolist()}
HOSTILE_NAMES = ["../x.json", "/abs.json", "a/../../b", "C:/x", "x.pkl", "dir/", "ok.txt", "graph.json",
                 "weights.safetensors", "history.json", "config.json", "\x00name", "ünïcode.json", "a" * 300]
METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


@st.composite
def project_zips(draw) -> bytes:
    """A project zip damaged at the byte level, or rebuilt with members mutated, dropped, added,
    renamed or stored with another compression method."""
    if draw(st.integers(0, 2)) == 0:
        return draw(mutated(BASE_PROJECT, 6))
    members = dict(BASE_MEMBERS)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["mutate", "mutate", "mutate", "drop", "add", "replace_json"]))
        name = draw(st.sampled_from(sorted(members))) if members else "graph.json"
        if action == "mutate" and name in members:
            members[name] = draw(mutated(members[name]))
        elif action == "drop":
            members.pop(name, None)
        elif action == "add":
            members[draw(st.sampled_from(HOSTILE_NAMES))] = draw(st.binary(max_size=64) | st.sampled_from(
                [b"\x80\x04\x95\x00", b"{}", b"[]", BASE_MEMBERS["weights.safetensors"]]))
        else:
            members[name] = json.dumps(draw(st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                max_leaves=12))).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, raw in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = draw(st.sampled_from(METHODS))
            if draw(st.integers(0, 9)) == 0:
                info.external_attr = draw(st.sampled_from([0o120777 << 16, 0o100644 << 16, 0o040755 << 16]))
            zf.writestr(info, raw)
    return buffer.getvalue()


def load_project_file(data: bytes, name: str = "fuzz.deepwire") -> str:
    path = WORK / name
    path.write_bytes(data)
    try:
        project = load_project(path)
    except FormatError as exc:
        one_line_naming(str(exc), None if str(exc).startswith(str(WORK)) else name)
        return "clean error"
    assert isinstance(project.graph, Graph) and isinstance(project.config, TrainConfig)
    assert isinstance(project.runs, list)
    assert project.weights is None or all(isinstance(v, torch.Tensor) for v in project.weights.values())
    return "valid load"


@FUZZ
@given(project_zips())
def test_mutated_project_zips_load_or_fail_cleanly(data):
    TRIED["project zip", load_project_file(data)] += 1


# ----------------------------------------------------------------------------- deepwire check, in-process

@settings(FUZZ, max_examples=max(EXAMPLES // 3, 20))
@given(st.sampled_from(TEMPLATE_TEXTS).flatmap(mutated) | project_zips())
def test_check_command_never_shows_a_traceback(data):
    path = WORK / ("check.deepwire" if data[:2] == b"PK" else "check.json")
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(["check", str(path)])
    finally:
        sys.stdout, sys.stderr = old
    assert code in (0, 1, 2), code
    if code == 2:
        line = err.getvalue()
        assert line.count("\n") == 1 and line.startswith("deepwire: cannot read ") and path.name in line, line
    TRIED["deepwire check (in-process)", {0: "ok", 1: "graph has errors", 2: "clean error"}[code]] += 1


# ----------------------------------------------------------------------------- CSV

CELLS = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["", "NA", "nan", "inf", "-1e400", "1e400", "cat", "dog", "a,b", '"q"', "x\ty",
                                   "1_000", "0x10", " 3 ", "\u00e9", "\x00", "1" * 500]),
                  st.text(max_size=6))


@st.composite
def plausible_csv(draw) -> str:
    """A well-formed table (numeric and text features, a class or value target), now and then
    with one cell, row or header damaged."""
    rows = draw(st.integers(2, 15))
    numeric = draw(st.integers(0, 3))
    text_cols = draw(st.integers(0, 2))
    header = [f"f{i}" for i in range(numeric)] + [f"t{i}" for i in range(text_cols)] + ["target"]
    body = []
    for r in range(rows):
        row = [repr(draw(st.floats(-1e6, 1e6, allow_nan=False))) for _ in range(numeric)]
        row += [draw(st.sampled_from(["red", "green", "blue"])) for _ in range(text_cols)]
        row.append(draw(st.sampled_from(["0", "1", "2", "yes", "no", "3.5", str(r)])))
        body.append(row)
    if draw(st.booleans()):
        r = draw(st.integers(0, rows - 1))
        c = draw(st.integers(0, len(header) - 1))
        body[r][c] = draw(CELLS)
    return "\n".join(",".join(row) for row in [header] + body)


@st.composite
def csv_files(draw) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=200))
    if draw(st.booleans()):
        data = draw(plausible_csv()).encode("utf-8", "replace")
        return draw(mutated(data)) if draw(st.integers(0, 4)) == 0 else data
    cols = draw(st.integers(1, 5))
    rows = draw(st.integers(0, 12))
    header = draw(st.lists(st.sampled_from(["a", "b", "c", "label", "", "a", "1", "x y"]) | st.text(max_size=5),
                           min_size=cols, max_size=cols))
    lines = [header] + [[draw(CELLS) for _ in range(cols + draw(st.sampled_from([0, 0, 0, 0, -1, 1])))]
                        for _ in range(rows)]
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    text = "\n".join(delimiter.join(row) for row in lines)
    data = text.encode("utf-8", errors="surrogatepass") if draw(st.booleans()) else text.encode("utf-8", "replace")
    if draw(st.integers(0, 3)) == 0:
        data = draw(mutated(data))
    return data


def check_dataset(ds: Dataset) -> None:
    assert len(ds.x) == len(ds.y) and ds.x.ndim >= 2
    assert ds.x.dtype in (np.float32, np.int64)
    if ds.x.dtype == np.float32:
        assert np.isfinite(ds.x).all()
    if ds.task != "regression":
        assert ds.y.dtype == np.int64 and ds.num_classes >= 2


def load_data(path: Path, loader: str, name: str) -> None:
    try:
        ds = load_dataset(str(path))
    except DataError as exc:
        one_line_naming(str(exc), name)
        TRIED[loader, "clean error"] += 1
        return
    check_dataset(ds)
    TRIED[loader, "valid load"] += 1


@FUZZ
@given(csv_files())
def test_mutated_csv_files_load_or_fail_cleanly(data):
    path = WORK / "table.csv"
    path.write_bytes(data)
    load_data(path, "CSV", "table.csv")


# ----------------------------------------------------------------------------- NPZ

DTYPES = ["uint8", "int8", "int32", "int64", "float16", "float32", "float64", "bool", "complex64", "U3", "S2",
          "object", "datetime64[s]"]


@st.composite
def arrays(draw, leading: int | None = None):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 4))
    shape = [draw(st.integers(0, 5)) for _ in range(ndim)]
    if leading is not None and ndim:
        shape[0] = leading
    size = int(np.prod(shape)) if shape else 1
    if dtype == "object":
        return np.array([None] * size, dtype=object).reshape(shape)
    raw = draw(st.binary(min_size=size * 16, max_size=size * 16))
    flat = np.frombuffer(raw, dtype=np.uint8)[: size * np.dtype(dtype).itemsize]
    try:
        return flat.view(dtype).reshape(shape)
    except (ValueError, TypeError):
        return np.zeros(shape, dtype=dtype)


@st.composite
def plausible_arrays(draw) -> dict:
    """Keras' layout with the right lengths: images (channels last or first), features or token
    ids; integer, one-hot or float labels; sometimes a test split; sometimes one thing wrong."""
    n, m = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(4,), (3, 3), (2, 2, 1), (2, 2, 3), (1, 2, 2), (5, 2)]))
    dtype = draw(st.sampled_from(["float32", "uint8", "int64", "float64"]))
    x = lambda k: (np.arange(k * int(np.prod(shape))) % 7).astype(dtype).reshape(k, *shape)  # noqa: E731
    kind = draw(st.sampled_from(["int", "onehot", "float", "bool"]))

    def y(k):
        ids = np.arange(k) % 3
        return {"int": ids, "onehot": np.eye(3, dtype=np.float32)[ids], "float": ids * 0.5,
                "bool": ids == 1}[kind]
    out = {"x_train": x(n), "y_train": y(n)}
    if draw(st.booleans()):
        out.update(x_test=x(m), y_test=y(m))
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(out)))
        change = draw(st.sampled_from(["nan", "length", "dtype", "rank"]))
        a = out[key]
        if change == "nan" and a.dtype.kind == "f" and a.size:
            a = a.copy()
            a.flat[0] = np.nan
        elif change == "length":
            a = a[:-1]
        elif change == "dtype":
            a = a.astype("complex64" if draw(st.booleans()) else "U2")
        else:
            a = a.reshape(-1) if a.ndim > 1 else a[:, None, None]
        out[key] = a
    return out


def npy_claiming(shape: tuple, descr: str) -> bytes:
    """An .npy member whose header claims `shape` but that holds a few bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


@st.composite
def npz_files(draw) -> bytes:
    if draw(st.integers(0, 4)) == 0:     # members damaged inside an intact zip: headers claiming terabytes,
                                         # mutated .npy bytes, non-.npy members
        arrays_ = {k: io.BytesIO() for k in ("x_train", "y_train")}
        for a, buffer in zip((np.zeros((3, 2), np.float32), np.zeros(3, np.int64)), arrays_.values()):
            np.save(buffer, a)
        members = {f"{k}.npy": b.getvalue() for k, b in arrays_.items()}
        shape = tuple(draw(st.lists(st.integers(0, 2**40), min_size=1, max_size=3)))
        target = draw(st.sampled_from(sorted(members)))
        members[target] = draw(st.sampled_from([npy_claiming(shape, draw(st.sampled_from(["<f4", "|u1"]))),
                                                draw(mutated(members[target])), b"\x80\x04\x95 not npy"]))
        if draw(st.booleans()):            # a member without the .npy suffix: NpzFile hands back raw bytes
            members[target[:-4]] = members.pop(target)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, raw in members.items():
                zf.writestr(name, raw)
        return buffer.getvalue()
    if draw(st.booleans()):
        buffer = io.BytesIO()
        np.savez(buffer, **draw(plausible_arrays()))
        data = buffer.getvalue()
        return draw(mutated(data)) if draw(st.integers(0, 4)) == 0 else data
    n = draw(st.integers(0, 6))
    keys = draw(st.lists(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "x", "y", "other"]),
                         min_size=0, max_size=5, unique=True))
    if draw(st.booleans()):
        keys = ["x_train", "y_train"] + [k for k in keys if k not in ("x_train", "y_train")]
    contents = {k: draw(arrays(leading=n if draw(st.integers(0, 3)) else None)) for k in keys}
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **contents)
    data = buffer.getvalue()
    if draw(st.integers(0, 3)) == 0:
        data = draw(mutated(data))
    return data


@FUZZ
@given(npz_files())
def test_mutated_npz_files_load_or_fail_cleanly(data):
    path = WORK / "arrays.npz"
    path.write_bytes(data)
    load_data(path, "NPZ", "arrays.npz")


# ----------------------------------------------------------------------------- IDX

def idx_bytes(array: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


@st.composite
def idx_folders(draw) -> dict[str, bytes]:
    """The four IDX files of a small dataset, some damaged: wrong magic, type, dimensions,
    truncated or padded bodies, gzip or not, byte mutations."""
    n, m = draw(st.integers(0, 6)), draw(st.integers(0, 4))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    images = lambda k: np.arange(k * h * w, dtype=np.uint8).reshape(k, h, w)  # noqa: E731
    labels = lambda k: (np.arange(k) % 3).astype(np.uint8)  # noqa: E731
    files = {FILES[0]: idx_bytes(images(n), 0x08), FILES[1]: idx_bytes(labels(n), 0x08),
             FILES[2]: idx_bytes(images(m), 0x08), FILES[3]: idx_bytes(labels(m), 0x08)}
    for base in draw(st.lists(st.sampled_from(FILES), max_size=3, unique=True)):
        kind = draw(st.sampled_from(["mutate", "header", "body", "type", "float-labels", "huge-dims"]))
        raw = files[base]
        if kind == "mutate":
            raw = draw(mutated(raw))
        elif kind == "header":
            raw = draw(st.binary(min_size=4, max_size=4)) + raw[4:]
        elif kind == "body":
            raw = raw[:draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=8))
        elif kind == "type":
            raw = raw[:2] + bytes([draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]))]) + raw[3:]
        elif kind == "float-labels":
            raw = idx_bytes(np.linspace(0, 2, n if base == FILES[1] else m).astype(np.float32), 0x0D)
        else:
            ndim = raw[3] if len(raw) > 3 and 1 <= raw[3] <= 4 else 1
            raw = bytes([0, 0, 0x08, ndim]) + b"\xff\xff\xff\xff" * ndim + raw[4 + 4 * ndim:]
        files[base] = raw
    if draw(st.booleans()):
        files = {k + ".gz": gzip.compress(v, mtime=0) if draw(st.integers(0, 5)) else v[:10]
                 for k, v in files.items()}
    return files


@FUZZ
@given(idx_folders())
def test_mutated_idx_files_load_or_fail_cleanly(files):
    folder = WORK / "idx"
    if folder.exists():
        for p in folder.iterdir():
            p.unlink()
    folder.mkdir(exist_ok=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    try:
        ds = load_dataset(str(folder))
    except DataError as exc:
        message = str(exc)
        one_line_naming(message, None)
        assert "idx" in message or "ubyte" in message, message
        TRIED["IDX", "clean error"] += 1
        return
    check_dataset(ds)
    TRIED["IDX", "valid load"] += 1


# ----------------------------------------------------------------------------- real subprocesses

def test_python_main_py_check_on_damaged_files_prints_one_line(tmp_path):
    """The same as above through `python main.py check`: a handful of real processes."""
    cases = {
        "flipped.json": TEMPLATE_TEXTS[0].replace(b'"nodes"', b'"nodes\xff"', 1),
        "garbled.deepwire": BASE_PROJECT[:200] + bytes(64) + BASE_PROJECT[264:],
    }
    if os.environ.get("DEEPWIRE_FUZZ_SUBPROCESSES"):     # the report runs a few more
        cases.update({"truncated.json": TEMPLATE_TEXTS[1][: len(TEMPLATE_TEXTS[1]) // 2],
                      "truncated.deepwire": BASE_PROJECT[: len(BASE_PROJECT) * 2 // 3],
                      "bomb-claim.deepwire": BASE_PROJECT.replace(b"graph.json", b"graph.jso\xff", 1),
                      "pickled.deepwire": _with_pickle(BASE_PROJECT)})
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")

    def run(name):
        return subprocess.run([sys.executable, str(ROOT / "main.py"), "check", str(tmp_path / name)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(cases, pool.map(run, cases)))
    for name, proc in results.items():
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr)
        assert proc.stderr.count("\n") == 1 and name in proc.stderr, proc.stderr
        TRIED["python main.py check (subprocess)", "clean error"] += 1


def _with_pickle(data: bytes) -> bytes:
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("model.pkl", b"\x80\x04\x95\x00\x00")
    return buffer.getvalue()
