"""ACT parity task: the generator follows Graves (2016) section 3.1, a tiny pondering RNN learns short parity well
above chance, the loss adds tau times the ponder cost, the CLI round-trips and fails in one line on bad input."""
import json
import re

import pytest
import torch

from rnnkit.data.algorithmic import parity_vectors
from rnnkit.data.batching import Batch
from rnnkit.memory.act import Halting, Pondered
from rnnkit.tasks import act
from rnnkit.train import TrainConfig

from clikit import cli, one_line_error


def test_parity_vectors():
    g = torch.Generator().manual_seed(0)
    x, y = parity_vectors(500, 64, g)
    assert x.shape == (500, 1, 64) and y.shape == (500, 1, 1)
    assert set(x.unique().tolist()) == {-1.0, 0.0, 1.0}
    nonzeros = (x != 0).sum(dim=(1, 2))
    assert nonzeros.min() >= 1 and nonzeros.max() <= 64 and len(nonzeros.unique()) > 40  # 1..64 at random
    torch.testing.assert_close(y.flatten(), ((x == 1).sum(dim=(1, 2)) % 2).float())
    x, _ = parity_vectors(3, 8, g, nonzeros=torch.tensor([1, 4, 8]))
    assert (x != 0).sum(dim=(1, 2)).tolist() == [1, 4, 8]
    with pytest.raises(ValueError, match=r"expected 3 non-zero counts in 1..8, got 3 with maximum 9"):
        parity_vectors(3, 8, g, nonzeros=torch.tensor([1, 4, 9]))


def test_the_loss_adds_tau_times_the_ponder_cost():
    task = act.ACTTask(size=4, time_penalty=0.5)
    logits, y = torch.tensor([[[2.0]], [[-1.0]]]), torch.tensor([[[1.0]], [[1.0]]])
    cost = torch.tensor([[3.25], [1.5]])
    out = Pondered(logits, Halting(cost.floor(), cost - cost.floor(), cost))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    torch.testing.assert_close(act.loss_fn(task)(out, Batch(torch.zeros(2, 1, 4), y)), bce + 0.5 * cost.mean())
    assert act.metrics(out, Batch(torch.zeros(2, 1, 4), y)) == {"accuracy": 0.5, "ponder_steps": 2.0,
                                                                "ponder_cost": 2.375}


def test_a_tiny_pondering_rnn_learns_short_parity(tmp_path):
    task = act.ACTTask(size=3, batches_per_epoch=50, valid_size=200, test_size=400)
    cfg = TrainConfig(steps=100, eval_every=100, lr=1e-2, clip_norm=5.0, batch_size=64, device="cpu", quiet=True)
    report = act.train(task, {"hidden_size": 32, "max_steps": 6}, cfg, tmp_path / "run")
    assert report["accuracy"] > 0.7, report  # chance: 0.5
    assert 1 <= report["ponder_steps"] <= 6 and report["ponder_cost"] > report["ponder_steps"] - 1
    assert set(report["by_nonzeros"]) == {"1-1", "2-2", "3-3"}
    for name in ("config.json", "model.safetensors", "model.best.safetensors", "trainer.pt", "metrics.jsonl",
                 "loss.png", "test.json", "ponder.png"):
        assert (tmp_path / "run" / name).exists(), name
    assert json.loads((tmp_path / "run" / "test.json").read_text()) == report
    assert act.evaluate_run(tmp_path / "run")["accuracy"] == report["accuracy"]


def test_max_steps_one_is_the_rnn_without_act(tmp_path):
    task = act.ACTTask(size=4, batches_per_epoch=2, valid_size=20, test_size=40)
    report = act.train(task, {"hidden_size": 8, "max_steps": 1}, TrainConfig(steps=2, device="cpu", quiet=True),
                       tmp_path / "run")
    assert report["ponder_steps"] == 1.0 and report["ponder_cost"] == 2.0  # N = 1, R = 1


def test_cli_round_trip(tmp_path):
    result = cli("train", "act", "--size", "4", "--hidden", "8", "--cell", "gru", "--max-steps", "5", "--steps", "4",
                 "--eval-every", "2", "--valid-size", "20", "--test-size", "40", "--batches-per-epoch", "2", "--out",
                 tmp_path / "run", "--device", "cpu", "--quiet")
    lines = result.stdout.splitlines()
    assert lines[0] == "ACT parity, vectors of 4 entries: gru cell of 8 units, at most 5 ponder steps, tau 0.001"
    assert re.match(r"[\d,]+ parameters; 4 steps in \d+ s; run directory ", lines[1]), lines[1]
    assert re.match(r"test: accuracy \S+% on 40 parity vectors of 4 entries \(chance: 50%\), \S+ ponder steps per "
                    r"input \(at most 5\), ponder cost \S+, cross-entropy \S+$", lines[2]), lines[2]
    assert lines[3].startswith("by non-zero entries (accuracy, ponder steps): 1-1: ")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "act" and config["model"]["cell"] == "gru" and config["data"]["size"] == 4
    assert act.evaluate_run(tmp_path / "run") == {k: v for k, v in json.loads(
        (tmp_path / "run" / "test.json").read_text()).items() if k not in ("step", "seconds")}
    assert cli("evaluate", tmp_path / "run").stdout.splitlines() == [lines[2]]  # the same test line again
    one_line_error(cli("evaluate", tmp_path / "run", "--data", "x.txt", ok=False),
                   "this act run is evaluated on its own generated test set; --data and --batch-size do not apply")


@pytest.mark.parametrize("args, expected", [
    (["--task", "addition"], ["expected task in ('parity',), got 'addition'"]),
    (["--size", "0"], ["expected size >= 1, got 0"]),
    (["--max-steps", "0"], ["expected max_steps >= 1, got 0"]),
    (["--epsilon", "1.5"], ["expected epsilon in (0.0, 1.0), got 1.5"]),
    (["--time-penalty", "-1"], ["expected time_penalty >= 0 (τ), got -1.0"]),
    (["--cell", "tcn"], ["expected cell in", "got 'tcn'"]),
    (["--data", "x.txt"], ["the data are generated from --seed; --data is not used"]),
    (["--bptt", "2"], ["--bptt does not apply"]),
])
def test_cli_bad_input_is_one_line(args, expected):
    one_line_error(cli("train", "act", "--steps", "1", "--quiet", "--device", "cpu", *args, ok=False), *expected)


def test_load_refuses_another_task(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"task": "ntm"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a act run, got task 'ntm'"):
        act.load(tmp_path)
