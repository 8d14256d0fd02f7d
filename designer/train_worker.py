"""Training beside the UI: a worker object living in a QThread runs `engine.training.train`.

The worker gets a snapshot of the graph and the settings, so editing the canvas during a run
never changes that run. It loads the dataset itself (a download or an image folder must not
freeze the window), and its engine callbacks become queued signals: the engine already
throttles batch reports to what the eye can see, so the UI thread does little per signal.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.data import DataError, Dataset, load_dataset, split_dataset
from engine.graph import Graph
from engine.threads import default_threads
from engine.training import Callbacks, TrainConfig, TrainControl, TrainingError, TrainResult, train

MAX_SAMPLES = 256   # test samples kept for the results view (thumbnails, scatter)
# While a run goes on, the training thread hands the GIL over after this long (Python's default
# is 5 ms). Every Python call the UI thread makes (paint methods, slots) waits for the GIL, so
# with the default a repaint that enters Python a few times waits 5 ms each time.
TRAINING_SWITCH_INTERVAL = 0.0005
# torch's intra-op threads (OpenMP) for the training thread: one core fewer than torch would
# use, which is left to the UI thread (painting the curves, handling input). With as many
# threads as cores, every parallel op's barrier waited for a thread the UI had pushed off its
# core: on 2 cores the digits MLP trained at 0.55x the command line's speed, with one thread at
# 0.80-0.83x (benchmarks/bench_designer_training.py). The UI thread itself is kept to one
# thread, so it never owns an OpenMP team of its own: once two threads of a process have teams,
# GNU OpenMP counts more threads than cores and stops spin-waiting, and every small parallel op
# of the training thread pays a sleep and a wake-up (measured: 4x slower).
TRAINING_THREADS = max(1, default_threads() - 1)


def keep_ui_thread_serial() -> None:
    """Call on the UI thread: its own torch ops (FLOP counts, restoring weights) run on one thread."""
    default_threads()          # remember the process default first
    torch.set_num_threads(1)


@dataclass
class RunRequest:
    graph: Graph                 # a snapshot: the run never sees later edits
    dataset: str | Dataset       # a built-in name or a path, or data already loaded
    config: TrainConfig
    load_options: dict = field(default_factory=dict)   # extra load_dataset keywords (CSV target, image size…)


@dataclass
class RunOutcome:
    result: TrainResult
    dataset_name: str
    samples: dict | None          # {"x", "y_true", "y_pred"} from the test split, at most MAX_SAMPLES
    started_at: str


class TrainWorker(QObject):
    """Runs one training run on whatever thread it lives in. Emits plain data."""

    status = Signal(str)          # "Loading fashion_mnist…", "Training on cpu…"
    batch = Signal(dict)          # engine batch_end info
    epoch = Signal(dict)          # engine epoch_end record
    finished = Signal(object)     # RunOutcome
    failed = Signal(str)          # one readable message

    def __init__(self, request: RunRequest, control: TrainControl):
        super().__init__()
        self.request = request
        self.control = control

    @Slot()
    def run(self) -> None:
        request = self.request
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        torch.set_num_threads(TRAINING_THREADS)   # this thread's OpenMP team: all the cores
        try:
            if isinstance(request.dataset, Dataset):   # imported and previewed already
                dataset = request.dataset
            else:
                self.status.emit(f"Loading {request.dataset}…")
                dataset = load_dataset(request.dataset, **request.load_options)
            if self.control.stopped:
                self.failed.emit("stopped before training began")
                return
            config = request.config
            splits = split_dataset(dataset, config.val_split, config.test_split, config.seed)
            self.status.emit("Compiling and checking the data against the model…")
            callbacks = Callbacks(batch_end=self.batch.emit, epoch_end=self.epoch.emit)
            result = train(request.graph, dataset, config, callbacks, self.control, splits=splits)
            samples = _samples(result, splits, request.graph)
        except (DataError, TrainingError) as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # the app must stay usable whatever the run did
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.failed.emit(f"training failed: {detail}")
            return
        self.finished.emit(RunOutcome(result, dataset.name, samples, started))


def _samples(result: TrainResult, splits, graph: Graph) -> dict | None:
    """A few test samples with the trained model's predictions, for the results view."""
    from engine.analysis import analyse, output_activation

    x, y = splits.x_test, splits.y_test
    if len(x) == 0:
        return None
    x, y = x[:MAX_SAMPLES], y[:MAX_SAMPLES]
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


class TrainingSession(QObject):
    """One run at a time: owns the thread, the worker and the stop/pause flags."""

    status = Signal(str)
    batch = Signal(dict)
    epoch = Signal(dict)
    finished = Signal(object)     # RunOutcome
    failed = Signal(str)
    runningChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: TrainWorker | None = None
        self._switch_interval = sys.getswitchinterval()
        self.control = TrainControl()
        keep_ui_thread_serial()

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def paused(self) -> bool:
        return self.running and self.control.paused

    def start(self, request: RunRequest) -> None:
        if self.running:
            raise RuntimeError("a run is already in progress")
        self.control = TrainControl()
        thread = QThread()
        thread.setObjectName("deepwire-training")
        worker = TrainWorker(request, self.control)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.status.connect(self.status)
        worker.batch.connect(self.batch)
        worker.epoch.connect(self.epoch)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._thread, self._worker = thread, worker
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, TRAINING_SWITCH_INTERVAL))
        thread.start()
        self.runningChanged.emit(True)

    def stop(self) -> None:
        self.control.stop()

    def pause(self) -> None:
        if self.running:
            self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def wait(self, ms: int = 10_000) -> bool:
        """Stop the run and wait for its thread (closing the window)."""
        if self._thread is None:
            return True
        self.control.stop()
        ok = self._thread.wait(ms)
        self._cleanup()
        return ok

    def _on_finished(self, outcome) -> None:
        self._cleanup()
        self.finished.emit(outcome)

    def _on_failed(self, message: str) -> None:
        self._cleanup()
        self.failed.emit(message)

    def _cleanup(self) -> None:
        thread, worker = self._thread, self._worker
        if thread is None:
            return
        self._thread = self._worker = None
        thread.quit()
        thread.wait()
        sys.setswitchinterval(self._switch_interval)
        worker.deleteLater()
        thread.deleteLater()
        self.runningChanged.emit(False)
