"""Optimizers and learning-rate schedules, from the settings (settings.TrainConfig)."""
from __future__ import annotations

import torch


def make_optimizer(config, params) -> torch.optim.Optimizer:
    wd = config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)


def make_scheduler(config, optimizer, steps_per_epoch: int):
    """(scheduler, when it steps: 'batch', 'epoch' or 'plateau'); (None, None) without a schedule."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), "epoch"
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs), "epoch"
    if config.schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=max(steps_per_epoch, 1)), "batch"
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma,
                                                          patience=config.plateau_patience), "plateau"
    return None, None


def step_at_epoch_end(scheduler, when: str | None, monitored: float) -> None:
    """The schedule's step at the end of an epoch (a 'batch' schedule steps after every batch)."""
    if when == "epoch":
        scheduler.step()
    elif when == "plateau":
        scheduler.step(monitored)
