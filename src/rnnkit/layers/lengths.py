"""Per-sequence lengths of a padded batch: checking, masks, reversal within each sequence's length."""
from __future__ import annotations

import torch
from torch import Tensor


def check_lengths(owner: str, lengths, batch_size: int, steps: int) -> Tensor | None:
    """Validate lengths (B,) with values in [1, T]; returns an int64 CPU tensor, or None when every
    sequence fills the whole T (no masking needed)."""
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{owner}: expected lengths as a (B,) integer tensor or list, got {type(lengths).__name__}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"{owner}: expected integer lengths, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch_size:
        raise ValueError(f"{owner}: expected lengths of shape ({batch_size},), got {tuple(lengths.shape)}")
    lengths = lengths.to("cpu", torch.int64)
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1:
        bad = int((lengths < 1).nonzero()[0])
        raise ValueError(f"{owner}: expected every length in [1, {steps}], got lengths[{bad}] = {int(lengths[bad])} "
                         "(zero-length sequences have no last step; drop them from the batch)")
    if hi > steps:
        bad = int((lengths > steps).nonzero()[0])
        raise ValueError(f"{owner}: expected every length in [1, {steps}] (the padded T), "
                         f"got lengths[{bad}] = {int(lengths[bad])}")
    return None if lo == steps else lengths


def time_mask(lengths: Tensor, steps: int, device) -> Tensor:
    """(T, B) bool, True where t < length."""
    return torch.arange(steps, device=device)[:, None] < lengths.to(device)[None, :]


def reverse_within_lengths(x: Tensor, lengths: Tensor | None, time_dim: int = 0) -> Tensor:
    """Reverse a padded batch along time (dimension time_dim, batch next to it), each sequence
    within its own length; padding stays where it is. Its own inverse."""
    if lengths is None:
        return x.flip(time_dim)
    if time_dim != 0:
        return reverse_within_lengths(x.transpose(0, 1), lengths).transpose(0, 1)
    T = x.shape[0]
    t = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    L = lengths.to(x.device)[None, :]  # (1, B)
    index = torch.where(t < L, L - 1 - t, t)  # (T, B)
    index = index.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def run_packed(layer, x, state):
    """Run a layer on a PackedSequence: unpack, run on the padded batch with its lengths, pack again."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    padded, lengths = pad_packed_sequence(x, batch_first=layer.batch_first)
    out, state = layer(padded, lengths, state)

    def pack(o):
        return pack_padded_sequence(o, lengths, batch_first=layer.batch_first, enforce_sorted=False)

    return (tuple(pack(o) for o in out) if isinstance(out, tuple) else pack(out)), state
