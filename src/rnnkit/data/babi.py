"""bAbI question answering (Weston et al. 2015; lecture 004): task files -> questions with their stories ->
vocabulary -> padded batches for the Dynamic Memory Network.

    qa1_single-supporting-fact_train.txt          one line per sentence, numbered; IDs restart at 1 per story
      1 Mary moved to the bathroom.               a fact
      2 John went to the hallway.
      3 Where is Mary? <TAB>bathroom<TAB>1        a question: text, answer, supporting fact IDs
      ──read_file──> QA(facts so far, question, answer, supporting) per question line
      ──Vocab (train words; <pad> <unk> <eos>)──> encode: facts (F, W), question (Q,), answer (A,)
      ──BabiBatches──> BabiBatch x (B, F + 2, W): facts, question, decoder input; y (B, L); supporting (B, S)

A question sees every fact of its story that comes before it (questions are not facts). Answers are
comma-separated words: "bathroom", task 8's lists "milk,football", task 19's paths "n,w". Tokens are lower
case with punctuation split off ("Where is Mary?" -> where is mary ?).

Splits (MANIFEST): train / test as given; validation is the last 10 % of the training questions (what
Facebook's en-valid directories hold). The 10k set (``en-10k/``, gzipped here) lacks task 3's training file;
asking for it is an error that names the file and suggests the 1k set.
"""
from __future__ import annotations

import gzip
import io
import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import Tensor

from .batching import Batch, epoch_order
from .tokenize import PAD
from .vocab import EOS, UNK, Vocab

log = logging.getLogger(__name__)

TASK_NAMES = {
    1: "single-supporting-fact", 2: "two-supporting-facts", 3: "three-supporting-facts", 4: "two-arg-relations",
    5: "three-arg-relations", 6: "yes-no-questions", 7: "counting", 8: "lists-sets", 9: "simple-negation",
    10: "indefinite-knowledge", 11: "basic-coreference", 12: "conjunction", 13: "compound-coreference",
    14: "time-reasoning", 15: "basic-deduction", 16: "basic-induction", 17: "positional-reasoning",
    18: "size-reasoning", 19: "path-finding", 20: "agents-motivations",
}
SETS = {False: "en", True: "en-10k"}  # ten_k -> directory
VALID_FRACTION = 0.1
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2  # the first three entries of every bAbI vocabulary

_TOKEN = re.compile(r"\w+|[^\w\s]")  # words, and every punctuation mark on its own


def tokenize(text: str) -> list[str]:
    """Lower-case words and punctuation: ``"Where is Mary?"`` -> ``["where", "is", "mary", "?"]``."""
    return _TOKEN.findall(text.lower())


@dataclass
class QA:
    """One question with its story.

    facts: the tokens of every fact of the story before the question, in order; question: its tokens;
    answer: the answer's words (task 8 and 19 answers have several, comma-separated in the file; [] when the
    input gives none, as a question to ``rnnkit answer`` may); supporting: indices into ``facts`` of the
    supporting facts, in the file's order; fact_ids: each fact's line ID in the file; texts: the facts as written,
    then the question as written (for display); where: "file, line N".
    """

    facts: list[list[str]]
    question: list[str]
    answer: list[str]
    supporting: list[int]
    fact_ids: list[int]
    texts: list[str]
    where: str


# ----- reading ----------------------------------------------------------------------------------------------

def parse(lines: Iterable[str], source: str = "<input>", *, need_answers: bool = True) -> list[QA]:
    """The questions of bAbI-format lines (see the module docstring).

    With ``need_answers`` (task files) a question line must be ``ID question<TAB>answer<TAB>supporting IDs``.
    Without it (``rnnkit answer``'s input) a line is a question when it has a TAB or ends with "?", and the
    answer and supporting IDs after the question are optional. Blank lines are skipped. A malformed line,
    a supporting ID that is not an earlier fact of the story, and a question before any fact of its story
    (an empty story: nothing to attend to) are errors naming ``source`` and the line number.
    """
    out: list[QA] = []
    facts: list[list[str]] = []
    fact_index: dict[int, int] = {}  # line ID -> index into facts, for this story
    fact_ids: list[int] = []
    texts: list[str] = []
    previous = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        head, _, rest = line.strip(" ").partition(" ")
        if not (head.isascii() and head.isdigit()) or int(head) < 1:
            raise ValueError(f"{where}: expected 'ID text' with a line ID >= 1, got {_show(line)}")
        line_id = int(head)
        if line_id == 1:  # a new story
            facts, fact_index, fact_ids, texts = [], {}, [], []
        elif line_id != previous + 1:
            raise ValueError(f"{where}: expected line ID {previous + 1} (the next in the story) or 1 (a new story), "
                             f"got {line_id}")
        previous = line_id
        fields = rest.split("\t")
        is_question = len(fields) > 1 or (not need_answers and rest.rstrip().endswith("?"))
        if not is_question:
            tokens = tokenize(rest)
            if not tokens:
                raise ValueError(f"{where}: empty fact (no word after the ID {line_id})")
            fact_index[line_id] = len(facts)
            facts.append(tokens)
            fact_ids.append(line_id)
            texts.append(rest.strip())
            continue
        if need_answers and len(fields) != 3:
            raise ValueError(f"{where}: expected 'ID question<TAB>answer<TAB>supporting fact IDs' (3 tab-separated "
                             f"fields), got {len(fields)}: {_show(line)}")
        if len(fields) > 3:
            raise ValueError(f"{where}: expected at most 3 tab-separated fields (question, answer, supporting fact "
                             f"IDs), got {len(fields)}: {_show(line)}")
        question = tokenize(fields[0])
        if not question:
            raise ValueError(f"{where}: empty question (no word after the ID {line_id})")
        answer = [w for w in (a.strip().lower() for a in fields[1].split(",")) if w] if len(fields) > 1 else []
        if need_answers and not answer:
            raise ValueError(f"{where}: empty answer in {_show(line)}")
        if len(fields) > 1 and fields[1].strip() and len(answer) != len(fields[1].split(",")):
            raise ValueError(f"{where}: expected comma-separated answer words, got {fields[1].strip()!r}")
        supporting = []
        for item in (fields[2].split() if len(fields) > 2 else []):
            if not (item.isascii() and item.isdigit()):
                raise ValueError(f"{where}: expected supporting fact IDs (numbers), got {item!r}")
            if int(item) not in fact_index:
                raise ValueError(f"{where}: supporting fact ID {item} is not a fact before this question in its story "
                                 f"(facts: {', '.join(map(str, fact_ids)) or 'none'})")
            supporting.append(fact_index[int(item)])
        if not facts:
            raise ValueError(f"{where}: the question {' '.join(question)!r} has an empty story (no fact before it "
                             f"since the story began); a question needs at least one fact to attend to")
        # the token lists are shared between the questions of a story (never changed), the lists are not
        out.append(QA(list(facts), question, answer, supporting, list(fact_ids), texts + [fields[0].strip()], where))
    return out


def _show(line: str, limit: int = 80) -> str:
    line = line.replace("\t", "<TAB>")
    return repr(line if len(line) <= limit else line[:limit] + "...")


def read_file(path) -> list[QA]:
    """The questions of one bAbI file (plain text or .gz, UTF-8); an empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bAbI file {path} not found")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    try:  # the whole file at once: a streaming decoder's offset would count from its last chunk
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: not UTF-8 text (byte offset {e.start}) at line {line}") from None
    questions = parse(io.StringIO(text, newline=None), str(path))  # universal newlines, as open() reads
    if not questions:
        raise ValueError(f"{path}: holds no questions (expected bAbI lines 'ID text' and 'ID question<TAB>answer"
                         "<TAB>supporting IDs')")
    return questions


def find_root(data) -> Path:
    """The bAbI directory holding en/ (and en-10k/): ``data`` itself, its parent when it is en/ or en-10k/, or
    its tasks_1-20_v1-2/ child."""
    data = Path(data)
    for candidate in (data, data.parent, data / "tasks_1-20_v1-2"):
        if (candidate / "en").is_dir() or (candidate / "en-10k").is_dir():
            return candidate
    raise FileNotFoundError(f"bAbI: expected a directory holding en/ (1k) and en-10k/ (10k) task files, such as "
                            f"tasks_1-20_v1-2/, got {data}")


def task_file(data, task: int, split: str, *, ten_k: bool = False) -> Path:
    """The path of ``qa{task}_{name}_{split}.txt`` (or .txt.gz) in the 1k or 10k set; a missing file is an error
    naming it (the 10k training file of task 3 is missing from the shared copy: use the 1k set)."""
    check_task(task)
    if split not in ("train", "test"):
        raise ValueError(f"bAbI: expected split 'train' or 'test', got {split!r}")
    root = find_root(data)
    name = f"qa{task}_{TASK_NAMES[task]}_{split}.txt"
    folder = root / SETS[ten_k]
    for path in (folder / name, folder / (name + ".gz")):
        if path.is_file():
            return path
    hint = " Use the 1k set (drop --ten-k / ten_k=False) for this task." if ten_k else ""
    raise FileNotFoundError(f"bAbI task {task} ({'10k' if ten_k else '1k'}): {folder / name}[.gz] is missing "
                            f"from {root}.{hint}")


def check_task(task) -> int:
    if isinstance(task, bool) or not isinstance(task, int) or task not in TASK_NAMES:
        raise ValueError(f"bAbI: expected a task number in 1..20, got {task!r}")
    return task


def load_task(data, task: int, *, ten_k: bool = False) -> dict[str, list[QA]]:
    """{"train", "valid", "test"}: the task's questions; valid is the last 10 % of the training file."""
    train = read_file(task_file(data, task, "train", ten_k=ten_k))
    test = read_file(task_file(data, task, "test", ten_k=ten_k))
    n_valid = max(1, round(len(train) * VALID_FRACTION))
    if n_valid >= len(train):
        raise ValueError(f"bAbI task {task}: {len(train)} training questions are too few to hold out 10 % for "
                         "validation")
    return {"train": train[:-n_valid], "valid": train[-n_valid:], "test": test}


# ----- vocabulary and encoding --------------------------------------------------------------------------------

def build_vocab(questions: list[QA]) -> Vocab:
    """<pad>, <unk>, <eos> (ids 0, 1, 2), then every word of the facts, questions and answers, sorted."""
    words = set()
    for qa in questions:
        for fact in qa.facts:
            words.update(fact)
        words.update(qa.question)
        words.update(qa.answer)
    words -= {PAD, UNK, EOS}
    return Vocab([PAD, UNK, EOS, *sorted(words)], unk=UNK, level="word")


def check_vocab(vocab: Vocab) -> Vocab:
    if vocab.tokens[:3] != [PAD, UNK, EOS] or vocab.unk != UNK:
        raise ValueError(f"bAbI: expected a vocabulary starting with {PAD!r}, {UNK!r}, {EOS!r} and unk {UNK!r}, "
                         f"got {vocab.tokens[:3]} and unk {vocab.unk!r}")
    return vocab


@dataclass
class EncodedQA:
    """Encoded questions: per question i, facts[i] (F_i, W_i) ids padded with 0 (W_i: its longest fact),
    question[i] (Q_i,), answer[i] (A_i,) and supporting[i] (S_i,) fact indices. ``cut``: how many questions
    lost their oldest facts to ``max_facts``; ``unknown``: {word: count} of the words read as <unk>."""

    facts: list[Tensor]
    question: list[Tensor]
    answer: list[Tensor]
    supporting: list[Tensor]
    cut: int
    unknown: dict[str, int]

    def __len__(self) -> int:
        return len(self.question)


def encode(questions: list[QA], vocab: Vocab, *, max_facts: int | None = None, source: str = "questions"
           ) -> EncodedQA:
    """Ids of every question. Words outside the vocabulary become <unk> with one warning listing them.
    ``max_facts`` keeps the most recent facts of longer stories; the questions cut are counted and warned
    about (their supporting facts that were cut are dropped from gate supervision)."""
    check_vocab(vocab)
    if max_facts is not None and (isinstance(max_facts, bool) or not isinstance(max_facts, int) or max_facts < 1):
        raise ValueError(f"bAbI: expected max_facts >= 1 or None, got {max_facts!r}")
    unknown: Counter = Counter()
    index, unk = vocab.index, vocab.index[UNK]

    def ids(tokens: list[str]) -> list[int]:
        out = [index.get(t, unk) for t in tokens]
        if unk in out:
            unknown.update(t for t in tokens if t not in index)
        return out

    facts, question, answer, supporting, cut = [], [], [], [], 0
    for qa in questions:
        keep = qa.facts if max_facts is None else qa.facts[-max_facts:]
        offset = len(qa.facts) - len(keep)
        cut += offset > 0
        width = max(len(f) for f in keep)
        facts.append(torch.tensor([ids(f) + [PAD_ID] * (width - len(f)) for f in keep], dtype=torch.int64))
        question.append(torch.tensor(ids(qa.question), dtype=torch.int64))
        answer.append(torch.tensor(ids(qa.answer), dtype=torch.int64))
        supporting.append(torch.tensor([s - offset for s in qa.supporting if s >= offset], dtype=torch.int64))
    if unknown:
        shown = ", ".join(f"{w!r}" + (f" ({n}x)" if n > 1 else "") for w, n in unknown.most_common(10))
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        log.warning("%s: %d word(s) outside the %d-word training vocabulary read as <unk>: %s%s", source,
                    len(unknown), len(vocab), shown, more)
    if cut:
        log.warning("%s: --max-facts %d kept the last %d facts of %d of %d stories (the rest were longer)", source,
                    max_facts, max_facts, cut, len(questions))
    return EncodedQA(facts, question, answer, supporting, cut, dict(unknown))


# ----- batches ------------------------------------------------------------------------------------------------

@dataclass
class BabiBatch(Batch):
    """x (B, F + 2, W): rows 0..F-1 the facts (a padding fact is a row of 0s, after the real ones), row F the
    question, row F + 1 the answer decoder's input (``<eos>`` as the start symbol, then the answer words; all 0
    for a one-word softmax answer); y (B, L): the answer ids (with a final ``<eos>`` for the decoder), padded
    with 0; supporting (B, S): supporting fact indices, padded with -1. Weighs one per question in
    ``evaluate`` (loss and accuracy are per question)."""

    supporting: Tensor | None = None

    @property
    def tokens(self) -> int:
        return self.x.shape[0]


def collate(data: EncodedQA, rows: list[int], *, decoder: bool) -> BabiBatch:
    """The batch of questions ``rows``: padded to its own most facts, longest sentence and longest answer."""
    n_facts = max(data.facts[i].shape[0] for i in rows)
    answer_len = max(data.answer[i].numel() for i in rows) + (1 if decoder else 0)
    width = max(max(data.facts[i].shape[1] for i in rows), max(data.question[i].numel() for i in rows),
                answer_len if decoder else 1)
    B = len(rows)
    x = torch.zeros(B, n_facts + 2, width, dtype=torch.int64)
    y = torch.zeros(B, max(answer_len, 1), dtype=torch.int64)
    n_support = max(1, max(data.supporting[i].numel() for i in rows))
    supporting = torch.full((B, n_support), -1, dtype=torch.int64)
    for b, i in enumerate(rows):
        facts, question, answer, support = data.facts[i], data.question[i], data.answer[i], data.supporting[i]
        x[b, : facts.shape[0], : facts.shape[1]] = facts
        x[b, n_facts, : question.numel()] = question
        if decoder:  # teacher forcing: the decoder reads <eos> then the answer, and predicts the answer then <eos>
            x[b, n_facts + 1, 0] = EOS_ID
            x[b, n_facts + 1, 1: answer.numel() + 1] = answer
            y[b, : answer.numel()] = answer
            y[b, answer.numel()] = EOS_ID
        else:
            y[b, : answer.numel()] = answer
        supporting[b, : support.numel()] = support
    return BabiBatch(x, y, supporting=supporting)


class BabiBatches:
    """Questions in batches, reshuffled every epoch from (seed, epoch); each batch padded to its own sizes.

    decoder: the answer is decoded word by word (multi-word answers; see :func:`collate`); without it every
    answer must be one word, else the error names the question.
    """

    def __init__(self, data: EncodedQA, batch_size: int, *, decoder: bool, shuffle: bool = True, seed: int = 0,
                 where: list[str] | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BabiBatches: expected batch_size >= 1, got {batch_size!r}")
        if len(data) == 0:
            raise ValueError("BabiBatches: expected at least one question, got none")
        if not decoder:
            for i, answer in enumerate(data.answer):
                if answer.numel() != 1:
                    at = where[i] if where else f"question {i}"
                    raise ValueError(f"{at}: a one-word (softmax) answer module cannot give the {answer.numel()}-word "
                                     "answer of this question; use the GRU decoder (answer='gru')")
        self.data, self.batch_size, self.decoder, self.shuffle, self.seed = data, batch_size, decoder, shuffle, seed

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[BabiBatch]:
        n = len(self.data)
        order = epoch_order(n, epoch, seed=self.seed, shuffle=self.shuffle).tolist()
        for start in range(0, n, self.batch_size):
            yield collate(self.data, order[start:start + self.batch_size], decoder=self.decoder)
