#!/usr/bin/env python
"""Issue 9, items 1 and 3: the lecture cells torch has no kernel for, against torch's fused nn.LSTM.

For each shape (B, T, H) with F = H, one layer, training mode (zero_grad + forward + MSE + backward, no
optimizer), in one process with ``rnnkit.bench.timing.measure``'s interleaved rounds:

* ``nn.LSTM`` in float32 — the baseline of item 1 (targets: every lecture cell >= 1.0x at (64, 100, 512),
  >= 0.9x at (32, 100, 256));
* ``rk.layers.RNN(kind, H, H)`` for peephole, gru-cho, minimal-gru, minimal-gru with the reset gate,
  jordan and layer-norm-lstm, as a user builds them (their whole-sequence paths, ``rnnkit/kernels``);
* with ``--bf16``, every one of them again under ``torch.autocast("cpu", torch.bfloat16)`` — item 3's
  targets: nn.LSTM >= 2.5x its float32 speed at (64, 100, 512), the lecture cells >= 2.0x theirs.

Ratios are medians over rounds of the per-round ratio (baseline time / model time, same round).

Usage::

    python benchmarks/bench_cells.py                       # both shapes, float32 and bf16, ~3 minutes idle
    python benchmarks/bench_cells.py --shapes 32x100x256 --no-bf16 --repeats 3
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit as rk
from rnnkit.bench.timing import cpu_model, load_average, measure, paired_ratio

LECTURE_CELLS = {  # row name -> (kind, cell keyword arguments)
    "peephole LSTM": ("peephole", {}),
    "Cho GRU (reset before)": ("gru-cho", {}),
    "minimal GRU": ("minimal-gru", {}),
    "minimal GRU, reset gate": ("minimal-gru", {"reset_gate": True}),
    "Jordan": ("jordan", {}),
    "layer-norm LSTM": ("layer-norm-lstm", {}),
}
TARGETS = {(64, 100, 512): 1.0, (32, 100, 256): 0.9}  # item 1: x nn.LSTM, float32


@dataclass
class Entry:
    key: str
    step: Callable[[], None]
    step_times: list = field(default_factory=list)
    iters: int = 1


def training_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, bf16: bool) -> Callable[[], None]:
    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = model(x)[0]
        F.mse_loss(out.float(), target).backward()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="32x100x256,64x100x512",
                    help="comma-separated BxTxH (default 32x100x256,64x100x512)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per model per round (at least one step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="float32 rows only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    print(f"# {cpu_model()}, {args.threads} threads, torch {torch.__version__}, {datetime.date.today()}, "
          f"load average {load_average()} at the start\n")
    print("| shape (B, T, H) | model | fp32 tokens/s | × nn.LSTM fp32 | target | bf16 tokens/s | bf16 × own fp32 | target |")
    print("|---|---|---:|---:|---|---:|---:|---|")
    for B, T, H in shapes:
        torch.manual_seed(0)
        x, target = torch.randn(B, T, H), torch.randn(B, T, H)
        models = {"nn.LSTM (torch fused)": nn.LSTM(H, H, batch_first=True)}
        models.update({name: rk.layers.RNN(kind, H, H, **kw) for name, (kind, kw) in LECTURE_CELLS.items()})
        entries = {(name, bf16): Entry(f"{name[:12]}{' bf16' if bf16 else ''}", training_step(m, x, target, bf16))
                   for name, m in models.items() for bf16 in ((False, True) if args.bf16 else (False,))}
        measure(list(entries.values()), repeats=args.repeats, warmup=2, min_time=args.min_time, log=lambda s: None)
        base = entries[("nn.LSTM (torch fused)", False)].step_times
        for name in models:
            fp32 = entries[(name, False)].step_times
            tokens = B * T / sorted(fp32)[len(fp32) // 2]
            ratio = paired_ratio(fp32, base)
            goal = TARGETS.get((B, T, H)) if name in LECTURE_CELLS else None
            mark = "—" if goal is None else f"≥ {goal}× {'✓' if ratio >= goal else '✗'}"
            row = f"| {B}, {T}, {H} | {name} | {tokens:,.0f} | {ratio:.2f}× | {mark} |"
            if args.bf16:
                low = entries[(name, True)].step_times
                speedup = paired_ratio(low, fp32)
                goal = 2.5 if name.startswith("nn.LSTM") else 2.0
                row += (f" {B * T / sorted(low)[len(low) // 2]:,.0f} | {speedup:.2f}× | "
                        f"≥ {goal}× {'✓' if speedup >= goal else '✗'} |")
            else:
                row += " — | — | — |"
            print(row, flush=True)
    print(f"\nload average {load_average()} at the end")


if __name__ == "__main__":
    main()
