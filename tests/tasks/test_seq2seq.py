"""`rnnkit train seq2seq`, `rnnkit train dates` and `rnnkit translate`: the run directory, translation from an
argument and from stdin, the attention heatmap, and the bad-input behaviour (empty lines, unknown tokens, long
sources, malformed files) -- tiny models, a few steps each."""
import json
import random
from pathlib import Path

import pytest

from rnnkit.tasks import seq2seq

from clikit import cli, one_line_error

TRANSLATION = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "translation"
TINY = ["--hidden", "16", "--embedding", "8", "--batch-size", "16", "--device", "cpu", "--quiet", "--lr", "0.01"]
RUN_FILES = ["config.json", "src_vocab.json", "tgt_vocab.json", "model.safetensors", "model.best.safetensors",
             "trainer.pt", "metrics.jsonl", "loss.png", "metrics_test.json", "test_translations.tsv"]




def reversal_pairs(n: int, seed: int) -> str:
    """source<TAB>target lines: words w0..w7, the target the same words reversed and renamed v0..v7."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rng.randrange(8) for _ in range(rng.randint(1, 7))]
        lines.append(" ".join(f"w{w}" for w in words) + "\t" + " ".join(f"v{w}" for w in reversed(words)) + "\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seq2seq")
    data = tmp / "pairs.tsv"
    data.write_text(reversal_pairs(300, 0), encoding="utf-8")
    out = tmp / "run"
    result = cli("train", "seq2seq", "--data", data, "--out", out, "--steps", "12", "--eval-every", "6",
                 "--max-len", "6", "--beam", "2", "--attention", "luong-general", *TINY)
    return out, data, result


def test_training_writes_the_run_directory_and_reports(run):
    out, _, result = run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    text = result.stdout
    assert "--max-len 6: dropped" in text and "train" in text  # sentences of 7 words are dropped and counted
    assert "validation after 12 steps: loss" in text
    assert "test (beam 2," in text and "BLEU" in text and "chrF" in text and "exact match" in text
    assert "BLEU by source length (tokens): 1-5:" in text
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "seq2seq" and config["model"]["attention"] == "luong-general"
    assert config["max_source_len"] == 6 and config["processing"] == {"tokenizer": "13a", "lower": True}
    tested = json.loads((out / "metrics_test.json").read_text())
    assert tested["decoding"] == "beam 2" and 0 <= tested["bleu"] <= 100
    rows = (out / "test_translations.tsv").read_text().splitlines()
    assert rows[0] == "source\treference\ttranslation" and len(rows) == tested["pairs"] + 1


def test_translate_an_argument_and_stdin_with_an_empty_line(run):
    out = run[0]
    one = cli("translate", out, "w1 w2 w3", "--beam", "3")
    assert len(one.stdout.splitlines()) == 1 and one.stderr == ""
    many = cli("translate", out, "-", "--beam", "1", input="w1 w2 w3\n\nw4\n")
    lines = many.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # three translations, the empty one in its place
    assert lines[0] == cli("translate", out, "w1 w2 w3", "--beam", "1").stdout.strip()
    empty = cli("translate", out, "")
    assert empty.stdout == "\n"


def test_unknown_tokens_are_read_as_unk_with_a_warning(run):
    result = cli("translate", run[0], "w1 zebra w2 okapi")
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr.strip() == ("rnnkit: warning: 2 source token(s) not in the training vocabulary, read as "
                                     "<unk>: 'okapi', 'zebra'")


def test_a_long_source_works_and_warns_once(run):
    long_line = " ".join(["w1"] * 20)
    result = cli("translate", run[0], "-", input=f"{long_line}\nw2\n{long_line} w3\n")
    assert len(result.stdout.splitlines()) == 3
    warnings = result.stderr.strip().splitlines()
    assert warnings == ["rnnkit: warning: 2 sentence(s) longer than the longest training source (6 tokens); "
                        "translated anyway"]


def test_attention_heatmap(run, tmp_path):
    png = tmp_path / "attention.png"
    result = cli("translate", run[0], "w1 w2 w3", "--plot-attention", png)
    assert png.read_bytes()[:4] == b"\x89PNG" and f"attention: {png}" in result.stderr
    weights = seq2seq.attention_weights(*seq2seq.load(run[0])[:3], ["w1", "w2"], ["v2", "v1"])
    assert weights.shape == (3, 3)  # (target + <eos>) x (source + <eos>)
    two = cli("translate", run[0], "-", "--plot-attention", png, input="w1\nw2\n", ok=False)
    one_line_error(two, "--plot-attention draws the attention of one non-empty sentence, got 2 non-empty of 2")


def test_resume_continues_the_run(run, tmp_path):
    out, data, _ = run
    copy = tmp_path / "again"
    cli("train", "seq2seq", "--data", data, "--out", copy, "--steps", "4", "--eval-every", "4", "--max-len", "6", *TINY)
    result = cli("train", "seq2seq", "--data", data, "--out", copy, "--steps", "6", "--eval-every", "4",
                 "--max-len", "6", "--resume", *TINY)
    assert "validation after 6 steps" in result.stdout
    changed = cli("train", "seq2seq", "--data", data, "--out", copy, "--steps", "8", "--max-len", "5", "--resume",
                  *TINY, ok=False)
    one_line_error(changed, "config.json does not match this run")


def test_no_attention_has_nothing_to_plot(tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text(reversal_pairs(40, 1), encoding="utf-8")
    out = tmp_path / "run"
    cli("train", "seq2seq", "--data", data, "--out", out, "--steps", "2", "--eval-every", "2", "--attention", "none",
        "--reverse-source", "--unidirectional", "--bridge", "copy", *TINY)
    assert cli("translate", out, "w1 w2").stdout.count("\n") == 1
    result = cli("translate", out, "w1 w2", "--plot-attention", tmp_path / "a.png", ok=False)
    one_line_error(result, "has no attention (--attention none)")


@pytest.mark.parametrize("text, message", [
    ("w1\tv1\nw2 v2\nw3\tv3\n", "pairs.tsv, line 2: expected 2 tab-separated columns like line 1, got 1"),
    ("w1\tv1\n\tv2\n", "pairs.tsv, line 2: empty source (column 1)"),
])
def test_a_malformed_pairs_file_names_the_line(tmp_path, text, message):
    data = tmp_path / "pairs.tsv"
    data.write_text(text, encoding="utf-8")
    one_line_error(cli("train", "seq2seq", "--data", data, "--out", tmp_path / "r", *TINY, ok=False), message)


@pytest.mark.parametrize("args, message", [
    (["--attention", "bahdanau", "--window", "3"], "--window applies to local-m and local-p"),
    (["--attention", "luong-dot", "--attention-size", "8"], "--attention-size applies to"),
    (["--sampling-k", "50"], "--sampling-k sets the --scheduled-sampling schedule"),
    (["--attention", "bahdanau", "--no-input-feeding"], "input feeding is Luong's"),
    (["--attention", "global"], "expected attention in"),
    (["--split", "0.8;0.2"], "--split: expected three comma-separated fractions"),
    (["--tokenizer", "bpe"], "expected tokenizer in"),
    (["--bptt", "5"], "--bptt does not apply"),
    (["--langs", "en-de"], "--langs applies to a Multi30k directory"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    data = tmp_path / "pairs.tsv"
    data.write_text(reversal_pairs(30, 2), encoding="utf-8")
    one_line_error(cli("train", "seq2seq", "--data", data, "--out", tmp_path / "r", "--steps", "1", *TINY, *args,
                       ok=False), message)


def test_translate_needs_a_seq2seq_run(tmp_path):
    one_line_error(cli("translate", tmp_path / "missing", "hello", ok=False), "does not exist")


def test_dates_end_to_end(tmp_path):
    out = tmp_path / "dates"
    result = cli("train", "dates", "--out", out, "--steps", "3", "--eval-every", "3", "--train-size", "200",
                 "--valid-size", "20", "--test-size", "20", "--hidden", "16", "--embedding", "8", "--device", "cpu",
                 "--quiet")
    assert "data: train 200, valid 20, test 20 pairs" in result.stdout and "exact match" in result.stdout
    assert json.loads((out / "config.json").read_text())["processing"] == {"tokenizer": "char", "lower": False}
    translated = cli("translate", out, "-", "--beam", "2", input="March 5, 2021\n\n")
    assert len(translated.stdout.split("\n")) == 3 and translated.stdout.split("\n")[1] == ""
    one_line_error(cli("train", "dates", "--data", tmp_path, "--out", tmp_path / "x", ok=False),
                   "--data is not used")


def test_bleu_buckets():
    assert [seq2seq.bucket_name(n) for n in (1, 5, 6, 15, 16, 30, 31)] == [
        "1-5", "1-5", "6-10", "11-15", "16-20", "21-30", "31+"]


def test_multi30k_directory_splits():
    directory = TRANSLATION / "multi30k"
    if not directory.exists():
        pytest.skip(f"shared data not found: {directory.resolve()}")
    task = seq2seq.TranslationTask(data=str(directory), langs="en-fr", max_len=15)
    splits = seq2seq.read_splits(task)
    tokens, dropped = seq2seq.filter_splits(splits, task.processing, task.max_len, keep_test=True)
    assert len(tokens["test"]) == 1_000 and dropped["test"] == 0  # the standard test set stays whole
    assert len(tokens["train"]) + dropped["train"] == 29_000 and dropped["train"] > 0
    with pytest.raises(ValueError, match="needs --langs"):
        seq2seq.read_splits(seq2seq.TranslationTask(data=str(directory)))
