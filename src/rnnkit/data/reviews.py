"""Pang & Lee's movie review polarity v2.0 (2004): 1,000 positive and 1,000 negative full reviews.

Read straight from the Cornell archive ``review_polarity.tar.gz`` (no extraction to disk)::

    txt_sentoken/pos/cv000_29590.txt      one review per file, one sentence per line, lower-cased,
    txt_sentoken/neg/cv000_29416.txt      tokenised; ``cvNNN`` is the review's cross-validation tag

The standard split is Pang & Lee's 10-fold cross-validation by tag: fold k holds the reviews tagged
cv{k}00 .. cv{k}99 (100 positive and 100 negative). A directory holding ``txt_sentoken/`` (the extracted
archive) is read the same way.
"""
from __future__ import annotations

import lzma
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

LABELS = ["negative", "positive"]
FOLDS = 10
_NAME = re.compile(r"(?:^|/)txt_sentoken/(pos|neg)/cv(\d{3})_\d+\.txt$")


@dataclass
class Review:
    """One review: its file name in the archive, label (0 negative, 1 positive), fold (0..9 from its cv tag)
    and sentences (the non-blank lines)."""

    name: str
    label: int
    fold: int
    sentences: list[str]


def read_reviews(path) -> list[Review]:
    """Every review of the archive (or extracted directory), sorted by file name. Errors name the file: not
    a gzip tar archive, no ``txt_sentoken/{pos,neg}/cv###_*.txt`` member, a review that is not UTF-8 or has
    no sentence."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"reviews: no such file or directory {path} (expected review_polarity.tar.gz)")
    items = []
    if path.is_dir():
        for f in sorted(path.glob("**/txt_sentoken/*/*.txt")):
            items.append((f.relative_to(path).as_posix(), f.read_bytes()))
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    if member.isfile() and _NAME.search(member.name):
                        items.append((member.name, tar.extractfile(member).read()))
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            # zlib.error, LZMAError: a .gz / .xz stream damaged past the first member, the decompressor's own error
            raise ValueError(f"{path}: not a readable tar archive ({type(e).__name__}: {e})") from None
    reviews = []
    for name, raw in items:
        m = _NAME.search(name)
        if m is None:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: {name}: not UTF-8 at byte {e.start}") from None
        sentences = [line.strip() for line in text.split("\n") if line.strip()]
        if not sentences:
            raise ValueError(f"{path}: {name}: the review has no sentence")
        reviews.append(Review(name, LABELS.index("positive" if m.group(1) == "pos" else "negative"),
                              int(m.group(2)) // 100, sentences))
    if not reviews:
        raise ValueError(f"{path}: expected txt_sentoken/pos/cv###_*.txt and txt_sentoken/neg/cv###_*.txt reviews, "
                         "found none")
    return sorted(reviews, key=lambda r: r.name)
