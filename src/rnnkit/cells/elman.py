"""Elman (simple) recurrent cell, lectures 000, 001 and 003."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from . import params
from .activation import resolve


class ElmanCell(nn.Module):
    r"""One step of an Elman network.

    .. math::
        h_t = \phi(W_x x_t + W_h h_{t-1} + b), \qquad y_t = h_t

    (lecture 000 writes :math:`y_{(t)} = \phi(W_x^\top x_{(t)} + W_y^\top y_{(t-1)} + b)`; lecture 003
    :math:`h_t = \sigma_h(W_h x_t + U_h h_{t-1} + b_h)`). Parameters are named as in
    ``torch.nn.RNNCell`` — ``weight_ih`` = :math:`W_x`, ``weight_hh`` = :math:`W_h`, and
    :math:`b` = ``bias_ih + bias_hh`` — so an ``RNNCell`` state dict loads into this cell and back.

    Args:
        input_size: F, features of x_t.
        hidden_size: H, size of h_t.
        activation: ``"tanh"`` (default), ``"relu"``, ``"sigmoid"``, ``"identity"`` or any callable.
            Layers run torch's fused kernel for ``"tanh"`` and ``"relu"``.
        bias: learn ``bias_ih`` and ``bias_hh``.

    Shape:
        x_t: (B, F); state h_{t-1}: (B, H); returns y_t: (B, H) and the new state h_t: (B, H).
        B is the batch size.

    Example::

        >>> cell = ElmanCell(3, 5)
        >>> y, h = cell(torch.randn(4, 3), cell.initial_state(4))
        >>> y.shape
        torch.Size([4, 5])
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, activation="tanh", bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.input_size = check_positive_int("ElmanCell", "input_size", input_size)
        self.hidden_size = self.output_size = check_positive_int("ElmanCell", "hidden_size", hidden_size)
        self.activation, self.phi = resolve("ElmanCell", activation)
        self.bias = bias
        params.gate_parameters(self, 1, input_size, hidden_size, hidden_size, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> Tensor:
        return params.zeros(self, batch_size, self.hidden_size, 1, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """W_x x + b_ih for any leading shape (..., F) -> (..., H): one GEMM for all time steps."""
        return params.project(self, x)

    def step(self, xp: Tensor, h: Tensor, recurrent_mask: Tensor | None = None):
        """One step from the projected input xp (B, H). recurrent_mask (B, H) drops h_{t-1} in W_h h_{t-1}."""
        hr = h if recurrent_mask is None else h * recurrent_mask
        return self.update(xp + F.linear(hr, params.weight_for(self, "weight_hh", hr.shape[0]), self.bias_hh), h)

    def update(self, a: Tensor, h: Tensor):
        """The pointwise rest of a step: a (B, H) = W_x x_t + W_h h_{t-1} + b -> (h_t, h_t)."""
        h = self.phi(a)
        return h, h

    def forward(self, x: Tensor, state: Tensor | None = None):
        return params.checked_step(self, x, state, 1)

    def extra_repr(self) -> str:
        act = self.activation or getattr(self.phi, "__name__", "callable")
        return f"{self.input_size}, {self.hidden_size}, activation={act}, bias={self.bias}"
