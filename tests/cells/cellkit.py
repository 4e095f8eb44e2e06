"""Helpers every cell test file uses: deterministic parameters, parameter snapshots, error matching."""
import re

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

DT = torch.float64


def fill_deterministic_(module):
    """Fixed parameter values: a linspace per parameter (sorted by name), slope and direction varying."""
    with torch.no_grad():
        for k, (name, p) in enumerate(sorted(module.named_parameters())):
            v = torch.linspace(-0.5, 0.5, p.numel(), dtype=DT) * (1.0 + 0.25 * k)
            if k % 2:
                v = v.flip(0)
            p.copy_(v.reshape(p.shape))


def params_of(cell):
    return {n: p.detach() for n, p in cell.named_parameters()}


def _raises(exc, msg):
    return pytest.raises(exc, match=re.escape(msg))


def gradcheck_cell(cell, batch: int = 2) -> bool:
    """torch.autograd.gradcheck of y_t and the new state with respect to x_t, every state tensor and
    every parameter (float64), for a cell whose state is a tensor or a tuple of tensors."""
    names = [n for n, _ in cell.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in cell.named_parameters())
    x = torch.randn(batch, cell.input_size, dtype=DT, requires_grad=True)
    template = cell.initial_state(batch, dtype=DT)
    single = isinstance(template, torch.Tensor)
    states = tuple(torch.randn_like(s).requires_grad_() for s in ([template] if single else template))
    n = len(states)

    def f(x, *rest):
        state = rest[0] if single else tuple(rest[:n])
        y, new = functional_call(cell, dict(zip(names, rest[n:])), (x, state))
        return (y, new) if single else (y, *new)

    return gradcheck(f, (x, *states, *params))
