"""Fault injection on real trainings: SIGKILL at random points, in and out of checkpoint writes, and
SIGTERM. After every kill the run directory loads, its leftovers are never taken for checkpoints, and
``rnnkit train charlm --resume`` takes over the dead run's lock and finishes exactly as an uninterrupted
run with the same seed would (same metrics, byte-identical weights).

One "zygote" subprocess imports torch, the CLI and matplotlib once (seconds) and forks one child per
training: a fork of a process that has never started OpenMP threads is safe, and forking from pytest
itself (which has) is not. A child runs ``rnnkit train`` in-process with its output in a log file and
reports each run-directory write on the zygote's stdout (``begin NAME`` / ``end NAME``). Killed children
write slowly (each file in 8 pieces with pauses, each metrics line in two halves) so that kills land
inside writes; the arithmetic is untouched.
"""
from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

import tiny
from rnnkit.tasks import lm
from rnnkit.train.checkpoint import load_trainer_state, read_jsonl, read_model_metadata
from rnnkit.train.lock import LOCK_NAME, pid_alive

pytestmark = pytest.mark.skipif(os.name == "nt" or not hasattr(os, "fork"), reason="POSIX fork and signals")

ZYGOTE = textwrap.dedent(r"""
    import gc, io, json, os, sys, time
    from pathlib import Path
    import torch
    from rnnkit.cli import app
    from rnnkit.train import checkpoint
    from rnnkit.train.plots import plot_curves
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # the first optimizer imports torch._dynamo (seconds)
    plot_curves([{"step": 1, "loss": 1.0}, {"step": 1, "split": "valid", "loss": 1.0}],  # matplotlib's imports
                os.path.join(sys.argv[1], "warm-up.png"))

    def say(fd, text):  # one write per line: lines of different processes never interleave
        os.write(fd, (text + "\n").encode())

    def report_writes(events, pause):
        # every whole-file write (trainer.pt, model.safetensors, config.json, ...) goes through atomic_write
        real_atomic_write = checkpoint.atomic_write

        def atomic_write(path, write_fn):
            buffer = io.BytesIO()
            write_fn(buffer)
            data, name = buffer.getvalue(), os.path.basename(path)

            def pieces(f):
                say(events, "begin " + name)
                size = -(-len(data) // 8)
                for i in range(0, len(data), size):
                    f.write(data[i:i + size])
                    f.flush()
                    time.sleep(pause)

            result = real_atomic_write(path, pieces)
            say(events, "end " + name)
            return result

        def append_jsonl(path, record):  # checkpoint.append_jsonl, its line written in two halves
            data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
            with open(path, "a+b") as f:
                checkpoint._repair_last_line(f, Path(path))
                say(events, "begin metrics.jsonl")
                f.write(data[:len(data) // 2])
                f.flush()
                time.sleep(2 * pause)
                f.write(data[len(data) // 2:])
                f.flush()
            say(events, "end metrics.jsonl")

        checkpoint.atomic_write, checkpoint.append_jsonl = atomic_write, append_jsonl

    gc.freeze()  # a child's garbage collections then skip (and do not copy-on-write) the zygote's objects
    say(1, "zygote")
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                torch.set_num_threads(1)
                events = os.dup(1)
                log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(log, 1)
                os.dup2(log, 2)
                report_writes(events, job["pause"])
                say(events, "ready")
                try:
                    app(job["args"], prog_name="rnnkit")
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else int(e.code is not None)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        say(1, f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(1, f"exit {os.waitstatus_to_exitcode(status)}")
""")

TMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{8}\.tmp$")  # checkpoint.atomic_write's temporary files
RUN_FILES = {"config.json", "vocab.json", "model.safetensors", "model.best.safetensors", "trainer.pt",
             "metrics.jsonl", "loss.png"}
STEPS = 6
PAUSE = 0.004  # seconds between the pieces of a killed child's write: ~30 ms per file


class Zygote:
    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(tmp)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(s.strip()) for s in self.proc.stdout], daemon=True).start()
        assert self.next_line(timeout=120) == "zygote"
        self.pid = None  # the running child
        self.events: list[str] = []  # its begin / end events so far

    def next_line(self, timeout=60) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("the zygote stopped answering")

    def start(self, args, log, pause=0.0) -> int:
        """Fork a child running `rnnkit ARGS`; returns its pid once it is ready."""
        job = {"args": [str(a) for a in args], "log": str(log), "pause": pause}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        pid, ready, self.events = None, False, []
        while pid is None or not ready:
            line = self.next_line()
            if line.startswith("pid "):
                pid = int(line.split()[1])
            elif line == "ready":
                ready = True
        self.pid = pid
        return pid

    def wait_for(self, wanted: str, count: int = 1) -> list[str]:
        """Read events until `wanted` has been seen `count` times; a child that exits first fails the test."""
        seen = 0
        while seen < count:
            line = self.next_line()
            if line.startswith("exit "):
                pytest.fail(f"the child exited before {count} x {wanted!r}: {self.events[-5:]}")
            self.events.append(line)
            seen += line == wanted

    def finish(self) -> int:
        """Read events until the child is reaped; returns its exit status (-N: killed by signal N)."""
        while not (line := self.next_line()).startswith("exit "):
            self.events.append(line)
        self.pid = None
        return int(line.split()[1])

    def writing(self) -> list[str]:
        """The files the child had begun and not finished writing when it died."""
        open_ = []
        for event in self.events:
            kind, name = event.split()
            if kind == "begin":
                open_.append(name)
            elif kind == "end":
                open_.remove(name)
        return open_

    def run(self, args, log) -> int:
        self.start(args, log)
        return self.finish()

    def close(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()  # it holds nothing to save; an orderly exit of torch takes seconds
        self.proc.wait()
        self.proc.stdin.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    rng = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs", "away"]
    path.write_text(" ".join(rng.choice(words) for _ in range(600)) + "\n", encoding="utf-8")
    return path


def charlm_args(corpus, out, steps=STEPS):
    return ["train", "charlm", "--data", corpus, "--out", out, "--steps", steps, "--checkpoint-every", 1,
            "--hidden", 8, "--layers", 1, "--seq-len", 8, "--batch-size", 2, "--eval-every", 3, "--seed", 3,
            "--device", "cpu", "--quiet"]


def without_time(records):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def train_steps(records):
    return [r["step"] for r in records if r.get("split", "train") == "train"]


def check_killed_run_dir(run_dir, pid) -> int:
    """What a SIGKILLed training leaves: loadable, nothing mistaken for a checkpoint, a stale lock.
    Returns the step of trainer.pt."""
    names = {p.name for p in run_dir.iterdir()}
    leftovers = names - RUN_FILES - {LOCK_NAME}
    assert all(TMP_NAME.match(n) and TMP_NAME.match(n)["target"] in RUN_FILES for n in leftovers), leftovers
    assert {"config.json", "vocab.json", "model.safetensors", "trainer.pt", "metrics.jsonl"} <= names, names

    lock = json.loads((run_dir / LOCK_NAME).read_text())  # the dead child's lock, stale
    assert lock["pid"] == pid and not pid_alive(pid)

    step = load_trainer_state(run_dir / "trainer.pt")["step"]
    assert 1 <= step < STEPS
    # trainer.pt is written before model.safetensors: the weights are this step's or the one before
    assert int(read_model_metadata(run_dir / "model.safetensors")["step"]) in (step - 1, step)
    for best in (True, False):
        model, vocab, config = lm.load(run_dir, best=best)
        assert config["task"] == "charlm" and model.config.vocab_size == len(vocab)
    logged = train_steps(read_jsonl(run_dir / "metrics.jsonl"))  # a torn last line is skipped
    assert logged == list(range(1, len(logged) + 1)) and len(logged) in (step, step + 1), (logged, step)
    return step


def test_sigkill_during_training_and_checkpoint_writes_leaves_a_resumable_run(zygote, corpus, tmp_path):
    reference = tmp_path / "reference"
    assert zygote.run(charlm_args(corpus, reference), tmp_path / "reference.log") == 0
    want_metrics = without_time(read_jsonl(reference / "metrics.jsonl"))
    want_weights = (reference / "model.safetensors").read_bytes()
    assert train_steps(want_metrics) == list(range(1, STEPS + 1))

    rng = random.Random(11)
    mid_write = []
    for trial in range(10):
        run_dir, log = tmp_path / f"run{trial}", tmp_path / f"run{trial}.log"
        pid = zygote.start(charlm_args(corpus, run_dir), log, pause=PAUSE)
        zygote.wait_for("end model.safetensors")  # the first checkpoint is complete
        if trial % 2:  # anywhere: computing a step, logging, or writing
            time.sleep(rng.uniform(0.0, 0.25))
        else:  # inside a write: the n-th write of one file, soon after it began
            name = rng.choice(["trainer.pt", "model.safetensors", "metrics.jsonl"])
            zygote.wait_for(f"begin {name}", count=rng.randint(1, 3))
            time.sleep(rng.uniform(0.0, 0.01))
        os.kill(pid, signal.SIGKILL)
        assert zygote.finish() == -signal.SIGKILL, log.read_text()
        mid_write += zygote.writing()  # killed between a write's begin and end

        step = check_killed_run_dir(run_dir, pid)
        before = read_jsonl(run_dir / "metrics.jsonl")
        assert without_time(before) == want_metrics[:len(before)]  # the killed run computed the same steps

        resume_log = tmp_path / f"resume{trial}.log"
        assert zygote.run(charlm_args(corpus, run_dir) + ["--resume"], resume_log) == 0, resume_log.read_text()
        assert "taking over a stale lock" in resume_log.read_text() and str(pid) in resume_log.read_text()
        assert not (run_dir / LOCK_NAME).exists()
        after = read_jsonl(run_dir / "metrics.jsonl")
        assert after[:step] == before[:step]  # kept as logged, up to the checkpoint's step
        assert train_steps(after) == list(range(1, STEPS + 1))  # continued from step + 1: no gap, no repeat
        assert without_time(after) == want_metrics  # ... exactly as the uninterrupted run
        assert (run_dir / "model.safetensors").read_bytes() == want_weights
        assert load_trainer_state(run_dir / "trainer.pt")["step"] == STEPS
        lm.load(run_dir)
    assert len(mid_write) >= 2, f"only {mid_write} of the 10 kills landed inside a write"


def test_sigterm_saves_a_checkpoint_prints_the_resume_command_and_exits_143(zygote, corpus, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    args = charlm_args(corpus, run_dir, steps=10**6)
    pid = zygote.start(args, log)
    zygote.wait_for("end model.safetensors", count=3)
    os.kill(pid, signal.SIGTERM)
    status = zygote.finish()
    err = log.read_text()
    match = re.search(r"^rnnkit: interrupted by SIGTERM at step (\d+); "
                      r"checkpoint saved in (\S+); (rnnkit train charlm .*--resume)", err, re.MULTILINE)
    assert match, err
    assert match[2] == str(run_dir)
    step = int(match[1])
    # 128 + 15, as a shell reports a process that SIGTERM ended (Ctrl-C: 130); TrainingInterrupted.exit_status
    assert status == 128 + signal.SIGTERM, err
    # the checkpoint is complete: trainer.pt and the weights hold the step named, the lock is released
    assert load_trainer_state(run_dir / "trainer.pt")["step"] == step
    assert read_model_metadata(run_dir / "model.safetensors")["step"] == str(step)
    assert train_steps(read_jsonl(run_dir / "metrics.jsonl")) == list(range(1, step + 1))
    assert not (run_dir / LOCK_NAME).exists()
    assert not [p for p in run_dir.iterdir() if TMP_NAME.match(p.name)]
    resumed = charlm_args(corpus, run_dir, steps=step + 2) + ["--resume"]
    assert zygote.run(resumed, tmp_path / "resume.log") == 0, (tmp_path / "resume.log").read_text()
    assert train_steps(read_jsonl(run_dir / "metrics.jsonl")) == list(range(1, step + 3))


# ----- SIGTERM in the library: the same path as Ctrl-C ----------------------------------------------

def small_trainer(run_dir, loss_fn, steps=50, resume=False):
    from rnnkit.data import TensorBatches
    from rnnkit.train import TrainConfig, Trainer

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 5, 2, generator=g), torch.randn(6, 5, 1, generator=g)
    torch.manual_seed(0)
    return Trainer(tiny.Regressor(), TrainConfig(steps=steps, quiet=True, device="cpu"), loss_fn=loss_fn,
                   train_data=TensorBatches(x, y, 3), run_dir=run_dir, resume=resume,
                   resume_command="python train.py --resume")


@pytest.mark.parametrize("signum, by", [(signal.SIGTERM, " by SIGTERM"), (signal.SIGINT, "")])
def test_a_stop_signal_saves_and_raises_training_interrupted_with_its_exit_status(tmp_path, signum, by):
    from rnnkit.train import TrainingInterrupted

    calls = []

    def signalling(preds, batch):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signum)  # the handler lets step 3 finish, then the trainer saves and stops
        return tiny.mse(preds, batch)

    def mine(*_):
        raise AssertionError("the trainer's handler should be installed during fit")

    previous = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(TrainingInterrupted) as info:
            small_trainer(tmp_path / "run", signalling).fit()
        # the handlers from before fit are back
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert info.value.signal == signum and info.value.exit_status == 128 + signum
    assert str(info.value) == (f"interrupted{by} at step 3; checkpoint saved in {tmp_path / 'run'}; "
                               "python train.py --resume")
    assert load_trainer_state(tmp_path / "run" / "trainer.pt")["step"] == 3
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    resumed = small_trainer(tmp_path / "run", tiny.mse, steps=5, resume=True)
    assert resumed.step == 3
    resumed.fit()
    assert train_steps(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == [1, 2, 3, 4, 5]


def test_fit_in_another_thread_leaves_the_signal_handlers_alone(tmp_path):
    seen = []

    def loss_fn(preds, batch):
        seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
        return tiny.mse(preds, batch)

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    errors = []
    thread = threading.Thread(target=lambda: _catch(errors, small_trainer(tmp_path / "run", loss_fn, steps=2).fit))
    thread.start()
    thread.join(60)
    assert not errors and seen == [before, before]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def _catch(errors, fn):
    try:
        fn()
    except BaseException as e:  # reported by the test thread
        errors.append(e)
