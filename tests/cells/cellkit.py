"""Helpers every cell test file uses: deterministic parameters, parameter snapshots, error matching."""
import re

import pytest
import torch

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
