"""Training beside the UI: each run goes to a child process (engine.train_process).

The session sends the child a snapshot of the graph and the settings, so editing the canvas
during a run never changes that run. The child loads the dataset itself (a download or an image
folder must not freeze the window), trains with the engine, and reports batches and epochs,
already throttled by the engine to what the eye can see; a reader thread turns them into queued
signals, so the UI thread does little per report.

Why a process and not a thread: the training loop is Python between torch ops, and in one
process it shared the GIL with the window painting the curves; in a thread the digits models
trained at 0.79-0.96x the speed of `python main.py train` (2 cores), in a child process at the
command line's speed (benchmarks/bench_designer_training.py). A crash inside torch cannot take
the window down either: the panel says how the process ended and the next run starts afresh.

Starting a process costs its imports and a warm-up (torch, torch's optimizers, scikit-learn:
seconds). So the session keeps one "spare" process warming up ahead of time: once the training
panel has been shown for a moment, and again after each run. A run takes the spare when there is
one; when there is none, the run starts a process of its own and waits for it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QObject, QTimer, Signal

from engine.data import Dataset
from engine.graph import Graph
from engine.threads import default_threads
from engine.train_process import TrainProcess, weights_from_bytes
from engine.training import TrainConfig, TrainResult

SPARE_DELAY_MS = 3000   # a spare process starts this long after the panel shows or a run ends


def keep_ui_thread_serial() -> None:
    """Call on the UI thread: its own torch ops (FLOP counts, restoring weights) run on one thread,
    leaving the other cores to the training process."""
    default_threads()          # remember the process default first
    torch.set_num_threads(1)


@dataclass
class RunRequest:
    graph: Graph                 # a snapshot: the run never sees later edits
    dataset: str | Dataset       # a built-in name or a path, or data already loaded
    config: TrainConfig
    load_options: dict = field(default_factory=dict)   # extra load_dataset keywords (CSV target, image size…)

    def to_message(self) -> dict:
        return {"graph": self.graph.to_dict(), "dataset": self.dataset, "config": self.config.to_dict(),
                "load_options": dict(self.load_options)}


@dataclass
class RunOutcome:
    result: TrainResult           # result.model is None: the weights are result.state_dict
    dataset_name: str
    samples: dict | None          # {"x", "y_true", "y_pred"} from the test split, at most MAX_SAMPLES
    started_at: str


def outcome_from_message(payload: dict) -> RunOutcome:
    state, checkpoints = weights_from_bytes(payload["weights"])
    result = TrainResult(model=None, state_dict=state, checkpoints=checkpoints, **payload["result"])
    return RunOutcome(result, payload["dataset_name"], payload["samples"], payload["started_at"])


class TrainingSession(QObject):
    """One run at a time: owns the child process, the thread reading it, and the spare process."""

    status = Signal(str)
    batch = Signal(dict)
    epoch = Signal(dict)
    finished = Signal(object)     # RunOutcome
    failed = Signal(str)
    runningChanged = Signal(bool)
    _ended = Signal(int, str, object)   # run number, "finished" / "failed", RunOutcome / message

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._process: TrainProcess | None = None
        self._reader: threading.Thread | None = None
        self._spare: TrainProcess | None = None
        self._run = 0
        self._paused = False
        self._closed = False
        self._spare_timer = QTimer(self)
        self._spare_timer.setSingleShot(True)
        self._spare_timer.timeout.connect(self._start_spare)
        self._ended.connect(self._on_ended)
        keep_ui_thread_serial()

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def paused(self) -> bool:
        return self.running and self._paused

    def prepare(self, delay_ms: int = SPARE_DELAY_MS) -> None:
        """Have a spare process warming up in `delay_ms` (unless one is there or a run goes on)."""
        if not self._closed and self._spare is None and not self.running and not self._spare_timer.isActive():
            self._spare_timer.start(delay_ms)

    def _start_spare(self) -> None:
        if not self._closed and self._spare is None and not self.running:
            self._spare = TrainProcess()

    def start(self, request: RunRequest) -> None:
        if self.running:
            raise RuntimeError("a run is already in progress")
        self._spare_timer.stop()
        process, self._spare = self._spare, None
        if process is None or not process.alive:
            if process is not None:
                process.close(0)
            process = TrainProcess()
        self._run += 1
        self._process, self._paused = process, False
        message = request.to_message()
        self._reader = threading.Thread(target=self._read, args=(self._run, process, message),
                                        name="deepwire-training-reader", daemon=True)
        self._reader.start()
        self.runningChanged.emit(True)

    def _read(self, run: int, process: TrainProcess, message: dict) -> None:
        """On the reader thread: send the run, turn what the child says into signals."""
        ended = None
        if process.run(message):
            for kind, *rest in process.messages():
                if kind == "status":
                    self.status.emit(rest[0])
                elif kind == "batch":
                    self.batch.emit(rest[0])
                elif kind == "epoch":
                    self.epoch.emit(rest[0])
                elif kind == "failed":
                    ended = ("failed", rest[0])
                    break
                elif kind == "finished":
                    try:
                        ended = ("finished", outcome_from_message(rest[0]))
                    except Exception as exc:  # never leave the panel waiting
                        ended = ("failed", f"the training process's result could not be read ({exc})")
                    break
        if ended is None:
            ended = ("failed", process.exit_message())
        process.close()
        self._ended.emit(run, *ended)

    def stop(self) -> None:
        if self._process is not None:
            self._process.send("stop")

    def pause(self) -> None:
        if self._process is not None and self._process.send("pause"):
            self._paused = True

    def resume(self) -> None:
        if self._process is not None and self._process.send("resume"):
            self._paused = False

    def wait(self, ms: int = 10_000) -> bool:
        """Stop the run and wait for its process (closing the window or the project)."""
        process, reader = self._process, self._reader
        if process is None:
            return True
        process.send("stop")
        reader.join(ms / 1000)
        ok = not reader.is_alive()
        if not ok:            # it did not stop in time: end it
            process.proc.kill()
            reader.join()
        self._cleanup(self._run)
        return ok

    def shutdown(self) -> None:
        """End everything: the run (if any) and the spare process. Closing the window."""
        self._closed = True
        self._spare_timer.stop()
        self.wait()
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.proc.kill()      # it holds nothing of the user's
            spare.close(0)

    def _on_ended(self, run: int, kind: str, payload) -> None:
        self._cleanup(run)
        (self.finished if kind == "finished" else self.failed).emit(payload)

    def _cleanup(self, run: int) -> None:
        if self._process is None or run != self._run:
            return
        self._process = self._reader = None
        self._paused = False
        self.runningChanged.emit(False)
        self.prepare()
