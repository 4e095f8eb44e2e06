"""``rnnkit demo series``: lecture 000's time-series example, trained, tested and sampled in half a minute on a CPU.

Lecture 000's "Training on Time Series Data", which follows chapter 14 of Géron's *Hands-On Machine Learning with
Scikit-Learn and TensorFlow* (1st edition):

- the series is the book's ``t * sin(t) / 3 + 2 * sin(5 * t)`` for ``t`` in [0, 30], sampled every 0.1;
- a training example is a window of ``n_steps = 20`` consecutive samples starting at a uniformly random
  ``t0``; its target is the same window shifted one step into the future (the book's ``next_batch``);
- the model is 100 ReLU Elman units wrapped in an output projection to one value per step
  (``OutputProjectionWrapper(BasicRNNCell(100, activation=relu), 1)``), trained with Adam (lr 0.001,
  batch 50) on the mean squared error;
- "Creating New Time Series": seed a window, predict the next value, append it, feed the last 20 values
  back in, 300 times; seeded once with zeros and once with the book's instance starting at t = 12.2.

The test set is 1000 windows drawn from a separately seeded generator (same range of t as training, as in
the book; continuous ``t0`` makes them windows never seen in training). The baseline a forecaster must beat
is the naive "the next value equals the last one".

Everything runs from :func:`run_demo`, which returns a :class:`DemoResult` and reports progress through
a callback; it never prints (the CLI does). Seeded and deterministic on CPU for a given thread count.

Example::

    >>> result = run_demo(DemoConfig(steps=200), on_log=lambda step, mse: None)
    >>> result.test_mse < result.baseline_mse
    True
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from ..train.trainer import resolve_device
from ..layers import KINDS, RNN, OutputProjection

T_MIN, T_MAX, RESOLUTION = 0.0, 30.0, 0.1  # Géron's range and sampling step
SERIES = "t*sin(t)/3 + 2*sin(5t)"
INSTANCE_T0 = 12.2  # the book's test instance (its "t_instance")
DEVICES = ("auto", "cpu", "cuda")


def time_series(t: np.ndarray) -> np.ndarray:
    """The book's series ``t * sin(t) / 3 + 2 * sin(5 t)``."""
    return t * np.sin(t) / 3 + 2 * np.sin(t * 5)


def sample_windows(rng: np.random.Generator, batch_size: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The book's ``next_batch``: ``batch_size`` random windows and their one-step-ahead targets.

    Returns x, y: (B, T, 1) float32, with ``y[:, t] == x[:, t + 1]`` for t < T - 1.
    """
    t0 = rng.random((batch_size, 1)) * (T_MAX - T_MIN - n_steps * RESOLUTION) + T_MIN
    ts = t0 + np.arange(n_steps + 1) * RESOLUTION  # (B, T + 1)
    ys = time_series(ts).astype(np.float32)[..., None]  # (B, T + 1, 1)
    return ys[:, :-1], ys[:, 1:]


def build_model(cell: str, hidden_size: int) -> OutputProjection:
    """``OutputProjection(RNN(cell, 1, hidden_size), 1)``; the lecture's ``"rnn"`` uses ReLU units."""
    if cell not in KINDS:
        raise ValueError(f"demo: expected cell in {sorted(KINDS)}, got {cell!r}")
    check_positive_int("demo", "hidden", hidden_size)
    cell_kwargs = {"activation": "relu"} if cell == "rnn" else {}
    return OutputProjection(RNN(cell, 1, hidden_size, **cell_kwargs), 1)


@torch.no_grad()
def generate(model: OutputProjection, seeds: torch.Tensor, length: int) -> torch.Tensor:
    """Lecture 000's "Creating New Time Series": append the prediction for the step after the window,
    slide the window by one, repeat ``length`` times.

    Shape: seeds (S, T) -> (S, length), the generated values only.
    """
    window = seeds.clone()
    generated = []
    for _ in range(length):
        out, _ = model(window[..., None])  # (S, T, 1)
        nxt = out[:, -1, 0]  # (S,)
        generated.append(nxt)
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return torch.stack(generated, dim=1)


@dataclass
class DemoConfig:
    """The lecture's settings; the CLI exposes cell, hidden_size, steps, seed and device."""

    cell: str = "rnn"  # any kind in rk.layers.KINDS; "rnn" is the lecture's ReLU Elman RNN
    hidden_size: int = 100  # the lecture's n_neurons
    steps: int = 5000  # optimizer steps (the book trains 1500): about 25 s on 2 CPU cores
    n_steps: int = 20  # window length
    batch_size: int = 50
    lr: float = 1e-3
    log_every: int = 200  # steps between progress reports
    test_windows: int = 1000
    generate_length: int = 300
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self):  # fail before anything runs, naming the bad value
        if self.cell not in KINDS:
            raise ValueError(f"demo: expected cell in {sorted(KINDS)}, got {self.cell!r}")
        for name in ("hidden_size", "steps", "n_steps", "batch_size", "log_every", "test_windows",
                     "generate_length"):
            check_positive_int("demo", name, getattr(self, name))
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"demo: expected lr > 0, got {self.lr!r}")
        if self.device not in DEVICES:
            raise ValueError(f"demo: expected device in {list(DEVICES)}, got {self.device!r}")


@dataclass
class DemoResult:
    config: DemoConfig
    device: str
    num_params: int
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, mean train MSE since last report)
    test_mse: float = float("nan")  # over all T predictions of each test window
    baseline_mse: float = float("nan")  # naive "next value = last value" on the same test windows
    test_mse_last: float = float("nan")  # the prediction after the whole window (T values of context) only
    baseline_mse_last: float = float("nan")
    instance_t0: float = INSTANCE_T0
    instance_generated: list[float] = field(default_factory=list)  # continuation of the t=12.2 window
    instance_truth: list[float] = field(default_factory=list)  # the true series at the same times
    zeros_generated: list[float] = field(default_factory=list)  # generated from a window of zeros
    train_seconds: float = 0.0


def run_demo(config: DemoConfig | None = None,
             on_log: Callable[[int, float], None] | None = None) -> DemoResult:
    """Train, test and sample lecture 000's time-series RNN.

    Args:
        config: the settings (default: the lecture's); DemoConfig checks them when it is made.
        on_log: called as ``on_log(step, mse)`` after step 1, every ``config.log_every`` steps and after
            the last step, with the mean training MSE over the steps since the previous call.
    """
    config = DemoConfig() if config is None else config
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = build_model(config.cell, config.hidden_size)
    model.to(device)
    result = DemoResult(config=config, device=str(device), num_params=sum(p.numel() for p in model.parameters()))
    train_rng, test_rng = np.random.default_rng([config.seed, 0]), np.random.default_rng([config.seed, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    start = time.perf_counter()
    model.train()
    running, count = torch.zeros((), device=device), 0  # summed on device: one sync per report, not per step
    for step in range(1, config.steps + 1):
        x, y = (torch.from_numpy(a).to(device) for a in sample_windows(train_rng, config.batch_size, config.n_steps))
        out, _ = model(x)  # (B, T, 1)
        loss = F.mse_loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.detach()
        count += 1
        if step == 1 or step % config.log_every == 0 or step == config.steps:
            mse = running.item() / count
            if not np.isfinite(mse):
                raise FloatingPointError(f"demo: training diverged at step {step} (train MSE {mse}); "
                                         "try another --seed or --cell")
            result.history.append((step, mse))
            if on_log is not None:
                on_log(step, mse)
            running, count = torch.zeros((), device=device), 0
    result.train_seconds = time.perf_counter() - start

    model.eval()
    x, y = (torch.from_numpy(a).to(device) for a in sample_windows(test_rng, config.test_windows, config.n_steps))
    with torch.no_grad():
        out, _ = model(x)
        result.test_mse = F.mse_loss(out, y).item()
        result.baseline_mse = F.mse_loss(x, y).item()  # predict x[t + 1] = x[t]
        result.test_mse_last = F.mse_loss(out[:, -1], y[:, -1]).item()
        result.baseline_mse_last = F.mse_loss(x[:, -1], y[:, -1]).item()

    ts = INSTANCE_T0 + np.arange(config.n_steps + config.generate_length) * RESOLUTION
    values = torch.from_numpy(time_series(ts).astype(np.float32))
    seeds = torch.stack([values[:config.n_steps], torch.zeros(config.n_steps)]).to(device)  # (2, T)
    generated = generate(model, seeds, config.generate_length).cpu()
    result.instance_generated = generated[0].tolist()
    result.instance_truth = values[config.n_steps:].tolist()
    result.zeros_generated = generated[1].tolist()
    return result
