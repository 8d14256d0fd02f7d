"""The project file at its edges: numbers JSON cannot hold, settings this version cannot use, weights
holding NaN, what `check` reads, the memory a load or a save takes, and the permissions a save leaves."""
from __future__ import annotations

import json
import math
import os
import stat
import struct
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import cli
from engine.fileio import atomic_write_text
from engine.graph import FormatError
from engine.project import Project, load_project, load_project_graph, read_graph, save_project
from engine.templates import load_template
from engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
POSIX = os.name == "posix"


def strict_json(raw: bytes):
    """What a standard JSON reader (not Python's lenient one) makes of `raw`."""
    def refuse(name):
        raise ValueError(f"not standard JSON: {name}")
    return json.loads(raw, parse_constant=refuse)


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def rewrite(path: Path, replace: dict[str, bytes]) -> None:
    """Replace members of the project zip at `path` (a member mapped to None is dropped)."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, raw in members.items():
            if raw is not None:
                zf.writestr(name, raw)


# ----------------------------------------------------------------------------- non-finite numbers (issue 5)

def test_a_run_whose_metrics_overflowed_is_saved_with_null_and_reloads(tmp_path):
    runs = [{"id": 1, "stopped": "completed", "epochs_run": 2,
             "test": {"mse": float("inf"), "mae": np.float32("inf"), "r2": float("nan"), "loss": 0.5},
             "history": [{"epoch": 1, "loss": 3.0, "val_mse": float("-inf")},
                         {"epoch": 2, "loss": torch.tensor(float("nan")), "val_mse": np.float64("nan")}],
             "batch_losses": [1.0, float("inf"), 2.0]}]
    weights = {"dense.weight": torch.ones(3, 2)}
    path = tmp_path / "overflow.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights=weights, runs=runs))   # raised before
    strict_json(member(path, "history.json"))             # standard JSON: no Infinity or NaN tokens
    loaded = load_project(path)
    assert loaded.runs == [{"id": 1, "stopped": "completed", "epochs_run": 2,
                            "test": {"mse": None, "mae": None, "r2": None, "loss": 0.5},
                            "history": [{"epoch": 1, "loss": 3.0, "val_mse": None},
                                        {"epoch": 2, "loss": None, "val_mse": None}],
                            "batch_losses": [1.0, None, 2.0]}]
    assert torch.equal(loaded.weights["dense.weight"], weights["dense.weight"]) and loaded.notes == []
    save_project(path, loaded)
    assert load_project(path).runs == loaded.runs


def test_a_history_holding_1e400_or_nan_tokens_loads_and_saves_again(tmp_path):
    path = tmp_path / "old.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights={"w": torch.zeros(2)}))
    history = (b'[{"id": 1, "test": {"mse": 1e400, "r2": -1e400, "loss": NaN, "acc": Infinity},'
               b' "history": [{"epoch": 1, "loss": 0.25}]}]')
    rewrite(path, {"history.json": history})
    project = load_project(path)
    assert project.runs == [{"id": 1, "test": {"mse": None, "r2": None, "loss": None, "acc": None},
                             "history": [{"epoch": 1, "loss": 0.25}]}]
    save_project(path, project)                           # could never be saved before
    assert strict_json(member(path, "history.json")) == project.runs


def test_a_non_finite_setting_falls_back_to_its_default_with_a_note_and_the_weights_survive(tmp_path):
    path = tmp_path / "clip.deepwire"
    weights = {"dense.weight": torch.arange(6.0).reshape(2, 3)}
    save_project(path, Project(load_template("digits_mlp"), TrainConfig(epochs=7, lr=0.01), weights))
    settings = json.loads(member(path, "config.json"))
    text = json.dumps(dict(settings, grad_clip=0.5)).replace("0.5", "1e309")       # json reads it as inf
    rewrite(path, {"config.json": text.replace('"weight_decay": 0.0', '"weight_decay": NaN').encode()})
    project = load_project(path)
    assert project.config.grad_clip == 0.0 and project.config.weight_decay == 0.0           # the defaults
    assert project.config.epochs == 7 and project.config.lr == 0.01                          # the rest kept
    assert torch.equal(project.weights["dense.weight"], weights["dense.weight"])
    assert len(project.notes) == 1, project.notes
    note = project.notes[0]
    assert note.startswith("clip.deepwire: ") and "grad_clip = infinity" in note and "weight_decay" in note
    assert "default" in note and "\n" not in note
    save_project(path, project)
    again = load_project(path)
    assert again.notes == [] and again.config == project.config


def test_settings_out_of_range_fall_back_one_by_one_instead_of_refusing_the_project(tmp_path):
    path = tmp_path / "odd.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights={"w": torch.ones(2)}))
    settings = dict(TrainConfig(lr=0.05, batch_size=16).to_dict(), epochs=-3, optimizer="bogus", momentum="x")
    rewrite(path, {"config.json": json.dumps(settings).encode()})
    project = load_project(path)
    assert project.config == TrainConfig(lr=0.05, batch_size=16)
    assert len(project.notes) == 1
    assert all(f"{name} = " in project.notes[0] for name in ("epochs", "optimizer", "momentum")), project.notes
    rewrite(path, {"config.json": b"[1, 2]"})
    project = load_project(path)
    assert project.config == TrainConfig() and "does not hold training settings" in project.notes[0]


def test_a_setting_made_infinite_in_memory_still_saves(tmp_path):
    """Saving never raises on a number: an infinite setting is written as null and falls back when read."""
    config = TrainConfig(epochs=3)
    config.grad_clip = float("inf")
    path = tmp_path / "inf.deepwire"
    save_project(path, Project(load_template("digits_mlp"), config))
    assert strict_json(member(path, "config.json"))["grad_clip"] is None
    project = load_project(path)
    assert project.config.grad_clip == 0.0 and project.config.epochs == 3 and "grad_clip" in project.notes[0]


# ----------------------------------------------------------------------------- weights holding NaN (issue 13)

def test_weights_holding_nan_or_inf_load_with_a_note_naming_the_first_tensor(tmp_path):
    weights = {"dense.weight": torch.ones(4, 3), "dense.bias": torch.tensor([0.0, float("nan"), 1.0]),
               "dense_1.weight": torch.full((2, 2), float("-inf"), dtype=torch.bfloat16),
               "steps": torch.tensor([3])}
    path = tmp_path / "diverged.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights=weights))
    project = load_project(path)
    assert len(project.notes) == 1, project.notes
    note = project.notes[0]
    assert note.startswith("diverged.deepwire: ") and "'dense.bias'" in note and "1 more" in note and "NaN" in note
    assert torch.isnan(project.weights["dense.bias"][1])                  # loaded as they are
    save_project(path, Project(load_template("digits_mlp"), weights={"dense.weight": torch.ones(4, 3)}))
    assert load_project(path).notes == []


# ----------------------------------------------------------------------------- what check reads (issue 8)

def test_check_reads_only_the_graph_and_never_decodes_the_weights(tmp_path, capsys):
    """Weights damaged past their first bytes: a full load refuses them, `check` never reads them."""
    path = tmp_path / "big.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights={"w": torch.ones(100_000)}))
    raw = bytearray(path.read_bytes())
    at = raw.find(b"\x00\x00\x80\x3f" * 8)                # inside the stored tensor's bytes
    raw[at:at + 64] = bytes(range(64))                    # the zip's CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="big.deepwire: the weights are damaged"):
        load_project(path)
    assert load_project_graph(path).find("dense") is not None
    assert read_graph(path).find("dense") is not None
    assert cli.main(["check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    assert load_project(path, weights=False).weights is None


def test_the_graph_only_read_still_refuses_a_pickle_in_place_of_the_weights(tmp_path, capsys):
    import pickle

    path = tmp_path / "pickled.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights={"w": torch.ones(3)}))
    rewrite(path, {"weights.safetensors": pickle.dumps({"w": [1.0]}, protocol=4)})
    with pytest.raises(FormatError, match="pickled.deepwire: 'weights.safetensors' holds a Python pickle"):
        load_project_graph(path)
    assert cli.main(["check", str(path)]) == 2
    assert "pickle" in capsys.readouterr().err


# ----------------------------------------------------------------------------- safetensors, streamed

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool])
def test_weights_written_by_safetensors_read_back_exactly_and_ours_read_with_safetensors(dtype, tmp_path):
    from safetensors.torch import load, save

    values = (torch.arange(24) % 5 - 2).reshape(2, 3, 4)
    state = {"a": values.to(dtype), "scalar": torch.tensor(3).to(dtype), "empty": torch.zeros(0, 4, dtype=dtype),
             "b": values[0].to(dtype).t().contiguous()}
    path = tmp_path / "p.deepwire"
    save_project(path, Project(load_template("digits_mlp"), weights=state))
    theirs = load(member(path, "weights.safetensors"))   # the library reads what we write
    assert set(theirs) == set(state) and all(torch.equal(theirs[k], state[k]) for k in state)
    rewrite(path, {"weights.safetensors": save(state)})  # and we read what the library writes
    ours = load_project(path).weights
    assert set(ours) == set(state)
    for key, tensor in state.items():
        assert ours[key].dtype == dtype and ours[key].shape == tensor.shape and torch.equal(ours[key], tensor)


def _safetensors(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


DAMAGED_WEIGHTS = {
    "gap": _safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)),
    "overlap": _safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)),
    "size-does-not-match-shape": _safetensors({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                                              bytes(8)),
    "more-data-than-tensors": _safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                           bytes(4096)),
    "claims-a-terabyte": _safetensors({"a": {"dtype": "F32", "shape": [2**38], "data_offsets": [0, 2**40]}},
                                      bytes(8)),
    "unknown-dtype": _safetensors({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
    "negative-shape": _safetensors({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
    "header-longer-than-file": struct.pack("<Q", 10**9) + b"{}",
    "header-not-json": struct.pack("<Q", 4) + b"{{{{",
    "too-short": b"\x01\x02",
}


@pytest.mark.parametrize("case", list(DAMAGED_WEIGHTS))
def test_damaged_weights_are_refused_in_one_line_before_anything_large_is_allocated(case, tmp_path):
    path = tmp_path / "damaged.deepwire"
    save_project(path, Project(load_template("digits_mlp")))
    rewrite(path, {"weights.safetensors": DAMAGED_WEIGHTS[case]})
    with pytest.raises(FormatError) as info:
        load_project(path)
    message = str(info.value)
    assert message.startswith("damaged.deepwire: the weights are damaged (") and "\n" not in message, message


# ----------------------------------------------------------------------------- memory (issue 8)

def zero_bomb(path: Path, gib: float) -> None:
    """A project whose weights.safetensors is `gib` GiB of zeros, deflated to about 1/1000 of that."""
    save_project(path.with_suffix(".base"), Project(load_template("digits_mlp")))
    n = int(gib * 2**30) // 4
    header = json.dumps({"big": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    with zipfile.ZipFile(path.with_suffix(".base")) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            zf.writestr(info.filename, src.read(info))
        with zf.open("weights.safetensors", "w", force_zip64=True) as f:
            f.write(struct.pack("<Q", len(header)) + header)
            chunk, left = bytes(1 << 24), 4 * n
            while left:
                f.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))


PEAK = """
import resource, sys
sys.path.insert(0, {root!r})
{body}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 2**20)
"""


def peak_mib(body: str) -> float:
    proc = subprocess.run([sys.executable, "-c", PEAK.format(root=str(ROOT), body=body)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not POSIX, reason="peak memory through the resource module")
def test_memory_for_check_load_and_save_is_bounded_by_what_they_need(tmp_path):
    bomb = tmp_path / "bomb.deepwire"
    zero_bomb(bomb, 0.5)                                  # 512 MiB of weights in a file of ~0.5 MB
    assert bomb.stat().st_size < 2**20
    jobs = {
        "baseline": "import torch, engine.project, engine.cli",
        "check": f"import torch\nfrom engine import cli\nassert cli.main(['check', {str(bomb)!r}]) == 0",
        "load": f"import torch\nfrom engine.project import load_project\n"
                f"assert load_project({str(bomb)!r}).weights['big'].numel() == 2**27",
        "save": "import torch\nfrom engine.project import Project, save_project\nfrom engine.templates import "
                f"load_template\nsave_project({str(tmp_path / 'saved.deepwire')!r}, Project(load_template("
                "'digits_mlp'), weights={'w': torch.ones(2**26)}))",      # 256 MiB
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        peaks = dict(zip(jobs, pool.map(peak_mib, jobs.values())))
    base = peaks["baseline"]
    assert peaks["check"] < base + 100, peaks             # the weights are never decoded (was base + 1 GiB)
    assert peaks["load"] < base + 512 + 150, peaks        # the weights once (was twice: their chunks, the join)
    assert peaks["save"] < base + 256 + 150, peaks        # the weights once (was four times)


# ----------------------------------------------------------------------------- permissions (issue 11)

@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664])
def test_saving_over_a_file_keeps_its_permissions(mode, tmp_path):
    path = tmp_path / "shared.deepwire"
    save_project(path, Project(load_template("digits_mlp")))
    os.chmod(path, mode)
    save_project(path, Project(load_template("digits_mlp"), weights={"w": torch.ones(2)}))
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    text = tmp_path / "graph.json"
    text.write_text("{}")
    os.chmod(text, mode)
    atomic_write_text(text, "{ }")
    assert stat.S_IMODE(os.stat(text).st_mode) == mode and text.read_text() == "{ }"


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_umasks_permissions_not_private_ones(umask, tmp_path):
    old = os.umask(umask)
    try:
        save_project(tmp_path / "new.deepwire", Project(load_template("digits_mlp")))
        atomic_write_text(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    for name in ("new.deepwire", "new.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "keep.deepwire"
    save_project(path, Project(load_template("digits_mlp")))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot store"):
        save_project(path, Project(load_template("digits_mlp"), weights={"w": torch.zeros(2, dtype=torch.cdouble)}))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["keep.deepwire"]


def test_history_json_is_still_strict_json_with_nested_numpy_values(tmp_path):
    runs = [{"id": 1, "test": {"confusion": np.array([[1, 0], [math.inf, 2]]), "per_class": (np.float32(0.5),)}}]
    path = tmp_path / "np.deepwire"
    save_project(path, Project(load_template("digits_mlp"), runs=runs))
    assert strict_json(member(path, "history.json")) == [{"id": 1, "test": {"confusion": [[1.0, 0.0], [None, 2.0]],
                                                                             "per_class": [0.5]}}]
