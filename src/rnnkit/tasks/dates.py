"""Date normalisation: "the 5th of March 2021", "05.03.2021", "Fri 5 Mar 2021" -> "2021-03-05".

A character-level encoder-decoder with attention learns to read dates in the formats of
``rnnkit.data.dates`` and write them in ISO 8601; the metric is exact match on held-out dates (no source
string of the test set occurs in training). The pairs are generated from ``data_seed`` (the same data for
every training ``--seed``), tokenised into characters with their case kept, and trained through
:func:`rnnkit.tasks.seq2seq.fit`: the run directory is a seq2seq run, so ``rnnkit translate RUN_DIR "5 March
2021"`` works on it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..data.dates import date_splits
from ..data.pairs import Processing, tokenize_pairs
from ..train import TrainConfig
from . import seq2seq

PROCESSING = Processing(tokenizer="char", lower=False)

# the model `rnnkit train dates` builds unless told otherwise: small, and fast on two CPU cores
DEFAULT_MODEL = {"cell": "gru", "embedding": 32, "hidden": 128, "layers": 1, "attention": "luong-general"}


@dataclass
class DatesTask:
    train_size: int = 20_000
    valid_size: int = 1_000
    test_size: int = 2_000
    data_seed: int = 0

    def __post_init__(self):
        for name in ("train_size", "valid_size", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"DatesTask: expected {name} >= 1, got {getattr(self, name)}")


def train(task: DatesTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None, beam: int = 1) -> dict:
    """Generate the dates, train into ``out``, and report exact match on the test dates (greedy, or ``beam``)."""
    splits = date_splits(task.train_size, task.valid_size, task.test_size, task.data_seed)
    tokens = {name: tokenize_pairs(pairs, PROCESSING)[0] for name, pairs in splits.items()}
    return seq2seq.fit(tokens, PROCESSING, model_cfg, cfg, out, run_config={"task": "dates", "data": asdict(task)},
                       resume=resume, resume_command=resume_command, beam=beam)
