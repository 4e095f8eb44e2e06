r"""FLOPs of a recurrent layer's training step: the matrix products only.

Every cell here is "matrix products, then pointwise gate math", and every matrix parameter of a cell
(a 2-D ``nn.Parameter``, shape (out, in)) takes part in exactly one product with a (B, in) operand per time
step. So the forward pass costs

.. math::
    \text{forward} = \sum_{\text{cells}} \sum_{W \text{ 2-D}} 2 \cdot B \cdot T \cdot \mathrm{out}(W) \cdot \mathrm{in}(W)

which for the usual cells is :math:`2 B T (F + R)\, kH` per layer (``weight_ih`` (kH, F) and
``weight_hh`` (kH, R), k gate blocks: 4 LSTM and peephole, 3 GRU and gru-cho, 2 minimal-gru, 1 Elman
and Jordan; R = H, or Jordan's output size O), plus Jordan's output layer ``weight_ho`` (O, H):
:math:`2 B T O H`. The backward pass is counted as twice the forward (one product for the input
gradient, one for the weight gradient, for every forward product), so a training step is 3x forward.

Not counted: biases, peephole vectors (1-D), the nonlinearities and gate arithmetic — O(B T H) against the
products' O(B T H^2). Reset-before GRUs multiply the candidate block by r * h instead of h: the same size.
"""
from __future__ import annotations

from torch import nn


def forward_flops(cells: list[nn.Module], batch: int, steps: int) -> int:
    """FLOPs of the forward pass's matrix products over (batch, steps) for one or more cells."""
    per_token = sum(2 * p.numel() for cell in cells for p in cell.parameters() if p.dim() == 2)
    return per_token * batch * steps


def train_flops(cells: list[nn.Module], batch: int, steps: int) -> int:
    """Forward + backward (2x forward) FLOPs of one training step."""
    return 3 * forward_flops(cells, batch, steps)
