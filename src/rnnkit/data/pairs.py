"""Sentence pairs for sequence to sequence: read, tokenise, filter, build vocabularies, batch.

    pairs.tsv / fra-eng.zip / Multi30k directory ──read_pairs / read_multi30k──> Pairs (text, where)
      ──Processing(tokenizer, lower)──> token lists ──filter_pairs(max_len): longer pairs dropped *and counted*
      ──build_vocab (<pad> 0, <unk> 1, <bos> 2, <eos> 3, then tokens by frequency)──> Vocab (saved as JSON)
      ──encode_pairs──> source ids + <eos>, decoder input <bos> y_1..y_n, decoder target y_1..y_n <eos>
      ──PairBatches──> PairBatch(x = stack(source, decoder input) (B, 2, L), y (B, L), lengths (B,))

File formats:

* a tab-separated file, one pair a line (``source<TAB>target``; ``--source-column`` and
  ``--target-column`` pick other columns, e.g. ManyThings' ``English<TAB>French`` read French -> English);
  ``.gz`` is decompressed; a ``.zip`` holding one such file (ManyThings' ``fra-eng.zip``) is read directly.
  Every line must have the first line's number of columns; errors name the file and line.
* a Multi30k directory: line-aligned ``{train,val,test_2016_flickr}.{lang}[.gz]`` files.

Tokenisers: ``13a`` (sacrebleu's, the tokenisation of WMT's BLEU: punctuation split from words), ``space``
(whitespace) and ``char`` (characters, spaces included: the dates task). Any Unicode space (ManyThings'
French uses U+202F before ``!`` and ``?``) counts as a space, runs of them as one.
"""
from __future__ import annotations

import gzip
import io
import lzma
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from .batching import Batch, epoch_order
from .vocab import UNK, Vocab

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
TOKENIZERS = ("13a", "space", "char")
MULTI30K_SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}


@dataclass
class Pairs:
    """Parallel sentences; where[i] names pair i's file and line (for error messages)."""

    sources: list[str]
    targets: list[str]
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, index) -> "Pairs":
        index = [int(i) for i in index]
        return Pairs([self.sources[i] for i in index], [self.targets[i] for i in index],
                     [self.where[i] for i in index] if self.where else [])


# ----- reading -------------------------------------------------------------------------------------------

def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{name}: invalid UTF-8 at byte offset {e.start} (line {line}): "
                         f"{raw[e.start:e.start + 4]!r}") from None


# what a damaged zip file raises while it is read (a bad header, an unsupported method, an encrypted member,
# a short read, a seek before the start); the file is read into memory first, so an OSError is about the data
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               ValueError, zlib.error, lzma.LZMAError)


def read_file_text(path) -> tuple[str, str]:
    """(text, name) of a UTF-8 file, a .gz, or the one tab-separated member of a .zip (name: zip:member)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: expected a tab-separated pairs file, got a directory "
                                "(a Multi30k directory needs --langs SRC-TGT)")
    if path.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
        except _ZIP_ERRORS as e:
            raise ValueError(f"{path}: not a valid zip file ({e})") from None
        with archive:
            members = [m for m in archive.namelist() if not m.endswith("/") and not Path(m).name.startswith("_")
                       and Path(m).suffix in (".txt", ".tsv")]
            if len(members) != 1:
                raise ValueError(f"{path}: expected one .txt/.tsv member (not starting with _) in the zip, "
                                 f"got {members or archive.namelist()}")
            name = f"{path}:{members[0]}"
            try:
                data = archive.read(members[0])
            except _ZIP_ERRORS as e:
                raise ValueError(f"{name}: cannot read it from the zip file ({e})") from None
        return _decode(data, name), name
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: not a valid gzip file ({e})") from None
    return _decode(raw, str(path)), str(path)


def read_pairs(path, *, source_column: int = 0, target_column: int = 1) -> Pairs:
    """Pairs from a tab-separated file (.gz and one-member .zip accepted); errors name the file and line."""
    if source_column == target_column or min(source_column, target_column) < 0:
        raise ValueError(f"read_pairs: expected two different columns >= 0, got source {source_column} and "
                         f"target {target_column}")
    text, name = read_file_text(path)
    sources, targets, where = [], [], []
    width = None
    for number, line in enumerate(text.splitlines(), start=1):
        cells = line.split("\t")
        if width is None:
            width = len(cells)
            if width <= max(source_column, target_column):
                raise ValueError(f"{name}, line {number}: expected at least {max(source_column, target_column) + 1} "
                                 f"tab-separated columns (source<TAB>target), got {width}: {line[:80]!r}")
        elif len(cells) != width:
            raise ValueError(f"{name}, line {number}: expected {width} tab-separated columns like line 1, got "
                             f"{len(cells)}: {line[:80]!r}")
        source, target = cells[source_column].strip(), cells[target_column].strip()
        for side, value, column in (("source", source, source_column), ("target", target, target_column)):
            if not value:
                raise ValueError(f"{name}, line {number}: empty {side} (column {column + 1}): {line[:80]!r}")
        sources.append(source)
        targets.append(target)
        where.append(f"{name}, line {number}")
    if not sources:
        raise ValueError(f"{name}: the file holds no pairs")
    return Pairs(sources, targets, where)


def _lines(path: Path) -> tuple[list[str], str]:
    text, name = read_file_text(path)
    return text.splitlines(), name


def read_parallel(source_path, target_path) -> Pairs:
    """Pairs from two line-aligned files (Multi30k); the line counts must agree and no line may be empty."""
    sources, source_name = _lines(Path(source_path))
    targets, target_name = _lines(Path(target_path))
    if len(sources) != len(targets):
        raise ValueError(f"{source_name} has {len(sources)} lines but {target_name} has {len(targets)}; "
                         "expected line-aligned files")
    where = []
    for number, (s, t) in enumerate(zip(sources, targets), start=1):
        for value, name in ((s, source_name), (t, target_name)):
            if not value.strip():
                raise ValueError(f"{name}, line {number}: empty sentence")
        where.append(f"{source_name}, line {number}")
    return Pairs([s.strip() for s in sources], [t.strip() for t in targets], where)


def read_multi30k(directory, source_lang: str, target_lang: str) -> dict[str, Pairs]:
    """{"train", "valid", "test"} from a Multi30k task-1 directory (train, val, test_2016_flickr)."""
    directory = Path(directory)
    splits = {}
    for split, stem in MULTI30K_SPLITS.items():
        paths = []
        for lang in (source_lang, target_lang):
            candidates = [directory / f"{stem}.{lang}", directory / f"{stem}.{lang}.gz"]
            found = next((p for p in candidates if p.exists()), None)
            if found is None:
                raise FileNotFoundError(f"{directory}: expected {candidates[0].name} or {candidates[1].name} "
                                        f"(a Multi30k directory with language {lang!r})")
            paths.append(found)
        splits[split] = read_parallel(*paths)
    return splits


# ----- tokens ---------------------------------------------------------------------------------------------

@dataclass
class Processing:
    """How a sentence becomes tokens: the tokenizer and lower-casing (saved in config.json)."""

    tokenizer: str = "13a"
    lower: bool = True

    def __post_init__(self):
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"Processing: expected tokenizer in {TOKENIZERS}, got {self.tokenizer!r}")

    def tokens(self, text: str) -> list[str]:
        text = " ".join(text.split())  # every Unicode space (U+202F too) -> one ASCII space
        if self.lower:
            text = text.lower()
        if self.tokenizer == "char":
            return list(text)
        if self.tokenizer == "13a":
            return _tokenizer_13a()(text).split()
        return text.split()

    def join(self, tokens: list[str]) -> str:
        """Tokens back to text: characters concatenated, words joined by spaces (tokenised, as BLEU reads them)."""
        return "".join(tokens) if self.tokenizer == "char" else " ".join(tokens)


_13A = None


def _tokenizer_13a():
    global _13A
    if _13A is None:
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

        _13A = Tokenizer13a()
    return _13A


@dataclass
class TokenPairs:
    sources: list[list[str]]
    targets: list[list[str]]
    where: list[str]

    def __len__(self) -> int:
        return len(self.sources)


def tokenize_pairs(pairs: Pairs, processing: Processing, *, max_len: int | None = None) -> tuple[TokenPairs, int]:
    """Tokenise both sides; drop the pairs with a side longer than max_len tokens (returned as a count, for
    the caller to report). A side that tokenises to nothing is an error naming its line."""
    sources, targets, where, dropped = [], [], [], 0
    for i, (s, t) in enumerate(zip(pairs.sources, pairs.targets)):
        st, tt = processing.tokens(s), processing.tokens(t)
        if not st or not tt:
            at = pairs.where[i] if pairs.where else f"pair {i}"
            raise ValueError(f"{at}: the {'source' if not st else 'target'} has no tokens: {(s if not st else t)!r}")
        if max_len is not None and max(len(st), len(tt)) > max_len:
            dropped += 1
            continue
        sources.append(st)
        targets.append(tt)
        where.append(pairs.where[i] if pairs.where else f"pair {i}")
    return TokenPairs(sources, targets, where), dropped


def build_vocab(token_lists, *, min_freq: int = 1, max_size: int | None = None) -> Vocab:
    """<pad>, <unk>, <bos>, <eos>, then the tokens seen at least min_freq times, most frequent first (ties
    alphabetically), at most max_size entries in all."""
    if min_freq < 1:
        raise ValueError(f"build_vocab: expected min_freq >= 1, got {min_freq}")
    if max_size is not None and max_size <= len(SPECIALS):
        raise ValueError(f"build_vocab: expected max_size > {len(SPECIALS)} (the special tokens), got {max_size}")
    counts = Counter(t for tokens in token_lists for t in tokens)
    for special in SPECIALS:
        counts.pop(special, None)
    kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[: max_size - len(SPECIALS)]
    return Vocab(SPECIALS + kept, unk=UNK, level="word")


def check_pair_vocab(vocab: Vocab, name: str) -> Vocab:
    if vocab.tokens[: len(SPECIALS)] != SPECIALS or vocab.unk != UNK:
        raise ValueError(f"{name}: expected a vocabulary starting with {SPECIALS} and unk {UNK!r}, got "
                         f"{vocab.tokens[:len(SPECIALS)]} and unk {vocab.unk!r}")
    return vocab


# ----- tensors and batches ---------------------------------------------------------------------------------

@dataclass
class EncodedPairs:
    """src (N, S) ids ending in <eos>, src_lengths (N,); tgt_in (N, T) <bos> y..., tgt_out (N, T) y... <eos>."""

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor

    def __len__(self) -> int:
        return self.src.shape[0]


def pad_rows(rows: list[Tensor], pad_id: int = PAD_ID) -> tuple[Tensor, Tensor]:
    """Padded (N, max length) int64 and the lengths (N,)."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
    out = torch.full((len(rows), int(lengths.max()) if rows else 0), pad_id, dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lengths


def encode_sources(vocab: Vocab, sources: list[list[str]]) -> tuple[Tensor, Tensor]:
    """Each source's ids followed by <eos> (Sutskever's end of sentence), padded: (N, S), lengths (N,)."""
    eos = torch.tensor([EOS_ID])
    return pad_rows([torch.cat([vocab.encode(s), eos]) for s in sources])


def encode_pairs(src_vocab: Vocab, tgt_vocab: Vocab, pairs: TokenPairs) -> EncodedPairs:
    if len(pairs) == 0:
        raise ValueError("encode_pairs: no pairs to encode")
    src, src_lengths = encode_sources(src_vocab, pairs.sources)
    bos, eos = torch.tensor([BOS_ID]), torch.tensor([EOS_ID])
    targets = [tgt_vocab.encode(t) for t in pairs.targets]
    tgt_in, _ = pad_rows([torch.cat([bos, t]) for t in targets])
    tgt_out, _ = pad_rows([torch.cat([t, eos]) for t in targets])
    return EncodedPairs(src, src_lengths, tgt_in, tgt_out)


@dataclass
class PairBatch(Batch):
    """A batch of pairs: x (B, 2, L) = stack(source, decoder input), y (B, L) decoder targets, lengths (B,) the
    source lengths. ``tokens`` counts the target tokens (what the loss averages over)."""

    @property
    def tokens(self) -> int:
        return int((self.y != PAD_ID).sum())


class PairBatches:
    """Pairs in batches, reshuffled every epoch from (seed, epoch); each batch trimmed to its own longest
    source and target. ``shuffle=False`` keeps the order (evaluation)."""

    def __init__(self, data: EncodedPairs, batch_size: int, *, shuffle: bool = True, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"PairBatches: expected batch_size >= 1, got {batch_size}")
        if len(data) == 0:
            raise ValueError("PairBatches: expected at least one pair, got none")
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.tgt_lengths = (data.tgt_out != PAD_ID).sum(dim=1)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[PairBatch]:
        n = len(self.data)
        order = epoch_order(n, epoch, seed=self.seed, shuffle=self.shuffle)
        d = self.data
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            S, T = int(d.src_lengths[idx].max()), int(self.tgt_lengths[idx].max())
            L = max(S, T)
            x = torch.full((len(idx), 2, L), PAD_ID, dtype=torch.int64)
            x[:, 0, :S] = d.src[idx, :S]
            x[:, 1, :T] = d.tgt_in[idx, :T]
            yield PairBatch(x, d.tgt_out[idx, :T], d.src_lengths[idx])
