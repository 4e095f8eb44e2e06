"""Vocabularies: tokens <-> ids, saved as JSON in the run directory."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import torch
from torch import Tensor

UNK, EOS = "<unk>", "<eos>"


class Vocab:
    """An ordered list of tokens; ``unk`` (if any) absorbs unknown tokens, otherwise they are an error.

    Character vocabularies have no ``<unk>`` (an unknown character in a priming text is a clear
    error listing it); word vocabularies have ``<unk>`` and ``<eos>`` (PTB style).
    """

    def __init__(self, tokens: list[str], *, unk: str | None = None, level: str = "char"):
        if len(set(tokens)) != len(tokens):
            dupes = sorted({t for t in tokens if tokens.count(t) > 1})[:5]
            raise ValueError(f"Vocab: expected distinct tokens, got duplicates {dupes}")
        if not tokens:
            raise ValueError("Vocab: expected at least one token, got an empty vocabulary")
        if unk is not None and unk not in tokens:
            raise ValueError(f"Vocab: the unknown token {unk!r} is not in the vocabulary")
        self.tokens, self.unk, self.level = list(tokens), unk, level
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def chars(cls, text: str) -> "Vocab":
        """Every distinct character of text, sorted (char-rnn's vocabulary)."""
        return cls(sorted(set(text)), level="char")

    @classmethod
    def words(cls, tokens: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        """Words seen at least min_freq times (the max_size most frequent), plus <unk> and <eos>."""
        if min_freq < 1:
            raise ValueError(f"Vocab.words: expected min_freq >= 1, got {min_freq}")
        counts = Counter(tokens)
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([EOS, UNK] + kept, unk=UNK, level="word")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @property
    def eos_id(self) -> int | None:
        return self.index.get(EOS)

    def encode(self, tokens: Iterable[str]) -> Tensor:
        """Ids (N,) int64. Unknown tokens map to <unk>, or raise listing them when there is none."""
        tokens = list(tokens)
        if self.unk is None:
            unknown = sorted({t for t in tokens if t not in self.index})
            if unknown:
                raise ValueError(f"Vocab: {len(unknown)} token(s) not in the {len(self)}-token vocabulary: "
                                 f"{', '.join(repr(t) for t in unknown[:20])}")
            return torch.tensor([self.index[t] for t in tokens], dtype=torch.int64)
        u = self.index[self.unk]
        return torch.tensor([self.index.get(t, u) for t in tokens], dtype=torch.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def to_json(self) -> dict:
        return {"level": self.level, "unk": self.unk, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocab":
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError(f"Vocab: a vocabulary file needs a 'tokens' list, got {type(data).__name__}")
        try:
            return cls(list(data["tokens"]), unk=data.get("unk"), level=data.get("level", "char"))
        except (KeyError, TypeError) as e:
            raise ValueError(f"Vocab: a vocabulary file needs a 'tokens' list, got {type(data).__name__} ({e})")
