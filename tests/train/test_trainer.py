"""The training loop: clipping, masking, exact resume, run-directory errors, Ctrl-C, non-finite losses,
seeds, early stopping and cadence, evaluation, stateful streams, config validation, bf16."""
import copy
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tiny
from rnnkit.data import Batch, StreamBatches, TensorBatches
from rnnkit.layers import detach_state
from rnnkit.train import (CheckpointError, NonFiniteLossError, TrainConfig, Trainer, TrainingInterrupted, evaluate,
                          masked_mse, seed_everything)
from rnnkit.train.checkpoint import load_trainer_state, read_model_metadata

PNG = b"\x89PNG\r\n\x1a\n"


def regression_data(n=6, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, T, 2, generator=g), torch.randn(n, T, 1, generator=g)


def token_stream(n=27, vocab=7, seed=0):
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


def config(**kw):
    return TrainConfig(**{"quiet": True, "device": "cpu", **kw})


def hand_gradients(model, batch, loss_fn=tiny.mse):
    """dL/dp for one full-BPTT forward of `batch`, on a copy of the model."""
    model = copy.deepcopy(model)
    preds, _ = model(batch.x, None, lengths=batch.lengths)
    grads = torch.autograd.grad(loss_fn(preds, batch), list(model.parameters()))
    return dict(zip([n for n, _ in model.named_parameters()], grads))


# ----- clipping -------------------------------------------------------------------------------------

def one_batch_double(seed=0):
    torch.manual_seed(seed)
    model = tiny.Regressor().double()
    x, y = regression_data()
    return model, Batch(x.double(), 3 * y.double())


@pytest.mark.parametrize("clips", ["every", "some", "no"])  # entries of the gradient clipped
def test_clip_value_update_is_the_clipped_gradient(clips):
    model, batch = one_batch_double()
    grads = hand_gradients(model, batch)
    size = torch.cat([g.abs().flatten() for g in grads.values()])
    v = {"every": 0.5 * size.min(), "some": size.median(), "no": 2 * size.max()}[clips].item()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(model, config(steps=1, optimizer="sgd", lr=1.0, clip_value=v), loss_fn=tiny.mse,
            train_data=tiny.Source(batch)).fit()
    for n, p in model.named_parameters():  # SGD with lr 1: the update is the clipped gradient
        torch.testing.assert_close(before[n] - p.detach(), grads[n].clamp(-v, v), rtol=0, atol=1e-12, msg=n)
    clipped = int((size > v).sum())
    assert {"every": clipped == size.numel(), "some": 0 < clipped < size.numel(), "no": clipped == 0}[clips]


@pytest.mark.parametrize("scale", [0.1, 10.0])  # clipping active, inactive
def test_clip_norm_update_and_logged_pre_clipping_norm(tmp_path, scale):
    model, batch = one_batch_double()
    grads = hand_gradients(model, batch)
    norm = float(torch.cat([g.flatten() for g in grads.values()]).norm())
    c = scale * norm
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(model, config(steps=1, optimizer="sgd", lr=1.0, clip_norm=c), loss_fn=tiny.mse,
            train_data=tiny.Source(batch), run_dir=tmp_path).fit()
    for n, p in model.named_parameters():
        factor = min(1.0, c / (norm + 1e-6))  # clip_grad_norm_'s coefficient (its eps keeps 0 norms finite)
        torch.testing.assert_close(before[n] - p.detach(), grads[n] * factor, rtol=1e-9, atol=1e-12)
    (record,) = tiny.read_metrics(tmp_path)
    assert record["grad_norm"] == pytest.approx(norm, rel=1e-9)


@pytest.mark.parametrize("with_norm", [False, True])
def test_value_then_norm_clipping_logs_the_pre_clipping_norm(tmp_path, with_norm):
    model, batch = one_batch_double()
    grads = hand_gradients(model, batch)
    flat = torch.cat([g.flatten() for g in grads.values()])
    v = float(flat.abs().median())
    clipped = {n: g.clamp(-v, v) for n, g in grads.items()}
    clipped_norm = float(torch.cat([g.flatten() for g in clipped.values()]).norm())
    c = 0.5 * clipped_norm if with_norm else None
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(model, config(steps=1, optimizer="sgd", lr=1.0, clip_value=v, clip_norm=c), loss_fn=tiny.mse,
            train_data=tiny.Source(batch), run_dir=tmp_path).fit()
    factor = min(1.0, c / (clipped_norm + 1e-6)) if with_norm else 1.0  # value first, then the global norm
    for n, p in model.named_parameters():
        torch.testing.assert_close(before[n] - p.detach(), clipped[n] * factor, rtol=1e-9, atol=1e-12, msg=n)
    (record,) = tiny.read_metrics(tmp_path)
    assert record["grad_norm"] == pytest.approx(float(flat.norm()), rel=1e-9)  # before any clipping
    assert record["grad_norm"] > clipped_norm * 1.01


# ----- masking --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_padding_does_not_change_training(cell):
    x, y = regression_data()
    lengths = torch.tensor([5, 2, 3, 1, 4, 5])
    pad = torch.arange(5)[None, :] >= lengths[:, None]  # (N, T)
    results = []
    for x_pad, y_pad in ((0.0, 0.0), (1e3, float("nan")), (float("nan"), -7.0)):
        xs, ys = x.clone(), y.clone()
        xs[pad], ys[pad] = x_pad, y_pad
        torch.manual_seed(0)
        model = tiny.Regressor(cell=cell)
        Trainer(model, config(steps=4, lr=0.05), loss_fn=tiny.mse,
                train_data=TensorBatches(xs, ys, 4, lengths=lengths)).fit()
        results.append(tiny.params(model))
    tiny.assert_params_equal(results[0], results[1])
    tiny.assert_params_equal(results[0], results[2])
    assert not torch.equal(results[0]["head.weight"], tiny.params(tiny.Regressor(cell=cell))["head.weight"])


# ----- exact resume ---------------------------------------------------------------------------------

def check_steps(run_dir, n):
    steps = [r["step"] for r in tiny.read_metrics(run_dir)]
    assert steps == list(range(1, n + 1)), f"metrics.jsonl train steps: {steps}"


def resume_matches(tmp_path, make_model, cfg, data, *, n, k, loss_fn, stop="steps", valid=None, epochs=None):
    """Train n steps in one go, and k steps then n - k more in a new Trainer with resume=True;
    returns (one-go trainer, resumed trainer). stop: "steps" (first run has steps=k) or "interrupt"
    (first run has steps=n, or the given epochs, and gets SIGINT during step k)."""
    full, split = tmp_path / "full", tmp_path / "split"
    budget = {"steps": n, **cfg} if epochs is None else {"epochs": epochs, **cfg}
    seed_everything(0)
    a = make_model()
    ta = Trainer(a, config(**budget), loss_fn=loss_fn, train_data=data, valid_data=valid, run_dir=full)
    ta.fit()

    seed_everything(0)
    b = make_model()
    if stop == "steps":
        Trainer(b, config(steps=k, **cfg), loss_fn=loss_fn, train_data=data, valid_data=valid, run_dir=split).fit()
    else:
        assert stop == "interrupt"
        calls = []

        def interrupting(preds, batch):
            calls.append(torch.is_grad_enabled())  # False: called by evaluate()
            if sum(calls) == k and calls[-1]:
                signal.raise_signal(signal.SIGINT)  # the trainer's handler finishes this step, then stops
            return loss_fn(preds, batch)

        with pytest.raises(TrainingInterrupted, match=f"interrupted at step {k}"):
            Trainer(b, config(**budget), loss_fn=interrupting, train_data=data, valid_data=valid,
                    run_dir=split).fit()
    assert load_trainer_state(split / "trainer.pt")["step"] == k

    seed_everything(123)  # a different start: everything must come from the run directory
    c = make_model()
    tc = Trainer(c, config(**budget), loss_fn=loss_fn, train_data=data, valid_data=valid, run_dir=split,
                 resume=True)
    tc.fit()
    assert tc.step == n
    check_steps(split, n)
    losses = [r["loss"] for r in tiny.read_metrics(full)]
    assert [r["loss"] for r in tiny.read_metrics(split)] == losses
    if valid is not None:
        evals = [[(r["step"], r["loss"]) for r in tiny.read_metrics(d, "valid")] for d in (full, split)]
        assert evals[1] == evals[0]
        assert (tc.best, tc.bad_evals) == (ta.best, ta.bad_evals)
    return ta, tc


@pytest.mark.parametrize("k", [2, 3])  # at an epoch's end, inside an epoch
def test_resume_shuffled_batches_with_dropout(tmp_path, k):
    x, y = regression_data()
    data = TensorBatches(x, y, 4, shuffle=True, seed=5)  # batches of 4 and 2
    ta, tc = resume_matches(tmp_path, lambda: tiny.Regressor(dropout=0.3), {"lr": 0.1}, data, n=5, k=k,
                            loss_fn=tiny.mse)
    tiny.assert_params_equal(ta.raw_model, tc.raw_model)


@pytest.mark.parametrize("k,stop", [
    (3, "steps"),  # after the first batch: the carried state
    (4, "steps"),  # inside the second batch: the saved states of its windows
    (3, "interrupt"),  # Ctrl-C on a batch's last update: saved before the batch is closed
    (7, "interrupt"),  # ... and on the epoch's last update
])
def test_resume_stateful_stream_tbptt(tmp_path, k, stop):
    data = StreamBatches(token_stream(), batch_size=2, seq_len=6)  # 13 columns: batches of 6, 6, 1 steps
    cfg = {"lr": 0.3, "optimizer": "sgd", "momentum": 0.9, "stateful": True, "bptt": 2, "bptt_window": 3}
    # 3 updates per batch of 6 steps; n = 9 crosses an epoch (3 + 3 + 1 updates)
    ta, tc = resume_matches(tmp_path, lambda: tiny.LM(cell="lstm"), cfg, data, n=9, k=k, loss_fn=tiny.xent, stop=stop)
    tiny.assert_params_equal(ta.raw_model, tc.raw_model)


def test_resume_checkpoint_mid_batch_holds_saved_states(tmp_path):
    data = StreamBatches(token_stream(), batch_size=2, seq_len=6)
    seed_everything(0)
    Trainer(tiny.LM(), config(steps=4, stateful=True, bptt=2, bptt_window=3), loss_fn=tiny.xent, train_data=data,
            run_dir=tmp_path).fit()
    state = load_trainer_state(tmp_path / "trainer.pt")
    assert (state["batch_index"], state["update_index"]) == (1, 1)
    assert sorted(int(k) for k in state["saved_states"]) == [0, 1, 2]  # window starts 0, 1 and the cut at 2


@pytest.mark.parametrize("schedule,stop", [("cosine", "interrupt"), ("step", "interrupt"), ("step", "steps")])
def test_resume_adam_with_schedule(tmp_path, schedule, stop):
    x, y = regression_data(n=8)
    data = TensorBatches(x, y, 2, shuffle=True)
    cfg = {"lr": 0.05, "optimizer": "adam", "schedule": schedule, "schedule_step": 2, "schedule_gamma": 0.5}
    ta, tc = resume_matches(tmp_path, tiny.Regressor, cfg, data, n=7, k=3, loss_fn=tiny.mse, stop=stop)
    tiny.assert_params_equal(ta.raw_model, tc.raw_model)
    assert tc.optimizer.param_groups[0]["lr"] == ta.optimizer.param_groups[0]["lr"]
    lrs = [[r["lr"] for r in tiny.read_metrics(tmp_path / d)] for d in ("full", "split")]
    assert lrs[1] == lrs[0]


@pytest.mark.parametrize("k", [2, 3])  # at an epoch's end, inside an epoch
def test_resume_in_epochs_mode_with_validation(tmp_path, k):
    x, y = regression_data()
    data, valid = TensorBatches(x, y, 4), TensorBatches(x[:3], -y[:3], 3, shuffle=False)
    cfg = {"lr": 0.1, "schedule": "cosine", "patience": 5}
    ta, tc = resume_matches(tmp_path, lambda: tiny.Regressor(dropout=0.3), cfg, data, n=6, k=k, loss_fn=tiny.mse,
                            stop="interrupt", valid=valid, epochs=3)
    tiny.assert_params_equal(ta.raw_model, tc.raw_model)
    assert [r["step"] for r in tiny.read_metrics(tmp_path / "split", "valid")] == [2, 4, 6]


def test_resume_at_epoch_end_evaluates_once(tmp_path):
    x, y = regression_data()
    data = TensorBatches(x, y, 3)  # 2 batches per epoch: step 2 ends epoch 0
    valid = TensorBatches(x[:3], -y[:3], 3, shuffle=False)
    # a run stopped by `steps` on an epoch's last batch evaluates in fit(); the resumed run replays the
    # epoch's end and must not evaluate that step again (a duplicate record, and one more bad evaluation)
    ta, tc = resume_matches(tmp_path, tiny.Regressor, {"lr": 0.1}, data, n=5, k=2, loss_fn=tiny.mse, valid=valid)
    steps = [r["step"] for r in tiny.read_metrics(tmp_path / "split", "valid")]
    assert steps == [r["step"] for r in tiny.read_metrics(tmp_path / "full", "valid")] == [2, 4, 5]
    assert tc.bad_evals == ta.bad_evals


# ----- run-directory errors -------------------------------------------------------------------------

def short_run(run_dir, model=None, run_config=None, steps=1):
    x, y = regression_data()
    model = model or tiny.Regressor()
    Trainer(model, config(steps=steps), loss_fn=tiny.mse, train_data=TensorBatches(x, y, 3), run_dir=run_dir,
            run_config=run_config).fit()


def resume(run_dir, model=None, run_config=None, steps=2):
    x, y = regression_data()
    return Trainer(model or tiny.Regressor(), config(steps=steps), loss_fn=tiny.mse,
                   train_data=TensorBatches(x, y, 3), run_dir=run_dir, run_config=run_config, resume=True)


def test_resume_with_another_model_size_names_file_and_shape(tmp_path):
    short_run(tmp_path, tiny.Regressor(hidden_size=3))
    with pytest.raises(CheckpointError) as e:
        resume(tmp_path, tiny.Regressor(hidden_size=4))
    assert "trainer.pt" in str(e.value) and "(3, 2)" in str(e.value) and "(4, 2)" in str(e.value)


def test_resume_from_truncated_trainer_pt_names_it(tmp_path):
    short_run(tmp_path)
    path = tmp_path / "trainer.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="trainer.pt"):
        resume(tmp_path)


def test_resume_with_other_run_config_names_the_key(tmp_path):
    short_run(tmp_path, run_config={"task": "toy", "model": {"hidden_size": 3}})
    with pytest.raises(CheckpointError, match="model") as e:
        resume(tmp_path, run_config={"task": "toy", "model": {"hidden_size": 4}})
    assert "config.json" in str(e.value) and "task" not in str(e.value).split("does not match")[1]
    resume(tmp_path, run_config={"task": "toy", "model": {"hidden_size": 3}}).fit()  # the same config resumes


def test_new_run_in_a_used_directory_is_refused_and_leaves_it_alone(tmp_path):
    short_run(tmp_path, run_config={"task": "toy"}, steps=2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {"trainer.pt", "config.json", "metrics.jsonl", "model.safetensors"} <= set(before)
    with pytest.raises(CheckpointError, match="trainer.pt"):
        short_run(tmp_path, run_config={"task": "other"})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ----- Ctrl-C ---------------------------------------------------------------------------------------

SIGINT_SCRIPT = """
import sys
import torch
sys.path.insert(0, {tests!r})
import tiny
from rnnkit.data import TensorBatches
from rnnkit.train import TrainConfig, Trainer, TrainingInterrupted

torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x, y = torch.randn(6, 5, 2, generator=g), torch.randn(6, 5, 1, generator=g)
torch.manual_seed(0)
trainer = Trainer(tiny.Regressor(), TrainConfig(steps=10**8, lr=0.01, quiet=True, device="cpu"),
                  loss_fn=tiny.mse, train_data=TensorBatches(x, y, 3), run_dir=sys.argv[1],
                  resume_command="python train.py --resume")
try:
    trainer.fit()
except TrainingInterrupted as e:
    print(e, file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_sigint_saves_a_resumable_checkpoint(tmp_path):
    script, run_dir = tmp_path / "train.py", tmp_path / "run"
    script.write_text(SIGINT_SCRIPT.format(tests=str(Path(__file__).parent)))
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        metrics, deadline = run_dir / "metrics.jsonl", time.monotonic() + 60
        while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child logged no steps in 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "python train.py --resume" in err
    last = tiny.read_metrics(run_dir)[-1]["step"]
    assert load_trainer_state(run_dir / "trainer.pt")["step"] == last
    assert f"interrupted at step {last};" in err
    x, y = regression_data()
    trainer = Trainer(tiny.Regressor(), config(steps=last + 2, lr=0.01), loss_fn=tiny.mse,
                      train_data=TensorBatches(x, y, 3), run_dir=run_dir, resume=True)
    trainer.fit()
    assert trainer.step == last + 2
    check_steps(run_dir, last + 2)


# ----- non-finite losses ----------------------------------------------------------------------------

def nan_at(step, model, snapshots, files=None, run_dir=None):
    """mse, but NaN (with a graph) on the given step. Records the parameters each step starts from,
    and the run directory's checkpoint files as the bad step sees them."""
    def loss_fn(preds, batch):
        snapshots.append(tiny.params(model))
        loss = tiny.mse(preds, batch)
        if len(snapshots) != step:
            return loss
        if run_dir is not None:
            files.update({name: (run_dir / name).read_bytes() for name in ("trainer.pt", "model.safetensors")})
        return loss * float("nan")
    return loss_fn


def test_nonfinite_loss_raises_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    x, y = regression_data()
    model, seen, files = tiny.Regressor(), [], {}
    with pytest.raises(NonFiniteLossError, match="step 3") as e:
        Trainer(model, config(steps=10, checkpoint_every=1), loss_fn=nan_at(3, model, seen, files, tmp_path),
                train_data=TensorBatches(x, y, 3), run_dir=tmp_path).fit()
    assert "(step 2)" in str(e.value)  # the last good checkpoint
    assert len(files) == 2
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data, f"{name} changed"
    assert load_trainer_state(tmp_path / "trainer.pt")["step"] == 2
    assert [r["step"] for r in tiny.read_metrics(tmp_path)] == [1, 2]


def test_nonfinite_loss_skip_skips_the_update_and_warns(caplog):
    x, y = regression_data()
    model, seen = tiny.Regressor(), []
    with caplog.at_level(logging.WARNING, logger="rnnkit"):
        trainer = Trainer(model, config(steps=5, optimizer="sgd", momentum=0.9, on_nonfinite="skip"),
                          loss_fn=nan_at(3, model, seen), train_data=TensorBatches(x, y, 3))
        trainer.fit()
    assert trainer.step == 5 and trainer.skipped == 1
    before = seen  # before[i]: the parameters that step i + 1 starts from
    tiny.assert_params_equal(before[2], before[3])  # step 3 changed nothing
    for i in (1, 3):
        assert not torch.equal(before[i]["head.weight"], before[i + 1]["head.weight"])  # steps 2 and 4 did
    assert math.isnan(trainer.history[2]["loss"]) and all(math.isfinite(r["loss"]) for r in trainer.history[3:])
    assert any(r.levelno == logging.WARNING and "step 3" in r.getMessage() for r in caplog.records)


# ----- seeds ----------------------------------------------------------------------------------------

def seeded_losses(seed, tmp_path):
    seed_everything(seed)
    x, y = regression_data()
    run_dir = tmp_path / f"seed{seed}-{len(list(tmp_path.iterdir()))}"
    Trainer(tiny.Regressor(dropout=0.2), config(steps=4, seed=seed, lr=0.1), loss_fn=tiny.mse,
            train_data=TensorBatches(x, y, 3, seed=seed), run_dir=run_dir).fit()
    return [r["loss"] for r in tiny.read_metrics(run_dir)]


def test_same_seed_same_losses_other_seed_differs(tmp_path):
    first = seeded_losses(0, tmp_path)
    assert seeded_losses(0, tmp_path) == first
    assert seeded_losses(1, tmp_path) != first


# ----- early stopping, best model, cadence, plots ---------------------------------------------------

def test_early_stopping_and_best_model(tmp_path):
    x, y = regression_data()
    train = TensorBatches(x, torch.ones_like(y), 3)
    valid = TensorBatches(x[:3], -torch.ones_like(y[:3]), 3, shuffle=False)  # training makes it worse
    torch.manual_seed(0)
    cfg = config(steps=100, optimizer="sgd", lr=0.1, eval_every=1, patience=2)
    trainer = Trainer(tiny.Regressor(), cfg, loss_fn=tiny.mse, train_data=train, valid_data=valid, run_dir=tmp_path)
    trainer.fit()
    assert trainer.step == 3 < 100
    losses = [r["loss"] for r in tiny.read_metrics(tmp_path, "valid")]
    assert [r["step"] for r in tiny.read_metrics(tmp_path, "valid")] == [1, 2, 3]
    assert losses[0] < losses[1] < losses[2]
    meta = read_model_metadata(tmp_path / "model.best.safetensors")
    assert float(meta["valid_loss"]) == min(losses) and meta["step"] == "1"
    best = tiny.Regressor()
    from rnnkit.train.checkpoint import load_model
    load_model(tmp_path / "model.best.safetensors", best)
    assert evaluate(best, valid, tiny.mse)["loss"] == pytest.approx(min(losses), rel=1e-6)


@pytest.mark.parametrize("eval_every,checkpoint_every,evals,saves", [
    (2, 3, [2, 4, 6, 7], [3, 6, 7]),
    (2, 0, [2, 4, 6, 7], [2, 4, 6, 7]),
    (0, 0, [2, 4, 6, 7], [2, 4, 6, 7]),  # eval_every=0: at each epoch's end (2 batches)
])
def test_eval_and_checkpoint_cadence(tmp_path, monkeypatch, eval_every, checkpoint_every, evals, saves):
    from rnnkit.train import checkpoint

    saved, real = [], checkpoint.save_trainer_state
    monkeypatch.setattr(checkpoint, "save_trainer_state", lambda path, state: (saved.append(state["step"]),
                                                                               real(path, state))[1])
    x, y = regression_data()
    Trainer(tiny.Regressor(), config(steps=7, eval_every=eval_every, checkpoint_every=checkpoint_every),
            loss_fn=tiny.mse, train_data=TensorBatches(x, y, 3), valid_data=TensorBatches(x, y, 3, shuffle=False),
            run_dir=tmp_path).fit()
    assert [r["step"] for r in tiny.read_metrics(tmp_path, "valid")] == evals
    assert saved == saves
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG
    assert load_trainer_state(tmp_path / "trainer.pt")["step"] == 7


# ----- evaluate() -----------------------------------------------------------------------------------

def test_evaluate_is_token_weighted_over_uneven_batches():
    x, y = regression_data(n=5)
    lengths = torch.tensor([5, 1, 3, 2, 4])
    batches = [Batch(x[:3], y[:3], lengths[:3]), Batch(x[3:4], y[3:4], lengths[3:4]),
               Batch(x[4:], y[4:], lengths[4:])]
    torch.manual_seed(0)
    model = tiny.Regressor(dropout=0.5).train()

    def abs_err(preds, batch):
        valid = torch.arange(batch.x.shape[1])[None, :] < batch.lengths[:, None]  # (B, T)
        return {"mae": (preds - batch.y).abs()[valid].mean()}

    got = evaluate(model, tiny.Source(*batches), tiny.mse, metrics_fn=abs_err)
    assert model.training  # evaluate restores the mode (and ran without dropout: see below)
    model.eval()
    with torch.no_grad():
        per = []  # (loss, mae, valid tokens) of each batch
        for b in batches:
            preds, _ = model(b.x, None, lengths=b.lengths)
            per.append((float(tiny.mse(preds, b)), float(abs_err(preds, b)["mae"]), int(b.lengths.sum())))
        preds, _ = model(x, None, lengths=lengths)
    total = sum(n for *_, n in per)
    assert [n for *_, n in per] == [9, 2, 4]
    assert got["loss"] == pytest.approx(sum(l * n for l, _, n in per) / total, rel=1e-6)
    assert got["mae"] == pytest.approx(sum(m * n for _, m, n in per) / total, rel=1e-6)
    # token-weighting makes it the mean over every valid position of the data set
    assert got["loss"] == pytest.approx(float(masked_mse(preds, y, lengths=lengths)), rel=1e-5)
    assert got["loss"] != pytest.approx(sum(l for l, _, _ in per) / 3, rel=1e-3)  # not a mean of batch means


def test_evaluate_without_batches_raises():
    with pytest.raises(ValueError, match="no batches"):
        evaluate(tiny.Regressor(), tiny.Source(), tiny.mse)


# ----- stateful streams -----------------------------------------------------------------------------

def hand_stream_sgd(model, batches, lr, start):
    """SGD over whole batches; batch i starts from start(i, previous detached state or None)."""
    model, state = copy.deepcopy(model), None
    for i, b in enumerate(batches):
        preds, new = model(b.x, start(i, state))
        grads = torch.autograd.grad(tiny.xent(preds, b), list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= lr * g
        state = detach_state(new)
    return model


def assert_trained_like(trained, expected, wrong):
    for (n, p), q in zip(trained.named_parameters(), expected.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=n)
    assert any(not torch.allclose(p, r, atol=1e-9) for p, r in zip(trained.parameters(), wrong.parameters()))


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_stateful_stream_carries_state_and_resets_each_epoch(cell):
    data = StreamBatches(token_stream(n=25), batch_size=2, seq_len=6)  # 2 batches per epoch
    assert len(data) == 2
    batches = [b for e in range(2) for b in data.batches(e)]
    torch.manual_seed(0)
    model = tiny.LM(cell=cell).double()
    for steps, wrong in ((2, lambda i, s: None), (3, lambda i, s: s)):  # never carried; carried across epochs
        trained = copy.deepcopy(model)
        Trainer(trained, config(steps=steps, optimizer="sgd", lr=0.5, stateful=True), loss_fn=tiny.xent,
                train_data=data).fit()
        expected = hand_stream_sgd(model, batches[:steps], 0.5, lambda i, s: s if i % 2 else None)
        assert_trained_like(trained, expected, hand_stream_sgd(model, batches[:steps], 0.5, wrong))


def test_stateful_reset_flags_restart_only_their_rows():
    ids = token_stream(n=30)
    first = Batch(ids[:12].view(2, 6), ids[1:13].view(2, 6), reset=torch.tensor([True, True]))
    second = Batch(ids[13:25].view(2, 6), ids[14:26].view(2, 6), reset=torch.tensor([True, False]))
    torch.manual_seed(0)
    model = tiny.LM(cell="lstm").double()
    trained = copy.deepcopy(model)
    Trainer(trained, config(steps=2, optimizer="sgd", lr=0.5, stateful=True), loss_fn=tiny.xent,
            train_data=tiny.Source(first, second)).fit()
    row0_zeroed = lambda i, s: None if s is None else tuple(t * torch.tensor([[0.0], [1.0]], dtype=t.dtype) for t in s)
    expected = hand_stream_sgd(model, [first, second], 0.5, row0_zeroed)
    assert_trained_like(trained, expected, hand_stream_sgd(model, [first, second], 0.5, lambda i, s: s))


# ----- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,field", [
    ({"steps": 3, "epochs": 1}, "steps"),
    ({}, "epochs"),
    ({"steps": 0}, "steps"),
    ({"steps": 3, "bptt": 4, "bptt_window": 2}, "bptt_window"),
    ({"steps": 3, "bptt_window": 2}, "bptt_window"),
    ({"steps": 3, "optimizer": "lbfgs"}, "optimizer"),
    ({"steps": 3, "precision": "fp8"}, "precision"),
    ({"steps": 3, "device": "tpu"}, "device"),
    ({"steps": 3, "schedule": "linear"}, "schedule"),
    ({"steps": 3, "on_nonfinite": "ignore"}, "on_nonfinite"),
    ({"steps": 3, "lr": -1.0}, "lr"),
    ({"steps": 3, "clip_norm": float("nan")}, "clip_norm"),
])
def test_train_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field) as e:
        TrainConfig(**kwargs)
    bad = [v for k, v in kwargs.items() if k == field and isinstance(v, str)]
    assert all(repr(v) in str(e.value) for v in bad)  # the bad value is echoed


def test_fp16_on_cpu_is_refused():
    x, y = regression_data()
    with pytest.raises(ValueError, match="fp16"):
        Trainer(tiny.Regressor(), config(steps=1, precision="fp16"), loss_fn=tiny.mse,
                train_data=TensorBatches(x, y, 3))


# ----- bf16 on the CPU ------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_bf16_on_cpu_trains_with_finite_loss(cell):
    x, y = regression_data()
    torch.manual_seed(0)
    model = tiny.Regressor(cell=cell)
    trainer = Trainer(model, config(steps=3, precision="bf16", lr=0.05), loss_fn=tiny.mse,
                      train_data=TensorBatches(x, y, 3, lengths=torch.tensor([5, 4, 3, 5, 2, 1])))
    trainer.fit()
    assert len(trainer.history) == 3 and all(math.isfinite(r["loss"]) for r in trainer.history)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("kw", [{"bptt": 2}, {"bptt": 2, "bptt_window": 3}, {"stateful": True}])
def test_bf16_with_tbptt_or_stateful_streams(kw):
    """The state coming back from a bf16 segment is fed to the next segment (TBPTT) or batch (stateful)."""
    torch.manual_seed(0)
    data = StreamBatches(token_stream(), 2, 6)
    trainer = Trainer(tiny.LM(), config(steps=4, precision="bf16", eval_every=2, **kw), loss_fn=tiny.xent,
                      train_data=data, valid_data=data)  # evaluation carries the state too (stateful)
    trainer.fit()
    assert len([r for r in trainer.history if "grad_norm" in r]) == 4
    assert all(math.isfinite(r["loss"]) for r in trainer.history)


def test_empty_training_data_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="no batches"):
        Trainer(tiny.Regressor(), TrainConfig(steps=3, quiet=True), loss_fn=tiny.mse, train_data=tiny.Source()).fit()
