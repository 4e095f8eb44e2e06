"""Pretrained word vectors from a word2vec or GloVe text file into an embedding matrix."""
from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from .text import read_text
from .vocab import Vocab

log = logging.getLogger(__name__)


def read_vectors(path, vocab: Vocab, dim: int) -> tuple[Tensor, int]:
    """(V, dim) rows for the vocabulary's words found in the file (others stay ~N(0, 0.1)), and how many
    were found. Lines are ``word v_1 ... v_dim``; word2vec's optional "count dim" header is skipped."""
    weights = torch.randn(len(vocab), dim) * 0.1
    found = 0
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.rstrip().split(" ")
        if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue  # word2vec header
        if len(parts) < 2:
            continue
        if len(parts) != dim + 1:
            raise ValueError(f"{path}: line {number} has {len(parts) - 1} numbers, expected {dim} "
                             f"(the --embedding size)")
        word = parts[0]
        if word in vocab:
            try:
                values = [float(v) for v in parts[1:]]
            except ValueError:
                raise ValueError(f"{path}: line {number} has a value that is not a number") from None
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:  # a NaN row would make every loss that reads the word NaN
                raise ValueError(f"{path}: line {number}: value {bad + 1} is {parts[bad + 1]}, not a finite number")
            weights[vocab.index[word]] = torch.tensor(values)
            found += 1
    if found == 0:
        raise ValueError(f"{path}: none of the {len(vocab)} vocabulary words has a vector in this file")
    log.info("pretrained vectors: %d of %d words found in %s", found, len(vocab), path)
    return weights, found


def init_embedding(embedding, path, vocab: Vocab) -> int:
    """Copy the file's vectors into an ``nn.Embedding`` (V, dim) over ``vocab`` (:func:`read_vectors`; the
    other rows stay ~N(0, 0.1)); the padding row, if the embedding has one, stays 0. Returns how many words
    were found."""
    weights, found = read_vectors(path, vocab, embedding.embedding_dim)
    with torch.no_grad():
        embedding.weight.copy_(weights)
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx] = 0
    return found


def write_vectors(path, vocab: Vocab, weights: Tensor) -> int:
    """The other direction: ``weights`` (V, dim), one row per vocabulary token, as a GloVe text file that
    :func:`read_vectors` reads back (``word v_1 ... v_dim`` per line, 6 decimals). Tokens in angle brackets
    (``<unk>``, ``<eos>``, ``<pad>``) and tokens with a space are left out. Returns the number of lines."""
    if weights.dim() != 2 or weights.shape[0] != len(vocab):
        raise ValueError(f"write_vectors: expected weights ({len(vocab)}, dim) for the vocabulary, got "
                         f"{tuple(weights.shape)}")
    lines = [word + " " + " ".join(f"{v:.6f}" for v in row)
             for word, row in zip(vocab.tokens, weights.detach().float().tolist())
             if not (word.startswith("<") and word.endswith(">")) and " " not in word]
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return len(lines)
