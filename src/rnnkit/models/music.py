r"""Polyphonic music model: the next frame of a piano roll, 88 independent Bernoullis (Bai et al. 2018, 4.5).

    frames x (B, T, 88) of 0 / 1 ──encoder (make_encoder: lstm, gru, tcn, any ENCODERS kind)──> (B, T, H)
      ──dropout, dense──> logits (B, T, 88);  p(key k sounds at t + 1 | frames <= t) = sigmoid(logit_tk)

Frame-level negative log-likelihood (the metric of Boulanger-Lewandowski et al. 2012 and of Bai et al.'s
table, in nats): for targets :math:`y_{t+1} \in \{0, 1\}^{88}` and probabilities :math:`p_t`,

.. math::
    \mathrm{NLL} = \frac{1}{\sum_b \ell_b} \sum_b \sum_{t < \ell_b} \sum_{k=1}^{88}
        -\big[y_{t+1,k} \log p_{tk} + (1 - y_{t+1,k}) \log (1 - p_{tk})\big]

summed over the keys, averaged over every frame of the set (Bai et al.'s code sums each sequence's trace and
divides by the total frame count; here the Trainer weighs each batch's mean by its valid frames, the same).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from .._modes import eval_mode
from ..layers import ENCODERS, make_encoder
from ..layers.lengths import check_lengths

KEYS = 88


@dataclass
class MusicModelConfig:
    model: str = "lstm"  # any rnnkit.layers.ENCODERS kind; Bai et al. compare lstm, gru and tcn
    hidden: int = 150  # units (RNN) or channels (TCN)
    layers: int = 1  # recurrent layers or TCN residual blocks
    dropout: float = 0.0
    kernel_size: int = 3  # TCN only
    keys: int = KEYS

    def __post_init__(self):
        if self.model not in ENCODERS:
            raise ValueError(f"MusicModelConfig: expected model in {', '.join(ENCODERS)}, got {self.model!r}")
        for name in ("hidden", "layers", "kernel_size", "keys"):
            check_positive_int("MusicModelConfig", name, getattr(self, name))
        check_probability("MusicModelConfig", "dropout", self.dropout)


class MusicModel(nn.Module):
    """``logits, state = model(frames, state=None, lengths=None)``: frames (B, T, 88) -> logits (B, T, 88) of
    the next frame; state is the RNN's final state (``()`` for a TCN, which has none)."""

    def __init__(self, config: MusicModelConfig):
        super().__init__()
        self.config = c = config
        extra = {"kernel_size": c.kernel_size} if c.model == "tcn" else {}
        self.encoder = make_encoder(c.model, c.keys, c.hidden, c.layers, dropout=c.dropout, **extra)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(self.encoder.output_size, c.keys)

    def forward(self, x: Tensor, state=None, lengths=None):
        c = self.config
        if not torch.is_tensor(x) or x.dim() != 3 or x.shape[2] != c.keys or not x.is_floating_point():
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"MusicModel: expected frames (B, T, {c.keys}) floats, got {got}")
        B, T, _ = x.shape
        lengths = check_lengths("MusicModel", lengths, B, T)
        if c.model == "tcn" or state == ():
            state = None
        outputs, state = self.encoder(x, lengths=lengths, state=state)  # (B, T, H)
        return self.head(self.drop(outputs)), (() if state is None else state)  # (B, T, 88)

    @torch.no_grad()
    def sample(self, prime: Tensor, length: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Prime (T0, 88) of 0 / 1, then ``length`` new frames, each drawn key by key from the model's
        Bernoullis given everything before it: returns (T0 + length, 88)."""
        c = self.config
        if prime.dim() != 2 or prime.shape[1] != c.keys or prime.shape[0] < 1:
            raise ValueError(f"MusicModel.sample: expected a prime (T0 >= 1, {c.keys}), got {tuple(prime.shape)}")
        check_positive_int("MusicModel.sample", "length", length)
        device = self.head.weight.device
        frames = [f for f in prime.to(device, self.head.weight.dtype)]
        with eval_mode(self):
            if c.model == "tcn":  # stateless: read the whole piece so far for every new frame
                for _ in range(length):
                    logits, _ = self(torch.stack(frames)[None])
                    frames.append(torch.bernoulli(torch.sigmoid(logits[0, -1]), generator=generator))
            else:
                logits, state = self(torch.stack(frames)[None])
                for _ in range(length):
                    frames.append(torch.bernoulli(torch.sigmoid(logits[0, -1]), generator=generator))
                    logits, state = self(frames[-1][None, None], state)
        return torch.stack(frames).cpu()


def frame_nll(logits: Tensor, targets: Tensor, lengths: Tensor | None = None) -> Tensor:
    """The frame-level NLL of the module docstring: logits and targets (B, T, 88), lengths (B,) or None."""
    if logits.shape != targets.shape:
        raise ValueError(f"frame_nll: expected logits and targets of one shape, got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    per_frame = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none").sum(-1)  # (B, T)
    if lengths is None:
        return per_frame.mean()
    B, T = per_frame.shape
    valid = torch.arange(T, device=logits.device)[None, :] < lengths.to(logits.device)[:, None]  # (B, T)
    return per_frame.masked_fill(~valid, 0.0).sum() / valid.sum()
