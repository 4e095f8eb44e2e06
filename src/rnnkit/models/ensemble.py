r"""An ensemble of language models: the average of their next-token distributions.

For K models over one vocabulary, each run over the same tokens with its own state,

.. math::
    p(y_t \mid y_{<t}) = \frac{1}{K} \sum_{k=1}^{K} p_k(y_t \mid y_{<t}),\qquad
    \log p = \operatorname{logsumexp}_k \log \operatorname{softmax}(z^{(k)}_t) - \log K

The ensemble returns :math:`\log p` in place of logits. Since :math:`\sum_y p = 1`, softmax and log-softmax
give back p and log p unchanged, so the cross-entropy, the evaluation and the samplers take it as they take
one model's logits. Averaging probabilities (not logits) is what makes the loss of the average at most the
average loss of the members (Jensen's inequality); with members trained from different seeds it is usually
well below it.

Shapes: ids (B, T) -> log p (B, T, V), and ``step``: ids (B,) -> log p (B, V); the state is the list of the
members' states (each member's own structure).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.state import describe


class Ensemble(nn.Module):
    """``log_p, states = ensemble(ids, states)`` over ``models``, which share one vocabulary."""

    def __init__(self, models):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("Ensemble: expected at least one model, got none")
        sizes = {m.config.vocab_size for m in models}
        if len(sizes) != 1:
            raise ValueError(f"Ensemble: expected models over one vocabulary, got vocabulary sizes {sorted(sizes)}")
        self.members = nn.ModuleList(models)
        self.config = models[0].config  # vocab_size and the like, as callers read them from one model

    def _states(self, states):
        if states is None:
            return [None] * len(self.members)
        if not isinstance(states, list) or len(states) != len(self.members):
            raise ValueError(f"Ensemble: expected a list of {len(self.members)} member states, got {describe(states)}")
        return states

    @staticmethod
    def _combine(outs: list[tuple[Tensor, object]]):
        """The members' (logits, state) pairs -> (log of the mean of their softmax, list of their states)."""
        log_p = torch.stack([F.log_softmax(z.float(), dim=-1) for z, _ in outs])  # (K, ..., V)
        return torch.logsumexp(log_p, dim=0) - math.log(len(outs)), [s for _, s in outs]

    def forward(self, ids: Tensor, states=None, lengths=None):
        return self._combine([m(ids, s) if lengths is None else m(ids, s, lengths=lengths)
                              for m, s in zip(self.members, self._states(states))])

    def step(self, ids: Tensor, states=None):
        """One token per sequence: ids (B,) -> log p (B, V), the members' new states."""
        return self._combine([m.step(ids, s) for m, s in zip(self.members, self._states(states))])

    def stepper(self, precision: str = "fp32"):
        """``step`` with each member's prepared stepper (see ``LanguageModel.stepper``)."""
        steps = [m.stepper(precision) for m in self.members]

        def step(ids: Tensor, states=None):
            return self._combine([f(ids, s) for f, s in zip(steps, self._states(states))])

        return step
