r"""Hard attention (lecture 004): the decoder reads *one* source position, trained with Gumbel-softmax
straight-through.

Lecture 004 contrasts soft attention (a real weight in [0, 1] for every position, differentiable) with
hard attention (a weight of 1 on one position and 0 elsewhere: fast, but not differentiable, so it "needs
a different mechanism to train: reinforcement learning, variance reduction"). Here the position is drawn
from the same distribution soft attention would use,

.. math::
    \alpha_t = \operatorname{softmax}_s \operatorname{score}(h_t, \bar h_s), \qquad
    j_t \sim \operatorname{Categorical}(\alpha_t), \qquad c_t = \bar h_{j_t}

**Estimator: Gumbel-softmax straight-through** (Jang, Gu & Poole 2017; Maddison et al. 2017; Bengio et al.
2013), not REINFORCE. In training, :math:`j_t = \arg\max_s (\log \alpha_{ts} + g_s)` with
:math:`g_s \sim \mathrm{Gumbel}(0, 1)` is an exact sample of :math:`\alpha_t`; the forward pass uses the
one-hot :math:`e_{j_t}`, and the backward pass the gradient of the relaxed sample
:math:`y = \operatorname{softmax}((\log \alpha_t + g) / \tau)`. This biased but low-variance estimator
needs no reward, baseline or extra loss term, so the model trains with the ordinary cross-entropy like
every other attention here (REINFORCE with a baseline, Show-Attend-and-Tell's choice, would need the
per-sentence loss as a reward inside the training loop). In evaluation the position is the mode,
:math:`j_t = \arg\max_s \alpha_{ts}` (deterministic decoding).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from .luong import LuongScore
from .masking import attend, check_attention_inputs, expand_mask


class HardAttention(nn.Module):
    r"""One source position per query: sampled (Gumbel straight-through) in training, the argmax in evaluation.

    Args:
        query_size, memory_size: as :class:`~rnnkit.attention.luong.LuongAttention`.
        score: the score that gives :math:`\alpha_t`: ``"general"`` (default), ``"dot"`` or ``"concat"``.
        temperature: :math:`\tau > 0` of the relaxed sample whose gradient the backward pass uses.
        attention_size: concat only: the score network's hidden size.

    Shape:
        as :class:`~rnnkit.attention.luong.LuongAttention`; the weights are one-hot rows (exactly one 1, at a
        real position), with the straight-through gradient in training.
    """

    def __init__(self, query_size: int, memory_size: int, *, score: str = "general", temperature: float = 1.0,
                 attention_size: int | None = None):
        super().__init__()
        check_positive_int("HardAttention", "query_size", query_size)
        check_positive_int("HardAttention", "memory_size", memory_size)
        if not temperature > 0:
            raise ValueError(f"HardAttention: expected temperature > 0, got {temperature}")
        self.query_size, self.memory_size, self.temperature = query_size, memory_size, float(temperature)
        self.score = LuongScore(score, query_size, memory_size, attention_size)

    def keys(self, memory: Tensor) -> Tensor:
        return self.score.keys(memory)

    def forward(self, query: Tensor, memory: Tensor, mask: Tensor | None = None, *, keys: Tensor | None = None,
                step=None) -> tuple[Tensor, Tensor]:
        """``step`` is part of the shared interface; only local-m attention reads it."""
        check_attention_inputs("HardAttention", query, memory, mask, self.query_size, self.memory_size)
        scores = self.score(query, self.keys(memory) if keys is None else keys).float()  # log α up to a constant
        mask = expand_mask(mask, scores)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))  # never drawn, never the argmax
        if self.training:
            weights = F.gumbel_softmax(scores, tau=self.temperature, hard=True, dim=-1)  # one-hot, ST gradient
        else:
            weights = F.one_hot(scores.argmax(dim=-1), scores.shape[-1]).to(scores.dtype)
        if mask is not None:
            weights = weights.masked_fill(~mask, 0.0)  # the relaxed sample's exact zeros, also in the gradient
        return attend(weights, memory), weights.to(memory.dtype)
