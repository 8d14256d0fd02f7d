"""The epoch loop's pure pieces, shared by Deepwire's training (engine.training) and the
exported train.py: seeding, tensors, one optimisation step, normalizer fitting, evaluation,
and the best epoch with early stopping.

Data that fits in memory lives as whole tensors on the device and is indexed in whole
batches: no per-sample DataLoader cost, and no host synchronisation per batch. Larger data is
read batch by batch (data/stream.py's `StreamedInputs`, which stands in for the input tensor
here: `epoch_batches`, `evaluate` and `fit_normalizers` take either).
"""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from .distributed import all_sum


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_task(task: str, out_shape: tuple[int, ...]) -> str:
    """The task a run trains: binary data with a 2-unit output trains as two-class cross-entropy."""
    if task == "binary" and tuple(out_shape) == (2,):
        return "multiclass"
    return task


def to_tensors(x: np.ndarray, y: np.ndarray, task: str, device: torch.device):
    """(inputs, targets) on `device`: token ids int64, numbers float32 (uint8 pixels are copied as
    bytes and become float32 there); class ids int64, other targets float32 of shape (N, k)."""
    xt = torch.as_tensor(np.ascontiguousarray(x)).to(device)
    xt = xt.long() if xt.dtype in (torch.int32, torch.int64) else xt.float()
    return xt, targets(y, task, device)


def targets(y: np.ndarray, task: str, device: torch.device) -> torch.Tensor:
    """Targets on `device`: class ids int64, other targets float32 of shape (N, k) (streamed data's too)."""
    yt = torch.as_tensor(np.ascontiguousarray(y))
    if task == "multiclass":
        yt = yt.long()
    else:
        yt = yt.float()
        if yt.dim() == 1:
            yt = yt.unsqueeze(1)
    return yt.to(device)


def epoch_batches(x, y: torch.Tensor, order: torch.Tensor, batch_size: int):
    """(inputs, targets) of each batch of an epoch: `order` holds positions in the split, on y's
    device. x: a whole tensor (indexed on the device) or StreamedInputs (read batch by batch)."""
    if isinstance(x, torch.Tensor):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
        return
    for start, xb in zip(range(0, len(order), batch_size), x.epoch(order, batch_size)):
        yield xb, y[order[start:start + batch_size]]


def _in_order(x, batch_size: int):
    """(start, inputs) of consecutive batches of a whole tensor or of StreamedInputs."""
    if isinstance(x, torch.Tensor):
        for start in range(0, len(x), batch_size):
            yield start, x[start:start + batch_size]
        return
    yield from zip(range(0, len(x), batch_size), x.in_order(batch_size))


def train_step(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, loss_fn, optimizer, *, params=(),
               grad_clip: float = 0.0, scaler=None, amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch: (loss, output), both left on the device (no sync)."""
    if amp:
        with torch.autocast(xb.device.type):
            out = net(xb)
    else:
        out = net(xb)
    loss = loss_fn(out.float(), yb)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
    return loss, out


@torch.no_grad()
def start_from(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy into `model` every tensor of `state` whose name and shape fit (in the model's dtype);
    returns the names that keep their fresh values (a new head, a block the weights lack)."""
    own = model.state_dict()
    fresh = [k for k, t in own.items() if k not in state or tuple(state[k].shape) != tuple(t.shape)]
    with torch.no_grad():
        for k, t in own.items():
            if k not in fresh:
                t.copy_(state[k].to(dtype=t.dtype, device=t.device))
    return fresh


def fit_normalizers(model: nn.Module, x: torch.Tensor, batch_size: int = 4096, limit: int = 100_000) -> int:
    """Fit every Normalization block on the training data that reaches it, in order."""
    norms = [m for m in model.modules() if type(m).__name__ == "Normalization" and hasattr(m, "fit")]
    if not norms:
        return 0
    was_training = model.training
    model.eval()
    sample = x[:limit] if isinstance(x, torch.Tensor) else x.normalizer_sample(limit)
    for norm in norms:
        seen: list[torch.Tensor] = []
        hook = norm.register_forward_pre_hook(lambda mod, args, out=seen: out.append(args[0].detach()))
        try:
            for start in range(0, len(sample), batch_size):
                model(sample[start:start + batch_size])
        finally:
            hook.remove()
        norm.fit(torch.cat(seen).float())
    model.train(was_training)
    return len(norms)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, loss_fn,
             num_classes: int | None = None, batch_size: int = 1024, detail: bool = False,
             final_activation: str | None = None, world: int = 1, rank: int = 0) -> dict:
    """Loss and metrics over (x, y) in evaluation mode: accuracy (classification) or mean
    absolute and squared error (regression). `detail` adds per-class precision/recall and the
    confusion matrix (classification) or R² (regression).

    Under torchrun (`world` processes) each process takes every world-th sample and the sums
    are added over processes (no detail)."""
    was_training = model.training
    model.eval()
    if world > 1:
        x, y = x[rank::world], y[rank::world]
    n = len(x)
    loss_sum = torch.zeros((), device=y.device)
    preds, outs = [], []
    for start, xb in _in_order(x, batch_size):
        yb = y[start:start + len(xb)]
        out = model(xb).float()
        loss_sum += loss_fn(out, yb) * len(xb)
        if task == "multiclass":
            preds.append(out.argmax(dim=-1))
        elif task == "binary":
            threshold = 0.5 if final_activation == "sigmoid" else 0.0
            preds.append((out > threshold).long().view(-1))
        else:
            outs.append(out)
    model.train(was_training)
    classify = task in ("multiclass", "binary")
    if world > 1:
        if classify:
            score = (torch.cat(preds) == y.view(-1).long()).sum() if n else 0
        else:
            score = (torch.cat(outs) - y.view(n, -1)).abs().sum() if n else 0
        loss_total, count, score = all_sum([loss_sum, n, score], y.device)
        if count == 0:
            return {}
        return {"loss": loss_total / count, "accuracy" if classify else "mae": score / count}
    if n == 0:
        return {}
    metrics: dict[str, Any] = {"loss": float(loss_sum.item() / n)}
    if classify:
        pred = torch.cat(preds)
        target = y.view(-1).long()
        metrics["accuracy"] = float((pred == target).float().mean().item())
        if detail:
            c = num_classes or 2
            cm = torch.bincount(target * c + pred, minlength=c * c).reshape(c, c).cpu()
            tp = cm.diag().double()
            metrics["confusion_matrix"] = cm.tolist()
            metrics["precision"] = [float(v) for v in (tp / cm.sum(0).clamp(min=1)).tolist()]
            metrics["recall"] = [float(v) for v in (tp / cm.sum(1).clamp(min=1)).tolist()]
    else:
        out = torch.cat(outs)
        err = out - y.view_as(out)
        metrics["mae"] = float(err.abs().mean().item())
        metrics["mse"] = float((err ** 2).mean().item())
        if detail:
            var = ((y - y.mean(0)) ** 2).mean().item()
            metrics["r2"] = float(1 - metrics["mse"] / var) if var > 0 else 0.0
    return metrics


class Monitor:
    """The best epoch by the monitored loss (the validation loss, else the training loss) and
    early stopping's count of epochs without improvement."""

    def __init__(self, early_stopping: bool = False, patience: int = 5):
        self.early_stopping, self.patience = early_stopping, patience
        self.best, self.epoch, self.bad_epochs = math.inf, None, 0

    def update(self, epoch: int, monitored: float) -> bool:
        """Record an epoch's monitored loss; True when it is the best so far."""
        if monitored < self.best:
            self.best, self.epoch, self.bad_epochs = monitored, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self) -> bool:
        """Early stopping's patience has run out."""
        return self.early_stopping and self.bad_epochs >= self.patience


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state dict (weights and buffers) on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
