"""Memory tasks (adding, copy, noisy 1-2-3 pattern): models learn below the trivial baseline, every encoder
kind trains, run directories resume exactly, the CLI prints the baseline and fails in one line."""
import json
import re

import pytest
import safetensors.torch
import torch

from rnnkit.layers import ENCODERS
from rnnkit.models.sequence_tasks import SequenceModel
from rnnkit.models.sizing import count_parameters
from rnnkit.tasks import memory
from rnnkit.train import TrainConfig

from clikit import cli, one_line_error

SMALL = dict(batches_per_epoch=20, valid_size=100, test_size=200)



def train(tmp_path, task, length, model, steps, **kw):
    spec = memory.MemoryTask(task, length, **SMALL)
    fields = memory.sized_model(task, model, **kw.pop("model_kw", {"hidden": 16}))
    cfg = TrainConfig(steps=steps, eval_every=kw.pop("eval_every", 50), quiet=True, lr=kw.pop("lr", 1e-2),
                      device="cpu", **kw)
    return memory.train(spec, fields, cfg, tmp_path / f"{task}-{model}")


@pytest.mark.parametrize("task, length, model, steps, model_kw, below", [
    ("adding", 10, "gru", 150, {"hidden": 16}, 0.2),  # MSE under a fifth of "predict 1"
    ("copy", 5, "tcn", 150, {"hidden": 16, "layers": 3, "kernel_size": 3}, 0.5),
    ("pattern", 12, "gru", 150, {"hidden": 16}, 0.6),  # reads the input: below "predict the mean"
])
def test_models_learn_well_below_the_trivial_baseline(tmp_path, task, length, model, steps, model_kw, below):
    report = train(tmp_path, task, length, model, steps, model_kw=model_kw)
    assert report["task"] == task and report["step"] == steps and report["test_size"] == 200
    assert report["loss"] < below * report["baseline"], report
    run = tmp_path / f"{task}-{model}"
    for name in ("config.json", "model.safetensors", "model.best.safetensors", "trainer.pt", "metrics.jsonl",
                 "loss.png", "test.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "test.json").read_text()) == report
    again = memory.evaluate_run(run)
    assert again["loss"] == pytest.approx(report["loss"], rel=1e-6)
    if task == "copy":
        assert report["recall_accuracy"] > 0.5, report  # a guess is right 1 time in 8


@pytest.mark.parametrize("model", ENCODERS)
def test_every_encoder_kind_trains_on_the_adding_problem(tmp_path, model):
    report = train(tmp_path, "adding", 8, model, 3, model_kw={"hidden": 6}, eval_every=0)
    assert report["model"] == model and report["step"] == 3 and report["loss"] == report["loss"]  # finite


def test_copy_memory_is_many_to_many_and_adding_many_to_one():
    adding = SequenceModel(memory.model_config(memory.MemoryTask("adding", 7), {"model": "lstm", "hidden": 5}))
    preds, state = adding(torch.randn(3, 7, 2))
    assert preds.shape == (3, 1) and len(state) == 1
    copy = SequenceModel(memory.model_config(memory.MemoryTask("copy", 4), {"model": "tcn", "hidden": 5}))
    logits, state = copy(torch.randn(3, 24, 10))
    assert logits.shape == (3, 24, 10) and state == ()
    # many-to-one with lengths reads each sequence's last valid step
    x, lengths = torch.randn(2, 7, 2), torch.tensor([7, 4])
    padded, _ = adding(x, lengths=lengths)
    alone, _ = adding(x[1:, :4])
    torch.testing.assert_close(padded[1], alone[0])


@pytest.mark.parametrize("task, budget", [("adding", 70_000), ("copy", 16_000)])
def test_models_are_sized_to_about_equal_parameter_counts(task, budget):
    for model in ("rnn", "gru", "lstm", "tcn"):
        fields = memory.sized_model(task, model)
        n = count_parameters(SequenceModel(memory.model_config(memory.MemoryTask(task, 10), fields)))
        assert abs(n - budget) / budget < 0.04, (model, n)
    assert memory.sized_model(task, "tcn")["layers"] == 8  # Bai et al.'s levels
    assert memory.sized_model(task, "gru", params=5000)["hidden"] < memory.sized_model(task, "gru")["hidden"]


def test_resume_continues_exactly(tmp_path):
    spec = memory.MemoryTask("copy", 4, **SMALL)
    fields = {"model": "gru", "hidden": 8, "layers": 1, "kernel_size": None, "dropout": 0.0}

    def cfg(steps):
        return TrainConfig(steps=steps, eval_every=5, quiet=True, device="cpu", lr=5e-3)

    memory.train(spec, fields, cfg(12), tmp_path / "straight")
    memory.train(spec, fields, cfg(7), tmp_path / "split")
    memory.train(spec, fields, cfg(12), tmp_path / "split", resume=True)
    a = safetensors.torch.load_file(tmp_path / "straight" / "model.safetensors")
    b = safetensors.torch.load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_prints_the_baseline_and_the_test_loss(tmp_path):
    result = cli("train", "adding", "--length", "12", "--hidden", "8", "--steps", "20", "--eval-every", "10",
                 "--valid-size", "50", "--test-size", "100", "--batches-per-epoch", "5", "--out", tmp_path / "run",
                 "--device", "cpu", "--quiet")
    lines = result.stdout.splitlines()
    assert re.match(r"adding problem, T = 12: trivial baseline \(predict 1\) MSE 0\.\d+ on the 100 test sequences "
                    r"\(expected 0\.1667\)$", lines[0]), lines[0]
    assert re.match(r"model: gru, 1 x 8 units, \d+ parameters; 20 steps in \d+ s; run directory ", lines[1]), lines[1]
    assert re.match(r"test MSE \S+ on 100 sequences \(baseline, predict 1: \S+; ", lines[2]), lines[2]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "adding" and config["data"]["length"] == 12 and config["train"]["stateful"] is False
    # rnnkit evaluate RUN_DIR reports the same test loss
    assert cli("evaluate", tmp_path / "run").stdout.strip() == lines[2]
    one_line_error(cli("evaluate", tmp_path / "run", "--data", "x.txt", ok=False),
                   "this adding run is evaluated on its own generated test set")
    one_line_error(cli("evaluate", tmp_path / "run", "--precision", "bf16", ok=False),
                   "--precision bf16 applies to language-model runs (charlm, wordlm), not adding")


@pytest.mark.parametrize("task, model, expected", [
    ("copy", "tcn", r"copy memory, T = 6: trivial baseline \(blank, then a uniform guess among the 8 symbols "
                    r"\(no memory\)\) cross-entropy per step 0\.7998 "),
    ("pattern", "lstm", r"noisy 1-2-3 pattern, T = 6: trivial baseline \(predict the mean 2\.2 \(no input\)\) MSE "),
])
def test_cli_copy_and_pattern(tmp_path, task, model, expected):
    result = cli("train", task, "--length", "6", "--model", model, "--hidden", "6", "--steps", "4",
                 "--eval-every", "2", "--valid-size", "20", "--test-size", "30", "--out", tmp_path / task,
                 "--device", "cpu", "--quiet")
    assert re.match(expected, result.stdout), result.stdout
    if task == "copy":
        assert "TCN, 8 blocks x 6 channels, kernel 8" in result.stdout and "recall accuracy" in result.stdout


def test_cli_bad_input_is_one_line(tmp_path):
    base = ["train", "adding", "--length", "8", "--steps", "2", "--device", "cpu", "--quiet", "--hidden", "4"]
    one_line_error(cli(*base, "--data", "x.txt", ok=False), "the data is generated from --seed; --data is not used")
    one_line_error(cli(*base, "--bptt", "4", ok=False), "the adding problem has one per sequence")
    one_line_error(cli("train", "copy", "--length", "4", "--model", "tcn", "--bptt", "4", "--quiet", ok=False),
                   "a TCN has none")
    one_line_error(cli(*base, "--kernel-size", "3", ok=False), "kernel_size applies to the TCN only")
    one_line_error(cli(*base, "--params", "1000", ok=False), "give --hidden or --params, not both")
    one_line_error(cli(*base, "--model", "wavenet", ok=False), "expected model in", "'wavenet'")
    one_line_error(cli("train", "adding", "--length", "1", ok=False), "needs length >= 2")
    one_line_error(cli(*base, "--test-size", "0", ok=False), "expected test_size >= 1, got 0")
    one_line_error(cli("train", "copy", "--resume", ok=False), "--resume needs --out RUN_DIR")
    one_line_error(cli("train", "copy", "--resume", "--out", tmp_path / "nothing", ok=False), "nothing")


def test_load_refuses_another_task(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"task": "charlm"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a run of adding, copy, pattern, got task 'charlm'"):
        memory.load(tmp_path)
