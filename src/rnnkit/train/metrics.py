r"""Classification metrics: accuracy, top-k accuracy (lecture 000's ``in_top_k``), precision, recall and
F1 per class and macro-averaged, and the confusion matrix, printed and drawn as a PNG.

Legend: N examples, C classes. ``cm[i, j]`` counts examples of true class i predicted as class j, so
row i sums to the support of class i and column j to the predictions of class j:

.. math::
    \mathrm{precision}_c = \frac{cm_{cc}}{\sum_i cm_{ic}}, \qquad
    \mathrm{recall}_c = \frac{cm_{cc}}{\sum_j cm_{cj}}, \qquad
    F_{1,c} = \frac{2\,\mathrm{precision}_c\,\mathrm{recall}_c}{\mathrm{precision}_c + \mathrm{recall}_c}

A ratio whose denominator is 0 (a class never predicted, or absent from the labels) is 0, as
scikit-learn's ``zero_division=0``. Macro averages weigh every class equally.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import atomic_write


def _check_labels(owner: str, name: str, ids, n: int | None = None) -> Tensor:
    if not isinstance(ids, Tensor):
        ids = torch.as_tensor(ids)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{owner}: expected {name} as integer class ids, got dtype {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"{owner}: expected {name} of shape (N,), got {tuple(ids.shape)}")
    if n is not None and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        i = int(((ids < 0) | (ids >= n)).nonzero()[0])
        raise ValueError(f"{owner}: expected {name} in [0, {n}), got {name}[{i}] = {int(ids[i])}")
    return ids.long()


def accuracy(predictions, labels) -> float:
    """The fraction of predicted class ids equal to the labels; both (N,)."""
    predictions = _check_labels("accuracy", "predictions", predictions)
    labels = _check_labels("accuracy", "labels", labels)
    if predictions.shape != labels.shape or labels.numel() == 0:
        raise ValueError(f"accuracy: expected predictions and labels of the same shape (N,) with N >= 1, "
                         f"got {tuple(predictions.shape)} and {tuple(labels.shape)}")
    return float((predictions == labels.to(predictions.device)).float().mean())


def in_top_k(logits: Tensor, labels, k: int) -> Tensor:
    """``tf.nn.in_top_k(logits, y, k)`` (lecture 000): (N,) bool, True where the label's score is among the
    k largest of its row. As in TensorFlow, classes tied with the label's score do not push it out (the label
    is in the top k when fewer than k classes score strictly higher), and a non-finite label score is False.

    Shape: logits (N, C) scores; labels (N,) ids in [0, C).
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() != 2:
        raise ValueError(f"in_top_k: expected logits as a floating (N, C) tensor, got "
                         f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}")
    N, C = logits.shape
    labels = _check_labels("in_top_k", "labels", labels, C).to(logits.device)
    if labels.shape[0] != N:
        raise ValueError(f"in_top_k: expected labels of shape ({N},) like logits {(N, C)}, got {tuple(labels.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"in_top_k: expected k to be an int >= 1, got {k!r}")
    target = logits.gather(1, labels[:, None])  # (N, 1)
    higher = (logits > target).sum(dim=1)  # (N,) classes scoring strictly more than the label
    return (higher < k) & torch.isfinite(target[:, 0])


def top_k_accuracy(logits: Tensor, labels, k: int = 1) -> float:
    """Mean of :func:`in_top_k`: lecture 000's ``tf.reduce_mean(tf.cast(in_top_k(logits, y, k), tf.float32))``."""
    return float(in_top_k(logits, labels, k).float().mean())


def confusion_matrix(labels, predictions, num_classes: int) -> Tensor:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    labels = _check_labels("confusion_matrix", "labels", labels, num_classes)
    predictions = _check_labels("confusion_matrix", "predictions", predictions, num_classes)
    if labels.shape != predictions.shape:
        raise ValueError(f"confusion_matrix: expected labels and predictions of the same shape, got "
                         f"{tuple(labels.shape)} and {tuple(predictions.shape)}")
    flat = labels.cpu() * num_classes + predictions.cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def classification_report(cm: Tensor, class_names: list[str] | None = None) -> dict:
    """Accuracy, per-class precision/recall/F1/support and their macro averages from a confusion matrix.

    Returns ``{"accuracy", "macro_precision", "macro_recall", "macro_f1", "examples",
    "per_class": [{"class", "precision", "recall", "f1", "support"}, ...], "confusion_matrix": [[...]]}``
    (plain numbers: JSON-able).
    """
    if not isinstance(cm, Tensor) or cm.dim() != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"classification_report: expected a square (C, C) confusion matrix, got "
                         f"{tuple(cm.shape) if isinstance(cm, Tensor) else type(cm).__name__}")
    C = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(c) for c in range(C)]
    if len(names) != C:
        raise ValueError(f"classification_report: expected {C} class names, got {len(names)}")
    cm = cm.double()
    total = cm.sum()
    if total == 0:
        raise ValueError("classification_report: the confusion matrix is empty (no examples)")
    tp, predicted, support = cm.diagonal(), cm.sum(dim=0), cm.sum(dim=1)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "accuracy": float(tp.sum() / total),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "examples": int(total),
        "per_class": [{"class": names[c], "precision": float(precision[c]), "recall": float(recall[c]),
                       "f1": float(f1[c]), "support": int(support[c])} for c in range(C)],
        "confusion_matrix": cm.long().tolist(),
    }


def format_report(report: dict) -> str:
    """The report as a text table (per class, then macro average and accuracy)."""
    width = max(12, *(len(r["class"]) for r in report["per_class"]))
    lines = [f"{'class':<{width}}  precision  recall      f1  support"]
    for r in report["per_class"]:
        lines.append(f"{r['class']:<{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  "
                     f"{r['support']:7d}")
    lines.append(f"{'macro avg':<{width}}  {report['macro_precision']:9.4f}  {report['macro_recall']:6.4f}  "
                 f"{report['macro_f1']:6.4f}  {report['examples']:7d}")
    lines.append(f"accuracy {report['accuracy']:.4f} ({round(report['accuracy'] * report['examples'])} of "
                 f"{report['examples']})")
    return "\n".join(lines)


def format_confusion(cm, class_names: list[str]) -> str:
    """The confusion matrix as text: one row per true class, one column per predicted class."""
    rows = cm.tolist() if isinstance(cm, Tensor) else cm
    width = max(6, *(len(n) for n in class_names), *(len(str(v)) for row in rows for v in row))
    corner = "true/pred"
    width = max(width, len(corner))
    lines = [f"{corner:<{width}}" + "".join(f" {n:>{width}}" for n in class_names)]
    for name, row in zip(class_names, rows):
        lines.append(f"{name:<{width}}" + "".join(f" {v:>{width}}" for v in row))
    return "\n".join(lines)


def plot_confusion(cm, class_names: list[str], path, *, title: str = "") -> Path:
    """The confusion matrix as a PNG (matplotlib, Agg): counts in the cells, shaded by row-normalised recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = torch.as_tensor(cm.tolist() if isinstance(cm, Tensor) else cm, dtype=torch.float64)
    C = counts.shape[0]
    shade = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)  # each true class's share per prediction
    size = max(3.5, 0.6 * C + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shade.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(C), class_names, rotation=45 if C > 4 else 0, ha="right" if C > 4 else "center")
    ax.set_yticks(range(C), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(C):
        for j in range(C):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8 if C > 8 else 10,
                    color="white" if shade[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path
