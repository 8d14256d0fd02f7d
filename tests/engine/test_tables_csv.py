"""CSV files read by pyarrow: the same datasets, and the same messages, as the Python csv-module
reader they replaced (kept as tables._load_csv_python, the reference here), on generated tables
and damaged ones; and what differs on purpose: no size limit, a refusal when the table cannot fit
in memory, the large-file messages, and a clear message when pyarrow is missing."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.runtime.data import DataError, load_dataset, tables

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def outcome(fn, path: Path):
    try:
        ds = fn(path)
    except DataError as e:
        return ("error", str(e))
    return ("ok", ds.x.dtype, ds.x.shape, ds.x.tobytes(), ds.y.dtype, ds.y.tobytes(), ds.task, ds.class_names,
            ds.feature_names, ds.description)


def arrow(path: Path):
    """The pyarrow reader alone (None when it would hand the file to the Python reader)."""
    import pyarrow.csv as pa_csv

    try:
        return outcome(lambda p: tables._load_csv_arrow(p, None, p.stat().st_size, True, pa_csv), path)
    except tables._Unsure:
        return None


CELL = st.one_of(st.integers(-3, 3).map(str), st.floats(-1e6, 1e6).map(lambda v: f"{v:.4g}"),
                 st.sampled_from(["", " ", "NA", "nan", "-nan", "inf", "1e400", "1_000", " 3 ", "1,5", "2,25",
                                  "red", "blue", "Red ", '"q"', '"a,b"', "x y", "\u00e9", "nan(1)", "٣", "null",
                                  "N/A", "3\t", "\x0c", "a\"b"]))


@st.composite
def tables_text(draw) -> str:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    cols = draw(st.integers(2, 4))
    header = draw(st.lists(st.sampled_from(["a", "b", "c", "label", "x y", "1", ""]), min_size=cols, max_size=cols,
                           unique=draw(st.booleans())))
    kinds = [draw(st.sampled_from(["int", "float", "comma", "text", "mixed"])) for _ in range(cols)]
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        row = []
        for kind in kinds:
            if kind == "int":
                row.append(str(draw(st.integers(0, 3))))
            elif kind == "float":
                row.append(f"{draw(st.floats(-100, 100)):.5g}")
            elif kind == "comma":
                row.append(f"{draw(st.floats(-100, 100)):.3f}".replace(".", ","))
            elif kind == "text":
                row.append(draw(st.sampled_from(["cat", "dog", " cat", "bird"])))
            else:
                row.append(draw(CELL))
        if draw(st.integers(0, 12)) == 0:
            row = row[:-1] if draw(st.booleans()) else row + ["9"]
        rows.append(row)
        if draw(st.integers(0, 15)) == 0:
            rows.append([""] * draw(st.integers(1, cols + 1)))
    quote = draw(st.integers(0, 5)) == 0
    lines = [delimiter.join(f'"{c}"' if quote and '"' not in c else c for c in r) for r in [header] + rows]
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    bom = "\ufeff" if draw(st.integers(0, 5)) == 0 else ""
    return bom + ending.join(lines) + (ending if draw(st.booleans()) else "")


@FUZZ
@given(tables_text())
def test_pyarrow_reads_generated_tables_as_the_python_reader_did(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("t") / "table.csv"
    path.write_bytes(text.encode("utf-8"))
    expected = outcome(tables._load_csv_python, path)
    assert outcome(tables.load_csv, path) == expected
    got = arrow(path)
    assert got is None or got == expected


def test_most_plain_tables_never_need_the_python_reader(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "plain.csv"
    rows = [f"{rng.normal():.6g},{rng.integers(0, 9)},{rng.choice(['a', 'b', 'c'])}, {rng.choice(['x', 'y'])}"
            for _ in range(500)]
    path.write_text("f,k,colour,label\n" + "\n".join(rows) + "\n")
    got = arrow(path)
    assert got is not None and got == outcome(tables._load_csv_python, path)
    ds = load_dataset(str(path))
    assert ds.feature_names == ["f", "k", "colour=a", "colour=b", "colour=c"]
    assert ds.class_names == ["x", "y"] and ds.task == "binary"


def test_quoted_cells_bom_crlf_and_decimal_commas_read_by_pyarrow(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeff\"size\";\"colour\";\"price\"\r\n\"1,5\";\"red\";\"10\"\r\n\"2,25\";\"blue\";\"12,5\"\r\n"
                     .encode("utf-8"))
    assert arrow(path) is not None
    ds = load_dataset(str(path))
    assert ds.feature_names == ["size", "colour=blue", "colour=red"]
    assert ds.x.tolist() == [[1.5, 0.0, 1.0], [2.25, 1.0, 0.0]]
    assert ds.y.tolist() == [10.0, 12.5] and ds.task == "regression"


def test_missing_values_are_counted_per_column_through_pyarrow(tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("a,b,label\n1,NA,x\n2, null ,y\n,3,x\n4,5,y\n")
    assert arrow(path) == ("error", "holes.csv has missing values in column 'a' (1 row), 'b' (2 rows); "
                                    "fill them in or remove those rows, then load again")


def test_large_files_get_pyarrows_reading_with_their_own_messages(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "PYTHON_READER_BYTES", 0)     # every file counts as large
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,5,y\n6,7,x\n")
    with pytest.raises(DataError, match=r"ragged.csv has 1 line whose number of values differs from the 3 columns "
                                        r"the header names \(the first: '3,4,5,y'\); fix those lines"):
        tables.load_csv(path)
    path = tmp_path / "binary.csv"
    path.write_bytes(b"a,b\n1,\x002\n3,4\n")
    with pytest.raises(DataError, match="binary.csv is not a text file"):
        tables.load_csv(path)
    path = tmp_path / "quoted.csv"
    path.write_text('a,label\n1,"two\nlines"\n2,one\n')
    ds = tables.load_csv(path)
    assert ds.class_names == ["one", "two\nlines"]


def test_a_table_too_large_for_memory_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "wide.csv"
    path.write_text("a,b,c,label\n" + "1.25,2,3,x\n1.5,2,3,y\n" * 1000)
    monkeypatch.setattr(tables, "available_memory", lambda: 20_000)
    with pytest.raises(DataError, match=r"wide.csv holds about 2,0\d\d rows of 4 columns: about 0.0 GiB as float32, "
                                        r"more than the 0.0 GiB of memory available"):
        load_dataset(str(path))
    monkeypatch.setattr(tables, "available_memory", lambda: 10**9)
    assert load_dataset(str(path)).x.shape == (2000, 3)


def test_a_csv_over_the_old_512_mib_limit_is_not_refused_for_its_size(tmp_path, monkeypatch):
    path = tmp_path / "long.csv"
    path.write_text("a,label\n" + "1,x\n2,y\n" * 10)
    monkeypatch.setattr(tables, "PYTHON_READER_BYTES", 0)
    real_stat = Path.stat

    class Huge:
        def __init__(self, st):
            self.st_size, self.st_mode = 600 * 2**20, st.st_mode

    monkeypatch.setattr(Path, "stat", lambda self, **kw: Huge(real_stat(self, **kw)) if self == path
                        else real_stat(self, **kw))
    assert tables.load_csv(path).x.shape == (20, 1)


def test_without_pyarrow_a_csv_asks_for_it(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,x\n2,y\n")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    with pytest.raises(DataError, match=r"reading t.csv needs pyarrow; install it with: pip install pyarrow"):
        load_dataset(str(path))


def test_a_large_table_written_by_several_threads_is_the_same(tmp_path, monkeypatch):
    """Past THREADED_FILL_BYTES the features are written by a thread per core: the same table."""
    import numpy as np

    from engine.runtime.data import tables

    rng = np.random.default_rng(1)
    rows = rng.normal(size=(60_000, 5)).round(4)          # several of pyarrow's blocks
    path = tmp_path / "big.csv"
    path.write_text("a,b,c,d,e,label\n" + "".join(
        ",".join(map(str, r)) + f",{'yes' if r[0] > 0 else 'no'}\n" for r in rows.tolist()))
    one = tables.load_csv(path)
    monkeypatch.setattr(tables, "THREADED_FILL_BYTES", 0)
    monkeypatch.setattr(tables.os, "cpu_count", lambda: 4)
    import concurrent.futures

    pools = []
    real = concurrent.futures.ThreadPoolExecutor
    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", lambda n: pools.append(n) or real(n))
    many = tables.load_csv(path)
    assert pools == [4], "the table was written by four threads"
    assert np.array_equal(one.x, many.x) and np.array_equal(one.y, many.y)
    assert np.allclose(many.x, rows.astype(np.float32))
