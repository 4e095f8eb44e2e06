"""Gradient-flow diagnostics: how much of the loss's gradient reaches each time step (lecture 002).

For a loss L computed from the outputs, ``hidden_gradient_norms`` returns ||dL/dh_t|| for every t: the
*total* derivative through the recurrence (what BPTT propagates), not just the direct path from y_t.
With a loss on the last step only, an Elman RNN's norms shrink geometrically going back in time (the
eigenvalues of W_h times tanh' < 1) while an LSTM's cell path keeps them alive.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..layers.state import map_state


def hidden_gradient_norms(cell, x: Tensor, loss_fn: Callable[[Tensor], Tensor], state=None) -> Tensor:
    """||dL/dh_t||_2 (summed over the batch) for t = 1..T, running ``cell`` over x (B, T, F).

    loss_fn maps the outputs (B, T, O) to a scalar. For cells whose state is a tuple (LSTM: (h, c)),
    h_t is the first element. Returns a (T,) tensor.
    """
    B, T, _ = x.shape
    state = cell.initial_state(B, device=x.device, dtype=x.dtype) if state is None else state
    hidden, outputs = [], []
    for t in range(T):
        y, state = cell(x[:, t], state)
        state = map_state(lambda s: s.requires_grad_(True) if not s.requires_grad else s, state)
        h = state if isinstance(state, Tensor) else state[0]
        h.retain_grad()
        hidden.append(h)
        outputs.append(y)
    loss = loss_fn(torch.stack(outputs, dim=1))
    loss.backward()
    return torch.stack([h.grad.norm() if h.grad is not None else h.new_zeros(()) for h in hidden]).detach()
