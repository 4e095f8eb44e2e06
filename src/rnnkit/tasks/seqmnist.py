"""Sequential MNIST (lecture 000's "Training on MNIST as a Vector Sequence"; Le et al. 2015; Bai et al. 2018).

An image of H x W pixels becomes a sequence; the classifier reads all of it, then predicts the digit:

    row       (B, H, W)       H steps of W pixels: lecture 000's 28 inputs of 28-dimensional vectors
    pixel     (B, H*W, 1)     one pixel per step, row by row: 784 steps for MNIST
    permuted  (B, H*W, 1)     the pixels in one fixed random order (seeded by --permutation-seed, saved
                              as permutation.json in the run directory), the same for every image

    MNIST IDX files (--data DIR) or scikit-learn's 8x8 digits (no --data) ──pixels / max──> [0, 1]
      ──mode──> sequences ──SequenceClassifier (dense input, --model, pooling "last" = the final state,
      lecture 000's ``dense(states, n_outputs)``)──> 10 logits ──softmax cross-entropy──> Trainer
      ──best model on validation──> test accuracy (in_top_k), precision / recall / F1, confusion matrix

Splits: MNIST's 60,000 training images minus the last 5,000, which validate (TensorFlow's
``input_data`` convention, the one lecture 000's code reads), and its 10,000 test images. The 1,797
digits are shuffled once (seed 0) into 1,437 / 180 / 180.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.digits import load_digits
from ..data.idx import read_mnist
from ..layers import ENCODERS
from ..train import TrainConfig, checkpoint, seed_everything
from .classify import build_model, load_best, make_trainer, model_spec, report_split, report_splits

MODES = ("row", "pixel", "permuted")
MNIST_VALID = 5_000
DIGITS_SPLIT = (1_437, 180, 180)
DIGIT_NAMES = [str(d) for d in range(10)]


@dataclass
class SeqMNISTTask:
    data: str | None = None  # a directory of MNIST IDX files; None: scikit-learn's bundled 8x8 digits
    mode: str = "row"
    permutation_seed: int = 0  # permuted mode: the seed of the fixed pixel order

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"seqmnist: expected --mode in {', '.join(MODES)}, got {self.mode!r}")


def read_images(task: SeqMNISTTask) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "valid", "test"}: (images float32 (N, H, W) in [0, 1], labels int64 (N,))."""
    if task.data is None:
        images, labels = load_digits()
        order = np.random.default_rng(0).permutation(len(labels))
        a, b, _ = DIGITS_SPLIT
        parts = {"train": order[:a], "valid": order[a:a + b], "test": order[a + b:]}
        return {name: (images[idx], labels[idx]) for name, idx in parts.items()}
    train_images, train_labels = read_mnist(task.data, "train")
    test_images, test_labels = read_mnist(task.data, "test")
    if len(train_labels) <= MNIST_VALID:
        raise ValueError(f"{task.data}: expected more than {MNIST_VALID} training images (the last {MNIST_VALID} "
                         f"validate), got {len(train_labels)}")

    def scaled(images):
        return images.astype(np.float32) / 255.0

    cut = len(train_labels) - MNIST_VALID
    return {"train": (scaled(train_images[:cut]), train_labels[:cut]),
            "valid": (scaled(train_images[cut:]), train_labels[cut:]),
            "test": (scaled(test_images), test_labels)}


def make_permutation(pixels: int, seed: int) -> torch.Tensor:
    """The fixed pixel order of permuted mode: a permutation of range(pixels) from a seeded generator."""
    return torch.randperm(pixels, generator=torch.Generator().manual_seed(seed))


def as_sequences(images: np.ndarray, mode: str, permutation: torch.Tensor | None = None) -> torch.Tensor:
    """(N, H, W) images -> (N, H, W) rows, or (N, H*W, 1) pixels (in permutation's order when permuted)."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    N, H, W = x.shape
    if mode == "row":
        return x
    pixels = x.reshape(N, H * W, 1)
    if mode == "pixel":
        return pixels
    if permutation is None or sorted(permutation.tolist()) != list(range(H * W)):
        raise ValueError(f"seqmnist: permuted mode needs a permutation of range({H * W})")
    return pixels[:, permutation]


def train(task: SeqMNISTTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train a sequential-MNIST classifier into ``out``. model_options: ``model`` (an encoder kind) and the
    keyword arguments of :func:`rnnkit.tasks.classify.model_spec` but the input size and class count.
    Returns {"data": sizes, "valid": report, "test": report, "step": steps trained, "best_step": the step of
    the reported model (the lowest validation loss)}."""
    if model_options.get("model") not in ENCODERS:
        raise ValueError(f"seqmnist: expected --model in {', '.join(ENCODERS)}, got {model_options.get('model')!r}")
    out = Path(out)
    seed_everything(cfg.seed)
    splits = read_images(task)
    H, W = splits["train"][0].shape[1:]
    permutation = None
    if task.mode == "permuted":
        if resume:  # the saved order, whatever this torch's generator would draw today
            permutation = torch.tensor(checkpoint.read_json(out / "permutation.json")["permutation"])
        else:
            permutation = make_permutation(H * W, task.permutation_seed)
    data = {name: (as_sequences(images, task.mode, permutation), torch.from_numpy(labels))
            for name, (images, labels) in splits.items()}
    spec = model_spec(num_classes=10, input_size=data["train"][0].shape[2], **model_options)
    model = build_model(spec)
    run_config = {"task": "seqmnist", "data": asdict(task), "image_size": [int(H), int(W)], "labels": DIGIT_NAMES,
                  "model": spec}
    (x, y), (vx, vy) = data["train"], data["valid"]
    trainer = make_trainer(model, train=(x, y, None), valid=(vx, vy, None), cfg=cfg, out=out, run_config=run_config,
                           resume=resume, resume_command=resume_command)
    if permutation is not None and not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "permutation.json", {"seed": task.permutation_seed,
                                                                "permutation": permutation.tolist()})
    trainer.fit()
    best_step = load_best(trainer)
    reports = report_splits(trainer, {name: (x, y, None) for name, (x, y) in data.items()}, DIGIT_NAMES, out)
    sizes = {name: {"examples": int(len(labels)), "steps": int(seq.shape[1]), "features": int(seq.shape[2]),
                    "tokens": int(len(labels) * seq.shape[1])} for name, (seq, labels) in data.items()}
    return {"data": sizes, "valid": reports.get("valid"), "test": reports.get("test"), "step": trainer.step,
            "best_step": best_step}


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, config, permutation or None) of a trained sequential-MNIST run."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("seqmnist",))
    model = build_model(config["model"])
    checkpoint.load_run_weights(run_dir, model, best=best)
    permutation = None
    if config["data"]["mode"] == "permuted":
        checkpoint.check_run_dir(run_dir, need=("permutation.json",))
        permutation = torch.tensor(checkpoint.read_json(run_dir / "permutation.json")["permutation"])
    return model.to(device).eval(), config, permutation


def evaluate_run(run_dir, *, split: str = "test", device="cpu") -> dict:
    """The report of a trained run on its data's "valid" or "test" split (the images it was trained on)."""
    model, config, permutation = load(run_dir, device=device)
    task = SeqMNISTTask(**config["data"])
    images, labels = read_images(task)[split]
    x = as_sequences(images, task.mode, permutation)
    return report_split(model, x, torch.from_numpy(labels), None, DIGIT_NAMES, split=split, out=None, device=device)
