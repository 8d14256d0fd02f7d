"""Training beside the UI: each run goes to a child process (engine.train_process).

The session sends the child a snapshot of the graph and the settings, so editing the canvas
during a run never changes that run. The child loads the dataset itself (a download or an image
folder must not freeze the window; an image folder's decoding comes back as `loading` reports,
and Stop cancels it), trains with the engine, and reports batches and epochs,
already throttled by the engine to what the eye can see; a reader thread turns them into queued
signals, so the UI thread does little per report.

Why a process and not a thread: the training loop is Python between torch ops, and in one
process it shared the GIL with the window painting the curves; in a thread the digits models
trained at 0.79-0.96x the speed of `python main.py train` (2 cores), in a child process at the
command line's speed (benchmarks/bench_designer_training.py). A crash inside torch cannot take
the window down either: the panel says how the process ended and the next run starts afresh.

Starting a process costs its imports and a warm-up (torch, torch's optimizers, scikit-learn:
seconds). So the session starts its process ahead of time, once the training panel has been
shown for a moment, and keeps it from run to run: later runs start at once. A process that
crashed is replaced.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QObject, QTimer, Signal

from engine.graph import Graph
from engine.runtime.data import Dataset
from engine.threads import default_threads
from engine.train_process import TrainProcess, weights_from_bytes, weights_to_bytes
from engine.training import TrainConfig, TrainResult

PREPARE_DELAY_MS = 3000   # the training process starts this long after the panel first shows


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
    initial: dict | None = None  # the weights a run set to start from them starts from (fine-tuning)

    def to_message(self) -> dict:
        initial = weights_to_bytes(self.initial, {}) if self.initial and self.config.start_from == "weights" else None
        return {"graph": self.graph.to_dict(), "dataset": self.dataset, "config": self.config.to_dict(),
                "load_options": dict(self.load_options), "initial": initial}


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
    """One run at a time: owns the training process and the thread reading what it says."""

    status = Signal(str)
    loading = Signal(dict)        # an image folder being read: {"phase", "done", "total", "cache_hit", "skipped", ...}
    batch = Signal(dict)
    epoch = Signal(dict)
    finished = Signal(object)     # RunOutcome
    failed = Signal(str)
    runningChanged = Signal(bool)
    _ended = Signal(int, str, object)   # run number, "finished" / "failed", RunOutcome / message

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._process: TrainProcess | None = None   # kept from run to run
        self._reader: threading.Thread | None = None
        self._run = 0
        self._running = False
        self._paused = False
        self._closed = False
        # Stop / pause / resume apply to the run they follow in the process's stream, and the
        # reader thread sends the run: a command given before that is held until the run is sent.
        self._control_lock = threading.Lock()
        self._run_sent = True
        self._held: list[str] = []
        self._prepare_timer = QTimer(self)
        self._prepare_timer.setSingleShot(True)
        self._prepare_timer.timeout.connect(self._start_process)
        self._ended.connect(self._on_ended)
        keep_ui_thread_serial()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def paused(self) -> bool:
        return self._running and self._paused

    def prepare(self, delay_ms: int = PREPARE_DELAY_MS) -> None:
        """Have the training process warming up in `delay_ms`, unless it is there already."""
        if not self._closed and self._process is None and not self._prepare_timer.isActive():
            self._prepare_timer.start(delay_ms)

    def _start_process(self) -> TrainProcess:
        if self._process is None or not self._process.alive:
            if self._process is not None:
                self._process.close(0)
            self._process = TrainProcess()
        return self._process

    def start(self, request: RunRequest) -> None:
        if self._running:
            raise RuntimeError("a run is already in progress")
        self._prepare_timer.stop()
        try:
            process = self._start_process()
        except OSError as exc:       # no Python to start (a broken install): say so, as a failed run
            message = f"the training process could not start ({exc})"
            QTimer.singleShot(0, lambda: self.failed.emit(message))
            return
        self._run += 1
        self._running, self._paused = True, False
        with self._control_lock:
            self._run_sent, self._held = False, []
        self._reader = threading.Thread(target=self._read, args=(self._run, process, request.to_message()),
                                        name="deepwire-training-reader", daemon=True)
        self._reader.start()
        self.runningChanged.emit(True)

    def _read(self, run: int, process: TrainProcess, message: dict) -> None:
        """On the reader thread: send the run, turn what the process says into signals."""
        ended = None
        if not process.ready:
            self.status.emit("Starting the training process (the first run of a session takes a few seconds)…")
        sent = process.run(message)
        with self._control_lock:
            self._run_sent = True
            held, self._held = self._held, []
            for kind in held:             # a Stop clicked before the run was on its way
                process.send(kind)
        if sent:
            for kind, *rest in process.messages():
                if kind == "ready":
                    process.ready = True
                elif kind == "status":
                    self.status.emit(rest[0])
                elif kind == "loading":
                    self.loading.emit(rest[0])
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
        if ended is None:            # the process ended without a word: a crash or a kill
            ended = ("failed", process.exit_message())
            process.close(0)
        self._ended.emit(run, *ended)

    def _command(self, kind: str) -> bool:
        """Send stop / pause / resume for the current run (held until its run message is sent)."""
        with self._control_lock:
            if not self._run_sent:
                self._held.append(kind)
                return True
            return self._process.send(kind)

    def stop(self) -> None:
        if self._running:
            self._command("stop")

    def pause(self) -> None:
        if self._running and self._command("pause"):
            self._paused = True

    def resume(self) -> None:
        if self._running and self._command("resume"):
            self._paused = False

    def wait(self, ms: int = 10_000) -> bool:
        """Stop the run and wait for its end (closing the window or the project)."""
        if not self._running:
            return True
        process, reader = self._process, self._reader
        self._command("stop")
        reader.join(ms / 1000)
        ok = not reader.is_alive()
        if not ok:            # it did not stop in time: end the process
            process.proc.kill()
            # not for ever: a process it forked (decoding images) may keep the pipe open after it is gone
            reader.join(5)
        self._cleanup(self._run)
        return ok

    def shutdown(self) -> None:
        """End the run (if any) and the training process: closing the window."""
        self._closed = True
        self._prepare_timer.stop()
        self.wait()
        process, self._process = self._process, None
        if process is not None:
            process.close(1.0)     # it exits when its stdin closes; killed if it does not

    def _on_ended(self, run: int, kind: str, payload) -> None:
        if run != self._run:
            return                   # a run given up for lost (wait) that ended later: another is shown now
        self._cleanup(run)
        (self.finished if kind == "finished" else self.failed).emit(payload)

    def _cleanup(self, run: int) -> None:
        if not self._running or run != self._run:
            return
        self._running, self._paused, self._reader = False, False, None
        if self._process is not None and not self._process.alive:
            self._process = None
            self.prepare()           # a fresh process for the next run, after a crash
        self.runningChanged.emit(False)
