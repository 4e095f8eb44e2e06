"""`rnnkit train mdlstm`: patches, a tiny MDLSTM classifier overfits, the CLI round trip on the bundled 8x8 digits
(resume, evaluate_run, rnnkit evaluate), real MNIST through the model, and bad input; `--segment`: the scene labels
match the drawn shapes, the segmenter's pixel layout, a tiny segmenter learns, the metrics, the CLI round trip and
its bad options."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.scenes import COLOURS, SEGMENT_CLASSES, SHAPES, generate_scenes, label_mask
from rnnkit.models.mdlstm import MDLSTMClassifier, MDLSTMClassifierConfig, MDLSTMSegmenter, MDLSTMSegmenterConfig
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
    assert again == report  # the best weights on the same test images: the same report
    assert cli("evaluate", out).stdout.strip() == mdlstm.describe(report).strip()
    assert mdlstm.describe(report).startswith(f"test: accuracy {report['accuracy']:.4f}, macro F1")
    one_line_error(cli("evaluate", out, "--data", tmp_path, ok=False), "mdlstm run is evaluated on its own test split",
                   "--data does not apply")
    one_line_error(cli("train", "mdlstm", "--out", tmp_path / "z", "--train-size", 50, "--steps", 1, "--quiet",
                       ok=False), "--train-size applies to --segment")
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


# ----- --segment: per-pixel labels of generated scenes ---------------------------------------------------------

SEG_TINY = ["--segment", "--image-size", 16, "--train-size", 48, "--valid-size", 8, "--test-size", 8, "--hidden", 8,
            "--batch-size", 16, "--lr", "0.01", "--device", "cpu", "--quiet"]


def test_labels_are_the_drawn_shapes():
    data = generate_scenes(40, size=32, seed=3)
    palette = np.array(list(COLOURS.values()))  # (5, 3)
    seen = set()
    for image, scene in zip(data.images, data.scenes):
        labels = label_mask(scene, 32)
        assert labels.shape == (32, 32) and labels.dtype == np.uint8
        pixels = image.transpose(1, 2, 0).astype(int)  # (S, S, 3)
        painted = (pixels[:, :, None, :] == palette).all(-1).any(-1)  # a shape's colour (the noisy canvas never is)
        assert ((labels > 0) == painted).all()
        for k, kind in enumerate(SHAPES, start=1):
            colours = {COLOURS[s.colour] for s in scene.shapes if s.kind == kind}
            got = {tuple(p) for p in pixels[labels == k]}
            assert got <= colours and bool(got) == bool(colours), (kind, got, colours)  # every shape shows
            seen |= {kind} if got else set()
    assert seen == set(SHAPES) and SEGMENT_CLASSES == ("background", "circle", "square", "triangle")


def test_segmenter_shapes_and_pixel_layout():
    config = MDLSTMSegmenterConfig(image_size=(4, 6), patch=2, hidden=3)
    model = MDLSTMSegmenter(config).eval()
    images = torch.randint(0, 256, (2, 3, 4, 6), dtype=torch.uint8)
    logits, state = model(images)
    assert logits.shape == (2, 4, 4, 6) and state == ()
    torch.testing.assert_close(model(images.float() / 255)[0], logits)  # uint8 pixels or floats in [0, 1]
    # the dense layer's output k * p * p + a * p + b is class k at pixel (a, b) of its position's block
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.arange(16.0))
    out = model(images)[0][0]  # (C, H, W)
    for i, j, k in ((0, 0, 0), (1, 0, 1), (0, 1, 2), (3, 5, 3), (2, 3, 1)):
        assert out[k, i, j] == k * 4 + (i % 2) * 2 + (j % 2)
    p = model.patches(torch.arange(72.0).reshape(1, 3, 4, 6) / 72)
    assert p.shape == (1, 2, 3, 12)
    assert ((p[0, 1, 2, :4] / 2 + 0.5) * 72).round().tolist() == [16.0, 17.0, 22.0, 23.0]  # channel 0, block (1, 2)
    with pytest.raises(ValueError, match=r"expected images \(B, 3, 4, 6\) as uint8 pixels or floats in \[0, 1\], "
                                         r"got torch.float32 \(2, 1, 4, 6\)"):
        model(torch.zeros(2, 1, 4, 6))
    with pytest.raises(ValueError, match="got torch.int64"):
        model(torch.zeros(2, 3, 4, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="expected lengths=None"):
        model(images, lengths=torch.tensor([4, 4]))
    with pytest.raises(ValueError, match="expected image sides divisible by patch 4, got 4 x 6"):
        MDLSTMSegmenterConfig(image_size=(4, 6), patch=4)


def test_tiny_segmenter_learns_the_shapes():
    task = mdlstm.SegmentTask(image_size=16, train_size=16, valid_size=1, test_size=1, max_shapes=2)
    x, y = mdlstm.segment_splits(task, names=("train",))["train"]
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.uint8 and y.shape == (16, 16, 16)
    torch.manual_seed(0)
    model = MDLSTMSegmenter(MDLSTMSegmenterConfig(image_size=(16, 16), patch=2, hidden=8))
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y.long())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0 and losses[-1] < 0.15, losses[::10]
    accuracy = float((model(x)[0].argmax(1) == y).float().mean())
    assert accuracy > float((y == 0).float().mean()) + 0.03  # beyond labelling everything background


def test_segmentation_report():
    cm = torch.tensor([[50, 2, 0, 0], [1, 7, 0, 0], [0, 0, 0, 0], [3, 0, 0, 5]])  # no square, none predicted
    r = mdlstm.segmentation_report(cm, SEGMENT_CLASSES)
    assert r["pixels"] == 68 and r["pixel_accuracy"] == pytest.approx(62 / 68)
    ious = [c["iou"] for c in r["per_class"]]
    assert ious == pytest.approx([50 / 56, 7 / 10, 0.0, 5 / 8])
    assert r["mean_iou"] == pytest.approx((50 / 56 + 7 / 10 + 5 / 8) / 3)  # the absent class is left out
    assert r["background_baseline_accuracy"] == pytest.approx(52 / 68)
    assert r["per_class"][3] == {"class": "triangle", "iou": 5 / 8, "precision": 1.0, "recall": 5 / 8, "pixels": 8}


def test_cli_segment_round_trip(tmp_path):
    out = tmp_path / "seg"
    first = cli("train", "mdlstm", "--out", out, "--steps", 12, "--eval-every", 6, *SEG_TINY)
    lines = first.stdout.splitlines()
    assert lines[0].startswith("data: generated scenes (16x16, 1-3 shapes, seed 0) as a 8x8 grid of 2x2 patches; "
                               "train 48, valid 8, test 8 scenes")
    assert "speed: training" in first.stdout and "images/s" in first.stdout and "pixels/s" in first.stdout
    for name in ("config.json", "model.best.safetensors", "metrics_valid.json", "metrics_test.json",
                 "segmentation_test.png", "loss.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["segment"] is True and config["labels"] == list(SEGMENT_CLASSES)
    cli("train", "mdlstm", "--out", out, "--steps", 15, "--eval-every", 6, "--resume", *SEG_TINY)
    report = json.loads((out / "metrics_test.json").read_text())
    assert report["images"] == 8 and report["pixels"] == 8 * 16 * 16 and 0 <= report["mean_iou"] <= 1
    assert mdlstm.evaluate_run(out) == report  # the best weights on the same test scenes: the same report
    assert mdlstm.evaluate_run(out, split="valid") == json.loads((out / "metrics_valid.json").read_text())
    shown = cli("evaluate", out).stdout
    assert shown.strip() == mdlstm.describe(report) and shown.startswith("test: pixel accuracy")
    assert [line.split()[0] for line in shown.splitlines()[2:]] == list(SEGMENT_CLASSES)
    model, _ = mdlstm.load(out)
    assert isinstance(model, MDLSTMSegmenter)
    one_line_error(cli("evaluate", out, "--batch-size", 4, ok=False), "--batch-size does not apply")


def test_cli_segment_bad_options(tmp_path):
    def error(*args):
        return one_line_error(cli("train", "mdlstm", "--out", tmp_path / "bad", "--steps", 1, "--quiet", *args,
                                  ok=False))

    assert "--data is not used" in error("--segment", "--data", tmp_path)
    assert "expected an image size >= 16 pixels, got 8" in error("--segment", "--image-size", 8)
    assert "divisible by patch 4, got 18 x 18" in error("--segment", "--image-size", 18, "--patch", 4)
    assert "expected max_shapes in 1..3, got 4" in error("--segment", "--max-shapes", 4)
    assert "expected directions in [1, 2, 4], got 3" in error("--segment", "--directions", 3)
    assert "--max-shapes applies to --segment" in error("--max-shapes", 2)
    assert "--bptt does not apply" in error("--segment", "--bptt", 4)
    assert not (tmp_path / "bad").exists()
