"""The generation path: small batches outside autograd step through one product [x, h] [W_x; W_h]^T.

It must give exactly the training path's numbers (which the other cell tests check against the equations),
and see every change to the weights (the stacked copy is a cache).
"""
import pytest
import torch

from rnnkit.cells import ElmanCell, JordanCell, LSTMCell
from rnnkit.cells.params import SMALL_BATCH

from cellkit import DT, fill_deterministic_

CELLS = {
    "lstm": lambda: LSTMCell(5, 7),
    "peephole": lambda: LSTMCell(5, 7, peephole=True),
    "lstm-no-bias": lambda: LSTMCell(5, 7, bias=False),
    "elman-relu": lambda: ElmanCell(5, 7, activation="relu"),
    "elman-no-bias": lambda: ElmanCell(5, 7, bias=False),
    "jordan": lambda: JordanCell(5, 7, output_size=3),
}


def train_path(cell, x, state):
    return cell.step(cell.project_input(x), state)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("batch", [1, SMALL_BATCH])
def test_no_grad_small_batch_equals_the_training_path(name, batch):
    cell = CELLS[name]().to(DT)
    fill_deterministic_(cell)
    x = torch.randn(batch, 5, dtype=DT)
    template = cell.initial_state(batch, dtype=DT)
    state = torch.randn_like(template) if isinstance(template, torch.Tensor) else tuple(map(torch.randn_like, template))
    with torch.no_grad():
        y, new = cell(x, state)
        y_ref, new_ref = train_path(cell, x, state)
    assert "_joint" in cell.__dict__ or not hasattr(cell, "update")  # the path under test was taken
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    for a, b in zip(torch.utils._pytree.tree_leaves(new), torch.utils._pytree.tree_leaves(new_ref)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_stacked_copy_follows_weight_changes():
    cell = LSTMCell(3, 4)
    x, state = torch.randn(1, 3), cell.initial_state(1)
    with torch.no_grad():
        before = cell(x, state)[0]
        cell.weight_hh.add_(0.5)  # in place: the version counter moves
        cell.bias_ih.mul_(2.0)
        after = cell(x, (before, before))[0]
        expected = train_path(cell, x, (before, before))[0]
    torch.testing.assert_close(after, expected)
    cell.load_state_dict({k: torch.zeros_like(v) for k, v in cell.state_dict().items()})  # copy_ into the same storage
    with torch.no_grad():
        assert torch.equal(cell(x, state)[0], torch.zeros(1, 4))


def test_large_batches_and_autograd_keep_the_training_path():
    cell = LSTMCell(3, 4)
    with torch.no_grad():
        cell(torch.randn(SMALL_BATCH + 1, 3))
    assert "_joint" not in cell.__dict__
    y, _ = cell(torch.randn(1, 3))  # grad enabled: gradients must reach both weights
    y.sum().backward()
    assert "_joint" not in cell.__dict__ and cell.weight_ih.grad is not None and cell.weight_hh.grad is not None
