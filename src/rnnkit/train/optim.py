"""Optimizers and learning-rate schedules by name (the CLI's --optimizer and --schedule choices)."""
from __future__ import annotations

import math
from typing import Callable

import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "cosine-time", "plateau")


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
                   patience: int = 2, seconds: float | None = None, clock: Callable[[], float] | None = None):
    """None, StepLR (every step_size steps times gamma), cosine to zero over total_steps, cosine to zero over a
    time budget (``cosine-time``: lr0 · ½ (1 + cos(π · min(1, clock() / seconds))) at every step, clock() the
    seconds of training so far), or ReduceLROnPlateau on the validation metric (factor gamma after `patience`
    evaluations without progress).

    ``cosine-time`` anneals a run that stops at a time budget (``max_time``; ``--max-minutes`` on the command
    line) to zero exactly when the budget ends, however many steps the machine manages; the step-count cosine
    needs the count known in advance."""
    if name == "none":
        return None
    if name == "cosine-time":
        if not seconds or clock is None:
            raise ValueError("make_scheduler: the cosine-time schedule needs a time budget (max_time, --max-minutes)")
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda _step: 0.5 * (1.0 + math.cos(math.pi * min(1.0, clock() / seconds))))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "cosine":
        if not total_steps:
            raise ValueError("make_scheduler: the cosine schedule needs a known number of steps (--steps)")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=gamma, patience=patience)
    raise ValueError(f"make_scheduler: expected schedule in {SCHEDULES}, got {name!r}")
