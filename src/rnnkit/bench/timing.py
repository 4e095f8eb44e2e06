"""The timing loop every benchmark shares: interleaved rounds, medians, paired ratios; and the machine's description.

Method (from ``benchmarks/bench_core.py``): every entry is warmed up (``warmup`` steps, at least one), and
the number of steps per round is calibrated on the last warm-up step so that the entry's turn lasts at least
``min_time`` seconds (at least one step). Then
``repeats`` rounds: in each round every entry takes its turn, with the order reversed every other round,
so that drift on a shared machine hits an entry and its baselines alike. A ratio is the median over rounds
of the per-round ratio (same round), which cancels slow phases that hit both sides.

An entry is anything with ``key`` (str), ``step`` (a zero-argument callable: one training step),
``step_times`` (list, filled here: seconds per step, one per round) and ``iters`` (int, set here).
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def train_step(module: nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
    """One training step without the optimizer: zero_grad + forward + MSE loss + backward."""
    module.zero_grad(set_to_none=True)
    out = module(x)
    F.mse_loss(out, target).backward()


def time_steps(step: Callable[[], None], iters: int) -> float:
    """Seconds per step, averaged over iters back-to-back calls of step()."""
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - start) / iters


def measure(entries: list, *, repeats: int, warmup: int, min_time: float, log: Callable[[str], None],
            failures: dict[str, str] | None = None) -> list:
    """Warm up, calibrate and time the entries in interleaved rounds; returns the entries that ran.

    failures: if given, an entry whose warm-up raises is left out of the rounds and its error recorded
    there (key -> one-line message); if None, the error propagates.
    """
    ready = []
    for e in entries:
        t0 = time.perf_counter()
        try:
            for _ in range(warmup - 1):
                e.step()
            one = time_steps(e.step, 1)  # calibrate on the last warm-up step, timed alone
        except Exception as err:  # noqa: BLE001 - reported, the other entries still run
            if failures is None:
                raise
            failures[e.key] = f"{type(err).__name__}: {' '.join(str(err).split())}"[:200]
            log(f"  warm-up {e.key:<17} FAILED: {failures[e.key]}")
            continue
        e.iters = max(1, math.ceil(min_time / one))
        log(f"  warm-up {e.key:<17} {time.perf_counter() - t0:6.2f}s  (step {one * 1e3:8.1f} ms, "
            f"{e.iters} step(s) per round)")
        ready.append(e)
    for r in range(repeats):
        order = ready if r % 2 == 0 else ready[::-1]  # alternate, so drift hits both sides alike
        for e in order:
            e.step_times.append(time_steps(e.step, e.iters))
        log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{e.key} {e.step_times[-1] * 1e3:.0f}ms" for e in ready))
    return ready


def paired_ratio(candidate_times: list[float], baseline_times: list[float]) -> float:
    """Median over rounds of baseline time / candidate time, same round (> 1: the candidate is faster)."""
    return statistics.median(b / c for b, c in zip(baseline_times, candidate_times))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None where it does not say."""
    cores, package = set(), "0"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    package = value.strip()
                elif key.strip() == "core id":
                    cores.add((package, value.strip()))
    except OSError:
        return None
    return len(cores) or None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def load_average() -> str:
    try:
        return "{:.1f}".format(os.getloadavg()[0])
    except (AttributeError, OSError):
        return "n/a"
