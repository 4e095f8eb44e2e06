"""Stacked: layers on top of each other (a deep RNN, lecture 000), dropout between them."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_probability
from .lengths import run_packed


class Stacked(nn.Module):
    r"""Layer l reads the outputs of layer l-1: :math:`h^{(l)}_t = \mathrm{cell}^{(l)}(h^{(l-1)}_t, h^{(l)}_{t-1})`.

    Args:
        layers: recurrent layers (:class:`Recurrent`, :class:`Bidirectional`, or anything with the same
            ``forward(x, lengths, state) -> (outputs, state)``, ``input_size``, ``output_size``,
            ``initial_state``); each layer's output size must equal the next one's input size.
        dropout: dropout on the outputs of every layer but the last (torch's ``nn.LSTM(dropout=...)``).

    Shape:
        x: (B, T, F) or a PackedSequence; lengths (B,); state: a list with one state per layer (or None).
        Returns the last layer's outputs and the list of per-layer final states.
    """

    def __init__(self, layers, *, dropout: float = 0.0):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("Stacked: expected at least one layer, got none")
        for i, (below, above) in enumerate(zip(layers, layers[1:])):
            if getattr(below, "merge", None) == "none":
                raise ValueError(f"Stacked: layer {i} is Bidirectional with merge='none', which has no single output")
            if below.output_size != above.input_size:
                raise ValueError(f"Stacked: layer {i} outputs {below.output_size} features but layer {i + 1} "
                                 f"expects {above.input_size}")
        if len({layer.batch_first for layer in layers}) != 1:
            raise ValueError("Stacked: all layers must agree on batch_first")
        self.layers = nn.ModuleList(layers)
        self.dropout = check_probability("Stacked", "dropout", dropout)
        self.batch_first = layers[0].batch_first

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    def initial_state(self, batch_size: int, **kwargs) -> list:
        return [layer.initial_state(batch_size, **kwargs) for layer in self.layers]

    def forward(self, x, lengths=None, state=None):
        if isinstance(x, PackedSequence):
            return run_packed(self, x, state)
        n = len(self.layers)
        if state is None:
            state = [None] * n
        elif not isinstance(state, (list, tuple)) or len(state) != n:
            got = f"{len(state)} items" if isinstance(state, (list, tuple)) else type(state).__name__
            raise ValueError(f"Stacked: expected state as a list of {n} per-layer states, got {got}")
        states = []
        for i, (layer, s) in enumerate(zip(self.layers, state)):
            x, s = layer(x, lengths, s)
            states.append(s)
            if i < n - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return x, states

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout else ""
