"""Forecasting benchmarks (issue: time-series forecasting), two parts, each printing Markdown.

  speed    batches/s of lecture 003's windowed generator: rnnkit's vectorised ``generator`` (one gather per
           batch) and ``WindowBatches`` (what the Trainer reads) vs the lecture's Python loop over samples,
           on the lecture's Jena shapes (lookback 720, step 6, delay 144, 14 features, batch 128) and on
           Beijing's (lookback 120, step 1). Interleaved rounds in one process, medians. Target >= 10x.
  quality  Beijing PM2.5, target TEMP, 5 days of hourly history (lookback 120, step 1), 6 h and 24 h ahead
           (delay 6 and 24); chronological 60/20/20 train/valid/test rows. Test MAE in degrees C, mean and
           spread over seeds, for persistence, seasonal naive (24 h), the training mean, and dense, GRU(32),
           stacked GRU with dropout, bidirectional GRU, CNN+GRU, each trained with what forecasters use:
           calendar features (hour and day of year, sin/cos), early stopping on validation (best weights),
           and predicting the change from the last observed temperature.

    python benchmarks/bench_forecast.py speed                 # about a minute
    python benchmarks/bench_forecast.py quality               # 5 models x 2 horizons x 3 seeds, ~30 minutes
    python benchmarks/bench_forecast.py speed --quick         # smoke tests, seconds
    python benchmarks/bench_forecast.py quality --quick

Note the lecture's indexing: a window's last observation is row r - step and the target row r + delay, so
"delay 6" forecasts 7 hours past the last observation (step 1).

Data: ../shared/data/beijing_pm25/pollution.csv (never the network).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rnnkit
from rnnkit.data.windows import WindowBatches, WindowDataset, generator
from rnnkit.tasks import forecast as fc
from rnnkit.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
BEIJING = ROOT.parent / "shared" / "data" / "beijing_pm25" / "pollution.csv"

# What a forecaster trains on (issue item 9): all weather columns, wind one-hot, gaps filled, calendar.
FEATURES = ["pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws", "Is", "Ir"]
MODELS = {
    "dense": {"model": "dense", "dense": 32, "residual": True},
    "GRU(32)": {"model": "gru", "hidden": 32, "residual": True},
    "stacked GRU, dropout": {"model": "gru", "hidden": 32, "layers": 2, "input_dropout": 0.1,
                             "recurrent_dropout": 0.5, "residual": True},
    "bidirectional GRU": {"model": "gru", "hidden": 32, "bidirectional": True, "residual": True},
    "CNN+GRU": {"model": "cnn-gru", "hidden": 32, "channels": 32, "kernel_size": 5, "pool": 3, "residual": True},
}
BASELINE_NAMES = {"persistence": "persistence", "seasonal_naive": "seasonal naive (24 h)",
                  "training_mean": "training mean"}


def header(title: str) -> str:
    return (f"### {title}\n\nrnnkit {rnnkit.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}\n")


# ----- speed -------------------------------------------------------------------------------------------


def lecture_generator(data, lookback, delay, min_index, max_index, shuffle=False, batch_size=128, step=6):
    """Lecture 003's generator as on the slide: a Python loop over the samples of each batch."""
    if max_index is None:
        max_index = len(data) - delay - 1
    i = min_index + lookback
    while 1:
        if shuffle:
            rows = np.random.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = np.zeros((len(rows), lookback // step, data.shape[-1]))
        targets = np.zeros((len(rows),))
        for j, row in enumerate(rows):
            indices = range(rows[j] - lookback, rows[j], step)
            samples[j] = data[indices]
            targets[j] = data[rows[j] + delay][1]
        yield samples, targets


def batch_seconds(make, batches: int) -> list[float]:
    """CPU seconds of each of ``batches`` consecutive batches, timed one by one. CPU time of this process
    (one thread), not wall time: on a machine shared with other work a pre-empted batch still counts only
    the work it did."""
    it = make()
    next(it)  # warm up
    times = []
    for _ in range(batches):
        start = time.process_time()
        next(it)
        times.append(time.process_time() - start)
    return times


def speed(args) -> str:
    shapes = [("Jena (lecture 003)", 420551 if not args.quick else 20000, 14, 720, 6, 144),
              ("Beijing PM2.5", 43824, 17, 120, 1, 24)]
    batches = 20 if args.quick else 200
    torch.set_num_threads(1)
    lines = [header("Windowed generator: batches per CPU second (median batch), batch 128, shuffled"),
             "| data | rows x features | lookback / step / delay | lecture's loop | rnnkit `generator` | ratio | "
             "rnnkit `WindowBatches` (torch) | ratio | target |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for name, n, features, lookback, step, delay in shapes:
        data = np.random.default_rng(0).normal(size=(n, features))  # float64, as the lecture's float_data
        train_stop = int(n * 0.6)
        dataset = WindowDataset(data, lookback, delay, 0, train_stop, step=step, target_index=1)
        source = WindowBatches(dataset, 128, seed=0)
        makers = {
            "loop": lambda: lecture_generator(data, lookback, delay, 0, train_stop, True, 128, step),
            "vectorised": lambda: generator(data, lookback, delay, 0, train_stop, True, 128, step),
            "torch": lambda: iter(_cycle(source)),
        }
        seconds = {k: [] for k in makers}
        for _ in range(args.rounds):
            for k, make in makers.items():  # interleaved: every round measures all three
                seconds[k] += batch_seconds(make, batches if k != "loop" else max(5, batches // 10))
        med = {k: 1 / statistics.median(v) for k, v in seconds.items()}  # batches/s of the median batch
        r1, r2 = med["vectorised"] / med["loop"], med["torch"] / med["loop"]
        lines.append(f"| {name} | {n:,} x {features} | {lookback} / {step} / {delay} | {med['loop']:,.1f} | "
                     f"{med['vectorised']:,.1f} | {r1:,.1f}x | {med['torch']:,.1f} | {r2:,.1f}x | "
                     f">= 10x {'✓' if min(r1, r2) >= 10 else '✗'} |")
    return "\n".join(lines)


def _cycle(source: WindowBatches):
    epoch = 0
    while True:
        for batch in source.batches(epoch):
            yield batch
        epoch += 1


# ----- quality -----------------------------------------------------------------------------------------


def task(delay: int, args) -> fc.ForecastTask:
    return fc.ForecastTask(data=str(BEIJING), target="TEMP", features=FEATURES, time=["year", "month", "day", "hour"],
                           categorical=["cbwd"], fill="ffill", calendar=["hour", "doy"], lookback=args.lookback,
                           step=1, delay=delay, season=24, split=(0.6, 0.2, 0.2))


def quality(args) -> str:
    if not BEIJING.exists():
        sys.exit(f"data not found: {BEIJING}")
    models = {k: v for k, v in MODELS.items() if k in args.models} if args.models else MODELS
    started = time.perf_counter()
    lines = [header(f"Beijing PM2.5, TEMP, lookback {args.lookback}, step 1, 60/20/20; test MAE in °C over "
                    f"seeds {args.seeds}; each run at most {args.minutes:g} min / {args.steps} steps, Adam lr "
                    f"{args.lr}, batch {args.batch}, validation every {args.eval_every} steps, patience "
                    f"{args.patience}")]
    for delay in args.delays:
        results: dict[str, list[float]] = {}
        baseline = None
        for name, model_cfg in models.items():
            for seed in args.seeds:
                cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, clip_norm=5.0,
                                  eval_every=args.eval_every, patience=args.patience, max_time=args.minutes * 60,
                                  seed=seed, device=args.device, quiet=True)
                with tempfile.TemporaryDirectory() as out:
                    t0 = time.perf_counter()
                    report = fc.train(task(delay, args), model_cfg, cfg, out)
                    took = time.perf_counter() - t0
                results.setdefault(name, []).append(report["metrics"]["model"]["mae"])
                baseline = report["metrics"]  # the baselines are the same in every run
                print(f"delay {delay:>2} {name:<22} seed {seed}: test MAE {report['metrics']['model']['mae']:.3f} °C "
                      f"after {report['train_steps']} steps, {took:.0f} s", file=sys.stderr, flush=True)
        naive = min(baseline["persistence"]["mae"], baseline["seasonal_naive"]["mae"])
        lines += [f"\n**{delay} h ahead (delay {delay})**\n", "| forecaster | test MAE (°C) | spread (sd) | "
                  "vs the better naive baseline |", "|---|---:|---:|---:|"]
        for key, label in BASELINE_NAMES.items():
            lines.append(f"| {label} | {baseline[key]['mae']:.3f} | — | "
                         f"{(1 - baseline[key]['mae'] / naive) * 100:+.1f} % |")
        for name, maes in results.items():
            mean = statistics.fmean(maes)
            sd = statistics.stdev(maes) if len(maes) > 1 else 0.0
            lines.append(f"| {name} | {mean:.3f} | {sd:.3f} | {(1 - mean / naive) * 100:+.1f} % |")
    lines.append(f"\n(vs: MAE lower than the better of persistence and seasonal naive, positive is better; "
                 f"whole table {(time.perf_counter() - started) / 60:.1f} min)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--quick", action="store_true")
    q = sub.add_parser("quality")
    q.add_argument("--delays", type=int, nargs="+", default=[6, 24])
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all")
    q.add_argument("--lookback", type=int, default=120)
    q.add_argument("--minutes", type=float, default=0.75, help="training time budget per run")
    q.add_argument("--steps", type=int, default=3000, help="optimizer steps per run at most")
    q.add_argument("--batch", type=int, default=128)
    q.add_argument("--lr", type=float, default=2e-3)
    q.add_argument("--eval-every", type=int, default=100)
    q.add_argument("--patience", type=int, default=5)
    q.add_argument("--device", default="cpu")
    q.add_argument("--quick", action="store_true", help="smoke test: one seed, delay 6, GRU and dense, 20 steps")
    args = p.parse_args(argv)
    if args.part == "speed":
        args.rounds = 2 if args.quick else args.rounds
        print(speed(args))
    else:
        if args.quick:
            args.seeds, args.delays, args.steps, args.eval_every = [0], [6], 20, 10
            args.models = args.models or ["dense", "GRU(32)"]
            args.lookback = min(args.lookback, 48)
        print(quality(args))


if __name__ == "__main__":
    main()
