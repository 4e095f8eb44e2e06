r"""Many-to-one sequence classifier (lectures 000, 003, 004): read a whole sequence, emit one label.

    ids (B, T) ──embedding──> (B, T, E) ─┐
    x (B, T, F) dense features ──────────┴─> encoder (any rnnkit.layers.ENCODERS kind, uni- or
      bidirectional, lengths respected) -> outputs (B, T, D*H) ──pooling──> (B, D*H) ──dropout, dense──>
      logits (B, 1) for two classes (sigmoid, binary cross-entropy) or (B, C) (softmax, cross-entropy)

Lecture 000 classifies MNIST as 28 rows of 28 pixels from the RNN's final state,
``logits = tf.layers.dense(states, n_outputs)`` with sparse softmax cross-entropy; lecture 003's
sentiment model is ``Embedding(max_words, 32) -> LSTM(32) -> Dense(1, activation='sigmoid')`` with
binary cross-entropy. Both are this module (``pooling="last"``).

Pooling over the valid steps :math:`t < \ell_b` of each sequence (padding never counts):

* ``last``: the output at the last valid step, :math:`o_{b, \ell_b - 1}` (the final state's h). For a
  bidirectional encoder the backward direction reads the sequence reversed, so its final output sits at
  :math:`t = 0`: ``last`` is :math:`[\overrightarrow{o}_{b,\ell_b-1};\ \overleftarrow{o}_{b,0}]`.
* ``mean``: :math:`\frac{1}{\ell_b}\sum_{t<\ell_b} o_{bt}`.
* ``max``: :math:`\max_{t<\ell_b} o_{bt}` per feature.
* ``attention``: additive self-attention (Bahdanau et al. 2015's score with a learned query, as in
  Yang et al. 2016): :math:`e_{bt} = v^\top \tanh(W o_{bt} + b)`, :math:`\alpha_{bt} =
  \operatorname{softmax}_{t<\ell_b}(e_{bt})`, :math:`c_b = \sum_{t<\ell_b} \alpha_{bt}\, o_{bt}`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_probability
from ..layers import ENCODERS, make_encoder
from ..layers.lengths import check_lengths

POOLINGS = ("last", "mean", "max", "attention")


@dataclass
class ClassifierConfig:
    """num_classes 2 is binary (one logit); vocab_size > 0 embeds token ids, vocab_size 0 reads
    input_size dense features per step."""

    num_classes: int
    vocab_size: int = 0  # > 0: integer ids through an embedding of size `embedding`; id pad_id is padding
    input_size: int = 0  # features per step when vocab_size == 0 (28 for row MNIST, 1 for pixel MNIST)
    embedding: int = 128
    pad_id: int = 0
    model: str = "lstm"  # any of rnnkit.layers.ENCODERS
    hidden: int = 128  # units per direction (RNN) or channels (TCN)
    layers: int = 1
    bidirectional: bool = False
    pooling: str = "last"
    dropout: float = 0.0  # between recurrent layers and before the dense layer
    recurrent_dropout: float = 0.0
    kernel_size: int = 3  # TCN only

    def __post_init__(self):
        def bad(name, want):
            raise ValueError(f"ClassifierConfig: expected {name} {want}, got {getattr(self, name)!r}")

        if self.num_classes < 2:
            bad("num_classes", ">= 2")
        if self.model not in ENCODERS:
            bad("model", f"in {sorted(ENCODERS)}")
        if self.pooling not in POOLINGS:
            bad("pooling", f"in {POOLINGS}")
        if self.vocab_size < 0:
            bad("vocab_size", ">= 0 (0: dense inputs)")
        if self.vocab_size == 0 and self.input_size < 1:
            bad("input_size", ">= 1 for dense inputs (vocab_size 0)")
        if self.vocab_size > 0 and not 0 <= self.pad_id < self.vocab_size:
            bad("pad_id", f"in [0, {self.vocab_size})")
        for name in ("hidden", "layers", "embedding", "kernel_size"):
            if getattr(self, name) < 1:
                bad(name, ">= 1")
        check_probability("ClassifierConfig", "dropout", self.dropout)
        check_probability("ClassifierConfig", "recurrent_dropout", self.recurrent_dropout)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2


class AttentionPooling(nn.Module):
    r"""Additive self-attention over time: :math:`e_t = v^\top \tanh(W o_t + b)`, softmax over valid steps.

    Shape: outputs (B, T, F), mask (B, T) bool (True = valid) -> context (B, F), weights (B, T) (0 at padding).
    """

    def __init__(self, size: int, attention_size: int | None = None):
        super().__init__()
        self.proj = nn.Linear(size, attention_size or size)  # W, b
        self.score = nn.Linear(attention_size or size, 1, bias=False)  # v

    def forward(self, outputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.score(torch.tanh(self.proj(outputs))).squeeze(-1)  # (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, T)
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1), weights  # (B, F), (B, T)


class SequenceClassifier(nn.Module):
    """``logits, state = model(x, state=None, lengths=None)``; see the module docstring for the equations.

    Shape:
        x: (B, T) integer ids (vocab_size > 0) or (B, T, input_size) floats; lengths: (B,) in [1, T] or
        None (every sequence fills T); state: the encoder's initial state or None. Returns logits (B, 1)
        when binary, else (B, num_classes), and the encoder's final state (``()`` for a TCN).

    Example::

        >>> model = SequenceClassifier(ClassifierConfig(num_classes=10, input_size=28, hidden=150))
        >>> logits, _ = model(torch.rand(4, 28, 28))   # MNIST as 28 rows of 28 (lecture 000)
        >>> logits.shape
        torch.Size([4, 10])
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id) if c.vocab_size else None
        self.encoder = make_encoder(c.model, c.embedding if c.vocab_size else c.input_size, c.hidden, c.layers,
                                    bidirectional=c.bidirectional, dropout=c.dropout,
                                    recurrent_dropout=c.recurrent_dropout,
                                    **({"kernel_size": c.kernel_size} if c.model == "tcn" else {}))
        size = self.encoder.output_size
        self.attention = AttentionPooling(size) if c.pooling == "attention" else None
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(size, 1 if c.binary else c.num_classes)

    def inputs(self, x: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, E) embeddings, or dense (B, T, F) checked and passed through."""
        c = self.config
        if self.embed is not None:
            if x.is_floating_point() or x.dim() != 2:
                raise ValueError(f"SequenceClassifier: expected token ids (B, T) of an integer dtype, got "
                                 f"{x.dtype} {tuple(x.shape)}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= c.vocab_size):
                raise ValueError(f"SequenceClassifier: expected ids in [0, {c.vocab_size}), got values in "
                                 f"[{int(x.min())}, {int(x.max())}]")
            return self.embed(x)
        if not x.is_floating_point() or x.dim() != 3 or x.shape[2] != c.input_size:
            raise ValueError(f"SequenceClassifier: expected dense input (B, T, {c.input_size}) of a floating "
                             f"dtype, got {x.dtype} {tuple(x.shape)}")
        return x

    def features(self, x: Tensor, state=None, lengths=None) -> tuple[Tensor, object]:
        """The pooled sequence representation (B, D*H) and the encoder's final state."""
        B, T = x.shape[:2]
        lengths = check_lengths("SequenceClassifier", lengths, B, T)  # None when every sequence fills T
        outputs, state = self.encoder(self.inputs(x), lengths=lengths, state=state)  # (B, T, D*H)
        return self.pool(outputs, lengths), state

    def forward(self, x: Tensor, state=None, lengths=None):
        pooled, state = self.features(x, state, lengths)
        # () for a stateless encoder (TCN): a state of no tensors, which the Trainer can detach and carry
        return self.head(self.drop(pooled)), (() if state is None else state)  # (B, 1) or (B, C)

    def pool(self, outputs: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, F) encoder outputs -> (B, F), over each sequence's valid steps only."""
        B, T, size = outputs.shape
        kind = self.config.pooling
        last = _last_steps(lengths, B, T, outputs.device)  # (B,)
        if kind == "last":
            rows = torch.arange(B, device=outputs.device)
            final = outputs[rows, last]  # (B, F): each sequence's last valid step
            if self.config.bidirectional:  # the backward direction ends at t = 0
                half = size // 2
                final = torch.cat([final[:, :half], outputs[:, 0, half:]], dim=1)
            return final
        mask = torch.arange(T, device=outputs.device)[None, :] <= last[:, None]  # (B, T) valid steps
        if kind == "mean":
            summed = outputs.masked_fill(~mask[..., None], 0.0).sum(dim=1)  # (B, F)
            return summed / (last + 1).to(outputs.dtype)[:, None]
        if kind == "max":
            return outputs.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        context, _ = self.attention(outputs, mask)
        return context

    def attention_weights(self, x: Tensor, lengths=None) -> Tensor:
        """(B, T) attention weights over the steps (pooling "attention" only), 0 at padding."""
        if self.attention is None:
            raise ValueError(f"SequenceClassifier: attention_weights needs pooling='attention', "
                             f"got {self.config.pooling!r}")
        B, T = x.shape[:2]
        lengths = check_lengths("SequenceClassifier", lengths, B, T)
        outputs, _ = self.encoder(self.inputs(x), lengths=lengths)
        last = _last_steps(lengths, B, T, outputs.device)
        return self.attention(outputs, torch.arange(T, device=outputs.device)[None, :] <= last[:, None])[1]


def _last_steps(lengths: Tensor | None, B: int, T: int, device) -> Tensor:
    """(B,) index of each sequence's last valid step (T - 1 for all when lengths is None)."""
    if lengths is None:
        return torch.full((B,), T - 1, dtype=torch.long, device=device)
    return lengths.to(device) - 1


def probabilities(logits: Tensor) -> Tensor:
    """(B, 1) binary logits -> (B, 2) [p(0), p(1)] by the sigmoid; (B, C) -> softmax (B, C)."""
    if logits.dim() != 2:
        raise ValueError(f"probabilities: expected logits (B, 1) or (B, C), got {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return F.softmax(logits, dim=1)


def predictions(logits: Tensor) -> Tensor:
    """(B,) class ids: p > 0.5 for binary logits (B, 1), else the argmax."""
    if logits.dim() == 2 and logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def class_scores(logits: Tensor) -> Tensor:
    """(B, C) scores whose argmax / top-k ranks the classes: the logits, or [0, x] for a binary logit x
    (sigmoid(x) > 1/2 exactly when x > 0), so top-k accuracy works for both heads."""
    if logits.shape[1] == 1:
        return torch.cat([torch.zeros_like(logits), logits], dim=1)
    return logits

