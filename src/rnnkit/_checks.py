"""Input checks shared by cells and layers: one place for the wording of every error.

Each check names the module, what it expected and what it received, and never fixes the
input silently (no broadcasting, truncating or casting on the user's behalf).
"""
from __future__ import annotations

import torch
from torch import Tensor


def check_positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: expected {name} to be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: expected {name} >= 1, got {value}")
    return value


def check_probability(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: expected {name} to be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: expected {name} in [0, 1), got {value}")
    return float(value)


def check_float_tensor(owner: str, name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected {name} to be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{owner}: expected {name} to be a floating-point tensor, got dtype {x.dtype} "
            "(cast with .float(), or embed integer ids first)"
        )
    return x


def check_step_input(owner: str, x, input_size: int) -> Tensor:
    """x_t for one time step: (B, F)."""
    check_float_tensor(owner, "input", x)
    if x.dim() != 2 or x.shape[1] != input_size:
        raise ValueError(f"{owner}: expected input (B, {input_size}), got {tuple(x.shape)}")
    return x


def check_state(owner: str, state, expected: list[tuple[int, ...]], x: Tensor):
    """state is one tensor or a tuple of tensors with the given shapes, matching x's dtype and device."""
    parts = [state] if isinstance(state, Tensor) else state
    single_as_tuple = len(expected) == 1 and not isinstance(state, Tensor)
    if single_as_tuple or not isinstance(parts, (tuple, list)) or len(parts) != len(expected):
        want = "a tensor" if len(expected) == 1 else f"a tuple of {len(expected)} tensors"
        got = type(state).__name__ if not isinstance(state, (tuple, list)) else f"a {type(state).__name__} of {len(state)}"
        raise TypeError(f"{owner}: expected state to be {want} of shapes {expected}, got {got}")
    for i, (s, shape) in enumerate(zip(parts, expected)):
        if not isinstance(s, Tensor):
            raise TypeError(f"{owner}: expected state[{i}] to be a torch.Tensor, got {type(s).__name__}")
        if tuple(s.shape) != tuple(shape):
            raise ValueError(f"{owner}: expected state[{i}] of shape {tuple(shape)}, got {tuple(s.shape)}")
        if s.dtype != x.dtype or s.device != x.device:
            raise ValueError(
                f"{owner}: expected state[{i}] on {x.device} with dtype {x.dtype} like the input, "
                f"got {s.device} {s.dtype}"
            )
    return state


def check_sequences(owner: str, x, input_size: int, batch_first: bool) -> tuple[int, int]:
    """A padded batch (B, T, F) (or (T, B, F) when not batch_first); returns (B, T)."""
    check_float_tensor(owner, "input", x)
    layout = "(B, T, {})" if batch_first else "(T, B, {})"
    if x.dim() != 3 or x.shape[2] != input_size:
        raise ValueError(f"{owner}: expected input {layout.format(input_size)}, got {tuple(x.shape)}")
    B, T = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    if B == 0 or T == 0:
        raise ValueError(f"{owner}: expected at least one sequence and one time step, got input {tuple(x.shape)}")
    return B, T


def check_dtype_matches(owner: str, x: Tensor, param: Tensor) -> None:
    """Outside autocast, the input must have the parameters' dtype (no silent casting)."""
    if x.dtype != param.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{owner}: expected input of dtype {param.dtype} like the parameters, got {x.dtype} "
                        "(convert the input, or the module with .to(dtype))")
