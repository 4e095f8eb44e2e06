r"""Adaptive Computation Time (Graves 2016; lecture 003, "Attention and Augmented RNNs"), around any rnnkit cell.

A recurrent network normally takes one step per input. With ACT it *ponders*: it takes as many steps
:math:`n = 1, 2, \dots, N(t)` on the same input as it decides to, and a halting unit says when to stop.
Graves (2016), section 2, with :math:`\mathcal{S}` the wrapped cell:

.. math::
    x^n_t &= [x_t;\ \delta_{n,1}] \qquad \text{(a binary flag: 1 on the first ponder step only)}\\
    s^n_t &= \mathcal{S}(s^{n-1}_t, x^n_t), \quad s^0_t = s_{t-1}, \qquad y^n_t = \text{the cell's output}\\
    h^n_t &= \sigma(W_h y^n_t + b_h) \qquad \text{(the halting unit)}\\
    N(t) &= \min\Big\{M,\ \min\{n' : \textstyle\sum_{n=1}^{n'} h^n_t \ge 1 - \epsilon\}\Big\}
        \qquad \text{(M: the most ponder steps, } \epsilon \text{: the threshold's slack)}\\
    R(t) &= 1 - \textstyle\sum_{n=1}^{N(t)-1} h^n_t \qquad \text{(the remainder)}\\
    p^n_t &= h^n_t \text{ for } n < N(t), \qquad p^{N(t)}_t = R(t) \qquad (\textstyle\sum_n p^n_t = 1)\\
    s_t &= \textstyle\sum_{n=1}^{N(t)} p^n_t s^n_t, \qquad y_t = \sum_{n=1}^{N(t)} p^n_t y^n_t
        \qquad \text{(mean-field state and output)}\\
    \rho_t &= N(t) + R(t), \qquad \hat L(x, y) = L(x, y) + \tau \textstyle\sum_t \rho_t
        \qquad \text{(the ponder cost, weighted by the time penalty } \tau)

:math:`N(t)` is a step count and has no gradient; the ponder cost is minimised through :math:`R(t)`, which
pushes the halting probabilities of the steps before the last up (fewer steps) -- exactly Graves's
:math:`\partial \mathcal{P} / \partial h^n_t = -1` for :math:`n < N(t)`. With ``max_steps = 1`` every input
takes one step with :math:`p = 1`: the plain recurrent network, the baseline of Graves's experiments.

Decisions: the halting unit reads the cell's output :math:`y^n_t` (which is the state :math:`s^n_t` for Elman
and GRU cells; for an LSTM it is :math:`h`, while the mean field covers both :math:`h` and :math:`c`); the
output of a step is the mean field of the cell's outputs, and a linear layer on top of it gives the same
:math:`y_t` as Graves's :math:`\sum_n p^n_t (W_y s^n_t + b_y)` because :math:`\sum_n p^n_t = 1`. The halting
bias starts at ``halting_bias`` = 1: :math:`\sigma(1) \approx 0.73`, so an untrained network halts after two
steps and pondering starts short.

Legend: B batch, T time (inputs), F input features, H the cell's output size, n ponder step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_sequences, check_step_input
from ..layers.lengths import check_lengths, time_mask
from ..layers.rnn import KINDS, make_cell
from ..layers.state import map_state

__all__ = ["ACT", "ACTConfig", "ACTModel", "Halting", "Pondered"]


class Halting(NamedTuple):
    """How long each input was pondered: ``steps`` N(t), ``remainder`` R(t) and ``cost`` ρ_t = N(t) + R(t), each
    (B,) for one input or (B, T) for a sequence (0 at padded steps). ``cost`` carries the gradient."""

    steps: Tensor
    remainder: Tensor
    cost: Tensor


def _check_float(owner: str, name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: expected {name} to be a number, got {type(value).__name__} {value!r}")
    if not lo < value < hi:
        raise ValueError(f"{owner}: expected {name} in ({lo}, {hi}), got {value}")
    return float(value)


class ACT(nn.Module):
    r"""Adaptive Computation Time around ``cell`` (equations in the module docstring).

    The cell reads the input and the first-step flag, so build it with ``input_size = F + 1``:
    ``ACT(ElmanCell(64 + 1, 128))`` ponders over inputs of 64 features.

    Args:
        cell: any rnnkit cell (``forward(x, state) -> (y, state)``, ``initial_state(B)``).
        epsilon: :math:`\epsilon`, halting when the halting probabilities reach :math:`1 - \epsilon`
            (Graves: 0.01); in (0, 1).
        max_steps: :math:`M`, the most ponder steps per input (>= 1).
        halting_bias: the initial :math:`b_h`.

    Shape:
        ``step``: x_t (B, F), state -> y_t (B, H), state, :class:`Halting` of (B,) tensors.
        ``forward``: x (B, T, F), state, lengths (B,) or None -> outputs (B, T, H), state, Halting of (B, T).

    Example::

        >>> act = ACT(rk.cells.ElmanCell(64 + 1, 128))
        >>> y, state, halting = act(torch.randn(8, 5, 64))
        >>> y.shape, halting.steps.shape
        (torch.Size([8, 5, 128]), torch.Size([8, 5]))
    """

    def __init__(self, cell: nn.Module, *, epsilon: float = 0.01, max_steps: int = 100, halting_bias: float = 1.0):
        super().__init__()
        for attr in ("initial_state", "input_size", "output_size"):
            if not hasattr(cell, attr):
                raise TypeError(f"ACT: expected a cell with forward(x, state), initial_state(batch_size), "
                                f"input_size and output_size; {type(cell).__name__} has no {attr}")
        if cell.input_size < 2:
            raise ValueError(f"ACT: expected a cell with input_size >= 2 (the input's features + the first-step "
                             f"flag), got input_size {cell.input_size}")
        self.cell = cell
        self.input_size, self.output_size = cell.input_size - 1, cell.output_size
        self.epsilon = _check_float("ACT", "epsilon", epsilon, 0.0, 1.0)
        self.max_steps = check_positive_int("ACT", "max_steps", max_steps)
        self.halting_bias = float(halting_bias)
        self.halt = nn.Linear(cell.output_size, 1)  # W_h, b_h
        with torch.no_grad():
            self.halt.bias.fill_(self.halting_bias)

    def initial_state(self, batch_size: int, **kwargs):
        return self.cell.initial_state(batch_size, **kwargs)

    def step(self, x: Tensor, state=None):
        """Ponder on one input x (B, F) from ``state`` (s_{t-1}): returns y_t (B, H), s_t, Halting of (B,)."""
        check_step_input("ACT", x, self.input_size)
        B = x.shape[0]
        if state is None:
            state = self.cell.initial_state(B, device=x.device, dtype=x.dtype)
        flag = x.new_zeros(B, 1)
        first, later = torch.cat([x, flag + 1], dim=1), torch.cat([x, flag], dim=1)  # x^1_t, x^n_t (n > 1)
        total = x.new_zeros(B)  # Σ h^n over the steps taken so far by the inputs still pondering
        running = torch.ones(B, dtype=torch.bool, device=x.device)
        steps, remainder = x.new_zeros(B), x.new_zeros(B)
        y_mean, s_mean = 0.0, None
        s = state
        for n in range(1, self.max_steps + 1):
            y, s = self.cell(first if n == 1 else later, s)  # y^n_t, s^n_t
            h = torch.sigmoid(self.halt(y)).squeeze(1)  # h^n_t (B,)
            halts = running & ((total + h >= 1 - self.epsilon) | (n == self.max_steps))  # n = N(t) for these rows
            p = torch.where(halts, 1 - total, torch.where(running, h, torch.zeros_like(h)))  # p^n_t (0 once halted)
            remainder = torch.where(halts, 1 - total, remainder)  # R(t) = 1 − Σ_{n < N(t)} h^n_t
            steps = torch.where(halts, torch.full_like(steps, n), steps)
            total = total + torch.where(running & ~halts, h, torch.zeros_like(h))
            running = running & ~halts
            y_mean = y_mean + p.unsqueeze(1) * y
            s_mean = map_state(lambda v: p.unsqueeze(1) * v, s) if s_mean is None else \
                map_state(lambda acc, v: acc + p.unsqueeze(1) * v, s_mean, s)
            if not bool(running.any()):
                break
        return y_mean, s_mean, Halting(steps, remainder, steps + remainder)

    def forward(self, x: Tensor, state=None, lengths=None):
        """Ponder on every input of x (B, T, F); steps past a sequence's length keep its state and report 0."""
        B, T = check_sequences("ACT", x, self.input_size, batch_first=True)
        lengths = check_lengths("ACT", lengths, B, T)
        mask = None if lengths is None else time_mask(lengths, T, x.device)  # (T, B)
        if state is None:
            state = self.cell.initial_state(B, device=x.device, dtype=x.dtype)
        outputs, halting = [], []
        for t, x_t in enumerate(x.unbind(1)):
            y, new, info = self.step(x_t, state)
            if mask is not None:
                m = mask[t]  # (B,)
                new = map_state(lambda a, b: torch.where(m.unsqueeze(1), a, b), new, state)
                y = y * m.unsqueeze(1)
                info = Halting(*(v * m for v in info))
            state = new
            outputs.append(y)
            halting.append(info)
        stacked = Halting(*(torch.stack(parts, dim=1) for parts in zip(*halting)))  # each (B, T)
        return torch.stack(outputs, dim=1), state, stacked

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, max_steps={self.max_steps}, halting_bias={self.halting_bias}"


@dataclass
class ACTConfig:
    input_size: int  # F
    output_size: int  # O
    cell: str = "rnn"  # any rnnkit cell kind; Graves's parity network is a tanh RNN of 128 units
    hidden_size: int = 128
    epsilon: float = 0.01
    max_steps: int = 100
    halting_bias: float = 1.0

    def __post_init__(self):
        for name in ("input_size", "output_size", "hidden_size", "max_steps"):
            check_positive_int("ACTConfig", name, getattr(self, name))
        if self.cell not in KINDS:
            raise ValueError(f"ACTConfig: expected cell in {sorted(KINDS)}, got {self.cell!r}")
        _check_float("ACTConfig", "epsilon", self.epsilon, 0.0, 1.0)
        _check_float("ACTConfig", "halting_bias", self.halting_bias, float("-inf"), float("inf"))


class Pondered(NamedTuple):
    """An ACT model's predictions: ``logits`` (B, T, O) and how long each input was pondered (Halting of (B, T))."""

    logits: Tensor
    halting: Halting


class ACTModel(nn.Module):
    """A cell of ``config.cell`` with ACT, then a linear output layer: ``Pondered(logits, halting), state =
    model(x, state=None, lengths=None)`` -- the Trainer's contract, with the ponder cost beside the logits so the
    loss can add τ Σ_t ρ_t.

    Example::

        >>> model = ACTModel(ACTConfig(input_size=64, output_size=1))     # the parity task
        >>> out, state = model(torch.randn(16, 1, 64))
        >>> out.logits.shape, out.halting.cost.shape
        (torch.Size([16, 1, 1]), torch.Size([16, 1]))
    """

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.config = c = config
        cell = make_cell(c.cell, c.input_size + 1, c.hidden_size)
        self.act = ACT(cell, epsilon=c.epsilon, max_steps=c.max_steps, halting_bias=c.halting_bias)
        self.head = nn.Linear(self.act.output_size, c.output_size)

    def forward(self, x: Tensor, state=None, lengths=None):
        out, state, halting = self.act(x, state, lengths)  # (B, T, H)
        return Pondered(self.head(out), halting), state  # logits (B, T, O)
