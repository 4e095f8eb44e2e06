"""NTM tasks: the copy and repeat-copy generators lay sequences out as Graves et al. (2014) describe, bit errors are
counted on the scored steps only, a tiny NTM beats the no-memory baseline on short copy, run directories resume
exactly, and the CLI trains an NTM and the LSTM baseline and fails in one line on bad input."""
import json
import math
import re

import pytest
import safetensors.torch
import torch

from rnnkit.data.algorithmic import (FixedBatches, SeededBatches, copy_sequences, repeat_copy_sequences,
                                     repeat_normalisation, seeded_generator)
from rnnkit.data.batching import Batch
from rnnkit.tasks import ntm
from rnnkit.train import TrainConfig, checkpoint

from clikit import cli, one_line_error

TINY_NTM = {"model": "ntm", "memory_size": 8, "memory_width": 6, "controller_size": 24}
TINY_TASK = dict(width=4, min_length=1, max_length=3, batches_per_epoch=50, valid_size=50, test_size=100)


def test_copy_layout():
    s = copy_sequences(torch.tensor([2, 3]), 4, torch.Generator().manual_seed(0))
    assert s.x.shape == (2, 7, 5) and s.y.shape == (2, 7, 4) and s.lengths.tolist() == [5, 7]
    for b, L in enumerate((2, 3)):
        assert s.x[b, L, 4] == 1 and s.x[b, :, 4].sum() == 1  # one delimiter, right after the vectors
        assert s.x[b, L:, :4].abs().sum() == 0  # nothing but the delimiter after the vectors
        torch.testing.assert_close(s.y[b, L + 1:2 * L + 1], s.x[b, :L, :4])  # the copy
        assert s.mask[b].tolist() == [0.0] * (L + 1) + [1.0] * L + [0.0] * (6 - 2 * L)
    assert set(s.x[:, :, :4].unique().tolist()) <= {0.0, 1.0}


def test_repeat_copy_layout():
    s = repeat_copy_sequences(torch.tensor([2, 1]), torch.tensor([3, 2]), 3, torch.Generator().manual_seed(0),
                              repeat_range=(1, 3))
    assert s.lengths.tolist() == [2 * 3 + 2 + 2, 1 * 2 + 1 + 2] and s.x.shape == (2, 10, 5) and s.y.shape == (2, 10, 4)
    mean, std = repeat_normalisation(1, 3)
    assert (mean, std) == (2.0, pytest.approx(math.sqrt(2 / 3)))
    assert s.x[0, 2, 3] == 1 and s.x[0, 2, 4].item() == pytest.approx((3 - mean) / std)
    assert s.x[1, 1, 4].item() == pytest.approx(0.0)  # R = 2 is the mean
    torch.testing.assert_close(s.y[0, 3:9, :3], s.x[0, :2, :3].repeat(3, 1))  # three copies
    assert s.y[0, 9].tolist() == [0, 0, 0, 1] and s.y[0, :9, 3].sum() == 0  # then the end marker
    assert s.mask[0].tolist() == [0, 0, 0] + [1] * 7 and s.mask[1].tolist() == [0, 0] + [1] * 3 + [0] * 5
    assert repeat_normalisation(4, 4) == (4.0, 1.0)


def test_generation_is_seeded_variable_and_streams_differ():
    task = ntm.NTMTask("copy", **TINY_TASK)
    a, b = (list(ntm.training_batches(task, 8, seed=1).batches(0)) for _ in range(2))
    assert all(torch.equal(x.x, y.x) for x, y in zip(a, b))  # the same seed, the same data
    assert len({batch.x.shape[1] for batch in a}) > 1  # lengths vary from batch to batch
    assert all(batch.lengths is None for batch in a)  # but not within one: no padding in training
    other = next(iter(ntm.training_batches(task, 8, seed=1).batches(1)))
    assert not torch.equal(other.x, a[0].x) or other.x.shape != a[0].x.shape
    valid, test = (ntm.fixed_set(task, 50, 0, stream) for stream in (1, 2))
    vx, tx = next(iter(valid.batches())), next(iter(test.batches()))
    assert not (vx.x.shape == tx.x.shape and torch.equal(vx.x, tx.x))
    lengths = torch.cat([batch.x[:, :, 4].argmax(1) for batch in test.batches()])
    assert set(lengths.tolist()) == {1, 2, 3}  # one random length per sequence in the fixed sets


def test_fixed_batches_sort_by_length_and_pad_little():
    s = copy_sequences(torch.tensor([5, 1, 3, 1, 5]), 2, torch.Generator().manual_seed(0))
    batches = list(FixedBatches(s, 2).batches())
    assert [b.x.shape[1] for b in batches] == [3, 11, 11]  # (1, 1), (3, 5), (5)
    assert batches[0].lengths is None and batches[1].lengths.tolist() == [7, 11]


def test_bit_errors_count_the_scored_steps_only():
    y = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])  # (1, 3, 2)
    mask = torch.tensor([[0.0, 1.0, 1.0]])
    logits = torch.tensor([[[-5.0, 5.0], [5.0, -5.0], [5.0, -5.0]]])  # step 0 all wrong but not scored
    batch = Batch(torch.zeros(1, 3, 3), y, weights=mask)
    assert ntm.bit_metrics(logits, batch) == {"bit_error_rate": 0.5, "bit_errors": 2.0}
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 1:], y[:, 1:])
    torch.testing.assert_close(ntm.bit_loss(logits, batch), expected)


def test_a_tiny_ntm_beats_the_no_memory_baseline_on_short_copy(tmp_path):
    task = ntm.NTMTask("copy", **TINY_TASK)
    cfg = TrainConfig(steps=100, eval_every=100, lr=1e-2, clip_norm=10.0, batch_size=16, device="cpu", quiet=True)
    report = ntm.train(task, TINY_NTM, cfg, tmp_path / "run")
    assert report["baseline_bit_error_rate"] > 0.4 and report["loss"] < 0.8 * math.log(2), report
    assert report["bit_error_rate"] < 0.6 * report["baseline_bit_error_rate"], report
    assert report["sequences"] == 100 and set(report["by_length"]) == {"1", "2", "3"} and report["step"] == 100
    for name in ("config.json", "model.safetensors", "model.best.safetensors", "trainer.pt", "metrics.jsonl",
                 "loss.png", "test.json", "ntm_trace.png"):
        assert (tmp_path / "run" / name).exists(), name
    assert json.loads((tmp_path / "run" / "test.json").read_text()) == report
    again = ntm.evaluate_run(tmp_path / "run")
    assert again["bit_error_rate"] == report["bit_error_rate"] and again["loss"] == pytest.approx(report["loss"])
    at = ntm.evaluate_lengths(tmp_path / "run", [2, 5], size=20)
    assert set(at) == {2, 5} and at[5]["by_length"].keys() == {"5"} and at[5]["sequences"] == 20


def test_repeat_copy_and_the_lstm_baseline_train(tmp_path):
    task = ntm.NTMTask("repeat-copy", width=3, max_length=2, max_repeats=2, batches_per_epoch=3, valid_size=10,
                       test_size=10)
    cfg = TrainConfig(steps=3, eval_every=3, device="cpu", quiet=True)
    report = ntm.train(task, {**TINY_NTM, "controller": "feedforward", "read_heads": 2}, cfg, tmp_path / "ntm")
    assert report["task"] == "repeat-copy" and math.isfinite(report["loss"])
    lstm = ntm.train(task, {"model": "lstm", "hidden": 8, "layers": 1}, cfg, tmp_path / "lstm")
    assert lstm["model"] == "lstm" and not (tmp_path / "lstm" / "ntm_trace.png").exists()
    with pytest.raises(ValueError, match="an LSTM run has no memory heads to draw"):
        ntm.plot_trace(tmp_path / "lstm")


def test_resume_continues_exactly(tmp_path):
    task = ntm.NTMTask("copy", **{**TINY_TASK, "batches_per_epoch": 4, "valid_size": 8, "test_size": 8})

    def cfg(steps):
        return TrainConfig(steps=steps, eval_every=3, quiet=True, device="cpu", lr=5e-3, batch_size=4)

    ntm.train(task, TINY_NTM, cfg(6), tmp_path / "straight")
    ntm.train(task, TINY_NTM, cfg(4), tmp_path / "split")  # stops between two validations and inside epoch 1
    ntm.train(task, TINY_NTM, cfg(6), tmp_path / "split", resume=True)
    a = safetensors.torch.load_file(tmp_path / "straight" / "model.safetensors")
    b = safetensors.torch.load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


SMALL_CLI = ["--width", "3", "--max-length", "2", "--steps", "4", "--eval-every", "2", "--valid-size", "10",
             "--test-size", "20", "--batches-per-epoch", "2", "--device", "cpu", "--quiet"]


def test_cli_trains_an_ntm_and_the_lstm_baseline(tmp_path):
    result = cli("train", "ntm", "--memory-size", "8", "--memory-width", "4", "--hidden", "10", "--out",
                 tmp_path / "ntm", *SMALL_CLI)
    lines = result.stdout.splitlines()
    assert lines[0] == ("copy, vectors of 3 bits, lengths 1-2: NTM (lstm controller, 10 units; memory 8 x 4; "
                        "1 read / 1 write heads)"), lines[0]
    assert re.match(r"[\d,]+ parameters; 4 steps in \d+ s; run directory ", lines[1]), lines[1]
    assert re.match(r"test: bit error rate \S+% \(\S+ wrong bits per sequence\), \S+ nats per bit, on 20 sequences "
                    r"of lengths 1-2 \(no-memory baseline: ", lines[2]), lines[2]
    assert re.match(r"bit error rate by length: 1: \S+%, 2: \S+%$", lines[3]), lines[3]
    config = json.loads((tmp_path / "ntm" / "config.json").read_text())
    assert config["task"] == "ntm" and config["model"]["kind"] == "ntm"
    assert config["model"]["config"]["memory_size"] == 8
    report = json.loads((tmp_path / "ntm" / "test.json").read_text())
    assert ntm.evaluate_run(tmp_path / "ntm")["bit_errors"] == report["bit_errors"]
    assert (tmp_path / "ntm" / "ntm_trace.png").stat().st_size > 1000
    assert cli("evaluate", tmp_path / "ntm").stdout.splitlines() == [lines[2]]  # the same test line again
    lstm = cli("train", "ntm", "--model", "lstm", "--task", "repeat-copy", "--max-repeats", "2", "--hidden", "6",
               "--layers", "1", "--out", tmp_path / "lstm", *SMALL_CLI)
    assert lstm.stdout.startswith("repeat-copy, vectors of 3 bits, lengths 1-2, repeats 1-2: LSTM baseline (1 x 6)")


@pytest.mark.parametrize("args, expected", [
    (["--task", "sort"], ["expected task in ('copy', 'repeat-copy'), got 'sort'"]),
    (["--min-length", "0"], ["expected min_length >= 1, got 0"]),
    (["--min-length", "3", "--max-length", "2"], ["expected min_length <= max_length, got 3 > 2"]),
    (["--memory-size", "0"], ["expected memory_size >= 1, got 0"]),
    (["--shift-range", "-1"], ["expected shift_range >= 0 (shifts -S..S), got -1"]),
    (["--controller", "tcn"], ["expected controller in", "got 'tcn'"]),
    (["--memory-init", "random"], ["expected memory_init in ('fixed', 'learned'), got 'random'"]),
    (["--model", "gru"], ["expected model in ('ntm', 'lstm'), got 'gru'"]),
    (["--model", "lstm", "--memory-size", "64"], ["--memory-size applies to --model ntm (got --memory-size 64)"]),
    (["--layers", "2"], ["--layers applies to --model lstm"]),
    (["--max-repeats", "4"], ["--max-repeats applies to --task repeat-copy (got --max-repeats 4)"]),
    (["--data", "x.txt"], ["the data are generated from --seed; --data is not used"]),
    (["--bptt", "5"], ["every sequence is one sequence, trained whole; --bptt does not apply"]),
    (["--resume"], ["--resume needs --out RUN_DIR"]),
])
def test_cli_bad_input_is_one_line(args, expected):
    one_line_error(cli("train", "ntm", "--steps", "1", "--quiet", "--device", "cpu", *args, ok=False), *expected)


def test_load_refuses_another_task(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"task": "copy"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a ntm run, got task 'copy'"):
        ntm.load(tmp_path)
    assert checkpoint.run_task(tmp_path) == "copy"


def test_seeded_batches_check_their_arguments():
    with pytest.raises(ValueError, match="SeededBatches: expected batches_per_epoch >= 1, got 0"):
        SeededBatches(lambda g: None, 0)
    with pytest.raises(ValueError, match="expected every length >= 1, got 0"):
        copy_sequences(torch.tensor([2, 0]), 4, seeded_generator(0, 0))
    with pytest.raises(ValueError, match="expected one repeat count per sequence, got 1 counts for 2 lengths"):
        repeat_copy_sequences(torch.tensor([2, 1]), torch.tensor([1]), 4, seeded_generator(0, 0), repeat_range=(1, 2))
