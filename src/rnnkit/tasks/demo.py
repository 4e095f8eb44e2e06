"""``rnnkit demo``: a small char LSTM trained for about two minutes, then sampled.

The default corpus is real text that every machine with Python has and that needs no download: the
source code of a fixed list of Python standard-library modules (``sysconfig``'s stdlib directory),
concatenated in a fixed order. ``--data FILE`` trains on the user's text instead.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

from ..train import TrainConfig, checkpoint
from . import lm

# Well-known, long-lived modules; whichever exist in this Python are used, in this order.
STDLIB_FILES = [
    "argparse.py", "collections/__init__.py", "dataclasses.py", "functools.py", "inspect.py",
    "logging/__init__.py", "pathlib.py", "pathlib/_local.py", "subprocess.py", "textwrap.py", "typing.py",
    "enum.py", "json/decoder.py", "json/encoder.py", "random.py", "statistics.py", "string.py", "shutil.py",
    "tempfile.py", "threading.py", "unittest/case.py", "fractions.py", "heapq.py", "bisect.py", "csv.py",
    "difflib.py", "calendar.py", "ast.py", "tokenize.py", "configparser.py", "pprint.py", "datetime.py",
]
CORPUS_CHARS = 1_500_000


def stdlib_corpus(max_chars: int = CORPUS_CHARS) -> str:
    """Up to max_chars characters of Python standard-library source, the same text for the same Python."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for name in STDLIB_FILES:
        path = root / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(text)
            size += len(text)
            if size >= max_chars:
                break
    if not parts:
        raise FileNotFoundError(f"demo: found no standard-library sources under {root}; pass --data FILE")
    return "\n".join(parts)[:max_chars]


def prepare_corpus(out: Path, data: str | None) -> str:
    """The path to train on: the user's file, or the stdlib corpus written into the run directory."""
    if data:
        return data
    out.mkdir(parents=True, exist_ok=True)
    path = out / "corpus.txt"
    if not path.exists():
        checkpoint.atomic_write_bytes(path, stdlib_corpus().encode("utf-8"))
    return str(path)


def run(out, *, data: str | None = None, minutes: float = 2.0, seed: int = 0, device: str = "auto",
        quiet: bool = False, hidden: int = 256, layers: int = 2, cell: str = "lstm") -> dict:
    """Train the demo model into `out`; returns the validation report."""
    out = Path(out)
    cfg = TrainConfig(steps=1_000_000, max_time=minutes * 60, batch_size=32, lr=2e-3, clip_norm=5.0,
                      eval_every=200, seed=seed, device=device, quiet=quiet)
    model = {"cell": cell, "hidden": hidden, "layers": layers, "embedding": 0}
    task = lm.LMTask(data=prepare_corpus(out, data), level="char", seq_len=100)  # after the checks above
    return lm.train(task, model, cfg, out)
