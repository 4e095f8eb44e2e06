"""The command line: `rnnkit demo` runs and learns; failures are one line, or a traceback with --debug."""
import re
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import rnnkit.cli
from rnnkit.cli import app
from rnnkit.tasks.series import DemoConfig, run_demo

runner = CliRunner()
TRAIN_LINE = re.compile(r"^train MSE (\S+) -> (\S+) in (\d+) steps", re.MULTILINE)


def test_demo_quiet_runs_and_its_loss_falls():
    result = runner.invoke(app, ["demo", "series", "--steps", "30", "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    match = TRAIN_LINE.search(result.stdout)
    assert match, result.stdout
    first, last, steps = float(match[1]), float(match[2]), int(match[3])
    assert steps == 30
    assert last < first / 2
    assert "naive 'next value = last value' baseline" in result.stdout
    assert not re.search(r"^step ", result.stdout, re.MULTILINE), "--quiet still printed progress"
    assert result.stderr == ""


def test_demo_progress_shows_the_loss_going_down():
    result = runner.invoke(app, ["demo", "series", "--steps", "30", "--cell", "gru", "--hidden", "64", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    losses = [float(v) for v in re.findall(r"^step +\d+ +train MSE (\S+)$", result.stdout, re.MULTILINE)]
    assert len(losses) >= 3, result.stdout
    assert losses[-1] < losses[0] * 0.8
    assert "'gru' RNN with 64 units" in result.stdout


def test_demo_is_deterministic_for_a_seed():
    config = DemoConfig(steps=5, log_every=1, test_windows=8, generate_length=4, device="cpu")
    rng_before = torch.get_rng_state()
    a = run_demo(config)
    assert torch.equal(torch.get_rng_state(), rng_before), "run_demo moved the caller's torch RNG"
    torch.rand(10)  # a different global RNG state must not matter: the seed decides
    b = run_demo(config)
    assert a.history == b.history and a.test_mse == b.test_mse
    assert a.instance_generated == b.instance_generated and a.zeros_generated == b.zeros_generated
    c = run_demo(DemoConfig(steps=5, log_every=1, test_windows=8, generate_length=4, device="cpu", seed=1))
    assert c.history != a.history


def test_unknown_option_is_a_usage_error():
    result = runner.invoke(app, ["demo", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option: --no-such-option" in result.stderr
    assert "rnnkit: error:" not in result.output


def test_bad_value_is_one_line_without_traceback():
    result = runner.invoke(app, ["demo", "series", "--cell", "nope"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert result.stderr.startswith("rnnkit: error: ")
    assert "'nope'" in result.stderr and "lstm" in result.stderr  # the bad value and what was expected
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--debug", "demo", "series", "--cell", "nope"], ["demo", "series", "--cell", "nope", "--debug"]])
def test_debug_shows_the_traceback(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: demo: expected cell" in result.stderr


def test_unexpected_errors_name_their_type_on_one_line(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(rnnkit.cli, "run_demo", broken)
    result = runner.invoke(app, ["demo", "series", "--quiet"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("rnnkit: error: RuntimeError: first line second line "
                                     "(run with --debug for the traceback)")


def test_python_m_rnnkit_help():
    proc = subprocess.run([sys.executable, "-m", "rnnkit", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: rnnkit ")
    assert re.search(r"^\s+demo\s", proc.stdout, re.MULTILINE)


def test_python_m_rnnkit_failure_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "rnnkit", "demo", "series", "--device", "tpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "rnnkit: error: demo: expected device in ['auto', 'cpu', 'cuda'], got 'tpu'\n"
