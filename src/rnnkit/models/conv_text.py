r"""Lecture 003's 1D ConvNet text classifier, the baseline beside the recurrent classifier.

The slide (Chollet's IMDB model)::

    Embedding(max_features, 128) -> Conv1D(32, 7, relu) -> MaxPooling1D(5) -> Conv1D(32, 7, relu)
      -> GlobalMaxPooling1D() -> Dense(1)              # rmsprop, binary cross-entropy

Here, with lengths (B,) so that padding never changes the answer:

    ids (B, T) -> embedding (B, T, E) -> (B, E, T), zeroed at t >= l_b (whatever ids the padding holds)
      -> conv1 (k, "same" zero padding), ReLU, zeroed at t >= l_b          (B, C, T)
      -> max pool (p, stride p; the tail padded with zeros)                (B, C, ceil(T/p))
         zeroed at t >= ceil(l_b / p)
      -> conv2 (k, "same"), ReLU -> global max over t < ceil(l_b / p)      (B, C)
      -> dropout -> dense: logits (B, 1) for two classes, (B, num_classes) otherwise

One change from the slide: the convolutions pad ("same") instead of Keras's default "valid", because
the slide's receptive field (7, then pool 5, then 7: 41 tokens) is longer than most sentences of SST
or RT polarity; zeroing after every layer makes a padded sequence give exactly what it gives alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_probability
from ..layers.lengths import check_lengths


@dataclass
class ConvTextConfig:
    num_classes: int
    vocab_size: int
    embedding: int = 128
    channels: int = 32
    kernel_size: int = 7
    pool: int = 5
    dropout: float = 0.0
    pad_id: int = 0

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"ConvTextConfig: expected num_classes >= 2, got {self.num_classes}")
        for name in ("vocab_size", "embedding", "channels", "kernel_size", "pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"ConvTextConfig: expected {name} >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ConvTextConfig: expected an odd kernel_size (centred 'same' padding), "
                             f"got {self.kernel_size}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"ConvTextConfig: expected pad_id in [0, {self.vocab_size}), got {self.pad_id}")
        check_probability("ConvTextConfig", "dropout", self.dropout)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2


class ConvTextClassifier(nn.Module):
    """``logits, state = model(ids, state=None, lengths=None)``; state is always ``()``: no recurrence.

    Shape: ids (B, T) integer; lengths (B,) in [1, T] or None; logits (B, 1) binary or (B, num_classes).

    Example::

        >>> model = ConvTextClassifier(ConvTextConfig(num_classes=2, vocab_size=10_000))
        >>> logits, _ = model(torch.randint(1, 10_000, (4, 50)), lengths=torch.tensor([50, 12, 3, 1]))
        >>> logits.shape
        torch.Size([4, 1])
    """

    def __init__(self, config: ConvTextConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id)
        self.conv1 = nn.Conv1d(c.embedding, c.channels, c.kernel_size, padding=c.kernel_size // 2)
        self.conv2 = nn.Conv1d(c.channels, c.channels, c.kernel_size, padding=c.kernel_size // 2)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.channels, 1 if c.binary else c.num_classes)

    def forward(self, ids: Tensor, state=None, lengths=None):
        c = self.config
        if not (state is None or (isinstance(state, tuple) and not state)):
            raise ValueError(f"ConvTextClassifier: a ConvNet has no recurrent state; expected state None or (), "
                             f"got {type(state).__name__}")
        if ids.is_floating_point() or ids.dim() != 2:
            raise ValueError(f"ConvTextClassifier: expected token ids (B, T) of an integer dtype, got "
                             f"{ids.dtype} {tuple(ids.shape)}")
        if int(ids.min()) < 0 or int(ids.max()) >= c.vocab_size:
            raise ValueError(f"ConvTextClassifier: expected ids in [0, {c.vocab_size}), got values in "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        B, T = ids.shape
        lengths = check_lengths("ConvTextClassifier", lengths, B, T)
        lengths = torch.full((B,), T) if lengths is None else lengths
        lengths = lengths.to(ids.device)
        x = self.embed(ids).transpose(1, 2) * _valid(lengths, T)  # (B, E, T), zero past each length
        x = F.relu(self.conv1(x)) * _valid(lengths, T)  # (B, C, T)
        x = F.pad(x, (0, -T % c.pool))  # the tail to a multiple of the pool size, with zeros
        x = F.max_pool1d(x, c.pool)  # (B, C, ceil(T / p))
        pooled = torch.div(lengths + c.pool - 1, c.pool, rounding_mode="floor")  # valid pooled steps
        x = x * _valid(pooled, x.shape[2])
        x = F.relu(self.conv2(x))  # (B, C, T')
        x = x.masked_fill(_valid(pooled, x.shape[2]) == 0, float("-inf")).amax(dim=2)  # (B, C)
        return self.head(self.drop(x)), ()  # no state: () is a state of no tensors


def _valid(lengths: Tensor, steps: int) -> Tensor:
    """(B, 1, steps) float mask, 1 where t < length."""
    return (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()
