"""Long short-term memory cell (Hochreiter & Schmidhuber 1997), with optional peepholes (Gers & Schmidhuber 2000)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from ..kernels.lstm import lstm_sequence
from . import params


class LSTMCell(nn.Module):
    r"""One LSTM step, as lectures 000–004 write it.

    .. math::
        i_t &= \sigma(W_{xi} x_t + W_{hi} h_{t-1} + b_i)\\
        f_t &= \sigma(W_{xf} x_t + W_{hf} h_{t-1} + b_f)\\
        g_t &= \tanh(W_{xg} x_t + W_{hg} h_{t-1} + b_g)\\
        o_t &= \sigma(W_{xo} x_t + W_{ho} h_{t-1} + b_o)\\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t\\
        y_t &= h_t = o_t \odot \tanh(c_t)

    With ``peephole=True`` (Gers & Schmidhuber 2000; lecture 003's
    :math:`f_t = \sigma(W_f\cdot[C_{t-1}, h_{t-1}, x_t] + b_f)`) the cell state also feeds the gates,
    through diagonal peephole weights as in Gers et al. and TensorFlow's ``use_peepholes``:
    :math:`c_{t-1}` into :math:`i_t` and :math:`f_t` (``weight_ci``, ``weight_cf``), the *new*
    :math:`c_t` into :math:`o_t` (``weight_co``), e.g. :math:`o_t = \sigma(\dots + w_{co} \odot c_t)`.

    Parameters follow ``torch.nn.LSTMCell`` — ``weight_ih`` (4H, F), ``weight_hh`` (4H, H),
    ``bias_ih``, ``bias_hh`` (4H,), gate rows in the order i, f, g, o, with :math:`b` =
    ``bias_ih + bias_hh`` — so its state dict loads here and back.

    Args:
        input_size: F. hidden_size: H.
        peephole: add the peephole connections (then no torch fused kernel applies).
        forget_bias: if given, initialise the forget-gate bias to this value (Jozefowicz et al. 2015
            recommend 1.0; Keras ``unit_forget_bias``): ``bias_ih[H:2H] = forget_bias``,
            ``bias_hh[H:2H] = 0``. Default ``None`` keeps torch's initialisation.
        bias: learn the biases.

    Shape:
        x_t: (B, F); state (h_{t-1}, c_{t-1}): two (B, H); returns y_t = h_t: (B, H) and (h_t, c_t).
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, *, peephole: bool = False,
                 forget_bias: float | None = None, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.input_size = check_positive_int("LSTMCell", "input_size", input_size)
        self.hidden_size = self.output_size = check_positive_int("LSTMCell", "hidden_size", hidden_size)
        self.peephole, self.forget_bias, self.bias = peephole, forget_bias, bias
        params.gate_parameters(self, 4, input_size, hidden_size, hidden_size, bias, device, dtype)
        if peephole:
            kw = {"device": device, "dtype": dtype}
            self.weight_ci = nn.Parameter(torch.empty(hidden_size, **kw))
            self.weight_cf = nn.Parameter(torch.empty(hidden_size, **kw))
            self.weight_co = nn.Parameter(torch.empty(hidden_size, **kw))
        if forget_bias is not None and not bias:
            raise ValueError("LSTMCell: forget_bias needs bias=True, got bias=False")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)
        if self.forget_bias is not None:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H:2 * H].fill_(self.forget_bias)
                self.bias_hh[H:2 * H].zero_()

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        return params.zeros(self, batch_size, self.hidden_size, 2, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """W_x x + b_ih for all four gates: (..., F) -> (..., 4H)."""
        return params.project(self, x)

    def step(self, xp: Tensor, state: tuple[Tensor, Tensor], recurrent_mask: Tensor | None = None):
        """One step from xp (B, 4H); recurrent_mask (B, H) drops h_{t-1} inside W_h h_{t-1} only."""
        h, c = state
        hr = h if recurrent_mask is None else h * recurrent_mask
        return self.update(xp + F.linear(hr, params.weight_for(self, "weight_hh", hr.shape[0]), self.bias_hh), state)

    def update(self, gates: Tensor, state: tuple[Tensor, Tensor]):
        """The pointwise rest of a step: gates (B, 4H) = W_x x_t + W_h h_{t-1} + b -> (h_t, (h_t, c_t))."""
        c = state[1]
        i, f, g, o = gates.chunk(4, dim=1)
        if not self.peephole:  # eight ops, one fewer than below (generation runs this once per layer and token)
            c = torch.addcmul(f.sigmoid() * c, i.sigmoid(), g.tanh())
            h = o.sigmoid() * c.tanh()
            return h, (h, c)
        i = i + self.weight_ci * c
        f = f + self.weight_cf * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        o = o + self.weight_co * c
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def sequence(self, xs: Tensor, state: tuple[Tensor, Tensor], mask: Tensor | None = None,
                 recurrent_mask: Tensor | None = None):
        """All T steps at once (:mod:`rnnkit.kernels.lstm`): xs (T, B, F) -> (outputs (T, B, H), (h_T, c_T))."""
        if not params.sequence_applies(self, LSTMCell):
            return None
        peep = torch.stack([self.weight_ci, self.weight_cf, self.weight_co]) if self.peephole else None
        return params.run_sequence(lstm_sequence, params.project_all(self, xs), state, self.weight_hh, peep,
                                   mask=mask, recurrent_mask=recurrent_mask)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        return params.checked_step(self, x, state, 2)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, peephole={self.peephole}, bias={self.bias}"
