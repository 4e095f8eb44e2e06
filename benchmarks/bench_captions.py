"""Image captioning and visual question answering on generated scenes (issue 10, items 1 and 6), as Markdown.

  captions  `rnnkit train captions` on generated scenes (32x32, 1-3 shapes), attention none and soft, each
            trained for the same time budget; held-out BLEU (sacrebleu) and exact match, greedy and beam 5.
            Target: exact match >= 90 % on the held-out scenes.
  vqa       `rnnkit train vqa` (DMN+ over CNN facts in snake order) within the same budget; test accuracy,
            overall and per question type.

    python benchmarks/bench_captions.py all --minutes 10        # about 3 x 10 minutes
    python benchmarks/bench_captions.py captions --quick        # smoke test, tiny sizes (seconds)

Data are generated from a seed (never the network).
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
from rnnkit.data.scenes import scene_splits
from rnnkit.tasks import captions, vqa
from rnnkit.train import TrainConfig

TARGET = 0.90


def header(title: str) -> str:
    return (f"### {title}\n\nrnnkit {rnnkit.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}\n")


def sizes(quick: bool) -> dict:
    if quick:
        return dict(task=dict(image_size=16, train_size=64, valid_size=16, test_size=16),
                    model=dict(channels=(8, 8), pools=1, embedding=8, hidden=16), steps=10, batch=16)
    return dict(task=dict(image_size=32, train_size=20_000, valid_size=500, test_size=1_000),
                model=dict(captions.DEFAULT_MODEL), steps=1_000_000, batch=64)


def bench_captions(args) -> str:
    s = sizes(args.quick)
    task = captions.CaptionsTask(**s["task"])
    rows = []
    for attention in ("none", "soft"):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(steps=s["steps"], batch_size=s["batch"], lr=2e-3, clip_norm=5.0, eval_every=500 if not
                              args.quick else 5, quiet=True, device=args.device, max_time=args.minutes * 60)
            report = captions.train(task, {**s["model"], "attention": attention}, cfg, tmp)
            model, vocab, _ = captions.load(tmp, device=args.device)
            test = scene_splits(task.train_size, task.valid_size, task.test_size, size=task.image_size,
                                seed=task.data_seed)["test"]
            beam = captions.score(model, vocab, task.processing, test, beam=5, device=args.device)
            greedy = report["test"]
            rows.append((attention, report["step"], report["seconds"], greedy, beam))
    lines = [header("Captions on generated scenes"),
             f"{task.train_size:,} training scenes, {task.test_size:,} held-out; {args.minutes:g} min per model; "
             f"target exact match >= {TARGET:.0%}\n",
             "| attention | steps | train s | greedy exact | greedy BLEU | beam 5 exact | beam 5 BLEU |",
             "|---|---|---|---|---|---|---|"]
    for attention, steps, seconds, g, b in rows:
        lines.append(f"| {attention} | {steps:,} | {seconds:.0f} | {g['exact_match']:.2%} | {g['bleu']:.2f} | "
                     f"{b['exact_match']:.2%} | {b['bleu']:.2f} |")
    best = max(max(g["exact_match"], b["exact_match"]) for _, _, _, g, b in rows)
    lines.append(f"\nbest exact match {best:.2%}: target {'met' if best >= TARGET else 'NOT met'}")
    return "\n".join(lines)


def bench_vqa(args) -> str:
    s = sizes(args.quick)
    task = vqa.VQATask(**s["task"])
    model = {k: v for k, v in s["model"].items() if k in ("channels", "pools")}
    model.update(hidden=16 if args.quick else 64, passes=2 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(steps=s["steps"], batch_size=s["batch"], lr=2e-3, clip_norm=5.0,
                          eval_every=500 if not args.quick else 5, quiet=True, device=args.device,
                          max_time=args.minutes * 60)
        report = vqa.train(task, model, cfg, tmp)
    test = report["test"]
    lines = [header("VQA with DMN+ on generated scenes"),
             f"{report['step']:,} steps in {report['seconds']:.0f} s; test accuracy {test['accuracy']:.2%} on "
             f"{test['questions']:,} questions\n", "| question type | questions | accuracy |", "|---|---|---|"]
    lines += [f"| {k} | {v['questions']} | {v['accuracy']:.2%} |" for k, v in test["by_type"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("captions", "vqa", "all"))
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = min(args.minutes, 0.5)
    parts = []
    if args.which in ("captions", "all"):
        parts.append(bench_captions(args))
    if args.which in ("vqa", "all"):
        parts.append(bench_vqa(args))
    text = "\n\n".join(parts)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"markdown": text}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
