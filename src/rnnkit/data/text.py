"""Text files: strict UTF-8 reading (gzip too), contiguous splits, word tokenisation."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from .vocab import EOS


def read_text(path, *, errors: str = "strict") -> str:
    """The file's text. Invalid UTF-8 is an error naming the byte offset (errors="replace" substitutes
    U+FFFD instead); an empty file is an error. Files ending in .gz are decompressed."""
    if errors not in ("strict", "replace"):
        raise ValueError(f"read_text: expected errors 'strict' or 'replace', got {errors!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: expected a text file, got a directory")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: not a valid gzip file ({e})")
    try:
        text = raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: invalid UTF-8 at byte offset {e.start} (line {line}): "
                         f"{raw[e.start:e.start + 4]!r}; pass --errors replace to substitute U+FFFD") from None
    if not text:
        raise ValueError(f"{path}: the file is empty")
    return text


def unspace(text: str, source="text") -> str:
    """The characters of a file that writes each one followed by a single space, as Mikolov's char-level
    Penn Treebank does (``"a _ c a t \\n "``: ``_`` separates words, the line break is a symbol too):
    the characters at even offsets. Anything but a space at an odd offset is an error naming it."""
    gaps = text[1::2]
    if gaps.count(" ") != len(gaps):
        offset = 2 * next(i for i, c in enumerate(gaps) if c != " ") + 1
        raise ValueError(f"{source}: expected a space after every character (spaced format), got {text[offset]!r} "
                         f"at character offset {offset}: {text[max(0, offset - 10):offset + 10]!r}")
    return text[0::2]


def split_contiguous(seq, fractions: tuple[float, ...]):
    """Cut seq into consecutive parts of the given fractions (the last takes the remainder), e.g.
    (0.9, 0.1) is char-rnn/nanoGPT's train/valid split. No shuffling: text is not i.i.d."""
    if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"split_contiguous: expected positive fractions summing to at most 1, got {fractions}")
    n, parts, start = len(seq), [], 0
    for i, f in enumerate(fractions):
        stop = n if i == len(fractions) - 1 and abs(sum(fractions) - 1) < 1e-9 else start + int(round(f * n))
        parts.append(seq[start:stop])
        start = stop
    return parts


def words(text: str) -> list[str]:
    """Whitespace tokens with <eos> at the end of every non-empty line (Mikolov's PTB convention)."""
    tokens = []
    for line in text.splitlines():
        line_tokens = line.split()
        if line_tokens:
            tokens += line_tokens + [EOS]
    return tokens
