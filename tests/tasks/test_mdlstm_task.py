"""`rnnkit train mdlstm`: patches, a tiny MDLSTM classifier overfits, the CLI round trip on the bundled 8x8 digits
(resume, evaluate_run), real MNIST through the model, and bad input."""
import json
from pathlib import Path

import pytest
import torch

from rnnkit.models.mdlstm import MDLSTMClassifier, MDLSTMClassifierConfig
from rnnkit.tasks import mdlstm

from clikit import cli, one_line_error

MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
TINY = ["--hidden", "8", "--batch-size", "64", "--device", "cpu", "--quiet", "--lr", "0.02"]


def test_patches_hold_each_block_row_by_row():
    model = MDLSTMClassifier(MDLSTMClassifierConfig(image_size=(4, 6), patch=2, hidden=3))
    images = torch.arange(24.0).reshape(1, 4, 6)
    p = model.patches(images)
    assert p.shape == (1, 2, 3, 4)
    assert p[0, 1, 2].tolist() == [16.0, 17.0, 22.0, 23.0]
    logits, state = model(images)
    assert logits.shape == (1, 10) and state == ()
    with pytest.raises(ValueError, match=r"expected images \(B, 4, 6\) floats, got torch.float32 \(1, 6, 4\)"):
        model(images.reshape(1, 6, 4))
    with pytest.raises(ValueError, match="expected image sides divisible by patch 4, got 4 x 6"):
        MDLSTMClassifierConfig(image_size=(4, 6), patch=4)


def test_tiny_model_overfits_a_batch():
    torch.manual_seed(0)
    model = MDLSTMClassifier(MDLSTMClassifierConfig(num_classes=4, image_size=(6, 6), patch=2, hidden=8))
    x = torch.rand(16, 6, 6)
    y = torch.arange(16) % 4
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(80):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x)[0], y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_cli_round_trip_on_digits(tmp_path):
    out = tmp_path / "run"
    first = cli("train", "mdlstm", "--out", out, "--steps", 30, "--eval-every", 15, *TINY)
    assert "data: scikit-learn's 8x8 digits, 8x8 images as a 4x4 grid of 2x2 patches; train 1,437, valid 180, " \
           "test 180" in first.stdout
    resumed = cli("train", "mdlstm", "--out", out, "--steps", 45, "--eval-every", 15, "--resume", *TINY)
    report = json.loads((out / "metrics_test.json").read_text())
    assert report["accuracy"] > 0.3, resumed.stdout  # chance is 0.1
    again = mdlstm.evaluate_run(out)
    assert again["confusion_matrix"] == report["confusion_matrix"]
    one_line_error(cli("train", "mdlstm", "--out", tmp_path / "x", "--patch", 3, "--steps", 1, "--quiet", ok=False),
                   "divisible by patch 3, got 8 x 8")
    one_line_error(cli("train", "mdlstm", "--out", tmp_path / "y", "--directions", 3, "--steps", 1, "--quiet",
                       ok=False), "expected directions in [1, 2, 4], got 3")


@pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").is_file(), reason=f"MNIST is not in {MNIST}")
def test_real_mnist_through_the_model():
    splits = mdlstm.read_splits(mdlstm.MDLSTMTask(data=str(MNIST)))
    x, y = splits["test"]
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,) and float(x.max()) <= 1.0
    model = MDLSTMClassifier(MDLSTMClassifierConfig(image_size=(28, 28), patch=4, hidden=4))
    assert model(x[:2])[0].shape == (2, 10)
