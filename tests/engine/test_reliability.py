"""Never lose work, never run what a file says: saves survive SIGKILL, hostile archives are refused.

The kill test: a helper process (engine imported once) forks a child that saves a project over
and over, alternating two versions, and SIGKILLs it at a random moment; 100 times (set
DEEPWIRE_KILL_CYCLES for more). After every kill the file must open and equal one of the two.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import random
import stat
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from engine import cli
from engine.graph import FormatError
from engine.project import MAX_ENTRIES, MAX_SMALL_JSON, Project, load_project, read_graph, save_project
from engine.templates import load_template
from engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
POSIX = os.name == "posix"


def version(i: int) -> Project:
    """Two clearly different versions of one project, each about a megabyte (so a kill often lands mid-write)."""
    graph = load_template("digits_mlp" if i == 0 else "fashion_mnist_mlp")
    gen = torch.Generator().manual_seed(i)
    weights = {"layer.weight": torch.randn(512, 512, generator=gen), "layer.bias": torch.full((512,), float(i))}
    runs = [{"id": i, "history": [{"epoch": e, "loss": 1.0 / (e + 1 + i)} for e in range(50)]}]
    return Project(graph, TrainConfig(epochs=3 + i, lr=0.01 * (i + 1)), weights, runs, f"dataset-{i}")


def same(a: Project, b: Project) -> bool:
    return (a.graph.to_dict() == b.graph.to_dict() and a.config == b.config and a.runs == b.runs
            and a.dataset == b.dataset and a.weights.keys() == b.weights.keys()
            and all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights))


KILLER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from engine.project import load_project, save_project

    target = Path(sys.argv[1])
    versions = [load_project(sys.argv[2]), load_project(sys.argv[3])]
    started = time.perf_counter()
    for i in range(6):
        save_project(target, versions[i % 2])
    print(f"save_s {(time.perf_counter() - started) / 6}", flush=True)
    for line in sys.stdin:
        delay = float(line)
        pid = os.fork()
        if pid == 0:                      # the child: save, alternating the versions, until killed
            i = 1
            while True:
                save_project(target, versions[i % 2])
                i += 1
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        print(f"killed {int(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL)}", flush=True)
""")


def run_kill_test(folder: Path, cycles: int, seed: int = 0) -> dict:
    """Kill a saving process `cycles` times; returns the figures. Asserts after every kill."""
    rng = random.Random(seed)
    a, b = version(0), version(1)
    paths = [folder / "a.deepwire", folder / "b.deepwire"]
    for path, project in zip(paths, (a, b)):
        save_project(path, project)
    target = folder / "work" / "project.deepwire"
    target.parent.mkdir()
    save_project(target, a)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    helper = subprocess.Popen([sys.executable, "-c", KILLER, str(target), *map(str, paths)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    figures = {"cycles": 0, "old_or_new": 0, "equal_a": 0, "equal_b": 0, "mid_write": 0, "sigkilled": 0}
    started = time.perf_counter()
    try:
        save_s = float(helper.stdout.readline().split()[1])
        figures["save_ms"] = round(save_s * 1000, 2)
        for _ in range(cycles):
            delay = rng.uniform(0.0, 6 * save_s)        # anywhere within the first few saves
            helper.stdin.write(f"{delay}\n")
            helper.stdin.flush()
            reply = helper.stdout.readline().split()
            assert reply and reply[0] == "killed", reply
            figures["sigkilled"] += int(reply[1])
            figures["cycles"] += 1
            leftovers = [p for p in target.parent.iterdir() if p.name != target.name]
            figures["mid_write"] += bool(leftovers)     # the kill landed inside a save
            for p in leftovers:
                p.unlink()
            loaded = load_project(target)               # must open: never a half-written file
            is_a, is_b = same(loaded, a), same(loaded, b)
            assert is_a or is_b, f"after kill {figures['cycles']} the file is neither version"
            figures["equal_a"] += is_a
            figures["equal_b"] += is_b
            figures["old_or_new"] += 1
    finally:
        helper.stdin.close()
        helper.wait(30)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    return figures


@pytest.mark.slow
@pytest.mark.skipif(not POSIX, reason="fork and SIGKILL are POSIX")
def test_a_save_killed_at_random_moments_leaves_the_old_or_the_new_file_whole(tmp_path):
    cycles = int(os.environ.get("DEEPWIRE_KILL_CYCLES", "100"))
    figures = run_kill_test(tmp_path, cycles, seed=int(os.environ.get("DEEPWIRE_KILL_SEED", "0")))
    assert figures["cycles"] == figures["old_or_new"] == figures["sigkilled"] == cycles
    assert figures["equal_a"] and figures["equal_b"], figures     # the kills did land on both sides
    assert figures["mid_write"] > cycles // 10, figures            # and often in the middle of a save
    report = os.environ.get("DEEPWIRE_KILL_REPORT")
    if report:
        Path(report).write_text(json.dumps(figures, indent=2))


# ----------------------------------------------------------------------------- hostile archives

def project_bytes(project: Project | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        p = project or Project(load_template("digits_mlp"))
        zf.writestr("project.json", json.dumps({"format": "deepwire-project", "format_version": 1}))
        zf.writestr("graph.json", p.graph.to_json())
        zf.writestr("config.json", json.dumps(p.config.to_dict()))
    return buffer.getvalue()


def with_member(name: str | zipfile.ZipInfo, data: bytes, base: bytes | None = None) -> bytes:
    """A valid project zip with one more member."""
    buffer = io.BytesIO(base or project_bytes())
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "a") as zf:
        warnings.simplefilter("ignore", UserWarning)     # "Duplicate name": that is the point of one case
        zf.writestr(name, data)
    return buffer.getvalue()


def patch_size(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the uncompressed size that the local and central headers of `name` declare."""
    raw = bytearray(data)
    encoded = name.encode()
    i = 0
    while (i := raw.find(b"PK\x03\x04", i)) != -1:
        if raw[i + 30:i + 30 + len(encoded)] == encoded:
            raw[i + 22:i + 26] = size.to_bytes(4, "little")
        i += 4
    i = 0
    while (i := raw.find(b"PK\x01\x02", i)) != -1:
        if raw[i + 46:i + 46 + len(encoded)] == encoded:
            raw[i + 24:i + 28] = size.to_bytes(4, "little")
        i += 4
    return bytes(raw)


class Payload:
    """Unpickling this would create the marker file: proof that the pickle never ran."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled(marker: Path) -> bytes:
    Payload.marker = str(marker)
    return pickle.dumps(Payload(), protocol=4)


def torch_saved() -> bytes:
    """What torch.save writes: a zip around a pickle (data.pkl)."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    return buffer.getvalue()


def symlink_member(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def deflate_bomb(size: int) -> bytes:
    """A project whose graph.json inflates to `size` bytes of spaces (a few hundred KB compressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.json", json.dumps({"format": "deepwire-project", "format_version": 1}))
        with zf.open(zipfile.ZipInfo("graph.json"), "w", force_zip64=True) as f:
            chunk = b" " * (1 << 20)
            for _ in range(size // len(chunk)):
                f.write(chunk)
            f.write(b"{}")
    return buffer.getvalue()


HOSTILE = {
    # case: (bytes builder taking the tmp folder, phrase in the one-line refusal)
    "path-traversal": (lambda t: with_member("../../escaped.json", b"{}"), "unsafe path"),
    "path-traversal-inside": (lambda t: with_member("weights/../../../etc/cron.d/x", b"{}"), "unsafe path"),
    "absolute-path": (lambda t: with_member("/etc/passwd", b"root"), "unsafe path"),
    "windows-drive": (lambda t: with_member("C:/Windows/evil.json", b"{}"), "unsafe path"),
    "backslash-traversal": (lambda t: with_member("..\\..\\evil.json", b"{}"), "unsafe path"),
    "control-character-name": (lambda t: with_member("evil\x1b[2J.json", b"{}"), "unusual name"),
    "symlink-member": (lambda t: with_member(symlink_member("notes.txt", "/etc/passwd"), b"/etc/passwd"),
                       "symbolic link"),
    "symlink-as-graph": (lambda t: with_member(symlink_member("history.json", "/etc/passwd"), b"/etc/passwd"),
                         "symbolic link"),
    "pickle-member": (lambda t: with_member("model.pkl", pickled(t / "ran")), "pickle"),
    "pickle-unknown-name": (lambda t: with_member("extra.dat", pickled(t / "ran")), "pickle"),
    "torch-save-member": (lambda t: with_member("model.pt", torch_saved()), "pickle"),
    "torch-save-as-weights": (lambda t: with_member("weights.safetensors", torch_saved()), "pickle"),
    "pickle-as-weights": (lambda t: with_member("weights.safetensors", pickled(t / "ran")), "pickle"),
    "zip-bomb-declared": (lambda t: deflate_bomb(MAX_SMALL_JSON + 2**20), "too large"),
    "zip-bomb-lying-header": (lambda t: patch_size(deflate_bomb(32 * 2**20), "graph.json", 2), "damaged"),
    "claims-gigabytes": (lambda t: patch_size(project_bytes(), "graph.json", 3 * 2**30), "too large"),
    "settings-claim-gigabytes": (lambda t: patch_size(project_bytes(), "config.json", 4_000_000_000), "too large"),
    "duplicate-member": (lambda t: with_member("graph.json", b'{"format_version": 1}'), "twice"),
    "too-many-members": (lambda t: _many_members(), "at most"),
    "encrypted-member": (lambda t: _encrypted(), "encrypted"),
}


def _many_members() -> bytes:
    data = project_bytes()
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as zf:
        for i in range(MAX_ENTRIES):
            zf.writestr(f"note{i}.txt", b"x")
    return buffer.getvalue()


def _encrypted() -> bytes:
    raw = bytearray(with_member("notes.txt", b"secret"))
    i = raw.rfind(b"PK\x01\x02")          # the central header of notes.txt (the last member)
    raw[i + 8] |= 0x1
    return bytes(raw)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archive_is_refused_in_one_line_and_nothing_runs(case, tmp_path, capsys):
    build, phrase = HOSTILE[case]
    path = tmp_path / "hostile.deepwire"
    path.write_bytes(build(tmp_path))
    started = time.perf_counter()
    with pytest.raises(FormatError) as info:
        load_project(path)
    assert time.perf_counter() - started < 5, "refused without inflating the bomb"
    message = str(info.value)
    assert phrase in message and "\n" not in message and len(message) < 300, message
    assert "hostile.deepwire" in message
    assert not (tmp_path / "ran").exists(), "a pickle ran"
    assert not (tmp_path.parent / "escaped.json").exists()
    code = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and phrase in err, err


def test_unknown_members_are_reported_not_read_and_the_project_loads(tmp_path):
    path = tmp_path / "newer.deepwire"
    path.write_bytes(with_member("thumbnail.png", b"\x89PNG not really"))
    project = load_project(path)
    assert project.graph.find("dense") is not None
    assert project.notes == ["newer.deepwire: ignored 'thumbnail.png', which this version of Deepwire does not use"]


def test_a_temporary_file_left_by_a_killed_save_is_removed_by_a_later_save(tmp_path):
    from engine.fileio import STALE_TEMP_S

    path = tmp_path / "work.deepwire"
    save_project(path, Project(load_template("digits_mlp")))
    old = tmp_path / ".work.deepwire.abc123.tmp"          # what a save killed mid-write leaves
    old.write_bytes(b"half a zip")
    os.utime(old, (time.time() - STALE_TEMP_S - 60,) * 2)
    busy = tmp_path / ".work.deepwire.def456.tmp"         # another writer, still at it
    busy.write_bytes(b"being written")
    other = tmp_path / ".other.deepwire.ghi789.tmp"        # another file's: not ours to touch
    other.write_bytes(b"x")
    os.utime(other, (time.time() - STALE_TEMP_S - 60,) * 2)
    save_project(path, Project(load_template("digits_mlp")))
    assert not old.exists() and busy.exists() and other.exists()
    assert load_project(path).graph.find("dense") is not None


def test_epoch_weights_survive_save_and_load_and_damaged_ones_cost_only_themselves(tmp_path):
    from safetensors.torch import save

    project = Project(load_template("digits_mlp"), runs=[{"id": 1, "best_epoch": 2}, {"id": 2, "best_epoch": 1}])
    state = {"dense.weight": torch.arange(6.0).reshape(2, 3), "dense.bias": torch.ones(2)}
    project.keep_checkpoints(1, {1: state, 2: {k: v * 2 for k, v in state.items()}})
    project.keep_checkpoints(2, {1: {k: v * 3 for k, v in state.items()}})
    path = tmp_path / "epochs.deepwire"
    save_project(path, project)
    loaded = load_project(path)
    assert {run: sorted(epochs) for run, epochs in loaded.checkpoints.items()} == {1: [1, 2], 2: [1]}
    assert torch.equal(loaded.checkpoints[1][2]["dense.weight"], state["dense.weight"] * 2)
    assert loaded.notes == []

    path.write_bytes(with_member("checkpoints.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"))
    damaged = load_project(path)
    assert damaged.checkpoints == {} and damaged.graph.find("dense") is not None
    assert "epochs' weights are damaged" in damaged.notes[0]

    odd = save({"run1/epoch1/dense.bias": torch.ones(2), "weights_of_something_else": torch.ones(1)})
    path.write_bytes(with_member("checkpoints.safetensors", odd))
    read = load_project(path)
    assert list(read.checkpoints) == [1] and "ignored 1 tensor(s)" in read.notes[0]

    path.write_bytes(with_member("checkpoints.safetensors", pickle.dumps({"x": 1}, protocol=4)))
    with pytest.raises(FormatError, match="pickle"):
        load_project(path)


@pytest.mark.parametrize("name, phrase", [("history.json", "the run history was not read"),
                                          ("checkpoints.safetensors", "the saved epochs' weights were not read")])
def test_a_history_or_epoch_weights_claiming_gigabytes_cost_only_themselves(name, phrase, tmp_path):
    """Over their limits they are not read (nothing is inflated) and the project still opens with its weights."""
    weights = {"dense.weight": torch.ones(2, 2)}
    path = tmp_path / "claims.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights=weights))
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info))
    path.write_bytes(patch_size(with_member(name, b"[]", buffer.getvalue()), name, 4_000_000_000))
    started = time.perf_counter()
    project = load_project(path)
    assert time.perf_counter() - started < 5
    assert torch.equal(project.weights["dense.weight"], weights["dense.weight"])
    assert project.runs == [] and project.checkpoints == {}
    assert len(project.notes) == 1 and project.notes[0].startswith(f"claims.deepwire: {phrase} (4,000,000,000 bytes")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_project_trained_on_a_gpu_opens_on_a_machine_without_one(tmp_path):
    buffer = io.BytesIO(project_bytes())
    with zipfile.ZipFile(buffer) as src:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                raw = src.read(info)
                if info.filename == "config.json":
                    raw = json.dumps(dict(json.loads(raw), device="cuda:1", epochs=9)).encode()
                dst.writestr(info.filename, raw)
        data = out.getvalue()
    path = tmp_path / "gpu.deepwire"
    path.write_bytes(data)
    project = load_project(path)
    assert project.config.device == "auto" and project.config.epochs == 9
    assert "cuda:1" in project.notes[0] and "'auto'" in project.notes[0]


@pytest.mark.skipif(not POSIX, reason="FIFOs and /dev/zero are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_pipes_and_devices_are_refused_without_reading(kind, tmp_path):
    if kind == "fifo":
        path = tmp_path / "graph.json"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(FormatError, match="not a regular file"):
        read_graph(path)


def test_a_large_trained_project_is_checked_not_refused_as_a_large_graph(tmp_path, capsys):
    """read_graph's 64 MiB limit is for graph JSON; a project file is as large as its weights."""
    graph = load_template("digits_mlp")
    project = Project(graph, weights={"big": torch.zeros(17 * 2**20)})   # 68 MiB of weights
    path = tmp_path / "big.deepwire"
    save_project(path, project)
    assert path.stat().st_size > 64 * 2**20
    assert cli.main(["check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


# ----------------------------------------------------------------------------- data files: parsed, never executed

def test_npz_whose_header_claims_terabytes_is_refused_before_numpy_allocates(tmp_path):
    from engine.runtime.data import DataError, load_dataset

    header = io.BytesIO()
    import numpy as np

    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(3, dtype=np.int64))
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", header.getvalue() + bytes(64))
        zf.writestr("y_train.npy", labels.getvalue())
    with pytest.raises(DataError, match=r"claims.npz: the header of x_train claims 4,000,000,000,000 bytes"):
        load_dataset(str(path))


def test_npz_holding_a_pickle_never_runs_it(tmp_path):
    from engine.runtime.data import DataError, load_dataset

    path = tmp_path / "pickled.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", pickled(tmp_path / "ran"))      # np.load would unpickle with allow_pickle
        zf.writestr("y_train.npy", pickled(tmp_path / "ran"))
    with pytest.raises(DataError, match="pickled.npz"):
        load_dataset(str(path))
    assert not (tmp_path / "ran").exists()


def test_image_decompression_bomb_is_refused_naming_the_image(tmp_path):
    import struct
    import zlib

    from PIL import Image

    from engine.runtime.data import DataError, load_dataset

    folder = tmp_path / "pictures"
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(folder / name / "fine.png")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))
    (folder / "dogs" / "huge.png").write_bytes(bomb)
    with pytest.raises(DataError, match=r"image dogs.huge\.png claims to be larger than"):
        load_dataset(str(folder))


@pytest.mark.skipif(not POSIX, reason="FIFOs are POSIX")
def test_a_pipe_named_like_a_csv_is_refused_without_blocking(tmp_path):
    from engine.runtime.data import DataError, load_dataset

    path = tmp_path / "table.csv"
    os.mkfifo(path)
    with pytest.raises(DataError, match="table.csv is not a regular file"):
        load_dataset(str(path))


def test_a_csv_whose_table_cannot_fit_in_memory_is_refused_unread(tmp_path):
    from engine.runtime.data import DataError, load_dataset

    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.write(b"a,b,label\n" + b"1.5,2.5,cat\n" * 1000)
        f.truncate(2**40)                       # sparse: costs no disk, and must not be read
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"huge.csv holds about [\d,]+ rows of 3 columns: .* more than the"):
        load_dataset(str(path))
    assert time.perf_counter() - started < 1
