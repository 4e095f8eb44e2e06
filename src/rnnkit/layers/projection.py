"""OutputProjection: lecture 000's OutputProjectionWrapper, a linear map on every output of a layer."""
from __future__ import annotations

from torch import nn

from torch.nn.utils.rnn import PackedSequence

from .lengths import check_lengths, run_packed, time_mask


class OutputProjection(nn.Module):
    r""":math:`\hat y_t = W_p y_t + b_p` at every step of a recurrent layer (lecture 000's time-series
    model: 100 recurrent units projected to 1 output per step).

    Args:
        layer: any recurrent layer (``forward(x, lengths, state) -> (outputs, state)``, ``output_size``).
        output_size: P, features of each projected output.

    Shape:
        as the wrapped layer, with outputs (B, T, P); positions past a sequence's length stay zero.
    """

    def __init__(self, layer: nn.Module, output_size: int, *, bias: bool = True):
        super().__init__()
        self.layer = layer
        self.projection = nn.Linear(layer.output_size, output_size, bias=bias)
        self.batch_first = layer.batch_first

    @property
    def input_size(self) -> int:
        return self.layer.input_size

    @property
    def output_size(self) -> int:
        return self.projection.out_features

    def initial_state(self, batch_size: int, **kwargs):
        return self.layer.initial_state(batch_size, **kwargs)

    def forward(self, x, lengths=None, state=None):
        if isinstance(x, PackedSequence):
            return run_packed(self, x, state)
        out, state = self.layer(x, lengths, state)
        y = self.projection(out)
        if lengths is not None:
            B, T = (y.shape[0], y.shape[1]) if self.batch_first else (y.shape[1], y.shape[0])
            lengths = check_lengths("OutputProjection", lengths, B, T)
            if lengths is not None:
                mask = time_mask(lengths, T, y.device)  # (T, B)
                y = y * (mask.t() if self.batch_first else mask)[..., None]
        return y, state
