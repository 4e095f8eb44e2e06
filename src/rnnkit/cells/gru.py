"""Gated recurrent unit (Cho et al. 2014), in the lectures' reset-before form and torch's reset-after form."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from ..kernels.gru import gru_sequence
from . import params


class GRUCell(nn.Module):
    r"""One GRU step.

    Default (``reset_after=False``), Cho et al. 2014 as lectures 000, 001 and 003 write it — the reset
    gate is applied to :math:`h_{t-1}` *before* the recurrent matrix product:

    .. math::
        r_t &= \sigma(W_{xr} x_t + W_{hr} h_{t-1} + b_r)\\
        z_t &= \sigma(W_{xz} x_t + W_{hz} h_{t-1} + b_z)\\
        g_t &= \tanh(W_{xg} x_t + W_{hg} (r_t \odot h_{t-1}) + b_g)\\
        y_t &= h_t = z_t \odot h_{t-1} + (1 - z_t) \odot g_t

    ``reset_after=True`` is the cuDNN / ``torch.nn.GRUCell`` form, which torch's fused kernels run:
    :math:`g_t = \tanh(W_{xg} x_t + b_{xg} + r_t \odot (W_{hg} h_{t-1} + b_{hg}))`.

    **Which gate weighs the old state.** We follow lecture 000 and torch: :math:`z_t` weighs
    :math:`h_{t-1}`. Lectures 003 and 004 write :math:`h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t`.
    That is the same cell with :math:`z \leftrightarrow 1 - z`: since :math:`1 - \sigma(a) = \sigma(-a)`,
    negating the z rows of every weight and bias turns one convention into the other exactly
    (tested in ``tests/cells/test_cell_gru.py``).

    Parameters follow ``torch.nn.GRUCell``: ``weight_ih`` (3H, F), ``weight_hh`` (3H, H),
    ``bias_ih``, ``bias_hh`` (3H,), gate rows r, z, g (torch calls g "n"); in the reset-before form
    :math:`b_g` = ``bias_ih[2H:] + bias_hh[2H:]``. A ``torch.nn.GRUCell`` state dict loads into either
    form; only ``reset_after=True`` computes the same function as torch.

    Shape:
        x_t: (B, F); state h_{t-1}: (B, H); returns y_t = h_t: (B, H) and h_t.
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, *, reset_after: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.input_size = check_positive_int("GRUCell", "input_size", input_size)
        self.hidden_size = self.output_size = check_positive_int("GRUCell", "hidden_size", hidden_size)
        self.reset_after, self.bias = reset_after, bias
        params.gate_parameters(self, 3, input_size, hidden_size, hidden_size, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> Tensor:
        return params.zeros(self, batch_size, self.hidden_size, 1, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """W_x x + b_ih for r, z, g: (..., F) -> (..., 3H)."""
        return params.project(self, x)

    def step(self, xp: Tensor, h: Tensor, recurrent_mask: Tensor | None = None):
        """One step from xp (B, 3H); recurrent_mask (B, H) drops h_{t-1} inside the recurrent products."""
        H = self.hidden_size
        hr = h if recurrent_mask is None else h * recurrent_mask
        w_hh = params.weight_for(self, "weight_hh", h.shape[0])
        x_r, x_z, x_g = xp.chunk(3, dim=1)
        if self.reset_after:
            h_r, h_z, h_g = F.linear(hr, w_hh, self.bias_hh).chunk(3, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            g = torch.tanh(x_g + r * h_g)
        else:
            b_rz = None if self.bias_hh is None else self.bias_hh[: 2 * H]
            b_g = None if self.bias_hh is None else self.bias_hh[2 * H:]
            h_r, h_z = F.linear(hr, w_hh[: 2 * H], b_rz).chunk(2, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            g = torch.tanh(x_g + F.linear(r * hr, w_hh[2 * H:], b_g))
        h = g + z * (h - g)  # = z * h + (1 - z) * g
        return h, h

    def sequence(self, xs: Tensor, h: Tensor, mask: Tensor | None = None, recurrent_mask: Tensor | None = None):
        """All T steps at once for the reset-before form (:mod:`rnnkit.kernels.gru`): xs (T, B, F) ->
        (outputs (T, B, H), h_T). None for the reset-after form, which layers run with torch's kernel."""
        if self.reset_after or not params.sequence_applies(self, GRUCell):
            return None
        return params.run_sequence(gru_sequence, params.project_all(self, xs), h, self.weight_hh, mask=mask,
                                   recurrent_mask=recurrent_mask)

    def forward(self, x: Tensor, state: Tensor | None = None):
        return params.checked_step(self, x, state, 1)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, reset_after={self.reset_after}, bias={self.bias}"
