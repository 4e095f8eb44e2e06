"""Pointwise helpers shared by the whole-sequence paths."""
from __future__ import annotations

import functools

import torch
from torch import Tensor

REDUCED = (torch.bfloat16, torch.float16)


@functools.cache
def _minus_one(dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 0-dim -1, made once per dtype and device (tanh_ runs twice a step: no allocation each time)."""
    with torch.inference_mode(False):
        return torch.full((), -1.0, dtype=dtype, device=device)


def tanh_(x: Tensor, sigmoid_too: Tensor | None = None, *, of: Tensor | None = None) -> Tensor:
    """tanh of x in place, or tanh(of) written into x; ``sigmoid_too``, a row slice of the same gate matrix
    that contains x, gets σ around it in the same pass.

    In float32 and float64, as 2 σ(2x) − 1 (three ops: 2x, σ, −1 + 2σ): on this project's CPUs torch's
    tanh costs 3–4x its sigmoid. In bf16 and fp16 with torch's tanh, since 2 σ(2x) − 1 would keep only a
    few bits of a small tanh.
    """
    if x.dtype in REDUCED:
        if of is not None:
            return torch.tanh(of, out=x)
        if sigmoid_too is None:
            return x.tanh_()
        kept = x.clone()
        sigmoid_too.sigmoid_()
        return x.copy_(kept).tanh_()
    torch.mul(x if of is None else of, 2, out=x)
    (x if sigmoid_too is None else sigmoid_too).sigmoid_()
    return torch.add(_minus_one(x.dtype, x.device), x, alpha=2, out=x)


def accumulator_like(t: Tensor) -> Tensor:
    """Zeros to sum a parameter's gradient over the steps in: float32 when t is bf16 or fp16."""
    return torch.zeros_like(t, dtype=torch.float32 if t.dtype in REDUCED else t.dtype)


def by_step(t: Tensor, blocks: int) -> list[tuple[Tensor, ...]]:
    """A (T, B, blocks·H) gate tensor as, per block, its T step views (B, H): ``i_, f_, g_, o_ = by_step(acts, 4)``
    gives ``i_[t]`` = the input gate of step t. The views are made once, before a step loop, by ``unbind``."""
    return [block.unbind(0) for block in t.unflatten(2, (blocks, -1)).unbind(2)]
