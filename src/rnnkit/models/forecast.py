r"""Forecasters of lectures 003 and 000: a window of observations in, the target's future value out.

Lecture 003 (Jena temperature) tries, in this order::

    dense    Flatten -> Dense(32, relu) -> Dense(1)                         on the (T, F) window
    gru      GRU(32) -> Dense(1)                                           many-to-one
    stacked  GRU(32, dropout=0.1, recurrent_dropout=0.5) x 2 -> Dense(1)   --layers 2 --input-dropout 0.1 ...
    bidir    Bidirectional(GRU(32)) -> Dense(1)                            --bidirectional
    cnn      Conv1D(32, 5, relu) -> MaxPool(3) -> Conv1D(32, 5, relu) -> GlobalMaxPool -> Dense(1)
    cnn-gru  Conv1D(32, 5, relu) -> MaxPool(3) -> Conv1D(32, 5, relu) -> GRU(32) -> Dense(1)

Lecture 000 trains a sequence-to-sequence model instead: at every step t the RNN's output is projected
to one value (``OutputProjectionWrapper``) that predicts the target one step later, so the loss covers
all T steps and the last step's prediction is the forecast (``seq2seq=True``).

Every model maps ``x (B, T, F) -> (preds, ())`` with preds (B,) (many-to-one) or (B, T) (seq2seq),
the Trainer's contract; the state is empty, since every window starts afresh. ``residual=True`` predicts
the *change* from the last observed target value (:math:`\hat y = x_{T, k} + f(x)`, k the target column),
what forecasters do when persistence is a strong baseline; a model that outputs 0 is then exactly the
persistence forecast.

Legend: B batch, T window length (lookback // step), F features, H hidden units, C conv channels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from ..layers import ENCODERS, KINDS, make_encoder

HEADS = ("dense", "cnn")  # models that are not "an encoder + a linear head"
CNN_PREFIX = "cnn-"  # "cnn-gru", "cnn-lstm", ...: the conv stack, then that recurrent kind
MODELS = (*ENCODERS, *HEADS, *(CNN_PREFIX + k for k in KINDS))


@dataclass
class ForecastConfig:
    """Everything needed to rebuild a forecaster (saved in the run's config.json).

    ``model``: an encoder kind of :func:`rnnkit.layers.make_encoder` (``gru``, ``lstm``, ``rnn``, ``tcn``, ...),
    ``dense``, ``cnn``, or ``cnn-KIND`` (e.g. ``cnn-gru``).
    """

    input_size: int  # F
    window: int  # T
    model: str = "gru"
    hidden: int = 32  # recurrent units per direction, TCN channels per level
    layers: int = 1  # recurrent layers, TCN residual blocks
    bidirectional: bool = False
    dropout: float = 0.0  # between recurrent layers (torch's dropout); TCN dropout
    input_dropout: float = 0.0  # Keras's dropout: on every recurrent layer's inputs, one mask per sequence
    recurrent_dropout: float = 0.0  # Keras's recurrent_dropout: on h(t-1), one mask per sequence
    kernel_size: int = 5  # conv kernel (cnn, cnn-KIND, tcn)
    channels: int = 32  # conv channels (cnn, cnn-KIND)
    pool: int = 3  # max-pooling between the two convolutions (cnn, cnn-KIND)
    dense: int = 32  # hidden units of the dense model
    seq2seq: bool = False  # lecture 000: predict the next value at every step
    residual: bool = False  # predict the change from the last observed target value
    target_index: int = 0  # the target's column in the inputs (for residual)

    def __post_init__(self):
        owner = "ForecastConfig"
        if self.model not in MODELS:
            raise ValueError(f"{owner}: expected model in {', '.join(MODELS)}, got {self.model!r}")
        for name in ("input_size", "window", "hidden", "layers", "kernel_size", "channels", "pool", "dense"):
            check_positive_int(owner, name, getattr(self, name))
        for name in ("dropout", "input_dropout", "recurrent_dropout"):
            check_probability(owner, name, getattr(self, name))
        if not 0 <= self.target_index < self.input_size:
            raise ValueError(f"{owner}: expected target_index in [0, {self.input_size}), got {self.target_index}")
        recurrent = self.model in KINDS or self.model.startswith(CNN_PREFIX)
        if not recurrent and self.model != "tcn":
            unused = [n for n in ("bidirectional", "dropout", "input_dropout", "recurrent_dropout", "seq2seq")
                      if getattr(self, n)]
            if unused:
                raise ValueError(f"{owner}: model {self.model!r} has no recurrent layers; {', '.join(unused)} "
                                 "apply to recurrent models only")
        if self.model == "tcn" and (self.bidirectional or self.input_dropout or self.recurrent_dropout):
            raise ValueError(f"{owner}: a TCN is causal and has no recurrence; expected no bidirectional, "
                             "input_dropout or recurrent_dropout")
        if self.dropout and self.layers < 2 and self.model != "tcn":
            raise ValueError(f"{owner}: dropout acts between recurrent layers; expected layers >= 2, got "
                             f"{self.layers} (use input_dropout or recurrent_dropout for one layer)")
        if self.seq2seq and (self.bidirectional or self.model.startswith(CNN_PREFIX)):
            raise ValueError(f"{owner}: seq2seq predicts from each step's past only; expected a unidirectional "
                             f"encoder without the conv stack, got model {self.model!r}, "
                             f"bidirectional={self.bidirectional}")


def _last_step(outputs: Tensor, hidden: int, bidirectional: bool) -> Tensor:
    """The summary of a window: the forward direction's last output and, bidirectional, the backward
    direction's output at step 0 (the one that has read the whole window). (B, T, D*H) -> (B, D*H)."""
    if not bidirectional:
        return outputs[:, -1]
    return torch.cat([outputs[:, -1, :hidden], outputs[:, 0, hidden:]], dim=-1)


def _encoder(c: ForecastConfig, kind: str, input_size: int) -> nn.Module:
    kwargs = {"input_dropout": c.input_dropout} if c.input_dropout else {}
    if kind == "tcn":
        kwargs["kernel_size"] = c.kernel_size
    return make_encoder(kind, input_size, c.hidden, c.layers, bidirectional=c.bidirectional, dropout=c.dropout,
                        recurrent_dropout=c.recurrent_dropout, **kwargs)


def conv_stack(input_size: int, channels: int, kernel_size: int, pool: int) -> nn.Sequential:
    """Lecture 003's ``Conv1D(C, k, relu) -> MaxPooling1D(pool) -> Conv1D(C, k, relu)``, valid padding.
    (B, C_in, T) -> (B, C, T'), T' = (T - k + 1) // pool - k + 1."""
    return nn.Sequential(nn.Conv1d(input_size, channels, kernel_size), nn.ReLU(), nn.MaxPool1d(pool),
                         nn.Conv1d(channels, channels, kernel_size), nn.ReLU())


def conv_length(window: int, kernel_size: int, pool: int) -> int:
    return (window - kernel_size + 1) // pool - kernel_size + 1


class Forecaster(nn.Module):
    r"""One forecaster, built from a :class:`ForecastConfig`: ``preds, () = model(x)``.

    Bodies (``model``):

    - encoder kinds: :math:`h_{1..T} = \mathrm{RNN}(x_{1..T})`, :math:`\hat y = W h_T + b`
      (bidirectional: :math:`[\overrightarrow{h}_T; \overleftarrow{h}_1]`); seq2seq:
      :math:`\hat y_t = W h_t + b` for every t (lecture 000's OutputProjectionWrapper).
    - ``dense``: :math:`\hat y = W_2\,\mathrm{relu}(W_1 \operatorname{vec}(x) + b_1) + b_2`.
    - ``cnn``: conv stack, max over time, linear.
    - ``cnn-KIND``: conv stack (shortens T by the pooling factor), then the RNN, then linear.

    Shape:
        x (B, T, F) float32 -> preds (B,) or, seq2seq, (B, T).
    """

    def __init__(self, config: ForecastConfig):
        super().__init__()
        self.config = c = config
        if c.model == "dense":
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(c.window * c.input_size, c.dense), nn.ReLU())
            self.head = nn.Linear(c.dense, 1)
        elif c.model == "cnn" or c.model.startswith(CNN_PREFIX):
            if conv_length(c.window, c.kernel_size, c.pool) < 1:
                raise ValueError(f"Forecaster: a window of {c.window} steps is too short for two convolutions of "
                                 f"kernel {c.kernel_size} with pooling {c.pool} (needs at least "
                                 f"{c.kernel_size * c.pool + c.kernel_size - 1} steps)")
            self.body = conv_stack(c.input_size, c.channels, c.kernel_size, c.pool)
            if c.model == "cnn":
                self.head = nn.Linear(c.channels, 1)
            else:
                self.encoder = _encoder(c, c.model[len(CNN_PREFIX):], c.channels)
                self.head = nn.Linear(self.encoder.output_size, 1)
        else:
            self.encoder = _encoder(c, c.model, c.input_size)
            self.head = nn.Linear(self.encoder.output_size, 1)

    def forward(self, x: Tensor, state=None) -> tuple[Tensor, tuple]:
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.window or x.shape[2] != c.input_size:
            raise ValueError(f"Forecaster: expected x (B, {c.window}, {c.input_size}), got {tuple(x.shape)}")
        if state:
            raise ValueError("Forecaster: every window starts from a zero state; expected no state")
        if c.model == "dense":
            out = self.head(self.body(x)).squeeze(-1)  # (B,)
        elif c.model == "cnn":
            features = self.body(x.transpose(1, 2))  # (B, F, T) -> (B, C, T')
            out = self.head(features.amax(dim=2)).squeeze(-1)  # global max pooling -> (B,)
        else:
            seq = self.body(x.transpose(1, 2)).transpose(1, 2) if c.model.startswith(CNN_PREFIX) else x  # (B, T', ·)
            outputs, _ = self.encoder(seq)  # (B, T', D*H)
            if c.seq2seq:
                out = self.head(outputs).squeeze(-1)  # (B, T)
            else:
                out = self.head(_last_step(outputs, c.hidden, c.bidirectional and c.model != "tcn")).squeeze(-1)
        if c.residual:  # predict the change from the last observed value of the target
            last = x[:, :, c.target_index] if c.seq2seq else x[:, -1, c.target_index]
            out = out + last
        return out, ()  # no state carries over between windows: () is a state of no tensors

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
