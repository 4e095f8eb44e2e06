"""Neural Turing Machine vs LSTM on copy, and Adaptive Computation Time on parity (issue 8, item 7).

Rows (``--rows``, default both):

  copy    Graves, Wayne & Danihelka (2014) section 4.1. The NTM (LSTM controller of 100 units, memory 128 x 20,
          one read and one write head, shifts -1..1) and the LSTM baseline (3 x 256, Graves et al.'s) are each
          trained on copy with lengths 1-20 (vectors of 8 bits) for the same wall-clock budget (``--minutes``
          per model) with the same recipe (Adam, lr 1e-3, batch 32, global-norm clipping at 10), then evaluated
          with their best validation weights on ``--test-size`` fresh sequences at each of the lengths 20, 40, 60
          and 80: the bit error rate (wrong bits / output bits) and the wrong bits per sequence.
          Target (issue 8): the NTM at <= 1 % bit error at length 20.
  parity  Graves (2016) section 3.1: vectors of 64 entries, 1-64 of them +-1. A tanh RNN of 128 units with ACT
          (tau 1e-3, epsilon 0.01, at most 100 ponder steps) and the same RNN without it (one step per input),
          same budget and recipe (Adam, lr 1e-3, batch 128); test accuracy and mean ponder steps per range of
          non-zero entries (a parity example is one input: its "length" is its number of non-zero entries).

Each model stops at its time budget (or ``--steps``) and is evaluated with its best validation weights; the
output states the budget, the steps taken, the wall-clock and CPU time.

    python benchmarks/bench_ntm.py                        # 2 x 30 min (copy) + 2 x 15 min (parity): ~1.5 h
    python benchmarks/bench_ntm.py --rows copy --minutes 60
    python benchmarks/bench_ntm.py --quick                # smoke test: tiny models, a few steps, seconds
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.tasks import act, ntm
from rnnkit.train import TrainConfig

LENGTHS = (20, 40, 60, 80)
ROWS = ("copy", "parity")

FULL = {
    "copy": {"task": dict(width=8, min_length=1, max_length=20, valid_size=500, test_size=500),
             "recipe": dict(optimizer="adam", lr=1e-3, batch_size=32, clip_norm=10.0, eval_every=500),
             "models": {"NTM": {"model": "ntm"}, "LSTM": {"model": "lstm"}}, "minutes": 30.0, "test_size": 500},
    "parity": {"task": dict(size=64, time_penalty=1e-3, valid_size=1000, test_size=4000),
               "recipe": dict(optimizer="adam", lr=1e-3, batch_size=128, clip_norm=5.0, eval_every=500),
               "models": {"ACT": {"max_steps": 100}, "RNN": {"max_steps": 1}}, "minutes": 15.0},
}
QUICK = {
    "copy": {"task": dict(width=4, min_length=1, max_length=3, valid_size=20, test_size=20, batches_per_epoch=5),
             "recipe": dict(optimizer="adam", lr=1e-2, batch_size=8, clip_norm=10.0, eval_every=5),
             "models": {"NTM": {"model": "ntm", "memory_size": 16, "memory_width": 6, "controller_size": 16},
                        "LSTM": {"model": "lstm", "hidden": 16, "layers": 1}}, "minutes": 1.0, "test_size": 5},
    "parity": {"task": dict(size=8, valid_size=50, test_size=100, batches_per_epoch=5),
               "recipe": dict(optimizer="adam", lr=1e-2, batch_size=32, clip_norm=5.0, eval_every=5),
               "models": {"ACT": {"hidden_size": 16, "max_steps": 10}, "RNN": {"hidden_size": 16, "max_steps": 1}},
               "minutes": 1.0},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_config(row: dict, args) -> TrainConfig:
    minutes = args.minutes if args.minutes is not None else row["minutes"]
    steps = args.steps or (10 if args.quick else 10**9)
    return TrainConfig(steps=steps, max_time=minutes * 60, seed=args.seed, device=args.device, quiet=True,
                       **row["recipe"])


def run_copy(row: dict, args, out: Path) -> list[str]:
    task = ntm.NTMTask("copy", **row["task"])
    cfg = train_config(row, args)
    lines = [f"## NTM copy (Graves et al. 2014, 4.1): trained on lengths {task.min_length}-{task.max_length}, "
             f"{task.width}-bit vectors; budget {cfg.max_time / 60:g} min per model; {cfg.optimizer} lr {cfg.lr:g}, "
             f"batch {cfg.batch_size}, clip norm {cfg.clip_norm:g}", "",
             "| model | parameters | steps | train s | CPU s | "
             + " | ".join(f"L={L} bit error (bits/seq)" for L in LENGTHS) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(LENGTHS)]
    results = {}
    for name, model in row["models"].items():
        log(f"copy: training {name} for up to {cfg.max_time / 60:g} min")
        began, cpu = time.perf_counter(), time.process_time()
        report = ntm.train(task, model, cfg, out / f"copy-{name.lower()}")
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
        at = ntm.evaluate_lengths(out / f"copy-{name.lower()}", LENGTHS, size=row["test_size"], device=args.device)
        results[name] = {"report": report, "lengths": {L: {k: v for k, v in r.items() if k != "by_length"}
                                                       for L, r in at.items()}}
        cells = " | ".join(f"{100 * r['bit_error_rate']:.2f} % ({r['bit_errors']:.2f})" for r in at.values())
        lines.append(f"| {name} | {report['parameters']:,} | {report['step']:,} | {seconds:.0f} | {cpu_seconds:.0f} | "
                     f"{cells} |")
    ntm_20 = results["NTM"]["lengths"][LENGTHS[0]]["bit_error_rate"]
    lines += ["", f"target: NTM <= 1 % bit error at length 20: {'met' if ntm_20 <= 0.01 else 'missed'} "
              f"({100 * ntm_20:.2f} %); no-memory baseline ~50 %"]
    args.results["copy"] = results
    return lines


def run_parity(row: dict, args, out: Path) -> list[str]:
    task = act.ACTTask(**row["task"])
    cfg = train_config(row, args)
    lines = [f"## ACT parity (Graves 2016, 3.1): vectors of {task.size} entries, tau {task.time_penalty:g}; budget "
             f"{cfg.max_time / 60:g} min per model; {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}", ""]
    reports = {}
    for name, model in row["models"].items():
        log(f"parity: training {name} for up to {cfg.max_time / 60:g} min")
        began, cpu = time.perf_counter(), time.process_time()
        report = act.train(task, model, cfg, out / f"parity-{name.lower()}")
        report["wall_seconds"], report["cpu_seconds"] = time.perf_counter() - began, time.process_time() - cpu
        reports[name] = report
    lines += ["| model | parameters | steps | train s | CPU s | accuracy | mean ponder steps |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in reports.items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['step']:,} | {r['wall_seconds']:.0f} | "
                     f"{r['cpu_seconds']:.0f} | {100 * r['accuracy']:.2f} % | {r['ponder_steps']:.2f} |")
    bins = list(reports["ACT"]["by_nonzeros"])
    lines += ["", "| non-zero entries | " + " | ".join(f"{name} accuracy" for name in reports)
              + " | ACT ponder steps |", "|---|" + "---:|" * (len(reports) + 1)]
    for b in bins:
        accuracy = " | ".join(f"{100 * r['by_nonzeros'][b]['accuracy']:.1f} %" for r in reports.values())
        lines.append(f"| {b} | {accuracy} | {reports['ACT']['by_nonzeros'][b]['ponder_steps']:.2f} |")
    args.results["parity"] = reports
    return lines


RUNNERS = {"copy": run_copy, "parity": run_parity}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument("--quick", action="store_true", help="Tiny models and a few steps: a smoke test in seconds.")
    p.add_argument("--minutes", type=float, default=None, help="Training budget per model (default 30 for copy, "
                   "15 for parity).")
    p.add_argument("--steps", type=int, default=None, help="Stop each model after this many steps too.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own).")
    p.add_argument("--out", type=Path, default=None, help="Keep the run directories here (default: a temp dir).")
    p.add_argument("--markdown", type=Path, default=None, help="Also write the report to this file.")
    p.add_argument("--json", type=Path, default=None, help="Also write every number to this JSON file.")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = QUICK if args.quick else FULL
    args.results = {}
    began, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        lines = [f"# bench_ntm{' --quick' if args.quick else ''}: torch {torch.__version__}, "
                 f"{torch.get_num_threads()} threads, device {args.device}, seed {args.seed}", ""]
        for name in args.rows:
            lines += RUNNERS[name](rows[name], args, out) + [""]
    lines.append(f"total: {(time.perf_counter() - began) / 60:.1f} min wall-clock, "
                 f"{(time.process_time() - cpu) / 60:.1f} min CPU")
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.write_text(json.dumps(args.results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
