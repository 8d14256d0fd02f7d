"""Hostile Keras weights files: nothing outside the file is read (external storage, external and soft links,
virtual datasets) and nothing is read whose declared size the file cannot back (huge shapes, zip bombs). Each is
refused with one line naming the dataset, before any array is read."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine import cli
from engine.importers import ModelImportError, import_keras

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[2]
POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
CONFIG = {"module": "keras", "class_name": "Sequential", "registered_name": None,
          "config": {"name": "small", "trainable": True, "dtype": POLICY, "layers": [
              {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
               "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "name": "input_layer"}},
              {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
               "config": {"name": "scores", "trainable": True, "dtype": POLICY, "units": 3, "activation": "linear",
                          "use_bias": True}}]}}
SECRET = b"TOP-SECRET-BYTES!" * 3   # 51 bytes; the kernel below reads 48 of them


def _weights(path: Path, kernel=None, **kernel_options) -> Path:
    with h5py.File(path, "w") as f:
        group = f.create_group("layers/dense/vars")
        if kernel is None:
            group.create_dataset("0", data=np.arange(12, dtype="float32").reshape(4, 3), **kernel_options)
        else:
            kernel(f, group)
        group.create_dataset("1", data=np.zeros(3, dtype="float32"))
    return path


def _keras(path: Path, weights: bytes, compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(CONFIG))
        zf.writestr("model.weights.h5", weights, compress_type=compress)
    return path


@pytest.fixture
def never_read(monkeypatch):
    """Reading any dataset's data fails the test: refusals come before reading."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{self.name} was read")
    monkeypatch.setattr(h5py.Dataset, "__getitem__", refuse)
    monkeypatch.setattr(h5py.Dataset, "read_direct", refuse)


def _refused(path_or_weights, match: str, **kwargs) -> str:
    with pytest.raises(ModelImportError, match=match) as info:
        if isinstance(path_or_weights, Path) and path_or_weights.suffix == ".keras":
            import_keras(path_or_weights, **kwargs)
        else:
            import_keras(CONFIG, weights=path_or_weights, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and "TOP-SECRET" not in message
    return message


def test_a_plain_file_imports(tmp_path):
    result = import_keras(CONFIG, weights=_weights(tmp_path / "ok.weights.h5"))
    assert result.weights["scores.weight"].T.flatten().tolist() == list(range(12))
    compressed = _weights(tmp_path / "gzip.weights.h5", compression="gzip", chunks=(4, 3))   # HDF5's own filter
    assert import_keras(CONFIG, weights=compressed).weights["scores.weight"].shape == (3, 4)


def test_external_storage_is_refused(tmp_path, never_read):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET)
    path = _weights(tmp_path / "external.weights.h5", lambda f, g: g.create_dataset(
        "0", shape=(4, 3), dtype="uint32", external=[(str(secret), 0, 48)]))
    _refused(path, r"dataset layers/dense/vars/0 keeps its data in another file .*secret\.bin.*refused")
    _refused(_keras(tmp_path / "external.keras", path.read_bytes()), r"layers/dense/vars/0 keeps its data in another")


def test_external_links_are_refused(tmp_path, never_read):
    other = _weights(tmp_path / "other.h5")
    path = tmp_path / "link.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("layers/dense")
        f["layers/dense/vars"] = h5py.ExternalLink(str(other), "/layers/dense/vars")
    _refused(path, r"layers/dense/vars is an external link to .*other\.h5.*refused")
    soft = tmp_path / "soft.weights.h5"
    with h5py.File(soft, "w") as f:
        f.create_dataset("stash/0", data=np.ones((4, 3), dtype="float32"))
        f.create_group("layers/dense")
        f["layers/dense/vars"] = h5py.SoftLink("/stash")
    _refused(soft, r"layers/dense/vars is a SoftLink; refused")


def test_virtual_datasets_are_refused(tmp_path, never_read):
    secret = tmp_path / "source.h5"
    with h5py.File(secret, "w") as f:
        f.create_dataset("data", data=np.frombuffer(SECRET[:48], dtype="uint32").reshape(4, 3))

    def virtual(f, group):
        layout = h5py.VirtualLayout(shape=(4, 3), dtype="uint32")
        layout[:] = h5py.VirtualSource(str(secret), "data", shape=(4, 3))
        group.create_virtual_dataset("0", layout)
    path = _weights(tmp_path / "virtual.weights.h5", virtual)
    _refused(path, r"dataset layers/dense/vars/0 is a virtual dataset .*refused")


def test_huge_declared_shapes_are_refused(tmp_path, never_read):
    huge = _weights(tmp_path / "huge.weights.h5", lambda f, g: g.create_dataset("0", shape=(2**20, 2**20),
                                                                                dtype="float32"))
    assert huge.stat().st_size < 2**20
    _refused(huge, r"dataset layers/dense/vars/0 declares 4,398,046,511,104 bytes .*more than the 4 GiB limit")
    big = _weights(tmp_path / "big.weights.h5", lambda f, g: g.create_dataset(
        "0", shape=(2**14, 2**14), dtype="float32", chunks=(256, 256), compression="gzip"))   # 1 GiB, none stored
    _refused(big, r"dataset layers/dense/vars/0 declares 1,073,741,824 bytes .*but stores 0")
    _refused(_keras(tmp_path / "huge.keras", huge.read_bytes()), r"layers/dense/vars/0 declares")

    def many(f, group):   # small arrays, each under the per-dataset floor, that add up past what the file can hold
        for i in range(120):
            f.create_dataset(f"filler/{i}", shape=(2**18,), dtype="float32")   # 1 MiB each, never written
        group.create_dataset("0", data=np.ones((4, 3), dtype="float32"))
    _refused(_weights(tmp_path / "many.weights.h5", many), r"takes its arrays past .* bytes, more than a file of "
                                                           "this size can hold")


def test_a_zip_bomb_member_is_refused_before_it_is_expanded(tmp_path, monkeypatch):
    path = _keras(tmp_path / "bomb.keras", b"\0" * (64 * 2**20), zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(
        getattr(name, "filename", name)) or real_open(self, name, *a, **k))
    message = _refused(path, r"bomb\.keras: model\.weights\.h5 would expand .* to 67,108,864; the file is damaged or "
                             "hostile, refused")
    assert "model.weights.h5" not in opened and message
    assert cli.main(["import", str(path), "-o", str(tmp_path / "out.json")]) == 2
    assert cli.main(["import", str(path), "--no-weights", "-o", str(tmp_path / "out.json")]) == 0   # never read


def test_a_member_that_expands_past_its_declared_size_is_refused(tmp_path):
    good = _weights(tmp_path / "ok.weights.h5").read_bytes()
    path = _keras(tmp_path / "liar.keras", good, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info, entry = zf.getinfo("model.weights.h5"), zf.start_dir
    while data[entry + 46:entry + 46 + len(info.filename)] != info.filename.encode():   # its central directory entry
        entry = data.index(b"PK\x01\x02", entry + 4)
    smaller = (len(good) // 2).to_bytes(4, "little")   # the data now holds twice what the headers declare
    assert data[entry + 24:entry + 28] == data[info.header_offset + 22:info.header_offset + 26] == \
        len(good).to_bytes(4, "little")
    data[entry + 24:entry + 28] = data[info.header_offset + 22:info.header_offset + 26] = smaller
    path.write_bytes(bytes(data))
    _refused(path, r"liar\.keras: model\.weights\.h5 (expands to more than|is damaged)")


@pytest.mark.slow
def test_refusing_the_largest_hostile_files_takes_little_memory(tmp_path):
    """In a fresh process: the peak RSS grows by a few MB while refusing a .keras whose weights member would
    expand 512 MiB from half a MB, and a weights file declaring 4 TiB."""
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w") as zf:   # 512 MiB of zeros deflate to ~0.5 MB: written in pieces
        zf.writestr("config.json", json.dumps(CONFIG))
        info = zipfile.ZipInfo("model.weights.h5")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as member:
            chunk = b"\0" * (64 * 2**20)
            for _ in range(8):
                member.write(chunk)
    huge = _weights(tmp_path / "huge.weights.h5", lambda f, g: g.create_dataset("0", shape=(2**20, 2**20),
                                                                                dtype="float32"))
    script = (
        "import json, resource, sys\n"
        "from engine.importers import ModelImportError, import_keras\n"
        f"config = json.loads({json.dumps(json.dumps(CONFIG))})\n"
        "import_keras(config)\n"   # warm: torch, the importer, codegen
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for args in ((sys.argv[1],), (config, sys.argv[2])):\n"
        "    try:\n"
        "        import_keras(*args)\n"
        "    except ModelImportError as exc:\n"
        "        print(exc, file=sys.stderr)\n"
        "    else:\n"
        "        sys.exit('imported')\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(bomb), str(huge)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert "would expand" in proc.stderr and "declares 4,398,046,511,104 bytes" in proc.stderr
    growth_mb = float(proc.stdout.strip().splitlines()[-1])
    assert growth_mb < 64, f"peak RSS grew by {growth_mb:.1f} MB"

