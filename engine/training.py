"""The training loop: compile the graph, check the data against it, train, validate, test.

Knows nothing of threads or Qt. It reports through callbacks with plain data and checks a
stop flag and a pause flag every batch (`TrainControl`). Data that fits in memory lives as
whole tensors on the device and is indexed in whole batches: no per-sample DataLoader cost,
and no host synchronisation per batch (losses are read back only when a report is due).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .analysis import Analysis, analyse, output_activation, token_bound
from .blocks import TOKENS, format_shape
from .codegen import CodegenError
from .compiler import compile_graph
from .graph import Graph
from .runtime.loop import (
    Monitor,
    cpu_state,
    epoch_batches,
    evaluate,
    fit_normalizers,
    resolve_task,
    seed_everything,
    start_from,
    targets,
    to_tensors,
    train_step,
)
from .runtime.losses import loss_for
from .runtime.optim import make_optimizer, make_scheduler, step_at_epoch_end
from .runtime.settings import (  # noqa: F401  (the settings are re-exported: `from engine.training import TrainConfig`)
    LOSSES,
    MAX_SEED,
    OPTIMIZERS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    TrainingError,
    available_devices,
    resolve_device,
)

REPORT_INTERVAL = 0.05      # seconds between batch reports (what the eye can see)
CHECKPOINT_MEMORY = 512 * 2**20


class NothingTrained(TrainingError):
    """The run was stopped before its first batch: there is no trained model to keep."""


class TrainControl:
    """Stop and pause flags a UI or signal handler sets; the loop checks them every batch."""

    def __init__(self):
        self._stop = threading.Event()
        self._run = threading.Event()
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._run.set()

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    def wait_while_paused(self) -> None:
        while not self._run.wait(0.1):
            pass


@dataclass
class Callbacks:
    """Each receives one dict of plain data (numbers, strings, lists)."""

    batch_end: Callable[[dict], None] | None = None
    epoch_end: Callable[[dict], None] | None = None
    finished: Callable[[dict], None] | None = None
    failed: Callable[[dict], None] | None = None

    def call(self, name: str, info: dict) -> None:
        fn = getattr(self, name)
        if fn is not None:
            fn(info)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]
    test_metrics: dict
    best_epoch: int | None
    stopped: str                       # "completed", "early_stopping", "user", "diverged"
    device: str
    state_dict: dict[str, torch.Tensor]
    checkpoints: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    task: str = ""
    class_names: list[str] | None = None
    seconds: float = 0.0
    note: str = ""                     # why a run ended early, for the user ("diverged": where the loss went)
    # fine-tuning (issue #19): the weights it started from ({"from": "weights", "fresh": [names kept fresh]}),
    # and the frozen blocks (their names) with their weight count
    start: dict = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    frozen_params: int = 0

    def summary(self) -> dict:
        out = {"stopped": self.stopped, "best_epoch": self.best_epoch, "device": self.device,
               "epochs_run": len(self.history), "seconds": round(self.seconds, 3),
               "test": self.test_metrics, "history": self.history}
        if self.note:
            out["note"] = self.note
        if self.start:
            out["start"] = self.start
        if self.frozen:
            out["frozen"], out["frozen_params"] = self.frozen, self.frozen_params
        return out


# ----------------------------------------------------------------------------- devices

# ----------------------------------------------------------------------------- data vs model

def check_data(graph: Graph, analysis: Analysis, dataset) -> list[str]:
    """Every way the dataset does not fit the model, as messages naming the node."""
    problems: list[str] = []
    inputs = [i for i in analysis.inputs if i in analysis.live]
    if len(inputs) != 1 or len(analysis.outputs) != 1:
        return [f"training needs a model with one Input and one Output; this one has {len(inputs)} "
                f"input(s) and {len(analysis.outputs)} output(s)"]
    in_node, out_node = graph.node(inputs[0]), graph.node(analysis.outputs[0])
    spec, out = analysis.specs[inputs[0]], analysis.specs[analysis.outputs[0]]
    if tuple(dataset.input_shape) != spec.shape:
        problems.append(f"dataset '{dataset.name}' gives inputs of shape {format_shape(dataset.input_shape)}; "
                        f"input '{in_node.name}' expects {spec}")
    if (dataset.dtype == TOKENS) != (spec.dtype == TOKENS):
        what = "token ids (int64)" if dataset.dtype == TOKENS else "numbers (float32)"
        problems.append(f"dataset '{dataset.name}' gives {what}; input '{in_node.name}' is set to {spec.dtype}")
    elif dataset.dtype == TOKENS:
        vocab = token_bound(graph, analysis, inputs[0])     # as the Embedding block declares it
        top = int(dataset.x.max()) if len(dataset.x) else 0
        if vocab is not None and top >= vocab[1]:
            problems.append(f"dataset '{dataset.name}' has token ids up to {top}; Embedding '{vocab[0]}' holds "
                            f"only {vocab[1]}: raise its num_embeddings to at least {top + 1}")
    if dataset.task == "multiclass":
        if out.shape != (dataset.num_classes,):
            problems.append(f"{dataset.num_classes} classes in the data, the model outputs {_outputs(out)} "
                            f"(Output '{out_node.name}'): end with a Linear of {dataset.num_classes} units")
    elif dataset.task == "binary":
        if out.shape not in ((1,), (2,)):
            problems.append(f"2 classes in the data (binary), the model outputs {_outputs(out)} "
                            f"(Output '{out_node.name}'): end with a Linear of 1 unit (sigmoid) or 2 units")
    else:
        target = tuple(dataset.target_shape) or (1,)
        if out.shape != target:
            problems.append(f"the data has targets of shape {format_shape(target)}, the model outputs "
                            f"{_outputs(out)} (Output '{out_node.name}'): end with a Linear of {target[-1]} units")
    return problems


def _outputs(spec) -> str:
    return f"{spec.shape[0]} value(s)" if spec.rank == 1 else f"shape {spec}"


# ----------------------------------------------------------------------------- pieces

@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1024, device: str = "cpu") -> np.ndarray:
    dev = resolve_device(device)
    model = model.to(dev).eval()
    xt = torch.from_numpy(np.array(x))  # a copy: callers' arrays may be read-only
    xt = xt.long() if xt.dtype in (torch.int32, torch.int64) else xt.float()
    outs = [model(xt[s:s + batch_size].to(dev)).float().cpu() for s in range(0, len(xt), batch_size)]
    return torch.cat(outs).numpy() if outs else np.zeros((0,), dtype=np.float32)


def _oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


# ----------------------------------------------------------------------------- the loop

def train(graph: Graph, dataset, config: TrainConfig | None = None, callbacks: Callbacks | None = None,
          control: TrainControl | None = None, splits=None, initial: dict | None = None) -> TrainResult:
    """Train the model `graph` describes on `dataset`. Raises TrainingError with a readable
    message (after calling callbacks.failed) when the run cannot start or fails. `initial`: the
    weights a run set to start_from "weights" starts from (the tensors that fit; the rest fresh)."""
    callbacks = callbacks or Callbacks()
    try:
        return _train(graph, dataset, (config or TrainConfig()).validate(), callbacks, control or TrainControl(),
                      splits, initial)
    except TrainingError as exc:
        callbacks.call("failed", {"message": str(exc)})
        raise
    except Exception as exc:  # a failing run must leave the process ready for the next one
        if _oom(exc):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            message = ("out of GPU memory: lower the batch size or the model's size, or train on the CPU "
                       f"({str(exc).splitlines()[0][:200]})")
        else:
            message = f"training failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        callbacks.call("failed", {"message": message})
        raise TrainingError(message) from exc


def _train(graph: Graph, dataset, config: TrainConfig, callbacks: Callbacks, control: TrainControl,
           splits, initial: dict | None = None) -> TrainResult:
    from .runtime.data import split_dataset, split_indices
    from .runtime.data.stream import peak_rss, streamed_splits, streams

    started = time.perf_counter()
    analysis = analyse(graph)
    if not analysis.ok:
        raise TrainingError("the graph has errors: " + "; ".join(d.message for d in analysis.errors[:3]))
    problems = check_data(graph, analysis, dataset)
    if problems:
        raise TrainingError("; ".join(problems))
    device = resolve_device(config.device)
    out_spec = analysis.specs[analysis.outputs[0]]
    task = resolve_task(dataset.task, out_spec.shape)
    final = output_activation(graph, analysis, analysis.outputs[0])
    loss_fn = loss_for(config, task, final)
    num_classes = dataset.num_classes if task == "multiclass" else (2 if task == "binary" else None)

    seed_everything(config.seed)
    try:
        model = compile_graph(graph, analysis)
    except CodegenError as exc:
        raise TrainingError(str(exc)) from None
    start = _start_weights(model, config, initial)
    streams_open: list = []
    try:
        if splits is None and streams(dataset, config, device):   # larger than the memory budget: read per batch
            parts = split_indices(dataset, config.val_split, config.test_split, config.seed)
            (x_train, x_val, x_test), stream = streamed_splits(dataset.x, parts, device, config.data_workers)
            y_train, y_val, y_test = (targets(dataset.y[p], task, device) for p in parts)
            if dataset.x_test is not None and dataset.y_test is not None:
                (x_test,), test_stream = streamed_splits(dataset.x_test, (np.arange(len(dataset.x_test)),), device,
                                                         config.data_workers)
                streams_open.append(test_stream)
                y_test = targets(dataset.y_test, task, device)
            streams_open.append(stream)
        else:
            splits = splits or split_dataset(dataset, config.val_split, config.test_split, config.seed)
            x_train, y_train = to_tensors(splits.x_train, splits.y_train, task, device)
            x_val, y_val = to_tensors(splits.x_val, splits.y_val, task, device)
            x_test, y_test = to_tensors(splits.x_test, splits.y_test, task, device)
        if len(x_train) == 0:
            raise TrainingError(f"dataset '{dataset.name}' leaves no samples to train on")
        result = _loop(graph, dataset, config, callbacks, control, started, analysis, device, task, final, loss_fn,
                       num_classes, model, x_train, y_train, x_val, y_val, x_test, y_test, peak_rss, start)
        result.start = start
        result.frozen = [graph.node(n).name for n, k in analysis.frozen_counts.items() if k and n in analysis.live]
        result.frozen_params = analysis.frozen_params
        return result
    finally:
        for stream in streams_open:
            stream.close()


def _start_weights(model, config: TrainConfig, initial: dict | None) -> dict:
    """A run set to start from the project's weights: copy those that fit into `model` (a new head
    keeps its fresh ones). Returns what the run record says of it ({} for fresh weights)."""
    if config.start_from != "weights":
        return {}
    if not initial:
        raise TrainingError("the run is set to start from the project's weights, but it has none: load weights "
                            "(File > Load Weights…, or train --weights FILE), or start from fresh weights")
    fresh = start_from(model, initial)
    if len(fresh) == len(model.state_dict()):
        raise TrainingError("none of the project's weights fit this model (other names or shapes): load weights "
                            "for it, or start from fresh weights")
    return {"from": "weights", "fresh": fresh}


def _loop(graph, dataset, config, callbacks, control, started, analysis, device, task, final, loss_fn, num_classes,
          model, x_train, y_train, x_val, y_val, x_test, y_test, peak_rss, start=None) -> TrainResult:
    model.to(device)
    if not start:                   # loaded weights keep the normalisation they were trained with
        fit_normalizers(model, x_train)

    optimizer = make_optimizer(config, model.parameters())
    n, bs = len(x_train), config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    scheduler, when = make_scheduler(config, optimizer, steps_per_epoch)
    use_amp = bool(config.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    keep_in_memory = max(1, CHECKPOINT_MEMORY // max(state_bytes, 1))

    history: list[dict] = []
    checkpoints: dict[int, dict] = {}
    monitor = Monitor(config.early_stopping, config.patience)
    best_state = None
    stopped = "completed"
    total_steps = steps_per_epoch * config.epochs
    step = 0
    monitor_name = "val_loss" if len(x_val) else "loss"
    diverged = ""    # where the loss stopped being a number, once it has
    checkpoint_failure = ""

    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        batches = epoch_batches(x_train, y_train, order, bs)
        totals = {"loss": 0.0, "correct": 0}
        pending: list[torch.Tensor] = []       # this report's batch losses, still on the device
        predicted: list[torch.Tensor] = []     # and the outputs, for training accuracy (multiclass)
        expected: list[torch.Tensor] = []      # and their targets
        first_pending = 0                      # the batch index the pending lists start at
        last_report, seen = time.perf_counter(), 0

        def flush(upto: int) -> list[float]:  # noqa: B023 - called only within this epoch
            """Read the pending losses back (one sync), add them to the epoch's totals. A loss
            that is not a number ends the epoch there (`diverged`); the finite ones before it
            are returned."""
            nonlocal pending, predicted, expected, first_pending, diverged
            if not pending:
                return []
            values = torch.stack(pending).float().cpu().tolist()
            sizes = [min(bs, n - (first_pending + i) * bs) for i in range(len(values))]
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:
                diverged = f"the loss became {values[bad]} at epoch {epoch}, batch {first_pending + bad + 1}"
                pending, predicted, expected, first_pending = [], [], [], upto
                return values[:bad]
            totals["loss"] += sum(v * k for v, k in zip(values, sizes))
            if predicted:  # one argmax for the whole report, not a kernel launch per batch
                totals["correct"] += int((torch.cat(predicted).argmax(dim=-1) == torch.cat(expected)).sum().item())
            pending, predicted, expected, first_pending = [], [], [], upto
            return values

        for b in range(steps_per_epoch):
            if control.stopped:
                stopped = "user"
                break
            if control.paused:
                control.wait_while_paused()
                if control.stopped:
                    stopped = "user"
                    break
            xb, yb = next(batches)
            loss, out = train_step(model, xb, yb, loss_fn, optimizer, params=params,
                                   grad_clip=config.grad_clip, scaler=scaler, amp=use_amp)
            if when == "batch":
                scheduler.step()
            pending.append(loss.detach())
            if task == "multiclass":
                predicted.append(out.detach())
                expected.append(yb)
            seen += len(yb)
            step += 1
            now = time.perf_counter()
            if now - last_report >= REPORT_INTERVAL or b == steps_per_epoch - 1:
                values = flush(b + 1)
                elapsed = now - epoch_start
                callbacks.call("batch_end", {
                    "epoch": epoch, "epochs": config.epochs, "batch": b + 1, "batches": steps_per_epoch,
                    "step": step, "total_steps": total_steps, "losses": values,
                    "samples_per_s": seen / elapsed if elapsed > 0 else 0.0,
                    "lr": optimizer.param_groups[0]["lr"],
                    "eta_s": (elapsed / (b + 1)) * (total_steps - step),
                    "gpu_memory": torch.cuda.memory_allocated(device) if device.type == "cuda" else None,
                    "peak_rss": peak_rss(),
                })
                last_report = now
                if diverged:
                    break
        flush(first_pending + len(pending))  # a stopped epoch's last batches
        if diverged or (stopped == "user" and seen == 0):
            break      # this epoch's weights are not a number (or no batch ran): it is not recorded
        train_loss = totals["loss"] / max(seen, 1)
        record: dict[str, Any] = {"epoch": epoch, "loss": train_loss, "lr": optimizer.param_groups[0]["lr"]}
        if task == "multiclass":
            record["accuracy"] = totals["correct"] / max(seen, 1)
        val = evaluate(model, x_val, y_val, task, loss_fn, num_classes, final_activation=final)
        record.update({f"val_{k}": v for k, v in val.items()})
        record["seconds"] = time.perf_counter() - epoch_start
        record["samples_per_s"] = seen / record["seconds"] if record["seconds"] > 0 else 0.0
        monitored = record.get(monitor_name, train_loss)
        if not math.isfinite(monitored):
            diverged = f"the validation loss became {monitored} at epoch {epoch}"
            break
        improved = monitor.update(epoch, monitored)
        state = cpu_state(model)
        if improved:
            best_state = state
        record["best"] = improved
        checkpoints[epoch] = state
        while len(checkpoints) > keep_in_memory:
            oldest = min(k for k in checkpoints if k != monitor.epoch)
            del checkpoints[oldest]
        if config.checkpoint_dir and not checkpoint_failure:
            try:
                _save_checkpoint(config.checkpoint_dir, epoch, state)
            except OSError as exc:    # a full disk costs the files, never the run
                checkpoint_failure = (f"the epoch files in {config.checkpoint_dir} stop before epoch {epoch} "
                                      f"({exc.strerror or exc})")
        step_at_epoch_end(scheduler, when, monitored)
        history.append(record)
        callbacks.call("epoch_end", dict(record, epochs=config.epochs))
        if stopped == "user":
            break
        if monitor.stop:
            stopped = "early_stopping"
            break

    note = ""
    if diverged:
        advice = "lower the learning rate, clip gradients, or check the data for NaN/Inf values"
        if best_state is None:    # no epoch came through: nothing worth keeping
            raise TrainingError(f"{diverged}: {advice}")
        stopped = "diverged"
        note = (f"{diverged}; the run ended there and kept the weights of epoch {monitor.epoch}, the best so far "
                f"({advice})")
    if checkpoint_failure:
        note = f"{note}; {checkpoint_failure}" if note else checkpoint_failure
    if step == 0 and stopped == "user":
        raise NothingTrained("stopped before the first batch: nothing was trained")
    if best_state is not None and (config.restore_best or stopped in ("early_stopping", "diverged")):
        model.load_state_dict(best_state)
    test = (evaluate(model, x_test, y_test, task, loss_fn, num_classes, detail=True, final_activation=final)
            if len(x_test) else {})
    model.eval()
    result = TrainResult(model=model, history=history, test_metrics=test, best_epoch=monitor.epoch, stopped=stopped,
                         device=str(device), state_dict=cpu_state(model), checkpoints=checkpoints, task=task,
                         class_names=dataset.class_names, seconds=time.perf_counter() - started, note=note)
    callbacks.call("finished", result.summary())
    return result


def _save_checkpoint(folder: str, epoch: int, state: dict) -> None:
    from pathlib import Path

    from safetensors.torch import save

    from .fileio import atomic_write_bytes

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path / f"epoch_{epoch:04d}.safetensors", save({k: v.contiguous() for k, v in state.items()}))


__all__ = ["Callbacks", "ConfigError", "NothingTrained", "TrainConfig", "TrainControl", "TrainResult", "TrainingError",
           "available_devices", "check_data", "evaluate", "fit_normalizers", "predict", "resolve_device", "train"]
