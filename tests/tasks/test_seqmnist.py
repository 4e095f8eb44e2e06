"""`rnnkit train seqmnist`: row, pixel and permuted-pixel sequences, the offline 8x8 digits, MNIST's IDX files,
the saved permutation, evaluation of a run, and one-line errors for damaged IDX files."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.idx import write_idx
from rnnkit.tasks import seqmnist

from clikit import cli, one_line_error

MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
TINY = ["--hidden", "16", "--batch-size", "32", "--device", "cpu", "--quiet", "--lr", "0.01"]




@pytest.fixture(scope="module")
def row_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seqmnist") / "row"
    result = cli("train", "seqmnist", "--out", out, "--steps", 80, "--eval-every", 40, *TINY)
    return out, result


def test_digits_row_mode_learns(row_run):
    out, result = row_run
    assert ("data: scikit-learn's 8x8 digits, row mode: sequences of 8 steps x 8 features; train 1,437, valid 180, "
            "test 180") in result.stdout
    report = json.loads((out / "metrics_test.json").read_text())
    assert report["examples"] == 180 and report["accuracy"] >= 0.6, result.stdout  # chance is 0.1
    assert "top-3 accuracy" in result.stdout
    for name in ("config.json", "model.best.safetensors", "trainer.pt", "confusion_test.png", "metrics_valid.json"):
        assert (out / name).is_file(), name
    assert not (out / "permutation.json").exists()


def test_evaluate_run_reproduces_the_test_report(row_run):
    out, _ = row_run
    again = seqmnist.evaluate_run(out)
    saved = json.loads((out / "metrics_test.json").read_text())
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    assert again["confusion_matrix"] == saved["confusion_matrix"]


def test_sequences_of_each_mode():
    images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    rows = seqmnist.as_sequences(images, "row")
    pixels = seqmnist.as_sequences(images, "pixel")
    assert rows.shape == (2, 3, 4) and pixels.shape == (2, 12, 1)
    assert pixels[1, :, 0].tolist() == images[1].reshape(-1).tolist()  # row by row
    perm = seqmnist.make_permutation(12, seed=3)
    permuted = seqmnist.as_sequences(images, "permuted", perm)
    assert permuted[0, :, 0].tolist() == images[0].reshape(-1)[perm.numpy()].tolist()
    with pytest.raises(ValueError, match=r"needs a permutation of range\(12\)"):
        seqmnist.as_sequences(images, "permuted", torch.zeros(12, dtype=torch.long))


def test_the_permutation_is_fixed_by_its_seed():
    a, b = seqmnist.make_permutation(784, 0), seqmnist.make_permutation(784, 0)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(784))
    assert not torch.equal(a, seqmnist.make_permutation(784, 1))


def test_permuted_run_saves_and_reloads_its_permutation(tmp_path):
    out = tmp_path / "perm"
    result = cli("train", "seqmnist", "--mode", "permuted", "--permutation-seed", 5, "--out", out, "--steps", 3,
                 "--model", "gru", *TINY)
    assert "permuted mode: sequences of 64 steps x 1 features" in result.stdout
    saved = json.loads((out / "permutation.json").read_text())
    assert saved["seed"] == 5 and saved["permutation"] == seqmnist.make_permutation(64, 5).tolist()
    _, config, permutation = seqmnist.load(out)
    assert permutation.tolist() == saved["permutation"] and config["data"]["mode"] == "permuted"
    cli("train", "seqmnist", "--mode", "permuted", "--permutation-seed", 5, "--out", out, "--steps", 4,
        "--model", "gru", *TINY, "--resume")


def test_pixel_mode_with_a_tcn(tmp_path):
    pytest.importorskip("rnnkit.layers.tcn")
    result = cli("train", "seqmnist", "--mode", "pixel", "--model", "tcn", "--layers", 3, "--kernel-size", 3,
                 "--out", tmp_path / "tcn", "--steps", 3, *TINY)
    assert "pixel mode: sequences of 64 steps x 1 features" in result.stdout


def fake_mnist(root: Path, *, images=None, n=5_020, compress=True) -> Path:
    """A directory of MNIST-named IDX files (more than the 5,000 validation images)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = rng.integers(0, 10, len(images)).astype(np.uint8)
    suffix = ".gz" if compress else ""
    for split in ("train", "t10k"):
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels, compress=compress)
    return root


def test_mnist_idx_files_raw(tmp_path):
    root = fake_mnist(tmp_path / "mnist", compress=False)
    result = cli("train", "seqmnist", "--data", root, "--out", tmp_path / "r", "--steps", 2, "--hidden", 4,
                 "--batch-size", 8, "--device", "cpu", "--quiet")
    assert "data: MNIST, row mode: sequences of 28 steps x 28 features; train 20, valid 5,000, test 5,020" in result.stdout


def test_wrong_image_size_is_a_one_line_error(tmp_path):
    root = fake_mnist(tmp_path / "mnist", images=np.zeros((5_010, 20, 20), np.uint8))
    one_line_error(cli("train", "seqmnist", "--data", root, "--out", tmp_path / "r", "--steps", 1, ok=False),
                   "train-images-idx3-ubyte.gz: expected images of 28x28 pixels", "got shape (5010, 20, 20)")


def test_corrupt_gzip_is_a_one_line_error(tmp_path):
    root = fake_mnist(tmp_path / "mnist", n=5_001)
    labels = root / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-20])
    one_line_error(cli("train", "seqmnist", "--data", root, "--out", tmp_path / "r", "--steps", 1, ok=False),
                   "train-labels-idx1-ubyte.gz: corrupt gzip data")
    fake_mnist(root, n=5_001)  # repair the labels, break the test images' header
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x05"))
    one_line_error(cli("train", "seqmnist", "--data", root, "--out", tmp_path / "r", "--steps", 1, ok=False),
                   "t10k-images-idx3-ubyte.gz: truncated header: 3 dimensions need 16 bytes, got 8")


@pytest.mark.parametrize("extra, expected", [
    (["--mode", "column"], "expected --mode in row, pixel, permuted, got 'column'"),
    (["--model", "conv"], "expected --model in rnn, jordan, lstm"),
    (["--bptt", "4"], "truncated BPTT"),
])
def test_bad_options(tmp_path, extra, expected):
    one_line_error(cli("train", "seqmnist", "--out", tmp_path / "r", "--steps", 1, *TINY, *extra, ok=False), expected)


def test_the_shared_mnist(tmp_path):
    if not MNIST.exists():
        pytest.skip(f"shared data not found: {MNIST.resolve()}")
    result = cli("train", "seqmnist", "--data", MNIST, "--out", tmp_path / "r", "--steps", 2, "--hidden", 4,
                 "--batch-size", 8, "--device", "cpu", "--quiet")
    assert "train 55,000, valid 5,000, test 10,000" in result.stdout
    report = json.loads((tmp_path / "r" / "metrics_test.json").read_text())
    assert [row["support"] for row in report["per_class"]][:2] == [980, 1135]
