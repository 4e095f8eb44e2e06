"""Run-directory I/O: round trips, atomicity under SIGKILL, corrupt / truncated / missing files,
architecture mismatches, refusal of pickled objects, JSON lines, run-directory checks."""
import argparse
import json
import logging
import math
import os
import pickle
import queue
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from rnnkit.train.checkpoint import (
    CheckpointError, append_jsonl, atomic_write, atomic_write_bytes, atomic_write_json, check_run_dir,
    check_state_dict, load_model, load_trainer_state, read_json, read_jsonl, read_model_metadata,
    remove_stale_temp_files, rng_state, save_model, save_trainer_state, set_rng_state, truncate_jsonl,
)

TMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{8}\.tmp$")


def assert_same(a, b, where="state"):
    """Deep equality of plain data with tensors (same type, dtype, shape and values)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def no_temp_files(directory):
    return not [p for p in directory.iterdir() if TMP_NAME.match(p.name)]


# ----- 1. round trips -----------------------------------------------------------------------------

def test_model_round_trip_with_metadata(tmp_path):
    torch.manual_seed(0)
    saved = nn.LSTM(4, 8, num_layers=2, batch_first=True)
    path = save_model(tmp_path / "model.safetensors", saved, {"step": "12", "task": "charlm"})
    fresh = nn.LSTM(4, 8, num_layers=2, batch_first=True)
    assert not torch.equal(fresh.weight_ih_l0, saved.weight_ih_l0)
    assert load_model(path, fresh) is fresh
    assert_same(dict(fresh.state_dict()), dict(saved.state_dict()))
    assert read_model_metadata(path) == {"step": "12", "task": "charlm"}
    assert no_temp_files(tmp_path)


def test_model_state_dict_noncontiguous_and_tied_weights(tmp_path):
    # a non-contiguous tensor is written as its values; tied weights (one storage, two names) are cloned
    t = torch.arange(12.0).reshape(3, 4).t()
    save_model(tmp_path / "a.safetensors", {"t": t})
    assert torch.equal(safetensors.torch.load_file(tmp_path / "a.safetensors")["t"], t)
    assert read_model_metadata(tmp_path / "a.safetensors") == {}

    def tied():
        m = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 10, bias=False))
        m[1].weight = m[0].weight
        return m

    torch.manual_seed(1)
    saved = tied()
    save_model(tmp_path / "tied.safetensors", saved)
    loaded = load_model(tmp_path / "tied.safetensors", tied())
    assert torch.equal(loaded[0].weight, saved[0].weight)
    assert loaded[1].weight is loaded[0].weight  # still tied after loading


def test_save_model_rejects_bad_metadata_and_non_tensors(tmp_path):
    with pytest.raises(TypeError, match="str to str.*'step'"):
        save_model(tmp_path / "m.safetensors", nn.Linear(2, 2), {"step": 3})
    with pytest.raises(TypeError, match="'vocab' is a list, not a tensor"):
        save_model(tmp_path / "m.safetensors", {"w": torch.ones(2), "vocab": ["a"]})
    assert not (tmp_path / "m.safetensors").exists()


def test_json_round_trip_format_and_nan_refused(tmp_path):
    obj = {"vocab": ["a", "é", "\n"], "hidden_size": 64, "lr": 0.002, "nested": {"b": [1, 2], "a": None}}
    path = atomic_write_json(tmp_path / "config.json", obj)
    assert read_json(path) == obj
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    with pytest.raises(ValueError, match=r"config\.json.*\['stats'\]\['std'\] = nan"):
        atomic_write_json(path, {"stats": {"std": float("nan")}})
    with pytest.raises(TypeError, match=r"config\.json"):
        atomic_write_json(path, {"x": object()})
    assert read_json(path) == obj  # the failed writes left the old file
    assert no_temp_files(tmp_path)
    (tmp_path / "bad.json").write_text('{"a": 1,\n "b": }\n')
    with pytest.raises(CheckpointError, match=r"bad\.json is not valid JSON: line 2"):
        read_json(tmp_path / "bad.json")


def test_trainer_state_round_trip(tmp_path):
    model = nn.Linear(3, 2)
    # shaped like AdamW's and StepLR's state dicts (building a real optimizer costs seconds of imports)
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 1: {}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                                   "foreach": None, "params": [0, 1]}]}
    state = {
        "format": 1, "step": 17, "loss": 1.25, "best": None, "done": False, "name": "run-α",
        "model": model.state_dict(), "optimizer": optimizer,
        "scheduler": {"step_size": 2, "gamma": 0.1, "base_lrs": [1e-3], "last_epoch": 3, "_last_lr": [1e-4]},
        "carried": (torch.randn(1, 2, 4), torch.randn(1, 2, 4, dtype=torch.float64)),
        "nested": {"a": [1, 2.5, "x", (3, 4)], "b": {"c": torch.arange(5), 7: torch.ones(2, dtype=torch.bfloat16)}},
        "dtype": torch.float16, "nan": float("nan"), "big": 2**70,
    }
    path = save_trainer_state(tmp_path / "trainer.pt", state)
    loaded = load_trainer_state(path)
    assert_same({**loaded, "model": dict(loaded["model"])}, {**state, "model": dict(state["model"])})
    nn.Linear(3, 2).load_state_dict(loaded["model"])  # usable as-is


def test_trainer_state_refuses_non_plain_data_before_writing(tmp_path):
    path = tmp_path / "trainer.pt"
    save_trainer_state(path, {"step": 1})
    with pytest.raises(TypeError, match=r"state\['stats'\]\['mean'\] is a numpy\.float64.*\.item\(\)"):
        save_trainer_state(path, {"step": 2, "stats": {"mean": np.float64(1.0)}})
    with pytest.raises(TypeError, match=r"state\['args'\] is a argparse\.Namespace"):
        save_trainer_state(path, {"args": argparse.Namespace(lr=1)})
    assert load_trainer_state(path) == {"step": 1}


def test_rng_state_round_trip_through_trainer_pt(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    [random.random(), np.random.rand(), torch.rand(3)]
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state...
    np.random.standard_normal()  # ...and NumPy's
    save_trainer_state(tmp_path / "trainer.pt", {"rng": rng_state()})

    def draw():
        return ([random.random() for _ in range(3)], random.gauss(0, 1), np.random.rand(3).tolist(),
                np.random.standard_normal(), torch.rand(4).tolist(), torch.randint(0, 1000, (3,)).tolist())

    first = draw()
    set_rng_state(load_trainer_state(tmp_path / "trainer.pt")["rng"])
    assert draw() == first
    assert draw() != first


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": i, "loss": 1.0 / (i + 1), "split": "train", "note": "é"} for i in range(5)]
    records.append({"step": 5, "loss": float("nan"), "grad_norm": float("inf")})  # fp16 overflow, kept
    for r in records:
        append_jsonl(path, r)
    assert path.read_text(encoding="utf-8").count("\n") == len(records)
    assert_same(read_jsonl(path), records)


# ----- 2. SIGKILL in the middle of saving ---------------------------------------------------------

# One subprocess imports torch once (seconds) and then forks a writer per round: a fork of a process
# that has never started OpenMP threads is safe, and forking from pytest itself (which has) is not.
ZYGOTE = textwrap.dedent(r"""
    import os, sys
    import torch
    from rnnkit.train.checkpoint import save_model, save_trainer_state

    def say(text):  # one write per line: the zygote's and the writer's lines never interleave
        os.write(1, (text + "\n").encode())

    say("zygote")
    for line in sys.stdin:
        run_dir, version = line.split()
        version = int(version)
        pid = os.fork()
        if pid == 0:
            try:
                torch.set_num_threads(1)
                say("ready")
                while True:  # 40 MB per file and version, written back to back until killed
                    tensors = {f"w{i}": torch.full((2_500_000,), float(version)) for i in range(4)}
                    save_model(os.path.join(run_dir, "model.safetensors"), tensors, {"version": str(version)})
                    say(f"model {version}")
                    save_trainer_state(os.path.join(run_dir, "trainer.pt"), {"version": version, "w": tensors})
                    say(f"trainer {version}")
                    version += 1
            finally:
                os._exit(1)
        say(f"pid {pid}")
        os.waitpid(pid, 0)
        say("exit")
""")



def check_versions(run_dir):
    """Both files load completely and hold one version; returns (model version, trainer version)."""
    model_path = run_dir / "model.safetensors"
    tensors = safetensors.torch.load_file(model_path)
    mv = int(read_model_metadata(model_path)["version"])
    assert sorted(tensors) == ["w0", "w1", "w2", "w3"]
    assert all(t.shape == (2_500_000,) and bool((t == mv).all()) for t in tensors.values()), mv
    state = load_trainer_state(run_dir / "trainer.pt")
    tv = state["version"]
    assert sorted(state["w"]) == ["w0", "w1", "w2", "w3"]
    assert all(bool((t == tv).all()) for t in state["w"].values()), tv
    return mv, tv


def test_sigkill_mid_save_leaves_old_or_new_complete_files(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    atomic_write_json(run_dir / "config.json", {"hidden_size": 8})
    good = {f"w{i}": torch.zeros(2_500_000) for i in range(4)}
    save_model(run_dir / "model.safetensors", good, {"version": "0"})
    save_trainer_state(run_dir / "trainer.pt", {"version": 0, "w": good})
    targets = {"config.json", "model.safetensors", "trainer.pt"}

    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(s.strip()) for s in zygote.stdout], daemon=True).start()

    def next_line(timeout=30):
        try:
            return lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("the writer process stopped answering")

    rng = random.Random(0)
    previous, completed, leftovers, pid = (0, 0), 0, 0, None
    try:
        assert next_line() == "zygote"
        for round_ in range(5):
            first = max(previous) + 1
            zygote.stdin.write(f"{run_dir} {first}\n")
            zygote.stdin.flush()
            pid, ready, reported = None, False, {"model": 0, "trainer": 0}
            while pid is None or not ready or (round_ == 0 and not reported["model"]):
                line = next_line()  # round 0 waits for one complete save, so new versions are seen
                if line.startswith("pid "):
                    pid = int(line.split()[1])
                elif line == "ready":
                    ready = True
                else:
                    kind, v = line.split()
                    reported[kind] = int(v)
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(pid, signal.SIGKILL)
            while (line := next_line()) != "exit":  # the writer is dead and reaped
                kind, v = line.split()
                reported[kind] = int(v)
            mv, tv = check_versions(run_dir)
            # each file is its previous version or one this writer saved; a save reported complete is on disk
            assert mv == previous[0] or mv >= first, (mv, previous, first)
            assert tv == previous[1] or tv >= first, (tv, previous, first)
            assert mv >= reported["model"] and tv >= reported["trainer"]
            completed += bool(reported["model"])
            names = {p.name for p in run_dir.iterdir()}
            extra = names - targets
            assert all(TMP_NAME.match(n) and TMP_NAME.match(n)["target"] in targets for n in extra), extra
            assert targets <= names
            leftovers = len(extra)
            previous = (mv, tv)
    finally:  # on a failure, end the writer and the zygote too
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        zygote.stdin.close()
        try:
            zygote.wait(timeout=30)
        except subprocess.TimeoutExpired:
            zygote.kill()
            zygote.wait()
    assert completed >= 1
    assert read_json(run_dir / "config.json") == {"hidden_size": 8}
    # SIGKILL can leave hidden temporary files (never under a target's name); they are removable
    assert len(remove_stale_temp_files(run_dir)) == leftovers
    assert {p.name for p in run_dir.iterdir()} == targets


# ----- 3. corrupt, truncated and missing files ----------------------------------------------------

@pytest.fixture
def weights(tmp_path):
    path = save_model(tmp_path / "model.safetensors", nn.LSTM(4, 8), {"step": "1"})
    return path, path.read_bytes()


@pytest.mark.parametrize("damage", ["half", "random", "empty"])
def test_damaged_safetensors_raise_checkpoint_error(weights, damage):
    path, data = weights
    path.write_bytes({"half": data[: len(data) // 2], "random": os.urandom(4096), "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*corrupt or truncated"):
        load_model(path, nn.LSTM(4, 8))
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*corrupt or truncated"):
        read_model_metadata(path)


def test_missing_files_raise_checkpoint_error_naming_them(tmp_path):
    for load in (lambda p: load_model(p, nn.LSTM(4, 8)), read_model_metadata, load_trainer_state, read_json,
                 read_jsonl):
        with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "nope")) + " not found"):
            load(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="is not a file"):
        load_trainer_state(tmp_path)


@pytest.mark.parametrize("damage", ["half", "minus_10", "random", "empty"])
def test_damaged_trainer_state_raises_checkpoint_error(tmp_path, damage):
    path = save_trainer_state(tmp_path / "trainer.pt", {"step": 3, "w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes({"half": data[: len(data) // 2], "minus_10": data[:-10], "random": os.urandom(4096),
                      "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*(corrupt|truncated)"):
        load_trainer_state(path)


# ----- 4. architecture mismatch -------------------------------------------------------------------

def test_mismatched_hidden_size_names_key_and_both_shapes(tmp_path):
    path = save_model(tmp_path / "model.safetensors", nn.LSTM(4, 8))
    with pytest.raises(CheckpointError) as info:
        load_model(path, nn.LSTM(4, 16))
    msg = str(info.value)
    assert str(path) in msg and "does not match the model" in msg
    assert "'weight_ih_l0' has shape (32, 4) in the file, (64, 4) in the model" in msg
    assert "'bias_hh_l0' has shape (32,) in the file, (64,) in the model" in msg


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    path = save_model(tmp_path / "model.safetensors", nn.LSTM(4, 8, num_layers=2))
    target = nn.LSTM(4, 8, num_layers=1, bias=True)
    target.register_buffer("extra", torch.zeros(3))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_model(path, target)
    msg = str(info.value)
    assert "missing: ['extra']" in msg
    assert "unexpected: ['bias_hh_l1', 'bias_ih_l1', 'weight_hh_l1', 'weight_ih_l1']" in msg
    assert_same(dict(target.state_dict()), before)  # nothing was copied
    # non-strict: the common keys load, shapes are still checked
    load_model(path, target, strict=False)
    assert torch.equal(target.weight_ih_l0, safetensors.torch.load_file(path)["weight_ih_l0"])
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(path, nn.LSTM(4, 16), strict=False)
    with pytest.raises(CheckpointError, match=r"trainer\.pt does not match"):
        check_state_dict(tmp_path / "trainer.pt", {"weight": torch.ones(1)}, nn.Linear(2, 2))


# ----- 5. pickled objects are refused, never run -------------------------------------------------

class Payload:
    """Unpickling this calls open(marker, "w"): the file appears only if the pickle is executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["pickle.dump", "torch.save", "torch.save_object"])
def test_pickled_objects_are_refused_not_executed(tmp_path, writer):
    marker, path = tmp_path / "pwned", tmp_path / "trainer.pt"
    with open(path, "wb") as f:
        if writer == "pickle.dump":
            pickle.dump({"step": 1, "x": Payload(marker)}, f)
        elif writer == "torch.save":
            torch.save({"step": 1, "x": Payload(marker)}, f)
        else:
            torch.save({"step": 1, "args": argparse.Namespace(lr=0.1)}, f)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*not plain data"):
        load_trainer_state(path)
    assert not marker.exists()


class ShellPayload:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("writer", ["pickle.dump", "torch.save"])
def test_resuming_a_run_directory_with_a_malicious_trainer_pt_is_refused_not_executed(tmp_path, writer):
    """The whole path a user takes (Trainer(resume=True) on a run directory): the os.system payload is
    refused with a CheckpointError naming trainer.pt, nothing runs, and no file in the directory changes."""
    import tiny  # tests/train/conftest.py puts it on sys.path
    from rnnkit.data import TensorBatches
    from rnnkit.train import TrainConfig, Trainer

    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    g = torch.Generator().manual_seed(0)
    data = TensorBatches(torch.randn(6, 5, 2, generator=g), torch.randn(6, 5, 1, generator=g), 3)
    cfg = TrainConfig(steps=1, quiet=True, device="cpu")
    Trainer(tiny.Regressor(), cfg, loss_fn=tiny.mse, train_data=data, run_dir=run_dir).fit()
    state = load_trainer_state(run_dir / "trainer.pt")
    with open(run_dir / "trainer.pt", "wb") as f:  # a plausible resume point with one poisoned entry
        (pickle.dump if writer == "pickle.dump" else torch.save)({**state, "best": ShellPayload(marker)}, f)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    cfg = TrainConfig(steps=2, quiet=True, device="cpu")
    with pytest.raises(CheckpointError, match=re.escape(str(run_dir / "trainer.pt"))):
        Trainer(tiny.Regressor(), cfg, loss_fn=tiny.mse, train_data=data, run_dir=run_dir, resume=True)
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


# ----- 6. atomic_write failures -------------------------------------------------------------------

def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_bytes(path, b"old")

    def failing(f):
        f.write(b"half of the new cont")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_atomic_write_permissions_new_and_existing(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    new = atomic_write_bytes(tmp_path / "a.png", b"x")
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    new.chmod(0o600)
    atomic_write_bytes(new, b"y")
    assert new.stat().st_mode & 0o777 == 0o600 and new.read_bytes() == b"y"


def test_atomic_write_error_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no" / "x.json")) + ".*does not exist"):
        atomic_write_json(tmp_path / "no" / "x.json", {})
    directory = tmp_path / "ro"
    directory.mkdir()
    atomic_write_bytes(directory / "model.safetensors", b"old")
    directory.chmod(0o555)
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("running as root: a read-only directory is still writable")
        with pytest.raises(PermissionError, match=re.escape(str(directory / "model.safetensors"))):
            atomic_write_bytes(directory / "model.safetensors", b"new")
        assert (directory / "model.safetensors").read_bytes() == b"old"
    finally:
        directory.chmod(0o755)


# ----- 7. metrics.jsonl ---------------------------------------------------------------------------

def test_read_jsonl_ignores_truncated_last_line(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    for i in range(3):
        append_jsonl(path, {"step": i, "loss": 0.5})
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "lo')  # killed mid-write
    with caplog.at_level(logging.WARNING):
        assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2]
    assert "truncated last line 4" in caplog.text
    append_jsonl(path, {"step": 4})  # the partial line is removed, not glued to the new record
    assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2, 4]
    with open(path, "ab") as f:
        f.write(b'{"step": 5}')  # complete record, only its newline missing
    append_jsonl(path, {"step": 6})
    assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2, 4, 5, 6]


@pytest.mark.parametrize("bad, why", [(b'{"step": 1, "lo\n', "Unterminated string"), (b"[1, 2]\n", "a JSON list"),
                                      (b"\xff\xfe\n", "not UTF-8")])
def test_read_jsonl_raises_on_corrupt_middle_line(tmp_path, bad, why):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 0}\n\n' + bad + b'{"step": 2}\n')
    with pytest.raises(CheckpointError, match=re.escape(f"{path}, line 3: not a JSON object") + f".*{why}"):
        read_jsonl(path)


def test_truncate_jsonl_keeps_the_right_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in range(1, 9):
        append_jsonl(path, {"step": step, "split": "valid" if step % 4 == 0 else "train"})
    with open(path, "ab") as f:
        f.write(b'{"step": 9')
    assert truncate_jsonl(path, lambda r: r["step"] <= 5) == 3
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3, 4, 5]
    assert path.read_bytes().endswith(b"\n") and no_temp_files(tmp_path)
    with pytest.raises(KeyError):
        truncate_jsonl(path, lambda r: r["missing"])
    assert len(read_jsonl(path)) == 5  # a failing filter changes nothing
    assert truncate_jsonl(tmp_path / "none.jsonl", lambda r: True) == 0
    assert not (tmp_path / "none.jsonl").exists()


# ----- 8. check_run_dir ---------------------------------------------------------------------------

def test_check_run_dir_messages(tmp_path, caplog):
    run = tmp_path / "run"
    with pytest.raises(CheckpointError, match=f"run directory {re.escape(str(run))} does not exist"):
        check_run_dir(run)
    run.mkdir()
    atomic_write_json(run / "config.json", {})
    with pytest.raises(CheckpointError, match=re.escape(f"run directory {run} is incomplete: missing "
                                                        "model.safetensors (it holds: config.json)")):
        check_run_dir(run)
    with pytest.raises(CheckpointError, match="missing model.safetensors, trainer.pt"):
        check_run_dir(run, need=("config.json", "model.safetensors", "trainer.pt"))
    with pytest.raises(CheckpointError, match=f"{re.escape(str(run / 'config.json'))} is a file, not a run"):
        check_run_dir(run / "config.json")
    save_model(run / "model.safetensors", nn.Linear(2, 2))
    (run / ".model.safetensors.0123abcd.tmp").write_bytes(b"partial")
    with caplog.at_level(logging.WARNING):
        assert check_run_dir(str(run)) == run
    assert "temporary file" in caplog.text
    assert remove_stale_temp_files(run) == [run / ".model.safetensors.0123abcd.tmp"]
