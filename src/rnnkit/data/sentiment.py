"""Labelled sentences for sentiment classification (lectures 002-004): readers, label checks, splits.

Three formats, as ``../shared/data/MANIFEST.md`` describes them:

* **SST** (Stanford Sentiment Treebank, Socher et al. 2013), a directory with ``train.txt``, ``dev.txt``,
  ``test.txt``: one PTB-style tree per line, a 0-4 sentiment label on every node. The sentence is the
  tree's leaves, its label the root's. Standard splits 8,544 / 1,101 / 2,210 (SST-5); binary SST-2 drops
  the neutral roots (label 2) and maps 0-1 to negative, 3-4 to positive: 6,920 / 872 / 1,821.
* **RT sentence polarity v1.0** (Pang & Lee 2005), a directory with ``rt-polarity.pos`` and
  ``rt-polarity.neg``: one snippet per line, Windows-1252 encoded, 5,331 of each. No fixed split: the
  standard is 10-fold cross-validation (Kim 2014's "MR"); :func:`kfold` gives fold k of a seeded shuffle,
  and fold 0 of 10 is the fixed 90/10 split.
* **TSV**: ``text<TAB>label`` per line (UCI "Sentiment Labelled Sentences" is this format), UTF-8.

Every error names the file and the line: an unknown label, an empty text, a malformed tree.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .text import read_text

log = logging.getLogger(__name__)

SST_FILES = {"train": "train.txt", "valid": "dev.txt", "test": "test.txt"}
SST5_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]
SST2_LABELS = ["negative", "positive"]
RT_FILES = {"negative": "rt-polarity.neg", "positive": "rt-polarity.pos"}


@dataclass
class LabelledTexts:
    """texts[i] has label id labels[i], whose name is label_names[labels[i]]; where[i] says where it came
    from ("file:line") for error messages."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    where: list[str] = field(default_factory=list)

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"LabelledTexts: {len(self.texts)} texts but {len(self.labels)} labels")
        if not self.where:
            self.where = [f"text {i}" for i in range(len(self.texts))]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index) -> "LabelledTexts":
        index = [int(i) for i in index]
        return LabelledTexts([self.texts[i] for i in index], [self.labels[i] for i in index], self.label_names,
                             [self.where[i] for i in index])

    def counts(self) -> dict[str, int]:
        return {name: self.labels.count(i) for i, name in enumerate(self.label_names)}


# ----- SST ----------------------------------------------------------------------------------------

_TREE_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}",
                "``": '"', "''": '"'}


def parse_tree(line: str, where: str = "tree") -> tuple[list[str], list[tuple[int, int, int]]]:
    """(leaf words, nodes) of one SST tree ``(3 (2 It) (4 (2 's) (4 great)))``: every node as
    (label, start, stop), its phrase being words[start:stop], the root last. PTB escapes become the
    characters again (-LRB- is "(", \\/ is "/", `` is a double quote). A malformed tree or a label
    outside 0-4 is an error naming ``where``."""
    tokens = _TREE_TOKEN.findall(line)
    words, open_nodes, nodes, i = [], [], [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "(":
            label = tokens[i + 1] if i + 1 < len(tokens) else ""
            if label not in ("0", "1", "2", "3", "4"):
                raise ValueError(f"{where}: expected a sentiment label 0-4 after '(', got {label!r}")
            if not open_nodes and nodes:
                raise ValueError(f"{where}: expected one tree per line, got a second one at token {i}")
            open_nodes.append((int(label), len(words)))
            i += 2
        elif tok == ")":
            if not open_nodes:
                raise ValueError(f"{where}: unbalanced parentheses: ')' without '(' at token {i}")
            label, start = open_nodes.pop()
            nodes.append((label, start, len(words)))
            i += 1
        else:
            if not open_nodes:
                raise ValueError(f"{where}: expected '(' to open a tree, got {tok!r}")
            words.append(_PTB_ESCAPES.get(tok, tok).replace("\\/", "/").replace("\\*", "*"))  # PTB's \/ and \*
            i += 1
    if open_nodes:
        raise ValueError(f"{where}: unbalanced parentheses: {len(open_nodes)} '(' not closed")
    if not nodes:
        raise ValueError(f"{where}: expected a tree '(label ...)', got {line[:40]!r}")
    if not words:
        raise ValueError(f"{where}: the tree has no words")
    return words, nodes


def _sst_label(label: int, binary: bool) -> int | None:
    """SST-5 keeps 0-4; SST-2 maps 0-1 to 0 (negative), 3-4 to 1 (positive) and drops 2 (None)."""
    if not binary:
        return label
    return None if label == 2 else int(label > 2)


def read_sst_file(path, *, binary: bool = True) -> LabelledTexts:
    """One SST split: sentences with their root labels, SST-2 (binary, neutral dropped) or SST-5."""
    path = Path(path)
    texts, labels, where, neutral = [], [], [], 0
    for n, line in _tree_lines(path):
        words, nodes = parse_tree(line, f"{path}:{n}")
        label = _sst_label(nodes[-1][0], binary)
        if label is None:
            neutral += 1
            continue
        texts.append(" ".join(words))
        labels.append(label)
        where.append(f"{path}:{n}")
    if binary:
        log.info("%s: SST-2 drops %d neutral sentences (root label 2), keeps %d", path, neutral, len(texts))
    return LabelledTexts(texts, labels, SST2_LABELS if binary else SST5_LABELS, where)


def read_sst_phrases(*paths, binary: bool = True) -> LabelledTexts:
    """Every distinct labelled phrase (every node of every tree, the sentences included) of one or more SST
    files, as SST's phrase-level training (Socher et al. 2013; Kim 2014 and GLUE's SST-2 train on these). SST-2
    drops the neutral phrases. A phrase is kept once, at its first occurrence, across the files too."""
    texts, labels, where, seen = [], [], [], set()
    for path in map(Path, paths):
        for n, line in _tree_lines(path):
            words, nodes = parse_tree(line, f"{path}:{n}")
            for node_label, start, stop in reversed(nodes):  # the root first
                phrase = " ".join(words[start:stop])
                label = _sst_label(node_label, binary)
                if label is None or phrase in seen:
                    continue
                seen.add(phrase)
                texts.append(phrase)
                labels.append(label)
                where.append(f"{path}:{n}")
    log.info("%s: %d distinct labelled phrases", ", ".join(map(str, paths)), len(texts))
    return LabelledTexts(texts, labels, SST2_LABELS if binary else SST5_LABELS, where)


def _tree_lines(path: Path):
    """(line number, line) of every non-empty line (the file's final newline ends the last one)."""
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        if line.strip():
            yield n, line


def read_sst(directory, *, binary: bool = True) -> dict[str, LabelledTexts]:
    """{"train", "valid", "test"} from SST's train.txt, dev.txt, test.txt."""
    directory = Path(directory)
    return {split: read_sst_file(directory / name, binary=binary) for split, name in SST_FILES.items()}


# ----- RT polarity ----------------------------------------------------------------------------------

def read_rt(directory) -> LabelledTexts:
    """RT sentence polarity v1.0: negative (0) then positive (1) snippets, decoded from Windows-1252."""
    directory = Path(directory)
    texts, labels, where = [], [], []
    for label, (name, filename) in enumerate(RT_FILES.items()):
        path = directory / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (an RT polarity directory holds "
                                    f"{' and '.join(RT_FILES.values())})")
        raw = path.read_bytes()
        try:
            lines = raw.decode("cp1252", errors="strict").split("\n")
        except UnicodeDecodeError as e:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are not Windows-1252
            line = raw.count(b"\n", 0, e.start) + 1
            raise ValueError(f"{path}:{line}: byte 0x{raw[e.start]:02x} at byte offset {e.start} is not "
                             "Windows-1252 text (RT polarity's encoding)") from None
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                raise ValueError(f"{path}:{n}: empty text")
            texts.append(line.strip())
            labels.append(label)
            where.append(f"{path}:{n}")
    return LabelledTexts(texts, labels, list(RT_FILES), where)


def kfold(n: int, fold: int, folds: int = 10, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train index, test index) of fold ``fold`` in ``folds``-fold cross-validation over a seeded shuffle
    of range(n): the folds are disjoint and cover every example once. Fold 0 of 10 is the fixed 90/10 split."""
    if not 2 <= folds <= n:
        raise ValueError(f"kfold: expected 2 <= folds <= {n} examples, got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"kfold: expected fold in [0, {folds}), got {fold}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    bounds = [round(n * k / folds) for k in range(folds + 1)]
    test = order[bounds[fold]:bounds[fold + 1]]
    train = torch.cat([order[: bounds[fold]], order[bounds[fold + 1]:]])
    return train, test


# ----- TSV ------------------------------------------------------------------------------------------

def read_tsv(path, *, label_names: list[str] | None = None) -> LabelledTexts:
    """``text<TAB>label`` lines. Labels must be in ``label_names`` when given (an unknown one is an error
    naming the file, line and the labels expected); otherwise the file's distinct labels, sorted, are the
    classes. An empty text, a line without a tab or an empty line is an error naming its line."""
    path = Path(path)
    rows = []
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if "\t" not in line:
            raise ValueError(f"{path}:{n}: expected 'text<TAB>label', got no tab in {line[:60]!r}")
        text, label = line.rsplit("\t", 1)
        text, label = text.strip(), label.strip()
        if not text:
            raise ValueError(f"{path}:{n}: empty text (label {label!r})")
        if not label:
            raise ValueError(f"{path}:{n}: empty label after the tab")
        rows.append((text, label, f"{path}:{n}"))
    if not rows:
        raise ValueError(f"{path}: no labelled lines")
    names = list(label_names) if label_names is not None else sorted({label for _, label, _ in rows})
    index = {name: i for i, name in enumerate(names)}
    for text, label, where in rows:
        if label not in index:
            raise ValueError(f"{where}: unknown label {label!r}; expected one of {', '.join(map(repr, names))}")
    if len(names) < 2:
        raise ValueError(f"{path}: expected at least 2 classes, got only label {names[0]!r}")
    return LabelledTexts([t for t, _, _ in rows], [index[label] for _, label, _ in rows], names,
                         [w for _, _, w in rows])


# ----- which format is this? ------------------------------------------------------------------------

def detect_format(path) -> str:
    """"sst", "rt" or "tsv" for a path: an SST directory, an RT polarity directory, or a TSV file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_file():
        return "tsv"
    names = {p.name for p in path.iterdir()}
    if set(SST_FILES.values()) <= names:
        return "sst"
    if set(RT_FILES.values()) <= names:
        return "rt"
    raise ValueError(f"{path}: expected an SST directory ({', '.join(SST_FILES.values())}), an RT polarity "
                     f"directory ({', '.join(RT_FILES.values())}) or a text<TAB>label file, got a directory "
                     f"holding {', '.join(sorted(names)[:8]) or 'nothing'}")
