"""Sequence-to-sequence quality benchmarks (issue 7, item 7), each printing Markdown.

  dates      `rnnkit train dates`'s default model (char-level GRU encoder-decoder, Luong general attention)
             within a time budget; exact match on held-out dates, greedy and beam 5. Target: >= 99 %.
  translate  ManyThings/Tatoeba fra-eng, French -> English, pairs of at most 15 tokens a side, rnnkit's fixed
             seeded 80/10/10 split: the same model with attention none / bahdanau / luong-general / local-p,
             each trained for the same time budget; test BLEU and chrF (sacrebleu), greedy and beam 5, and
             BLEU by source-length bucket (where attention helps).

    python benchmarks/bench_seq2seq.py dates --minutes 2                       # about 2.5 minutes
    python benchmarks/bench_seq2seq.py translate --minutes 20                  # about 4 x 22 minutes
    python benchmarks/bench_seq2seq.py all --quick                             # smoke test, tiny sizes

Data: ../shared/data/translation/manythings_fra_eng/fra-eng.zip (never the network).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.data.dates import date_splits
from rnnkit.data.pairs import TokenPairs, tokenize_pairs
from rnnkit.tasks import dates, seq2seq
from rnnkit.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FRA_ENG = ROOT.parent / "shared" / "data" / "translation" / "manythings_fra_eng" / "fra-eng.zip"
ATTENTIONS = ("none", "bahdanau", "luong-general", "local-p")


def header(title: str) -> str:
    return (f"### {title}\n\nrnnkit {rnnkit.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}\n")


def first(pairs: TokenPairs, n: int | None) -> TokenPairs:
    if n is None or n >= len(pairs):
        return pairs
    return TokenPairs(pairs.sources[:n], pairs.targets[:n], pairs.where[:n])


def sample(pairs: TokenPairs, n: int | None, seed: int) -> TokenPairs:
    """n pairs drawn without replacement (seeded), in their file order. fra-eng is sorted by length, so the
    first n pairs would be the shortest ones."""
    if n is None or n >= len(pairs):
        return pairs
    rows = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return TokenPairs([pairs.sources[i] for i in rows], [pairs.targets[i] for i in rows],
                      [pairs.where[i] for i in rows])


def trained_report(run: Path, tokens: dict, processing, device) -> dict:
    """For --score-only: what seq2seq.fit reports, rebuilt from a finished run directory, with the greedy test
    score on this invocation's test pairs."""
    model, src_vocab, tgt_vocab, _ = seq2seq.load(run, device=device)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in history if r.get("split") == "valid"]
    test = seq2seq.score(model, src_vocab, tgt_vocab, processing, tokens["test"], device=device)
    test.pop("hypotheses")
    return {"step": max(r["step"] for r in history), "valid": min(valid, key=lambda r: r["loss"]),
            "parameters": sum(p.numel() for p in model.parameters()), "test": test,
            "vocabulary": {"source": len(src_vocab), "target": len(tgt_vocab)}}


def train_config(args, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=args.batch, lr=args.lr, clip_norm=5.0, eval_every=args.eval_every,
                       max_time=args.minutes * 60, seed=args.seed, quiet=True, device=args.device)


def bench_dates(args, out: Path) -> str:
    task = dates.DatesTask(train_size=args.dates_train)
    if args.quick:
        task = dates.DatesTask(train_size=500, valid_size=50, test_size=100)
    began = time.perf_counter()
    report = dates.train(task, dict(dates.DEFAULT_MODEL), train_config(args, args.dates_steps), out / "dates")
    minutes = (time.perf_counter() - began) / 60
    model, src_vocab, tgt_vocab, _ = seq2seq.load(out / "dates", device=args.device)
    splits = date_splits(task.train_size, task.valid_size, task.test_size, task.data_seed)
    test = tokenize_pairs(splits["test"], dates.PROCESSING)[0]
    beam = seq2seq.score(model, src_vocab, tgt_vocab, dates.PROCESSING, test, beam=5, device=args.device)
    greedy = report["test"]
    ok = "✓" if greedy["exact_match"] >= 0.99 else "✗"
    return "\n".join([
        header("Date normalisation (exact match on held-out dates)"),
        f"default model ({', '.join(f'{k} {v}' for k, v in dates.DEFAULT_MODEL.items())}), "
        f"{report['parameters']:,} parameters; {task.train_size:,} training dates, batch {args.batch}, lr {args.lr}",
        "",
        "| decoding | test dates | exact match | steps | minutes (training + scoring) | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| greedy | {greedy['pairs']:,} | {greedy['exact_match']:.4f} | {report['step']} | {minutes:.1f} | "
        f">= 0.99 {ok} |",
        f"| beam 5 | {beam['pairs']:,} | {beam['exact_match']:.4f} | {report['step']} | | |",
        ""])


def bench_translate(args, out: Path) -> str:
    task = seq2seq.TranslationTask(data=str(FRA_ENG), source_column=1, target_column=0, max_len=15)
    splits = seq2seq.read_splits(task)
    tokens, dropped = seq2seq.filter_splits(splits, task.processing, task.max_len, keep_test=False)
    if args.quick:  # a smoke test: a sliver of each split
        tokens = {"train": first(tokens["train"], 2000), "valid": first(tokens["valid"], 200), "test": tokens["test"]}
    tokens["test"] = sample(tokens["test"], args.test_pairs, args.seed)
    results = {}
    for attention in args.attentions:
        model_cfg = {"attention": attention, "cell": args.cell, "embedding": args.embedding, "hidden": args.hidden,
                     "layers": 1, "dropout": args.dropout}
        began = time.perf_counter()
        if args.score_only:
            report = trained_report(out / attention, tokens, task.processing, args.device)
        else:
            report = seq2seq.fit(tokens, task.processing, model_cfg, train_config(args, args.max_steps),
                                 out / attention, run_config={"task": "seq2seq", "data": {"bench": "fra-eng"}},
                                 min_freq=args.min_freq)
        seconds = time.perf_counter() - began
        model, src_vocab, tgt_vocab, _ = seq2seq.load(out / attention, device=args.device)
        beam = seq2seq.score(model, src_vocab, tgt_vocab, task.processing, tokens["test"], beam=5, device=args.device)
        beam.pop("hypotheses")
        results[attention] = {"report": report, "beam": beam, "seconds": seconds}
        print(f"{attention}: {report['step']} steps, valid loss {report['valid']['loss']:.4f}, test BLEU greedy "
              f"{report['test']['bleu']:.2f}, beam 5 {beam['bleu']:.2f}", file=sys.stderr)
    (out / "translate.json").write_text(json.dumps(results, indent=2, default=str))
    any_report = next(iter(results.values()))["report"]
    lines = [header("fra-eng translation, French -> English, pairs of at most 15 tokens"),
             f"{', '.join(f'{n} {len(t):,}' for n, t in tokens.items())} pairs (dropped by --max-len 15: "
             f"{', '.join(f'{n} {d:,}' for n, d in dropped.items())}); vocabulary "
             f"{any_report['vocabulary']['source']:,} French, {any_report['vocabulary']['target']:,} English tokens; "
             f"{args.cell}, embedding {args.embedding}, hidden {args.hidden}, bidirectional encoder; "
             f"batch {args.batch}, lr {args.lr}; vocabulary min-freq {args.min_freq}; {args.minutes:g} minutes each; "
             f"test pairs drawn at random with seed {args.seed}",
             "",
             "| attention | parameters | steps | valid loss | BLEU greedy | BLEU beam 5 | chrF greedy | chrF beam 5 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for attention, r in results.items():
        rep, beam = r["report"], r["beam"]
        lines.append(f"| {attention} | {rep['parameters']:,} | {rep['step']} | {rep['valid']['loss']:.4f} | "
                     f"{rep['test']['bleu']:.2f} | {beam['bleu']:.2f} | {rep['test']['chrf']:.2f} | {beam['chrf']:.2f} |")
    buckets = [b["source_tokens"] for b in any_report["test"]["bleu_by_source_length"]]
    lines += ["", "BLEU (greedy) by source length in tokens (test pairs per bucket in brackets):", "",
              "| attention | " + " | ".join(f"{b} ({p['pairs']:,})" for b, p in
                                             zip(buckets, any_report["test"]["bleu_by_source_length"])) + " |",
              "|---|" + "---:|" * len(buckets)]
    for attention, r in results.items():
        by = {b["source_tokens"]: b["bleu"] for b in r["report"]["test"]["bleu_by_source_length"]}
        lines.append(f"| {attention} | " + " | ".join(f"{by.get(b, float('nan')):.2f}" for b in buckets) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("dates", "translate", "all"))
    p.add_argument("--quick", action="store_true", help="Smoke test: a few steps on tiny data.")
    p.add_argument("--minutes", type=float, default=None, help="Training time budget per model (dates 2, "
                   "translate 20).")
    p.add_argument("--max-steps", type=int, default=100_000, help="translate: step cap per model.")
    p.add_argument("--dates-steps", type=int, default=3000, help="dates: step cap.")
    p.add_argument("--dates-train", type=int, default=20_000, help="dates: generated training dates.")
    p.add_argument("--attentions", nargs="+", default=list(ATTENTIONS))
    p.add_argument("--cell", default="lstm")
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--test-pairs", type=int, default=None, help="translate: score N test pairs drawn with --seed.")
    p.add_argument("--score-only", action="store_true", help="translate: score the runs already trained in --out "
                   "(steps and validation loss from their metrics.jsonl) instead of training.")
    p.add_argument("--min-freq", type=int, default=1, help="translate: tokens seen fewer times in training are <unk>.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="Where the run directories go (default: a temp dir).")
    p.add_argument("--markdown", type=Path, default=None, help="Append the tables to this file.")
    args = p.parse_args(argv)
    if args.quick:
        args.max_steps, args.dates_steps, args.eval_every = 4, 20, 10
        args.embedding, args.hidden, args.batch, args.test_pairs = 16, 32, 16, args.test_pairs or 40
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_seq2seq-"))
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    if args.part in ("dates", "all"):
        minutes = args.minutes
        args.minutes = minutes if minutes is not None else 2.0
        tables.append(bench_dates(args, out))
        args.minutes = minutes
    if args.part in ("translate", "all"):
        if not FRA_ENG.exists():
            sys.exit(f"bench_seq2seq: {FRA_ENG} not found (the shared data)")
        args.minutes = args.minutes if args.minutes is not None else 20.0
        tables.append(bench_translate(args, out))
    text = "\n".join(tables)
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
