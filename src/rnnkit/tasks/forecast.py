"""Time-series forecasting, lecture 003's temperature workflow and lecture 000's series, with honest baselines.

    CSV ──load_series──> Series (N, F) ──chronological_split──> train / valid / test rows
      ──Normaliser.fit(train rows)──> normalised (N, F) ──WindowDataset (lookback, delay, step)──> windows
      ──Forecaster (gru, lstm, dense, cnn, cnn-gru, seq2seq, ...)──> Trainer (MAE or MSE, early stopping)
      ──best weights──> test windows: the model beside persistence, seasonal-naive and the training mean
      run dir: config.json, normalisation.json, columns.json, model.safetensors, model.best.safetensors,
               trainer.pt, metrics.jsonl, loss.png, test_report.json, test_predictions.csv, test_forecast.png

The baselines, computed on exactly the windows the model is scored on (lecture 003: "common sense"):

- persistence: the last observed value of the target (the window's last step),
- seasonal naive: the target's most recent observed value at the same phase of the season
  (``season`` rows), i.e. the row ``r + delay - k * season`` with the smallest k that lies in the past,
- training mean: the mean of the target over the training rows.

Scores are MAE and RMSE in normalised units and in the target's original units (normalised x scale).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from ..data.normalise import METHODS, Normaliser
from ..data.series_csv import CALENDAR, FILLS, SPLITS, Series, chronological_split, load_series
from ..data.windows import WindowBatches, WindowDataset
from ..models.forecast import ForecastConfig, Forecaster
from ..train import TrainConfig, Trainer, checkpoint, seed_everything
from .series import SERIES, time_series

SYNTHETIC = "synthetic"  # --data synthetic: lecture 000's series, no file needed
LOSSES = ("mae", "mse")
BASELINES = ("persistence", "seasonal_naive", "training_mean")


@dataclass
class ForecastTask:
    """What to read, how to cut it into windows, what to predict (the CLI fills it; saved in config.json)."""

    data: str  # a CSV path, or "synthetic"
    target: str
    features: list[str] | None = None  # default: every column but the time columns
    time: list[str] = field(default_factory=list)
    time_format: str | None = None
    categorical: list[str] = field(default_factory=list)
    fill: str | None = None  # ffill | interpolate | drop; None: missing values are an error
    calendar: list[str] = field(default_factory=list)  # hour, dow, doy
    normalise: str = "standard"  # standard (mean/std) | minmax
    split: tuple = (0.6, 0.2, 0.2)  # fractions, or (valid start row, test start row)
    lookback: int = 120  # rows of history per window
    step: int = 1  # rows between observations in a window
    delay: int = 24  # the target is `delay` rows after the window's present row
    season: int = 24  # rows per season for the seasonal-naive baseline
    loss: str = "mae"  # mae (lecture 003) | mse (lecture 000)

    def __post_init__(self):
        owner = "forecast"
        for name in ("lookback", "step", "season"):
            check_positive_int(owner, name, getattr(self, name))
        if isinstance(self.delay, bool) or not isinstance(self.delay, int) or self.delay < 0:
            raise ValueError(f"{owner}: expected delay >= 0 (an int), got {self.delay!r}")
        if self.season > self.lookback:
            raise ValueError(f"{owner}: expected season <= lookback ({self.lookback}) so that the seasonal-naive "
                             f"baseline reads only what the model sees, got season {self.season}")
        if self.normalise not in METHODS:
            raise ValueError(f"{owner}: expected normalise in {METHODS}, got {self.normalise!r}")
        if self.fill is not None and self.fill not in FILLS:
            raise ValueError(f"{owner}: expected fill in {FILLS}, got {self.fill!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"{owner}: expected loss in {LOSSES}, got {self.loss!r}")
        bad = [c for c in self.calendar if c not in CALENDAR]
        if bad:
            raise ValueError(f"{owner}: expected calendar features among {', '.join(CALENDAR)}, got {', '.join(bad)}")
        self.split = tuple(self.split)


# ----- data ------------------------------------------------------------------------------------------


def synthetic_series(length: int = 1000, t_max: float = 30.0) -> Series:
    """Lecture 000's series ``t sin(t) / 3 + 2 sin(5t)`` at ``length`` evenly spaced t in [0, t_max)."""
    check_positive_int("synthetic_series", "length", length)
    t = np.arange(length) * (t_max / length)
    return Series(["y"], time_series(t)[:, None], "y", source=f"{SYNTHETIC}: y(t) = {SERIES}")


def read_series(task: ForecastTask, data: str | None = None, categories: dict | None = None) -> Series:
    """The task's series (or the file ``data`` read with the same column choices)."""
    path = task.data if data is None else data
    if path == SYNTHETIC:
        if task.target != "y" or task.time or task.calendar or task.categorical or (task.features or ["y"]) != ["y"]:
            raise ValueError(f"--data {SYNTHETIC}: lecture 000's series has one column, 'y', and no time column; "
                             "expected --target y and no --features, --time, --calendar or --categorical")
        return synthetic_series()
    return load_series(path, target=task.target, features=task.features, time=task.time,
                       time_format=task.time_format, categorical=task.categorical, fill=task.fill,
                       calendar=task.calendar, categories=categories)


@dataclass
class Prepared:
    series: Series
    normaliser: Normaliser
    values: np.ndarray  # (N, F) normalised
    ranges: dict[str, tuple[int, int]]
    datasets: dict[str, WindowDataset]


def prepare(task: ForecastTask, normaliser: Normaliser | None = None, categories: dict | None = None) -> Prepared:
    """Read, split, normalise (statistics of the training rows, unless given) and window every split."""
    series = read_series(task, categories=categories)
    need = task.lookback + task.delay + 1
    if len(series) < len(SPLITS) * need:
        raise ValueError(f"{series.source}: {len(series)} rows are too few: one window of lookback {task.lookback} + "
                         f"delay {task.delay} needs {need} rows, in each of the {len(SPLITS)} splits")
    ranges = chronological_split(len(series), task.split)
    if normaliser is None:
        normaliser = Normaliser.fit(series.values, series.columns, ranges["train"], task.normalise,
                                    source=series.source)
    elif normaliser.columns != series.columns:
        raise ValueError(f"{series.source}: columns {series.columns} differ from the trained run's "
                         f"{normaliser.columns}")
    values = normaliser.transform(series.values)
    try:
        datasets = {name: WindowDataset.for_range(values, ranges[name], task.lookback, task.delay, task.step,
                                                  target_index=series.target_index, name=name) for name in SPLITS}
    except ValueError as e:
        raise ValueError(f"{series.source}: {e}") from None
    return Prepared(series, normaliser, values, ranges, datasets)


# ----- baselines and scores --------------------------------------------------------------------------


def baselines(values: np.ndarray, dataset: WindowDataset, target_index: int, train_mean: float,
              season: int) -> dict[str, np.ndarray]:
    """The three naive forecasts (normalised units) for every window of ``dataset``: (N,) each.
    ``train_mean`` is the target's mean over the training rows, normalised."""
    rows = dataset.rows.numpy()
    target = values[:, target_index]
    last = rows + int(dataset.offsets[-1])  # the window's last observation
    k = -(-(dataset.delay + 1) // season)  # whole seasons back from the target to reach the past (< r)
    seasonal = rows + dataset.delay - k * season
    assert seasonal.min() >= 0, "season <= lookback keeps the seasonal value inside the data"
    return {"persistence": target[last], "seasonal_naive": target[seasonal],
            "training_mean": np.full(len(rows), train_mean)}


def scores(pred: np.ndarray, truth: np.ndarray, scale: float) -> dict[str, float]:
    """MAE and RMSE in normalised units and in the target's original units."""
    err = pred - truth
    mae, rmse = float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean()))
    return {"mae": mae * scale, "rmse": rmse * scale, "mae_normalised": mae, "rmse_normalised": rmse}


@torch.no_grad()
def predict(model: Forecaster, dataset: WindowDataset, *, batch_size: int = 1024, device="cpu") -> np.ndarray:
    """The model's forecast (normalised) for every window of ``dataset``: (N,)."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        x, _ = dataset.gather(torch.arange(start, min(start + batch_size, len(dataset))))
        preds, _ = model(x.to(device))
        out.append((preds[:, -1] if preds.dim() == 2 else preds).float().cpu())
    return torch.cat(out).numpy().astype(np.float64)


def evaluate_windows(model: Forecaster, dataset: WindowDataset, values: np.ndarray, normaliser: Normaliser,
                     series: Series, task: ForecastTask, *, name: str, device="cpu") -> tuple[dict, dict]:
    """Score the model and the baselines on every window: (report, columns for the predictions CSV)."""
    ti = series.target_index
    scale = float(normaliser.scale[ti])
    truth = values[dataset.rows.numpy() + dataset.delay, ti]
    train_mean = (normaliser.mean[ti] - normaliser.shift[ti]) / scale  # of the training rows, not these
    forecasts = {"model": predict(model, dataset, device=device),
                 **baselines(values, dataset, ti, train_mean, task.season)}
    metrics = {k: scores(v, truth, scale) for k, v in forecasts.items()}
    naive = min(("persistence", "seasonal_naive"), key=lambda k: metrics[k]["mae"])
    target_rows = dataset.rows.numpy() + dataset.delay
    report = {
        "split": name, "target": series.target, "windows": len(dataset),
        "target_rows": [int(target_rows[0]), int(target_rows[-1])], "lookback": task.lookback,
        "step": task.step, "delay": task.delay, "season": task.season, "model": model.config.model,
        "metrics": metrics, "better_naive": naive,
        "improvement": 1 - metrics["model"]["mae"] / metrics[naive]["mae"] if metrics[naive]["mae"] > 0 else 0.0,
    }
    table = {"row": target_rows, "line": series.lines[target_rows]}
    if series.times is not None:
        table["time"] = series.times[target_rows].astype(str)
    table["truth"] = normaliser.inverse(truth, series.target)
    for k, v in forecasts.items():
        table["prediction" if k == "model" else k] = normaliser.inverse(v, series.target)
    return report, table


# ----- training --------------------------------------------------------------------------------------


def _loss_fn(kind: str):
    fn = F.l1_loss if kind == "mae" else F.mse_loss
    return lambda preds, batch: fn(preds, batch.y)


def _metrics_fn(scale: float):
    def metrics(preds, batch):
        last_pred = preds[:, -1] if preds.dim() == 2 else preds
        last_y = batch.y[:, -1] if batch.y.dim() == 2 else batch.y
        return {"mae_original": F.l1_loss(last_pred, last_y) * scale}
    return metrics


def build_model(task: ForecastTask, series: Series, model_cfg: dict) -> Forecaster:
    window = len(range(0, task.lookback, task.step))
    return Forecaster(ForecastConfig(input_size=len(series.columns), window=window,
                                     target_index=series.target_index, **model_cfg))


def train(task: ForecastTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train a forecaster into the run directory ``out``, then score it and the baselines on the test
    split (best validation weights); returns the test report (see :func:`evaluate_windows`).

    model_cfg: ForecastConfig fields except input_size, window and target_index.
    """
    out = Path(out)
    saved_normaliser, saved_categories = None, None
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "normalisation.json", "columns.json", "trainer.pt"))
        saved_normaliser = Normaliser.from_json(checkpoint.read_json(out / "normalisation.json"))
        saved_categories = checkpoint.read_json(out / "columns.json")["categories"]
    seed_everything(cfg.seed)
    p = prepare(task, saved_normaliser, saved_categories)
    model = build_model(task, p.series, model_cfg)
    seq2seq = model.config.seq2seq
    scale = float(p.normaliser.scale[p.series.target_index])
    train_data = WindowBatches(p.datasets["train"], cfg.batch_size, shuffle=True, seed=cfg.seed, sequence=seq2seq)
    valid_data = WindowBatches(p.datasets["valid"], max(cfg.batch_size, 256), shuffle=False, sequence=seq2seq)
    run_config = {"task": "forecast", "data": asdict(task), "model": asdict(model.config)}
    trainer = Trainer(model, cfg, loss_fn=_loss_fn(task.loss), train_data=train_data, valid_data=valid_data,
                      metrics_fn=_metrics_fn(scale), run_dir=out, run_config=run_config, resume=resume,
                      resume_command=resume_command)
    if not trainer.world.is_main:
        trainer.fit()
        return {}
    if not resume:
        checkpoint.atomic_write_json(out / "normalisation.json", p.normaliser.to_json())
        checkpoint.atomic_write_json(out / "columns.json", {"columns": p.series.columns, "target": p.series.target,
                                                            "categories": p.series.categories})
    trainer.fit()
    best = out / "model.best.safetensors"
    if best.exists():
        checkpoint.load_model(best, trainer.raw_model)
    report, table = evaluate_windows(trainer.raw_model, p.datasets["test"], p.values, p.normaliser, p.series, task,
                                     name="test", device=trainer.device)
    report["train_steps"] = trainer.step
    write_outputs(out, "test_", report, table)
    return report


# ----- a trained run ---------------------------------------------------------------------------------


def load(run_dir, *, best: bool = True, device="cpu") -> tuple[Forecaster, ForecastTask, Normaliser, dict]:
    """Rebuild a trained forecaster, its task and normalisation from the run directory (nothing unpickled)."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("forecast",),
                                      need=("config.json", "normalisation.json", "columns.json", "model.safetensors"))
    task = ForecastTask(**config["data"])
    model = Forecaster(ForecastConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    normaliser = Normaliser.from_json(checkpoint.read_json(run_dir / "normalisation.json"))
    columns = checkpoint.read_json(run_dir / "columns.json")
    return model.to(device), task, normaliser, columns


def forecast_run(run_dir, *, data=None, out=None, rollout: int = 0, device="cpu") -> dict:
    """Forecast with a trained run: on its own test split (``data=None``) or on every window of the CSV
    ``data`` (read with the run's columns, categories and normalisation). Writes ``predictions.csv``,
    ``forecast.png`` and ``report.json`` into ``out`` (default RUN_DIR/forecast), and with ``rollout`` N
    also ``rollout.csv`` and ``rollout.png``; returns the report."""
    model, task, normaliser, columns = load(run_dir, device=device)
    out = Path(run_dir) / "forecast" if out is None else Path(out)
    if data is None:
        p = prepare(task, normaliser, columns["categories"])
        series, values, dataset, name = p.series, p.values, p.datasets["test"], "test"
    else:
        series = read_series(task, str(data), columns["categories"])
        if series.columns != normaliser.columns:
            raise ValueError(f"{data}: columns {series.columns} differ from the trained run's {normaliser.columns}")
        values = normaliser.transform(series.values)
        dataset = WindowDataset.for_range(values, (0, len(series)), task.lookback, task.delay, task.step,
                                          target_index=series.target_index, name=str(data))
        name = str(data)
    report, table = evaluate_windows(model, dataset, values, normaliser, series, task, name=name, device=device)
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, "", report, table)
    if rollout:
        check_positive_int("forecast", "rollout", rollout)
        generated = roll_out(model, dataset.gather(torch.tensor([0]))[0][0], rollout, task, device=device)
        first = int(dataset.rows[0]) + task.delay
        truth = np.full(rollout, np.nan)
        known = values[first:first + rollout, series.target_index]
        truth[:len(known)] = known
        rolled = {"row": np.arange(first, first + rollout), "prediction": normaliser.inverse(generated, series.target),
                  "truth": normaliser.inverse(truth, series.target)}
        _write_csv(out / "rollout.csv", rolled)
        plot_rollout(out / "rollout.png", rolled, series.target)
        report["rollout"] = {"steps": rollout, "first_row": first}
    return report


@torch.no_grad()
def roll_out(model: Forecaster, window: torch.Tensor, steps: int, task: ForecastTask, *, device="cpu") -> np.ndarray:
    """Lecture 000's "creating new time series": predict the next value, append it, slide, ``steps`` times.

    Needs a model reading the target alone (F = 1) that predicts the next row (delay 0, step 1).
    Shape: window (T, 1) normalised -> (steps,) normalised.
    """
    c = model.config
    if c.input_size != 1 or task.delay != 0 or task.step != 1:
        raise ValueError(f"roll-out feeds each prediction back as the next input, so it needs a model that reads "
                         f"the target alone and predicts the next row (1 feature, --delay 0, --step 1); this run "
                         f"has {c.input_size} features, delay {task.delay}, step {task.step}")
    model.eval()
    window = window.to(device).clone()  # (T, 1)
    generated = []
    for _ in range(steps):
        preds, _ = model(window[None])  # (1,) or (1, T)
        nxt = preds[0, -1] if preds.dim() == 2 else preds[0]
        generated.append(float(nxt))
        window = torch.cat([window[1:], nxt.reshape(1, 1)], dim=0)
    return np.asarray(generated)


# ----- outputs ---------------------------------------------------------------------------------------


def write_outputs(out: Path, prefix: str, report: dict, table: dict) -> None:
    checkpoint.atomic_write_json(out / f"{prefix}report.json", report)
    _write_csv(out / f"{prefix}predictions.csv", table)
    plot_forecast(out / f"{prefix}forecast.png", table, report)


def _write_csv(path: Path, table: dict) -> None:
    names = list(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*(table[n] for n in names)):
        writer.writerow([_cell(v) for v in row])
    checkpoint.atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else f"{float(v):.6g}"
    return str(v)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def plot_forecast(path: Path, table: dict, report: dict, *, zoom: int = 500) -> None:
    """Prediction vs truth: every window (top) and the first ``zoom`` (bottom, with persistence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = report["metrics"]
    x = table["time"].astype("datetime64[s]") if "time" in table else table["row"]
    fig, axes = plt.subplots(2, 1, figsize=(10, 6))
    for ax, n in zip(axes, (len(table["truth"]), min(zoom, len(table["truth"])))):
        ax.plot(x[:n], table["truth"][:n], lw=0.8, color="black", label="truth")
        ax.plot(x[:n], table["prediction"][:n], lw=0.8, label=f"{report['model']} (MAE {m['model']['mae']:.3g})")
        if n < len(table["truth"]):
            ax.plot(x[:n], table["persistence"][:n], lw=0.6, alpha=0.7,
                    label=f"persistence (MAE {m['persistence']['mae']:.3g})")
        ax.set_xlabel("time of the target" if "time" in table else "row of the target")
        ax.set_ylabel(report["target"])
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"{report['split']}: {report['target']}, {report['delay']} rows after the window "
                      f"(lookback {report['lookback']}, step {report['step']})")
    checkpoint.atomic_write_bytes(path, _png(fig))
    plt.close(fig)


def plot_rollout(path: Path, rolled: dict, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(rolled["row"], rolled["truth"], lw=0.8, color="black", label="truth")
    ax.plot(rolled["row"], rolled["prediction"], lw=0.8, label="generated (predictions fed back)")
    ax.set_xlabel("row")
    ax.set_ylabel(target)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    checkpoint.atomic_write_bytes(path, _png(fig))
    plt.close(fig)


def report_table(report: dict) -> str:
    """The report as the lines the CLI prints: the model and every baseline, MAE and RMSE in both units."""
    m = report["metrics"]
    names = {"model": report["model"], "persistence": "persistence",
             "seasonal_naive": f"seasonal naive ({report['season']})", "training_mean": "training mean"}
    first, last = report["target_rows"]
    lines = [f"{report['split']}: {report['windows']:,} windows (target rows {first}..{last}), target "
             f"{report['target']} {report['delay']} rows after the window",
             f"{'':<22}{'MAE':>10}{'RMSE':>10}{'MAE (norm.)':>13}{'RMSE (norm.)':>14}"]
    for key, label in names.items():
        s = m[key]
        lines.append(f"{label:<22}{s['mae']:>10.4f}{s['rmse']:>10.4f}{s['mae_normalised']:>13.4f}"
                     f"{s['rmse_normalised']:>14.4f}")
    better = names[report["better_naive"]]
    change = report["improvement"]
    lines.append(f"{report['model']} vs the better naive baseline ({better}): MAE "
                 f"{abs(change) * 100:.1f} % {'lower' if change >= 0 else 'higher'}")
    return "\n".join(lines)
