"""The attention heatmap of one translated sentence (lecture 004: "we can visualize the information used
for a prediction"): source tokens across, target tokens down, one cell per weight α_ij (matplotlib, Agg)."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..train.checkpoint import atomic_write_bytes  # noqa: E402


def plot_attention(weights, source_tokens: list[str], target_tokens: list[str], path, *, title: str = "") -> Path:
    """Write weights (T, S) -- row i: the target token i's attention over the S source tokens -- as a PNG."""
    import numpy as np

    w = np.asarray(weights.detach().cpu().float() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 2 or w.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"plot_attention: expected weights (T, S) = ({len(target_tokens)}, {len(source_tokens)}) "
                         f"for {len(target_tokens)} target and {len(source_tokens)} source tokens, got {w.shape}")
    S, T = len(source_tokens), len(target_tokens)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * S + 1.5), max(3.0, 0.4 * T + 1.2)))
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(w.max())), aspect="auto")
    ax.set_xticks(range(S), labels=source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(T), labels=target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
