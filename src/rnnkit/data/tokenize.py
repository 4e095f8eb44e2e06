"""Word tokenisation for text classification: tokens -> vocabulary (capped at max_words) -> padded ids.

    "A gorgeous, witty film." ──word_tokens──> ["a", "gorgeous", ",", "witty", "film", "."]
      ──Tokenizer.fit(train texts, max_words)──> vocab: <pad> = 0, <unk> = 1, then words by frequency
      ──Tokenizer.encode(texts)──> ids (N, T) padded with 0 after each text, lengths (N,),
                                   T = the longest text, at most max_len; longer texts are cut to their
                                   first max_len tokens and *counted* (Encoded.truncated), never silently

The tokenizer (vocabulary, max_len, lower-casing) is saved as ``tokenizer.json`` in the run directory, so
``rnnkit classify RUN_DIR "text"`` encodes new text exactly as in training. It reuses
:class:`rnnkit.data.vocab.Vocab` (``<unk>`` absorbs unknown words).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from .vocab import UNK, Vocab

PAD = "<pad>"

# a word (letters/digits, with inner apostrophes or hyphens: "don't", "co-writer"), a clitic ("'s", "'ll"),
# or any other single non-space character (punctuation)
_TOKEN = re.compile(r"\w+(?:['\-]\w+)*|'\w+|[^\w\s]")


def word_tokens(text: str, *, lower: bool = True) -> list[str]:
    """Words, clitics and punctuation of text: ``"It's great!"`` -> ``["it's", "great", "!"]``."""
    return _TOKEN.findall(text.lower() if lower else text)


@dataclass
class Encoded:
    """ids (N, T) int64 padded with the pad id; lengths (N,) >= 1; truncated: how many texts were longer
    than max_len (cut to their first max_len tokens); longest: the longest text in tokens, before cutting."""

    ids: Tensor
    lengths: Tensor
    truncated: int
    longest: int


class Tokenizer:
    """Word tokens -> ids with a vocabulary of at most ``max_words`` entries (<pad> and <unk> included).

    Example::

        >>> tok = Tokenizer.fit(["a good film", "a bad film"], max_words=10, max_len=5)
        >>> tok.encode(["a good , good film"]).ids
        tensor([[2, 4, 1, 4, 3]])
    """

    def __init__(self, vocab: Vocab, *, max_len: int, lower: bool = True):
        if vocab.tokens[:2] != [PAD, UNK] or vocab.unk != UNK:
            raise ValueError(f"Tokenizer: expected a vocabulary starting with {PAD!r}, {UNK!r} (ids 0, 1) with "
                             f"unk {UNK!r}, got {vocab.tokens[:2]} and unk {vocab.unk!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"Tokenizer: expected max_len to be an int >= 1, got {max_len!r}")
        self.vocab, self.max_len, self.lower = vocab, max_len, lower

    pad_id = 0
    unk_id = 1

    @classmethod
    def fit(cls, texts: Iterable[str], *, max_words: int, max_len: int, lower: bool = True) -> "Tokenizer":
        """The vocabulary of texts: <pad>, <unk>, then the max_words - 2 most frequent words (ties
        alphabetically)."""
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 3:
            raise ValueError(f"Tokenizer: expected max_words to be an int >= 3 (<pad>, <unk> and a word), "
                             f"got {max_words!r}")
        counts = Counter(t for text in texts for t in word_tokens(text, lower=lower))
        for special in (PAD, UNK):
            counts.pop(special, None)
        if not counts:
            raise ValueError("Tokenizer: the training texts hold no word tokens")
        kept = sorted(counts, key=lambda w: (-counts[w], w))[: max_words - 2]
        return cls(Vocab([PAD, UNK, *kept], unk=UNK, level="word"), max_len=max_len, lower=lower)

    def __len__(self) -> int:
        return len(self.vocab)

    def tokens(self, text: str) -> list[str]:
        return word_tokens(text, lower=self.lower)

    def encode(self, texts: list[str], *, source: str = "texts") -> Encoded:
        """Padded ids of every text, and how many were cut to max_len (the caller reports that count).
        A text without any token is an error naming it (source[i])."""
        rows, truncated, longest = [], 0, 0
        for i, text in enumerate(texts):
            tokens = self.tokens(text)
            if not tokens:
                raise ValueError(f"{source}[{i}]: empty text (no word or punctuation token): {text!r}")
            longest = max(longest, len(tokens))
            if len(tokens) > self.max_len:
                truncated += 1
                tokens = tokens[: self.max_len]
            rows.append(self.vocab.encode(tokens))
        if not rows:
            raise ValueError(f"{source}: no texts to encode")
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
        ids = torch.full((len(rows), int(lengths.max())), self.pad_id, dtype=torch.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        return Encoded(ids, lengths, truncated, longest)

    def to_json(self) -> dict:
        return {"max_len": self.max_len, "lower": self.lower, "vocab": self.vocab.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "Tokenizer":
        if not isinstance(data, dict) or not {"max_len", "lower", "vocab"} <= set(data):
            raise ValueError(f"Tokenizer: a tokenizer file needs max_len, lower and vocab, got "
                             f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
        return cls(Vocab.from_json(data["vocab"]), max_len=data["max_len"], lower=data["lower"])
