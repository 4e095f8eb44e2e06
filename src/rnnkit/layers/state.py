"""Recurrent state helpers: a state is a Tensor, or a tuple/list of states (LSTM (h, c), layers, directions)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

State = Any


def map_state(fn: Callable[..., Tensor], *states: State) -> State:
    """Apply fn to matching tensors of one or more states of the same structure; None (a model with no
    state, or the initial state) maps to None."""
    first = states[0]
    if first is None:
        return None
    if isinstance(first, Tensor):
        return fn(*states)
    if isinstance(first, (tuple, list)):
        mapped = [map_state(fn, *parts) for parts in zip(*states)]
        return type(first)(mapped) if isinstance(first, list) else tuple(mapped)
    raise TypeError(f"expected a state made of tensors, tuples and lists, got {type(first).__name__}")


def detach_state(state: State) -> State:
    """Cut the graph behind a state (truncated BPTT): same values, no history."""
    return map_state(lambda s: s.detach(), state)


def describe(state: State) -> str:
    if isinstance(state, Tensor):
        return f"Tensor{tuple(state.shape)}"
    if isinstance(state, (tuple, list)):
        inner = ", ".join(describe(s) for s in state)
        return f"({inner})" if isinstance(state, tuple) else f"[{inner}]"
    return type(state).__name__


def check_state_like(owner: str, state: State, template: State) -> State:
    """state must have template's structure, shapes, dtype and device; tuple and list are interchangeable.

    Under autocast a state may come back in the lower precision (bf16/fp16) from the previous call;
    it is then cast to the template's dtype, the precision the layer keeps its state in.
    """

    def fail():
        raise ValueError(f"{owner}: expected state {describe(template)}, got {describe(state)}")

    def walk(s, t):
        if isinstance(t, Tensor):
            if not isinstance(s, Tensor) or s.shape != t.shape:
                fail()
            if s.dtype != t.dtype and s.device == t.device and s.is_floating_point() and \
                    torch.is_autocast_enabled(t.device.type):
                cast.append(True)
                return
            if s.dtype != t.dtype or s.device != t.device:
                raise ValueError(f"{owner}: expected state tensors on {t.device} with dtype {t.dtype}, "
                                 f"got {s.device} {s.dtype}")
        elif not isinstance(s, (tuple, list)) or len(s) != len(t):
            fail()
        else:
            for a, b in zip(s, t):
                walk(a, b)

    cast: list[bool] = []
    walk(state, template)
    if not cast:
        return state
    return map_state(lambda s, t: s if s.dtype == t.dtype else s.to(t.dtype), state, template)
