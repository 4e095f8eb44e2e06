"""Optimizers and learning-rate schedules by name, alone and inside the trainer."""
import pytest
import torch
from torch import nn

import tiny
from rnnkit.data import StreamBatches, TensorBatches
from rnnkit.train import TrainConfig, Trainer, make_optimizer, make_scheduler


def params():
    return nn.Linear(2, 1).parameters()


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop),
                                      ("adagrad", torch.optim.Adagrad)])
def test_optimizer_by_name(name, cls):
    opt = make_optimizer(name, params(), lr=0.03, momentum=0.9, weight_decay=0.01)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.03 and group["weight_decay"] == 0.01
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.9


def test_optimizer_errors_echo_the_value():
    with pytest.raises(ValueError, match="'lbfgs'"):
        make_optimizer("lbfgs", params(), lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        make_optimizer("sgd", params(), lr=0.0)


def lrs(scheduler, optimizer, n, metric=None):
    out = []
    for _ in range(n):
        optimizer.step()
        scheduler.step() if metric is None else scheduler.step(metric)
        out.append(optimizer.param_groups[0]["lr"])
    return out


def test_step_schedule_multiplies_every_step_size_steps():
    opt = make_optimizer("sgd", params(), lr=0.8)
    sched = make_scheduler("step", opt, total_steps=None, step_size=2, gamma=0.5)
    assert lrs(sched, opt, 5) == pytest.approx([0.8, 0.4, 0.4, 0.2, 0.2])


def test_cosine_schedule_halves_at_midpoint_and_ends_at_zero():
    opt = make_optimizer("adam", params(), lr=0.8)
    sched = make_scheduler("cosine", opt, total_steps=4)
    got = lrs(sched, opt, 4)
    assert got[1] == pytest.approx(0.4) and got[3] == pytest.approx(0.0, abs=1e-12)
    assert got == sorted(got, reverse=True)
    with pytest.raises(ValueError, match="steps"):
        make_scheduler("cosine", opt, total_steps=None)


def test_plateau_schedule_cuts_after_patience_evaluations_without_progress():
    opt = make_optimizer("sgd", params(), lr=0.8)
    sched = make_scheduler("plateau", opt, total_steps=None, gamma=0.25, patience=2)
    assert lrs(sched, opt, 3, metric=1.0) == [0.8, 0.8, 0.8]  # the best, then 2 bad evaluations
    assert lrs(sched, opt, 1, metric=1.0) == [0.2]
    assert make_scheduler("none", opt, total_steps=10) is None
    with pytest.raises(ValueError, match="'linear'"):
        make_scheduler("linear", opt, total_steps=10)


def test_trainer_logs_the_scheduled_lr(tmp_path):
    x, y = torch.randn(6, 4, 2), torch.randn(6, 4, 1)
    cfg = TrainConfig(steps=5, lr=0.8, optimizer="sgd", schedule="step", schedule_step=2, schedule_gamma=0.5,
                      quiet=True, device="cpu")
    Trainer(tiny.Regressor(), cfg, loss_fn=tiny.mse, train_data=TensorBatches(x, y, 3), run_dir=tmp_path).fit()
    assert [r["lr"] for r in tiny.read_metrics(tmp_path)] == pytest.approx([0.8, 0.4, 0.4, 0.2, 0.2])


def test_trainer_plateau_steps_on_validation_loss():
    x, y = torch.randn(6, 4, 2), torch.ones(6, 4, 1)
    valid = TensorBatches(x[:3], -y[:3], 3, shuffle=False)  # gets worse as training fits +1
    cfg = TrainConfig(steps=5, lr=0.1, optimizer="sgd", schedule="plateau", schedule_gamma=0.5, eval_every=1,
                      quiet=True, device="cpu")
    trainer = Trainer(tiny.Regressor(), cfg, loss_fn=tiny.mse, train_data=TensorBatches(x, y, 3), valid_data=valid)
    trainer.fit()
    # evaluations after steps 1..5: the best, then worse; patience 2 -> the cut after the 4th evaluation
    assert [r["lr"] for r in trainer.history if "grad_norm" in r] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05])


def test_cosine_over_epochs_with_tbptt_ends_at_zero():
    ids = torch.randint(0, 7, (25,), generator=torch.Generator().manual_seed(0))
    data = StreamBatches(ids, batch_size=2, seq_len=6)  # 2 batches of 6 steps, 3 updates each
    cfg = TrainConfig(epochs=1, bptt=2, lr=0.1, schedule="cosine", quiet=True, device="cpu")
    trainer = Trainer(tiny.LM(), cfg, loss_fn=tiny.xent, train_data=data)
    trainer.fit()
    got = [r["lr"] for r in trainer.history]
    assert len(got) == 6
    assert got == sorted(got, reverse=True) and got[-1] == pytest.approx(0.0, abs=1e-12)


def test_cosine_time_schedule_follows_the_clock_and_ends_at_zero():
    opt = make_optimizer("adam", params(), lr=0.8)
    now = [0.0]
    sched = make_scheduler("cosine-time", opt, total_steps=None, seconds=10.0, clock=lambda: now[0])
    got = []
    for t in (2.5, 5.0, 10.0, 12.0):  # seconds of training at each step, however many steps that took
        now[0] = t
        got += lrs(sched, opt, 1)
    assert got == pytest.approx([0.8 * (1 + 2 ** -0.5) / 2, 0.4, 0.0, 0.0], abs=1e-12)
    with pytest.raises(ValueError, match="time budget"):
        make_scheduler("cosine-time", opt, total_steps=None)


def test_cosine_time_needs_a_time_budget_and_anneals_a_timed_run(tmp_path):
    with pytest.raises(ValueError, match="max_time"):
        TrainConfig(steps=5, schedule="cosine-time")
    x, y = torch.randn(6, 4, 2), torch.randn(6, 4, 1)
    cfg = TrainConfig(steps=10**6, max_time=0.5, lr=0.1, optimizer="sgd", schedule="cosine-time", quiet=True,
                      device="cpu")
    trainer = Trainer(tiny.Regressor(), cfg, loss_fn=tiny.mse, train_data=TensorBatches(x, y, 3))
    trainer.fit()
    got = [r["lr"] for r in trainer.history if "grad_norm" in r]
    assert len(got) > 2 and got == sorted(got, reverse=True)  # falls with the seconds spent
    assert got[0] > 0.09 and got[-1] < 0.02  # from lr0 to about zero when the half second ends
