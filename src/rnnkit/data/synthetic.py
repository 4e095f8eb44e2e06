r"""Generated long-range memory tasks, seeded and made on the fly: the adding problem, copy memory
(both as Bai, Kolter & Koltun 2018 define them, lecture 003's table) and lecture 002's noisy 1-2-3 pattern.

**Adding problem** (Hochreiter & Schmidhuber 1997; Bai et al. section 5.2, their ``data_generator``):
T steps of two features, a random number in [0, 1) and a marker that is 1 at exactly two random
distinct steps; the target is the sum of the two marked numbers::

    x (N, T, 2):  x[:, t, 0] ~ U[0, 1),  x[:, t, 1] = 1 at two positions, else 0
    y (N, 1):     sum of x[:, t, 0] over the two marked t

Predicting 1 every time gives MSE Var(u1 + u2) = 2/12 ≈ 0.167 (Bai et al. quote 0.1767).

**Copy memory** (Bai et al. section 5.3): 10 symbols drawn from 1..8, then T - 1 blanks (0), then the marker
9 repeated 11 times (the first is the delimiter); the target is blank everywhere except the last 10 steps,
which repeat the 10 symbols. Symbols enter as one-hot vectors over the 10 classes 0..9 (Bai et al. feed the
raw digit as one channel; one-hot is the usual input for recurrent models)::

    ids:  s1 .. s10  0 .. 0 (T-1)  9 .. 9 (11)           length T + 20
    y:    0 ......................... 0 (T+10)  s1 .. s10
    x (N, T+20, 10) one-hot of ids;  y (N, T+20) int64

A model without memory outputs blank, then a uniform guess among the 8 symbols: cross-entropy
10 ln 8 / (T + 20) per step, 0.0204 for T = 1000 (exactly the LSTM's published loss).

**Noisy 1-2-3 pattern** (lecture 002, "Learning over sequences"): the cycle 1 2 3 1 2 3 ... is a plain
transition S_t = f(S_{t-1}), but its noisy version, as on the slide ``1.1, 2.2, 3.1, 1.3, 2.2, 3.3, ...``,
"needs S_t = f(S_{t-1}, X_t)". Here each value is the cycle plus noise drawn uniformly from
{0.0, 0.1, 0.2, 0.3, 0.4} (the slide's values), each sequence starts at a random phase, and the task is to
predict the next value::

    v_t = c_t + e_t,  c_t = 1 + (phase + t) mod 3,  e_t ~ U{0, 0.1, .., 0.4}
    x (N, T, 1) = v_0 .. v_{T-1};  y (N, T, 1) = v_1 .. v_T

Without reading the input (phase unknown) the best prediction is the mean 2.2: MSE Var(c) + Var(e) =
2/3 + 0.02 ≈ 0.687; reading it, a model can reach the noise's variance, 0.02.

Every set comes from a ``torch.Generator`` seeded by (seed, stream, epoch, batch) through NumPy's
``SeedSequence``: training batches are fresh each epoch and the same on every run and resume, and the
validation and test sets (other streams) never overlap the training stream.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_positive_int
from .batching import Batch

TASKS = ("adding", "copy", "pattern")
COPY_MEMORY = 10  # symbols to remember (Bai et al.'s "seq_len")
COPY_CLASSES = 10  # 0 blank, 1..8 symbols, 9 marker
COPY_MARKER = 9
PATTERN_NOISE = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
TRAIN, VALID, TEST = 0, 1, 2  # generator streams


def adding_problem(n: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n examples of T = length steps: x (n, T, 2), y (n, 1)."""
    check_positive_int("adding_problem", "n", n)
    check_positive_int("adding_problem", "length", length)
    if length < 2:
        raise ValueError(f"adding_problem: expected length >= 2 (two marked steps), got {length}")
    numbers = torch.rand(n, length, generator=generator)  # (N, T)
    first = torch.randint(0, length, (n,), generator=generator)
    second = torch.randint(0, length - 1, (n,), generator=generator)
    second = second + (second >= first).long()  # two distinct positions, each pair equally likely
    rows = torch.arange(n)
    markers = torch.zeros(n, length)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (numbers[rows, first] + numbers[rows, second]).unsqueeze(1)  # (N, 1)
    return torch.stack([numbers, markers], dim=2), y  # (N, T, 2), (N, 1)


def copy_memory_ids(n: int, blank_length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n examples with T = blank_length: input ids (n, T + 20) and targets (n, T + 20), both int64."""
    check_positive_int("copy_memory", "n", n)
    check_positive_int("copy_memory", "blank_length", blank_length)
    M = COPY_MEMORY
    symbols = torch.randint(1, 9, (n, M), generator=generator)  # 1..8
    blanks = torch.zeros(n, blank_length - 1, dtype=torch.long)
    markers = torch.full((n, M + 1), COPY_MARKER)
    ids = torch.cat([symbols, blanks, markers], dim=1)  # (N, T + 2M)
    targets = torch.cat([torch.zeros(n, blank_length + M, dtype=torch.long), symbols], dim=1)  # (N, T + 2M)
    return ids, targets


def copy_memory(n: int, blank_length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n examples with T = blank_length: x (n, T + 20, 10) one-hot float, y (n, T + 20) int64."""
    ids, targets = copy_memory_ids(n, blank_length, generator)
    return F.one_hot(ids, COPY_CLASSES).float(), targets


def noisy_pattern(n: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n sequences of T = length values of the noisy 1-2-3 cycle: x (n, T, 1), y (n, T, 1) = the next values."""
    check_positive_int("noisy_pattern", "n", n)
    check_positive_int("noisy_pattern", "length", length)
    phase = torch.randint(0, 3, (n, 1), generator=generator)
    cycle = 1 + (phase + torch.arange(length + 1)) % 3  # (N, T + 1): 1 2 3 1 2 3 ... from a random phase
    noise = PATTERN_NOISE[torch.randint(0, len(PATTERN_NOISE), (n, length + 1), generator=generator)]
    values = cycle.float() + noise  # (N, T + 1)
    return values[:, :-1, None], values[:, 1:, None]


GENERATORS = {"adding": adding_problem, "copy": copy_memory, "pattern": noisy_pattern}


def check_task(owner: str, task: str) -> str:
    if task not in GENERATORS:
        raise ValueError(f"{owner}: expected task in {TASKS}, got {task!r}")
    return task


def seeded_generator(seed: int, stream: int, epoch: int = 0, index: int = 0) -> torch.Generator:
    """A torch generator for (seed, stream, epoch, index): independent draws for every combination."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"synthetic: expected a seed >= 0, got {seed!r}")
    state = np.random.SeedSequence([seed, stream, epoch, index]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def generate(task: str, n: int, length: int, *, seed: int, stream: int = TEST) -> tuple[Tensor, Tensor]:
    """A fixed set of n examples (validation or test): ``generate("adding", 1000, 600, seed=0)``."""
    check_task("generate", task)
    return GENERATORS[task](n, length, seeded_generator(seed, stream))


def input_size(task: str) -> int:
    """Features per step of the task's inputs."""
    return {"adding": 2, "copy": COPY_CLASSES, "pattern": 1}[check_task("input_size", task)]


def output_size(task: str) -> int:
    """Outputs per prediction: 1 value (adding, pattern) or 10 class scores (copy)."""
    return {"adding": 1, "copy": COPY_CLASSES, "pattern": 1}[check_task("output_size", task)]


def steps(task: str, length: int) -> int:
    """Time steps of one example: T, or T + 20 for copy memory."""
    return length + 2 * COPY_MEMORY if check_task("steps", task) == "copy" else length


def baseline(task: str, length: int) -> tuple[str, float]:
    """The trivial predictor and its expected loss (MSE, or cross-entropy per step for copy)."""
    check_task("baseline", task)
    if task == "adding":
        return "predict 1", 1 / 6
    if task == "copy":
        return ("blank, then a uniform guess among the 8 symbols (no memory)",
                COPY_MEMORY * math.log(8) / (length + 2 * COPY_MEMORY))
    return "predict the mean 2.2 (no input)", 2 / 3 + float(PATTERN_NOISE.var(unbiased=False))


def baseline_loss(task: str, x: Tensor, y: Tensor) -> float:
    """The trivial predictor's loss measured on a set (x, y) of the task."""
    check_task("baseline_loss", task)
    if task == "adding":
        return float(F.mse_loss(torch.ones_like(y), y))
    if task == "pattern":
        return float(F.mse_loss(torch.full_like(y, 2.2), y))
    # copy: probability 1 on blank where the target is blank and the input is not a recall step;
    # on the 10 recall steps (after the delimiter) 1/8 on each symbol
    T = y.shape[1]
    recall = y[:, T - COPY_MEMORY:]
    if bool((y[:, : T - COPY_MEMORY] != 0).any()) or bool(((recall < 1) | (recall > 8)).any()):
        raise ValueError("baseline_loss: expected copy-memory targets (blank, then 10 symbols in 1..8)")
    return COPY_MEMORY * math.log(8) / T


class GeneratedBatches:
    """Fresh training batches of a generated task: ``batches_per_epoch`` batches per epoch, batch i of
    epoch e drawn from (seed, TRAIN, e, i), so every epoch is new data and resuming replays it exactly."""

    def __init__(self, task: str, length: int, batch_size: int, batches_per_epoch: int, *, seed: int = 0):
        self.task = check_task("GeneratedBatches", task)
        self.length = check_positive_int("GeneratedBatches", "length", length)
        self.batch_size = check_positive_int("GeneratedBatches", "batch_size", batch_size)
        self.batches_per_epoch = check_positive_int("GeneratedBatches", "batches_per_epoch", batches_per_epoch)
        seeded_generator(seed, TRAIN)  # checks the seed now
        self.seed = seed

    def __len__(self) -> int:
        return self.batches_per_epoch

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        make = GENERATORS[self.task]
        for i in range(self.batches_per_epoch):
            x, y = make(self.batch_size, self.length, seeded_generator(self.seed, TRAIN, epoch, i))
            yield Batch(x, y)
