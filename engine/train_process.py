"""Training in a process of its own, driven over two pipes (no Qt here).

The designer trains in a child process, not in a thread of its own process: a training loop is
Python between torch ops, and in one process it shares the GIL with the window that paints the
live curves. Measured on 2 cores (benchmarks/bench_designer_training.py): in a thread the run
went at 0.79-0.96x the speed of `python main.py train`, in a child process at the command
line's speed; the window's timer stayed within its targets both ways. A child also keeps a crash
inside torch (a segfault, the system's out-of-memory killer) from taking the window with it.

The protocol is pickles, one after another, on the child's stdin and on a copy of its stdout
(the child points its own stdout at stderr, so a stray print cannot break the stream):

    parent -> child:  ("run", request)  then any of ("stop",) ("pause",) ("resume",); the next run…
    child -> parent:  ("ready",) once, then for each run: ("status", text) ("loading", info)
                      ("batch", info) ("epoch", record) …, and one of ("finished", outcome) ("failed", message)

("loading", info) reports an image folder's decoding (at most ~10 a second): {"dataset", "phase":
"scan" | "decode" | "ready" | "notice", "done", "total", "cache_hit", "skipped", "message"}; a stop
while loading cancels it between chunks of files. ("batch", info) carries "peak_rss" (bytes).

`request` is plain data: {"graph": Graph.to_dict(), "dataset": a name or path or a Dataset,
"config": TrainConfig.to_dict(), "load_options": {...}, "initial": the weights a run set to start
from them starts from, as weights_to_bytes(state, {}) (or None)}. `outcome` carries the weights as
one safetensors blob (`weights_to_bytes`, `weights_from_bytes`).
A child runs its imports (torch, the engine) and a tiny warm-up run as soon as it starts, so one
started ahead of time begins training at once; it then trains the runs it is given one after
another (each stop / pause / resume applies to the run it follows), and exits when its stdin
closes (the designer closed or went away; a run going on is stopped first).

    python -m engine.train_process      # what `TrainProcess` starts
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO, Iterator

ROOT = Path(__file__).resolve().parent.parent
MAX_SAMPLES = 256   # test samples sent back for the results view (thumbnails, scatter)
ENV_THREADS = "DEEPWIRE_TRAINING_THREADS"


# ----------------------------------------------------------------------------- the parent's side

class TrainProcess:
    """One child process: started ahead of time (it warms up), it trains the runs it is given one
    after another, and exits when its stdin closes."""

    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("PYTHONUNBUFFERED", "1")
        flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.train_process"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, creationflags=flags)
        self._write_lock = threading.Lock()
        self.ready = False        # set by whoever reads its ("ready",): warmed up, runs start at once

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, *message: Any) -> bool:
        """Write one message; False when the child is gone (its run ended or it crashed)."""
        try:
            with self._write_lock:
                pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def run(self, request: dict) -> bool:
        return self.send("run", request)

    def messages(self) -> Iterator[tuple]:
        """What the child says, in order, until its stdout closes (or the caller stops reading:
        a later call goes on where this one stopped). Blocks: read it on a thread."""
        stream = self.proc.stdout
        while True:
            try:
                message = pickle.load(stream)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                return
            except Exception as exc:  # the stream cannot be trusted any more: end the process
                self.proc.kill()
                yield ("failed", f"the training process sent something unreadable ({type(exc).__name__}: {exc})")
                return
            yield message

    def exit_message(self) -> str:
        """Why the child ended without a result, in words."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the training process stopped answering"
        if code < 0:
            import signal
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
            return f"the training process was killed by {name}{hint}"
        return f"the training process ended unexpectedly (exit code {code})"

    def close(self, timeout: float = 2.0) -> None:
        """End the child: close its stdin (it exits by itself), kill it if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            self.proc.stdout.close()
        except OSError:
            pass


def weights_to_bytes(state: dict, checkpoints: dict) -> bytes:
    """The final weights and the epochs' as one safetensors blob ("state/<name>", "epoch<n>/<name>").
    safetensors, not torch.save: reading it is native code (14 ms for 120 epochs of the digits
    MLP, against 131 ms of Python, holding the GIL the window needs, for torch.load)."""
    from safetensors.torch import save

    flat: dict = {}
    seen: set = set()
    items = [(f"state/{k}", v) for k, v in state.items()]
    items += [(f"epoch{epoch}/{k}", v) for epoch, weights in checkpoints.items() for k, v in weights.items()]
    for key, tensor in items:
        tensor = tensor.detach().cpu().contiguous()
        if tensor.data_ptr() in seen and tensor.numel():   # safetensors refuses tensors sharing memory
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        flat[key] = tensor
    return save(flat)


def weights_from_bytes(data: bytes) -> tuple[dict, dict]:
    """(state_dict, {epoch: state_dict}) from a finished outcome's "weights"."""
    from safetensors.torch import load

    state: dict = {}
    checkpoints: dict[int, dict] = {}
    for key, tensor in load(data).items():
        head, name = key.split("/", 1)
        if head == "state":
            state[name] = tensor
        else:
            checkpoints.setdefault(int(head[len("epoch"):]), {})[name] = tensor
    return state, checkpoints


# ----------------------------------------------------------------------------- the child's side

def _samples(result, splits, graph) -> dict | None:
    """A few test samples with the trained model's predictions, for the results view."""
    import numpy as np
    import torch

    from engine.analysis import analyse, output_activation

    x, y = splits.x_test, splits.y_test
    if len(x) == 0:
        return None
    x, y = np.asarray(x[:MAX_SAMPLES]), np.asarray(y[:MAX_SAMPLES])
    if x.dtype == np.uint8:          # image pixels: float, as the model takes them
        x = x.astype(np.float32)
    model = result.model
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        out = model.eval()(torch.as_tensor(x).to(device)).float().cpu().numpy()
    if result.task == "multiclass":
        pred = out.argmax(axis=-1)
    elif result.task == "binary":
        analysis = analyse(graph)
        threshold = 0.5 if output_activation(graph, analysis, analysis.outputs[0]) == "sigmoid" else 0.0
        pred = (out.reshape(len(out), -1)[:, -1] > threshold).astype(np.int64)
    else:
        pred = out.reshape(y.shape) if out.size == y.size else out[:, 0]
    return {"x": np.asarray(x), "y_true": np.asarray(y), "y_pred": np.asarray(pred)}


def run_request(request: dict, emit, control) -> None:
    """Load the data, train, and emit ("finished", outcome) or ("failed", message). Never raises."""
    from engine.graph import Graph
    from engine.runtime.data import (
        DataError,
        Dataset,
        LoadCancelled,
        Splits,
        load_dataset,
        split_dataset,
        split_indices,
    )
    from engine.runtime.data.stream import memory_budget, streams
    from engine.runtime.settings import resolve_device
    from engine.training import Callbacks, TrainConfig, TrainingError, train

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        graph = Graph.from_dict(request["graph"])
        config = TrainConfig.from_dict(request["config"])
        spec = request["dataset"]
        if isinstance(spec, Dataset):   # imported and previewed already
            dataset = spec
        else:
            emit("status", f"Loading {spec}…")
            options = dict(request.get("load_options") or {})
            options.setdefault("bad_images", config.bad_images)
            options.setdefault("memory_budget", memory_budget(config, resolve_device(config.device)))
            dataset = load_dataset(spec, progress=_loading_reporter(emit, spec),
                                   cancel=lambda: control.stopped, **options)
            for note in getattr(dataset.images, "notes", None) or ():
                emit("status", note)
        if control.stopped:
            emit("failed", "stopped before the first batch: nothing was trained")
            return
        if streams(dataset, config, resolve_device(config.device)):
            # larger than the memory budget: train() reads it batch by batch; the results view's
            # samples are the first test samples
            _, _, test_rows = split_indices(dataset, config.val_split, config.test_split, config.seed)
            test_x = dataset.x_test if dataset.x_test is not None else dataset.x[test_rows[:MAX_SAMPLES]]
            test_y = dataset.y_test if dataset.y_test is not None else dataset.y[test_rows[:MAX_SAMPLES]]
            shown, splits = Splits(test_x[:0], test_y[:0], test_x[:0], test_y[:0], test_x, test_y), None
        else:
            splits = shown = split_dataset(dataset, config.val_split, config.test_split, config.seed)
        emit("status", "Compiling and checking the data against the model…")
        callbacks = Callbacks(batch_end=lambda info: emit("batch", info), epoch_end=lambda rec: emit("epoch", rec))
        initial = weights_from_bytes(request["initial"])[0] if request.get("initial") else None
        result = train(graph, dataset, config, callbacks, control, splits=splits, initial=initial)
        samples = _samples(result, shown, graph)
        weights = weights_to_bytes(result.state_dict, result.checkpoints)
    except LoadCancelled:
        emit("failed", "stopped before the first batch: nothing was trained")
        return
    except (DataError, TrainingError) as exc:
        emit("failed", str(exc))
        return
    except Exception as exc:  # the designer must hear about whatever the run did
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        emit("failed", f"training failed: {detail}")
        return
    fields = {"history": result.history, "test_metrics": result.test_metrics, "best_epoch": result.best_epoch,
              "stopped": result.stopped, "device": result.device, "task": result.task,
              "class_names": result.class_names, "seconds": result.seconds, "note": result.note,
              "start": result.start, "frozen": result.frozen, "frozen_params": result.frozen_params}
    emit("finished", {"result": fields, "weights": weights, "dataset_name": dataset.name,
                      "samples": samples, "started_at": started})


def _loading_reporter(emit, spec):
    """load_dataset's progress as ("loading", info) messages, at most ~10 a second:
    info = {"phase", "done", "total", "cache_hit", "skipped"[, "message"]}."""
    last = [0.0]

    def report(info: dict) -> None:
        now = time.perf_counter()
        if info.get("phase") in ("decode",) and now - last[0] < 0.1 and info.get("done") != info.get("total"):
            return
        last[0] = now
        emit("loading", dict(info, dataset=str(spec)))
    return report


def training_threads() -> int:
    """torch's threads for training: DEEPWIRE_TRAINING_THREADS when set, else one fewer than the
    cores, leaving one to the window."""
    from engine.threads import default_threads

    try:
        return max(1, int(os.environ[ENV_THREADS]))
    except (KeyError, ValueError):
        return max(1, default_threads() - 1)


def _warm_up() -> None:
    """Import and run once what every run needs (the first run of a process spent ~2 s here)."""
    import numpy as np

    from engine.graph import build
    from engine.runtime.data import Dataset
    from engine.training import TrainConfig, train

    graph = build("warm-up", [("in", "Input", {"shape": [4]}), ("fc", "Linear", {"units": 2}),
                              ("out", "Output", {})])
    rng = np.random.default_rng(0)
    data = Dataset("warm-up", rng.normal(size=(16, 4)).astype(np.float32), np.arange(16) % 2, "multiclass")
    try:
        train(graph, data, TrainConfig(epochs=1, batch_size=8, val_split=0.25, test_split=0.25, device="cpu"))
    except Exception:  # only a warm-up: the real run reports its own errors
        pass


def main(stdin: BinaryIO | None = None, stdout_fd: int = 1) -> int:
    out = os.fdopen(os.dup(stdout_fd), "wb")
    try:
        os.dup2(2, stdout_fd)      # prints (ours, torch's) go to stderr, never into the stream
    except OSError:                # no stderr (a windowless app): they go nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout_fd)
    sys.stdout = sys.stderr if sys.stderr is not None else open(os.devnull, "w")
    if stdin is None:
        # The designer's messages are read from a copy of fd 0, and sys.stdin points at nothing: a
        # thread blocked reading sys.stdin holds its lock, and a process forked to decode images
        # (multiprocessing closes sys.stdin as it starts) would wait for that lock for ever.
        stdin = os.fdopen(os.dup(0), "rb")
        try:
            sys.stdin = open(os.devnull)
        except OSError:
            sys.stdin = None
    lock = threading.Lock()

    def emit(*message) -> None:
        with lock:
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()

    import queue

    import torch

    from engine.training import TrainControl

    # One core is left to the window (painting the curves, handling input): with as many
    # threads as cores, every parallel op's barrier waits for a thread the window pushed off its
    # core. On the small models of the tutorials one thread trains as fast as two.
    torch.set_num_threads(training_threads())
    runs: queue.Queue = queue.Queue()
    current = [TrainControl()]

    def listen() -> None:
        """Everything the designer says. A command applies to the run it follows in the stream."""
        while True:
            try:
                message = pickle.load(stdin)
                kind = message[0]
            except Exception:        # stdin closed: the designer went away; end the run, then exit
                current[0].stop()
                runs.put(None)
                return
            if kind == "run":
                current[0] = TrainControl()
                runs.put((message[1], current[0]))
            elif kind in ("stop", "pause", "resume"):
                getattr(current[0], kind)()

    threading.Thread(target=listen, name="deepwire-control", daemon=True).start()
    _warm_up()
    try:
        emit("ready")
        while (item := runs.get()) is not None:
            run_request(item[0], emit, item[1])
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    except (BrokenPipeError, OSError):
        return 0                     # nobody is listening any more
    out.close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)   # at once: the control thread may still be blocked reading stdin
