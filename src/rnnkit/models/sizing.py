"""Models of different kinds at about equal parameter counts, the way Bai, Kolter & Koltun (2018) compare
RNN, GRU, LSTM and TCN ("Model Size (≈)" in lecture 003's table)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def hidden_for_parameters(build: Callable[[int], nn.Module], budget: int) -> int:
    """The hidden size h whose model ``build(h)`` comes closest to ``budget`` trainable parameters.

    ``build`` must give models whose size grows with h (``lambda h: SequenceModel(replace(config, hidden=h))``).
    The models are built on the meta device, so nothing is allocated however large the search goes.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"hidden_for_parameters: expected a budget >= 1 parameters, got {budget!r}")

    def count(hidden: int) -> int:
        with torch.device("meta"):
            return count_parameters(build(hidden))

    lo, hi = 1, 1
    while count(hi) < budget:  # double, then bisect to the first h with count(h) >= budget
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < budget else (lo, mid)
    return hi if hi == 1 or abs(count(hi) - budget) <= abs(count(hi - 1) - budget) else hi - 1
