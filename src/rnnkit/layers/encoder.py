"""Sequence encoders by name: every recurrent kind of :class:`RNN`, and ``"tcn"`` (Bai et al. 2018).

Every task model (language model, classifier, forecaster) builds its sequence encoder here, so each one
accepts the same ``--model`` names. All encoders share one call signature::

    outputs, state = encoder(x, lengths=None, state=None)   # x (B, T, F) -> outputs (B, T, encoder.output_size)

A TCN is causal and stateless between calls: it returns ``state=None`` and does not accept a state.
"""
from __future__ import annotations

from torch import nn

from .rnn import KINDS, RNN

ENCODERS = (*KINDS, "tcn")


def make_encoder(kind: str, input_size: int, hidden_size: int, num_layers: int = 1, *, bidirectional: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, kernel_size: int = 3, **kwargs) -> nn.Module:
    """``make_encoder("gru", 14, 32, 2, dropout=0.1)`` -> an :class:`RNN`; ``make_encoder("tcn", ...)`` -> a TCN.

    ``hidden_size`` is the RNN's units per direction, or the TCN's channels per level; ``num_layers`` the RNN's
    layers or the TCN's residual blocks. ``kernel_size`` applies to the TCN only.
    """
    if kind == "tcn":
        if bidirectional:
            raise ValueError("make_encoder: a TCN is causal; expected bidirectional=False, got True")
        if recurrent_dropout:
            raise ValueError(f"make_encoder: a TCN has no recurrence; expected recurrent_dropout=0, "
                             f"got {recurrent_dropout}")
        from .tcn import TCN
        return TCN(input_size, hidden_size, num_layers, kernel_size=kernel_size, dropout=dropout, **kwargs)
    if kind not in KINDS:
        raise ValueError(f"make_encoder: expected kind in {sorted(ENCODERS)}, got {kind!r}")
    return RNN(kind, input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
               recurrent_dropout=recurrent_dropout, **kwargs)
