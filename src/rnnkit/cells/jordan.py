"""Jordan recurrent cell, lecture 003: the state fed back is the previous *output*."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from ..kernels.jordan import FORWARD, jordan_sequence
from . import params
from .activation import resolve


class JordanCell(nn.Module):
    r"""One step of a Jordan network (lecture 003).

    .. math::
        h_t = \sigma_h(W_h x_t + U_h y_{t-1} + b_h), \qquad
        y_t = \sigma_y(W_y h_t + b_y)

    The carried state is :math:`y_{t-1}`, not :math:`h_{t-1}`. Parameters: ``weight_ih`` =
    :math:`W_h` (H, F), ``weight_hh`` = :math:`U_h` (H, O), :math:`b_h` = ``bias_ih + bias_hh``,
    ``weight_ho`` = :math:`W_y` (O, H), ``bias_ho`` = :math:`b_y` (O,).

    Args:
        input_size: F. hidden_size: H. output_size: O (default H).
        activation: :math:`\sigma_h`, default ``"tanh"``. output_activation: :math:`\sigma_y`,
            default ``"tanh"`` (keeps the fed-back state bounded); ``"identity"``, ``"sigmoid"``,
            ``"relu"`` or a callable also work.

    Shape:
        x_t: (B, F); state y_{t-1}: (B, O); returns y_t: (B, O) and the new state y_t: (B, O).
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None, *,
                 activation="tanh", output_activation="tanh", bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.input_size = check_positive_int("JordanCell", "input_size", input_size)
        self.hidden_size = check_positive_int("JordanCell", "hidden_size", hidden_size)
        self.output_size = check_positive_int("JordanCell", "output_size",
                                              hidden_size if output_size is None else output_size)
        self.activation, self.phi_h = resolve("JordanCell", activation)
        self.output_activation, self.phi_y = resolve("JordanCell", output_activation)
        self.bias = bias
        kw = {"device": device, "dtype": dtype}
        params.gate_parameters(self, 1, input_size, hidden_size, self.output_size, bias, device, dtype)
        self.weight_ho = nn.Parameter(torch.empty(self.output_size, hidden_size, **kw))
        self.bias_ho = nn.Parameter(torch.empty(self.output_size, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)
        bound = 1.0 / math.sqrt(self.hidden_size)  # W_y reads h: fan-in H, like an nn.Linear
        with torch.no_grad():
            self.weight_ho.uniform_(-bound, bound)
            if self.bias_ho is not None:
                self.bias_ho.uniform_(-bound, bound)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> Tensor:
        return params.zeros(self, batch_size, self.output_size, 1, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """W_h x + b_ih for any leading shape (..., F) -> (..., H)."""
        return params.project(self, x)

    def step(self, xp: Tensor, y: Tensor, recurrent_mask: Tensor | None = None):
        """One step from xp (B, H); recurrent_mask (B, O) drops y_{t-1} inside U_h y_{t-1}."""
        yr = y if recurrent_mask is None else y * recurrent_mask
        h = self.phi_h(xp + F.linear(yr, params.weight_for(self, "weight_hh", yr.shape[0]), self.bias_hh))
        y = self.phi_y(F.linear(h, self.weight_ho, self.bias_ho))
        return y, y

    def sequence(self, xs: Tensor, y: Tensor, mask: Tensor | None = None, recurrent_mask: Tensor | None = None):
        """All T steps at once (:mod:`rnnkit.kernels.jordan`): xs (T, B, F) -> (outputs (T, B, O), y_T).
        None (the per-step loop) for a user's callable activation."""
        acts = (self.activation, self.output_activation)
        if not (all(a in FORWARD for a in acts) and params.sequence_applies(self, JordanCell)):
            return None
        return params.run_sequence(jordan_sequence, params.project_all(self, xs), y, self.weight_hh, self.weight_ho,
                                   self.bias_ho, acts, mask=mask, recurrent_mask=recurrent_mask)

    def forward(self, x: Tensor, state: Tensor | None = None):
        return params.checked_step(self, x, state, 1)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, output_size={self.output_size}, bias={self.bias}"
