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
