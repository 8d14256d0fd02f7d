"""The exported train.py streams an image folder as the app does (the same runtime code), and under
torchrun each process reads its own share of every epoch (two CPU processes, gloo)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

Image = pytest.importorskip("PIL.Image")

from engine.export.python_bundle import export_python  # noqa: E402
from engine.graph import build  # noqa: E402
from engine.project import Project  # noqa: E402
from engine.runtime.data import load_dataset, split_indices  # noqa: E402
from engine.runtime.data.stream import streamed_splits  # noqa: E402
from engine.runtime.distributed import shard  # noqa: E402
from engine.runtime.loop import epoch_batches  # noqa: E402
from engine.training import TrainConfig, train  # noqa: E402

CONFIG = TrainConfig(epochs=2, batch_size=8, device="cpu", lr=0.01, memory_budget=1e-9, data_workers=1)


def image_folder(root):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True)
        for i in range(24):
            a = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
            a[:, slice(0, 4) if k == 0 else slice(4, 8)] += 150
            Image.fromarray(a).save(root / name / f"{i:02d}.png")
    return root


def graph():
    return build("m", [("in", "Input", {"shape": [3, 8, 8]}), ("flat", "Flatten", {}),
                       ("fc", "Linear", {"units": 2}), ("out", "Output", {})])


def epoch_losses(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"^epoch \d+/\d+  loss ([0-9.]+)", text, flags=re.M)]


def env(cache) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out["DEEPWIRE_IMAGE_CACHE_DIR"] = str(cache)
    return out


@pytest.fixture
def bundle(tmp_path):
    folder = image_folder(tmp_path / "sides")
    result = train(graph(), load_dataset(str(folder)), CONFIG)
    project = Project(graph(), CONFIG, weights=result.state_dict, dataset=str(folder))
    out = tmp_path / "bundle"
    out.mkdir()
    export_python(project, out)
    return out, result


@pytest.mark.slow
def test_the_exported_train_py_streams_as_the_app_does(bundle, tmp_path):
    folder, result = bundle
    assert (folder / "deepwire_runtime" / "data" / "stream.py").is_file()
    proc = subprocess.run([sys.executable, "train.py", "--device", "cpu", "--out", str(tmp_path / "t.safetensors")],
                          cwd=folder, env=env(tmp_path / "cache"), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "streamed batch by batch" in proc.stdout
    assert epoch_losses(proc.stdout) == pytest.approx([h["loss"] for h in result.history], abs=1e-4)


@pytest.mark.slow
def test_torchrun_processes_each_stream_their_own_share(bundle, tmp_path):
    folder, _ = bundle
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master-addr=127.0.0.1", f"--master-port={port}", "train.py", "--device", "cpu"]
    proc = subprocess.run(command, cwd=folder, env=env(tmp_path / "cache"), capture_output=True, text=True,
                          timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "process 1/2 finished" in output and "process 2/2 finished" in output
    assert "2 processes on cpu; streamed batch by batch" in output
    assert len(epoch_losses(proc.stdout)) == 2
    assert len(list((tmp_path / "cache").glob("*.dwimg"))) == 1      # decoded once, by process 0


def test_each_process_reads_only_its_share_of_an_epoch(tmp_path):
    ds = load_dataset(str(image_folder(tmp_path / "sides")))
    rows = split_indices(ds, 0.1, 0.2, 0)
    read: list[list[int]] = []
    for rank in range(2):
        (x_train, _, _), stream = streamed_splits(ds.x, rows, torch.device("cpu"), 0)
        original = stream.rows.__class__.__getitem__
        seen: list[int] = []
        stream.rows.__class__.__getitem__ = lambda self, r, seen=seen: seen.extend(np.asarray(r).tolist()) or \
            original(self, r)
        try:
            y = torch.as_tensor(ds.y[rows[0]])
            positions = shard(len(x_train), 2, rank, torch.device("cpu"))
            order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))[positions]
            for xb, yb in epoch_batches(x_train, y, order, 5):
                assert xb.dtype == torch.float32 and len(xb) == len(yb)
        finally:
            stream.rows.__class__.__getitem__ = original
        read.append(seen)
    train_rows = set(rows[0].tolist())
    assert len(read[0]) == len(read[1]) == (len(train_rows) + 1) // 2
    assert set(read[0]) | set(read[1]) == train_rows and set(read[0]).issubset(train_rows)
    assert len(set(read[0]) & set(read[1])) <= 1          # DistributedSampler pads with at most one repeat
