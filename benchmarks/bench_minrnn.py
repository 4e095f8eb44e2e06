#!/usr/bin/env python
"""Issue 9, item 5: minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") against nn.GRU.

``speed``: training throughput (zero_grad + forward + MSE + backward, no optimizer, float32, one layer,
F = H) at equal width H for every T in ``--lengths`` and B in ``--batches`` (default T in {256, 1024, 4096},
B in {1, 8, 64}), in one process with ``rnnkit.bench.timing.measure``'s interleaved rounds:

* ``torch.nn.GRU(H, H)`` — the baseline (torch's fused kernel);
* ``rk.layers.RNN("min-gru", H, H, mode=...)`` for ``sequential`` (one input GEMM, then a loop of one fused
  multiply-add per step, hand-written backward), ``parallel`` (Heinsen's log-space scan, no loop over T) and
  ``auto`` (what a user gets: the rule in ``rnnkit.cells.min_rnn``); the same three for ``min-lstm``.

Each row prints tokens/s and the ratio to nn.GRU (median over rounds of the per-round ratio; > 1: faster),
and which mode ``auto`` picked. Before timing, on a small shape, the two modes are checked equal (outputs and
gradients, float64); a mismatch aborts with exit status 1.

``quality``: the adding problem (T = 600, ~70K parameters) and Tiny Shakespeare char LM (~1M parameters,
validation bits/char) for gru, lstm, min-gru and min-lstm at equal parameter counts and an equal time budget,
through ``benchmarks/bench_tcn.py``'s runners (same recipes, sizing and evaluation as issue 6's table). GRU and
LSTM have one layer on the adding problem (two in the char LM), minGRU and minLSTM two everywhere: stacked, as
Feng et al. use them (a single layer of a cell whose gates read only x_t has no nonlinearity across time, and
at 2 input features it would put ~70K parameters into a 10,000-unit input projection).

Usage::

    python benchmarks/bench_minrnn.py speed --threads 1           # ~5 minutes
    python benchmarks/bench_minrnn.py speed --quick               # smoke test, seconds
    python benchmarks/bench_minrnn.py quality --minutes 4 --threads 1
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch
from torch import nn

import rnnkit as rk
from rnnkit.bench.timing import cpu_model, load_average, measure, paired_ratio
from rnnkit.cells.min_rnn import auto_mode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cells import Entry, training_step  # noqa: E402 - the same timed step as the lecture cells' benchmark

KINDS = ("min-gru", "min-lstm")
MODES = ("sequential", "parallel", "auto")


def check_modes_agree() -> None:
    """The sequential loop and the log-space scan compute one function (float64, small shape)."""
    torch.manual_seed(0)
    x = torch.randn(3, 50, 6, dtype=torch.float64)
    for kind in KINDS:
        results = []
        for mode in ("sequential", "parallel"):
            torch.manual_seed(1)
            layer = rk.layers.RNN(kind, 6, 5, mode=mode, dtype=torch.float64)
            xs = x.clone().requires_grad_()
            out, _ = layer(xs)
            grads = torch.autograd.grad(out.square().sum(), [xs, *layer.parameters()])
            results.append([out, *grads])
        for a, b in zip(*results):
            if not torch.allclose(a, b, rtol=1e-9, atol=1e-9):
                sys.exit(f"bench_minrnn: {kind} sequential and parallel disagree (max diff "
                         f"{(a - b).abs().max().item():.3g}); not timing")


def speed(args) -> str:
    torch.set_num_threads(args.threads)
    check_modes_agree()
    H = args.hidden
    lines = [f"### minGRU / minLSTM training speed vs nn.GRU, H = F = {H}",
             "", f"{cpu_model()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
             f"{datetime.date.today()}, load average {load_average()} at the start; float32, forward + backward, "
             f"{args.repeats} interleaved rounds, medians", "",
             "| T | B | nn.GRU tokens/s | " + " | ".join(f"{k} {m}" for k in KINDS for m in MODES)
             + " | auto picks |", "|---:|---:|---:|" + "---:|" * (len(KINDS) * len(MODES)) + "---|"]
    for T in args.lengths:
        for B in args.batches:
            torch.manual_seed(0)
            x, target = torch.randn(B, T, H), torch.randn(B, T, H)
            entries = {"gru": Entry("nn.GRU", training_step(nn.GRU(H, H, batch_first=True), x, target, False))}
            for kind in KINDS:
                for mode in MODES:
                    entries[kind, mode] = Entry(f"{kind} {mode}", training_step(rk.layers.RNN(kind, H, H, mode=mode),
                                                                                x, target, False))
            measure(list(entries.values()), repeats=args.repeats, warmup=1, min_time=args.min_time,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
            base = entries["gru"].step_times
            tokens = B * T / sorted(base)[len(base) // 2]
            cells = [f"{B * T / sorted(e.step_times)[len(e.step_times) // 2]:,.0f} "
                     f"({paired_ratio(e.step_times, base):.2f}×)" for key, e in entries.items() if key != "gru"]
            lines.append(f"| {T} | {B} | {tokens:,.0f} | " + " | ".join(cells) + f" | {auto_mode(B, H)} |")
            print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", "Cells: tokens/s (ratio to nn.GRU in the same rounds; > 1 is faster). "
              f"load average {load_average()} at the end."]
    return "\n".join(lines)


def quality(args) -> str:
    import bench_tcn  # the same rows, recipes and sizing as issue 6's table

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench_tcn.quick_rows() if args.quick else bench_tcn.full_rows()
    # minGRU / minLSTM as Feng et al. use them, stacked: at the adding problem's 2 input features one layer of
    # ~70K parameters would be ~10,000 units wide (all of it input projection, nothing recurrent)
    run_args = argparse.Namespace(minutes=args.minutes, max_steps=20 if args.quick else None, quick=args.quick,
                                  seed=0, device="cpu", layers={kind: 2 for kind in KINDS})
    out = Path(args.out or Path(__file__).resolve().parents[1] / "runs" / "bench_minrnn")
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"### minGRU / minLSTM beside GRU and LSTM: {args.minutes:g} minutes of training per model",
             "", f"{cpu_model()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
             f"{datetime.date.today()}" + (" (QUICK smoke run: tiny sizes, not the benchmark)" if args.quick else ""),
             "", "| task (metric) | model | shape | parameters | steps | result | note |", "|---|---|---|---:|---:|---:|---|"]
    for name in args.rows:
        row = rows[name]
        for kind in args.models:
            r = bench_tcn.RUNNERS[name](row, kind, run_args, out)
            note = r.get("note", "")
            if "baseline" in r:
                note = (note + "; " if note else "") + f"trivial baseline {bench_tcn.fmt(r['baseline'], name)}"
            lines.append(f"| {name} ({row.metric}) | {kind} | {r['shape']} | {r['params']:,} | {r['steps']:,} | "
                         f"{bench_tcn.fmt(r['value'], name)} | {note} |")
            print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", "Recipes: " + "; ".join(f"{n}: {', '.join(f'{k}={v}' for k, v in rows[n].recipe.items())}"
                                        for n in args.rows)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=["speed", "quality"])
    ap.add_argument("--hidden", type=int, default=128, help="speed: H = F")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096], help="speed: T")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64], help="speed: B")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3, help="speed: seconds per model per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", nargs="+", default=["adding", "charlm"], choices=["adding", "charlm"])
    ap.add_argument("--models", nargs="+", default=["gru", "lstm", "min-gru", "min-lstm"])
    ap.add_argument("--minutes", type=float, default=4.0, help="quality: training budget per model per row")
    ap.add_argument("--out", help="quality: where the run directories go (default runs/bench_minrnn)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes and runs: checks the script works")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.hidden, args.lengths, args.batches, args.repeats, args.min_time = 16, [32], [1, 4], 1, 0.0
        args.minutes = min(args.minutes, 0.1)
    report = speed(args) if args.part == "speed" else quality(args)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
