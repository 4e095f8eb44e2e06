r"""Hierarchical attention network (Yang, Yang, Dyer, He, Smola & Hovy, NAACL 2016; lecture 003).

A document is a list of sentences, a sentence a list of words. Two levels of the same block, a
bidirectional GRU and additive attention with a learned context vector (Yang et al. section 2.2):

.. math::
    h_{it} &= [\overrightarrow{\mathrm{GRU}}(W_e w_{it});\ \overleftarrow{\mathrm{GRU}}(W_e w_{it})]
        && \text{word encoder, sentence } i, \text{ word } t \\
    u_{it} &= \tanh(W_w h_{it} + b_w),\quad
    \alpha_{it} = \frac{\exp(u_{it}^\top u_w)}{\sum_t \exp(u_{it}^\top u_w)},\quad
    s_i = \textstyle\sum_t \alpha_{it} h_{it} && \text{word attention} \\
    h_i &= [\overrightarrow{\mathrm{GRU}}(s_i);\ \overleftarrow{\mathrm{GRU}}(s_i)] && \text{sentence encoder} \\
    u_i &= \tanh(W_s h_i + b_s),\quad
    \alpha_i = \frac{\exp(u_i^\top u_s)}{\sum_i \exp(u_i^\top u_s)},\quad
    v = \textstyle\sum_i \alpha_i h_i && \text{sentence attention} \\
    p &= \operatorname{softmax}(W_c v + b_c) && \text{(one sigmoid logit for two classes)}

The sums run over the real words and sentences only: padding words get no weight, and padding sentences
(all-padding rows) are neither encoded nor attended to. :math:`u_w, u_s` are the ``score`` vectors of
:class:`rnnkit.models.classifier.AttentionPooling`.

Shape legend: B documents, S sentences (padded), W words per sentence (padded), E embedding, H GRU units per
direction (outputs 2H).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from ..layers import make_encoder
from .classifier import AttentionPooling


@dataclass
class HANConfig:
    vocab_size: int
    num_classes: int = 2  # 2: one sigmoid logit (binary cross-entropy); more: softmax
    embedding: int = 100  # Yang et al.: 200 (word2vec); 100 here
    hidden: int = 50  # GRU units per direction, as Yang et al.
    attention: int = 100  # size of u_it and u_i, as Yang et al.
    dropout: float = 0.0  # on the embeddings and before the dense layer
    pad_id: int = 0
    cell: str = "gru"  # any recurrent kind of rnnkit.layers.RNN; Yang et al. use GRU

    def __post_init__(self):
        for name in ("vocab_size", "num_classes", "embedding", "hidden", "attention"):
            check_positive_int("HANConfig", name, getattr(self, name))
        if self.num_classes < 2:
            raise ValueError(f"HANConfig: expected num_classes >= 2, got {self.num_classes}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"HANConfig: expected pad_id in [0, {self.vocab_size}), got {self.pad_id}")
        check_probability("HANConfig", "dropout", self.dropout)


class HAN(nn.Module):
    """``logits, () = model(docs, state=None, lengths=None)``; docs (B, S, W) int64 ids (pad_id pads words at
    the end of a sentence and whole sentences at the end of a document) -> logits (B, 1) when binary, else
    (B, C). :meth:`attend` also returns the word (B, S, W) and sentence (B, S) attention weights."""

    def __init__(self, config: HANConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding, padding_idx=c.pad_id)
        self.word_encoder = make_encoder(c.cell, c.embedding, c.hidden, bidirectional=True)
        self.word_attention = AttentionPooling(2 * c.hidden, c.attention)
        self.sentence_encoder = make_encoder(c.cell, 2 * c.hidden, c.hidden, bidirectional=True)
        self.sentence_attention = AttentionPooling(2 * c.hidden, c.attention)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(2 * c.hidden, 1 if c.num_classes == 2 else c.num_classes)

    def forward(self, docs: Tensor, state=None, lengths=None):
        logits, _, _ = self.attend(docs, lengths=lengths)
        return logits, ()

    def attend(self, docs: Tensor, lengths=None) -> tuple[Tensor, Tensor, Tensor]:
        """(logits, word weights (B, S, W), sentence weights (B, S)); weights are 0 at padding."""
        c = self.config
        if lengths is not None:
            raise ValueError("HAN: the padding in docs gives the lengths; expected lengths=None")
        if not torch.is_tensor(docs) or docs.dim() != 3 or docs.is_floating_point():
            got = f"{docs.dtype} {tuple(docs.shape)}" if torch.is_tensor(docs) else type(docs).__name__
            raise ValueError(f"HAN: expected documents (B, S, W) of integer ids, got {got}")
        if docs.numel() and (int(docs.min()) < 0 or int(docs.max()) >= c.vocab_size):
            raise ValueError(f"HAN: expected ids in [0, {c.vocab_size}), got values in [{int(docs.min())}, "
                             f"{int(docs.max())}]")
        B, S, W = docs.shape
        words = docs != c.pad_id  # (B, S, W)
        word_len = words.sum(-1)  # (B, S)
        sent_valid = word_len > 0  # (B, S)
        n_sent = sent_valid.sum(-1)  # (B,)
        if B and int(n_sent.min()) < 1:
            raise ValueError(f"HAN: document {int((n_sent < 1).nonzero()[0])} has no word")
        steps_w = torch.arange(W, device=docs.device)
        steps_s = torch.arange(S, device=docs.device)
        if not torch.equal(words, steps_w < word_len[..., None]) or not torch.equal(sent_valid, steps_s < n_sent[:, None]):
            raise ValueError("HAN: expected padding only after the words of a sentence and after the sentences of a "
                             "document")
        S, W = int(n_sent.max()), int(word_len.max())  # drop all-padding columns
        docs, sent_valid, word_len = docs[:, :S, :W], sent_valid[:, :S], word_len[:, :S]
        # word level: every real sentence of the batch at once
        flat = docs[sent_valid]  # (N, W) the N real sentences
        flat_len = word_len[sent_valid]  # (N,)
        h, _ = self.word_encoder(self.drop(self.embed(flat)), lengths=flat_len)  # (N, W, 2H)
        s, alpha_w = self.word_attention(h, steps_w[None, :W] < flat_len[:, None])  # (N, 2H), (N, W)
        b_idx, s_idx = sent_valid.nonzero(as_tuple=True)
        sentences = s.new_zeros(B, S, s.shape[1]).index_put((b_idx, s_idx), s)  # (B, S, 2H)
        # sentence level
        hs, _ = self.sentence_encoder(sentences, lengths=n_sent)  # (B, S, 2H)
        v, alpha_s = self.sentence_attention(hs, sent_valid)  # (B, 2H), (B, S)
        word_weights = alpha_w.new_zeros(B, S, W).index_put((b_idx, s_idx), alpha_w)
        return self.head(self.drop(v)), word_weights, alpha_s
