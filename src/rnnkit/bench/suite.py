"""``rnnkit bench``: every cell kind's training throughput against the alternatives, and BPTT memory vs T.

:func:`run_bench` measures, in this one process, every row of the main table (see :mod:`rnnkit.bench.rows`
for the models), shape by shape, in interleaved rounds (:mod:`rnnkit.bench.timing`), next to the fp32 GEMM
peak measured before and after (:mod:`rnnkit.bench.peak`); then the BPTT scaling table in a fresh
subprocess (:mod:`rnnkit.bench.memory`). It returns the report as Markdown.
"""
from __future__ import annotations

import datetime
import os
import platform
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..layers import KINDS
from . import rows as rows_mod
from .memory import MemorySpec, measure_scaling
from .peak import sgemm_peak
from .table import MAIN_COLUMNS, MEMORY_COLUMNS, main_rows, markdown, memory_rows
from .timing import cpu_model, load_average, measure, physical_cores, usable_cpus

FULL_SHAPES = ((32, 100, 256), (64, 100, 512), (128, 50, 1024))
QUICK_SHAPES = ((16, 50, 128),)


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. kinds: keys of rk.layers.KINDS (default: all of them, in registry order)."""

    kinds: tuple[str, ...] = field(default_factory=lambda: tuple(KINDS))
    shapes: tuple[tuple[int, int, int], ...] = FULL_SHAPES      # (B, T, H); F = H
    device: str = "cpu"
    threads: int | None = None          # torch.set_num_threads for the run (None: torch's current setting)
    repeats: int = 5                    # timed rounds per shape
    warmup: int = 1                     # warm-up steps per model (the last one, timed, calibrates the rounds)
    min_time: float = 0.0               # seconds per model per round (at least one step)
    gemm_size: int = 2048
    gemm_repeats: int = 5
    reference_sequences: int = 2        # sequences the NumPy reference runs per step (scaled to B)
    keras: bool = True                  # False: the Keras column says "not measured"
    memory: MemorySpec | None = MemorySpec()
    seed: int = 0

    @classmethod
    def preset(cls, name: str, **overrides) -> "BenchConfig":
        """'full' (3 shapes, torch's threads), 'quick' (one small shape, one thread, well under a minute on 2
        shared cores) or 'tiny' (toy shapes, for the tests). Keyword arguments override the preset."""
        presets = {
            "full": {},
            # one thread: on a shared machine a descheduled OpenMP thread stalls every parallel region of a
            # step made of many small ops (measured here: 2 threads under load 6x slower than 1, and erratic)
            "quick": dict(shapes=QUICK_SHAPES, threads=1, repeats=3, min_time=0.03, gemm_repeats=2,
                          memory=MemorySpec(batch=16, hidden=128, repeats=1)),
            "tiny": dict(shapes=((4, 6, 8),), repeats=1, gemm_size=128, gemm_repeats=1, reference_sequences=1,
                         memory=MemorySpec(batch=2, hidden=8, steps=(8, 16, 32), k=8, repeats=1)),
        }
        if name not in presets:
            raise ValueError(f"BenchConfig.preset: expected one of {sorted(presets)}, got {name!r}")
        return replace(cls(), **{**presets[name], **overrides})

    def check(self) -> "BenchConfig":
        """Validate (ValueError naming the bad value); returns self."""
        rows_mod.check_kinds(self.kinds)
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"rnnkit bench: expected --device cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"rnnkit bench: --device {self.device} but CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use --device cpu")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"rnnkit bench: expected --threads >= 1, got {self.threads!r}")
        for shape in self.shapes:
            if len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape):
                raise ValueError(f"rnnkit bench: expected shapes (B, T, H) of positive ints, got {shape!r}")
        if self.repeats < 1 or self.warmup < 1 or self.min_time < 0:
            raise ValueError(f"rnnkit bench: expected repeats >= 1, warmup >= 1, min_time >= 0, got "
                             f"{self.repeats}, {self.warmup}, {self.min_time}")
        return self

    def memory_kind(self) -> str:
        """The kind of the BPTT table: lstm when it is measured, else the first kind."""
        return "lstm" if "lstm" in self.kinds else self.kinds[0]


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda m: None) -> str:
    """Measure everything `config` asks for and return the Markdown report (header, two tables, notes)."""
    config.check()
    start, load_start = time.perf_counter(), load_average()
    before_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, log, start, load_start)
    finally:
        torch.set_num_threads(before_threads)


def _run(config: BenchConfig, log, start: float, load_start: str) -> str:
    threads = torch.get_num_threads()
    mismatched = rows_mod.check_against_loop(config.kinds, config.seed)
    log(f"checked RNN(kind) == its cell's Python loop for {', '.join(config.kinds)}"
        + (f"; MISMATCH: {', '.join(mismatched)}" if mismatched else ""))
    keras_note = rows_mod.keras_status() if config.keras else "not measured"
    peaks = [sgemm_peak(config.gemm_size, repeats=config.gemm_repeats, device=config.device, seed=config.seed)]
    log(f"sgemm peak: {peaks[0].describe()}")

    measured, failures = [], {}
    for shape in config.shapes:
        B, T, H = shape
        rows, entries = rows_mod.build(config.kinds, shape, device=config.device, seed=config.seed,
                                       reference_sequences=config.reference_sequences, keras_note=keras_note)
        log(f"timing {len(entries)} models at B={B} T={T} H=F={H}, {threads} thread(s), {config.repeats} round(s)")
        shape_failures: dict[str, str] = {}
        with rows_mod.blas_limit(threads):
            measure(list(entries.values()), repeats=config.repeats, warmup=config.warmup, min_time=config.min_time,
                    log=log, failures=shape_failures)
        for e in entries.values():
            e.step_times = [t * e.scale for t in e.step_times]
            e.step = None  # free the models before the next shape
        failures.update({f"{key} at B={B} T={T} H={H}": why for key, why in shape_failures.items()})
        measured.append((rows, entries))

    peaks.append(sgemm_peak(config.gemm_size, repeats=config.gemm_repeats, device=config.device, seed=config.seed))
    log(f"sgemm peak again: {peaks[1].describe()}")
    peak = max(peaks, key=lambda p: p.gflops)  # contention only lowers a measurement: the higher one is the peak
    table = [line for rows, entries in measured for line in main_rows(rows, entries, peak)]
    memory_text = _memory(config, threads, log)
    return _report(config, threads, peaks, peak, load_start, start, mismatched, failures, keras_note, memory_text,
                   table)


def _memory(config: BenchConfig, threads: int, log) -> str:
    """The BPTT scaling section (its own heading line, table and method), or a line saying why it is absent."""
    if config.memory is None:
        return ""
    spec = replace(config.memory, kind=config.memory_kind(), device=config.device, threads=threads,
                   seed=config.seed)
    log(f"BPTT scaling: T in {list(spec.steps)}, truncated k={spec.k}")
    try:
        rows, method = measure_scaling(spec, log)
    except Exception as err:  # noqa: BLE001 - the main table still stands
        return f"BPTT scaling table: FAILED ({type(err).__name__}: {' '.join(str(err).split())})\n"
    passes = (f"time: median of {spec.repeats} passes" if spec.repeats > 1 else "time: one pass") + \
        " after the memory pass"
    return "\n".join([
        f'BPTT memory and time vs T: RNN("{spec.kind}"), B={spec.batch}, H=F={spec.hidden}, float32, '
        f"{threads} thread(s); full BPTT against truncated BPTT (k={spec.k}: rnnkit.train.tbptt.plan, state "
        f"detached between updates).",
        "",
        markdown(MEMORY_COLUMNS, memory_rows(rows, spec.k), right={1, 2, 3, 4, 5}),
        "",
        "A pass = zero_grad, then for each update forward + MSE + backward over its window, over the whole "
        f"length-T sequence (no optimizer step; {passes}). Both modes do T steps of work per sequence (time per "
        "sequence linear in T); full BPTT keeps all T steps' activations (memory linear in T), truncated BPTT "
        f"one k-step window (flat). Peak memory: {method} (the input batch and the weights are excluded, the "
        "gradients and everything the pass allocates are included; RSS also counts what glibc keeps, which can "
        "make the truncated column creep with T: MALLOC_MMAP_THRESHOLD_=131072 shows live memory only).",
    ]) + "\n"


def _families(kinds) -> str:
    groups: dict[str, list[str]] = {}
    for kind in kinds:
        groups.setdefault(rows_mod.family(kind), []).append(kind)
    torch_names = {"LSTM": "nn.LSTM", "GRU": "nn.GRU", "RNN": "nn.RNN (tanh)"}
    return "; ".join(f"{torch_names[f]} for {', '.join(ks)}" for f, ks in groups.items())


def _machine(config: BenchConfig, threads: int, keras_note: str | None) -> str:
    device = config.device
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name(torch.device(device))})"
    if keras_note is None:
        import keras
        keras_text = f"Keras {keras.__version__} (torch backend)"
    else:
        keras_text = f"Keras: {keras_note}"
    cores = physical_cores()
    cores_text = f"{cores} core(s), " if cores else ""
    return (f"CPU: {cpu_model()} ({platform.machine()}), {cores_text}{os.cpu_count()} logical CPUs ({usable_cpus()} "
            f"usable by this process), {threads} torch thread(s); device {device}; torch {torch.__version__}, "
            f"NumPy {np.__version__}, {keras_text}; Python {platform.python_version()}")


def _report(config: BenchConfig, threads, peaks, peak, load_start, start, mismatched, failures, keras_note,
            memory_text, table) -> str:
    gates = ", ".join(f"{kind} {rows_mod.gate_blocks(kind)}" for kind in config.kinds)
    n_ref = config.reference_sequences
    lines = [
        f"rnnkit {__version__} bench, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. {_machine(config, threads, keras_note)}.",
        "",
        f"Training throughput: rk.layers.RNN(kind, F, H) as users run it, F = H, one layer, float32, training "
        f"mode; step = zero_grad + forward + MSE loss + backward (no optimizer); tokens/s = B·T / median step time "
        f"over {config.repeats} interleaved round(s). fp32 GEMM peak: {peak.describe()}.",
        "",
        markdown(MAIN_COLUMNS, table, right={3, 4, 5}),
        "",
        "GFLOP/s = the step's matrix-product FLOPs / median step time. Forward = 2·B·T·Σ out·in over the cell's "
        "weight matrices = 2·B·T·(F+R)·kH (weight_ih kH×F, weight_hh kH×R; k gate blocks: "
        f"{gates}) plus Jordan's output layer 2·B·T·O·H; backward = 2 × forward; gate arithmetic not counted. "
        f"% of sgemm peak = GFLOP/s / the peak above (the better of {peaks[0].gflops:,.1f} at the start and "
        f"{peaks[1].gflops:,.1f} at the end).",
        "vs X = X's step time / rnnkit's in the same round, median over rounds (> 1: rnnkit is faster). "
        f"torch fused: {_families(config.kinds)} (on CPU oneDNN / aten, on CUDA cuDNN). Python loop: "
        "`for t: y, s = cell(x[:, t], s)` over a fresh cell of the kind (its per-step forward in plain torch ops). "
        "NumPy reference (rnnkit.reference, forward + hand-written BPTT, float32, no clipping; none for the other "
        f"kinds): no batch dimension, so timed on {n_ref} of the B sequences per step and scaled to B; one-hot "
        "inputs (V = F) and its softmax output layer, extra work in its time; always on the CPU, BLAS limited to "
        f"{threads} thread(s). Keras 3 (KERAS_BACKEND=torch): keras.layers.LSTM / GRU (reset_after=False for "
        "gru-cho) / SimpleRNN, return_sequences=True; on CPU Keras steps through time in Python, on CUDA it "
        "calls cuDNN.",
    ]
    if mismatched:
        lines.append(f"WARNING: RNN(kind) differs from a Python loop over its own cell for {', '.join(mismatched)} "
                     "(float64): those rows time a wrong computation.")
    else:
        lines.append("Checked before timing: for every kind, RNN(kind) equals a Python loop over its own cell "
                     "(outputs and input gradient, float64).")
    if failures:
        lines.append("Failed (left out): " + "; ".join(f"{k}: {v}" for k, v in failures.items()) + ".")
    lines += ["", memory_text] if memory_text else []
    lines.append(f"1-min load average {load_start} at start, {load_average()} at end, on {usable_cpus()} usable CPUs "
                 "(above the CPU count, other processes shared the cores: absolute numbers are then low and even the "
                 f"paired ratios are noisy). Total runtime {time.perf_counter() - start:.0f} s.")
    return "\n".join(lines).rstrip("\n") + "\n"
