"""Layer-normalised LSTM cell (Ba, Kiros & Hinton 2016, "Layer Normalization", section 6.3 / appendix)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from ..kernels.layer_norm_lstm import layer_norm_lstm_sequence
from . import params


class LayerNormLSTMCell(nn.Module):
    r"""One step of the layer-normalised LSTM of Ba et al. 2016.

    .. math::
        (i_t, f_t, g_t, o_t) &= \mathrm{LN}(W_x x_t; \gamma_x, \beta_x) + \mathrm{LN}(W_h h_{t-1}; \gamma_h, \beta_h)\\
        c_t &= \sigma(f_t) \odot c_{t-1} + \sigma(i_t) \odot \tanh(g_t)\\
        y_t &= h_t = \sigma(o_t) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))

    :math:`\mathrm{LN}(a; \gamma, \beta) = \gamma \odot (a - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`, with
    :math:`\mu, \sigma^2` the mean and variance over the features of each row: over all 4H gate inputs at once for
    the two products (as the paper normalises the whole summed input of the layer), over H for the cell state.
    The paper's separate bias b is :math:`\beta_x + \beta_h` here (it would be redundant); every γ starts at 1
    and every β at 0 (``forget_bias`` sets the forget rows of :math:`\beta_x`).

    Parameters: ``weight_ih`` (4H, F), ``weight_hh`` (4H, H), gate rows i, f, g, o as in
    :class:`LSTMCell`; ``norm_ih_weight``, ``norm_ih_bias``, ``norm_hh_weight``, ``norm_hh_bias`` (4H,);
    ``norm_c_weight``, ``norm_c_bias`` (H,). Layers run the whole sequence with a hand-written backward pass
    (:mod:`rnnkit.kernels.layer_norm_lstm`).

    Shape:
        x_t: (B, F); state (h_{t-1}, c_{t-1}): two (B, H); returns y_t = h_t: (B, H) and (h_t, c_t).
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, *, eps: float = 1e-5, forget_bias: float | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.input_size = check_positive_int("LayerNormLSTMCell", "input_size", input_size)
        self.hidden_size = self.output_size = check_positive_int("LayerNormLSTMCell", "hidden_size", hidden_size)
        if not eps > 0:
            raise ValueError(f"LayerNormLSTMCell: expected eps > 0, got {eps!r}")
        self.eps, self.forget_bias = eps, forget_bias
        params.gate_parameters(self, 4, input_size, hidden_size, hidden_size, False, device, dtype)
        kw = {"device": device, "dtype": dtype}
        for name, size in (("ih", 4 * hidden_size), ("hh", 4 * hidden_size), ("c", hidden_size)):
            setattr(self, f"norm_{name}_weight", nn.Parameter(torch.empty(size, **kw)))
            setattr(self, f"norm_{name}_bias", nn.Parameter(torch.empty(size, **kw)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)
        with torch.no_grad():
            for name in ("ih", "hh", "c"):
                getattr(self, f"norm_{name}_weight").fill_(1.0)
                getattr(self, f"norm_{name}_bias").zero_()
            if self.forget_bias is not None:
                H = self.hidden_size
                self.norm_ih_bias[H:2 * H].fill_(self.forget_bias)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        return params.zeros(self, batch_size, self.hidden_size, 2, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """LN(W_x x; γ_x, β_x) for any leading shape (..., F) -> (..., 4H): one GEMM for all time steps."""
        return F.layer_norm(F.linear(x, self.weight_ih), (4 * self.hidden_size,), self.norm_ih_weight,
                            self.norm_ih_bias, self.eps)

    def step(self, xp: Tensor, state: tuple[Tensor, Tensor], recurrent_mask: Tensor | None = None):
        """One step from xp (B, 4H); recurrent_mask (B, H) drops h_{t-1} inside W_h h_{t-1} only."""
        h, c = state
        H = self.hidden_size
        hr = h if recurrent_mask is None else h * recurrent_mask
        a = xp + F.layer_norm(F.linear(hr, self.weight_hh), (4 * H,), self.norm_hh_weight, self.norm_hh_bias, self.eps)
        i, f, g, o = a.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_hat = F.layer_norm(c, (H,), self.norm_c_weight, self.norm_c_bias, self.eps)
        h = torch.sigmoid(o) * torch.tanh(c_hat)
        return h, (h, c)

    def sequence(self, xs: Tensor, state: tuple[Tensor, Tensor], mask: Tensor | None = None,
                 recurrent_mask: Tensor | None = None):
        """All T steps at once (:mod:`rnnkit.kernels.layer_norm_lstm`): xs (T, B, F) -> (outputs (T, B, H), (h_T, c_T))."""
        if not params.sequence_applies(self, LayerNormLSTMCell):
            return None
        return params.run_sequence(layer_norm_lstm_sequence, F.linear(xs, self.weight_ih), state, self.weight_hh,
                                   self.norm_ih_weight, self.norm_ih_bias, self.norm_hh_weight, self.norm_hh_bias,
                                   self.norm_c_weight, self.norm_c_bias, eps=self.eps, mask=mask,
                                   recurrent_mask=recurrent_mask)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        return params.checked_step(self, x, state, 2)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, eps={self.eps}"
