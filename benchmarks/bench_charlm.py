"""Char-level language modelling benchmarks (issue: language models), three parts, each printing Markdown.

  speed    `rnnkit train charlm`'s training loop (Trainer + LanguageModel, metrics written every step)
           vs a minimal hand-written PyTorch char LSTM of the same size (nn.Embedding + nn.LSTM +
           nn.Linear, Adam, clip_grad_norm_) on the same batches, in the same process, interleaved.
  latency  batch-1 generation, microseconds per character, for a 2x512 LSTM: rnnkit's `generate` through its
           compiled step (`model.native_stepper()`) and through torch's ops (`model.stepper()`: one token-table
           row and one product per layer), fp32, bf16 and int8 weights, vs nn.LSTM called per character.
  quality  Tiny Shakespeare, contiguous 90/10 split: train for a time budget and report the best
           validation loss (nats/char) per cell; with several --seeds, also their ensemble's.
  ptb      Mikolov's char-level Penn Treebank (standard train/valid/test files, `--spaced`): LSTM, GRU and
           Elman RNN of about 3.3M parameters each, a time budget each, test bits per character beside
           Bai et al. (2018)'s published 1.36 / 1.37 / 1.48.

    python benchmarks/bench_charlm.py speed
    python benchmarks/bench_charlm.py latency                      # 2x512 LSTM: compiled step vs torch's ops
    python benchmarks/bench_charlm.py latency --layers 1 --cell gru  # 1x512 GRU
    python benchmarks/bench_charlm.py latency --run RUN             # a trained run, with its stepped loss
    python benchmarks/bench_charlm.py quality --minutes 15 --cells lstm gru
    python benchmarks/bench_charlm.py quality --minutes 15 --seeds 0 1 2 3     # four runs and their ensemble
    python benchmarks/bench_charlm.py ptb --minutes 6 --cells lstm:512:500 gru:592:500 rnn:1024:700

Data: ../shared/data/tinyshakespeare/input.txt (never the network).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit.data import StreamBatches
from rnnkit.data.text import read_text, split_contiguous
from rnnkit.data.vocab import Vocab
from rnnkit.decode.sample import generate
from rnnkit.kernels import native
from rnnkit.models.lm import LanguageModel, LMConfig
from rnnkit.tasks import lm
from rnnkit.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
PTB = ROOT.parent / "shared" / "data" / "ptb"
PUBLISHED_PTB_BPC = {"lstm": 1.36, "gru": 1.37, "rnn": 1.48}  # Bai, Kolter & Koltun 2018, Table 1 (char PTB)


def header(title: str) -> str:
    return (f"### {title}\n\nrnnkit {rnnkit.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}\n")


def shakespeare_ids():
    text = read_text(SHAKESPEARE)
    vocab = Vocab.chars(text)
    train, valid = split_contiguous(text, (0.9, 0.1))
    return vocab, vocab.encode(train), vocab.encode(valid)


class HandLSTM(nn.Module):
    """What a user writes with plain torch: embedding, nn.LSTM (or nn.GRU, nn.RNN: ``module``), linear."""

    def __init__(self, vocab, embedding, hidden, layers, module=nn.LSTM):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.rnn = module(embedding, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


def speed(args) -> str:
    vocab, train_ids, _ = shakespeare_ids()
    data = StreamBatches(train_ids, args.batch, args.seq_len)
    batches = list(data.batches(0))[: args.steps * args.rounds + 1]
    cfg = dict(vocab_size=len(vocab), cell="lstm", hidden=args.hidden, layers=args.layers, embedding=args.embedding)

    class Slice:  # the next `steps` batches of the stream, so both sides see the same data
        def __init__(self, start):
            self.start = start

        def __len__(self):
            return args.steps

        def batches(self, epoch=0):
            yield from batches[self.start:self.start + args.steps]

    torch.manual_seed(0)
    ours = LanguageModel(LMConfig(**cfg))
    hand = HandLSTM(len(vocab), args.embedding, args.hidden, args.layers)
    hand_opt = torch.optim.Adam(hand.parameters(), lr=2e-3)

    def run_ours(start):
        with tempfile.TemporaryDirectory() as tmp:
            train_cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=2e-3, clip_norm=5.0, stateful=True,
                                    quiet=True)
            t = time.perf_counter()
            Trainer(ours, train_cfg, loss_fn=lm.lm_loss, train_data=Slice(start), run_dir=Path(tmp) / "run").fit()
            return time.perf_counter() - t

    def run_hand(start):
        t = time.perf_counter()
        state = None
        for b in batches[start:start + args.steps]:
            logits, state = hand(b.x, state)
            state = tuple(s.detach() for s in state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b.y.reshape(-1))
            hand_opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(hand.parameters(), 5.0)
            hand_opt.step()
        return time.perf_counter() - t

    run_ours(0), run_hand(0)  # warm-up
    ratios, t_ours, t_hand = [], [], []
    for r in range(args.rounds):
        pair = (run_ours, run_hand) if r % 2 == 0 else (run_hand, run_ours)
        times = {f.__name__: f(r * args.steps) for f in pair}
        t_ours.append(times["run_ours"])
        t_hand.append(times["run_hand"])
        ratios.append(times["run_hand"] / times["run_ours"])
    tokens = args.steps * args.batch * args.seq_len
    ratio = statistics.median(ratios)
    lines = [header(f"charlm training speed: {args.layers}x{args.hidden} LSTM, embedding {args.embedding}, "
                    f"B={args.batch}, T={args.seq_len}, {args.steps} steps x {args.rounds} rounds"),
             "| loop | tokens/s (median round) | ratio | target |", "|---|---:|---|---|",
             f"| hand-written torch (nn.LSTM, Adam, clipping) | {tokens / statistics.median(t_hand):,.0f} | 1.00× | — |",
             f"| rnnkit Trainer + LanguageModel (metrics.jsonl, checkpoint) | {tokens / statistics.median(t_ours):,.0f} "
             f"| {ratio:.2f}× | ≥ 0.9× {'✓' if ratio >= 0.9 else '✗'} |",
             f"\nper-round ratios: {', '.join(f'{r:.2f}' for r in ratios)}"]
    return "\n".join(lines)


@torch.no_grad()
def stepped_loss(model, ids: torch.Tensor, precision: str, path: str) -> float:
    """Mean next-character loss (nats) of ``generate``'s own step over ids (T,), fed one character at a time: what
    the weights' precision costs the samples. path "native": ``model.native_stepper(precision)``, else
    ``model.stepper(precision)`` (torch's ops)."""
    logits, state = model(ids[:1][None])
    logits, total = logits[0, -1], 0.0
    if path == "native":
        native_step = model.native_stepper(precision)
        native_step.load_state(state)
        step = native_step.step  # token -> logits (V,)
    else:
        torch_step, states = model.stepper(precision), [state]

        def step(token):
            logits, states[0] = torch_step(torch.tensor([token]), states[0])
            return logits[0]
    for t in range(1, len(ids)):
        total -= float(torch.log_softmax(logits, -1)[ids[t]])
        logits = step(int(ids[t]))
    return total / (len(ids) - 1)


def latency(args) -> str:
    torch.manual_seed(0)
    if args.run:  # a trained run: its sizes, and the loss of each precision's steps on validation text
        model, vocab, config = lm.load(args.run)
        V, H, L, E = len(vocab), config["model"]["hidden"], config["model"]["layers"], config["model"]["embedding"]
        _, valid = split_contiguous(read_text(SHAKESPEARE), (0.9, 0.1))
        text = torch.as_tensor(vocab.encode(list(valid[:args.loss_chars])))
    else:
        V, H, L, E = 65, args.hidden, args.layers, args.embedding
        model = LanguageModel(LMConfig(vocab_size=V, cell=args.cell, hidden=H, layers=L, embedding=E))
    model.eval()
    cell = model.config.cell
    module = {"gru": nn.GRU, "gru-cho": nn.GRU, "rnn": nn.RNN}.get(cell, nn.LSTM)
    hand = HandLSTM(V, E, H, L, module).eval()
    prime = torch.tensor([1, 2, 3])
    n = args.chars
    native_ok = model.native_stepper() is not None
    paths = ["native", "torch ops"] if native_ok else ["torch ops"]

    def ours(precision, path):
        with mock.patch.dict(os.environ, {"RNNKIT_NATIVE": "1" if path == "native" else "0"}):
            tokens = generate(model, prime, n, temperature=0.8, precision=precision)  # the stepper is made here,
        t = time.perf_counter()  # once per call: the clock starts after it (int8: ~ms to quantize the weights)
        for _ in tokens:
            pass
        return (time.perf_counter() - t) / n

    @torch.no_grad()
    def per_call():
        t = time.perf_counter()
        logits, state = hand(prime.unsqueeze(0))
        token = prime[-1:].unsqueeze(0)
        for _ in range(n):
            logits, state = hand(token, state)
            probs = (logits[:, -1] / 0.8).softmax(-1)
            token = torch.multinomial(probs, 1)
        return (time.perf_counter() - t) / n

    precisions = ["fp32", "bf16"] + (["int8"] if "fbgemm" in torch.backends.quantized.supported_engines else [])
    torch_precisions = precisions if cell in ("lstm", "peephole", "rnn") else ["fp32"]  # GRUs: no prepared step
    kinds = [(k, path) for path in paths for k in (precisions if path == "native" else torch_precisions)]
    runs = {k: [] for k in (*kinds, "hand")}
    for k in kinds:
        ours(*k)  # warm-up
    per_call()
    for _ in range(args.rounds):  # interleaved, so that a slow moment of the machine hits them all alike
        for k in kinds:
            runs[k].append(ours(*k))
        runs["hand"].append(per_call())
    us = {k: statistics.median(v) * 1e6 for k, v in runs.items()}
    targets = {(1, 512): [("issue 9", 100)], (2, 512): [("issue 9", 200), ("issue 4", 500)]}.get((L, H), [])
    targets = targets if cell == "lstm" else []  # the issues' targets are for LSTMs

    def mark(v):
        return "; ".join(f"≤ {t} ({who}) {'✓' if v <= t else '✗'}" for who, t in targets) or "—"

    described = {"native": "one compiled call a token (`native_stepper`, the default)",
                 "torch ops": "torch's ops (`RNNKIT_NATIVE=0`)"}
    return "\n".join([
        header(f"batch-1 generation latency: {L}x{H} {cell}, {n} characters, median of {args.rounds}"
               + ("" if native_ok else f"; no native kernel: {native.unavailable('lm_step')}")),
        "| generator | weights | µs per character | target |", "|---|---|---:|---|",
        f"| nn.{module.__name__} called once per character (plain torch) | fp32 | {us['hand']:,.0f} | — |",
        *(f"| rnnkit `generate`, {described[path]} | {k} | {us[k, path]:,.0f} | {mark(us[k, path])} |"
          for k, path in kinds),
        *(["", f"loss of each path's steps over the first {len(text):,} validation characters, {args.run}:"]
          + [f"- {path}: " + ", ".join(f"{k} {stepped_loss(model, text, k, path):.4f}"
                                       for k in (precisions if path == "native" else torch_precisions))
             + " nats/char" for path in paths] if args.run else []),
    ])


def quality(args) -> str:
    """Each cell trained once per ``--seeds`` entry; with several seeds, also the ensemble of a cell's runs
    (their next-character distributions averaged), every run and the ensemble evaluated the same way."""
    rows, ensembles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        task = lm.LMTask(data=str(SHAKESPEARE), level="char", seq_len=args.seq_len)
        for cell in args.cells:
            runs = []
            model = {"cell": cell, "hidden": args.hidden, "layers": args.layers, "embedding": args.embedding,
                     "dropout": args.dropout}
            for seed in args.seeds:
                name = f"shakespeare-{cell}" + (f"-seed{seed}" if len(args.seeds) > 1 else "")
                out = Path(args.out or tmp) / name
                cfg = TrainConfig(steps=args.max_steps or 10**9, max_time=args.minutes * 60, batch_size=args.batch,
                                  lr=args.lr, schedule=args.schedule, clip_norm=5.0, eval_every=args.eval_every,
                                  stateful=True, seed=seed, precision=args.precision, quiet=True)
                t = time.perf_counter()
                report = lm.train(task, model, cfg, out)
                minutes = (time.perf_counter() - t) / 60
                history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
                best = min(r["loss"] for r in history if r.get("split") == "valid")
                sample = "".join(lm.sample(out, prime="ROMEO:", length=200, temperature=0.8, seed=0))
                label = cell + (f" (seed {seed})" if len(args.seeds) > 1 else "")
                rows.append((label, best, report["step"], minutes, sample))
                runs.append(out)
                print(f"{label}: best valid {best:.4f} after {report['step']} steps ({minutes:.1f} min)\n"
                      f"ROMEO:{sample}\n", file=sys.stderr)
            if len(runs) > 1:
                members = [lm.evaluate_run(r)["loss"] for r in runs]  # fp32, the runs' best weights
                together = lm.evaluate_run(runs)["loss"]
                sample = "".join(lm.sample(runs, prime="ROMEO:", length=200, temperature=0.8, seed=0))
                ensembles.append((cell, members, together, sample))
                listed = ", ".join(f"{m:.4f}" for m in members)
                print(f"{cell} ensemble of {len(runs)}: {together:.4f} (members {listed})\nROMEO:{sample}\n",
                      file=sys.stderr)
    lines = [header(f"Tiny Shakespeare char LM, 90/10 split, {args.minutes:g} min budget each: "
                    f"{args.layers}x{args.hidden}, embedding {args.embedding}, dropout {args.dropout}, "
                    f"B={args.batch}, T={args.seq_len}, Adam lr {args.lr}, schedule {args.schedule}"
                    f"{f' over {args.max_steps} steps' if args.max_steps else ''}, {args.precision}"),
             "| cell | best valid loss (nats/char) | bits/char | steps | minutes |", "|---|---:|---:|---:|---:|"]
    for cell, best, steps, minutes, _ in rows:
        lines.append(f"| {cell} | {best:.4f} | {best / math.log(2):.3f} | {steps} | {minutes:.1f} |")
    lines.append(f"\nsample ({rows[0][0]}, temperature 0.8):\n\n```\nROMEO:{rows[0][4]}\n```")
    for cell, members, together, sample in ensembles:
        lines += [f"\n{cell}: ensemble of the {len(members)} runs (next-character distributions averaged), "
                  "validation loss from the best weights, fp32:\n",
                  "| model | valid loss (nats/char) | bits/char |", "|---|---:|---:|"]
        lines += [f"| seed {seed} | {m:.4f} | {m / math.log(2):.3f} |" for seed, m in zip(args.seeds, members)]
        lines.append(f"| **ensemble** | **{together:.4f}** | {together / math.log(2):.3f} |")
        lines.append(f"\nsample (ensemble, temperature 0.8):\n\n```\nROMEO:{sample}\n```")
    return "\n".join(lines)


def ptb(args) -> str:
    """Each --cells entry is KIND:HIDDEN:STEPS (cosine to 0 over STEPS; the minutes budget still applies)."""
    rows = []
    for spec in args.cells:
        cell, hidden, steps = spec.split(":")
        hidden, steps = int(hidden), int(steps)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out or tmp) / f"ptb-{cell}"
            task = lm.LMTask(data=str(PTB / "ptb.char.train.txt.gz"), valid_data=str(PTB / "ptb.char.valid.txt"),
                             level="char", seq_len=args.seq_len, spaced=True)
            cfg = TrainConfig(steps=steps, max_time=args.minutes * 60, batch_size=args.batch, lr=args.lr,
                              schedule="cosine", clip_norm=5.0, eval_every=max(1, steps // 2), stateful=True, seed=0,
                              precision=args.precision, quiet=True)
            model = {"cell": cell, "hidden": hidden, "layers": args.layers, "embedding": args.embedding,
                     "dropout": args.dropout}
            t = time.perf_counter()
            report = lm.train(task, model, cfg, out)
            minutes = (time.perf_counter() - t) / 60
            params = sum(p.numel() for p in lm.load(out)[0].parameters())
            test = lm.evaluate_run(out, data=PTB / "ptb.char.test.txt")
            rows.append((cell, hidden, params, report["step"], minutes, test["bits_per_char"]))
            print(f"{cell}: test {test['bits_per_char']:.3f} bpc after {report['step']} steps ({minutes:.1f} min)",
                  file=sys.stderr)
    lines = [header(f"char-level PTB (Mikolov's files), {args.minutes:g} min budget each: {args.layers} layers, "
                    f"embedding {args.embedding}, dropout {args.dropout}, B={args.batch}, T={args.seq_len}, "
                    f"Adam lr {args.lr}, cosine, {args.precision}"),
             "| cell | hidden | parameters | steps | minutes | test bits/char | published (Bai et al. 2018) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for cell, hidden, params, steps, minutes, bpc in rows:
        lines.append(f"| {cell} | {hidden} | {params / 1e6:.2f}M | {steps} | {minutes:.1f} | {bpc:.3f} "
                     f"| {PUBLISHED_PTB_BPC.get(cell, '—')} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "latency", "quality", "ptb"])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "peephole", "gru", "gru-cho", "rnn"],
                        help="latency: the language model's cell")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10, help="speed: steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chars", type=int, default=500, help="latency: characters per round")
    parser.add_argument("--run", type=Path, default=None, help="latency: a trained Tiny Shakespeare charlm run to "
                        "time (its sizes) and to score each precision's steps on validation text")
    parser.add_argument("--loss-chars", type=int, default=5000, help="latency --run: validation characters scored")
    parser.add_argument("--minutes", type=float, default=15.0, help="quality: budget per cell")
    parser.add_argument("--cells", nargs="+", default=["lstm"], help="quality: kinds; ptb: KIND:HIDDEN:STEPS")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="quality: one run per seed; several "
                        "also report their ensemble")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--schedule", default="none", help="quality: learning-rate schedule (cosine needs "
                        "--max-steps; cosine-time anneals over --minutes)")
    parser.add_argument("--max-steps", type=int, help="quality: stop after this many steps (the budget still applies)")
    parser.add_argument("--out", help="quality: keep the run directories here")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--markdown", help="also append the table to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not SHAKESPEARE.exists():
        sys.exit(f"bench_charlm: {SHAKESPEARE} is missing (the shared data sets sit beside the repository)")
    text = {"speed": speed, "latency": latency, "quality": quality, "ptb": ptb}[args.part](args)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
