"""Batches and the sources that produce them, deterministically per epoch (so training resumes exactly).

A source is any object with ``batches(epoch) -> Iterator[Batch]`` that yields the same batches in the
same order every time it is asked for the same epoch. Two sources cover the lectures' training setups:

``TensorBatches`` — independent examples (classification, seq2seq, forecasting windows), shuffled
per epoch with a generator seeded by (seed, epoch)::

    x (N, T, F), y (N, ...) ──shuffle(seed, epoch)──> Batch(x (B, T, F), y (B, ...), lengths (B,))

``StreamBatches`` — one long token stream cut into B parallel streams and consecutive chunks of T,
so the hidden state carries over from batch i to batch i+1 (char-rnn, pytorch/examples
word_language_model)::

    ids (N,) ─> (B, N // B):  stream 0: a b c d e f | g h i j k l | ...
                              stream 1: m n o p q r | s t u v w x | ...
                              batch 0 = columns 0..T-1, batch 1 = columns T..2T-1, ...
    x = ids[:, i : i + T], y = ids[:, i + 1 : i + 1 + T]
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterator

import torch
from torch import Tensor


def epoch_order(n: int, epoch: int, *, seed: int, shuffle: bool = True) -> torch.Tensor:
    """The order of n examples in one epoch: a permutation drawn from (seed, epoch) alone, so a resumed run
    sees the same batches (or 0..n-1 without shuffling). (n,) int64."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


@dataclass
class Batch:
    """One batch. x: (B, T, ...) inputs; y: targets; lengths: (B,) valid steps or None;
    weights: per-target weights or None; reset: (B,) bool, streams whose carried state restarts here."""

    x: Tensor
    y: Tensor
    lengths: Tensor | None = None
    weights: Tensor | None = None
    reset: Tensor | None = None

    @property
    def size(self) -> int:
        return self.x.shape[0]

    @property
    def tokens(self) -> int:
        """Valid input positions: B * T, or the sum of lengths."""
        if self.lengths is not None:
            return int(self.lengths.sum())
        return self.x.shape[0] * (self.x.shape[1] if self.x.dim() > 1 else 1)

    def to(self, device) -> "Batch":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if getattr(self, f.name) is not None})

    def rows(self, start: int, stop: int) -> "Batch":
        """Rows start..stop-1 of every field (data-parallel sharding)."""
        return replace(self, **{f.name: getattr(self, f.name)[start:stop] for f in fields(self)
                                if getattr(self, f.name) is not None})

    def steps(self, start: int, stop: int) -> "Batch":
        """Time steps start..stop-1 of x, y and weights (truncated BPTT chunks of a stream batch)."""
        if self.lengths is not None:
            raise ValueError("Batch: truncated BPTT needs unpadded stream batches, got a batch with lengths")
        cut = {"x": self.x[:, start:stop], "y": self.y[:, start:stop]}
        if self.weights is not None:
            cut["weights"] = self.weights[:, start:stop]
        return replace(self, **cut)


class TensorBatches:
    """Independent examples in batches, reshuffled every epoch from (seed, epoch)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, lengths: Tensor | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if x.shape[0] != y.shape[0] or (lengths is not None and lengths.shape[0] != x.shape[0]):
            raise ValueError(f"TensorBatches: expected x, y and lengths with the same number of examples, got "
                             f"{x.shape[0]}, {y.shape[0]}" + ("" if lengths is None else f", {lengths.shape[0]}"))
        if batch_size < 1:
            raise ValueError(f"TensorBatches: expected batch_size >= 1, got {batch_size}")
        if x.shape[0] == 0 or (drop_last and x.shape[0] < batch_size):
            raise ValueError(f"TensorBatches: expected at least {batch_size if drop_last else 1} examples, got {x.shape[0]}")
        self.x, self.y, self.lengths = x, y, lengths
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        n = self.x.shape[0]
        order = epoch_order(n, epoch, seed=self.seed, shuffle=self.shuffle)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield Batch(self.x[idx], self.y[idx], None if self.lengths is None else self.lengths[idx])


class StreamBatches:
    """A token stream as B parallel streams, read T steps at a time (stateful truncated BPTT)."""

    def __init__(self, ids: Tensor, batch_size: int, seq_len: int):
        if ids.dim() != 1:
            raise ValueError(f"StreamBatches: expected a 1-D stream of ids, got shape {tuple(ids.shape)}")
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"StreamBatches: expected batch_size and seq_len >= 1, got {batch_size} and {seq_len}")
        columns = (ids.numel() - 1) // batch_size  # -1: every input needs a next token as target
        if columns < 1:
            raise ValueError(f"StreamBatches: a stream of {ids.numel()} tokens is too short for {batch_size} "
                             f"streams (needs at least {batch_size + 1})")
        self.data = ids[: batch_size * columns + 1]
        self.batch_size, self.seq_len, self.columns = batch_size, seq_len, columns
        # stream b covers positions b*columns .. (b+1)*columns (inclusive, for the last target)
        starts = torch.arange(batch_size) * columns
        self.inputs = torch.stack([self.data[s:s + columns] for s in starts.tolist()])  # (B, columns)
        self.targets = torch.stack([self.data[s + 1:s + 1 + columns] for s in starts.tolist()])

    def __len__(self) -> int:
        return -(-self.columns // self.seq_len)

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        for i in range(0, self.columns, self.seq_len):
            reset = torch.full((self.batch_size,), i == 0)
            yield Batch(self.inputs[:, i:i + self.seq_len], self.targets[:, i:i + self.seq_len], reset=reset)
