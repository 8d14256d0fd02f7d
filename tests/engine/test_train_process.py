"""The training child process (engine.train_process): its protocol, stop, and how it ends."""
import signal
import sys
import time

import numpy as np
import pytest
import torch

from engine.compiler import compile_graph
from engine.runtime.data import load_dataset, split_dataset
from engine.graph import build
from engine.templates import load_template
from engine.train_process import TrainProcess, weights_from_bytes
from engine.training import TrainConfig

CONFIG = TrainConfig(epochs=3, batch_size=32, device="cpu", seed=3)


def request(config=CONFIG, graph=None, dataset="digits"):
    return {"graph": (graph or load_template("digits_mlp")).to_dict(), "dataset": dataset,
            "config": config.to_dict()}


def run_to_end(process, message, on_batch=None, close=True):
    kinds, last = [], None
    assert process.run(message)
    for kind, *rest in process.messages():
        kinds.append(kind)
        if kind == "batch" and on_batch is not None:
            on_batch()
        if kind in ("finished", "failed"):
            last = rest[0]
            break
    if close:
        process.close()
    return kinds, last


@pytest.mark.slow
def test_a_run_reports_batches_and_epochs_and_sends_back_weights_that_score_as_reported():
    process = TrainProcess()
    kinds, outcome = run_to_end(process, request())
    assert kinds[0] == "ready" and kinds[-1] == "finished"
    assert kinds.count("epoch") == 3 and kinds.count("batch") >= 3
    assert kinds.index("status") < kinds.index("batch") < kinds.index("epoch")
    result = outcome["result"]
    assert result["stopped"] == "completed" and len(result["history"]) == 3
    state, checkpoints = weights_from_bytes(outcome["weights"])
    assert sorted(checkpoints) == [1, 2, 3]
    model = compile_graph(load_template("digits_mlp"))
    model.load_state_dict(state, strict=True)
    splits = split_dataset(load_dataset("digits"), CONFIG.val_split, CONFIG.test_split, CONFIG.seed)
    with torch.no_grad():
        predicted = model.eval()(torch.as_tensor(splits.x_test)).argmax(-1).numpy()
    assert np.mean(predicted == splits.y_test) == pytest.approx(result["test_metrics"]["accuracy"], abs=1e-6)
    samples = outcome["samples"]
    assert samples["x"].shape[1:] == (64,) and len(samples["y_pred"]) == len(samples["y_true"])
    assert process.proc.returncode == 0


@pytest.mark.slow
def test_stop_ends_the_run_after_the_batch_and_keeps_the_weights():
    process = TrainProcess()
    sent = []

    def stop_once():
        if not sent:
            sent.append(time.perf_counter())
            process.send("stop")

    kinds, outcome = run_to_end(process, request(TrainConfig(epochs=500, batch_size=8, device="cpu")), stop_once)
    assert kinds[-1] == "finished" and outcome["result"]["stopped"] == "user"
    assert weights_from_bytes(outcome["weights"])[0]


@pytest.mark.slow
def test_one_process_trains_run_after_run_and_a_stop_belongs_to_the_run_it_follows():
    process = TrainProcess()
    kinds, first = run_to_end(process, request(), close=False)
    assert kinds[0] == "ready" and first["result"]["stopped"] == "completed"
    process.send("stop")                      # too late for the first run: it must not stop the second
    kinds, second = run_to_end(process, request(), close=False)
    assert "ready" not in kinds and second["result"]["stopped"] == "completed"
    losses = [[r["loss"] for r in run["result"]["history"]] for run in (first, second)]
    assert losses[0] == losses[1]                             # same seed, same run
    assert process.alive
    process.close()
    assert process.proc.returncode == 0


@pytest.mark.slow
def test_a_data_mismatch_comes_back_as_one_readable_message():
    process = TrainProcess()
    kinds, message = run_to_end(process, request(dataset="breast_cancer"))
    assert kinds[-1] == "failed"
    assert "input" in message and "30" in message     # names the Input node and the data's 30 features


@pytest.mark.slow
def test_an_unused_process_exits_when_the_designer_goes_away():
    process = TrainProcess()
    process.proc.stdin.close()          # the designer closed (or died) before any run
    assert process.proc.wait(timeout=60) == 0


@pytest.mark.slow
def test_the_run_stops_and_the_process_exits_when_the_designer_goes_away():
    process = TrainProcess()
    assert process.run(request(TrainConfig(epochs=500, batch_size=8, device="cpu")))
    for kind, *_ in process.messages():
        if kind == "batch":
            break
    process.proc.stdin.close()          # as when the designer's process ends: both pipes close
    process.proc.stdout.close()
    assert process.proc.wait(timeout=30) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.slow
def test_a_killed_process_is_explained():
    process = TrainProcess()
    assert process.run(request(TrainConfig(epochs=500, batch_size=8, device="cpu")))
    for kind, *_ in process.messages():
        if kind == "batch":
            process.proc.send_signal(signal.SIGKILL)
    message = process.exit_message()
    assert "killed by SIGKILL" in message and "out of memory" in message
    process.close()


@pytest.mark.slow
def test_an_imported_dataset_object_travels_to_the_process():
    from engine.runtime.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    data = Dataset("table.csv", x, (x[:, 0] > 0).astype(np.int64), "binary", class_names=["no", "yes"])
    graph = build("tiny", [("x", "Input", {"shape": [3]}), ("fc", "Linear", {"units": 2}), ("y", "Output", {})])
    kinds, outcome = run_to_end(TrainProcess(), request(TrainConfig(epochs=2, device="cpu"), graph, data))
    assert kinds[-1] == "finished", outcome
    assert outcome["dataset_name"] == "table.csv" and outcome["result"]["class_names"] == ["no", "yes"]


def test_the_training_threads_leave_one_core_to_the_window_unless_told(monkeypatch):
    from engine.threads import default_threads
    from engine.train_process import ENV_THREADS, training_threads

    monkeypatch.delenv(ENV_THREADS, raising=False)
    assert training_threads() == max(1, default_threads() - 1)
    monkeypatch.setenv(ENV_THREADS, "3")
    assert training_threads() == 3
    monkeypatch.setenv(ENV_THREADS, "many")
    assert training_threads() == max(1, default_threads() - 1)


@pytest.mark.slow
def test_an_image_folder_decoded_by_the_process_with_parallel_decoders_trains(tmp_path):
    """The process decodes a folder with forked decoding processes while a thread waits for the designer's
    messages: the decoders must not wait for the stdin that thread reads (they did, for ever)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "light")):
        (tmp_path / name).mkdir()
        for i in range(160):
            pixels = rng.integers(0, 100, (8, 8, 3), dtype=np.uint8) + (120 if k else 0)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / name / f"{i:03d}.png")
    graph = build("m", [("x", "Input", {"shape": [3, 8, 8]}), ("flat", "Flatten", {}), ("fc", "Linear", {"units": 2}),
                        ("y", "Output", {})])
    process = TrainProcess()

    def too_long(*_):
        process.proc.kill()
        raise TimeoutError("the run never finished: the decoding processes hang")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(90)
    try:
        kinds, outcome = run_to_end(process, request(TrainConfig(epochs=1, device="cpu", data_workers=2), graph,
                                                     str(tmp_path)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert kinds[-1] == "finished", outcome
    assert "loading" in kinds and outcome["result"]["class_names"] == ["dark", "light"]
