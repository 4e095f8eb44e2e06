r"""What every attention shares: input checks, the source mask, the masked softmax and the weighted sum.

Attention reads a padded batch of source annotations (the *memory*) with a mask of its real positions::

    memory (B, S, Hm)   h_1 .. h_S of each source sentence, zeros after its length
    mask   (B, S) bool  True at the real positions j < length_b
    query  (B, Hq)      one decoder state per sentence (one step), or (B, T, Hq) for T steps at once

    scores (B, S) / (B, T, S)  ──masked_softmax──>  weights α  ──attend──>  context c = Σ_j α_j h_j  (B, Hm) / (B, T, Hm)

Padded positions get a weight of exactly 0 (their score is replaced by -inf before the softmax, and the
weight by 0 after it), so neither the output nor any gradient depends on the (finite) values the padding holds.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float_tensor


def source_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B,) lengths -> (B, S) bool, True where j < lengths[b]."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def check_attention_inputs(owner: str, query, memory, mask, query_size: int, memory_size: int) -> None:
    """query (B, Hq) or (B, T, Hq), memory (B, S, Hm), mask (B, S) bool or None, each row with a real position."""
    check_float_tensor(owner, "query", query)
    check_float_tensor(owner, "memory", memory)
    if memory.dim() != 3 or memory.shape[2] != memory_size or 0 in memory.shape:
        raise ValueError(f"{owner}: expected memory (B, S, {memory_size}) with B, S >= 1, got {tuple(memory.shape)}")
    B, S = memory.shape[:2]
    if query.dim() not in (2, 3) or query.shape[0] != B or query.shape[-1] != query_size:
        raise ValueError(f"{owner}: expected query ({B}, {query_size}) or ({B}, T, {query_size}) to match memory "
                         f"{tuple(memory.shape)}, got {tuple(query.shape)}")
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{owner}: expected mask to be a bool tensor (True at real positions), got {got}")
    if tuple(mask.shape) != (B, S):
        raise ValueError(f"{owner}: expected mask ({B}, {S}) to match memory {tuple(memory.shape)}, "
                         f"got {tuple(mask.shape)}")
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        b = int(empty.nonzero()[0])
        raise ValueError(f"{owner}: mask[{b}] has no real position (an empty source); expected at least one True per row")


def expand_mask(mask: Tensor | None, scores: Tensor) -> Tensor | None:
    """(B, S) -> (B, 1, S) when the scores are (B, T, S); a mask shaped like the scores stays as it is."""
    if mask is None or mask.dim() == scores.dim():
        return mask
    return mask[:, None, :]


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """softmax over the last axis (the source positions); masked positions get exactly 0."""
    mask = expand_mask(mask, scores)
    if mask is None:
        return scores.softmax(dim=-1)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return weights.masked_fill(~mask, 0.0)


def attend(weights: Tensor, memory: Tensor) -> Tensor:
    """c = Σ_j α_j h_j: weights (B, S) or (B, T, S), memory (B, S, Hm) -> (B, Hm) or (B, T, Hm)."""
    if weights.dim() == 2:
        return torch.bmm(weights.unsqueeze(1).to(memory.dtype), memory).squeeze(1)
    return torch.bmm(weights.to(memory.dtype), memory)
