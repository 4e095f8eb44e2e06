"""Attention: ``context, weights = attn(query, memory, mask)`` (lectures 000 and 004).

One interface for every kind; the legend is OpenNMT's::

    query   (B, Hq) one decoder step, or (B, T, Hq) T steps at once
    memory  (B, S, Hm) the encoder's annotations, padded
    mask    (B, S) bool, True at the real source positions (None: all real)
    ->  context (B, Hm) or (B, T, Hm),  weights (B, S) or (B, T, S), exactly 0 at padded positions

    keys = attn.keys(memory)       the part of the score that depends on the source only: computed once
    attn(query, memory, mask, keys=keys, step=t)   per sentence; step = the decoder position (local-m)

| class | score | module |
|---|---|---|
| BahdanauAttention | v^T tanh(W s_{i-1} + U h_j), query = the state *before* the step | additive.py |
| LuongAttention("dot" / "general" / "concat") | h^T h̄, h^T W h̄, v^T tanh(W [h; h̄]) | luong.py |
| LocalAttention("m" / "p", window=D) | Luong's local-m (p_t = t), local-p (predicted p_t, Gaussian) | luong.py |
| HardAttention | one position, Gumbel-softmax straight-through | hard.py |

``rnnkit.attention.plot.plot_attention`` draws a weight matrix as a heatmap (imports matplotlib).
"""
from .additive import AdditiveScore, BahdanauAttention
from .hard import HardAttention
from .luong import LOCAL_MODES, SCORES, LocalAttention, LuongAttention, LuongScore
from .masking import attend, masked_softmax, source_mask

__all__ = ["AdditiveScore", "BahdanauAttention", "HardAttention", "LOCAL_MODES", "LocalAttention", "LuongAttention",
           "LuongScore", "SCORES", "attend", "masked_softmax", "source_mask"]
