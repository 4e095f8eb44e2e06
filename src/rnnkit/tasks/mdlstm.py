"""MNIST with a multi-dimensional LSTM (Graves et al. 2007; lecture 004): `rnnkit train mdlstm`.

    MNIST IDX files (--data DIR) or scikit-learn's 8x8 digits (no --data), as `rnnkit train seqmnist` reads
      them (tasks/seqmnist.py: the same splits) ──pixels in [0, 1], (N, H, W)──> MDLSTMClassifier
      (p x p patches, a 4-direction MDLSTM scanned as a diagonal wavefront, mean over positions, dense)
      ──softmax cross-entropy──> Trainer ──best model on validation──> test accuracy, F1, confusion matrix

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             metrics_valid.json, metrics_test.json, confusion_valid.png, confusion_test.png
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..models.mdlstm import MDLSTMClassifier, MDLSTMClassifierConfig
from ..train import TrainConfig, checkpoint, seed_everything
from .classify import load_best, make_trainer, report_split, report_splits
from .seqmnist import DIGIT_NAMES, SeqMNISTTask, read_images


@dataclass
class MDLSTMTask:
    data: str | None = None  # a directory of MNIST IDX files; None: scikit-learn's bundled 8x8 digits


def read_splits(task: MDLSTMTask) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train", "valid", "test"}: (images float32 (N, H, W) in [0, 1], labels int64 (N,))."""
    splits = read_images(SeqMNISTTask(data=task.data, mode="row"))
    return {name: (torch.from_numpy(images), torch.from_numpy(labels)) for name, (images, labels) in splits.items()}


def train(task: MDLSTMTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train an MDLSTM digit classifier into ``out``. model_options: the fields of MDLSTMClassifierConfig but
    num_classes and image_size (patch, hidden, layers, directions, dropout). Returns {"data", "valid", "test",
    "step", "best_step"} as :func:`rnnkit.tasks.seqmnist.train` does."""
    out = Path(out)
    seed_everything(cfg.seed)
    data = read_splits(task)
    H, W = data["train"][0].shape[1:]
    config = MDLSTMClassifierConfig(num_classes=10, image_size=(int(H), int(W)), **model_options)
    model = MDLSTMClassifier(config)
    run_config = {"task": "mdlstm", "data": asdict(task), "labels": DIGIT_NAMES, "model": asdict(config)}
    (x, y), (vx, vy) = data["train"], data["valid"]
    trainer = make_trainer(model, train=(x, y, None), valid=(vx, vy, None), cfg=cfg, out=out, run_config=run_config,
                           resume=resume, resume_command=resume_command)
    trainer.fit()
    best_step = load_best(trainer)
    reports = report_splits(trainer, {name: (x, y, None) for name, (x, y) in data.items()}, DIGIT_NAMES, out)
    sizes = {name: {"examples": int(len(labels)), "image_size": [int(H), int(W)]}
             for name, (_, labels) in data.items()}
    return {"data": sizes, "valid": reports.get("valid"), "test": reports.get("test"), "step": trainer.step,
            "best_step": best_step, "grid": [int(H) // config.patch, int(W) // config.patch]}


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, config) of a trained MDLSTM run."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("mdlstm",))
    model = MDLSTMClassifier(MDLSTMClassifierConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    return model.to(device).eval(), config


def evaluate_run(run_dir, *, split: str = "test", device="cpu") -> dict:
    """The report of a trained run on its data's "valid" or "test" split."""
    model, config = load(run_dir, device=device)
    x, y = read_splits(MDLSTMTask(**config["data"]))[split]
    return report_split(model, x, y, None, DIGIT_NAMES, split=split, out=None, device=device)
