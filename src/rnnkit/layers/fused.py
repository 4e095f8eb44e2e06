"""torch's fused recurrent kernels (oneDNN on CPU, cuDNN on GPU) run on rnnkit cells' own parameters.

Three cells compute exactly what a torch kernel computes: ``ElmanCell`` with tanh or relu
(``nn.RNN``), ``LSTMCell`` without peepholes (``nn.LSTM``) and ``GRUCell(reset_after=True)``
(``nn.GRU``). For those the layers hand the cells' ``weight_ih, weight_hh, bias_ih, bias_hh`` to the
same ``torch._VF`` entry points that ``torch.nn.LSTM.forward`` calls, so there is one set of
parameters and two ways to run it. Variable lengths go through ``pack_padded_sequence``.
"""
from __future__ import annotations

import torch
from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells import ElmanCell, GRUCell, LSTMCell

_KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


def kernel_mode(cell) -> str | None:
    """The torch kernel that computes this cell exactly, or None. Exact types only: a subclass may
    change the step."""
    if type(cell) is LSTMCell and not cell.peephole:
        return "LSTM"
    if type(cell) is GRUCell and cell.reset_after:
        return "GRU"
    if type(cell) is ElmanCell and cell.activation in ("tanh", "relu"):
        return "RNN_" + cell.activation.upper()
    return None


def common_mode(cells) -> str | None:
    """The kernel for a whole stack: every cell must use the same kernel, bias setting and hidden size."""
    modes = {kernel_mode(c) for c in cells}
    if len(modes) != 1 or None in modes:
        return None
    if len({c.bias for c in cells}) != 1 or len({c.hidden_size for c in cells}) != 1:
        return None
    return modes.pop()


def flat_weights(cells) -> list[Tensor]:
    """Weights in the order torch's kernels expect: per layer, per direction, w_ih, w_hh[, b_ih, b_hh]."""
    weights = []
    for c in cells:
        weights += [c.weight_ih, c.weight_hh] + ([c.bias_ih, c.bias_hh] if c.bias else [])
    return weights


def to_kernel_state(mode: str, states: list) -> Tensor | tuple[Tensor, Tensor]:
    """Per-cell states [(B, H) or (h, c)] in layer-major, direction-minor order -> (L*D, B, H)."""
    if mode == "LSTM":
        return torch.stack([s[0] for s in states]), torch.stack([s[1] for s in states])
    return torch.stack(states)


def from_kernel_state(mode: str, hn) -> list:
    """(L*D, B, H) -> per-cell states, the inverse of to_kernel_state."""
    if mode == "LSTM":
        return list(zip(hn[0].unbind(0), hn[1].unbind(0)))
    return list(hn.unbind(0))


def run(mode: str, x: Tensor, lengths: Tensor | None, hx, cells, *, num_layers: int, bidirectional: bool,
        dropout: float, training: bool, batch_first: bool):
    """Run a fused kernel over x (B, T, F) or (T, B, F) with lengths (B,) int64 on CPU or None.

    hx: (L*D, B, H) tensor, or a pair of them for LSTM. Returns (outputs, hn) in the same layouts;
    outputs past each length are zero and hn holds the state at each sequence's last valid step.
    """
    kernel = _KERNELS[mode]
    weights = flat_weights(cells)
    has_bias = cells[0].bias
    if lengths is None:
        out, *hn = kernel(x, hx, weights, has_bias, num_layers, dropout, training, bidirectional, batch_first)
    else:
        T = x.shape[1] if batch_first else x.shape[0]
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        hx = tuple(h.index_select(1, order) for h in hx) if mode == "LSTM" else hx.index_select(1, order)
        data, *hn = kernel(packed.data, packed.batch_sizes, hx, weights, has_bias, num_layers, dropout,
                           training, bidirectional)
        out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, unorder),
                                     batch_first=batch_first, total_length=T)
        hn = [h.index_select(1, unorder) for h in hn]
    return out, (tuple(hn) if mode == "LSTM" else hn[0])
