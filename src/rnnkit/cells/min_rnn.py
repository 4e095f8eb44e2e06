r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that read only x_t.

Without :math:`h_{t-1}` in the gates both cells are one linear recurrence with a keep gate
:math:`a_t \in (0, 1)` computed from the inputs alone,

.. math::
    h_t = a_t \odot h_{t-1} + (1 - a_t) \odot \tilde h_t,

so a whole sequence needs one input GEMM and then either

* ``mode="sequential"``: a loop of one fused multiply-add per step, inside a ``torch.autograd.Function``
  whose backward is the same recurrence run backwards (:class:`LinearScan`), or
* ``mode="parallel"``: the log-space scan of Heinsen (2023), Feng et al.'s Algorithm 2 / 4:
  :math:`\log h_t = A_t + \operatorname{logcumsumexp}_{s \le t}(\log((1 - a_s)\tilde h_s) - A_s)`,
  :math:`A_t = \sum_{s \le t} \log a_s`, a handful of whole-tensor ops and no Python loop over t.

``mode="auto"`` (default) takes the parallel scan on CPU only when a step is tiny. Measured with one thread
(``benchmarks/bench_minrnn.py speed``, forward + backward, 2026-12-07): the loop is faster at every shape with
B·H ≥ 64 (B = 1, H = 64: 1.3x; B = 2, H = 32: 1.2x; B in {1, 8, 64} at H = 128: 1.4-4.3x), the scan only at
B = 1, H = 32 (1.1x), so ``PARALLEL_MAX_WIDTH`` = 32. On other devices ``auto`` takes the scan, whose point is
to replace T kernel launches by a few (Feng et al.'s GPU setting; not measured here).

**The function both modes compute.** The log-space scan needs :math:`\tilde h_t > 0`, so Feng et al.'s
log-space cells use :math:`\tilde h_t = g(\mathrm{Linear}_h(x_t))` with :math:`g(x) = x + 0.5` for
:math:`x \ge 0`, :math:`\sigma(x)` otherwise (continuous, positive, linear for large x). Here **both
modes and** ``step`` **apply g**, so they are one function. The paper also maps the initial state,
:math:`\log g(h_0)`; rnnkit does not: :math:`h_0` enters as given, through the exact extra term
:math:`\exp(A_t) \odot h_0` outside the logarithm, so any real state works (zeros by default, no
:math:`\log 0`) and a state carried between chunks (truncated BPTT) continues the recurrence exactly.
For the paper's initial state pass ``g(h0)``. Float32 caveat: the scan's terms grow like
:math:`|A_t|`, so its rounding error grows with T (measured: 2e-4 of the largest output at T = 4096 with
gates near 1/2, against 1e-7 for the loop).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from . import params

MODES = ("auto", "sequential", "parallel")
PARALLEL_MAX_WIDTH = 32  # CPU: the log-space scan beats the loop for B*H up to this (see the module docstring)


def g(x: Tensor) -> Tensor:
    """Feng et al.'s positive activation: x + 0.5 for x >= 0, sigmoid(x) otherwise."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g(x) (the paper's ``log_g``)."""
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


class LinearScan(torch.autograd.Function):
    r"""h_t = a_t ⊙ h_{t-1} + c_t for t = 1..T: (a, c (T, B, H), h0 (B, H)) -> h_1..h_T (T, B, H).

    Backward, with :math:`\delta_t = \partial L/\partial h_t` summed over every later use:
    :math:`\delta_t = \bar h_t + a_{t+1} \odot \delta_{t+1}` (the same recurrence, reversed),
    :math:`\partial c_t = \delta_t`, :math:`\partial a_t = \delta_t \odot h_{t-1}`,
    :math:`\partial h_0 = a_1 \odot \delta_1`: one fused multiply-add per step, no autograd graph of T nodes.
    """

    @staticmethod
    def forward(ctx, a, c, h0):
        hs = torch.empty_like(c)
        h = h0
        for a_t, c_t, h_t in zip(a.unbind(0), c.unbind(0), hs.unbind(0)):  # unbind: cheaper than hs[t]
            h = torch.addcmul(c_t, a_t, h, out=h_t)
        ctx.save_for_backward(a, hs, h0)
        return hs

    @staticmethod
    def backward(ctx, d_hs):
        a, hs, h0 = ctx.saved_tensors
        delta = d_hs.clone(memory_format=torch.contiguous_format)  # becomes δ in place, = ∂c
        d, a_ = delta.unbind(0), a.unbind(0)
        for t in range(len(d) - 1, 0, -1):
            d[t - 1].addcmul_(a_[t], d[t])
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # (T, B, H)
        return delta * h_prev, delta, a[0] * delta[0]


def log_space_scan(u: Tensor, k: Tensor, h0: Tensor) -> Tensor:
    """Heinsen (2023): h_t = σ(u_t) h_{t-1} + σ(-u_t) g(k_t) for all t at once; u, k (T, B, H), h0 (B, H)."""
    log_a = -F.softplus(-u)  # log a_t = log σ(u_t)
    log_v = log_g(k) - F.softplus(u)  # log (1 - a_t) h̃_t
    A = log_a.cumsum(0)  # log Π_{s<=t} a_s
    return A.exp() * h0 + (A + (log_v - A).logcumsumexp(0)).exp()


def auto_mode(batch: int, hidden: int, device_type: str = "cpu") -> str:
    """What ``mode="auto"`` runs for a (batch, hidden) step on a device type (see the module docstring)."""
    return "parallel" if batch * hidden <= PARALLEL_MAX_WIDTH or device_type != "cpu" else "sequential"


def scan(mode: str, u: Tensor, k: Tensor, h0: Tensor, mask: Tensor | None = None):
    """h_t = σ(u_t) h_{t-1} + σ(-u_t) g(k_t) for u, k (T, B, H), h0 (B, H) -> (outputs (T, B, H), h_T).

    Where mask (T, B) is False the keep logit becomes the largest float: σ(u) = 1 and σ(-u) = 0 exactly,
    so the state is held, and everything stays finite for the log-space scan's gradients. In bf16 / fp16
    (autocast) the log-space scan runs in float32: its terms grow like |A_t|, beyond a 8-bit mantissa."""
    if mask is not None:
        u = u.masked_fill(~mask[..., None], torch.finfo(u.dtype).max)
    if mode == "auto":
        mode = auto_mode(u.shape[1], u.shape[2], u.device.type)
    if mode == "parallel":
        wide = torch.promote_types(u.dtype, torch.float32)
        hs = log_space_scan(u.to(wide), k.to(wide), h0.to(wide)).to(u.dtype)
    else:
        hs = LinearScan.apply(torch.sigmoid(u), torch.sigmoid(-u) * g(k), h0)
    return hs, hs[-1]


def whole_sequence(cell: nn.Module, xs: Tensor, state: Tensor, mask: Tensor | None, recurrent_mask):
    """A cell's ``sequence``: one input GEMM for all T, then :func:`scan` in the cell's mode (under autocast
    in the GEMM's dtype, see ``params.run_sequence``)."""
    no_recurrent_mask(cell, recurrent_mask)

    def run(xp, h0, mask=None):
        return scan(cell.mode, *cell.keep_logit(xp), h0, mask)
    return params.run_sequence(run, params.project(cell, xs), state, mask=mask)


def keep_step(u: Tensor, k: Tensor, h: Tensor) -> Tensor:
    """One step of the recurrence: σ(u) h + σ(-u) g(k), all (B, H)."""
    return torch.addcmul(torch.sigmoid(-u) * g(k), torch.sigmoid(u), h)


def check_mode(owner: str, mode) -> str:
    if mode not in MODES:
        raise ValueError(f"{owner}: expected mode in {MODES}, got {mode!r}")
    return mode


def no_recurrent_mask(cell: nn.Module, recurrent_mask) -> None:
    if recurrent_mask is not None:
        raise ValueError(f"{type(cell).__name__}: recurrent dropout needs h_(t-1) inside the gates, and this cell's "
                         "gates read only x_t; expected recurrent_mask=None")


class _MinCell(nn.Module):
    """What minGRU and minLSTM share: parameters ``weight_ih`` (kH, F), ``bias_ih`` (kH,) and no ``weight_hh``;
    a step and a whole sequence through the keep-gate recurrence; subclasses give ``gates`` = k and
    ``keep_logit``."""

    gates: int

    def __init__(self, input_size: int, hidden_size: int, *, mode: str = "auto", bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = self.output_size = check_positive_int(name, "hidden_size", hidden_size)
        self.mode, self.bias = check_mode(name, mode), bias
        params.gate_parameters(self, self.gates, input_size, hidden_size, 0, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        params.uniform_(self, self.hidden_size)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> Tensor:
        return params.zeros(self, batch_size, self.hidden_size, 1, device, dtype)

    def project_input(self, x: Tensor) -> Tensor:
        """The gates' input products: (..., F) -> (..., kH)."""
        return params.project(self, x)

    @staticmethod
    def keep_logit(xp: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def step(self, xp: Tensor, h: Tensor, recurrent_mask: Tensor | None = None):
        """One step from xp (B, kH)."""
        no_recurrent_mask(self, recurrent_mask)
        h = keep_step(*self.keep_logit(xp), h)
        return h, h

    def sequence(self, xs: Tensor, state: Tensor, mask: Tensor | None = None, recurrent_mask: Tensor | None = None):
        """All T steps as one scan: xs (T, B, F), mask (T, B) or None -> (outputs (T, B, H), h_T)."""
        if type(self) not in (MinGRUCell, MinLSTMCell):  # a user's subclass may change the step: run it step by step
            return None
        return whole_sequence(self, xs, state, mask, recurrent_mask)

    def forward(self, x: Tensor, state: Tensor | None = None):
        return params.checked_step(self, x, state, 1)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, mode={self.mode!r}, bias={self.bias}"


class MinGRUCell(_MinCell):
    r"""One minGRU step (Feng et al. 2024, section 3.1; log-space form, Appendix B):

    .. math::
        z_t &= \sigma(\mathrm{Linear}_z(x_t)),\qquad \tilde h_t = g(\mathrm{Linear}_h(x_t))\\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    with :math:`g(x) = x + 0.5` for :math:`x \ge 0`, :math:`\sigma(x)` otherwise (see :mod:`rnnkit.cells.min_rnn`
    for why g is always applied). Unlike :class:`GRUCell` there is no reset gate and neither gate reads
    :math:`h_{t-1}`: the keep gate is :math:`a_t = 1 - z_t`, and a layer runs all T steps as one scan
    (``mode``: ``"sequential"``, ``"parallel"`` or ``"auto"``, same numbers). No recurrent dropout (no
    recurrent product to drop :math:`h_{t-1}` in).

    Parameters: ``weight_ih`` (2H, F), ``bias_ih`` (2H,), rows z, h; no ``weight_hh``.

    Shape:
        x_t: (B, F); state h_{t-1}: (B, H); returns y_t = h_t: (B, H) and h_t.

    Example::

        >>> cell = MinGRUCell(3, 5)
        >>> y, h = cell(torch.randn(4, 3), cell.initial_state(4))
        >>> y.shape
        torch.Size([4, 5])
    """

    gates = 2

    @staticmethod
    def keep_logit(xp: Tensor) -> tuple[Tensor, Tensor]:
        """(u, k): a = σ(u) = 1 - z and h̃ = g(k), from xp (..., 2H)."""
        k_z, k_h = xp.chunk(2, dim=-1)
        return -k_z, k_h


class MinLSTMCell(_MinCell):
    r"""One minLSTM step (Feng et al. 2024, section 3.2, with the normalised gates of its length-independent
    form; log-space form, Appendix B):

    .. math::
        f_t &= \sigma(\mathrm{Linear}_f(x_t)),\quad i_t = \sigma(\mathrm{Linear}_i(x_t)),\quad
        \tilde h_t = g(\mathrm{Linear}_h(x_t))\\
        f'_t &= \frac{f_t}{f_t + i_t},\quad i'_t = \frac{i_t}{f_t + i_t}\\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    g as in :class:`MinGRUCell`. There is no cell state and no output gate; since :math:`f'_t + i'_t = 1`
    the keep gate is :math:`a_t = f'_t = \sigma(\log f_t - \log i_t)`, and the layer runs the same scan as
    minGRU (``mode`` likewise). No recurrent dropout.

    Parameters: ``weight_ih`` (3H, F), ``bias_ih`` (3H,), rows f, i, h; no ``weight_hh``.

    Shape:
        x_t: (B, F); state h_{t-1}: (B, H); returns y_t = h_t: (B, H) and h_t.
    """

    gates = 3

    @staticmethod
    def keep_logit(xp: Tensor) -> tuple[Tensor, Tensor]:
        """(u, k): a = σ(u) = f' with u = log f - log i, and h̃ = g(k), from xp (..., 3H)."""
        k_f, k_i, k_h = xp.chunk(3, dim=-1)
        return F.softplus(-k_i) - F.softplus(-k_f), k_h  # log σ(x) = -softplus(-x)
