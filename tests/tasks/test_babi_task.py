"""bAbI with a DMN: a short run learns task 1 well above chance, the run directory holds what evaluate and answer need,
answer() names the attended facts, the decoder and DMN variants train, and the CLI (train babi, answer) round-trips
and fails in one line on bad input."""
import json
import logging
import re
from pathlib import Path

import pytest

from rnnkit.tasks import babi
from rnnkit.train import TrainConfig

from clikit import cli, one_line_error

BABI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "babi" / "tasks_1-20_v1-2"

STORY = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Sandra moved to the garden.
6 Where is Daniel?
"""


@pytest.fixture(scope="module")
def data() -> str:
    if not BABI.exists():
        pytest.skip(f"shared data not found: {BABI.resolve()}")
    return str(BABI)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """Task 1 on 300 training questions, 60 steps with gate supervision (about 3 s of CPU)."""
    out = tmp_path_factory.mktemp("babi") / "task1"
    task = babi.BabiTask(data=data, task=1, train_size=300, supervise_gates=True)
    cfg = TrainConfig(steps=60, batch_size=32, lr=1e-2, eval_every=30, quiet=True, device="cpu", seed=0)
    return out, babi.train(task, {"hidden": 32}, cfg, out)


def test_a_short_run_learns_task_1_well_above_chance(trained):
    out, report = trained
    test = report["test"]
    assert test["questions"] == 1000 and test["accuracy"] > 0.4, report  # chance: 1 of 6 places
    assert report["data"] == {"train": 300, "valid": 100, "test": 1000} and report["step"] == 60
    assert report["model"].startswith("DMN+ (positional encoding + fusion, softmax gates, 3 passes, untied ReLU")
    for name in ("config.json", "vocab.json", "model.safetensors", "model.best.safetensors", "trainer.pt",
                 "metrics.jsonl", "loss.png", "test.json", "gates.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "test.json").read_text()) == test
    assert babi.evaluate_run(out) == test  # the best weights, reloaded
    valid = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"valid"' in line]
    assert valid and 0 <= valid[-1]["accuracy"] <= 1


def test_answer_names_the_attended_facts_and_plots_the_gates(trained, tmp_path):
    out, _ = trained
    results = babi.answer(out, STORY, source="story", plot=tmp_path / "g.png")
    assert [r["question"] for r in results] == ["Where is Mary?", "Where is Daniel?"]
    first, second = results
    assert first["expected"] == "bathroom" and first["correct"] == (first["answer"] == "bathroom")
    assert second["expected"] is None and second["correct"] is None and second["answer"]
    assert len(second["gates"]) == 3 and len(second["gates"][0]) == 4 == len(second["facts"])
    assert second["facts"][2] == "4 Daniel went back to the hallway."
    gates = [g for _, g in second["attended"]]
    assert 1 <= len(gates) <= 5 and gates == sorted(gates, reverse=True)
    assert [r["plot"] for r in results] == [tmp_path / "g-1.png", tmp_path / "g-2.png"]
    assert all(p.stat().st_size > 1000 for p in (tmp_path / "g-1.png", tmp_path / "g-2.png"))


def test_answer_reads_unknown_words_as_unk_with_one_warning(trained, caplog):
    out, _ = trained
    with caplog.at_level(logging.WARNING, logger="rnnkit.data.babi"):
        results = babi.answer(out, "1 Mary flew to the moon.\n2 Where is Mary?\n")
    assert len(results) == 1 and results[0]["answer"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'flew'" in warnings[0] and "'moon'" in warnings[0] and "<unk>" in warnings[0]


def test_bad_input_to_answer(trained, tmp_path):
    out, _ = trained
    with pytest.raises(ValueError, match=r"story, line 1: the question 'where is mary \?' has an empty story"):
        babi.answer(out, "1 Where is Mary?\n", source="story")
    with pytest.raises(ValueError, match="story: no question found"):
        babi.answer(out, "1 Mary moved to the bathroom.\n", source="story")
    with pytest.raises(ValueError, match=r"story, line 2: expected line ID 2 \(the next in the story\)"):
        babi.answer(out, "1 Mary moved.\n3 Where is Mary?\n", source="story")
    with pytest.raises(ValueError, match="expected a babi run, got task None"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "config.json").write_text("{}")
        (tmp_path / "other" / "vocab.json").write_text("{}")
        (tmp_path / "other" / "model.safetensors").write_text("")
        babi.answer(tmp_path / "other", STORY)


def test_multi_word_answers_train_the_gru_decoder(data, tmp_path):
    task = babi.BabiTask(data=data, task=19, train_size=64)
    cfg = TrainConfig(steps=2, batch_size=32, eval_every=0, quiet=True, device="cpu")
    report = babi.train(task, {"hidden": 8, "passes": 1}, cfg, tmp_path / "t19")
    assert "GRU decoder (<= 2 words)" in report["model"] and report["test"]["questions"] == 1000
    story = "1 The kitchen is north of the office.\n2 How do you go from the office to the kitchen?\tn\t1\n"
    result = babi.answer(tmp_path / "t19", story)[0]
    assert result["expected"] == "n" and isinstance(result["answer"], str)
    with pytest.raises(ValueError, match=r"qa19_path-finding_train.txt, line \d+: a one-word \(softmax\) answer module "
                                         r"cannot give the 2-word answer"):
        babi.train(task, {"hidden": 8, "answer": "softmax"}, cfg, tmp_path / "t19-softmax")


def test_the_dmn_variant_and_its_options_train(data, tmp_path):
    task = babi.BabiTask(data=data, task=2, train_size=40, max_facts=6)
    cfg = TrainConfig(steps=2, batch_size=20, eval_every=0, quiet=True, device="cpu")
    report = babi.train(task, {"variant": "dmn", "hidden": 8, "passes": 2, "fusion": True}, cfg, tmp_path / "t2")
    assert report["model"].startswith("DMN (story GRU + fusion, sigmoid gates, 2 passes, tied GRU update")
    config = json.loads((tmp_path / "t2" / "config.json").read_text())
    assert config["model"]["sentence"] == "gru" and config["model"]["fusion"] is True
    assert config["data"]["max_facts"] == 6
    with pytest.raises(ValueError, match=re.escape("expected --variant in dmn+, dmn, got 'dmn++'")):
        babi.train(task, {"variant": "dmn++"}, cfg, tmp_path / "bad")
    with pytest.raises(ValueError, match="truncated BPTT"):
        babi.train(task, {}, TrainConfig(steps=1, bptt=5), tmp_path / "bad")


def test_cli_train_answer_resume_round_trip(data, tmp_path):
    out = tmp_path / "run"
    common = ["train", "babi", "--data", data, "--task", "1", "--train-size", "64", "--hidden", "8", "--passes", "2",
              "--batch-size", "32", "--eval-every", "0", "--out", out, "--quiet", "--device", "cpu", "--no-fusion",
              "--untied", "--gate", "sigmoid", "--update", "gru"]
    result = cli(*common, "--steps", "2")
    model = json.loads((out / "config.json").read_text())["model"]
    assert (model["fusion"], model["tied"], model["gate"], model["update"], model["sentence"]) == (
        False, False, "sigmoid", "gru", "pe")
    assert "bAbI task 1 (single-supporting-fact), 1k: 64 train, 100 valid, 1,000 test questions" in result.stdout
    assert "test accuracy" in result.stdout and f"{out / 'gates.png'}" in result.stdout
    resumed = cli(*common, "--steps", "3", "--resume")
    assert "of 3); " in resumed.stdout  # trained on from step 2 to 3
    test_line = next(line for line in resumed.stdout.splitlines() if line.startswith("test accuracy"))
    assert test_line.startswith(cli("evaluate", out).stdout.strip() + ", the weights with the lowest")
    one_line_error(cli("evaluate", out, "--batch-size", "4", ok=False),
                   "this babi run is evaluated on its bAbI task's test file; --data and --batch-size do not apply")
    story = tmp_path / "story.txt"
    story.write_text(STORY)
    answered = cli("answer", out, story, "--plot", tmp_path / "gates.png", "--top", "2")
    lines = answered.stdout.splitlines()
    assert lines[0].startswith("Where is Mary? -> ") and "(expected bathroom: " in lines[0]
    assert lines[1] == "  attended in pass 2 of 2:" and lines[2].startswith("    ")
    assert any(line.startswith("Where is Daniel? -> ") for line in lines)
    assert (tmp_path / "gates-1.png").is_file() and (tmp_path / "gates-2.png").is_file()
    piped = cli("answer", out, "-", input=STORY)
    assert piped.stdout.splitlines()[0] == lines[0]


def test_cli_bad_input_fails_in_one_line(data, tmp_path):
    base = ["train", "babi", "--steps", "1", "--quiet", "--out", tmp_path / "x"]
    one_line_error(cli(*base, ok=False), "--data DIR is required")
    one_line_error(cli(*base, "--data", data, "--task", "21", ok=False), "expected a task number in 1..20, got 21")
    one_line_error(cli(*base, "--data", data, "--task", "3", "--ten-k", ok=False),
                   "qa3_three-supporting-facts_train.txt", "Use the 1k set")
    one_line_error(cli(*base, "--data", tmp_path, ok=False), "expected a directory holding en/")
    one_line_error(cli(*base, "--data", data, "--gate", "relu", ok=False), "expected gate in softmax, sigmoid")
    one_line_error(cli(*base, "--data", data, "--bptt", "4", ok=False), "every question is one sequence")
    one_line_error(cli(*base, "--data", data, "--train-size", "0", ok=False), "expected train-size >= 1, got 0")
    one_line_error(cli(*base, "--data", data, "--gate-weight", "2", ok=False), "give --supervise-gates too")
    one_line_error(cli("answer", tmp_path / "nowhere", "-", input=STORY, ok=False), "run directory",
                   "does not exist")
    one_line_error(cli("answer", tmp_path, tmp_path / "missing.txt", ok=False), "missing.txt", "no such file")
