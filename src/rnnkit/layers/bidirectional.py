"""Bidirectional: a forward and a backward layer over the same batch, outputs merged per time step."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_dtype_matches, check_sequences
from . import fused as kernels
from .lengths import check_lengths, run_packed
from .recurrent import Recurrent
from .state import check_state_like

MERGES = ("concat", "sum", "mean", "none")


class Bidirectional(nn.Module):
    r"""Reads each sequence forwards and backwards and merges the two outputs at every step.

    :math:`\overrightarrow{h}_t` runs t = 1..len, :math:`\overleftarrow{h}_t` runs t = len..1 — the
    backward direction reverses each sequence *within its own length*, never the padding — and the
    backward outputs are flipped back into line, so step t sees both (lecture 000's Bahdanau
    annotations :math:`h_j = [\overrightarrow{h}_j; \overleftarrow{h}_j]`).

    Args:
        forward_layer, backward_layer: two cells (wrapped in :class:`Recurrent`, the backward one with
            ``reverse=True``) or two ``Recurrent`` layers (the backward one built with ``reverse=True``).
        merge: ``"concat"`` (default, O_f + O_b features), ``"sum"``, ``"mean"``, or ``"none"`` (outputs is
            the pair ``(forward_outputs, backward_outputs)``).
        **layer_kwargs: ``batch_first``, ``input_dropout``, ``recurrent_dropout``, ``fused`` for the two
            :class:`Recurrent` layers built from cells.

    When both directions use the same torch kernel, one bidirectional kernel call runs them.

    Shape:
        x: (B, T, F) or a PackedSequence; lengths (B,); state ``(forward_state, backward_state)``.
        Returns outputs (B, T, O_f + O_b) for concat, (B, T, O) for sum/mean, and
        ``(forward_final_state, backward_final_state)``; the backward final state is the one after
        reading each sequence's first step.
    """

    def __init__(self, forward_layer: nn.Module, backward_layer: nn.Module, *, merge: str = "concat",
                 **layer_kwargs):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"Bidirectional: expected merge in {MERGES}, got {merge!r}")
        if not isinstance(forward_layer, Recurrent):
            forward_layer = Recurrent(forward_layer, **layer_kwargs)
        elif layer_kwargs:
            raise TypeError(f"Bidirectional: layer options {sorted(layer_kwargs)} apply to cells, not to layers")
        if not isinstance(backward_layer, Recurrent):
            backward_layer = Recurrent(backward_layer, reverse=True, **layer_kwargs)
        if forward_layer.reverse or not backward_layer.reverse:
            raise ValueError("Bidirectional: expected a forward layer with reverse=False and a backward layer "
                             f"with reverse=True, got {forward_layer.reverse} and {backward_layer.reverse}")
        if forward_layer.batch_first != backward_layer.batch_first:
            raise ValueError("Bidirectional: the two layers must agree on batch_first")
        if forward_layer.input_size != backward_layer.input_size:
            raise ValueError(f"Bidirectional: the two layers must read the same input size, got "
                             f"{forward_layer.input_size} and {backward_layer.input_size}")
        if merge in ("sum", "mean") and forward_layer.output_size != backward_layer.output_size:
            raise ValueError(f"Bidirectional: merge={merge!r} needs equal output sizes, got "
                             f"{forward_layer.output_size} and {backward_layer.output_size}")
        self.forward_layer, self.backward_layer, self.merge = forward_layer, backward_layer, merge
        self.batch_first = forward_layer.batch_first

    @property
    def input_size(self) -> int:
        return self.forward_layer.input_size

    @property
    def output_size(self) -> int:
        f, b = self.forward_layer.output_size, self.backward_layer.output_size
        return f + b if self.merge == "concat" else f

    def initial_state(self, batch_size: int, **kwargs):
        return (self.forward_layer.initial_state(batch_size, **kwargs),
                self.backward_layer.initial_state(batch_size, **kwargs))

    def forward(self, x, lengths=None, state=None):
        if isinstance(x, PackedSequence):
            return run_packed(self, x, state)
        fwd, bwd = self.forward_layer, self.backward_layer
        mode = kernels.common_mode([fwd.cell, bwd.cell])
        if (mode and fwd.uses_kernel() and bwd.uses_kernel() and not fwd.input_dropout and not bwd.input_dropout):
            out_f, out_b, state = self._run_kernel(mode, x, lengths, state)
        else:
            s_f, s_b = (None, None) if state is None else self._split(state)
            out_f, s_f = fwd(x, lengths, s_f)
            out_b, s_b = bwd(x, lengths, s_b)
            state = (s_f, s_b)
        return self._merge(out_f, out_b), state

    def _split(self, state):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"Bidirectional: expected state as a pair (forward_state, backward_state), "
                             f"got {type(state).__name__}")
        return state

    def _run_kernel(self, mode, x, lengths, state):
        B, T = check_sequences("Bidirectional", x, self.input_size, self.batch_first)
        check_dtype_matches("Bidirectional", x, self.forward_layer.cell.weight_ih)
        lengths = check_lengths("Bidirectional", lengths, B, T)
        template = self.initial_state(B, device=x.device, dtype=x.dtype)
        state = template if state is None else check_state_like("Bidirectional", state, template)
        cells = [self.forward_layer.cell, self.backward_layer.cell]
        out, hn = kernels.run(mode, x, lengths, kernels.to_kernel_state(mode, list(state)), cells, num_layers=1,
                              bidirectional=True, dropout=0.0, training=self.training, batch_first=self.batch_first)
        out_f, out_b = out.chunk(2, dim=-1)
        return out_f, out_b, tuple(kernels.from_kernel_state(mode, hn))

    def _merge(self, out_f, out_b):
        if self.merge == "concat":
            return torch.cat([out_f, out_b], dim=-1)
        if self.merge == "sum":
            return out_f + out_b
        if self.merge == "mean":
            return (out_f + out_b) / 2
        return out_f, out_b

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}"
