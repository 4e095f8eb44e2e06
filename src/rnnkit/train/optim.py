"""Optimizers and learning-rate schedules by name (the CLI's --optimizer and --schedule choices)."""
from __future__ import annotations

import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "plateau")


def make_optimizer(name: str, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    """SGD (with momentum), Adam, AdamW, RMSprop (Keras' default for lecture 003), Adagrad (lecture 001)."""
    if lr <= 0:
        raise ValueError(f"make_optimizer: expected lr > 0, got {lr}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"make_optimizer: expected optimizer in {OPTIMIZERS}, got {name!r}")


def make_scheduler(name: str, optimizer, *, total_steps: int | None, step_size: int = 1000, gamma: float = 0.5,
                   patience: int = 2):
    """None, StepLR (every step_size steps times gamma), cosine to zero over total_steps, or
    ReduceLROnPlateau on the validation metric (factor gamma after `patience` evaluations without progress)."""
    if name == "none":
        return None
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "cosine":
        if not total_steps:
            raise ValueError("make_scheduler: the cosine schedule needs a known number of steps (--steps)")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=gamma, patience=patience)
    raise ValueError(f"make_scheduler: expected schedule in {SCHEDULES}, got {name!r}")
