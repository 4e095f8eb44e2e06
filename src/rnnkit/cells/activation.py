"""Activation functions by name, for the cells that take one (Elman, Jordan)."""
from __future__ import annotations

from typing import Callable

import torch

ACTIVATIONS: dict[str, Callable] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


def resolve(owner: str, activation) -> tuple[str | None, Callable]:
    """Return (name or None for a user callable, function)."""
    if callable(activation):
        return None, activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return activation, ACTIVATIONS[activation]
    raise ValueError(f"{owner}: expected activation to be one of {sorted(ACTIVATIONS)} or a callable, got {activation!r}")
