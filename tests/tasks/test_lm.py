"""Language-model task and its CLI: train charlm / wordlm, generate, evaluate, resume, and one-line
errors for bad input. Tiny models on small slices of the shared corpora, a few steps each."""
import gzip
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from rnnkit.data import StreamBatches
from rnnkit.data.text import read_text, split_contiguous
from rnnkit.tasks import lm
from rnnkit.train import evaluate

from clikit import cli, one_line_error

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"
PTB = SHARED / "ptb"
RUN_FILES = ["config.json", "vocab.json", "model.safetensors", "model.best.safetensors", "trainer.pt",
             "metrics.jsonl", "loss.png"]
REPORT = re.compile(r"^validation(?: after (\d+) steps)?: loss ([\d.]+) nats, ([\d.]+) bits per (char|word), "
                    r"perplexity ([\d.]+)$", re.MULTILINE)
TINY = ["--hidden", "32", "--layers", "1", "--seq-len", "32", "--batch-size", "8", "--device", "cpu", "--quiet"]

def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()}")
    return path


def report_of(stdout):
    match = REPORT.search(stdout)
    assert match, stdout
    steps, loss, bits, unit, ppl = match.groups()
    return {"step": steps and int(steps), "loss": float(loss), "bits": float(bits), "unit": unit, "ppl": float(ppl)}


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory):
    """The first 20,000 characters of tiny shakespeare."""
    text = need(SHAKESPEARE).read_text(encoding="utf-8")[:20_000]
    path = tmp_path_factory.mktemp("data") / "shakespeare.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def char_run(shakespeare, tmp_path_factory):
    run = tmp_path_factory.mktemp("charlm") / "run"
    result = cli("train", "charlm", "--data", shakespeare, "--out", run, "--steps", 8, "--eval-every", 4,
                 "--embedding", 0, *TINY)
    return run, result


@pytest.fixture(scope="module")
def ptb(tmp_path_factory):
    """300 training and 60 validation lines of PTB."""
    root = tmp_path_factory.mktemp("ptb")
    train, valid = root / "train.txt", root / "valid.txt"
    train.write_text("".join(need(PTB / "ptb.train.txt").read_text().splitlines(True)[:300]))
    valid.write_text("".join(need(PTB / "ptb.valid.txt").read_text().splitlines(True)[:60]))
    return train, valid


@pytest.fixture(scope="module")
def word_run(ptb, tmp_path_factory):
    train, valid = ptb
    run = tmp_path_factory.mktemp("wordlm") / "run"
    result = cli("train", "wordlm", "--data", train, "--valid-data", valid, "--out", run, "--steps", 4,
                 "--max-words", 200, "--embedding", 16, "--hidden", 32, "--layers", 1, "--seq-len", 20,
                 "--batch-size", 4, "--device", "cpu", "--quiet")
    return run, result


# ----- charlm -------------------------------------------------------------------------------------

def test_train_charlm_writes_the_run_directory(char_run, shakespeare):
    run, _ = char_run
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "charlm" and config["model"]["hidden"] == 32 and config["model"]["embedding"] == 0
    vocab = json.loads((run / "vocab.json").read_text())
    assert vocab["level"] == "char" and vocab["tokens"] == sorted(set(shakespeare.read_text()))
    records = metrics(run)
    assert [r["step"] for r in records if "split" not in r] == list(range(1, 9))
    assert [r["step"] for r in records if r.get("split") == "valid"] == [4, 8]
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_hot_run_has_no_embedding(char_run):
    run, _ = char_run
    weights = safetensors.torch.load_file(run / "model.safetensors")
    assert not any(k.startswith("embed") for k in weights)
    vocab_size = len(json.loads((run / "vocab.json").read_text())["tokens"])
    assert weights["head.weight"].shape == (vocab_size, 32)


def test_train_report_loss_bits_perplexity(char_run):
    run, result = char_run
    r = report_of(result.stdout)
    assert r["step"] == 8 and r["unit"] == "char"
    assert abs(r["bits"] - r["loss"] / math.log(2)) < 2e-4
    assert math.isclose(r["ppl"], math.exp(r["loss"]), rel_tol=1e-3)
    last_valid = [x for x in metrics(run) if x.get("split") == "valid"][-1]
    assert abs(r["loss"] - last_valid["loss"]) < 1e-4
    assert 2.0 < r["loss"] < 4.5  # near ln(V) after 8 steps: a sanity range, not a quality claim


def test_report_function():
    assert lm.report(2.0, "char") == {"loss": 2.0, "bits_per_char": 2.0 / math.log(2), "perplexity": math.exp(2.0)}
    assert set(lm.report(1.0, "word")) == {"loss", "bits_per_word", "perplexity"}
    assert math.isfinite(lm.report(1e6, "char")["perplexity"])  # no overflow


def test_generate_prime_plus_exact_length_repeatable(char_run):
    run, _ = char_run
    vocab = set(json.loads((run / "vocab.json").read_text())["tokens"])
    args = ["generate", run, "--prime", "ROMEO:", "--length", 50, "--seed", 1]
    first = cli(*args).stdout
    assert first.startswith("ROMEO:") and first.endswith("\n")
    generated = first[len("ROMEO:"):-1]
    assert len(generated) == 50 and set(generated) <= vocab
    assert cli(*args).stdout == first
    assert cli(*args[:-1], 2).stdout != first


def test_generate_greedy_and_top_k_top_p(char_run):
    run, _ = char_run
    greedy = cli("generate", run, "--prime", "First", "--length", 20, "--temperature", 0).stdout
    assert greedy == cli("generate", run, "--prime", "First", "--length", 20, "--temperature", 0).stdout
    assert len(greedy) == len("First") + 20 + 1
    out = cli("generate", run, "--prime", "First", "--length", 20, "--top-k", 3, "--top-p", 0.9, "--seed", 0).stdout
    assert len(out) == len("First") + 20 + 1


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_generate_with_low_precision_weights(char_run, precision):
    run, _ = char_run
    if precision == "int8" and "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("torch's fbgemm quantized engine is not in this build")
    vocab = set(json.loads((run / "vocab.json").read_text())["tokens"])
    args = ["generate", run, "--prime", "First", "--length", 30, "--seed", 4, "--precision", precision]
    out = cli(*args).stdout
    assert out.startswith("First") and len(out) == len("First") + 30 + 1 and set(out[5:-1]) <= vocab
    assert cli(*args).stdout == out
    one_line_error(cli("generate", run, "--length", 5, "--precision", "int4", ok=False),
                   "expected precision 'fp32', 'bf16' or 'int8', got 'int4'")


def test_generate_without_prime_starts_after_a_line_break(char_run):
    run, _ = char_run
    out = cli("generate", run, "--length", 25, "--seed", 0).stdout
    assert len(out) == 25 + 1


def hand_loss(run, text, streams_cap=8, seq_len=32):
    model, vocab, _ = lm.load(run)
    ids = vocab.encode(list(text))
    source = StreamBatches(ids, max(1, min(streams_cap, (len(ids) - 1) // seq_len)), seq_len)
    return evaluate(model, source, lm.lm_loss, stateful=True)["loss"]


def test_evaluate_validation_split_and_file_agree_with_hand_computation(char_run, shakespeare, tmp_path):
    run, _ = char_run
    _, valid = split_contiguous(read_text(shakespeare), (0.9, 0.1))
    expected = hand_loss(run, valid)
    r = report_of(cli("evaluate", run).stdout)
    assert r["step"] is None and abs(r["loss"] - expected) < 1e-4
    assert abs(r["bits"] - r["loss"] / math.log(2)) < 2e-4
    valid_file = tmp_path / "valid.txt"
    valid_file.write_text(valid, encoding="utf-8")
    assert abs(report_of(cli("evaluate", run, "--data", valid_file).stdout)["loss"] - expected) < 1e-4
    other = read_text(shakespeare)[:3000]
    other_file = tmp_path / "other.txt"
    other_file.write_text(other, encoding="utf-8")
    r = report_of(cli("evaluate", run, "--data", other_file, "--batch-size", 4).stdout)
    assert abs(r["loss"] - hand_loss(run, other, streams_cap=4, seq_len=32)) < 1e-4  # the run's T


def test_evaluate_with_the_training_batch_size_reproduces_the_best_validation_loss(char_run):
    run, _ = char_run
    best = min(x["loss"] for x in metrics(run) if x.get("split") == "valid")
    assert abs(report_of(cli("evaluate", run).stdout)["loss"] - best) < 1e-4  # default: the training batch


def test_resume_continues_without_duplicate_steps_and_equals_one_run(shakespeare, tmp_path):
    common = ["--data", shakespeare, "--eval-every", 2, *TINY]
    cli("train", "charlm", "--out", tmp_path / "a", "--steps", 3, *common)
    result = cli("train", "charlm", "--out", tmp_path / "a", "--steps", 6, "--resume", *common)
    assert report_of(result.stdout)["step"] == 6
    records = metrics(tmp_path / "a")
    train_steps = [r["step"] for r in records if "split" not in r]
    assert train_steps == list(range(1, 7))
    assert [r["step"] for r in records if r.get("split") == "valid"] == [2, 3, 4, 6]
    cli("train", "charlm", "--out", tmp_path / "b", "--steps", 6, *common)
    a = safetensors.torch.load_file(tmp_path / "a" / "model.safetensors")
    b = safetensors.torch.load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_file_with_unknown_characters_lists_them(char_run, tmp_path):
    run, _ = char_run
    data = tmp_path / "other.txt"
    data.write_text("Hello \u00e9t\u00e9 world\n" * 20, encoding="utf-8")
    one_line_error(cli("evaluate", run, "--data", data, ok=False), "'\u00e9'")


def test_charlm_from_gzip_with_an_embedding(shakespeare, tmp_path):
    data = tmp_path / "s.txt.gz"
    data.write_bytes(gzip.compress(shakespeare.read_bytes()[:5000]))
    run = tmp_path / "run"
    result = cli("train", "charlm", "--data", data, "--out", run, "--steps", 2, "--embedding", 8, "--cell", "gru",
                 *TINY)
    assert report_of(result.stdout)["step"] == 2
    weights = safetensors.torch.load_file(run / "model.safetensors")
    assert weights["embed.weight"].shape[1] == 8


def test_evaluate_run_from_another_directory(shakespeare, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(shakespeare, tmp_path / "a" / "s.txt")
    monkeypatch.chdir(tmp_path / "a")
    cli("train", "charlm", "--data", "s.txt", "--out", tmp_path / "run", "--steps", 1, *TINY)
    monkeypatch.chdir(tmp_path / "b")
    cli("evaluate", tmp_path / "run")


def test_charlm_on_spaced_char_ptb_trains_and_evaluates(tmp_path):
    """Mikolov's char PTB ('c o n s u m e r s _ m a y \\n '): --spaced drops the separating spaces, the
    vocabulary is PTB's 50 symbols (with '_' and the line break), and evaluate --data reads the same way."""
    text = need(PTB / "ptb.char.valid.txt").read_text()
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text(text[:40_000])  # cut at even offsets: a symbol, then its space
    valid.write_text(text[40_000:46_000])
    run = tmp_path / "run"
    cli("train", "charlm", "--data", train, "--valid-data", valid, "--spaced", "--out", run, "--steps", 2, *TINY)
    tokens = json.loads((run / "vocab.json").read_text())["tokens"]
    assert " " not in tokens and "_" in tokens and "\n" in tokens and len(tokens) <= 50
    assert json.loads((run / "config.json").read_text())["data"]["spaced"] is True
    assert report_of(cli("evaluate", run, "--data", valid).stdout) == report_of(cli("evaluate", run).stdout)
    unspaced = tmp_path / "unspaced.txt"
    unspaced.write_text("consumers_may\n")
    one_line_error(cli("evaluate", run, "--data", unspaced, ok=False), "expected a space after every character")


# ----- wordlm -------------------------------------------------------------------------------------

def test_train_wordlm_on_ptb(word_run, ptb):
    run, result = word_run
    r = report_of(result.stdout)
    assert r["step"] == 4 and r["unit"] == "word"
    assert abs(r["bits"] - r["loss"] / math.log(2)) < 2e-4
    vocab = json.loads((run / "vocab.json").read_text())
    assert vocab["level"] == "word" and len(vocab["tokens"]) == 200
    assert set(vocab["tokens"][:2]) == {"<unk>", "<eos>"} and vocab["unk"] == "<unk>"
    assert "the" in vocab["tokens"]
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "wordlm" and config["model"]["embedding"] == 16 and config["data"]["max_words"] == 200
    assert safetensors.torch.load_file(run / "model.safetensors")["embed.weight"].shape == (200, 16)


def test_evaluate_word_run(word_run, ptb):
    run, result = word_run
    r = report_of(cli("evaluate", run, "--batch-size", 4).stdout)
    assert r["unit"] == "word" and abs(r["loss"] - report_of(result.stdout)["loss"]) < 1e-4
    _, valid = ptb
    r = report_of(cli("evaluate", run, "--data", valid).stdout)
    assert r["unit"] == "word" and math.isclose(r["ppl"], math.exp(r["loss"]), rel_tol=1e-3)


def test_generate_words(word_run):
    run, _ = word_run
    out = cli("generate", run, "--length", 10, "--seed", 0).stdout  # no prime: starts as after <eos>
    assert out.endswith("\n") and 1 <= len(re.findall(r" [^ \n]+|\n", out[:-1])) <= 10
    vocab = set(json.loads((run / "vocab.json").read_text())["tokens"])
    for seed in range(3):
        out = cli("generate", run, "--prime", "the company", "--length", 30, "--seed", seed).stdout
        assert out.startswith("the company") and out.endswith("\n")
        generated = out[len("the company"):-1]
        pieces = re.findall(r" [^ \n]+|\n", generated)
        assert "".join(pieces) == generated  # " word" pieces, and line breaks for <eos>
        assert 1 <= len(pieces) <= 30
        assert "\n" not in generated[:-1]  # generation stops at the first <eos>
        assert len(pieces) == 30 or generated.endswith("\n")
        assert {p.strip() for p in pieces if p != "\n"} <= vocab - {"<eos>"}


def test_evaluate_and_generate_an_ensemble_of_runs(char_run, shakespeare, tmp_path):
    """Two char runs (another seed, another width) evaluated together: the loss of their averaged next-char
    distributions, computed here by hand; and sampling from the ensemble."""
    run, _ = char_run
    other = tmp_path / "other"
    cli("train", "charlm", "--data", shakespeare, "--out", other, "--steps", 8, "--eval-every", 4, "--seed", 1,
        "--embedding", 8, *TINY)
    _, valid = split_contiguous(read_text(shakespeare), (0.9, 0.1))
    models = [lm.load(r)[0] for r in (run, other)]
    vocab = lm.load(run)[1]
    ids = vocab.encode(list(valid))
    source = StreamBatches(ids, max(1, min(8, (len(ids) - 1) // 32)), 32)
    total = count = 0
    states = [None, None]
    with torch.no_grad():
        for batch in source.batches(0):
            outs = [m(batch.x, s) for m, s in zip(models, states)]
            states = [s for _, s in outs]
            p = torch.stack([z.softmax(-1) for z, _ in outs]).mean(0)
            total -= float(p.gather(-1, batch.y[..., None]).log().sum())
            count += batch.y.numel()
    r = report_of(cli("evaluate", run, other).stdout)
    assert abs(r["loss"] - total / count) < 1e-4
    singles = [report_of(cli("evaluate", d).stdout)["loss"] for d in (run, other)]
    assert r["loss"] <= sum(singles) / 2 + 1e-4
    out = cli("generate", run, other, "--prime", "ROMEO:", "--length", 40, "--seed", 3).stdout
    assert out.startswith("ROMEO:") and len(out) == len("ROMEO:") + 40 + 1
    assert out == cli("generate", run, other, "--prime", "ROMEO:", "--length", 40, "--seed", 3).stdout


def test_an_ensemble_needs_language_models_of_one_vocabulary(char_run, word_run, tmp_path):
    (char, _), (word, _) = char_run, word_run
    one_line_error(cli("evaluate", char, word, ok=False), "char-level model but", "word-level")
    text = tmp_path / "abc.txt"
    text.write_text("abcab cabca bcabc\n" * 400, encoding="utf-8")
    abc = tmp_path / "abc"
    cli("train", "charlm", "--data", text, "--out", abc, "--steps", 2, *TINY)
    one_line_error(cli("evaluate", char, abc, ok=False), "different vocabulary", "(5 tokens against", "not in both")
    one_line_error(cli("generate", char, tmp_path, ok=False), "ensemble of language models", "no readable config.json")


def test_pretrained_vectors_are_copied_into_the_embedding(ptb, tmp_path):
    train, valid = ptb
    vectors = {"the": [0.5 + i for i in range(8)], "of": [-1.0] * 8, "zzzunseen": [9.0] * 8}
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    run = tmp_path / "run"
    cli("train", "wordlm", "--data", train, "--valid-data", valid, "--out", run, "--steps", 1, "--lr", 1e-9,
        "--max-words", 100, "--embedding", 8, "--hidden", 16, "--layers", 1, "--seq-len", 10, "--batch-size", 2,
        "--pretrained", glove, "--device", "cpu", "--quiet")
    tokens = json.loads((run / "vocab.json").read_text())["tokens"]
    embed = safetensors.torch.load_file(run / "model.safetensors")["embed.weight"]
    for word in ("the", "of"):
        torch.testing.assert_close(embed[tokens.index(word)], torch.tensor(vectors[word]), atol=1e-5, rtol=0)
    others = [i for i, t in enumerate(tokens) if t not in vectors]
    assert embed[others].abs().max() < 1


def test_pretrained_of_another_size_is_a_one_line_error(ptb, tmp_path):
    train, _ = ptb
    glove = tmp_path / "glove.txt"
    glove.write_text("the 1 2 3\n")
    result = cli("train", "wordlm", "--data", train, "--out", tmp_path / "run", "--steps", 1, "--embedding", 8,
                 "--pretrained", glove, "--device", "cpu", "--quiet", ok=False)
    one_line_error(result, "line 1 has 3 numbers, expected 8")


def test_tied_word_model_trains_saves_and_loads(ptb, tmp_path):
    train, valid = ptb
    run = tmp_path / "run"
    cli("train", "wordlm", "--data", train, "--valid-data", valid, "--out", run, "--steps", 2, "--tie-weights",
        "--embedding", 16, "--hidden", 16, "--layers", 1, "--seq-len", 10, "--batch-size", 4, "--max-words", 150,
        "--device", "cpu", "--quiet")
    model, vocab, _ = lm.load(run)
    assert model.head.weight is model.embed.weight and len(vocab) == 150
    out = cli("generate", run, "--prime", "the", "--length", 5, "--seed", 0).stdout
    assert out.startswith("the")


# ----- bad input: one line, no traceback ----------------------------------------------------------

@pytest.mark.parametrize("content, args, expected", [
    (b"", [], "empty"),
    ("x" * 30, ["--batch-size", "32"], "too few for --batch-size 32"),
    (b"hello", [], "too little text"),
    (b"good text\nthen \xff bad\n", [], "byte offset 15 (line 2)"),
], ids=["empty", "short-for-batch", "too-little", "invalid-utf8"])
def test_train_bad_data(tmp_path, content, args, expected):
    data = tmp_path / "data.txt"
    data.write_bytes(content.encode() if isinstance(content, str) else content)
    result = cli("train", "charlm", "--data", data, "--out", tmp_path / "run", "--steps", 1, "--hidden", 8,
                 "--layers", 1, "--seq-len", 4, "--device", "cpu", "--quiet", *args, ok=False)
    line = one_line_error(result, expected)
    if "streams" not in expected:  # (the batching error speaks of streams, not of the file)
        assert "data.txt" in line


def test_train_missing_data_file(tmp_path):
    result = cli("train", "charlm", "--data", tmp_path / "nope.txt", "--out", tmp_path / "run", "--quiet", ok=False)
    one_line_error(result, "nope.txt")


def test_generate_prime_outside_vocabulary(char_run):
    run, _ = char_run
    result = cli("generate", run, "--prime", "ROMEO€~", "--length", 10, ok=False)
    line = one_line_error(result, "'€'")
    assert "'R'" not in line
    assert result.stdout == ""


def test_generate_negative_temperature(char_run):
    run, _ = char_run
    result = cli("generate", run, "--prime", "ROMEO", "--temperature", -1, ok=False)
    one_line_error(result, "temperature", "-1")
    assert result.stdout == ""


def test_generate_missing_run_directory(tmp_path):
    one_line_error(cli("generate", tmp_path / "nope", ok=False), "does not exist", "nope")


@pytest.mark.parametrize("command", [["generate"], ["evaluate"]])
def test_incomplete_run_directory(char_run, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(char_run[0], run)
    (run / "vocab.json").unlink()
    result = cli(*command, run, ok=False)
    one_line_error(result, "missing vocab.json")
    assert result.stdout == ""


def test_resume_without_out(shakespeare):
    result = cli("train", "charlm", "--data", shakespeare, "--resume", "--quiet", ok=False)
    one_line_error(result, "--resume needs --out")


def test_new_run_into_a_directory_holding_a_run(char_run, shakespeare, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(char_run[0], run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = cli("train", "charlm", "--data", shakespeare, "--out", run, "--steps", 2, *TINY, ok=False)
    one_line_error(result, "already holds a training run", "--resume")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched


def test_tie_weights_with_embedding_other_than_hidden(shakespeare, tmp_path):
    result = cli("train", "charlm", "--data", shakespeare, "--out", tmp_path / "run", "--steps", 1, "--tie-weights",
                 "--embedding", 8, "--hidden", 16, "--device", "cpu", "--quiet", ok=False)
    one_line_error(result, "tie_weights needs embedding == hidden", "8", "16")


def test_generate_several_samples_at_once(char_run):
    run, _ = char_run
    out = cli("generate", run, "--prime", "First", "--length", 20, "--samples", 3, "--temperature", 0).stdout
    single = cli("generate", run, "--prime", "First", "--length", 20, "--temperature", 0).stdout
    lines = out.split("\n")
    assert [line for line in lines if line.startswith("=== sample")] == [f"=== sample {k}/3 ===" for k in (1, 2, 3)]
    texts = out.split("=== sample")[1:]
    assert all(t.split("===\n", 1)[1] == single for t in texts)  # greedy: each is the single greedy sample
    one_line_error(cli("generate", run, "--length", 5, "--samples", 0, ok=False), "expected samples >= 1, got 0")


def test_evaluate_in_bf16_is_close_to_fp32(char_run):
    run, _ = char_run
    fp32 = lm.evaluate_run(run)
    bf16 = lm.evaluate_run(run, precision="bf16")
    assert bf16["loss"] != fp32["loss"] and abs(bf16["loss"] - fp32["loss"]) < 0.01 * fp32["loss"]
    out = cli("evaluate", run, "--precision", "bf16").stdout
    assert out.startswith("validation: loss ") and f"{bf16['loss']:.4f}" in out
    one_line_error(cli("evaluate", run, "--precision", "fp8", ok=False), "expected --precision fp32 or bf16, got 'fp8'")
    with pytest.raises(ValueError, match="precision 'fp32' or 'bf16'"):
        lm.evaluate_run(run, precision="half")
