"""The forecasting task end to end on small generated files (and a slice of Beijing PM2.5): run directory,
baselines beside the model, predictions CSV and plot, forecasting new files, roll-out, resume, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.windows import WindowDataset
from rnnkit.tasks import forecast as fc
from rnnkit.train import TrainConfig

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BEIJING = SHARED / "beijing_pm25" / "pollution.csv"


def hourly_csv(path: Path, hours: int = 600, seed: int = 0, winds=("N", "S", "E")) -> Path:
    """A daily temperature cycle plus noise, with pressure and a categorical wind: Beijing's layout."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    temp = 10 + 8 * np.sin(2 * np.pi * (t - 9) / 24) + np.cumsum(rng.normal(0, 0.3, hours))
    pres = 1010 + np.cumsum(rng.normal(0, 0.5, hours))
    start = np.datetime64("2021-01-01T00:00")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["year", "month", "day", "hour", "TEMP", "PRES", "cbwd"])
        for i in range(hours):
            stamp = (start + np.timedelta64(i, "h")).astype(object)
            w.writerow([stamp.year, stamp.month, stamp.day, stamp.hour, f"{temp[i]:.2f}", f"{pres[i]:.1f}",
                        winds[rng.integers(len(winds))]])
    return path


def task_for(path, **kw) -> fc.ForecastTask:
    base = dict(data=str(path), target="TEMP", time=["year", "month", "day", "hour"], categorical=["cbwd"],
                calendar=["hour"], lookback=24, step=1, delay=3, season=24)
    return fc.ForecastTask(**{**base, **kw})


def config(steps=8, **kw) -> TrainConfig:
    return TrainConfig(**{"steps": steps, "batch_size": 32, "eval_every": 4, "quiet": True, "device": "cpu", **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    data = hourly_csv(root / "hourly.csv")
    out = root / "run"
    report = fc.train(task_for(data), {"model": "gru", "hidden": 8}, config(), out)
    return data, out, report


def test_training_writes_a_complete_run_directory(trained):
    _, out, report = trained
    for name in ("config.json", "normalisation.json", "columns.json", "model.safetensors", "model.best.safetensors",
                 "trainer.pt", "metrics.jsonl", "loss.png", "test_report.json", "test_predictions.csv",
                 "test_forecast.png"):
        assert (out / name).is_file(), name
    assert (out / "test_forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    norm = json.loads((out / "normalisation.json").read_text())
    assert norm["method"] == "standard" and norm["rows"] == [0, 360]
    assert json.loads((out / "columns.json").read_text())["categories"] == {"cbwd": ["E", "N", "S"]}
    assert report["train_steps"] == 8 and report["split"] == "test" and report["windows"] == 120 - 24 - 3
    assert set(report["metrics"]) == {"model", "persistence", "seasonal_naive", "training_mean"}
    valid = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"valid"' in line]
    assert valid and all("mae_original" in r for r in valid)


def test_baselines_and_scores_match_the_predictions_csv(trained):
    data, out, report = trained
    with open(out / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["row", "line", "time", "truth", "prediction", "persistence", "seasonal_naive",
                             "training_mean"]
    assert len(rows) == report["windows"]
    temp = np.array([float(r["TEMP"]) for r in csv.DictReader(open(data))])
    first = int(rows[0]["row"])
    assert first == 480 + 24 + 3 and rows[0]["line"] == str(first + 2) and rows[0]["time"] == "2021-01-22T03:00:00"
    assert float(rows[0]["truth"]) == pytest.approx(temp[first], abs=1e-4)
    assert float(rows[0]["persistence"]) == pytest.approx(temp[first - 3 - 1], abs=1e-4)  # the window's last row
    assert float(rows[0]["seasonal_naive"]) == pytest.approx(temp[first - 24], abs=1e-4)
    assert float(rows[0]["training_mean"]) == pytest.approx(temp[:360].mean(), abs=1e-4)
    truth = np.array([float(r["truth"]) for r in rows])
    for key, column in (("model", "prediction"), ("persistence", "persistence")):
        pred = np.array([float(r[column]) for r in rows])
        assert report["metrics"][key]["mae"] == pytest.approx(np.abs(pred - truth).mean(), rel=1e-4)
        assert report["metrics"][key]["rmse"] == pytest.approx(np.sqrt(((pred - truth) ** 2).mean()), rel=1e-4)
    columns = json.loads((out / "columns.json").read_text())["columns"]
    scale = json.loads((out / "normalisation.json").read_text())["scale"][columns.index("TEMP")]
    m = report["metrics"]["model"]
    assert m["mae"] == pytest.approx(m["mae_normalised"] * scale)
    assert report["better_naive"] in ("persistence", "seasonal_naive")


def test_baseline_indices_follow_the_lectures_window():
    values = np.arange(200, dtype=np.float64)[:, None] * np.ones((1, 2))
    ds = WindowDataset.for_range(values, (100, 200), 30, 5, 6, target_index=1)
    b = fc.baselines(values, ds, 1, 49.5, season=4)
    r = ds.rows.numpy()
    assert np.array_equal(b["persistence"], r - 6)  # the window's last observation is row r - step
    assert np.array_equal(b["seasonal_naive"], r + 5 - 8)  # ceil(6 / 4) = 2 seasons back from the target
    assert np.all(b["training_mean"] == 49.5)


def test_forecast_a_new_file_with_the_trained_run(trained, tmp_path):
    data, out, _ = trained
    new = hourly_csv(tmp_path / "new.csv", hours=200, seed=5)
    report = fc.forecast_run(out, data=new, out=tmp_path / "fc")
    assert report["windows"] == 200 - 24 - 3 and report["target_rows"] == [27, 199]
    with open(tmp_path / "fc" / "predictions.csv") as f:
        first = next(csv.DictReader(f))
    trained_temp = np.array([float(r["TEMP"]) for r in csv.DictReader(open(data))])[:360]
    assert float(first["training_mean"]) == pytest.approx(trained_temp.mean(), abs=1e-4)  # not the new file's
    for name in ("predictions.csv", "forecast.png", "report.json"):
        assert (tmp_path / "fc" / name).is_file()
    default = fc.forecast_run(out)  # the run's own test split, into RUN_DIR/forecast
    saved = json.loads((out / "test_report.json").read_text())
    assert default["metrics"]["model"] == pytest.approx(saved["metrics"]["model"])
    unseen = hourly_csv(tmp_path / "unseen.csv", hours=60, winds=("N", "W"))
    with pytest.raises(ValueError, match="'W' is not one of the categories seen in training \\(E, N, S\\)"):
        fc.forecast_run(out, data=unseen, out=tmp_path / "fc2")


def test_resume_continues_the_run(tmp_path):
    data = hourly_csv(tmp_path / "h.csv")
    out = tmp_path / "run"
    fc.train(task_for(data), {"model": "dense", "dense": 8}, config(steps=4), out)
    report = fc.train(task_for(data), {"model": "dense", "dense": 8}, config(steps=6), out, resume=True)
    assert report["train_steps"] == 6
    with pytest.raises(ValueError, match="already holds a training run"):
        fc.train(task_for(data), {"model": "dense", "dense": 8}, config(steps=4), out)


@pytest.mark.filterwarnings("ignore:Recurrent. recurrent_dropout runs the explicit loop")
@pytest.mark.parametrize("model_cfg, task_kw", [
    ({"model": "cnn-gru", "hidden": 4, "channels": 4}, {"normalise": "minmax"}),
    ({"model": "lstm", "hidden": 4, "layers": 2, "dropout": 0.1, "input_dropout": 0.1, "recurrent_dropout": 0.2}, {}),
    ({"model": "gru", "hidden": 4, "bidirectional": True, "residual": True}, {"loss": "mse"}),
    ({"model": "tcn", "hidden": 4, "kernel_size": 3}, {"fill": "interpolate"}),
])
def test_other_models_and_options_train(tmp_path, model_cfg, task_kw):
    data = hourly_csv(tmp_path / "h.csv")
    report = fc.train(task_for(data, **task_kw), model_cfg, config(steps=2, eval_every=0), tmp_path / "run")
    assert report["model"] == model_cfg["model"] and np.isfinite(report["metrics"]["model"]["mae"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["model"] == model_cfg["model"]
    assert saved["data"]["normalise"] == task_kw.get("normalise", "standard")


def test_synthetic_seq2seq_and_roll_out(tmp_path):
    task = fc.ForecastTask(data=fc.SYNTHETIC, target="y", lookback=20, delay=0, season=20, loss="mse")
    out = tmp_path / "run"
    report = fc.train(task, {"model": "gru", "hidden": 8, "seq2seq": True, "residual": True}, config(steps=20), out)
    m = report["metrics"]
    assert report["windows"] == 200 - 20 and m["model"]["mae"] < m["training_mean"]["mae"]
    result = fc.forecast_run(out, rollout=15, out=tmp_path / "fc")
    assert result["rollout"] == {"steps": 15, "first_row": 820}
    with open(tmp_path / "fc" / "rollout.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15 and rows[0]["row"] == "820"
    truth = fc.synthetic_series().values[820:835, 0]
    assert np.allclose([float(r["truth"]) for r in rows], truth, atol=1e-4)
    # the first generated value is the model's one-step forecast of the first test window
    with open(tmp_path / "fc" / "predictions.csv") as f:
        one_step = float(next(csv.DictReader(f))["prediction"])
    assert float(rows[0]["prediction"]) == pytest.approx(one_step, abs=1e-4)


def test_roll_out_needs_a_univariate_next_step_model(trained, tmp_path):
    _, out, _ = trained
    with pytest.raises(ValueError, match="roll-out feeds each prediction back as the next input.*this run has 7 "
                                         "features, delay 3, step 1"):
        fc.forecast_run(out, rollout=5, out=tmp_path / "fc")


def test_the_lectures_jena_parameters_on_ten_minute_data(tmp_path):
    """lookback 720 (5 days of 10-minute rows), step 6 (hourly), delay 144 (24 h): a small generated frame
    in the Jena archive's layout and time format."""
    rng = np.random.default_rng(0)
    n = 2700
    path = tmp_path / "jena.csv"
    start = np.datetime64("2009-01-01T00:10")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Date Time", "p (mbar)", "T (degC)", "rh (%)"])
        for i in range(n):
            stamp = (start + np.timedelta64(10 * i, "m")).astype(object).strftime("%d.%m.%Y %H:%M:%S")
            w.writerow([stamp, f"{996 + rng.normal():.2f}", f"{np.sin(2 * np.pi * i / 144) * 5 + rng.normal():.2f}",
                        f"{80 + rng.normal():.1f}"])
    task = fc.ForecastTask(data=str(path), target="T (degC)", time=["Date Time"], lookback=720, step=6, delay=144,
                           season=144, split=(900, 1800))
    report = fc.train(task, {"model": "gru", "hidden": 4}, config(steps=2, eval_every=0), tmp_path / "run")
    assert report["windows"] == 900 - 720 - 144 and report["target_rows"] == [1800 + 720 + 144, 2699]
    p = fc.prepare(task)
    x, _ = p.datasets["train"].gather(torch.tensor([0]))
    assert x.shape == (1, 120, 3)  # 720 / 6 hourly observations of 3 features


def test_beijing_slice_with_every_data_option(tmp_path):
    if not BEIJING.exists():
        pytest.skip(f"shared data not found: {BEIJING.resolve()}")
    task = fc.ForecastTask(data=str(BEIJING), target="TEMP", features=["pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws"],
                           time=["year", "month", "day", "hour"], categorical=["cbwd"], fill="ffill",
                           calendar=["hour", "dow", "doy"], lookback=24, delay=6, season=24)
    report = fc.train(task, {"model": "gru", "hidden": 4}, config(steps=3, eval_every=0, batch_size=64),
                      tmp_path / "run")
    m = report["metrics"]
    assert report["windows"] == 43824 - 35059 - 24 - 6
    assert m["training_mean"]["mae"] > m["seasonal_naive"]["mae"]  # the baselines are not all alike
    assert 4.5 < m["persistence"]["mae"] < 6  # 7 hours between the last observation and the target


# ----- bad input ---------------------------------------------------------------------------------------


def test_lookback_and_delay_longer_than_a_split(tmp_path):
    data = hourly_csv(tmp_path / "h.csv", hours=300)
    with pytest.raises(ValueError, match=r"h.csv: the valid split has 60 rows \(180..239\), too few for lookback 48 \+ "
                                         r"delay 24: one window needs 73 rows"):
        fc.prepare(task_for(data, lookback=48, delay=24))  # the file is named first


def test_too_few_rows(tmp_path):
    data = hourly_csv(tmp_path / "h.csv", hours=50)
    with pytest.raises(ValueError, match=r"h.csv: 50 rows are too few: one window of lookback 24 \+ delay 3 needs 28 "
                                         r"rows, in each of the 3 splits"):
        fc.prepare(task_for(data))


def test_constant_column(tmp_path):
    path = tmp_path / "c.csv"
    rows = "\n".join(f"{i},{np.sin(i / 4):.3f},0" for i in range(120))
    path.write_text("t,y,Is\n" + rows + "\n")
    with pytest.raises(ValueError, match=r"c.csv: column\(s\) 'Is' constant over the training rows 0..71"):
        fc.prepare(fc.ForecastTask(data=str(path), target="y", features=["y", "Is"], lookback=8, delay=1, season=4))


def test_task_options_are_checked():
    with pytest.raises(ValueError, match="expected season <= lookback \\(24\\)"):
        fc.ForecastTask(data="x.csv", target="y", lookback=24, season=48)
    with pytest.raises(ValueError, match="expected loss in"):
        fc.ForecastTask(data="x.csv", target="y", loss="huber")
    with pytest.raises(ValueError, match="expected calendar features among hour, dow, doy, got week"):
        fc.ForecastTask(data="x.csv", target="y", calendar=["week"])
    with pytest.raises(ValueError, match="lecture 000's series has one column, 'y'"):
        fc.read_series(fc.ForecastTask(data=fc.SYNTHETIC, target="TEMP"))
