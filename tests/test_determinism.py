"""Same seed, same run: for every `rnnkit train` task, two short CPU runs with the same --seed write the
same metrics.jsonl (wall-clock fields aside) and byte-identical weights; another --seed changes the metrics.

The runs are tiny (2-3 optimizer steps, a validation in the middle and at the end, a few units) and use
dropout where the task has it, so the seeded random streams (initialisation, shuffling, dropout masks,
generated data) are all exercised. Data files are written here, or are small slices of ../shared/data.
"""
from __future__ import annotations

import io
import json
import random
import re
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

BABI = Path(__file__).resolve().parents[2] / "shared" / "data" / "babi" / "tasks_1-20_v1-2"
WALL_CLOCK = re.compile(r"per_s|seconds|time|elapsed")  # tokens_per_s ...: differ from run to run
COMMON = ["--steps", "3", "--eval-every", "2", "--device", "cpu", "--quiet"]
WORDS = "the a cat dog sat ran on under mat log big small red".split()


def sentences(rng, n, lo=3, hi=8):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def write_data(task: str, directory: Path) -> list[str]:
    """The task's data options, with its files written into directory."""
    rng = random.Random(0)
    if task in ("charlm", "wordlm"):
        path = directory / "text.txt"
        path.write_text("\n".join(sentences(rng, 60)) + "\n", encoding="utf-8")
        return ["--data", str(path)]
    if task == "classify":
        path = directory / "train.tsv"
        lines = [f"{s} {'good' if k % 2 else 'bad'}\t{k % 2}" for k, s in enumerate(sentences(rng, 40))]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ["--data", str(path)]
    if task == "forecast":
        path = directory / "series.csv"
        rows = [f"2021-01-{1 + h // 24:02d} {h % 24:02d}:00,{10 + 5 * ((h % 24) / 24) + rng.gauss(0, 1):.3f},"
                f"{rng.random():.3f}" for h in range(80)]
        path.write_text("date,temp,rain\n" + "\n".join(rows) + "\n", encoding="utf-8")
        return ["--data", str(path), "--target", "temp", "--time", "date", "--lookback", "6", "--delay", "1",
                "--season", "2"]
    if task == "seq2seq":
        path = directory / "pairs.tsv"
        lines = [f"{s}\t{' '.join(reversed(s.split()))}" for s in sentences(rng, 40, 2, 5)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ["--data", str(path)]
    if task == "babi":
        if not (BABI / "en").is_dir():
            pytest.skip(f"{BABI} not found")
        return ["--data", str(BABI), "--task", "1", "--train-size", "40"]
    if task == "han":  # review_polarity.tar.gz's layout: txt_sentoken/{pos,neg}/cvNNN_*.txt, fold = NNN // 100
        path = directory / "review_polarity.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for k in range(24):
                label = k % 2
                data = "\n".join(sentences(rng, rng.randint(2, 4)) + ["good ." if label else "bad ."]).encode()
                info = tarfile.TarInfo(f"txt_sentoken/{'pos' if label else 'neg'}/cv{k * 40:03d}_{k}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return ["--data", str(path)]
    if task == "music":  # a B-L piano-roll .mat: 1 x N cells of T x 88 uint8 rolls
        import numpy as np
        import scipy.io

        noise = np.random.default_rng(0)
        cells = {}
        for key, count in (("traindata", 8), ("validdata", 3), ("testdata", 3)):
            cell = np.empty((1, count), dtype=object)
            for n in range(count):
                cell[0, n] = (noise.random((6 + n, 88)) < 0.05).astype(np.uint8)
            cells[key] = cell
        path = directory / "rolls.mat"
        scipy.io.savemat(path, cells)
        return ["--data", str(path)]
    return []  # generated from the seeds


TASKS = {  # tiny sizes; dropout where there is some
    "charlm": ["--hidden", "8", "--layers", "1", "--seq-len", "8", "--batch-size", "2", "--dropout", "0.1"],
    "wordlm": ["--hidden", "8", "--embedding", "8", "--layers", "1", "--seq-len", "5", "--batch-size", "2",
               "--dropout", "0.1"],
    "classify": ["--hidden", "8", "--embedding", "8", "--batch-size", "4", "--max-len", "10", "--dropout", "0.1"],
    "seqmnist": ["--hidden", "8", "--batch-size", "8", "--dropout", "0.1"],
    "adding": ["--length", "6", "--hidden", "4", "--batch-size", "4", "--valid-size", "8", "--test-size", "8",
               "--batches-per-epoch", "2"],
    "copy": ["--length", "4", "--hidden", "4", "--layers", "2", "--batch-size", "4", "--valid-size", "8",
             "--test-size", "8", "--batches-per-epoch", "2", "--dropout", "0.1"],
    "pattern": ["--length", "6", "--hidden", "4", "--batch-size", "4", "--valid-size", "8", "--test-size", "8",
                "--batches-per-epoch", "2"],
    "forecast": ["--hidden", "4", "--batch-size", "4", "--input-dropout", "0.1"],
    "seq2seq": ["--hidden", "8", "--embedding", "4", "--batch-size", "4", "--max-len", "6", "--dropout", "0.1"],
    "dates": ["--hidden", "8", "--embedding", "4", "--batch-size", "8", "--train-size", "40", "--valid-size", "8",
              "--test-size", "8", "--dropout", "0.1"],
    "babi": ["--hidden", "8", "--batch-size", "4", "--dropout", "0.1"],
    "ntm": ["--memory-size", "8", "--memory-width", "4", "--hidden", "10", "--width", "3", "--max-length", "2",
            "--batch-size", "4", "--valid-size", "8", "--test-size", "8", "--batches-per-epoch", "2"],
    "act": ["--size", "4", "--hidden", "8", "--max-steps", "5", "--batch-size", "4", "--valid-size", "8",
            "--test-size", "8", "--batches-per-epoch", "2"],
    "captions": ["--image-size", "16", "--channels", "4,4", "--pools", "1", "--hidden", "8", "--embedding", "4",
                 "--train-size", "16", "--valid-size", "4", "--test-size", "4", "--batch-size", "4",
                 "--dropout", "0.1"],
    "vqa": ["--image-size", "16", "--channels", "4,4", "--pools", "2", "--hidden", "8", "--passes", "2",
            "--train-size", "16", "--valid-size", "4", "--test-size", "4", "--batch-size", "4", "--dropout", "0.1"],
    "mdlstm": ["--hidden", "4", "--batch-size", "8", "--dropout", "0.1"],  # scikit-learn's bundled 8x8 digits
    "han": ["--embedding", "8", "--hidden", "4", "--attention", "4", "--batch-size", "4", "--html-docs", "2",
            "--dropout", "0.1"],
    "music": ["--hidden", "8", "--batch-size", "4", "--dropout", "0.1"],
}


def train(task: str, data: list[str], out: Path, seed: int) -> tuple[list[dict], bytes]:
    args = ["train", task, *data, *TASKS[task], *COMMON, "--seed", str(seed), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    records = [{k: v for k, v in r.items() if not WALL_CLOCK.search(k)} for r in records]
    return records, (out / "model.safetensors").read_bytes()


@pytest.fixture(autouse=True)
def no_rendering(monkeypatch):
    """Plots are not part of the claim, and rendering them is most of these runs' time: figures are
    built as usual, and saved as nothing."""
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *args, **kwargs: None)


@pytest.mark.parametrize("task", list(TASKS))
def test_same_seed_same_metrics_and_weights_other_seed_differs(task, tmp_path):
    data = write_data(task, tmp_path)
    first, weights = train(task, data, tmp_path / "a", seed=1)
    again, weights_again = train(task, data, tmp_path / "b", seed=1)
    assert [r["step"] for r in first if r.get("split", "train") == "train"] == [1, 2, 3]
    assert any(r.get("split") == "valid" for r in first)
    assert again == first
    assert weights_again == weights
    other, other_weights = train(task, data, tmp_path / "c", seed=2)
    assert other != first and other_weights != weights
