"""Run-directory lock: a second holder is refused naming the directory and pid, a dead holder's lock is
taken over with a warning, the file goes away after a normal exit, an exception and Ctrl-C, and a real
Trainer refuses a locked directory without touching any file in it."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import tiny
from rnnkit.data import TensorBatches
from rnnkit.train import CheckpointError, TrainConfig, Trainer, TrainingInterrupted
from rnnkit.train.lock import LOCK_NAME, LockError, RunLock, pid_alive, run_lock


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def write_lock(run_dir, **record):
    path = run_dir / LOCK_NAME
    path.write_text(json.dumps({"host": socket.gethostname(), "token": "x" * 16, **record}) + "\n")
    return path


def snapshot(run_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


# ----- the lock itself ------------------------------------------------------------------------------

def test_second_lock_is_refused_naming_directory_and_pid(tmp_path):
    with run_lock(tmp_path) as first:
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname() and first.held
        with pytest.raises(LockError) as info:
            with run_lock(tmp_path):
                pass
        message = str(info.value)
        assert str(tmp_path) in message and f"pid {os.getpid()}" in message and "this machine" in message
        assert isinstance(info.value, CheckpointError)  # a ValueError: the CLI prints it on one line
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == record  # the refused one changed nothing
    assert not (tmp_path / LOCK_NAME).exists()
    with run_lock(tmp_path):  # free again
        assert (tmp_path / LOCK_NAME).exists()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.lock"):
        with run_lock(tmp_path):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"pid {pid}" in caplog.text and "stale" in caplog.text and str(tmp_path) in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    path = write_lock(tmp_path, pid=dead_pid(), host="some-other-machine")
    before = path.read_bytes()
    with pytest.raises(LockError, match=re.escape(str(tmp_path)) + ".*host 'some-other-machine'"):
        RunLock(tmp_path).acquire()
    assert path.read_bytes() == before


def test_unreadable_lock_is_respected_while_young_and_taken_over_when_old(tmp_path, caplog):
    path = tmp_path / LOCK_NAME
    path.write_bytes(b"")  # a creator between open() and write(), or one that died there
    with pytest.raises(LockError, match="starting"):
        RunLock(tmp_path).acquire()
    old = time.time() - 3600
    os.utime(path, (old, old))
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.lock"), run_lock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "unreadable" in caplog.text


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_lock_file_is_removed_after_an_exception(tmp_path, error):
    with pytest.raises(error):
        with run_lock(tmp_path):
            assert (tmp_path / LOCK_NAME).exists()
            raise error("boom")
    assert list(tmp_path.iterdir()) == []


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).unlink()
    other = write_lock(tmp_path, pid=os.getpid(), token="y" * 16)  # taken over meanwhile
    lock.release()
    assert other.exists() and not lock.held
    lock.release()  # a second release is a no-op


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        RunLock(tmp_path / "nope").acquire()


# ----- the Trainer holds it ---------------------------------------------------------------------------

def data():
    g = torch.Generator().manual_seed(0)
    return TensorBatches(torch.randn(6, 5, 2, generator=g), torch.randn(6, 5, 1, generator=g), 3)


def config(steps=2):
    return TrainConfig(steps=steps, quiet=True, device="cpu")


def test_trainer_holds_the_lock_during_fit_and_removes_it_after(tmp_path):
    run_dir, seen = tmp_path / "run", []

    def loss_fn(preds, batch):
        seen.append(json.loads((run_dir / LOCK_NAME).read_text())["pid"])
        return tiny.mse(preds, batch)

    trainer = Trainer(tiny.Regressor(), config(), loss_fn=loss_fn, train_data=data(), run_dir=run_dir)
    assert (run_dir / LOCK_NAME).exists()  # held from construction: the task writes vocab.json before fit
    trainer.fit()
    assert seen == [os.getpid()] * 2
    assert not (run_dir / LOCK_NAME).exists()
    Trainer(tiny.Regressor(), config(4), loss_fn=tiny.mse, train_data=data(), run_dir=run_dir, resume=True).fit()
    assert not (run_dir / LOCK_NAME).exists()


def test_trainer_removes_the_lock_after_an_exception_and_after_ctrl_c(tmp_path):
    def failing(preds, batch):
        raise RuntimeError("loss exploded")

    with pytest.raises(RuntimeError, match="loss exploded"):
        Trainer(tiny.Regressor(), config(), loss_fn=failing, train_data=data(), run_dir=tmp_path / "a").fit()
    assert not (tmp_path / "a" / LOCK_NAME).exists()

    def interrupting(preds, batch):
        signal.raise_signal(signal.SIGINT)  # the trainer finishes the step, saves, raises TrainingInterrupted
        return tiny.mse(preds, batch)

    with pytest.raises(TrainingInterrupted):
        Trainer(tiny.Regressor(), config(), loss_fn=interrupting, train_data=data(), run_dir=tmp_path / "b").fit()
    assert (tmp_path / "b" / "trainer.pt").exists() and not (tmp_path / "b" / LOCK_NAME).exists()


def test_trainer_refuses_a_locked_run_directory_and_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    Trainer(tiny.Regressor(), config(), loss_fn=tiny.mse, train_data=data(), run_dir=run_dir).fit()
    with run_lock(run_dir):  # another live training holds it (this process)
        before = snapshot(run_dir)
        assert {"config.json", "trainer.pt", "model.safetensors", "metrics.jsonl", LOCK_NAME} <= set(before)
        with pytest.raises(LockError) as info:
            Trainer(tiny.Regressor(), config(4), loss_fn=tiny.mse, train_data=data(), run_dir=run_dir, resume=True)
        assert str(run_dir) in str(info.value) and f"pid {os.getpid()}" in str(info.value)
        assert snapshot(run_dir) == before

    fresh = tmp_path / "fresh"  # a new run: another training just started there (config.json, no trainer.pt yet)
    fresh.mkdir()
    (fresh / "config.json").write_text('{"task": "other"}\n')
    with run_lock(fresh):
        before = snapshot(fresh)
        with pytest.raises(LockError, match=re.escape(str(fresh))):
            Trainer(tiny.Regressor(), config(), loss_fn=tiny.mse, train_data=data(), run_dir=fresh)
        assert snapshot(fresh) == before


def test_trainer_takes_over_a_stale_lock(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_lock(run_dir, pid=dead_pid())
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.lock"):
        Trainer(tiny.Regressor(), config(), loss_fn=tiny.mse, train_data=data(), run_dir=run_dir).fit()
    assert "stale" in caplog.text
    assert (run_dir / "trainer.pt").exists() and not (run_dir / LOCK_NAME).exists()
