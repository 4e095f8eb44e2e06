"""A multi-dimensional LSTM on images (Graves et al. 2007; lecture 004): `rnnkit train mdlstm [--segment]`.

**Digit classification** (the default)::

    MNIST IDX files (--data DIR) or scikit-learn's 8x8 digits (no --data), as `rnnkit train seqmnist` reads
      them (tasks/seqmnist.py: the same splits) ──pixels in [0, 1], (N, H, W)──> MDLSTMClassifier
      (p x p patches, a 4-direction MDLSTM scanned as a diagonal wavefront, mean over positions, dense)
      ──softmax cross-entropy──> Trainer ──best model on validation──> test accuracy, F1, confusion matrix

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             metrics_valid.json, metrics_test.json, confusion_valid.png, confusion_test.png

**Per-pixel segmentation of generated scenes** (``--segment``)::

    scene_splits (rnnkit.data.scenes: three seeded draws, train / valid / test, from --data-seed)
      ──images (N, 3, S, S) uint8; label_mask: (N, S, S) labels background 0, circle 1, square 2, triangle 3──>
      MDLSTMSegmenter (p x p patches, the 4-direction MDLSTM, a dense layer at every position giving each pixel
      of its block 4 logits) ──per-pixel softmax cross-entropy──> Trainer (keeps the best validation loss)
      ──best model on the test scenes──> pixel accuracy, IoU per class and their mean, confusion matrix

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             metrics_valid.json, metrics_test.json, segmentation_test.png (image, true and predicted labels of
             the first test scenes)

The labels are the shapes' kinds only, not their colours: a pixel's colour already says which colour it is,
but not which shape it belongs to, so labelling it needs the context the four scans bring from the whole
image. The masks are the ones :func:`rnnkit.data.scenes.draw` paints, so a pixel is labelled with a shape
exactly when it has that shape's colour in the image.

**Metrics.** Over all test pixels: pixel accuracy = correct / pixels; per class c, IoU_c = TP / (TP + FP + FN)
from the pixel confusion matrix; mean IoU averages IoU over the classes present in the labels or the
predictions (background included, as the PASCAL VOC convention). The background covers most of a scene, so
the report gives the all-background baseline's pixel accuracy beside the model's. Training speed (images and
pixels per second of optimizer steps, evaluation excluded) is in the result of :func:`train`, not in the test
report, which :func:`evaluate_run` reproduces.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from .._modes import eval_mode
from ..data.batching import Batch, TensorBatches
from ..data.scenes import SEGMENT_CLASSES, check_size, label_mask, scene_splits
from ..models.mdlstm import MDLSTMClassifier, MDLSTMClassifierConfig, MDLSTMSegmenter, MDLSTMSegmenterConfig
from ..models.sizing import count_parameters
from ..train import TrainConfig, Trainer, checkpoint, seed_everything
from ..train.metrics import confusion_matrix
from .classify import describe_split, load_best, make_trainer, report_split, report_splits
from .seqmnist import DIGIT_NAMES, SeqMNISTTask, read_images

EVAL_BATCH = 100  # scenes per evaluation batch (the same in training's report and in evaluate_run)
PLOTTED = 4  # test scenes drawn in segmentation_test.png
MASK_COLOURS = ((25, 25, 25), (230, 159, 0), (86, 180, 233), (0, 158, 115))  # background, circle, square, triangle


@dataclass
class MDLSTMTask:
    data: str | None = None  # a directory of MNIST IDX files; None: scikit-learn's bundled 8x8 digits


@dataclass
class SegmentTask:
    """Generated scenes (rnnkit.data.scenes) of ``image_size`` pixels with 1 to ``max_shapes`` shapes: three
    seeded draws from ``data_seed`` of ``train_size``, ``valid_size`` and ``test_size`` scenes."""

    image_size: int = 32
    train_size: int = 20_000
    valid_size: int = 500
    test_size: int = 1_000
    max_shapes: int = 3
    data_seed: int = 0

    def __post_init__(self):
        for name in ("train_size", "valid_size", "test_size"):
            check_positive_int("SegmentTask", name, getattr(self, name))
        check_size(self.image_size)
        if not 1 <= self.max_shapes <= 3:
            raise ValueError(f"SegmentTask: expected max_shapes in 1..3, got {self.max_shapes!r}")

    @property
    def title(self) -> str:
        return (f"generated scenes ({self.image_size}x{self.image_size}, 1-{self.max_shapes} shapes, seed "
                f"{self.data_seed})")


def is_segment_run(config: dict) -> bool:
    """Whether a run's config.json is that of a segmentation run (classification runs have no "segment")."""
    return bool(config.get("segment", False))


# ----- digit classification -------------------------------------------------------------------------------

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


# ----- per-pixel segmentation of generated scenes ---------------------------------------------------------

def segment_splits(task: SegmentTask, names=("train", "valid", "test")) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{name: (images uint8 (N, 3, S, S), labels uint8 (N, S, S))} for the splits in ``names``. The three splits
    are independent seeded draws (scene_splits), so a split left out (drawn as a single scene) changes no other."""
    sizes = {"train": task.train_size, "valid": task.valid_size, "test": task.test_size}
    scenes = scene_splits(*(sizes[n] if n in names else 1 for n in ("train", "valid", "test")),
                          size=task.image_size, seed=task.data_seed, max_shapes=task.max_shapes)
    return {name: (torch.from_numpy(scenes[name].images),
                   torch.from_numpy(np.stack([label_mask(s, task.image_size) for s in scenes[name].scenes])))
            for name in names}


class PixelBatch(Batch):
    """x (B, 3, S, S) uint8 images, y (B, S, S) int64 labels; it weighs (and the Trainer counts) its pixels, so
    the logged ``tokens_per_s`` is pixels per second."""

    @property
    def tokens(self) -> int:
        return self.y.numel()


class PixelBatches(TensorBatches):
    """Images and their uint8 label maps in batches (reshuffled every epoch from (seed, epoch)); the labels
    become int64 one batch at a time."""

    def batches(self, epoch: int = 0):
        for batch in super().batches(epoch):
            yield PixelBatch(batch.x, batch.y.long())


def pixel_loss(logits, batch) -> torch.Tensor:
    """Softmax cross-entropy per pixel, averaged over the batch's pixels: logits (B, C, H, W), y (B, H, W)."""
    return F.cross_entropy(logits.float(), batch.y)


def pixel_metrics(logits, batch) -> dict[str, float]:
    return {"pixel_accuracy": float((logits.argmax(dim=1) == batch.y).float().mean())}


def segmentation_report(cm: torch.Tensor, class_names) -> dict:
    """Pixel accuracy, IoU per class and mean IoU from a (C, C) pixel confusion matrix (row: true class).

    Returns {"pixels", "pixel_accuracy", "mean_iou", "background_baseline_accuracy", "per_class": [{"class",
    "iou", "precision", "recall", "pixels"}], "confusion_matrix"}. A class absent from both the labels and the
    predictions has IoU 0 and is left out of the mean."""
    cm = cm.double()
    total = cm.sum()
    if total == 0:
        raise ValueError("segmentation_report: the confusion matrix is empty (no pixels)")
    tp, predicted, support = cm.diagonal(), cm.sum(dim=0), cm.sum(dim=1)
    union = support + predicted - tp

    def ratio(num, den):
        return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))

    iou, precision, recall = ratio(tp, union), ratio(tp, predicted), ratio(tp, support)
    present = union > 0
    return {"pixels": int(total), "pixel_accuracy": float(tp.sum() / total),
            "mean_iou": float(iou[present].mean()), "background_baseline_accuracy": float(support[0] / total),
            "per_class": [{"class": name, "iou": float(iou[c]), "precision": float(precision[c]),
                           "recall": float(recall[c]), "pixels": int(support[c])}
                          for c, name in enumerate(class_names)],
            "confusion_matrix": cm.long().tolist()}


@torch.no_grad()
def predict_masks(model, images: torch.Tensor, *, device="cpu", batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """The predicted label (N, H, W) int64 of every pixel (evaluation mode, on the CPU)."""
    with eval_mode(model):
        return torch.cat([model(images[i:i + batch_size].to(device))[0].argmax(dim=1).cpu()
                          for i in range(0, len(images), batch_size)])


@torch.no_grad()
def score_segmentation(model, images: torch.Tensor, labels: torch.Tensor, *, split: str, device="cpu",
                       batch_size: int = EVAL_BATCH, class_names=SEGMENT_CLASSES) -> dict:
    """The segmentation report of ``split`` (see :func:`segmentation_report`) with "split", "images" and "loss"
    (mean cross-entropy per pixel, nats)."""
    C = len(class_names)
    cm = torch.zeros(C, C, dtype=torch.int64)
    loss = 0.0
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            y = labels[i:i + batch_size].long().to(device)
            logits, _ = model(images[i:i + batch_size].to(device))
            loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            cm += confusion_matrix(y.flatten(), logits.argmax(dim=1).flatten(), C)
    report = segmentation_report(cm, class_names)
    return {"split": split, "images": len(images), "loss": loss / report["pixels"], **report}


def segment_config(task: SegmentTask, model_options: dict) -> MDLSTMSegmenterConfig:
    """The segmenter for the task's scenes; model_options: patch, hidden, layers, directions, dropout."""
    return MDLSTMSegmenterConfig(num_classes=len(SEGMENT_CLASSES), image_size=(task.image_size, task.image_size),
                                 channels=3, **model_options)


def train_segment(task: SegmentTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
                  resume_command: str | None = None) -> dict:
    """Train an MDLSTM segmenter on generated scenes into ``out``. model_options: the fields of
    MDLSTMSegmenterConfig but num_classes, image_size and channels. Returns {"task", "data", "parameters", "grid",
    "step", "best_step", "seconds", "valid", "test" (the reports of the best weights), "speed": {"train_images_per_s",
    "train_pixels_per_s" (optimizer steps only), "test_images_per_s" (inference), "threads", "device"}}."""
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("mdlstm --segment: every image is one example, scanned whole; truncated BPTT (--bptt) does "
                         "not apply")
    out = Path(out)
    config = segment_config(task, model_options)  # checked before the scenes are drawn
    splits = segment_splits(task)
    seed_everything(cfg.seed)
    model = MDLSTMSegmenter(config)
    run_config = {"task": "mdlstm", "segment": True, "data": asdict(task), "labels": list(SEGMENT_CLASSES),
                  "model": asdict(config)}
    (x, y), (vx, vy) = splits["train"], splits["valid"]
    trainer = Trainer(model, cfg, loss_fn=pixel_loss, metrics_fn=pixel_metrics,
                      train_data=PixelBatches(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed),
                      valid_data=PixelBatches(vx, vy, max(cfg.batch_size, EVAL_BATCH), shuffle=False),
                      run_dir=out, run_config=run_config, resume=resume, resume_command=resume_command)
    began = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - began
    best_step = load_best(trainer)
    if not trainer.world.is_main:
        return {}
    model = trainer.raw_model
    valid = score_segmentation(model, vx, vy, split="valid", device=trainer.device)
    timed = time.perf_counter()
    test = score_segmentation(model, *splits["test"], split="test", device=trainer.device)
    test_seconds = time.perf_counter() - timed
    for report in (valid, test):
        checkpoint.atomic_write_json(out / f"metrics_{report['split']}.json", report)
    images, labels = splits["test"]
    shown = min(PLOTTED, len(images))
    plot_segmentation(images[:shown], labels[:shown], predict_masks(model, images[:shown], device=trainer.device),
                      out / "segmentation_test.png",
                      title=f"test: pixel accuracy {test['pixel_accuracy']:.2%}, mean IoU {test['mean_iou']:.3f}")
    trained = [r for r in trainer.history if "split" not in r and "tokens_per_s" in r]
    pixels_per_s = trained[-1]["tokens_per_s"] if trained else None
    S = task.image_size
    speed = {"train_pixels_per_s": pixels_per_s, "train_images_per_s": pixels_per_s and pixels_per_s / (S * S),
             "test_images_per_s": len(images) / max(test_seconds, 1e-9), "threads": torch.get_num_threads(),
             "device": str(trainer.device)}
    return {"task": task.title, "data": {name: int(len(split[0])) for name, split in splits.items()},
            "parameters": count_parameters(model), "grid": [S // config.patch, S // config.patch],
            "step": trainer.step, "best_step": best_step, "seconds": round(seconds, 1), "valid": valid, "test": test,
            "speed": speed}


def colour_labels(labels: torch.Tensor) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 picture in MASK_COLOURS."""
    return np.asarray(MASK_COLOURS, dtype=np.uint8)[labels.long().numpy()]


def plot_segmentation(images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor, path, *,
                      title: str = "") -> Path:
    """A PNG with one row per scene: the image, its true labels, the predicted labels (matplotlib, Agg).
    images (N, 3, S, S) uint8; labels and predicted (N, S, S)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if images.dim() != 4 or images.shape[1] != 3 or labels.shape != predicted.shape or \
            tuple(labels.shape) != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"plot_segmentation: expected images (N, 3, S, S) and labels, predictions (N, S, S), got "
                         f"{tuple(images.shape)}, {tuple(labels.shape)}, {tuple(predicted.shape)}")
    N = images.shape[0]
    fig, axes = plt.subplots(N, 3, figsize=(6.3, 2.1 * N + 0.6), squeeze=False)
    for row in range(N):
        for ax, picture, name in zip(axes[row], (images[row].permute(1, 2, 0).numpy(), colour_labels(labels[row]),
                                                 colour_labels(predicted[row])), ("image", "true", "predicted")):
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
        right = float((labels[row] == predicted[row]).float().mean())
        axes[row, 2].set_xlabel(f"{right:.1%} of the pixels right", fontsize=8)
    handles = [Patch(color=np.asarray(c) / 255, label=name) for c, name in zip(MASK_COLOURS, SEGMENT_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return checkpoint.atomic_write_bytes(path, buffer.getvalue())


# ----- a trained run --------------------------------------------------------------------------------------

def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, config) of a trained MDLSTM run: an MDLSTMClassifier, or an MDLSTMSegmenter for a --segment run."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("mdlstm",))
    if is_segment_run(config):
        model = MDLSTMSegmenter(MDLSTMSegmenterConfig(**config["model"]))
    else:
        model = MDLSTMClassifier(MDLSTMClassifierConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    return model.to(device).eval(), config


def evaluate_run(run_dir, *, split: str = "test", device="cpu") -> dict:
    """The report of a run's best weights on the "valid" or "test" split it was trained with: the digits' report
    (accuracy, F1, confusion matrix) or, for a --segment run, the segmentation report of its generated scenes
    (pixel accuracy, IoU); equal to the run's metrics_<split>.json."""
    if split not in ("valid", "test"):
        raise ValueError(f"mdlstm: expected split 'valid' or 'test', got {split!r}")
    model, config = load(run_dir, device=device)
    if is_segment_run(config):
        images, labels = segment_splits(SegmentTask(**config["data"]), names=(split,))[split]
        return score_segmentation(model, images, labels, split=split, device=device)
    x, y = read_splits(MDLSTMTask(**config["data"]))[split]
    return report_split(model, x, y, None, DIGIT_NAMES, split=split, out=None, device=device)


def describe(report: dict) -> str:
    """A report of :func:`evaluate_run` (or ``train(...)["test"]``) as a line and a table per class."""
    if "mean_iou" not in report:
        return describe_split(report, "images")
    lines = [f"{report['split']}: pixel accuracy {report['pixel_accuracy']:.2%}, mean IoU {report['mean_iou']:.4f} on "
             f"{report['images']:,} scenes ({report['pixels']:,} pixels; all-background baseline "
             f"{report['background_baseline_accuracy']:.2%}), cross-entropy {report['loss']:.4f} nats per pixel",
             f"{'class':<12}     IoU  precision  recall     pixels"]
    lines += [f"{c['class']:<12}  {c['iou']:.4f}     {c['precision']:.4f}  {c['recall']:.4f}  {c['pixels']:>9,}"
              for c in report["per_class"]]
    return "\n".join(lines)
