"""Recurrent language model (lectures 001-003): p(y_1..y_n) = prod_i p(y_i | y_<i).

    ids (B, T) -> one-hot (B, T, V) or embedding (B, T, E) -> RNN stack -> dropout
      -> projection (B, T, V) logits; softmax gives p(next token)

char-rnn and lecture 001's min-char-rnn feed one-hot vectors; lecture 003's Keras models use an
Embedding. ``tie_weights`` shares the embedding with the output projection (Press & Wolf 2017;
Inan et al. 2017), which needs embedding size == hidden size.

``cell="tcn"`` puts Bai et al.'s TCN (``rnnkit.layers.tcn``) where the RNN stack is. A TCN has no
recurrent state; its state here is its *context*, the last R - 1 input vectors (R its receptive field):
each call prepends it, so a stream read in chunks (stateful training) or one token at a time
(``step``, generation) gives the same logits as one long forward call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ENCODERS, make_encoder
from ..layers.stepping import check_precision, native_step, stepper_for


@dataclass
class LMConfig:
    vocab_size: int
    cell: str = "lstm"  # any of rnnkit.layers.ENCODERS: an RNN kind, or "tcn"
    hidden: int = 256
    layers: int = 2
    embedding: int = 0  # 0: one-hot inputs (lecture 001); > 0: a learned embedding of this size
    dropout: float = 0.0  # between layers and before the projection
    recurrent_dropout: float = 0.0
    tie_weights: bool = False

    def __post_init__(self):
        if self.cell not in ENCODERS:
            raise ValueError(f"LMConfig: expected cell in {sorted(ENCODERS)}, got {self.cell!r}")
        for name in ("vocab_size", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"LMConfig: expected {name} >= 1, got {getattr(self, name)}")
        if self.embedding < 0:
            raise ValueError(f"LMConfig: expected embedding >= 0 (0 = one-hot), got {self.embedding}")
        if self.tie_weights and self.embedding != self.hidden:
            raise ValueError(f"LMConfig: tie_weights needs embedding == hidden, got {self.embedding} and {self.hidden}")


class LanguageModel(nn.Module):
    """``logits, state = model(ids, state)``; ``logits, state = model.step(ids_t, state)`` for generation.

    Shape: ids (B, T) int64 -> logits (B, T, V); state: the RNN's list of per-layer states, or for a TCN
    the context (B, <= R - 1, E or V), the last input vectors.
    """

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding) if c.embedding else None
        self.rnn = make_encoder(c.cell, c.embedding or c.vocab_size, c.hidden, c.layers, dropout=c.dropout,
                                recurrent_dropout=c.recurrent_dropout)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embed.weight

    def inputs(self, ids: Tensor) -> Tensor:
        """(…,) ids -> (…, E) embeddings or (…, V) one-hot vectors."""
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"LanguageModel: expected integer token ids, got dtype {ids.dtype}")
        if self.embed is not None:
            return self.embed(ids)
        return F.one_hot(ids.long(), self.config.vocab_size).to(self.head.weight.dtype)

    def forward(self, ids: Tensor, state=None, lengths=None):
        if ids.dim() != 2:
            raise ValueError(f"LanguageModel: expected ids (B, T), got {tuple(ids.shape)}")
        if self.config.cell == "tcn":
            return self._forward_tcn(self.inputs(ids), state, lengths)
        out, state = self.rnn(self.inputs(ids), lengths, state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    def _forward_tcn(self, x: Tensor, context, lengths):
        """x (B, T, E) after the context (B, W, E): logits (B, T, V) and the new context (the last R - 1 inputs)."""
        if lengths is not None:
            raise ValueError("LanguageModel: a TCN language model reads unpadded streams; expected lengths=None")
        W = 0 if context is None else context.shape[1]
        if context is not None:
            if context.dim() != 3 or context.shape[0] != x.shape[0] or context.shape[2] != x.shape[2]:
                raise ValueError(f"LanguageModel: expected a TCN context (B, W, {x.shape[2]}) with B = {x.shape[0]}, "
                                 f"got {tuple(context.shape)}")
            x = torch.cat([context.to(x.dtype), x], dim=1)  # (B, W + T, E)
        out, _ = self.rnn(x)  # (B, W + T, H)
        return self.head(self.drop(out[:, W:])), x[:, -(self.rnn.receptive_field - 1):]

    def step(self, ids: Tensor, state=None):
        """One token per sequence: ids (B,) -> logits (B, V), state."""
        if self.config.cell == "tcn":  # re-run the receptive-field window behind the token
            logits, state = self._forward_tcn(self.inputs(ids)[:, None], state, None)  # (B, 1, V)
            return logits[:, 0], state
        out, state = self.rnn.step(self.inputs(ids), state)  # (B, H)
        return self.head(self.drop(out)), state

    def stepper(self, precision: str = "fp32"):
        """``step`` for generation, with the weights prepared once (``rnnkit.layers.stepping``): the first layer's
        input products for every token are one table (V, kH), so a token costs a row lookup and one product per
        layer. Same signature and state as ``step``; a snapshot of the weights, for inference. ``precision="bf16"``
        runs the recurrent products with bf16 weights, ``"int8"`` with int8 weights (``kernels.packed.Int8Product``,
        CPU); the state, table and output layer stay float32. Falls back to ``step`` in training mode, for a TCN,
        and for cells without a joint product (GRU, minimal GRU)."""
        check_precision("LanguageModel.stepper", precision)
        rnn_step = None
        if self.config.cell != "tcn" and not self.training:
            with torch.no_grad():
                rnn_step = stepper_for(self.rnn, self._token_inputs(), precision)
        if rnn_step is None:
            if precision != "fp32":
                why = "is in training mode" if self.training else "has no prepared step"
                raise ValueError(f"LanguageModel.stepper: {precision} weights need the prepared step, which the rnn, "
                                 f"lstm and peephole cells have in eval mode (GRU models: generate() with the "
                                 f"compiled step, native_stepper); this {self.config.cell} model {why}")
            return self.step
        with torch.no_grad():
            weight, bias = self.head.weight.t().contiguous(), self.head.bias.detach().clone()

        def step(ids: Tensor, state=None):
            if ids.dim() != 1 or ids.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"LanguageModel.stepper: expected integer ids (B,), got {ids.dtype} {tuple(ids.shape)}")
            if state is None:
                state = self.rnn.initial_state(ids.shape[0], device=weight.device, dtype=weight.dtype)
            out, state = rnn_step(ids, state)  # (B, H)
            return torch.addmm(bias, out, weight), state

        return step

    def native_stepper(self, precision: str = "fp32"):
        """Batch-1 generation as one compiled call per token: the step, the output layer and the draw of the next
        id (:class:`rnnkit.kernels.lm_step.NativeLMStep`), for a stack of LSTM (peepholes or not), GRU (either
        form) or Elman cells in eval mode on the CPU in float32; None for any other model, or where the C kernel
        cannot be built. A snapshot of the weights, like ``stepper``."""
        check_precision("LanguageModel.native_stepper", precision)
        if self.config.cell == "tcn" or self.training:
            return None
        with torch.no_grad():
            return native_step(self.rnn, self._token_inputs(), self.head.weight, self.head.bias, precision)

    def _token_inputs(self) -> Tensor:
        """Every token's input vector: (V, E) embedding rows, or (V, V) one-hot rows."""
        return self.embed.weight if self.embed is not None else torch.eye(
            self.config.vocab_size, dtype=self.head.weight.dtype, device=self.head.weight.device)
