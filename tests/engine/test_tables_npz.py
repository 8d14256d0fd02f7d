"""NPZ members stored uncompressed, and .npy files, are memory-mapped: the same dataset as reading
them whole; headers that claim more than the file holds are refused before anything is allocated."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from engine.runtime.data import DataError, load_dataset, tables


def arrays(rng):
    return dict(x_train=rng.integers(0, 255, (40, 6, 6, 3), dtype=np.uint8), y_train=rng.integers(0, 3, 40),
                x_test=rng.integers(0, 255, (9, 6, 6, 3), dtype=np.uint8), y_test=rng.integers(0, 3, 9))


def same(a, b):
    for field in ("x", "y", "x_test", "y_test"):
        u, v = getattr(a, field), getattr(b, field)
        assert type(u) is np.ndarray and u.dtype == v.dtype and np.array_equal(u, v), field
    assert a.task == b.task and a.class_names == b.class_names


def test_stored_npz_members_are_memory_mapped_and_load_like_compressed_ones(tmp_path, monkeypatch):
    data = arrays(np.random.default_rng(0))
    np.savez(tmp_path / "plain.npz", **data)
    np.savez_compressed(tmp_path / "packed.npz", **data)
    mapped = []
    real = tables._memmap_stored
    monkeypatch.setattr(tables, "_memmap_stored", lambda path, info: mapped.append(info.filename) or real(path, info))
    plain = load_dataset(str(tmp_path / "plain.npz"))
    assert sorted(mapped) == ["x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]
    mapped.clear()
    packed = load_dataset(str(tmp_path / "packed.npz"))
    assert mapped == []
    same(plain, packed)
    assert plain.x.shape == (40, 3, 6, 6) and plain.x.dtype == np.float32
    assert plain.x.flags.c_contiguous and plain.x.flags.writeable
    assert np.array_equal(plain.x[5, 2], data["x_train"][5, :, :, 2].astype(np.float32))


def test_fortran_ordered_and_float32_members_map_correctly(tmp_path):
    rng = np.random.default_rng(1)
    x = np.asfortranarray(rng.normal(size=(30, 5)).astype(np.float32))
    y = rng.normal(size=30)
    np.savez(tmp_path / "f.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "f.npz"))
    assert np.array_equal(ds.x, x) and ds.x.flags.owndata and ds.task == "regression"


def test_a_stored_member_whose_header_lies_is_refused(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1000, 1000)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(3, dtype=np.int64))
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("x_train.npy", header.getvalue() + bytes(64))
        zf.writestr("y_train.npy", labels.getvalue())
    with pytest.raises(DataError, match=r"lies.npz: the header of x_train claims 4,000,000 bytes"):
        load_dataset(str(path))


def test_a_folder_of_npy_files_loads_memory_mapped(tmp_path):
    data = arrays(np.random.default_rng(2))
    folder = tmp_path / "set"
    folder.mkdir()
    for key, a in data.items():
        np.save(folder / f"{key}.npy", a)
    np.savez(tmp_path / "same.npz", **data)
    ds = load_dataset(str(folder / "y_train.npy"))
    same(ds, load_dataset(str(tmp_path / "same.npz")))
    assert ds.name == "set" and len(ds.x_test) == 9


def test_npy_files_that_lie_or_lack_a_partner_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"x.npy: the folder .* has no y.npy"):
        load_dataset(str(tmp_path / "x.npy"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**9,)})
    (tmp_path / "y.npy").write_bytes(header.getvalue() + bytes(32))
    with pytest.raises(DataError, match=r"y.npy: its header claims 8,000,000,000 bytes"):
        load_dataset(str(tmp_path / "x.npy"))
    np.save(tmp_path / "weights.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"weights.npy: a .npy dataset is a folder of x_train.npy"):
        load_dataset(str(tmp_path / "weights.npy"))
    np.save(tmp_path / "y.npy", np.array(["a", "b"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"y.npy holds Python objects"):
        load_dataset(str(tmp_path / "x.npy"))
