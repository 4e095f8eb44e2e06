"""Truncated BPTT (k1, k2): the update plan, and the trainer's gradients against a hand-unrolled reference."""
import copy

import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit.data import Batch
from rnnkit.train import TrainConfig, Trainer
from rnnkit.train.tbptt import Update, plan


def test_plan_k1_equals_k2_is_chunked():
    assert plan(6, 2) == [Update(0, 0, 2, ()), Update(2, 2, 4, ()), Update(4, 4, 6, ())]


def test_plan_overlapping_windows():
    # k1=2, k2=3: every window reaches 3 steps back, saving states at the other windows' starts
    assert plan(6, 2, 3) == [Update(0, 0, 2, (1,)), Update(1, 2, 4, (2, 3)), Update(3, 4, 6, (4,))]


def test_plan_full_bptt_and_errors():
    assert plan(5, None) == [Update(0, 0, 5, ())]
    with pytest.raises(ValueError, match="k1 <= k2"):
        plan(5, 3, 2)
    with pytest.raises(ValueError, match="needs k1"):
        plan(5, None, 2)


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = rk.layers.Recurrent(rk.cells.ElmanCell(2, 3))
        self.head = nn.Linear(3, 1)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state=state)
        return self.head(out), state


class OneBatch:
    def __init__(self, batch):
        self.batch = batch

    def __len__(self):
        return 1

    def batches(self, epoch=0):
        yield self.batch


def mse(preds, batch):
    return ((preds - batch.y) ** 2).mean()


def unrolled(model, x, h, start, stop):
    """Hand loop over the cell: outputs and states for steps start..stop-1."""
    cell, outs, states = model.rnn.cell, [], {}
    for t in range(start, stop):
        y, h = cell(x[:, t], h)
        outs.append(model.head(y))
        states[t + 1] = h
    return torch.stack(outs, 1), states


def reference(model, x, y, k1, k2, lr, updates):
    """SGD with TBPTT(k1, k2) written out: each update's loss on its k1 steps, graph cut k2 steps back."""
    model = copy.deepcopy(model)
    saved = {0: torch.zeros(x.shape[0], 3, dtype=x.dtype)}
    for u in plan(x.shape[1], k1, k2)[:updates]:
        preds, states = unrolled(model, x, saved[u.window_start].detach(), u.window_start, u.stop)
        saved.update({t: s.detach() for t, s in states.items()})
        loss = ((preds[:, u.start - u.window_start:] - y[:, u.start:u.stop]) ** 2).mean()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= lr * g
    return model


@pytest.mark.parametrize("k1,k2", [(2, 2), (2, 3), (2, 5), (3, 4), (None, None)])
def test_trainer_matches_hand_unrolled_tbptt(k1, k2):
    torch.manual_seed(0)
    model = TinyModel().double()
    x, y = torch.randn(2, 7, 2, dtype=torch.float64), torch.randn(2, 7, 1, dtype=torch.float64)
    n = len(plan(7, k1, k2))
    expected = reference(model, x, y, k1, k2, 0.1, n)
    cfg = TrainConfig(steps=n, bptt=k1, bptt_window=k2, optimizer="sgd", lr=0.1, quiet=True)
    Trainer(model, cfg, loss_fn=mse, train_data=OneBatch(Batch(x, y))).fit()
    for (name, p), q in zip(model.named_parameters(), expected.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=name)


def test_k2_greater_than_k1_really_backpropagates_further():
    torch.manual_seed(1)
    model = TinyModel().double()
    x, y = torch.randn(2, 6, 2, dtype=torch.float64), torch.randn(2, 6, 1, dtype=torch.float64)
    results = []
    for k2 in (2, 4):
        m = copy.deepcopy(model)
        cfg = TrainConfig(steps=2, bptt=2, bptt_window=k2, optimizer="sgd", lr=0.1, quiet=True)
        Trainer(m, cfg, loss_fn=mse, train_data=OneBatch(Batch(x, y))).fit()
        results.append(m.rnn.cell.weight_hh.detach().clone())
    assert (results[0] - results[1]).abs().max() > 1e-6
