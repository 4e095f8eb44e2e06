"""Parameter creation and initialisation shared by the cells (plain functions, no base class)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_positive_int


def gate_parameters(module: nn.Module, gates: int, input_size: int, hidden_size: int, recurrent_size: int,
                    bias: bool, device=None, dtype=None) -> None:
    """Register torch-named weight_ih (gates*H, F), weight_hh (gates*H, R), bias_ih, bias_hh (gates*H,)."""
    kw = {"device": device, "dtype": dtype}
    module.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size, **kw))
    module.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, recurrent_size, **kw))
    if bias:
        module.bias_ih = nn.Parameter(torch.empty(gates * hidden_size, **kw))
        module.bias_hh = nn.Parameter(torch.empty(gates * hidden_size, **kw))
    else:
        module.register_parameter("bias_ih", None)
        module.register_parameter("bias_hh", None)


def uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch's RNN initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.uniform_(-bound, bound)


def zeros(module: nn.Module, batch_size: int, size: int, count: int, device=None, dtype=None):
    """count zero tensors (B, size) on the module's device and dtype (or the ones given)."""
    check_positive_int(type(module).__name__, "batch_size", batch_size)
    ref = module.weight_hh
    kw = {"device": device or ref.device, "dtype": dtype or ref.dtype}
    states = tuple(torch.zeros(batch_size, size, **kw) for _ in range(count))
    return states[0] if count == 1 else states
