"""PNG plots for the run directory (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .checkpoint import atomic_write  # noqa: E402


def _save(fig, path: Path) -> None:
    """Atomic (checkpoint.atomic_write): a reader never sees half a PNG, and a kill mid-save leaves a
    temporary file that the run directory's readers recognise and remove_stale_temp_files deletes."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_curves(history: list[dict], path) -> None:
    """Training loss per step and validation loss per evaluation, against the optimizer step."""
    train = [(r["step"], r["loss"]) for r in history if r.get("split", "train") == "train" and "loss" in r]
    valid = [(r["step"], r["loss"]) for r in history if r.get("split") == "valid"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), lw=0.8, alpha=0.8, label="train")
    if valid:
        ax.plot(*zip(*valid), "o-", lw=1.5, label="valid")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_gradient_flow(norms: dict[str, list[float]], path, *, title: str = "") -> None:
    """||dL/dh_t|| against t for several models (log scale): the vanishing gradient of lecture 002."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in norms.items():
        ax.semilogy(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title or "gradient reaching each time step from a loss at the last step")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    _save(fig, path)
