"""Classification accuracy targets (issue 6, item 6), each a full `rnnkit train` run through the task modules:

  mnist      row-by-row MNIST (lecture 000: 28 steps of 28 pixels), one LSTM layer of 128 units, the final
             state -> 10 logits; Adam 2e-3 with a cosine schedule, batch 128, 10 epochs of the 55,000
             training images, the best epoch on the 5,000 validation images.   Target: test accuracy >= 98.5 %.
  sst2       binary SST-2 (standard splits 6,920 / 872 / 1,821 sentences), a bidirectional LSTM of 2 x 150 units
             on a 300-dimensional embedding learned from scratch (no pretrained vectors), max pooling over
             time, dropout 0.5; trained on every labelled phrase of the training trees (77,616, as Socher
             et al. 2013 and Kim 2014 do), Adam 1e-3, batch 64, 3 epochs, validated every 400 steps, the best
             model on the validation sentences.                               Target: test accuracy >= 80 %.

    python benchmarks/bench_classify.py mnist sst2            # the full runs (about 10 + 10 minutes, 2 cores)
    python benchmarks/bench_classify.py mnist sst2 --quick    # smoke test: the same models for 30 steps,
                                                              # printing an estimate of the full runs' time

Prints a Markdown table (task, model, parameters, steps, minutes, test accuracy, target); with --quick the
accuracies are those of 30 steps and mean nothing. Data: ../shared/data (never the network).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.tasks import classify, seqmnist
from rnnkit.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

RECIPES = {
    "mnist": {
        "title": "row MNIST (28 x 28)",
        "target": 0.985,
        "task": lambda: seqmnist.SeqMNISTTask(data=str(DATA / "mnist"), mode="row"),
        "train": seqmnist.train,
        "load": lambda out: seqmnist.load(out)[0],
        "model": {"model": "lstm", "hidden": 128, "layers": 1},
        "config": {"epochs": 10, "batch_size": 128, "lr": 2e-3, "schedule": "cosine", "clip_norm": 5.0,
                   "eval_every": 0},
        "examples": 55_000,
    },
    "sst2": {
        "title": "SST-2 (phrases for training)",
        "target": 0.80,
        "task": lambda: classify.ClassifyTask(data=str(DATA / "sentiment" / "sst"), phrases=True, max_words=20_000,
                                              max_len=60),
        "train": classify.train,
        "load": lambda out: classify.load(out)[0],
        "model": {"model": "lstm", "hidden": 150, "layers": 1, "bidirectional": True, "pooling": "max",
                  "dropout": 0.5, "embedding": 300},
        "config": {"epochs": 3, "batch_size": 64, "lr": 1e-3, "clip_norm": 5.0, "eval_every": 400},
        "examples": 77_616,
    },
}
QUICK_STEPS = 30


def describe(model: dict) -> str:
    kind = f"{'bidirectional ' if model.get('bidirectional') else ''}{model['model'].upper()}"
    size = f"{model['layers']} x {model['hidden']}"
    if "embedding" in model:
        size += f", embedding {model['embedding']}"
    extra = f", {model['pooling']} pooling" if model.get("pooling") else ""
    return f"{kind} ({size}{extra})"


def run(name: str, args) -> dict:
    recipe = RECIPES[name]
    cfg = dict(recipe["config"])
    full_steps = cfg["epochs"] * -(-recipe["examples"] // cfg["batch_size"])
    if args.quick:
        cfg.pop("epochs")
        cfg.update(steps=QUICK_STEPS, eval_every=QUICK_STEPS)
    if args.minutes:
        cfg["max_time"] = args.minutes * 60
    config = TrainConfig(**cfg, seed=args.seed, device=args.device, quiet=not args.progress)
    out = Path(args.out) / name if args.out else Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    print(f"{name}: training into {out}", file=sys.stderr)
    started = time.perf_counter()
    result = recipe["train"](recipe["task"](), recipe["model"], config, out)
    minutes = (time.perf_counter() - started) / 60
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "split" not in r]
    model = recipe["load"](out)
    row = {"name": name, "title": recipe["title"], "model": describe(recipe["model"]),
           "parameters": sum(p.numel() for p in model.parameters()), "steps": result["step"], "minutes": minutes,
           "test_accuracy": result["test"]["accuracy"], "valid_accuracy": result["valid"]["accuracy"],
           "target": recipe["target"], "full_steps": full_steps}
    if args.quick:  # the full run's time from this run's training pace (tokens_per_s over all its steps)
        data = result["data"]["train"]
        tokens_per_step = data["tokens"] / data["examples"] * cfg["batch_size"]
        step_seconds = tokens_per_step / train_records[-1]["tokens_per_s"]
        fixed = minutes * 60 - QUICK_STEPS * step_seconds  # reading the data, the final reports
        row["estimate_minutes"] = (fixed + full_steps * step_seconds) / 60
    return row


def table(rows: list[dict], quick: bool) -> str:
    lines = [f"### Classification accuracy targets{' (--quick: 30 steps, accuracies meaningless)' if quick else ''}",
             "", f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             "| task | model | parameters | steps | minutes | valid accuracy | test accuracy | target |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ok = "✓" if r["test_accuracy"] >= r["target"] else "✗"
        lines.append(f"| {r['title']} | {r['model']} | {r['parameters']:,} | {r['steps']:,} | {r['minutes']:.1f} | "
                     f"{r['valid_accuracy']:.2%} | {r['test_accuracy']:.2%} | ≥ {r['target']:.1%} {ok} |")
    if quick:
        lines.append("")
        for r in rows:
            lines.append(f"- {r['name']}: the full run is {r['full_steps']:,} steps; at this run's pace about "
                         f"{r['estimate_minutes']:.0f} minutes (plus its validations)")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--quick", action="store_true", help=f"the same models for {QUICK_STEPS} steps (smoke test)")
    parser.add_argument("--minutes", type=float, help="a time budget per task (default: none, the full epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", help="keep the run directories here (default: temporary directories)")
    parser.add_argument("--progress", action="store_true", help="show the training progress bar")
    parser.add_argument("--markdown", help="also append the table to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.tasks:
        if not (DATA / ("mnist" if name == "mnist" else "sentiment")).exists():
            sys.exit(f"bench_classify: {DATA} does not hold the data for {name}")
    rows = [run(name, args) for name in args.tasks]
    report = table(rows, args.quick)
    print(report)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")


if __name__ == "__main__":
    main()
