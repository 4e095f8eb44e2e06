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
        _check_ids("HAN", docs, "documents (B, S, W)", c.vocab_size)
        B, S, W = docs.shape
        word_len = _word_lengths("HAN", docs, c.pad_id)  # (B, S)
        sent_valid = word_len > 0  # (B, S)
        n_sent = sent_valid.sum(-1)  # (B,)
        if B and int(n_sent.min()) < 1:
            raise ValueError(f"HAN: document {int((n_sent < 1).nonzero()[0])} has no word")
        if not torch.equal(sent_valid, torch.arange(S, device=docs.device) < n_sent[:, None]):
            raise ValueError("HAN: expected padding only after the sentences of a document")
        S, W = int(n_sent.max()), int(word_len.max())  # drop all-padding columns
        docs, sent_valid, word_len = docs[:, :S, :W], sent_valid[:, :S], word_len[:, :S]
        # word level: every real sentence of the batch at once
        s, alpha_w = self.encode_sentences(docs[sent_valid], word_len[sent_valid])  # (N, 2H), (N, W)
        b_idx, s_idx = sent_valid.nonzero(as_tuple=True)
        sentences = s.new_zeros(B, S, s.shape[1]).index_put((b_idx, s_idx), s)  # (B, S, 2H)
        # sentence level
        hs, _ = self.sentence_encoder(sentences, lengths=n_sent)  # (B, S, 2H)
        v, alpha_s = self.sentence_attention(hs, sent_valid)  # (B, 2H), (B, S)
        word_weights = alpha_w.new_zeros(B, S, W).index_put((b_idx, s_idx), alpha_w)
        return self.head(self.drop(v)), word_weights, alpha_s

    def encode_sentences(self, sentences: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The word level alone: sentences (N, W) ids with lengths (N,) >= 1 -> sentence vectors s_i (N, 2H) and
        word weights alpha_it (N, W), 0 at padding."""
        h, _ = self.word_encoder(self.drop(self.embed(sentences)), lengths=lengths)  # (N, W, 2H)
        steps = torch.arange(sentences.shape[1], device=sentences.device)
        return self.word_attention(h, steps[None, :] < lengths[:, None])


class SentenceClassifier(nn.Module):
    """A HAN's word level with an output layer of its own, for classifying single sentences:
    p = sigmoid(w^T s_i + b) (softmax for more classes), s_i the sentence vector of :meth:`HAN.encode_sentences`.
    It holds the HAN (not a copy): training it trains the HAN's embedding, word encoder and word attention, the
    supervised pretraining of the word level on labelled sentences that ``rnnkit train han --pretrain`` runs
    before the documents.

    ``logits, () = model(x, state=None, lengths=None)``: x (B, W) ids padded with pad_id at the end;
    lengths (B,), if given, must be what the padding says -> logits (B, 1) when binary, else (B, C)."""

    def __init__(self, han: HAN):
        super().__init__()
        self.han = han
        self.head = nn.Linear(2 * han.config.hidden, han.head.out_features)

    def forward(self, x: Tensor, state=None, lengths=None):
        c = self.han.config
        _check_ids("SentenceClassifier", x, "sentences (B, W)", c.vocab_size)
        found = _word_lengths("SentenceClassifier", x, c.pad_id)  # (B,)
        if x.shape[0] and int(found.min()) < 1:
            raise ValueError(f"SentenceClassifier: sentence {int((found < 1).nonzero()[0])} has no word")
        if lengths is not None and not torch.equal(lengths.to(found.device), found):
            raise ValueError(f"SentenceClassifier: expected lengths equal to the words before the padding, got "
                             f"{lengths.tolist()[:8]} for {found.tolist()[:8]}")
        s, _ = self.han.encode_sentences(x, found)
        return self.head(self.han.drop(s)), ()


def _check_ids(who: str, x, expected: str, vocab_size: int) -> None:
    """A clear error unless x is an integer tensor of x.dim() == len(expected's shape) with ids in the vocabulary."""
    dims = expected.count(",") + 1
    if not torch.is_tensor(x) or x.dim() != dims or x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{who}: expected {expected} of integer ids, got {got}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(f"{who}: expected ids in [0, {vocab_size}), got values in [{int(x.min())}, {int(x.max())}]")


def _word_lengths(who: str, x: Tensor, pad_id: int) -> Tensor:
    """The words before the padding along x's last dimension (..., W) -> (...); padding anywhere else is an error."""
    words = x != pad_id
    lengths = words.sum(-1)
    if not torch.equal(words, torch.arange(x.shape[-1], device=x.device) < lengths[..., None]):
        raise ValueError(f"{who}: expected padding only after the words of a sentence")
    return lengths
