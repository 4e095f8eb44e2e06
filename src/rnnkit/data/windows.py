"""Lecture 003's windowed sample generator, vectorised: one fancy-indexing gather per batch, no loop per sample.

Lecture 003's generator (Chollet, *Deep Learning with Python*, 6.3) draws, for each "present" row ``r``::

    samples[j] = data[range(r - lookback, r, step)]     # (T, F), T = lookback // step past observations
    targets[j] = data[r + delay][1]                       # the temperature ``delay`` rows after r

with ``r`` in ``[min_index + lookback, max_index)``: in order (wrapping to the start when
``i + batch_size >= max_index``) or drawn with ``np.random.randint`` when ``shuffle``. Here every batch is
one gather, no loop per sample: with ``offsets = arange(-lookback, 0, step)`` (T of them)::

    rows (B,) ──+ offsets (T,)──> indices (B, T) ──data[...]──> samples (B, T, F)
    rows + delay ──data[..., target_index]──> targets (B,)

How the gather is made fast: with step > 1 a window's rows are ``step`` apart, so gathering it reads T
scattered rows. Both implementations therefore first lay the data out once by phase (:func:`phase_major`):
rows ``p, p + step, p + 2 step, ...`` side by side for each ``p < step``, so that every window is one
contiguous block of T rows. Then a batch is one gather of B blocks from the strided view of all blocks
(``sliding_window_view`` in numpy, ``Tensor.unfold`` in torch), no copy until the gather. The layout costs
one copy of the data, made when the generator or dataset is created.

- :func:`generator` is the lecture's generator with its exact parameters and output (same batches, same
  wrap-around, same ``np.random.randint`` draws), vectorised.
- :class:`WindowDataset` is every sample of that generator as a ``torch.utils.data.Dataset``, plus the
  vectorised :meth:`~WindowDataset.gather` for whole batches, and the per-step targets of lecture 000's
  sequence-to-sequence training (each input step's target is the value ``delay + step`` rows later, so
  the last step's target is the many-to-one target).
- :class:`WindowBatches` feeds a ``WindowDataset`` to :class:`rnnkit.train.Trainer`: every window once
  per epoch, reshuffled from ``(seed, epoch)``, so a resumed run sees the same batches.

Note the lecture's indexing: the last observation in a window is row ``r - step`` and the target is row
``r + delay``, so the target lies ``delay + step`` rows after the last input.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._checks import check_positive_int
from .batching import Batch, epoch_order


def _check_index(owner: str, name: str, value, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: expected {name} to be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{owner}: expected {name} >= {low}, got {value}")
    return int(value)


def phase_major(data, step: int):
    """Rows reordered by phase: ``(out, L)`` with ``out[p * L + k] = data[k * step + p]``, L = ceil(N / step).

    The window of rows ``s, s + step, ..., s + (T - 1) step`` is then the contiguous block
    ``out[block_index(s) : block_index(s) + T]``. Rows past the end of a phase are zero and never read
    by a window that lies inside the data. Works on numpy arrays and torch tensors; (N, F) -> (step * L, F).
    """
    if step == 1:
        return data, len(data)
    n, features = data.shape
    per_phase = -(-n // step)
    if isinstance(data, Tensor):
        padded = data.new_zeros((per_phase * step, features))
    else:
        padded = np.zeros((per_phase * step, features), dtype=data.dtype)
    padded[:n] = data
    stacked = padded.reshape(per_phase, step, features)  # (L, step, F)
    stacked = stacked.permute(1, 0, 2) if isinstance(data, Tensor) else stacked.transpose(1, 0, 2)  # (step, L, F)
    return stacked.reshape(step * per_phase, features), per_phase  # the reshape copies: phase-major rows


def block_index(starts, step: int, per_phase: int):
    """Where the window starting at data row ``starts`` begins in :func:`phase_major`'s layout."""
    return (starts % step) * per_phase + starts // step


def generator(data: np.ndarray, lookback: int, delay: int, min_index: int, max_index: int | None,
              shuffle: bool = False, batch_size: int = 128, step: int = 6, *, target_index: int = 1,
              rng=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Lecture 003's ``generator``, with its parameters and its output, vectorised.

    Yields ``(samples (B, lookback // step, F), targets (B,))`` as float64 forever, exactly as the lecture's
    loop does (``target_index`` is the lecture's hard-coded column 1, the temperature). ``rng`` draws the
    shuffled rows with ``rng.randint`` (default: ``np.random``, the lecture's global generator).
    """
    owner = "generator"
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{owner}: expected data (N, F), got shape {data.shape}")
    check_positive_int(owner, "lookback", lookback)
    check_positive_int(owner, "step", step)
    check_positive_int(owner, "batch_size", batch_size)
    _check_index(owner, "delay", delay)
    if max_index is None:
        max_index = len(data) - delay - 1
    if max_index <= min_index + lookback:
        raise ValueError(f"{owner}: expected max_index > min_index + lookback = {min_index + lookback}, "
                         f"got {max_index}")
    rng = np.random if rng is None else rng
    data = np.asarray(data, dtype=np.float64)  # the lecture's arrays are float64
    window = len(range(0, lookback, step))  # T
    phased, per_phase = phase_major(data, step)  # (step * L, F): each window one block of T rows
    windows = np.lib.stride_tricks.sliding_window_view(phased, window, axis=0).transpose(0, 2, 1)  # (., T, F)
    i = min_index + lookback
    while True:
        if shuffle:
            rows = rng.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = windows[block_index(rows - lookback, step, per_phase)]  # (B, T, F), one gather
        targets = data[rows + delay, target_index]  # (B,)
        yield samples, targets


class WindowDataset(Dataset):
    """Every sample of lecture 003's generator for one range of rows, as a torch Dataset.

    Args:
        data: (N, F) normalised values (numpy or tensor); kept as a float32 tensor.
        lookback, delay, step: the lecture's parameters (rows back, rows ahead, rows between observations).
        min_index, max_index: present rows ``r`` run over ``[min_index + lookback, max_index)``. To keep
            every target inside rows ``[start, stop)`` pass ``min_index=start, max_index=stop - delay``
            (:meth:`for_range` does).
        target_index: the target's column in ``data``.

    Shape:
        ``dataset[i]`` -> x (T, F), y () with T = len(range(0, lookback, step));
        :meth:`gather` (B,) indices -> x (B, T, F), y (B,); :meth:`sequence_targets` -> (B, T).
    """

    def __init__(self, data, lookback: int, delay: int, min_index: int = 0, max_index: int | None = None,
                 step: int = 6, *, target_index: int = 1):
        owner = "WindowDataset"
        self.data = torch.as_tensor(np.asarray(data, dtype=np.float32) if not isinstance(data, Tensor) else data,
                                    dtype=torch.float32)
        if self.data.dim() != 2:
            raise ValueError(f"{owner}: expected data (N, F), got shape {tuple(self.data.shape)}")
        n, features = self.data.shape
        self.lookback = check_positive_int(owner, "lookback", lookback)
        self.step = check_positive_int(owner, "step", step)
        self.delay = _check_index(owner, "delay", delay)
        self.min_index = _check_index(owner, "min_index", min_index)
        self.max_index = n - self.delay - 1 if max_index is None else _check_index(owner, "max_index", max_index)
        self.target_index = _check_index(owner, "target_index", target_index)
        if self.target_index >= features:
            raise ValueError(f"{owner}: expected target_index < {features} (the columns), got {self.target_index}")
        if self.max_index + self.delay > n:
            raise ValueError(f"{owner}: the target of present row {self.max_index - 1} is row "
                             f"{self.max_index - 1 + self.delay}, past the last row {n - 1}; expected max_index <= "
                             f"{n - self.delay}")
        self.rows = torch.arange(self.min_index + self.lookback, self.max_index)  # present rows r
        if len(self.rows) == 0:
            raise ValueError(f"{owner}: no window fits: present rows would run over "
                             f"[{self.min_index + self.lookback}, {self.max_index}) (min_index {self.min_index} + "
                             f"lookback {self.lookback} up to max_index {self.max_index})")
        self.offsets = torch.arange(-self.lookback, 0, self.step)  # (T,)
        # every window as one block of the phase-major copy, and all blocks as a view: (step * L - T + 1, T, F)
        phased, self._per_phase = phase_major(self.data, self.step)
        self.windows = phased.unfold(0, len(self.offsets), 1).transpose(1, 2)

    @classmethod
    def for_range(cls, data, rows: tuple[int, int], lookback: int, delay: int, step: int, *, target_index: int,
                  name: str = "rows") -> "WindowDataset":
        """All windows whose inputs and target lie inside ``rows = (start, stop)``; too short is an error."""
        start, stop = rows
        need = lookback + delay + 1
        if stop - start < need:
            raise ValueError(f"the {name} split has {stop - start} rows ({start}..{stop - 1}), too few for lookback "
                             f"{lookback} + delay {delay}: one window needs {need} rows")
        return cls(data, lookback, delay, start, stop - delay, step, target_index=target_index)

    @property
    def window(self) -> int:
        """T, the observations per window."""
        return len(self.offsets)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        r = self.rows[i]
        return self.data.index_select(0, r + self.offsets), self.data[r + self.delay, self.target_index]

    def gather(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Windows ``index`` (B,) at once: x (B, T, F), y (B,)."""
        rows = self.rows[index]
        x = self.windows.index_select(0, block_index(rows - self.lookback, self.step, self._per_phase))  # (B, T, F)
        return x, self.data[rows + self.delay, self.target_index]

    def sequence_targets(self, index: Tensor) -> Tensor:
        """Lecture 000's shifted target: (B, T), each input step's value ``delay + step`` rows later
        (the last column is the many-to-one target)."""
        rows = self.rows[index]
        shift = self.delay - int(self.offsets[-1])
        return self.data[rows[:, None] + self.offsets + shift, self.target_index]


class WindowBatches:
    """A batch source for :class:`rnnkit.train.Trainer`: every window once per epoch, shuffled per
    ``(seed, epoch)``; ``sequence=True`` gives lecture 000's per-step targets y (B, T) instead of y (B,)."""

    def __init__(self, dataset: WindowDataset, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 sequence: bool = False):
        self.dataset = dataset
        self.batch_size = check_positive_int("WindowBatches", "batch_size", batch_size)
        self.shuffle, self.seed, self.sequence = shuffle, seed, sequence

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        n = len(self.dataset)
        order = epoch_order(n, epoch, seed=self.seed, shuffle=self.shuffle)
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            x, y = self.dataset.gather(index)
            yield Batch(x, self.dataset.sequence_targets(index) if self.sequence else y)
