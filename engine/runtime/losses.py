"""Losses that respect a model's final activation, so Softmax or Sigmoid is never applied twice.

A graph may end in Softmax (Keras style) or in plain logits (PyTorch style). Cross-entropy on
logits applies log-softmax itself; on probabilities we take their log instead, clamped the way
Keras does, so both kinds of graph train the same.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

EPS = 1e-7
TASKS = ("multiclass", "binary", "regression")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loss(task: str, final_activation: str | None = None, regression: str = "mse") -> Loss:
    """The loss for `task` given the model's final activation ('softmax', 'sigmoid' or None)."""
    if task == "multiclass":
        if final_activation == "softmax":
            return lambda probs, target: F.nll_loss(torch.log(probs.clamp(EPS, 1.0)), target)
        return F.cross_entropy
    if task == "binary":
        if final_activation == "sigmoid":
            return lambda probs, target: F.binary_cross_entropy(probs.clamp(EPS, 1 - EPS), target.to(probs.dtype))
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    if task == "regression":
        return F.l1_loss if regression == "mae" else F.mse_loss
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def loss_for(config, task: str, final_activation: str | None) -> Loss:
    """The loss the settings ask for (config.loss; "auto": the task's) for a model ending in
    `final_activation`."""
    if config.loss == "auto":
        return make_loss(task, final_activation)
    if config.loss == "cross_entropy":
        return make_loss("multiclass", final_activation)
    if config.loss == "binary_cross_entropy":
        return make_loss("binary", final_activation)
    return make_loss("regression", None, regression=config.loss)
