r"""TCN: the temporal convolutional network of Bai, Kolter & Koltun (2018), lecture 003.

S. Bai, J. Z. Kolter, V. Koltun, "An Empirical Evaluation of Generic Convolutional and Recurrent Networks
for Sequence Modeling", arXiv:1803.01271 (2018), section 3. Lecture 003 shows its dilated causal
convolution and its results table, where the TCN beats LSTM, GRU and RNN on most tasks.

**Dilated causal convolution** (section 3.2): a filter :math:`f` of size :math:`k` with dilation
:math:`d` reads only the present and the past,

.. math::
    F(s) = (x *_d f)(s) = \sum_{i=0}^{k-1} f(i)\, x_{s - d\,i},

implemented as ``Conv1d(dilation=d)`` on the input padded with :math:`(k-1)\,d` zeros on the left only
(Bai et al.'s code pads both sides and "chomps" the right; the left pad is the same computation).

**Residual block** (section 3.3, figure 1b) at level :math:`l = 0 .. L-1`, with :math:`d = 2^l`:

.. math::
    h &= \mathrm{Dropout}(\mathrm{ReLU}(\mathrm{WN}(\mathrm{Conv}_{k,d})(x)))\\
    \mathcal{F}(x) &= \mathrm{Dropout}(\mathrm{ReLU}(\mathrm{WN}(\mathrm{Conv}_{k,d})(h)))\\
    o &= \mathrm{ReLU}(x' + \mathcal{F}(x)), \qquad
         x' = x \text{ or a } 1\times1 \text{ convolution of } x \text{ when the widths differ}

where :math:`\mathrm{WN}` is weight normalisation (Salimans & Kingma 2016), :math:`w = g\, v / \lVert v
\rVert` per output channel (``torch.nn.utils.parametrizations.weight_norm``).

**Receptive field**: each block adds :math:`2(k-1)d`, so :math:`L` blocks see

.. math::
    R = 1 + 2(k-1)\sum_{l=0}^{L-1} 2^l = 1 + 2(k-1)(2^L - 1)

steps: output :math:`t` depends on inputs :math:`t-R+1 .. t` only (tested).

Initialisation: torch's default for the dilated convolutions (Bai et al.'s code draws N(0, 0.01) for
them *after* wrapping them in weight norm, which the old ``weight_norm`` recomputes away at the first
forward, so their published runs used the default too), N(0, 0.01) for the 1×1 downsampling convolution
as in their code. Dropout is ordinary element-wise dropout, as in their code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_dtype_matches, check_positive_int, check_probability, check_sequences
from .lengths import check_lengths, run_packed


class TemporalBlock(nn.Module):
    """One residual block: two weight-normed dilated causal convolutions, ReLU, dropout; x (B, C_in, T) ->
    (B, C_out, T), channels first as ``Conv1d`` wants them."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation  # left zeros: output s sees x[s - pad .. s]
        self.conv1 = weight_norm(nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(out_channels, out_channels, kernel_size, dilation=dilation))
        self.drop = nn.Dropout(dropout)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Conv1d(in_channels, out_channels, 1)
            nn.init.normal_(self.downsample.weight, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))  # (B, C_out, T)
        h = self.drop(F.relu(self.conv2(F.pad(h, (self.pad, 0)))))  # (B, C_out, T)
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(h + residual)


class TCN(nn.Module):
    r"""A stack of ``num_layers`` residual blocks with dilations 1, 2, 4, ..., a drop-in sequence encoder.

    It keeps the recurrent layers' call signature, ``outputs, state = tcn(x, lengths=None, state=None)``,
    so every model that builds its encoder with :func:`rnnkit.layers.make_encoder` takes ``"tcn"``. A TCN
    has no state: it reads the whole input at once, returns ``state=None`` and refuses a state.

    Args:
        input_size: F, features per time step.
        hidden_size: H, channels of every block (the output size).
        num_layers: L, residual blocks; block l has dilation 2**l.
        kernel_size: k, the convolutions' filter size (>= 2).
        dropout: after each convolution's ReLU, in training.

    Shape:
        x: (B, T, F) batch-first, or a PackedSequence; lengths: (B,) in [1, T] or None.
        Returns outputs (B, T, H) and None. With lengths, padded input steps are zeroed before the first
        convolution (so neither they nor their gradients matter) and outputs at t >= lengths[b] are 0;
        causality means a valid step never sees padding, so a padded batch equals each sequence alone.

    Example::

        >>> tcn = TCN(2, 30, 8, kernel_size=7)    # Bai et al.'s adding-problem model
        >>> tcn.receptive_field
        3061
        >>> out, state = tcn(torch.randn(4, 600, 2))
        >>> out.shape, state
        (torch.Size([4, 600, 30]), None)
    """

    batch_first = True  # for run_packed

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, kernel_size: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        check_positive_int("TCN", "input_size", input_size)
        check_positive_int("TCN", "hidden_size", hidden_size)
        check_positive_int("TCN", "num_layers", num_layers)
        check_positive_int("TCN", "kernel_size", kernel_size)
        if kernel_size < 2:
            raise ValueError(f"TCN: expected kernel_size >= 2 (a size-1 filter never reads the past), got {kernel_size}")
        check_probability("TCN", "dropout", dropout)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.kernel_size, self.dropout = kernel_size, dropout
        self.blocks = nn.ModuleList(
            TemporalBlock(input_size if l == 0 else hidden_size, hidden_size, kernel_size, 2 ** l, dropout)
            for l in range(num_layers))

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def receptive_field(self) -> int:
        """R = 1 + 2 (k - 1) (2^L - 1): output t reads inputs t - R + 1 .. t."""
        return 1 + 2 * (self.kernel_size - 1) * (2 ** self.num_layers - 1)

    def forward(self, x, lengths=None, state=None):
        if isinstance(x, PackedSequence):
            return run_packed(self, x, state)
        if state is not None:
            raise ValueError(f"TCN: a TCN has no state between calls (it reads the whole input at once); "
                             f"expected state=None, got {type(state).__name__}")
        B, T = check_sequences("TCN", x, self.input_size, batch_first=True)
        check_dtype_matches("TCN", x, self.blocks[0].conv1.parametrizations.weight.original1)
        lengths = check_lengths("TCN", lengths, B, T)
        valid = None
        if lengths is not None:
            valid = (torch.arange(T, device=x.device)[None, :] < lengths.to(x.device)[:, None])[..., None]  # (B, T, 1)
            x = x.masked_fill(~valid, 0.0)
        h = x.transpose(1, 2)  # b t f -> b f t
        for block in self.blocks:
            h = block(h)  # (B, H, T)
        out = h.transpose(1, 2)  # b h t -> b t h
        if valid is not None:
            out = out.masked_fill(~valid, 0.0)
        return out, None

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"kernel_size={self.kernel_size}, dropout={self.dropout}, receptive_field={self.receptive_field}")
