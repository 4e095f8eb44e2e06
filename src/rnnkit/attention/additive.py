r"""Bahdanau (additive) attention over bidirectional annotations (lectures 000 and 004; Bahdanau et al. 2015).

Lecture 000: the encoder is a bidirectional RNN whose annotation :math:`h_j = [\overrightarrow{h}_j;
\overleftarrow{h}_j]` summarises the words before and after :math:`x_j`; the decoder's :math:`i`-th context
vector is the expected annotation

.. math::
    c_i = \sum_{j=1}^{T_x} \alpha_{ij} h_j, \qquad
    \alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k=1}^{T_x} \exp(e_{ik})}, \qquad
    e_{ij} = a(s_{i-1}, h_j) = v^\top \tanh(W s_{i-1} + U h_j)

where :math:`s_{i-1}` is the decoder state *before* step :math:`i` (lecture 004: "decoder hidden state
after step i - 1") and :math:`a` is a one-hidden-layer network (lecture 000's "nonlinear activation"
alignment score; the dot product and the bilinear form are :class:`~rnnkit.attention.luong.LuongAttention`'s
``dot`` and ``general``). :math:`U h_j` does not depend on :math:`i`: :meth:`BahdanauAttention.keys`
computes it once per source sentence and the decoder passes it back at every step.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_positive_int
from .masking import attend, check_attention_inputs, masked_softmax


class AdditiveScore(nn.Module):
    r"""e = v^T tanh(W q + U h): the score network of Bahdanau attention and of Luong's ``concat``.

    ``keys(memory)`` is :math:`U h_j` (B, S, A); ``forward(query, keys)`` the scores (B, S) or (B, T, S).
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int):
        super().__init__()
        for name, value in (("query_size", query_size), ("memory_size", memory_size),
                            ("attention_size", attention_size)):
            check_positive_int("AdditiveScore", name, value)
        self.W = nn.Linear(query_size, attention_size, bias=False)
        self.U = nn.Linear(memory_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.U(memory)  # (B, S, A)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.W(query)  # (B, A) or (B, T, A)
        q = q[:, None, :] if q.dim() == 2 else q[:, :, None, :]  # (B, 1, A) or (B, T, 1, A)
        k = keys if q.dim() == 3 else keys[:, None]  # (B, S, A) or (B, 1, S, A)
        return self.v(torch.tanh(q + k)).squeeze(-1)  # (B, S) or (B, T, S)


class BahdanauAttention(nn.Module):
    r"""Additive attention: :math:`e_{ij} = v^\top \tanh(W s_{i-1} + U h_j)`, :math:`\alpha_i =
    \mathrm{softmax}(e_i)` over the real source positions, :math:`c_i = \sum_j \alpha_{ij} h_j`.

    Args:
        query_size: size of the decoder state :math:`s_{i-1}`.
        memory_size: size of an annotation :math:`h_j` (2 H for a bidirectional encoder of H per direction).
        attention_size: A, the hidden size of the score network (rows of W and U, length of v).

    Shape:
        query (B, Hq) (one decoder step) or (B, T, Hq); memory (B, S, Hm); mask (B, S) bool, True at real
        positions (None: all real); keys (B, S, A) from :meth:`keys` (optional). Returns context (B, Hm)
        or (B, T, Hm) and weights (B, S) or (B, T, S), exactly 0 at masked positions.

    Example::

        >>> attn = BahdanauAttention(32, 64, 16)
        >>> mask = source_mask(torch.tensor([7, 5, 2, 1]), 7)  # (4, 7): True at the real positions
        >>> context, weights = attn(torch.randn(4, 32), torch.randn(4, 7, 64), mask)
        >>> context.shape, weights.shape
        (torch.Size([4, 64]), torch.Size([4, 7]))
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int):
        super().__init__()
        self.query_size, self.memory_size = query_size, memory_size
        self.score = AdditiveScore(query_size, memory_size, attention_size)

    def keys(self, memory: Tensor) -> Tensor:
        """U h_j for every source position, (B, S, A): compute once per source, pass as ``keys=``."""
        return self.score.keys(memory)

    def forward(self, query: Tensor, memory: Tensor, mask: Tensor | None = None, *, keys: Tensor | None = None,
                step=None) -> tuple[Tensor, Tensor]:
        """``step`` (the decoder position) is part of the shared interface; only local-m attention reads it."""
        check_attention_inputs("BahdanauAttention", query, memory, mask, self.query_size, self.memory_size)
        scores = self.score(query, self.keys(memory) if keys is None else keys)  # e: (B, S) or (B, T, S)
        weights = masked_softmax(scores, mask)  # α
        return attend(weights, memory), weights
