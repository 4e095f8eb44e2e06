"""rnnkit train captions / vqa, rnnkit caption and rnnkit evaluate: round trips through the CLI (the evaluation
reproduces the test report), a folder of own images, bad input."""
import json

from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data.scenes import generate_scenes, save_image
from rnnkit.tasks import captions, vqa

TINY = ["--image-size", "16", "--channels", "8,8", "--train-size", "48", "--valid-size", "8", "--test-size", "8",
        "--eval-every", "5", "--quiet", "--device", "cpu", "--batch-size", "16"]
CAPTION = ["--pools", "1", "--hidden", "16", "--embedding", "8"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_captions_train_caption_resume(tmp_path):
    out = tmp_path / "run"
    r = run("train", "captions", "--out", out, "--steps", 5, *TINY, *CAPTION)
    assert r.exit_code == 0, r.output
    assert "test (greedy, 8 images): exact match" in r.output
    for name in ("config.json", "vocab.json", "model.safetensors", "trainer.pt", "metrics_test.json",
                 "test_captions.tsv", "test_image.png", "attention.png"):
        assert (out / name).is_file(), name
    r = run("caption", out, out / "test_image.png", "--beam", 3, "--plot-attention", tmp_path / "a.png")
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[0] and (tmp_path / "a.png").stat().st_size > 0
    r = run("train", "captions", "--out", out, "--steps", 8, *TINY, *CAPTION, "--resume")
    assert r.exit_code == 0, r.output
    assert "validation after 8 steps" in r.output
    test = json.loads((out / "metrics_test.json").read_text())
    assert captions.evaluate_run(out) == test  # the best weights on the same test scenes: the same report
    r = run("evaluate", out)
    assert r.exit_code == 0 and r.output.strip() == captions.describe(test), r.output
    assert r.output.startswith("test (greedy, 8 images): exact match")
    r = run("caption", out, tmp_path / "nothing.png")
    assert r.exit_code == 1 and "nothing.png: no such file" in r.output


def test_captions_without_attention_and_bad_options(tmp_path):
    out = tmp_path / "none"
    r = run("train", "captions", "--out", out, "--steps", 3, "--attention", "none", "--image", "input", "--beam", 2,
            *TINY, *CAPTION)
    assert r.exit_code == 0, r.output
    test = json.loads((out / "metrics_test.json").read_text())
    assert test["decoding"] == "beam 2" and set(test["greedy"]) == {"bleu", "exact_match"}  # beam and greedy
    assert captions.evaluate_run(out) == test
    r = run("evaluate", out)
    assert r.exit_code == 0 and r.output.startswith("test (beam 2, 8 images): exact match") and "; greedy: exact " \
        "match" in r.output, r.output
    r = run("evaluate", out, "--data", tmp_path)
    assert r.exit_code == 1 and "captions run is evaluated on the test images it was made with; --data does not " \
        "apply" in r.output, r.output
    r = run("caption", out, out / "test_image.png", "--plot-attention", tmp_path / "x.png")
    assert r.exit_code == 1 and "has no attention" in r.output
    r = run("train", "captions", "--out", tmp_path / "bad", "--steps", 3, "--attention", "global", *TINY, *CAPTION)
    assert r.exit_code == 1 and "expected attention in ('none', 'soft', 'hard')" in r.output
    r = run("train", "captions", "--out", tmp_path / "bad", "--steps", 3, "--channels", "8,x")
    assert r.exit_code == 1 and "--channels: expected comma-separated ints" in r.output
    assert not (tmp_path / "bad").exists()


def test_captions_from_an_image_folder(tmp_path):
    scenes = generate_scenes(12, size=24, seed=5)
    lines = []
    for i, (image, caps) in enumerate(zip(scenes.images, scenes.captions)):
        save_image(image, tmp_path / f"img{i}.png")
        lines.append(f"img{i}.png\t{caps[0].capitalize()}.")
    (tmp_path / "captions.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    r = run("train", "captions", "--data", tmp_path, "--out", out, "--steps", 3, "--image-size", "16", "--channels",
            "8,8", "--quiet", "--device", "cpu", *CAPTION)
    assert r.exit_code == 0, r.output
    test = json.loads((out / "metrics_test.json").read_text())
    assert test["images"] == 1 and 0 <= test["bleu"] <= 100
    assert captions.evaluate_run(out) == test  # the same split of the folder
    r = run("train", "captions", "--data", tmp_path, "--out", tmp_path / "r2", "--steps", 3, "--train-size", "5")
    assert r.exit_code == 1 and "applies to the generated scenes" in r.output


def test_vqa_train_and_resume(tmp_path):
    out = tmp_path / "vqa"
    r = run("train", "vqa", "--out", out, "--steps", 4, *TINY, "--pools", "2", "--hidden", "8", "--passes", "2")
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.output and (out / "gates.png").is_file()
    test = json.loads((out / "test.json").read_text())
    assert test["questions"] == 8 and sum(v["questions"] for v in test["by_type"].values()) == 8
    r = run("train", "vqa", "--out", out, "--steps", 6, *TINY, "--pools", "2", "--hidden", "8", "--passes", "2",
            "--resume")
    assert r.exit_code == 0, r.output
    test = json.loads((out / "test.json").read_text())
    assert vqa.evaluate_run(out) == test  # the best weights on the same test questions: the same report
    r = run("evaluate", out)
    assert r.exit_code == 0 and r.output.strip() == vqa.describe(test) and r.output.startswith("test accuracy ")
    r = run("evaluate", out, "--data", tmp_path, "--batch-size", 4)
    assert r.exit_code == 1 and "--data and --batch-size do not apply" in r.output, r.output
    r = run("train", "vqa", "--data", tmp_path, "--out", tmp_path / "x", "--steps", 2)
    assert r.exit_code == 1 and "--data is not used" in r.output
