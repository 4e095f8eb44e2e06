"""`rnnkit train forecast` and `rnnkit forecast`: real runs on tiny files, and one-line errors for bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

from clikit import one_line_error

runner = CliRunner()


def series_csv(path: Path, rows: int = 300) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Date", "temp", "wind", "rain"])
        for i in range(rows):
            day = np.datetime64("2020-01-01") + np.timedelta64(i, "D")
            w.writerow([str(day), f"{10 + 5 * np.sin(i / 5) + rng.normal():.2f}", ["N", "S"][i % 2],
                        f"{abs(rng.normal()):.2f}"])
    return path


def train_args(data, out, *extra):
    return ["train", "forecast", "--data", str(data), "--target", "temp", "--time", "Date", "--categorical",
            "wind", "--calendar", "dow,doy", "--lookback", "14", "--delay", "2", "--season", "7", "--steps", "6",
            "--batch-size", "16", "--eval-every", "3", "--device", "cpu", "--out", str(out), "--quiet", *extra]


def test_train_then_forecast_a_new_file(tmp_path):
    data = series_csv(tmp_path / "daily.csv")
    result = runner.invoke(app, train_args(data, tmp_path / "run", "--model", "cnn-gru", "--kernel-size", "3",
                                           "--pool", "2", "--channels", "4", "--hidden", "4", "--predict-change"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "test: 44 windows (target rows 256..299), target temp 2 rows after the window" in out
    for label in ("cnn-gru", "persistence", "seasonal naive (7)", "training mean",
                  "cnn-gru vs the better naive baseline"):
        assert label in out
    new = series_csv(tmp_path / "new.csv", rows=40)
    result = runner.invoke(app, ["forecast", str(tmp_path / "run"), "--data", str(new), "--out", str(tmp_path / "fc")])
    assert result.exit_code == 0, result.output
    assert f"{new}: 24 windows (target rows 16..39)" in result.stdout
    assert (tmp_path / "fc" / "predictions.csv").is_file() and (tmp_path / "fc" / "forecast.png").is_file()


def test_synthetic_seq2seq_with_roll_out(tmp_path):
    result = runner.invoke(app, ["train", "forecast", "--data", "synthetic", "--target", "y", "--lookback", "20",
                                 "--delay", "0", "--season", "20", "--seq2seq", "--loss", "mse", "--steps", "5",
                                 "--hidden", "8", "--eval-every", "5", "--device", "cpu", "--quiet",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["forecast", str(tmp_path / "run"), "--rollout", "12"])
    assert result.exit_code == 0, result.output
    assert "roll-out:" in result.stdout
    assert len((tmp_path / "run" / "forecast" / "rollout.csv").read_text().splitlines()) == 13


@pytest.mark.parametrize("extra, message", [
    (["--target", "Temp"], "unknown column 'Temp' (--target); available: Date, temp, wind, rain"),
    (["--categorical", ""], "column 'wind', line 2: 'N' is not a number (pass --categorical wind"),
    (["--lookback", "60", "--delay", "5"], "the valid split has 60 rows (180..239), too few for lookback 60 + "
                                           "delay 5: one window needs 66 rows"),
    (["--fill", "mean"], "expected fill in ('ffill', 'interpolate', 'drop'), got 'mean'"),
    (["--model", "transformer"], "expected model in"),
    (["--dropout", "0.2"], "dropout acts between recurrent layers; expected layers >= 2, got 1"),
    (["--bptt", "5"], "--bptt does not apply"),
    (["--split", "0.5,0.5"], "expected three fractions or two row indices"),
])
def test_bad_options_fail_with_one_line(tmp_path, extra, message):
    data = series_csv(tmp_path / "daily.csv")
    line = one_line_error(runner.invoke(app, train_args(data, tmp_path / "run", *extra)))
    assert message in line, line


@pytest.mark.parametrize("content, message", [
    ("Date,temp,wind,rain\n2020-01-01,1,N,0\n2020-01-02,2,S\n", "line 3 has 3 fields, expected 4 like the header"),
    ("Date,temp,wind,rain\n" + "".join(f"2020-01-{d:02d},{d},N,0\n" for d in range(1, 29)),
     "28 rows are too few: one window of lookback 14 + delay 2 needs 17 rows"),
    ("Date,temp,wind,rain\n" + "".join(f"{np.datetime64('2020-01-01') + d},{np.sin(d)},{'NS'[d % 2]},0\n"
                                      for d in range(90)),
     "column(s) 'rain' constant over the training rows 0..53"),
    ("Date,temp,wind,rain\n2020-01-01,1,N,0\n2020-01-02,warm,S,0\n",
     "column 'temp', line 3: 'warm' is not a number"),
])
def test_bad_files_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    line = one_line_error(runner.invoke(app, train_args(path, tmp_path / "run")))
    assert message in line, line


def test_missing_target_and_non_forecast_run(tmp_path):
    line = one_line_error(runner.invoke(app, ["train", "forecast", "--data", "x.csv"]))
    assert "--data CSV (or --data synthetic) and --target COLUMN are required" in line
    line = one_line_error(runner.invoke(app, ["forecast", str(tmp_path)]))
    assert "is incomplete: missing config.json" in line
