"""`rnnkit demo`: the stdlib corpus, and a few seconds of training end to end."""
import re

from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.tasks import demo


def test_stdlib_corpus_is_repeatable_and_capped():
    a, b = demo.stdlib_corpus(5_000), demo.stdlib_corpus(5_000)
    assert a == b
    assert 0 < len(a) <= 5_000
    assert "def " in a and "import " in a  # Python source
    big = demo.stdlib_corpus(60_000)
    assert len(big) == 60_000 and big.startswith(a)  # more of the same text, in the same order


def test_prepare_corpus_prefers_the_users_file(tmp_path):
    assert demo.prepare_corpus(tmp_path / "run", "mine.txt") == "mine.txt"
    assert not (tmp_path / "run").exists()


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--minutes", "0.05", "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    corpus = out / "corpus.txt"
    assert corpus.is_file() and corpus.read_text(encoding="utf-8") == demo.stdlib_corpus()
    for name in ("config.json", "vocab.json", "model.safetensors", "model.best.safetensors", "trainer.pt",
                 "metrics.jsonl", "loss.png"):
        assert (out / name).is_file(), name
    assert re.search(r"^validation after \d+ steps: loss [\d.]+ nats, [\d.]+ bits per char, perplexity [\d.]+$",
                     result.stdout, re.MULTILINE), result.stdout
    sample = result.stdout.split("sample (temperature 0.8):\n\n", 1)[1]
    assert sample.startswith("def ")
    assert len(sample.split("\n\nmore: rnnkit generate")[0]) == len("def ") + 600
