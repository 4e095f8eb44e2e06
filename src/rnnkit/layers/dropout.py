"""Variational dropout (Gal & Ghahramani 2016): one mask per sequence, held over all time steps."""
from __future__ import annotations

import torch
from torch import Tensor


def variational_mask(batch_size: int, size: int, p: float, like: Tensor) -> Tensor:
    """(B, size) mask of 0 and 1/(1-p): multiply by it at every step."""
    keep = 1.0 - p
    return torch.empty(batch_size, size, device=like.device, dtype=like.dtype).bernoulli_(keep).div_(keep)
