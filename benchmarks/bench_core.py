#!/usr/bin/env python
"""Training-step throughput of rnnkit's recurrent layers against the baselines a user would pick instead.

One training step = ``zero_grad`` + forward + MSE loss against a fixed random target + backward (no
optimizer update, which costs the same on both sides). Throughput is tokens/s = B*T / seconds per step.

Rows (all in one process, float32, training mode, full-length sequences, no ``lengths``):

* LSTM: ``torch.nn.LSTM`` (baseline) vs ``rk.layers.RNN("lstm", F, H)`` (torch's fused kernel on the
  cell's own parameters). Target: >= 0.95x.
* GRU: ``torch.nn.GRU`` (baseline) vs ``rk.layers.RNN("gru", F, H)``. Target: >= 0.95x.
* rnnkit's explicit paths (no torch kernel exists or it is switched off) against the fused ``nn.LSTM``:
  ``RNN("lstm", fused=False)``, ``RNN("peephole")``, ``RNN("gru-cho")`` (also against ``nn.GRU``).
* A hand-written Python loop over ``torch.nn.LSTMCell`` (what a user would write without a toolkit).

Method: every model is warmed up, then timed ``--repeats`` rounds; in every round each model runs
``iters`` steps back to back (``iters`` calibrated once so that the model's turn lasts at least
``--min-time`` seconds; 1 at the full shape), rnnkit next to its baseline, with the order of the models
reversed every other round, so that drift on a shared machine hits rnnkit and its baseline alike.
tokens/s is from the median step time (in brackets: from the best round's); a ratio is the median over
rounds of the per-round ratio (baseline time / rnnkit time, same round; > 1: rnnkit is faster). Below the
table: best-vs-best ratios and the per-round ratio range, and the load average (contention on a shared
machine only ever slows a step down, so on a busy machine the best round is the better estimate).

Before timing, the script checks once, on a small shape, that every measured model computes what it
claims (rnnkit fused == nn.LSTM / nn.GRU with the same weights, outputs and gradients; explicit paths ==
the torch kernels or the lecture equations), and aborts with a message otherwise.

Usage::

    python benchmarks/bench_core.py                  # B=64, T=100, H=F=512, about a minute on 2 idle cores
    python benchmarks/bench_core.py --quick          # B=16, T=50, H=F=128, well under a minute (CI smoke)
    python benchmarks/bench_core.py --threads 1 --markdown bench.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit as rk
from rnnkit.bench.rows import Outputs
from rnnkit.bench.timing import cpu_model, fmt_int, load_average, measure, train_step
from rnnkit.bench.timing import paired_ratio as _paired_ratio

TARGET = 0.95  # rnnkit's fused path vs the raw torch kernel


# --------------------------------------------------------------------------------------------------
# Models under test: each is an nn.Module whose forward(x) returns outputs (B, T, H).
# --------------------------------------------------------------------------------------------------

class LSTMCellLoop(nn.Module):
    """What a user writes without a toolkit: a Python loop over torch.nn.LSTMCell."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def forward(self, x):
        B, T, _ = x.shape
        h = x.new_zeros(B, self.cell.hidden_size)
        c = x.new_zeros(B, self.cell.hidden_size)
        outs = []
        for t in range(T):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return torch.stack(outs, dim=1)


@dataclass
class Entry:
    key: str
    model: str            # table column "model"
    path: str             # table column "path"
    module: nn.Module
    baselines: list[str] = field(default_factory=list)  # keys of the entries this one is compared with
    target: float | None = None                          # minimum ratio vs baselines[0], if any
    step_times: list[float] = field(default_factory=list)
    iters: int = 1
    step: Callable[[], None] | None = field(default=None, repr=False)  # one training step, bound in main()


def build_entries(F_: int, H: int) -> list[Entry]:
    return [
        Entry("torch-lstm", "LSTM", "torch.nn.LSTM (baseline)", Outputs(nn.LSTM(F_, H, batch_first=True))),
        Entry("rk-lstm", "LSTM", 'rk RNN("lstm"), fused kernel', Outputs(rk.layers.RNN("lstm", F_, H)),
              ["torch-lstm"], TARGET),
        Entry("torch-gru", "GRU", "torch.nn.GRU (baseline)", Outputs(nn.GRU(F_, H, batch_first=True))),
        Entry("rk-gru", "GRU", 'rk RNN("gru"), fused kernel', Outputs(rk.layers.RNN("gru", F_, H)),
              ["torch-gru"], TARGET),
        Entry("rk-lstm-explicit", "LSTM", 'rk RNN("lstm", fused=False), explicit loop',
              Outputs(rk.layers.RNN("lstm", F_, H, fused=False)), ["torch-lstm"]),
        Entry("rk-peephole", "peephole LSTM", 'rk RNN("peephole"), explicit loop',
              Outputs(rk.layers.RNN("peephole", F_, H)), ["torch-lstm"]),
        Entry("rk-gru-cho", "GRU (Cho, reset-before)", 'rk RNN("gru-cho"), explicit loop',
              Outputs(rk.layers.RNN("gru-cho", F_, H)), ["torch-lstm", "torch-gru"]),
        Entry("lstmcell-loop", "LSTM", "Python loop of torch.nn.LSTMCell", LSTMCellLoop(F_, H), ["torch-lstm"]),
    ]


# --------------------------------------------------------------------------------------------------
# Correctness, once, on a small shape.
# --------------------------------------------------------------------------------------------------

class VerificationError(RuntimeError):
    pass


def _copy_torch_weights(rk_rnn, torch_rnn) -> None:
    """Load a one-layer torch nn.LSTM / nn.GRU's parameters into an rnnkit RNN's cell (peepholes stay)."""
    result = rk_rnn.cells[0].load_state_dict({
        "weight_ih": torch_rnn.weight_ih_l0, "weight_hh": torch_rnn.weight_hh_l0,
        "bias_ih": torch_rnn.bias_ih_l0, "bias_hh": torch_rnn.bias_hh_l0,
    }, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("weight_c")]  # peephole weights are extra
    if result.unexpected_keys or missing:
        raise VerificationError(f"loading nn.{type(torch_rnn).__name__} weights into {rk_rnn.cells[0]}: "
                                f"unexpected {result.unexpected_keys}, missing {missing}")


def _grads(module: nn.Module, names: list[str]) -> list[torch.Tensor]:
    params = dict(module.named_parameters())
    return [params[n].grad for n in names]


def _compare(what: str, got, want, atol: float, rtol: float) -> None:
    try:
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
    except AssertionError as err:
        raise VerificationError(f"{what}: rnnkit and the reference disagree\n{err}") from None


def _train_pass(module_fn: Callable[[torch.Tensor], torch.Tensor], x, target, module: nn.Module):
    module.zero_grad(set_to_none=True)
    if x.grad is not None:
        x.grad = None
    out = module_fn(x)
    F.mse_loss(out, target).backward()
    return out.detach(), x.grad.detach()


def _cho_gru_reference(x, w_ih, w_hh, b_ih, b_hh):
    """Cho et al.'s reset-before GRU written out directly (z weighs h_{t-1}, as rnnkit and torch do)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = x.new_zeros(B, H)
    outs = []
    for t in range(T):
        xp = x[:, t] @ w_ih.T + b_ih
        r = torch.sigmoid(xp[:, :H] + h @ w_hh[:H].T + b_hh[:H])
        z = torch.sigmoid(xp[:, H:2 * H] + h @ w_hh[H:2 * H].T + b_hh[H:2 * H])
        g = torch.tanh(xp[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
        h = z * h + (1 - z) * g
        outs.append(h)
    return torch.stack(outs, 1)


def verify(seed: int = 0) -> list[str]:
    """Check every benchmarked path computes what it claims; raise VerificationError otherwise."""
    torch.manual_seed(seed)
    B, T, F_, H = 3, 7, 5, 6
    done = []
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]

    for kind, Torch in (("lstm", nn.LSTM), ("gru", nn.GRU)):
        # 1. fused path, float32: the same torch kernel on the same numbers -> equal to float32 rounding.
        ref = Torch(F_, H, batch_first=True)
        rk_rnn = rk.layers.RNN(kind, F_, H)
        _copy_torch_weights(rk_rnn, ref)
        if not rk_rnn.uses_kernel():
            raise VerificationError(f'rk.layers.RNN("{kind}") does not take the fused kernel path')
        x = torch.randn(B, T, F_, requires_grad=True)
        target = torch.randn(B, T, H)
        out_ref, dx_ref = _train_pass(lambda v: ref(v)[0], x, target, ref)
        g_ref = [getattr(ref, n + "_l0").grad for n in names]
        out_rk, dx_rk = _train_pass(lambda v: rk_rnn(v)[0], x, target, rk_rnn)
        g_rk = _grads(rk_rnn.cells[0], names)
        _compare(f'RNN("{kind}") fused outputs vs nn.{Torch.__name__}', out_rk, out_ref, 1e-6, 1e-5)
        _compare(f'RNN("{kind}") fused input gradient vs nn.{Torch.__name__}', dx_rk, dx_ref, 1e-6, 1e-5)
        for n, a, b in zip(names, g_rk, g_ref):
            _compare(f'RNN("{kind}") fused d{n} vs nn.{Torch.__name__}', a, b, 1e-6, 1e-5)
        done.append(f'RNN("{kind}") fused == nn.{Torch.__name__} (outputs, all gradients; float32)')

        # 2. explicit path, float64: same function, different arithmetic order.
        ref64 = Torch(F_, H, batch_first=True).double()
        ex = rk.layers.RNN(kind, F_, H, fused=False).double()
        _copy_torch_weights(ex, ref64)
        if ex.uses_kernel():
            raise VerificationError(f'rk.layers.RNN("{kind}", fused=False) still takes the kernel path')
        x64 = torch.randn(B, T, F_, dtype=torch.float64, requires_grad=True)
        t64 = torch.randn(B, T, H, dtype=torch.float64)
        out_ref, dx_ref = _train_pass(lambda v: ref64(v)[0], x64, t64, ref64)
        g_ref = [getattr(ref64, n + "_l0").grad for n in names]
        out_ex, dx_ex = _train_pass(lambda v: ex(v)[0], x64, t64, ex)
        g_ex = _grads(ex.cells[0], names)
        _compare(f'RNN("{kind}", fused=False) outputs vs nn.{Torch.__name__}', out_ex, out_ref, 1e-10, 1e-9)
        _compare(f'RNN("{kind}", fused=False) input gradient vs nn.{Torch.__name__}', dx_ex, dx_ref, 1e-10, 1e-9)
        for n, a, b in zip(names, g_ex, g_ref):
            _compare(f'RNN("{kind}", fused=False) d{n} vs nn.{Torch.__name__}', a, b, 1e-10, 1e-9)
        done.append(f'RNN("{kind}", fused=False) == nn.{Torch.__name__} (outputs, all gradients; float64)')

    # 3. peephole with zero peephole weights is the plain LSTM; with non-zero ones it must differ.
    ref64 = nn.LSTM(F_, H, batch_first=True).double()
    peep = rk.layers.RNN("peephole", F_, H).double()
    _copy_torch_weights(peep, ref64)
    cell = peep.cells[0]
    if peep.uses_kernel() or not cell.peephole:
        raise VerificationError('rk.layers.RNN("peephole") is not an explicit peephole LSTM')
    x64 = torch.randn(B, T, F_, dtype=torch.float64)
    with torch.no_grad():
        for w in (cell.weight_ci, cell.weight_cf, cell.weight_co):
            w.zero_()
        _compare('RNN("peephole") with zero peepholes vs nn.LSTM', peep(x64)[0], ref64(x64)[0], 1e-10, 1e-9)
        for w in (cell.weight_ci, cell.weight_cf, cell.weight_co):
            w.uniform_(-0.5, 0.5)
        if torch.allclose(peep(x64)[0], ref64(x64)[0]):
            raise VerificationError('RNN("peephole"): the peephole weights have no effect')
    done.append('RNN("peephole") == nn.LSTM with zero peepholes, differs with non-zero ones (float64)')

    # 4. gru-cho against the reset-before equations written out.
    cho = rk.layers.RNN("gru-cho", F_, H).double()
    c = cho.cells[0]
    if cho.uses_kernel() or c.reset_after:
        raise VerificationError('rk.layers.RNN("gru-cho") is not the explicit reset-before GRU')
    with torch.no_grad():
        want = _cho_gru_reference(x64, c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)
        _compare('RNN("gru-cho") outputs vs the reset-before equations', cho(x64)[0], want, 1e-10, 1e-9)
    done.append('RNN("gru-cho") == reset-before GRU equations (float64)')

    # 5. the LSTMCell-loop baseline is an LSTM too.
    loop = LSTMCellLoop(F_, H).double()
    ref64 = nn.LSTM(F_, H, batch_first=True).double()
    with torch.no_grad():
        for n in names:
            getattr(loop.cell, n).copy_(getattr(ref64, n + "_l0"))
        _compare("LSTMCell loop vs nn.LSTM", loop(x64), ref64(x64)[0], 1e-10, 1e-9)
    done.append("LSTMCell loop == nn.LSTM (float64)")
    return done


# --------------------------------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------------------------------

# The loop itself (warm-up, calibration, interleaved rounds) is rnnkit.bench.timing's, shared with `rnnkit bench`.

def paired_ratio(cand: Entry, base: Entry) -> float:
    """Median over rounds of base_time / cand_time (> 1: the candidate is faster)."""
    return _paired_ratio(cand.step_times, base.step_times)


# --------------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------------

def report(entries: list[Entry], args, tokens: int, verified: list[str], runtime: float,
           load_start: str) -> str:
    by_key = {e.key: e for e in entries}
    lines = [
        f"rnnkit {rk.__version__} core benchmark — torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"shape B={args.batch} T={args.steps} F={args.input} H={args.hidden} float32, "
        f"CPU: {cpu_model()} ({platform.machine()}), {args.repeats} round(s), "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        "Training step = zero_grad + forward + MSE loss + backward; tokens/s = B*T / median step time "
        "(in brackets: best round); ratio = median over rounds of baseline time / rnnkit time in the same round.",
        "",
        "| model | path | tokens/s | ratio vs baseline | target |",
        "|---|---|---:|---|---|",
    ]
    missed = []
    for e in entries:
        med = statistics.median(e.step_times)
        tps = tokens / med
        tps_cell = f"{fmt_int(tps)} (best {fmt_int(tokens / min(e.step_times))})"
        if not e.baselines:
            ratio_cell, target_cell = "1.00× (baseline)", "—"
        else:
            ratios = [(by_key[b], paired_ratio(e, by_key[b])) for b in e.baselines]
            ratio_cell = ", ".join(f"{r:.2f}× {TORCH_NAMES[b.key]}" for b, r in ratios)
            if e.target is None:
                target_cell = "— (informational)"
            else:
                ok = ratios[0][1] >= e.target
                target_cell = f"≥ {e.target:.2f}× {'✓' if ok else '✗ MISSED'}"
                if not ok:
                    missed.append(e.key)
        lines.append(f"| {e.model} | {e.path} | {tps_cell} | {ratio_cell} | {target_cell} |")
    notes = []
    for e in entries:
        for b in e.baselines[:1]:
            base = by_key[b]
            per_round = [bt / ct for bt, ct in zip(base.step_times, e.step_times)]
            notes.append(f"{e.key} {min(base.step_times) / min(e.step_times):.2f}× "
                         f"(rounds {min(per_round):.2f}–{max(per_round):.2f})")
    lines += ["", "Best round vs best round, vs the row's first baseline (range of per-round ratios): "
              + "; ".join(notes) + ".",
              f"1-min load average {load_start} at start, {load_average()} at end, on {os.cpu_count()} CPUs "
              "(load above the CPU count means other processes shared the cores: absolute tokens/s are then "
              "meaningless and even the paired ratios are noisy; rerun on an idle machine or with --threads 1).",
              "Checked before timing: " + "; ".join(verified) + ".",
              f"Total runtime {runtime:.0f} s."]
    if missed:
        lines.append(f"Targets missed: {', '.join(missed)}.")
    return "\n".join(lines) + "\n"


TORCH_NAMES = {"torch-lstm": "nn.LSTM", "torch-gru": "nn.GRU"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small shape (B=16, T=50, H=F=128), 2 rounds, short rounds: well under a minute")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per model (default 7; --quick 2)")
    p.add_argument("--batch", type=int, default=None, help="B (default 64; --quick 16)")
    p.add_argument("--steps", type=int, default=None, help="T, time steps per sequence (default 100; --quick 50)")
    p.add_argument("--hidden", type=int, default=None, help="H (default 512; --quick 128)")
    p.add_argument("--input", type=int, default=None, help="F, input features (default: = H)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N) (default: torch's own default)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up training steps per model (default 2)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds each model runs per round, at least one step (default 0: one step; --quick 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", metavar="PATH", help="also write the report (header + table) to PATH")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = dict(repeats=2 if quick else 7, batch=16 if quick else 64, steps=50 if quick else 100,
                    hidden=128 if quick else 512, warmup=2, min_time=0.05 if quick else 0.0)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.input is None:
        args.input = args.hidden
    for k in ("repeats", "batch", "steps", "hidden", "input"):
        if getattr(args, k) < 1:
            p.error(f"--{k} must be >= 1, got {getattr(args, k)}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.warmup < 1:
        p.error(f"--warmup must be >= 1, got {args.warmup}")
    if args.min_time < 0:
        p.error(f"--min-time must be >= 0, got {args.min_time}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    load_start = load_average()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        verified = verify(args.seed)
    except VerificationError as err:
        print(f"bench_core: ABORTED, correctness check failed: {err}", file=sys.stderr)
        return 1
    log("verified: " + "; ".join(verified))

    torch.manual_seed(args.seed)
    entries = build_entries(args.input, args.hidden)
    x = torch.randn(args.batch, args.steps, args.input)
    target = torch.randn(args.batch, args.steps, args.hidden)
    log(f"timing {len(entries)} models at B={args.batch} T={args.steps} F={args.input} H={args.hidden}, "
        f"threads {torch.get_num_threads()}")
    for e in entries:
        e.module.train()
        e.step = partial(train_step, e.module, x, target)
    measure(entries, repeats=args.repeats, warmup=args.warmup, min_time=args.min_time, log=log)
    text = report(entries, args, args.batch * args.steps, verified, time.perf_counter() - start,
                  load_start)
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
