"""`rnnkit train classify` and `rnnkit classify`: a tiny sentiment set that a model learns in seconds, the run
directory, prediction from arguments and stdin, resume, the ConvNet baseline, the shared SST / RT data, and
one-line errors for bad input."""
import json
import random
import re
from pathlib import Path

import pytest
import torch

from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
from rnnkit.tasks import classify
from rnnkit.train import evaluate

from clikit import cli, one_line_error

SENTIMENT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sentiment"
TINY = ["--hidden", "16", "--embedding", "16", "--batch-size", "16", "--device", "cpu", "--quiet", "--lr", "0.01"]
RUN_FILES = ["config.json", "tokenizer.json", "model.safetensors", "model.best.safetensors", "trainer.pt",
             "metrics.jsonl", "loss.png", "metrics_valid.json", "metrics_test.json", "confusion_valid.png",
             "confusion_test.png"]



def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()}")
    return path



def sentences(n: int, seed: int) -> str:
    """text<TAB>label lines: filler words around one word that decides the label."""
    rng = random.Random(seed)
    filler = "the a film movie plot was is and it this of acting story".split()
    lines = []
    for _ in range(n):
        label = rng.choice(["neg", "pos"])
        word = rng.choice(["good", "great", "wonderful"] if label == "pos" else ["bad", "awful", "dull"])
        words = [rng.choice(filler) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), word)
        lines.append(f"{' '.join(words)}\t{label}\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    for name, n, seed in (("train.tsv", 300, 0), ("valid.tsv", 60, 1), ("test.tsv", 60, 2)):
        (root / name).write_text(sentences(n, seed))
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("classify") / "run"
    result = cli("train", "classify", "--data", data / "train.tsv", "--valid-data", data / "valid.tsv",
                 "--test-data", data / "test.tsv", "--out", out, "--steps", 60, "--eval-every", 30, *TINY)
    return out, result


def test_learns_and_writes_the_run_directory(run):
    out, result = run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    assert "data: train 300, valid 60, test 60 texts; vocabulary" in result.stdout
    test = json.loads((out / "metrics_test.json").read_text())
    assert test["accuracy"] >= 0.9, result.stdout
    assert re.search(r"^the model with the lowest validation loss \(step (30|60) of 60\):\n  valid: accuracy \S+, "
                     r"macro F1 \S+\n  test: accuracy", result.stdout, re.M), result.stdout
    assert "confusion matrix (rows: true, columns: predicted):" in result.stdout
    assert sum(map(sum, test["confusion_matrix"])) == 60
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "classify" and config["labels"] == ["neg", "pos"]
    assert config["model"]["type"] == "sequence" and config["model"]["config"]["num_classes"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("split") == "valid"] == [30, 60]
    assert all("accuracy" in r for r in records if r.get("split") == "valid")


def test_classify_text_and_stdin(run):
    out, _ = run
    result = cli("classify", out, "what a wonderful film")
    label, probability = result.stdout.strip().split("\t")
    assert label == "pos" and 0.5 < float(probability) <= 1
    result = cli("classify", out, "-", input="the plot was awful\nthe acting was great\n")
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["neg", "pos"]


def test_classify_counts_what_it_cuts(run):
    out, _ = run
    long_text = "good " * 150  # the run's --max-len is the default 100
    result = cli("classify", out, long_text)
    assert "rnnkit: warning: 1 text(s) longer than the run's --max-len 100 tokens were cut" in result.stderr
    assert result.stdout.startswith("pos\t")


def test_classify_errors(run, tmp_path):
    out, _ = run
    one_line_error(cli("classify", out, "-", input="fine\n \n", ok=False), "stdin line 2: empty text")
    one_line_error(cli("classify", tmp_path, "good", ok=False), f"run directory {tmp_path} is incomplete")


def test_predictions_are_probabilities(run):
    out, _ = run
    result = classify.predict(out, ["good", "awful"])
    for p in result["predictions"]:
        assert set(p["probabilities"]) == {"neg", "pos"}
        assert sum(p["probabilities"].values()) == pytest.approx(1)
        assert p["probability"] == max(p["probabilities"].values())


def test_resume_continues_the_run(data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "classify", "--data", data / "train.tsv", "--out", out, "--eval-every", 5, *TINY]
    cli(*args, "--steps", 5)
    cli(*args, "--steps", 10, "--resume")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "split" not in r] == list(range(1, 11))
    one_line_error(cli(*args, "--steps", 5, ok=False), "already holds a training run")


def test_same_seed_same_run(data, tmp_path):
    losses = []
    for name in ("a", "b"):
        cli("train", "classify", "--data", data / "train.tsv", "--out", tmp_path / name, "--steps", 4, *TINY)
        records = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        losses.append([json.loads(r)["loss"] for r in records])
    assert losses[0] == losses[1]


@pytest.mark.parametrize("extra", [["--model", "conv", "--kernel-size", "3"],
                                   ["--model", "gru", "--bidirectional", "--pooling", "attention"],
                                   ["--model", "lstm", "--pooling", "max", "--layers", "2", "--dropout", "0.1"]])
def test_other_models_learn(data, tmp_path, extra):
    out = tmp_path / "run"
    cli("train", "classify", "--data", data / "train.tsv", "--valid-data", data / "valid.tsv", "--out", out,
        "--steps", 60, "--eval-every", 60, *TINY, *extra)
    assert json.loads((out / "metrics_valid.json").read_text())["accuracy"] >= 0.85


def test_max_len_cuts_are_logged(data, tmp_path, caplog):
    cli("train", "classify", "--data", data / "train.tsv", "--out", tmp_path / "run", "--steps", 2, "--max-len", 3,
        *TINY)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    match = re.fullmatch(r"--max-len 3: cut (\d+) of 270 train texts to their first 3 tokens \(the longest has 9\)",
                         warnings[0])
    assert match and int(match[1]) > 100, warnings
    assert warnings[1].startswith("--max-len 3: cut ") and " of 30 valid texts" in warnings[1]


def test_held_out_validation_without_valid_data(data, tmp_path):
    result = cli("train", "classify", "--data", data / "train.tsv", "--out", tmp_path / "run", "--steps", 2, *TINY)
    assert "data: train 270, valid 30 texts" in result.stdout
    assert "\nvalid set:\n" in result.stdout  # no test set: the report is on validation


@pytest.mark.parametrize("make_bad, expected", [
    (lambda d: d.write_text("good film\tpos\nbad film\tmeh\n"), ["valid.tsv:2: unknown label 'meh'",
                                                                "expected one of 'neg', 'pos'"]),
    (lambda d: d.write_text("good film\tpos\n   \tneg\n"), ["valid.tsv:2: empty text"]),
    (lambda d: d.write_text("good film\tpos\n!!! ???\tneg\n\u00a0\u2003\tneg\n"), ["valid.tsv:3: empty text"]),
])
def test_bad_label_files(data, tmp_path, make_bad, expected):
    valid = tmp_path / "valid.tsv"
    make_bad(valid)
    result = cli("train", "classify", "--data", data / "train.tsv", "--valid-data", valid, "--out", tmp_path / "r",
                 "--steps", 1, *TINY, ok=False)
    one_line_error(result, *expected)


def test_declared_labels_reject_others(data, tmp_path):
    result = cli("train", "classify", "--data", data / "train.tsv", "--labels", "negative,positive", "--out",
                 tmp_path / "r", "--steps", 1, *TINY, ok=False)
    one_line_error(result, "train.tsv:1: unknown label", "expected one of 'negative', 'positive'")


@pytest.mark.parametrize("extra, expected", [
    (["--bptt", "5"], "truncated BPTT and stateful streams do not apply to a many-to-one classifier"),
    (["--fold", "2"], "--fold applies to RT polarity"),
    (["--fine-grained"], "--fine-grained and --phrases apply to SST"),
    (["--model", "conv", "--bidirectional"], "it takes no --bidirectional"),
    (["--model", "transformer"], "expected --model in rnn, jordan, lstm"),
    (["--pooling", "first"], "expected pooling in"),
    (["--max-words", "2"], "max_words to be an int >= 3"),
    (["--kernel-size", "3"], "--kernel-size applies to --model tcn and conv, not 'lstm'"),
])
def test_bad_options_are_one_line_errors(data, tmp_path, extra, expected):
    result = cli("train", "classify", "--data", data / "train.tsv", "--out", tmp_path / "r", "--steps", 1, *TINY,
                 *extra, ok=False)
    one_line_error(result, expected)


def test_data_is_required_and_must_be_a_known_format(tmp_path):
    one_line_error(cli("train", "classify", "--steps", 1, ok=False), "--data is required")
    one_line_error(cli("train", "classify", "--data", tmp_path, "--steps", 1, ok=False),
                   "expected an SST directory (train.txt, dev.txt, test.txt)")


# ----- the shared sentiment sets ------------------------------------------------------------------------

def test_sst5_few_steps(tmp_path):
    sst = need(SENTIMENT / "sst")
    result = cli("train", "classify", "--data", sst, "--fine-grained", "--out", tmp_path / "r",
                 "--steps", 3, "--max-len", 20, "--max-words", 2000, "--hidden", "8", "--embedding", "8",
                 "--batch-size", "16", "--device", "cpu", "--quiet")
    assert "data: train 8,544, valid 1,101, test 2,210 texts" in result.stdout
    assert "top-3 accuracy" in result.stdout and "very positive" in result.stdout



def test_rt_fold(tmp_path):
    rt = need(SENTIMENT / "rt_polarity")
    result = cli("train", "classify", "--data", rt, "--fold", 3, "--out", tmp_path / "r", "--steps", 2,
                 "--max-len", 30, "--model", "conv", "--hidden", "8", "--embedding", "8", "--batch-size", "16",
                 "--device", "cpu", "--quiet")
    assert "data: train 8,636, valid 960, test 1,066 texts" in result.stdout
    one_line_error(cli("train", "classify", "--data", rt, "--fold", 10, "--out", tmp_path / "r2", "--steps", 1,
                       ok=False), "expected --fold in [0, 10), got 10")


def test_validation_averages_per_example_and_batches_are_cut_to_their_longest():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(num_classes=3, vocab_size=20, embedding=4, hidden=6)).eval()
    lengths = torch.tensor([9, 1, 2, 1, 1, 3, 1])  # long and short texts in different batches
    x = torch.randint(1, 20, (7, 12)) * (torch.arange(12)[None, :] < lengths[:, None])
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    source = classify.ExampleBatches(x, y, 3, lengths=lengths, shuffle=False)
    assert [b.x.shape[1] for b in source.batches()] == [9, 3, 1]
    result = evaluate(model, source, classify.classifier_loss, metrics_fn=classify.classifier_metrics)
    report = classify.report_split(model, x, y, lengths, ["a", "b", "c"], split="valid", out=None)
    assert result["accuracy"] == pytest.approx(report["accuracy"])
    with torch.no_grad():
        logits, _ = model(x, lengths=lengths)
    assert result["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)
