"""The bad-input catalogue: every kind of bad input a user can give rnnkit, in one table (README, "Bad input").

Each case makes its input files in ``tmp_path``, makes one call, and checks:

- the message names the problem (a regex);
- CLI cases run the real entry point (typer's CliRunner): exit status 1, one line ``rnnkit: error: ...`` on
  stderr, no traceback (and, for the cases marked ``debug``, a traceback with ``--debug``);
- API cases raise the documented exception type (``ValueError``, ``TypeError``, ``OSError``, or
  :class:`CheckpointError`, a ``ValueError``);
- no file under ``tmp_path`` changed (bytes and mtime), none appeared or disappeared (no stray temporary
  file or lock), and the case's own output (a new run directory) does not exist. A case may name files that
  legitimately change before the failure (a resume rewrites config.json and appends to metrics.jsonl);
  every other file, the earlier checkpoint included, is byte-identical.

Run directories come from one tiny charlm run trained once per module and copied per case. A read-only
directory and a full disk are simulated: tests run as root, where chmod does not stop a write, and a real
full disk is not something a test can make. The full disk is real bytes going to /dev/full (ENOSPC from
the kernel), not a mocked exception.
"""
from __future__ import annotations

import builtins
import errno
import gzip
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

import rnnkit as rk
from rnnkit.cli import app
from rnnkit.data import babi, idx, pairs, series_csv, text
from rnnkit.train import TrainConfig, checkpoint
from rnnkit.train.checkpoint import CheckpointError

runner = CliRunner()

TINY = ["--steps", "1", "--hidden", "8", "--layers", "1", "--embedding", "4", "--seq-len", "8", "--batch-size", "2",
        "--quiet", "--device", "cpu"]
CORPUS = ("the quick brown fox jumps over the lazy dog and then it runs far away from here\n" * 4).encode()


# ----- the trained run every run-directory case starts from ---------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny charlm run (2 steps): config.json, vocab.json, model(.best).safetensors, trainer.pt, metrics."""
    root = tmp_path_factory.mktemp("trained")
    (root / "text.txt").write_bytes(CORPUS)
    args = ["train", "charlm", "--data", root / "text.txt", *TINY, "--steps", "2", "--out", root / "run"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return root


def resume_args(ctx, run, *extra):
    """The command that continues the trained run (same data and model), two more steps."""
    return ["train", "charlm", "--data", ctx.trained / "text.txt", *TINY, "--steps", "4", "--out", run, "--resume",
            *extra]


@dataclass
class Ctx:
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    trained: Path

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def run(self, name: str = "run") -> Path:
        """A copy of the trained run directory."""
        return Path(shutil.copytree(self.trained / "run", self.tmp / name))


@dataclass
class Case:
    id: str
    kind: str  # "cli" or "api"
    setup: Callable[[Ctx], dict]  # makes the input files; returns what the call needs
    call: Callable[[dict], object]  # CLI: the argument list; API: makes the call
    match: str  # regex the message must match (re.search)
    error: type | tuple = ()  # API: the exception type
    outputs: tuple = ("new",)  # paths under tmp_path the call must not create
    may_change: tuple = ()  # paths under tmp_path a failing call may legitimately change
    debug: bool = False  # CLI: also check that --debug shows the traceback
    skip: Callable[[], str | None] = lambda: None  # a reason to skip, or None


def none(ctx):
    return {"new": ctx.tmp / "new"}


def file_case(name, content):
    def setup(ctx):
        return {"path": ctx.file(name, content), "new": ctx.tmp / "new"}
    return setup


def run_case(name="run", edit=None):
    """Setup: a copy of the trained run, then ``edit(run_dir, ctx)``."""
    def setup(ctx):
        run = ctx.run(name)
        extra = edit(run, ctx) if edit else None
        return {"run": run, "new": ctx.tmp / "new", **(extra or {})}
    return setup


def charlm(*args):
    return lambda p: ["train", "charlm", "--data", p.get("path", p.get("data")), *TINY, "--out", p["new"], *args]


# ----- files ------------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + array.tobytes()


def mnist_dir(images: bytes, gz: bool = False):
    """An MNIST directory whose training images file holds ``images`` (labels: 4 valid ones)."""
    def setup(ctx):
        d = ctx.tmp / "mnist"
        d.mkdir()
        suffix = ".gz" if gz else ""
        (d / f"train-images-idx3-ubyte{suffix}").write_bytes(images)
        idx.write_idx(d / "train-labels-idx1-ubyte", np.array([0, 1, 2, 3], dtype=np.uint8))
        return {"data": d, "new": ctx.tmp / "new"}
    return setup


GOOD_IMAGES = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))


def babi_dir(train: str):
    def setup(ctx):
        for split in ("train", "test"):
            ctx.file(f"babi/en/qa1_single-supporting-fact_{split}.txt", train if split == "train" else GOOD_BABI)
        return {"data": ctx.tmp / "babi", "new": ctx.tmp / "new"}
    return setup


GOOD_BABI = "1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary?\tbathroom\t1\n" * 10


def forecast(csv: str, *extra):
    setup = file_case("series.csv", csv)
    call = lambda p: ["train", "forecast", "--data", p["path"], "--target", "temp", "--lookback", "4", "--delay", "1",
                      "--season", "2", "--steps", "1", "--batch-size", "2", "--device", "cpu", "--quiet", "--out", p["new"], *extra]
    return setup, call


def csv_rows(n=30, na_at=None):
    rows = ["day,temp,rain"]
    for i in range(n):
        rows.append(f"{i},{'NA' if i == na_at else 10 + (i % 7)},{i % 3}")
    return "\n".join(rows) + "\n"


def pairs_file(content: str):
    setup = file_case("pairs.tsv", content)
    call = lambda p: ["train", "seq2seq", "--data", p["path"], "--steps", "1", "--hidden", "8", "--device", "cpu",
                      "--quiet", "--out", p["new"]]
    return setup, call


# ----- run directories: damaged, mismatched, read-only, full disk ------------------------------------------

def truncate(name, keep=100):
    def edit(run, ctx):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[:keep])
    return edit


def write(name, content: bytes):
    def edit(run, ctx):
        (run / name).write_bytes(content)
    return edit


def delete(name):
    def edit(run, ctx):
        (run / name).unlink()
    return edit


def reshape_weights(run, ctx):
    """Weights of another model: the output layer's tensors one row longer, in both weight files."""
    for name in ("model.safetensors", "model.best.safetensors"):
        state = safetensors.torch.load_file(run / name)
        key = next(k for k, v in state.items() if v.ndim == 2)
        state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
        safetensors.torch.save_file(state, run / name)


def shrink_vocab(run, ctx):
    vocab = json.loads((run / "vocab.json").read_text())
    key = next(k for k, v in vocab.items() if isinstance(v, list))
    vocab[key] = vocab[key][:-1]
    (run / "vocab.json").write_text(json.dumps(vocab))


def another_run_with_its_tokens_reordered(run, ctx):
    """A second copy of the run whose vocabulary has the same tokens, two of them swapped."""
    other = ctx.run("other")
    vocab = json.loads((other / "vocab.json").read_text())
    key = next(k for k, v in vocab.items() if isinstance(v, list))
    vocab[key][0], vocab[key][1] = vocab[key][1], vocab[key][0]
    (other / "vocab.json").write_text(json.dumps(vocab))
    return {"other": other}


def read_only(run, ctx):
    """Simulate a read-only run directory: creating, replacing, deleting or opening for writing any file in
    it fails with EACCES, as it would for a non-root user after chmod a-w."""
    inside = lambda path: Path(os.fspath(path)).absolute().parent == run.absolute()

    def denied(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    real_open, real_os_open, real_replace, real_unlink = builtins.open, os.open, os.replace, os.unlink

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and inside(path):
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and inside(file):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if inside(dst):
            raise denied(dst)
        return real_replace(src, dst, *args, **kwargs)

    def unlink(path, *args, **kwargs):
        if inside(path):
            raise denied(path)
        return real_unlink(path, *args, **kwargs)

    ctx.monkeypatch.setattr(os, "open", os_open)
    ctx.monkeypatch.setattr(builtins, "open", open_)
    ctx.monkeypatch.setattr(os, "replace", replace)
    ctx.monkeypatch.setattr(os, "unlink", unlink)


def really_read_only(run, ctx):
    run.chmod(0o555)
    return {"restore": lambda: run.chmod(0o755)}


def skip_as_root():
    return "running as root: chmod a-w does not stop root's writes (the simulated case covers it)" \
        if os.geteuid() == 0 else None


def disk_full(names=None):
    """Simulate a full disk: the atomic writer's temporary file is created, but its bytes go to /dev/full,
    where the kernel answers every write with ENOSPC. ``names``: only those files (None: every file)."""
    def edit(run, ctx):
        real = checkpoint._create_temp

        def create(path):
            tmp, fd = real(path)
            if names is None or path.name in names:
                os.close(fd)
                fd = os.open("/dev/full", os.O_WRONLY)
            return tmp, fd
        ctx.monkeypatch.setattr(checkpoint, "_create_temp", create)
    return edit


CHECKPOINT_FILES = ("trainer.pt", "model.safetensors", "model.best.safetensors")


def save_over_full_disk(p):
    model = torch.nn.Linear(2, 3)
    checkpoint.save_model(p["path"], model)


def setup_saved_weights(ctx):
    path = ctx.tmp / "weights.safetensors"
    checkpoint.save_model(path, torch.nn.Linear(2, 3))
    disk_full()(ctx.tmp, ctx)
    return {"path": path}


# ----- API calls ------------------------------------------------------------------------------------------

def rnn_call(x, lengths=None, state=None, kind="lstm", features=3):
    def call(p):
        return rk.layers.RNN(kind, features, 4)(x(), lengths=lengths, state=state() if state else None)
    return call


def lstm_cell_wrong_input(p):
    cell = rk.cells.LSTMCell(32, 8)
    return cell(torch.randn(8, 16), cell.initial_state(8))


# ----- the catalogue ---------------------------------------------------------------------------------------

BAD_UTF8 = b"hello world, this is text\nand then a bad byte \xff\xfe here\n"



def bad_byte_at_line(data: bytes, line: int) -> tuple[bytes, int]:
    """``data`` with a 0xff byte at the start of ``line`` (1-based), and that byte's offset."""
    at = 0
    for _ in range(line - 1):
        at = data.index(b"\n", at) + 1
    return data[:at] + b"\xff" + data[at:], at


# far beyond the first chunk a streaming decoder reads: the offset must still be the file's
DEEP_CSV, DEEP_CSV_AT = bad_byte_at_line(csv_rows(n=2000).encode(), 1802)
DEEP_BABI, DEEP_BABI_AT = bad_byte_at_line(GOOD_BABI.encode() * 20, 601)

CASES = [
    # --- tensors: shapes, dtypes, lengths, states (API) ---
    Case("cell input of the wrong size", "api", none, lstm_cell_wrong_input,
         r"LSTMCell: expected input \(B, 32\), got \(8, 16\)", ValueError),
    Case("layer input without a time axis", "api", none,
         lambda p: rk.layers.Recurrent(rk.cells.LSTMCell(3, 4))(torch.randn(2, 5)),
         r"Recurrent: expected input \(B, T, 3\), got \(2, 5\)", ValueError),
    Case("layer input with the wrong feature size", "api", none, rnn_call(lambda: torch.randn(2, 5, 7), kind="gru"),
         r"RNN: expected input \(B, T, 3\), got \(2, 5, 7\)", ValueError),
    Case("float64 input to float32 parameters", "api", none,
         rnn_call(lambda: torch.randn(2, 5, 3, dtype=torch.float64)),
         r"expected input of dtype torch.float32 like the parameters, got torch.float64", TypeError),
    Case("integer input", "api", none, rnn_call(lambda: torch.ones(2, 5, 3, dtype=torch.int32)),
         r"expected input to be a floating-point tensor, got dtype torch.int32", TypeError),
    Case("a length longer than T", "api", none, rnn_call(lambda: torch.randn(2, 5, 3), lengths=[5, 6]),
         r"expected every length in \[1, 5\] \(the padded T\), got lengths\[1\] = 6", ValueError),
    Case("a zero length", "api", none, rnn_call(lambda: torch.randn(2, 5, 3), lengths=[0, 5]),
         r"expected every length in \[1, 5\].*got lengths\[0\] = 0 \(zero-length", ValueError),
    Case("one length per sequence, wrong count", "api", none, rnn_call(lambda: torch.randn(2, 5, 3), lengths=[5, 5, 5]),
         r"expected lengths of shape \(2,\), got \(3,\)", ValueError),
    Case("float lengths", "api", none, rnn_call(lambda: torch.randn(2, 5, 3), lengths=[5.0, 4.0]),
         r"expected integer lengths, got dtype torch.float32", TypeError),
    Case("initial state for another batch size", "api", none,
         rnn_call(lambda: torch.randn(2, 5, 3), kind="gru", state=lambda: torch.zeros(1, 3, 4)),
         r"RNN: expected state .*got .*3", ValueError),
    # --- hyper-parameters (API) ---
    Case("negative hidden size", "api", none, lambda p: rk.layers.RNN("lstm", 3, -8),
         r"RNN: expected hidden_size >= 1, got -8", ValueError),
    Case("dropout = 1", "api", none, lambda p: rk.layers.RNN("lstm", 3, 4, num_layers=2, dropout=1.0),
         r"RNN: expected dropout in \[0, 1\), got 1.0", ValueError),
    Case("unknown recurrent kind", "api", none, lambda p: rk.layers.RNN("foo", 3, 4),
         r"RNN: expected kind in .*lstm.*got 'foo'", ValueError),
    Case("batch size 0", "api", none, lambda p: TrainConfig(steps=1, batch_size=0),
         r"TrainConfig: expected batch_size >= 1, got 0", ValueError),
    Case("negative learning rate", "api", none, lambda p: TrainConfig(steps=1, lr=-0.1),
         r"TrainConfig: expected lr > 0, got -0.1", ValueError),
    # --- text files (API) ---
    Case("empty text file", "api", file_case("empty.txt", b""), lambda p: text.read_text(p["path"]),
         r"empty\.txt: the file is empty", ValueError),
    Case("invalid UTF-8 in a text file", "api", file_case("bad.txt", BAD_UTF8), lambda p: text.read_text(p["path"]),
         r"bad\.txt: invalid UTF-8 at byte offset 46 \(line 2\)", ValueError),
    # --- IDX and gzip (API) ---
    Case("IDX file with a wrong magic number", "api", file_case("x.idx", b"\x00\x01\x08\x01\x00\x00\x00\x01\x07"),
         lambda p: idx.read_idx(p["path"]), r"x\.idx: not an IDX file: expected magic .*got 00 01 08 01", ValueError),
    Case("truncated IDX body", "api", file_case("x.idx", idx_bytes(np.arange(6, dtype=np.uint8))[:-2]),
         lambda p: idx.read_idx(p["path"]),
         r"x\.idx: truncated: shape \(6,\) of uint8 needs 6 bytes of data, got 4", ValueError),
    Case("truncated IDX header", "api", file_case("x.idx", b"\x00\x00\x08\x03\x00\x00"),
         lambda p: idx.read_idx(p["path"]), r"x\.idx: truncated header: 3 dimensions need 16 bytes, got 6", ValueError),
    Case("IDX file with trailing bytes", "api", file_case("x.idx", idx_bytes(np.arange(6, dtype=np.uint8)) + b"\0"),
         lambda p: idx.read_idx(p["path"]), r"x\.idx: 1 unexpected bytes after the 6 bytes of shape \(6,\)",
         ValueError),
    Case("corrupt gzip (cut short)", "api",
         file_case("x.idx.gz", gzip.compress(idx_bytes(np.arange(600, dtype=np.uint8)), mtime=0)[:-30]),
         lambda p: idx.read_idx(p["path"]), r"x\.idx\.gz: corrupt gzip data", ValueError),
    # --- bAbI and pairs files (API) ---
    Case("bAbI line without an ID", "api", file_case("qa.txt", "1 Mary went home.\nWhere is Mary?\thome\t1\n"),
         lambda p: babi.read_file(p["path"]), r"qa\.txt, line 2: expected 'ID text' with a line ID >= 1", ValueError),
    Case("bAbI question without supporting IDs", "api",
         file_case("qa.txt", "1 Mary went home.\n2 Where is Mary?\thome\n"), lambda p: babi.read_file(p["path"]),
         r"qa\.txt, line 2: expected 'ID question<TAB>answer<TAB>supporting fact IDs' \(3 tab-separated fields\), "
         r"got 2", ValueError),
    Case("bAbI supporting ID that is not a fact", "api",
         file_case("qa.txt", "1 Mary went home.\n2 Where is Mary?\thome\t7\n"), lambda p: babi.read_file(p["path"]),
         r"qa\.txt, line 2: supporting fact ID 7 is not a fact before this question", ValueError),
    Case("bAbI line IDs out of order", "api",
         file_case("qa.txt", "1 Mary went home.\n3 Where is Mary?\thome\t1\n"), lambda p: babi.read_file(p["path"]),
         r"qa\.txt, line 2: expected line ID 2 \(the next in the story\) or 1", ValueError),
    Case("bAbI file with invalid UTF-8 past the first 8 KB", "api", file_case("qa.txt", DEEP_BABI),
         lambda p: babi.read_file(p["path"]), rf"qa\.txt: not UTF-8 text \(byte offset {DEEP_BABI_AT}\) at line 601",
         ValueError),
    Case("pairs line without a tab", "api", file_case("p.tsv", "Go.\tVa !\nWho?\n"),
         lambda p: pairs.read_pairs(p["path"]),
         r"p\.tsv, line 2: expected 2 tab-separated columns like line 1, got 1: 'Who\?'", ValueError),
    Case("pairs line with an empty target", "api", file_case("p.tsv", "Go.\tVa !\nHi.\t \n"),
         lambda p: pairs.read_pairs(p["path"]), r"p\.tsv, line 2: empty target \(column 2\)", ValueError),
    # --- CSV (API) ---
    Case("CSV with duplicate header names", "api", file_case("s.csv", "day,temp,temp\n1,2,3\n"),
         lambda p: series_csv.load_series(p["path"], target="temp"),
         r"s\.csv: duplicate column names in the header: temp", ValueError),
    Case("CSV with only a header", "api", file_case("s.csv", "day,temp\n"),
         lambda p: series_csv.load_series(p["path"], target="temp"), r"s\.csv: no data rows after the header",
         ValueError),
    # --- checkpoint files (API) ---
    Case("truncated weights file", "api", file_case("w.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\""),
         lambda p: checkpoint.load_model(p["path"], torch.nn.Linear(2, 3)),
         r"w\.safetensors is corrupt or truncated", CheckpointError),
    Case("trainer state that is a raw pickle", "api", file_case("trainer.pt", pickle.dumps({"step": 1})),
         lambda p: checkpoint.load_trainer_state(p["path"]),
         r"trainer\.pt is a raw pickle, not a torch\.save archive; refused unread", CheckpointError),
    Case("disk full while saving weights", "api", setup_saved_weights, save_over_full_disk,
         r"cannot write .*weights\.safetensors: the disk is full \(No space left on device\)", OSError),

    # --- CLI: options ---
    Case("--cell foo", "cli", file_case("text.txt", CORPUS), charlm("--cell", "foo"),
         r"expected cell in .*lstm.*got 'foo'", debug=True),
    Case("--optimizer foo", "cli", file_case("text.txt", CORPUS), charlm("--optimizer", "foo"),
         r"expected optimizer in .*adam.*got 'foo'"),
    Case("--precision fp8", "cli", file_case("text.txt", CORPUS), charlm("--precision", "fp8"),
         r"expected precision in .*bf16.*got 'fp8'"),
    Case("--device tpu", "cli", file_case("text.txt", CORPUS), charlm("--device", "tpu"),
         r"expected device in .*cuda.*got 'tpu'"),
    Case("--schedule foo", "cli", file_case("text.txt", CORPUS), charlm("--schedule", "foo"),
         r"expected schedule in .*cosine.*got 'foo'"),
    Case("--errors ignore", "cli", file_case("text.txt", CORPUS), charlm("--errors", "ignore"),
         r"expected errors 'strict' or 'replace', got 'ignore'"),
    Case("--hidden -8", "cli", file_case("text.txt", CORPUS), charlm("--hidden", "-8"),
         r"hidden(_size)? >= 1, got -8"),
    Case("--dropout 1", "cli", file_case("text.txt", CORPUS), charlm("--layers", "2", "--dropout", "1"),
         r"expected dropout in \[0, 1\), got 1\.0"),
    Case("--batch-size 0", "cli", file_case("text.txt", CORPUS), charlm("--batch-size", "0"),
         r"expected batch_size >= 1, got 0"),
    Case("--seq-len 0", "cli", file_case("text.txt", CORPUS), charlm("--seq-len", "0"),
         r"expected seq_len >= 1, got 0"),
    Case("--embedding -4", "cli", file_case("text.txt", CORPUS), charlm("--embedding", "-4"),
         r"LMConfig: expected embedding >= 0 \(0 = one-hot\), got -4"),
    Case("--recurrent-dropout 1.5", "cli", file_case("text.txt", CORPUS), charlm("--recurrent-dropout", "1.5"),
         r"expected recurrent_dropout in \[0, 1\), got 1\.5"),
    Case("--lr 0", "cli", file_case("text.txt", CORPUS), charlm("--lr", "0"), r"expected lr > 0, got 0"),
    Case("--split 1.5", "cli", file_case("text.txt", CORPUS), charlm("--split", "1.5"), r"split.*1\.5"),
    Case("--attention foo", "cli", file_case("pairs.tsv", "Go.\tVa !\n" * 20),
         lambda p: ["train", "seq2seq", "--data", p["path"], "--attention", "foo", "--steps", "1", "--quiet",
                    "--device", "cpu", "--out", p["new"]], r"attention.*'foo'"),
    # --- CLI: corpora ---
    Case("no --data", "cli", none, lambda p: ["train", "charlm", *TINY, "--out", p["new"]],
         r"train charlm: --data FILE is required"),
    Case("--data file that does not exist", "cli", none,
         lambda p: ["train", "charlm", "--data", p["new"].parent / "nothing.txt", *TINY, "--out", p["new"]],
         r"nothing\.txt: no such file"),
    Case("--data a directory", "cli", lambda ctx: {"data": ctx.tmp, "new": ctx.tmp / "new"}, charlm(),
         r"expected a text file, got a directory"),
    Case("empty corpus", "cli", file_case("empty.txt", b""), charlm(), r"empty\.txt: the file is empty",
         debug=True),
    Case("corpus too small to train on", "cli", file_case("tiny.txt", b"abcabcabcabc\n"), charlm(),
         r"tiny\.txt: too little text to train on \(12 training and 1 validation tokens\)"),
    Case("corpus shorter than one batch", "cli", file_case("short.txt", b"abcdefghij" * 10),
         charlm("--batch-size", "128"),
         r"short\.txt: 90 training tokens are too few for --batch-size 128 streams \(each needs at least 2 tokens\)"),
    Case("invalid UTF-8 in the corpus", "cli", file_case("bad.txt", BAD_UTF8), charlm(),
         r"bad\.txt: invalid UTF-8 at byte offset 46 \(line 2\): b'\\xff\\xfe h'; pass --errors replace"),
    Case("--spaced on a file that is not spaced", "cli", file_case("text.txt", CORPUS), charlm("--spaced"),
         r"expected a space after every character \(spaced format\), got 'h' at character offset 1"),
    # --- CLI: CSV ---
    Case("CSV ragged row", "cli", *forecast(csv_rows().replace("\n5,", "\n5,1,", 1)),
         r"series\.csv: line 7 has 4 fields, expected 3 like the header \(day, temp, rain\)", debug=True),
    Case("CSV NA without --fill", "cli", *forecast(csv_rows(na_at=4)),
         r"series\.csv: 1 missing values \(column 'temp': 1 at lines 6\); pass --fill ffill, interpolate or drop"),
    Case("CSV text in a numeric column", "cli", *forecast(csv_rows().replace("\n3,13,", "\n3,warm,", 1)),
         r"series\.csv: column 'temp', line 5: 'warm' is not a number \(pass --categorical temp"),
    Case("CSV duplicate header names", "cli", *forecast(csv_rows().replace("day,temp,rain", "temp,temp,rain")),
         r"series\.csv: duplicate column names in the header: temp"),
    Case("CSV unknown --target column", "cli", *forecast(csv_rows().replace("day,temp,rain", "day,Temp,rain")),
         r"series\.csv: unknown column 'temp' \(--target\); available: day, Temp, rain"),
    Case("CSV invalid UTF-8 past the first 8 KB", "cli", *forecast(DEEP_CSV),
         rf"series\.csv: not UTF-8 text \(invalid start byte at byte {DEEP_CSV_AT}, line 1802\)"),
    Case("CSV too short for one window", "cli", *forecast(csv_rows(n=6)),
         r"series\.csv: 6 rows are too few: one window of lookback 4 \+ delay 1 needs 6 rows"),
    # --- CLI: IDX / gzip, bAbI, pairs ---
    Case("MNIST images with a wrong magic number", "cli", mnist_dir(b"\x00\x00\x07\x03" + GOOD_IMAGES[4:]),
         lambda p: ["train", "seqmnist", "--data", p["data"], *TINY[:2], "--quiet", "--device", "cpu", "--out", p["new"]],
         r"train-images-idx3-ubyte: not an IDX file: expected magic .*got 00 00 07 03"),
    Case("MNIST images truncated", "cli", mnist_dir(GOOD_IMAGES[:-100]),
         lambda p: ["train", "seqmnist", "--data", p["data"], *TINY[:2], "--quiet", "--device", "cpu", "--out", p["new"]],
         r"train-images-idx3-ubyte: truncated: shape \(4, 28, 28\) of uint8 needs 3136 bytes of data, got 3036"),
    Case("MNIST images: corrupt gzip", "cli", mnist_dir(gzip.compress(GOOD_IMAGES, mtime=0)[:-20], gz=True),
         lambda p: ["train", "seqmnist", "--data", p["data"], *TINY[:2], "--quiet", "--device", "cpu", "--out", p["new"]],
         r"train-images-idx3-ubyte\.gz: corrupt gzip data"),
    Case("bAbI task file with a malformed line", "cli", babi_dir(GOOD_BABI + "Where is John?\thallway\t2\n"),
         lambda p: ["train", "babi", "--data", p["data"], "--task", "1", *TINY[:2], "--quiet", "--device", "cpu",
                    "--out", p["new"]],
         r"qa1_single-supporting-fact_train\.txt, line 31: expected 'ID text' with a line ID >= 1"),
    Case("pairs file with a ragged line", "cli", *pairs_file("Go.\tVa !\n" * 5 + "Who?\n"),
         r"pairs\.tsv, line 6: expected 2 tab-separated columns like line 1, got 1: 'Who\?'"),
    # --- CLI: run directories ---
    Case("run directory that does not exist", "cli", none, lambda p: ["generate", p["new"], "--length", "5"],
         r"run directory .*new does not exist"),
    Case("a file passed as the run directory", "cli", file_case("run.txt", b"x"),
         lambda p: ["generate", p["path"], "--length", "5"], r"run\.txt is a file, not a run directory"),
    Case("run directory without config.json", "cli", run_case(edit=delete("config.json")),
         lambda p: ["generate", p["run"], "--length", "5"],
         r"run directory .*run is incomplete: missing config\.json \(it holds: .*model\.safetensors"),
    Case("corrupt config.json", "cli", run_case(edit=write("config.json", b'{"task": "charlm",')),
         lambda p: ["generate", p["run"], "--length", "5"], r"config\.json is not valid JSON: line 1, column \d+"),
    Case("config.json that is not an object", "cli", run_case(edit=write("config.json", b"[1, 2]")),
         lambda p: ["generate", p["run"], "--length", "5"], r"config\.json holds a JSON list, expected an object"),
    Case("truncated model.safetensors", "cli", run_case(edit=truncate("model.best.safetensors")),
         lambda p: ["generate", p["run"], "--length", "5"], r"model\.best\.safetensors is corrupt or truncated",
         debug=True),
    Case("weights of another shape", "cli", run_case(edit=reshape_weights),
         lambda p: ["generate", p["run"], "--length", "5"],
         r"model\.best\.safetensors does not match the model \(LanguageModel\): '.+' has shape \(\d+, \d+\) in the "
         r"file, \(\d+, \d+\) in the model"),
    Case("vocab.json of another run", "cli", run_case(edit=shrink_vocab),
         lambda p: ["generate", p["run"], "--length", "5"],
         r"vocab\.json has \d+ tokens but the model expects \d+"),
    Case("prime with a character not in the vocabulary", "cli", run_case(),
         lambda p: ["generate", p["run"], "--prime", "the €", "--length", "5"],
         r"Vocab: 1 token\(s\) not in the \d+-token vocabulary: '€'"),
    Case("a charlm run given to forecast", "cli", run_case(), lambda p: ["forecast", p["run"]],
         r"expected a forecast run, got task 'charlm'"),
    Case("evaluate --batch-size 0", "cli", run_case(), lambda p: ["evaluate", p["run"], "--batch-size", "0"],
         r"evaluate: expected batch_size >= 1 \(parallel streams\), got 0"),
    Case("evaluate --data with invalid UTF-8", "cli", lambda ctx: {**run_case()(ctx), "path": ctx.file("bad.txt", BAD_UTF8)},
         lambda p: ["evaluate", p["run"], "--data", p["path"]], r"bad\.txt: invalid UTF-8 at byte offset 46"),
    Case("--resume without a run directory", "cli", none, lambda p: resume_args(p["ctx"], p["new"]),
         r"run directory .*new does not exist"),
    Case("--resume with a truncated trainer.pt", "cli", run_case(edit=truncate("trainer.pt", 1000)),
         lambda p: resume_args(p["ctx"], p["run"]), r"trainer\.pt is corrupt or truncated"),
    Case("--resume with another model size", "cli", run_case(),
         lambda p: resume_args(p["ctx"], p["run"], "--hidden", "16"),
         r"config\.json does not match this run: model\.hidden: saved 8, now 16 \(resume with the saved settings"),
    Case("a new run into a directory that holds one", "cli", run_case(),
         lambda p: ["train", "charlm", "--data", p["ctx"].trained / "text.txt", *TINY, "--out", p["run"]],
         r"run .*already holds a training run \(trainer\.pt\); pass --resume"),
    Case("--resume in a read-only run directory (simulated)", "cli", run_case(edit=read_only),
         lambda p: resume_args(p["ctx"], p["run"]), r"^rnnkit: error: \S*run[/\\]\S+: Permission denied$"),
    Case("--resume in a read-only run directory (chmod)", "cli", run_case(edit=really_read_only),
         lambda p: resume_args(p["ctx"], p["run"]), r"\S*run[/\\]\S+: Permission denied", skip=skip_as_root),
    Case("disk full at the first write of a resume", "cli", run_case(edit=disk_full()),
         lambda p: resume_args(p["ctx"], p["run"]),
         r"cannot write .*run[/\\]\S+: the disk is full \(No space left on device\)"),
    Case("disk full while saving the checkpoint", "cli", run_case(edit=disk_full(CHECKPOINT_FILES)),
         lambda p: resume_args(p["ctx"], p["run"]),
         r"cannot write .*run[/\\](model\.best\.safetensors|model\.safetensors|trainer\.pt): the disk is full "
         r"\(No space left on device\); any earlier \S+ is unchanged",
         may_change=("run/config.json", "run/metrics.jsonl")),
    Case("--schedule cosine-time without a time budget", "cli", file_case("text.txt", CORPUS),
         charlm("--schedule", "cosine-time"), r"schedule 'cosine-time' anneals over the time budget; set max_time "
         r"\(--max-minutes on the command line\)"),
    Case("an ensemble of runs with different vocabularies", "cli", run_case(edit=another_run_with_its_tokens_reordered),
         lambda p: ["evaluate", p["run"], p["other"]],
         r"ensemble: \S*other has a different vocabulary from \S*run \(the same \d+ tokens in another order\); the "
         r"runs must share one"),
]


# ----- the test -------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict:
    """Every file and directory under root: bytes and mtime of files, None for directories."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            out[rel + "/"] = None
        else:
            st = path.stat()
            out[rel] = (path.read_bytes(), st.st_mtime_ns)
    return out


def describe_changes(before: dict, after: dict) -> list[str]:
    changes = [f"new: {k}" for k in after if k not in before] + [f"gone: {k}" for k in before if k not in after]
    changes += [f"changed: {k}" for k in before if k in after and before[k] != after[k]]
    return changes


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def check_one_line(result, match):
    assert result.exit_code == 1, f"exit status {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), result.stderr
    assert re.search(match, lines[0]), f"{match!r} not in {lines[0]!r}"
    return lines[0]


def test_the_catalogue_has_enough_distinct_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 40
    assert {c.kind for c in CASES} == {"cli", "api"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, trained):
    reason = case.skip()
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # a default output (runs/...) would land here, and be seen
    ctx = Ctx(tmp_path, monkeypatch, trained)
    params = {"ctx": ctx, **case.setup(ctx)}
    restore = params.pop("restore", None)
    before = snapshot(tmp_path)
    try:
        if case.kind == "cli":
            check_one_line(invoke(case.call(params)), case.match)
            if case.debug:
                result = invoke(["--debug", *case.call(params)])
                assert result.exit_code == 1, result.output
                assert "Traceback (most recent call last)" in result.stderr, result.stderr
        else:
            with pytest.raises(case.error) as caught:
                case.call(params)
            assert re.search(case.match, str(caught.value)), f"{case.match!r} not in {str(caught.value)!r}"
    finally:
        monkeypatch.undo()  # the simulated read-only directory / full disk end here
        if restore:
            restore()
    after = snapshot(tmp_path)
    for name in case.outputs:
        assert not (tmp_path / name).exists(), f"{name} was created by a failing call"
    allowed = set(case.may_change)
    changes = [c for c in describe_changes(before, after) if c.split(": ", 1)[1] not in allowed]
    assert not changes, changes
    for name in case.may_change:  # metrics.jsonl: the earlier records are kept, new ones appended
        assert name in after, f"{name} disappeared"
        if name.endswith(".jsonl"):
            assert after[name][0].startswith(before[name][0]), f"{name}: earlier records changed"
