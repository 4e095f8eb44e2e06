r"""Luong attention (lecture 004; Luong, Pham & Manning 2015): global (dot, general, concat) and local (m, p).

Luong's attention comes *after* the decoder's RNN cell (Bahdanau's before it): the current decoder state
:math:`h_t` is the query, and the context feeds the output through the attentional hidden state

.. math::
    \operatorname{score}(h_t, \bar h_s) = \begin{cases}
        h_t^\top \bar h_s & \text{dot} \\
        h_t^\top W_a \bar h_s & \text{general} \\
        v_a^\top \tanh(W_a [h_t; \bar h_s]) & \text{concat}
    \end{cases}
    \qquad a_t(s) = \frac{\exp \operatorname{score}(h_t, \bar h_s)}{\sum_{s'} \exp \operatorname{score}(h_t, \bar h_{s'})}

    c_t = \sum_s a_t(s)\, \bar h_s, \qquad \tilde h_t = \tanh(W_c [c_t; h_t]), \qquad
    p(y_t \mid y_{<t}, x) = \operatorname{softmax}(W_s \tilde h_t)

(:math:`\tilde h_t` and *input feeding* -- :math:`\tilde h_{t-1}` concatenated to the next input -- live in
the decoder, :class:`rnnkit.models.seq2seq.Seq2Seq`). Lecture 000 names the same three alignment scores
"dot product, bilinear function, nonlinear activation".

**Global** attention (:class:`LuongAttention`) reads every source position. **Local** attention
(:class:`LocalAttention`) reads the window :math:`[p_t - D, p_t + D]` around an aligned position
:math:`p_t` (lecture 004):

* local-m (monotonic): :math:`p_t = t`, and :math:`a_t(s)` is the softmax over the window;
* local-p (predictive): :math:`p_t = S \cdot \sigma(v_p^\top \tanh(W_p h_t))`, and the window's softmax is
  multiplied by a Gaussian centred on :math:`p_t` with :math:`\sigma = D / 2`:
  :math:`a_t(s) = \operatorname{align}(h_t, \bar h_s) \exp\!\big(-\frac{(s - p_t)^2}{2\sigma^2}\big)`.
  Still differentiable: the gradient reaches :math:`W_p, v_p` through the Gaussian.

Positions here count from 0 (Luong's from 1), so :math:`p_t = (S_b - 1)\,\sigma(\cdot)` lies on the real
source positions of sentence b, and local-m's :math:`p_t = \min(t, S_b - 1)` stays on them after the
source's end; the window therefore always holds a real position. local-p's weights sum to at most 1 (Luong
does not renormalise after the Gaussian).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_positive_int
from .additive import AdditiveScore
from .masking import attend, check_attention_inputs, masked_softmax

SCORES = ("dot", "general", "concat")
LOCAL_MODES = ("m", "p")


class LuongScore(nn.Module):
    r"""score(h_t, h̄_s) as dot, general (:math:`h_t^\top W_a \bar h_s`) or concat (:math:`v_a^\top
    \tanh(W_a[h_t; \bar h_s])`, i.e. :math:`v_a^\top \tanh(W h_t + U \bar h_s)`: :class:`AdditiveScore`).

    ``keys(memory)`` is the part that depends on the source only (:math:`\bar h_s`, :math:`W_a \bar h_s`,
    :math:`U \bar h_s`); ``forward(query, keys)`` gives scores (B, S) for a query (B, Hq), (B, T, S) for
    (B, T, Hq).
    """

    def __init__(self, kind: str, query_size: int, memory_size: int, attention_size: int | None = None):
        super().__init__()
        if kind not in SCORES:
            raise ValueError(f"LuongScore: expected kind in {SCORES}, got {kind!r}")
        if kind == "dot" and query_size != memory_size:
            raise ValueError(f"LuongScore: the dot score needs query_size == memory_size, got {query_size} and "
                             f"{memory_size} (use 'general' to map between them)")
        self.kind = kind
        if kind == "general":
            self.W_a = nn.Linear(memory_size, query_size, bias=False)  # W_a h̄_s, so that h_t^T (W_a h̄_s)
        elif kind == "concat":
            self.additive = AdditiveScore(query_size, memory_size, attention_size or query_size)

    def keys(self, memory: Tensor) -> Tensor:
        if self.kind == "dot":
            return memory  # (B, S, H)
        if self.kind == "general":
            return self.W_a(memory)  # (B, S, Hq)
        return self.additive.keys(memory)  # (B, S, A)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        if self.kind == "concat":
            return self.additive(query, keys)
        if query.dim() == 2:
            return torch.bmm(keys, query.unsqueeze(2).to(keys.dtype)).squeeze(2)  # (B, S, Hq) (B, Hq, 1) -> (B, S)
        return torch.bmm(query.to(keys.dtype), keys.transpose(1, 2))  # (B, T, Hq) (B, Hq, S) -> (B, T, S)


class LuongAttention(nn.Module):
    """Luong's global attention with the ``dot``, ``general`` or ``concat`` score (see the module docstring).

    Args:
        score: ``"dot"`` (needs query_size == memory_size), ``"general"`` or ``"concat"``.
        query_size: size of the decoder state h_t; memory_size: size of an annotation h̄_s.
        attention_size: concat only: the score network's hidden size (default query_size).

    Shape:
        query (B, Hq) or (B, T, Hq); memory (B, S, Hm); mask (B, S) bool or None; keys from :meth:`keys`
        (optional). Returns context (B, Hm) / (B, T, Hm) and weights (B, S) / (B, T, S), 0 at masked positions.
    """

    def __init__(self, score: str, query_size: int, memory_size: int, attention_size: int | None = None):
        super().__init__()
        check_positive_int("LuongAttention", "query_size", query_size)
        check_positive_int("LuongAttention", "memory_size", memory_size)
        self.query_size, self.memory_size = query_size, memory_size
        self.score = LuongScore(score, query_size, memory_size, attention_size)

    def keys(self, memory: Tensor) -> Tensor:
        return self.score.keys(memory)

    def forward(self, query: Tensor, memory: Tensor, mask: Tensor | None = None, *, keys: Tensor | None = None,
                step=None) -> tuple[Tensor, Tensor]:
        """``step`` is part of the shared interface; only local-m attention reads it."""
        check_attention_inputs("LuongAttention", query, memory, mask, self.query_size, self.memory_size)
        scores = self.score(query, self.keys(memory) if keys is None else keys)
        weights = masked_softmax(scores, mask)  # a_t(s)
        return attend(weights, memory), weights


class LocalAttention(nn.Module):
    r"""Luong's local attention: the window :math:`|s - p_t| \le D` around :math:`p_t`; local-m or local-p.

    Args:
        mode: ``"m"`` (monotonic, :math:`p_t = t`) or ``"p"`` (predictive, :math:`p_t = (S_b - 1)
            \sigma(v_p^\top \tanh(W_p h_t))` with a Gaussian of :math:`\sigma = D/2` on the weights).
        query_size, memory_size: as :class:`LuongAttention`.
        window: D, the half-width of the window (>= 1).
        score: the alignment score inside the window, ``"general"`` (Luong's choice) by default.
        attention_size: the hidden size of :math:`W_p` (and of a concat score); default query_size.

    Shape:
        as :class:`LuongAttention`. ``step`` is the decoder position t of the query: an int, or a (B,)
        tensor; local-m needs it for a (B, Hq) query; for a (B, T, Hq) query the positions are
        ``step + 0 .. step + T - 1`` (step defaults to 0). local-p ignores it.
    """

    def __init__(self, mode: str, query_size: int, memory_size: int, *, window: int = 5, score: str = "general",
                 attention_size: int | None = None):
        super().__init__()
        if mode not in LOCAL_MODES:
            raise ValueError(f"LocalAttention: expected mode 'm' (monotonic) or 'p' (predictive), got {mode!r}")
        check_positive_int("LocalAttention", "window", window)
        check_positive_int("LocalAttention", "query_size", query_size)
        check_positive_int("LocalAttention", "memory_size", memory_size)
        self.mode, self.window = mode, window
        self.query_size, self.memory_size = query_size, memory_size
        self.score = LuongScore(score, query_size, memory_size, attention_size)
        if mode == "p":
            size = attention_size or query_size
            self.W_p = nn.Linear(query_size, size, bias=False)
            self.v_p = nn.Linear(size, 1, bias=False)

    @property
    def sigma(self) -> float:
        return self.window / 2

    def keys(self, memory: Tensor) -> Tensor:
        return self.score.keys(memory)

    def positions(self, query: Tensor, lengths: Tensor, step=None) -> Tensor:
        """The aligned source positions p_t: (B,) for a (B, Hq) query, (B, T) for (B, T, Hq); floats in
        [0, lengths - 1]."""
        last = (lengths - 1).to(query.dtype)  # (B,)
        if self.mode == "p":
            p = torch.sigmoid(self.v_p(torch.tanh(self.W_p(query)))).squeeze(-1)  # (B,) or (B, T) in (0, 1)
            return p * (last if p.dim() == 1 else last[:, None])
        if query.dim() == 2:
            if step is None:
                raise ValueError("LocalAttention: local-m needs the decoder position step=t for a one-step query")
            t = torch.as_tensor(step, device=query.device).to(query.dtype).expand(query.shape[0])  # (B,)
            return torch.minimum(t, last)
        start = 0 if step is None else step
        t = torch.arange(query.shape[1], device=query.device, dtype=query.dtype) + torch.as_tensor(
            start, device=query.device, dtype=query.dtype).reshape(-1, 1)  # (1 or B, T)
        return torch.minimum(t.expand(query.shape[0], -1), last[:, None])

    def forward(self, query: Tensor, memory: Tensor, mask: Tensor | None = None, *, keys: Tensor | None = None,
                step=None) -> tuple[Tensor, Tensor]:
        check_attention_inputs("LocalAttention", query, memory, mask, self.query_size, self.memory_size)
        B, S = memory.shape[:2]
        lengths = mask.sum(dim=1) if mask is not None else torch.full((B,), S, device=memory.device)
        p = self.positions(query, lengths, step)  # (B,) or (B, T)
        distance = torch.arange(S, device=memory.device, dtype=p.dtype) - p.unsqueeze(-1)  # s - p_t: (B, [T,] S)
        window = distance.detach().abs() <= self.window  # |s - p_t| <= D
        if mask is not None:
            window = window & (mask if p.dim() == 1 else mask[:, None, :])
        scores = self.score(query, self.keys(memory) if keys is None else keys)  # (B, [T,] S)
        weights = masked_softmax(scores, window)  # align(h_t, h̄_s) over the window
        if self.mode == "p":
            weights = weights * torch.exp(-distance.square() / (2 * self.sigma ** 2))
        return attend(weights, memory), weights
