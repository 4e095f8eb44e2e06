r"""Generated algorithmic tasks for memory-augmented and pondering networks: copy and repeat copy (Graves, Wayne &
Danihelka 2014, sections 4.1 and 4.2), parity (Graves 2016, section 3.1). Seeded, of variable length.

**Copy.** A sequence of L random binary vectors of W bits (L drawn from a range), then a delimiter flag on an
extra input channel, then L blank steps during which the network must output the vectors again::

    step      0 .. L-1        L            L+1 .. 2L
    x (W+1)   bits, flag 0    0.., flag 1  0
    y (W)     -               -            the L vectors, in order      T = 2L + 1, scored: the last L steps

**Repeat copy.** L vectors, then one step with the delimiter flag and, on a second extra channel, the number of
repeats R (normalised to mean 0 and variance 1 over the training range of R, as Graves et al. do); the network
must output the sequence R times and then raise an end marker on an extra output channel::

    step      0 .. L-1              L                   L+1 .. L+L·R        L+L·R+1
    x (W+2)   bits, 0, 0            0.., 1, norm(R)     0                   0
    y (W+1)   -                     -                   the vectors R times, end 0   0.., end 1
    T = L·R + L + 2, scored: the last L·R + 1 steps, every output channel

**Parity.** One input vector of D entries (D = 64 in Graves 2016), of which a random number k in 1..D, at random
positions, are +1 or -1 (each with probability 1/2) and the rest 0; the target is 1 if the number of +1 entries
is odd, else 0. A sequence of one step: x (n, 1, D), y (n, 1, 1).

The copy tasks give ``Sequences``: x, y, a mask of the scored steps (n, T) and the lengths (n,) of the zero-padded
sequences. Training data are fresh batches drawn from (seed, TRAIN, epoch, batch) by :class:`SeededBatches`,
validation and test sets come from other streams (``rnnkit.data.synthetic.VALID``, ``TEST``) and never overlap it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from .._checks import check_positive_int
from .batching import Batch
from .synthetic import TEST, TRAIN, VALID, seeded_generator

NTM_TASKS = ("copy", "repeat-copy")

__all__ = ["FixedBatches", "NTM_TASKS", "SeededBatches", "Sequences", "TEST", "TRAIN", "VALID", "copy_sequences",
           "draw_integers", "parity_vectors", "repeat_copy_sequences", "repeat_normalisation", "seeded_generator"]


@dataclass
class Sequences:
    """A set of zero-padded sequences: x (n, T, F), y (n, T, O) in {0, 1}, mask (n, T) 1.0 at the scored steps,
    lengths (n,) int64 valid steps."""

    x: Tensor
    y: Tensor
    mask: Tensor
    lengths: Tensor

    def batch(self, rows=None) -> Batch:
        """These sequences (or some rows) as one Batch, the mask as its ``weights``; lengths only when they differ."""
        x, y, mask, lengths = (self.x, self.y, self.mask, self.lengths) if rows is None else \
            (self.x[rows], self.y[rows], self.mask[rows], self.lengths[rows])
        T = int(lengths.max())
        ragged = bool((lengths != T).any())
        return Batch(x[:, :T], y[:, :T], lengths if ragged else None, weights=mask[:, :T])


def _check_counts(owner: str, name: str, values) -> Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.numel() == 0 or values.is_floating_point() or values.dtype == torch.bool:
        raise ValueError(f"{owner}: expected {name} as a non-empty (n,) integer tensor, got "
                         f"{values.dtype} {tuple(values.shape)}")
    if int(values.min()) < 1:
        raise ValueError(f"{owner}: expected every {name[:-1] if name.endswith('s') else name} >= 1, got "
                         f"{int(values.min())}")
    return values.long()


def draw_integers(n: int, low: int, high: int, generator: torch.Generator) -> Tensor:
    """n integers drawn uniformly from low..high (both included): (n,) int64."""
    return torch.randint(low, high + 1, (n,), generator=generator)


def _bits(lengths: Tensor, width: int, generator: torch.Generator) -> Tensor:
    """Random bit vectors (n, max L, W), zero past each sequence's length."""
    L = int(lengths.max())
    bits = torch.randint(0, 2, (len(lengths), L, width), generator=generator).float()
    return bits * (torch.arange(L)[None, :] < lengths[:, None]).unsqueeze(-1)


def copy_sequences(lengths, width: int, generator: torch.Generator) -> Sequences:
    """One copy-task sequence per entry of lengths (n,): x (n, 2L+1, W+1), y (n, 2L+1, W) (L the longest)."""
    lengths = _check_counts("copy_sequences", "lengths", lengths)
    check_positive_int("copy_sequences", "width", width)
    n, L = len(lengths), int(lengths.max())
    bits = _bits(lengths, width, generator)  # (n, L, W)
    T = 2 * L + 1
    x, y, mask = torch.zeros(n, T, width + 1), torch.zeros(n, T, width), torch.zeros(n, T)
    x[:, :L, :width] = bits
    rows = torch.arange(n)
    x[rows, lengths, width] = 1.0  # the delimiter
    j = torch.arange(L)[None, :]  # (1, L): the j-th vector ...
    valid = j < lengths[:, None]  # (n, L)
    out = (lengths[:, None] + 1 + j)[valid]  # ... is output at step L + 1 + j
    who = rows[:, None].expand(n, L)[valid]
    y[who, out] = bits[valid]
    mask[who, out] = 1.0
    return Sequences(x, y, mask, 2 * lengths + 1)


def repeat_normalisation(low: int, high: int) -> tuple[float, float]:
    """Mean and standard deviation of R uniform on low..high (std 1 when there is one value)."""
    mean = (low + high) / 2
    var = ((high - low + 1) ** 2 - 1) / 12
    return mean, (var ** 0.5 if var > 0 else 1.0)


def repeat_copy_sequences(lengths, repeats, width: int, generator: torch.Generator, *,
                          repeat_range: tuple[int, int]) -> Sequences:
    """One repeat-copy sequence per (length, repeats) pair, each (n,): x (n, T, W+2), y (n, T, W+1) with
    T = max(L·R + L + 2). ``repeat_range`` (low, high): the training range of R, which normalises the count."""
    lengths = _check_counts("repeat_copy_sequences", "lengths", lengths)
    repeats = _check_counts("repeat_copy_sequences", "repeats", repeats)
    check_positive_int("repeat_copy_sequences", "width", width)
    if repeats.shape != lengths.shape:
        raise ValueError(f"repeat_copy_sequences: expected one repeat count per sequence, got {len(repeats)} counts "
                         f"for {len(lengths)} lengths")
    n, L = len(lengths), int(lengths.max())
    mean, std = repeat_normalisation(*repeat_range)
    bits = _bits(lengths, width, generator)  # (n, L, W)
    copies = lengths * repeats  # (n,) output steps before the end marker
    steps = copies + lengths + 2
    T = int(steps.max())
    x, y, mask = torch.zeros(n, T, width + 2), torch.zeros(n, T, width + 1), torch.zeros(n, T)
    rows = torch.arange(n)
    x[:, :L, :width] = bits
    x[rows, lengths, width] = 1.0  # the delimiter ...
    x[rows, lengths, width + 1] = (repeats.float() - mean) / std  # ... and the number of copies
    k = torch.arange(int(copies.max()))[None, :]  # (1, K): output step k of the copies ...
    valid = k < copies[:, None]
    source = (k % lengths[:, None]).clamp(max=L - 1)  # ... repeats vector k mod L
    out = (lengths[:, None] + 1 + k)[valid]
    who = rows[:, None].expand_as(valid)[valid]
    y[who, out, :width] = bits[who, source.expand_as(valid)[valid]]
    mask[who, out] = 1.0
    end = lengths + 1 + copies
    y[rows, end, width] = 1.0  # the end marker
    mask[rows, end] = 1.0
    return Sequences(x, y, mask, steps)


def parity_vectors(n: int, size: int, generator: torch.Generator, *, nonzeros=None) -> tuple[Tensor, Tensor]:
    """n parity examples: x (n, 1, D) in {-1, 0, 1}, y (n, 1, 1) = (number of +1 entries) mod 2. ``nonzeros``
    (n,) fixes how many entries are non-zero (default: uniform on 1..D)."""
    check_positive_int("parity_vectors", "n", n)
    check_positive_int("parity_vectors", "size", size)
    if nonzeros is None:
        k = draw_integers(n, 1, size, generator)
    else:
        k = _check_counts("parity_vectors", "nonzeros", nonzeros)
        if len(k) != n or int(k.max()) > size:
            raise ValueError(f"parity_vectors: expected {n} non-zero counts in 1..{size}, got {len(k)} with "
                             f"maximum {int(k.max())}")
    rank = torch.rand(n, size, generator=generator).argsort(dim=1).argsort(dim=1)  # a random order of positions
    signs = torch.randint(0, 2, (n, size), generator=generator) * 2 - 1
    x = ((rank < k[:, None]) * signs).float()  # the first k positions of the order are non-zero
    y = ((x == 1).sum(dim=1) % 2).float()
    return x[:, None, :], y[:, None, None]


class SeededBatches:
    """Fresh training batches: batch i of epoch e is ``make(generator)`` with the generator seeded by
    (seed, TRAIN, e, i), so every epoch is new data and a resumed run replays it exactly."""

    def __init__(self, make: Callable[[torch.Generator], Batch], batches_per_epoch: int, *, seed: int = 0):
        self.make = make
        self.batches_per_epoch = check_positive_int("SeededBatches", "batches_per_epoch", batches_per_epoch)
        seeded_generator(seed, TRAIN)  # checks the seed now
        self.seed = seed

    def __len__(self) -> int:
        return self.batches_per_epoch

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        for i in range(self.batches_per_epoch):
            yield self.make(seeded_generator(self.seed, TRAIN, epoch, i))


class FixedBatches:
    """A fixed set (validation, test) in batches of ``batch_size``, sequences sorted by length so that each batch
    is padded only to its own longest sequence. The same batches for every epoch."""

    def __init__(self, sequences: Sequences, batch_size: int):
        check_positive_int("FixedBatches", "batch_size", batch_size)
        order = torch.argsort(sequences.lengths, stable=True)
        self._batches = [sequences.batch(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self._batches)

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        return iter(self._batches)
