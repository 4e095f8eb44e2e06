"""Pictures of what the memory networks do (matplotlib, Agg), written atomically as PNG.

``plot_ntm_trace``: one sequence through a Neural Turing Machine -- the input, the target and the output bits
over time, the write and read weightings over time (as Graves et al. 2014 show memory use on the copy task: the
write head walks through memory during the input, the read head walks the same locations during the output),
and the memory contents after the last step.

``plot_ponder``: Adaptive Computation Time's ponder steps N(t) per input against a difficulty measure (the
parity task's number of non-zero entries, Graves 2016), with the mean per difficulty.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..train.checkpoint import atomic_write_bytes  # noqa: E402


def _numpy(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().float() if hasattr(t, "detach") else t, dtype=float)


def _save(fig, path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_ntm_trace(inputs, targets, outputs, read_weights, write_weights, memory, path, *, title: str = "",
                   locations: int | None = None) -> Path:
    """One sequence of T steps as a PNG.

    Args:
        inputs (T, F), targets (T, O) (0 where nothing is asked), outputs (T, O) probabilities;
        read_weights (T, R, N), write_weights (T, W, N): the heads' weightings at every step;
        memory (N, M): the memory after the last step.
        locations: show only the first this many memory locations (default: all N).
    """
    x, y, p = _numpy(inputs), _numpy(targets), _numpy(outputs)
    rw, ww, mem = _numpy(read_weights), _numpy(write_weights), _numpy(memory)
    T = x.shape[0]
    if x.ndim != 2 or y.ndim != 2 or p.shape != y.shape or y.shape[0] != T:
        raise ValueError(f"plot_ntm_trace: expected inputs (T, F), targets and outputs (T, O) with the same T, got "
                         f"{x.shape}, {y.shape}, {p.shape}")
    if rw.ndim != 3 or ww.ndim != 3 or rw.shape[0] != T or ww.shape[0] != T or mem.ndim != 2 \
            or rw.shape[2] != mem.shape[0] or ww.shape[2] != mem.shape[0]:
        raise ValueError(f"plot_ntm_trace: expected read_weights (T, R, N), write_weights (T, W, N) and memory "
                         f"(N, M) with T = {T}, got {rw.shape}, {ww.shape}, {mem.shape}")
    locations = mem.shape[0] if locations is None else locations
    rows = [("input", x.T, "Greys"), ("target", y.T, "Greys"), ("output", p.T, "Greys")]
    rows += [(f"write head {k + 1}", ww[:, k, :locations].T, "viridis") for k in range(ww.shape[1])]
    rows += [(f"read head {k + 1}", rw[:, k, :locations].T, "viridis") for k in range(rw.shape[1])]
    heights = [1.0 if i < 3 else 3.0 for i in range(len(rows))]  # bits: one unit; a head's weightings: three
    fig = plt.figure(figsize=(max(6.0, 0.12 * T + 3.5), sum(heights) * 0.75 + 1.2))
    grid = fig.add_gridspec(len(rows), 2, height_ratios=heights, width_ratios=[max(T, 1), 0.4 * max(T, 1)],
                            hspace=0.35, wspace=0.15)
    for i, (name, image, cmap) in enumerate(rows):
        ax = fig.add_subplot(grid[i, 0])
        ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_ylabel(name if i < 3 else f"{name}\nlocation", rotation=0, ha="right", va="center")
        if i < 3:
            ax.set_yticks([])
        if i < len(rows) - 1:
            ax.set_xticks([])
        else:
            ax.set_xlabel("time step")
    ax = fig.add_subplot(grid[:, 1])
    ax.imshow(mem[:locations], cmap="coolwarm", aspect="auto", interpolation="nearest",
              vmin=-max(1e-9, float(np.abs(mem).max())), vmax=max(1e-9, float(np.abs(mem).max())))
    ax.set_title("memory after\nthe last step", fontsize=9)
    ax.set_xlabel("M")
    ax.set_ylabel("location")
    ax.yaxis.set_label_position("right")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_ponder(steps, difficulty, path, *, correct=None, xlabel: str = "non-zero entries", title: str = "") -> Path:
    """Ponder steps N(t) of each input (n,) against its difficulty (n,) as a PNG: one dot per input, the mean per
    difficulty as a line, and (with ``correct`` (n,) bool) the accuracy per difficulty on a second axis."""
    n, d = _numpy(steps).ravel(), _numpy(difficulty).ravel()
    if n.shape != d.shape or n.size == 0:
        raise ValueError(f"plot_ponder: expected steps and difficulty of the same shape (n,), n >= 1, got "
                         f"{_numpy(steps).shape} and {_numpy(difficulty).shape}")
    levels = np.unique(d)
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, n.size)
    ax.scatter(d, n + jitter, s=6, alpha=0.25, color="tab:blue", label="one input")
    ax.plot(levels, [n[d == v].mean() for v in levels], color="tab:blue", lw=2, label="mean ponder steps")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ponder steps N(t)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if correct is not None:
        c = _numpy(correct).ravel()
        if c.shape != n.shape:
            raise ValueError(f"plot_ponder: expected correct of shape {n.shape}, got {c.shape}")
        acc = ax.twinx()
        acc.plot(levels, [c[d == v].mean() for v in levels], color="tab:orange", lw=1.5, label="accuracy")
        acc.set_ylim(0, 1.05)
        acc.set_ylabel("accuracy")
        acc.legend(loc="center right")
    ax.legend(loc="center left")
    if title:
        ax.set_title(title)
    return _save(fig, path)
