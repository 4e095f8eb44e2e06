"""Input and recurrent (variational) dropout: nothing in evaluation; in training one mask per sequence,
the SAME at every time step; recurrent dropout falls back from the kernel to the loop, with a warning."""
import warnings

import pytest
import torch

from layer_refs import (CELLS, DT, EXACT, FUSABLE, TIGHT, assert_tree_close, cat_batch, make_cell, randn,
                        random_state, take)
from rnnkit.cells import ElmanCell, LSTMCell
from rnnkit.layers import RNN, Bidirectional, Recurrent
import rnnkit.layers.fused as fused_module
import rnnkit.layers.recurrent as recurrent_module
from rnnkit.layers.dropout import variational_mask

B, T, FEAT, H = 4, 5, 6, 6
LENGTHS = [5, 2, 4, 1]


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    real = fused_module.run
    monkeypatch.setattr(fused_module, "run", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    return calls


@pytest.fixture
def masks(monkeypatch):
    """Every mask the layers draw, in order: (size, mask)."""
    drawn = []

    def spy(batch_size, size, p, like):
        m = variational_mask(batch_size, size, p, like)
        drawn.append((size, m))
        return m

    monkeypatch.setattr(recurrent_module, "variational_mask", spy)
    return drawn


def test_variational_mask():
    torch.manual_seed(0)
    m = variational_mask(64, 32, 0.25, torch.empty(0, dtype=DT))
    assert m.shape == (64, 32) and m.dtype == DT
    assert set(m.unique().tolist()) == {0.0, 1 / 0.75}
    assert abs(m.mean().item() - 1.0) < 0.05  # inverted dropout: expectation 1
    assert abs((m == 0).double().mean().item() - 0.25) < 0.05


# --- evaluation: dropout does nothing -----------------------------------------------------------------


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("name", CELLS)
def test_eval_equals_no_dropout(name, fused):
    cell = make_cell(name, FEAT, H)
    dropped = Recurrent(cell, input_dropout=0.3, recurrent_dropout=0.4, fused=fused).eval()
    plain = Recurrent(cell, fused=fused)
    x = randn(B, T, FEAT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no fallback warning in evaluation
        assert_tree_close(dropped(x, LENGTHS), plain(x, LENGTHS), **EXACT)
        assert dropped.uses_kernel() == plain.uses_kernel()


@pytest.mark.parametrize("kind", ["lstm", "gru-cho"])
def test_rnn_eval_equals_no_dropout(kind):
    torch.manual_seed(0)
    dropped = RNN(kind, FEAT, H, 2, bidirectional=True, dropout=0.5, input_dropout=0.3,
                  recurrent_dropout=0.4).double().eval()
    torch.manual_seed(0)
    plain = RNN(kind, FEAT, H, 2, bidirectional=True).double()
    x = randn(B, T, FEAT)
    assert_tree_close(dropped(x, LENGTHS), plain(x, LENGTHS), **TIGHT)


# --- training: one mask per sequence, held over time ----------------------------------------------------


def identity_elman(**kw):
    """ReLU Elman cell with W_x = I, W_h = 0, b = 0: for x >= 0, y_t = x_t (fusable: relu has a kernel)."""
    cell = ElmanCell(FEAT, H, activation="relu", dtype=DT)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.eye(H, dtype=DT))
        cell.weight_hh.zero_(), cell.bias_ih.zero_(), cell.bias_hh.zero_()
    return Recurrent(cell, **kw)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("fused", ["auto", False])
def test_input_mask_is_the_same_at_every_step(fused, batch_first):
    layer = identity_elman(input_dropout=0.5, fused=fused, batch_first=batch_first).train()
    assert layer.uses_kernel() == (fused == "auto")  # input dropout alone keeps the kernel
    torch.manual_seed(0)
    x = torch.ones(B, T, FEAT, dtype=DT)
    out, _ = layer(x if batch_first else x.transpose(0, 1), LENGTHS)
    out = out if batch_first else out.transpose(0, 1)  # (B, T, H): y_t = mask, as long as the sequence lasts
    assert set(out.unique().tolist()) == {0.0, 2.0}
    for b, n in enumerate(LENGTHS):
        assert torch.equal(out[b, :n], out[b, :1].expand(n, H)), "mask changed over time"
        assert torch.count_nonzero(out[b, n:]) == 0
    first_steps = out[:, 0]
    assert (first_steps == 0).any() and (first_steps == 2).any()
    assert not all(torch.equal(first_steps[0], r) for r in first_steps[1:]), "one mask for the whole batch"


@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_mask_is_the_same_at_every_step(batch_first):
    """W_x = 0, b_ih = 1, W_h = I, relu: h_t = 1 + m * h_{t-1}, so h_2 - 1 reveals m and every later step
    must follow from that same m (with fresh masks per step it would not)."""
    layer = identity_elman(recurrent_dropout=0.5, batch_first=batch_first).train()
    with torch.no_grad():
        layer.cell.weight_ih.zero_(), layer.cell.bias_ih.fill_(1.0), layer.cell.weight_hh.copy_(torch.eye(H))
    torch.manual_seed(0)
    x = torch.zeros(B, T, FEAT, dtype=DT)
    with pytest.warns(UserWarning, match="recurrent_dropout runs the explicit loop"):
        out, _ = layer(x if batch_first else x.transpose(0, 1))
    h = out if batch_first else out.transpose(0, 1)  # (B, T, H)
    m = h[:, 1] - 1
    assert set(m.unique().tolist()) == {0.0, 2.0}
    for t in range(1, T):
        assert torch.equal(h[:, t], 1 + m * h[:, t - 1])
    assert h[:, -1].max() == 2 ** T - 1  # kept units double and add one at every step


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("name", CELLS)
def test_train_equals_hand_loop_with_the_drawn_masks(name, fused, masks):
    layer = Recurrent(make_cell(name, FEAT, H), input_dropout=0.3, recurrent_dropout=0.4, fused=fused).train()
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback warning has its own test
        out, final = layer(x, LENGTHS, state)
    (size_in, m_in), (size_rec, m_rec) = masks  # input mask first, then the recurrent one
    assert size_in == FEAT and m_in.shape == (B, FEAT)
    recurrent_size = layer.cell.weight_hh.shape[1]  # what is fed back: H, or O for Jordan
    assert size_rec == recurrent_size and m_rec.shape == (B, recurrent_size)

    cell, outs, finals = layer.cell, [], []
    for b, n in enumerate(LENGTHS):  # by hand, each sequence alone, the same two masks at every step
        s, ys = take(state, b), []
        for t in range(n):
            y, s = cell.step(cell.project_input(x[b, t:t + 1] * m_in[b]), s, m_rec[b:b + 1])
            ys.append(y)
        y = torch.cat(ys)
        outs.append(torch.cat([y, y.new_zeros(T - n, y.shape[1])]))
        finals.append(s)
    assert_tree_close((out, final), (torch.stack(outs), cat_batch(finals)), **TIGHT)


@pytest.mark.parametrize("kw", [{"input_dropout": 0.5}, {"recurrent_dropout": 0.5}])
@pytest.mark.parametrize("name", ["lstm", "gru-cho"])
def test_train_calls_differ(name, kw):
    layer = Recurrent(make_cell(name, FEAT, H), **kw).train()
    x = randn(B, T, FEAT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = layer(x, LENGTHS)[0], layer(x, LENGTHS)[0]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name", FUSABLE)
def test_fused_input_dropout_equals_explicit_with_the_same_mask(name):
    cell = make_cell(name, FEAT, H)
    fast = Recurrent(cell, input_dropout=0.5).train()
    slow = Recurrent(cell, input_dropout=0.5, fused=False).train()
    x = randn(B, T, FEAT)
    torch.manual_seed(3)
    a = fast(x, LENGTHS)
    torch.manual_seed(3)
    b = slow(x, LENGTHS)
    assert_tree_close(a, b, **TIGHT)


# --- recurrent dropout needs the explicit loop ------------------------------------------------------


@pytest.mark.parametrize("name", FUSABLE)
def test_recurrent_dropout_falls_back_in_training_only(name, kernel_calls):
    layer = Recurrent(make_cell(name, FEAT, H), recurrent_dropout=0.3).train()
    with pytest.warns(UserWarning, match="Recurrent: recurrent_dropout runs the explicit loop, not torch's fused "
                                         "kernel, in training"):
        layer(randn(B, T, FEAT), LENGTHS)
    assert kernel_calls == []
    layer.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(randn(B, T, FEAT), LENGTHS)
        assert layer.uses_kernel()
    assert len(kernel_calls) == 1


def test_rnn_recurrent_dropout_falls_back_in_training(kernel_calls, masks):
    rnn = RNN("lstm", FEAT, H, 2, bidirectional=True, recurrent_dropout=0.3).double().train()
    assert not rnn.uses_kernel()
    with pytest.warns(UserWarning, match="recurrent_dropout runs the explicit loop"):
        rnn(randn(B, T, FEAT), LENGTHS)
    assert kernel_calls == []
    assert len(masks) == 4  # one recurrent mask per layer and direction
    rnn.eval()
    assert rnn.uses_kernel()
    rnn(randn(B, T, FEAT), LENGTHS)
    assert len(kernel_calls) == 1


def test_bidirectional_directions_draw_their_own_masks(masks):
    layer = Bidirectional(LSTMCell(FEAT, H, dtype=DT), LSTMCell(FEAT, H, dtype=DT), input_dropout=0.5,
                          recurrent_dropout=0.5).train()
    torch.manual_seed(0)
    with pytest.warns(UserWarning):
        layer(randn(B, T, FEAT), LENGTHS)
    assert [size for size, _ in masks] == [FEAT, H, FEAT, H]
    assert not torch.equal(masks[0][1], masks[2][1])


def test_fused_true_with_recurrent_dropout():
    msg = "Recurrent: recurrent_dropout needs the explicit path, got fused=True; use fused='auto' or False"
    with pytest.raises(ValueError, match=msg):
        Recurrent(LSTMCell(FEAT, H), fused=True, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=msg):
        Bidirectional(LSTMCell(FEAT, H), LSTMCell(FEAT, H), fused=True, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=msg.replace("Recurrent:", "RNN:")):
        RNN("gru", FEAT, H, fused=True, recurrent_dropout=0.2)
