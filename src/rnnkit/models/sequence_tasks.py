r"""Sequence model for the generated memory tasks: features -> sequence encoder -> linear head.

    x (B, T, F) ──encoder (any of rnnkit.layers.ENCODERS: RNN kinds or "tcn")──> h (B, T, H)
      ──dropout──> readout "last": h at each sequence's last valid step (B, H) ──linear──> (B, O)
                   readout "all":  every step (B, T, H)                        ──linear──> (B, T, O)

Many-to-one ("last") is the adding problem (one sum per sequence); many-to-many ("all") is copy memory
(one class distribution per step) and the 1-2-3 pattern (the next value at every step). Bai, Kolter &
Koltun (2018) put the same single linear layer on top of every model they compare, RNN or TCN.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers import ENCODERS, make_encoder

READOUTS = ("last", "all")


@dataclass
class SequenceModelConfig:
    input_size: int  # F
    output_size: int  # O: 1 for a value, C for class scores
    model: str = "lstm"  # any of rnnkit.layers.ENCODERS
    hidden: int = 128  # RNN units, or TCN channels per level
    layers: int = 1  # RNN layers, or TCN residual blocks
    kernel_size: int | None = None  # TCN only (default 3)
    dropout: float = 0.0  # on the encoder's outputs before the head (and inside a TCN's blocks / between RNN layers)
    readout: str = "last"  # "last" (many-to-one) or "all" (many-to-many)

    def __post_init__(self):
        if self.model not in ENCODERS:
            raise ValueError(f"SequenceModelConfig: expected model in {list(ENCODERS)}, got {self.model!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"SequenceModelConfig: expected readout in {READOUTS}, got {self.readout!r}")
        for name in ("input_size", "output_size", "hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SequenceModelConfig: expected {name} >= 1, got {value!r}")
        if self.kernel_size is not None and self.model != "tcn":
            raise ValueError(f"SequenceModelConfig: kernel_size applies to the TCN only, got kernel_size="
                             f"{self.kernel_size} with model {self.model!r}")


class SequenceModel(nn.Module):
    """``preds, state = model(x, state=None, lengths=None)``, the Trainer's contract.

    Shape:
        x (B, T, F) float; lengths (B,) or None; preds (B, O) with readout "last", (B, T, O) with "all";
        state: the encoder's list of per-layer RNN states. A TCN has none: the model returns the empty
        state ``()`` (which the Trainer can detach and carry like any other) and takes ``()`` or None.

    Example::

        >>> model = SequenceModel(SequenceModelConfig(2, 1, model="gru", hidden=16))
        >>> preds, state = model(torch.randn(4, 600, 2))     # the adding problem
        >>> preds.shape
        torch.Size([4, 1])
    """

    def __init__(self, config: SequenceModelConfig):
        super().__init__()
        self.config = c = config
        extra = {"kernel_size": c.kernel_size or 3} if c.model == "tcn" else {}
        self.encoder = make_encoder(c.model, c.input_size, c.hidden, c.layers, dropout=c.dropout, **extra)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(self.encoder.output_size, c.output_size)

    def forward(self, x: Tensor, state=None, lengths=None):
        if isinstance(state, tuple) and not state:
            state = None  # the empty state of a TCN
        out, state = self.encoder(x, lengths, state)  # (B, T, H)
        if self.config.readout == "last":
            if lengths is None:
                out = out[:, -1]  # (B, H)
            else:
                last = torch.as_tensor(lengths, device=out.device).long() - 1  # checked by the encoder
                out = out[torch.arange(out.shape[0], device=out.device), last]  # (B, H)
        return self.head(self.drop(out)), (() if state is None else state)  # (B, O) or (B, T, O)

