"""Lecture 001's simplified GRU: a vanilla RNN state plus a gated memory cell."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from ..kernels.minimal_gru import minimal_gru_sequence
from . import params


class MinimalGRUCell(nn.Module):
    r"""One step of the simplified GRU of lecture 001 ("GRUs (simplified)").

    .. math::
        \Gamma^u_t &= \sigma(W_{ux} x_t + W_{uh} h_{t-1} + b_u)\\
        h_t &= \tanh(W_{hx} x_t + W_{hh} h_{t-1} + b_h)\\
        c_t &= (1 - \Gamma^u_t) \odot c_{t-1} + \Gamma^u_t \odot h_t

    With ``reset_gate=True``, the two-gate version ("GRUs (slightly more complex)"):

    .. math::
        \Gamma^r_t &= \sigma(W_{rx} x_t + W_{rh} h_{t-1} + b_r)\\
        h_t &= \tanh(W_{hx} x_t + W_{hh} (\Gamma^r_t \odot h_{t-1}) + b_h)

    The state is the pair :math:`(h_t, c_t)`: :math:`h_t` is the vanilla RNN state and drives the
    gates, :math:`c_t` is the memory cell that carries information over long distances while
    :math:`\Gamma^u_t \approx 0`. The output :math:`y_t` is the memory cell :math:`c_t` (the
    lecture predicts "using the memory cell"; :math:`h_t` stays available in the state).

    Parameters: ``weight_ih`` (kH, F), ``weight_hh`` (kH, H), ``bias_ih``, ``bias_hh`` (kH,), with
    gate rows u, h (k = 2) or u, r, h (k = 3); :math:`b` = ``bias_ih + bias_hh``.

    Shape:
        x_t: (B, F); state (h_{t-1}, c_{t-1}): two (B, H); returns y_t = c_t: (B, H) and (h_t, c_t).
    """

    def __init__(self, input_size: int, hidden_size: int, *, reset_gate: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.input_size = check_positive_int("MinimalGRUCell", "input_size", input_size)
        self.hidden_size = self.output_size = check_positive_int("MinimalGRUCell", "hidden_size", hidden_size)
        self.reset_gate, self.bias = reset_gate, bias
        self.gates = 3 if reset_gate else 2
        params.gate_parameters(self, self.gates, input_size, hidden_size, hidden_size, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        return params.zeros(self, batch_size, self.hidden_size, 2, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """W_x x + b_ih for every gate: (..., F) -> (..., kH)."""
        return params.project(self, x)

    def step(self, xp: Tensor, state: tuple[Tensor, Tensor], recurrent_mask: Tensor | None = None):
        """One step from xp (B, kH); recurrent_mask (B, H) drops h_{t-1} inside the recurrent products."""
        h, c = state
        H = self.hidden_size
        hr = h if recurrent_mask is None else h * recurrent_mask
        w_hh = params.weight_for(self, "weight_hh", h.shape[0])
        if self.reset_gate:
            b_ur = None if self.bias_hh is None else self.bias_hh[: 2 * H]
            b_h = None if self.bias_hh is None else self.bias_hh[2 * H:]
            x_u, x_r, x_h = xp.chunk(3, dim=1)
            h_u, h_r = F.linear(hr, w_hh[: 2 * H], b_ur).chunk(2, dim=1)
            u = torch.sigmoid(x_u + h_u)
            r = torch.sigmoid(x_r + h_r)
            h = torch.tanh(x_h + F.linear(r * hr, w_hh[2 * H:], b_h))
        else:
            x_u, x_h = xp.chunk(2, dim=1)
            h_u, h_h = F.linear(hr, w_hh, self.bias_hh).chunk(2, dim=1)
            u = torch.sigmoid(x_u + h_u)
            h = torch.tanh(x_h + h_h)
        c = c + u * (h - c)  # = (1 - u) * c + u * h
        return c, (h, c)

    def sequence(self, xs: Tensor, state: tuple[Tensor, Tensor], mask: Tensor | None = None,
                 recurrent_mask: Tensor | None = None):
        """All T steps at once (:mod:`rnnkit.kernels.minimal_gru`): xs (T, B, F) -> (outputs (T, B, H), (h_T, c_T))."""
        if not params.sequence_applies(self, MinimalGRUCell):
            return None
        return params.run_sequence(minimal_gru_sequence, params.project_all(self, xs), state, self.weight_hh,
                                   mask=mask, recurrent_mask=recurrent_mask)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        return params.checked_step(self, x, state, 2)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, reset_gate={self.reset_gate}, bias={self.bias}"
