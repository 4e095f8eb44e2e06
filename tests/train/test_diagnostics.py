"""Gradient-flow diagnostics: ||dL/dh_t|| against hand computations, vanishing in Elman vs LSTM, the plot."""
import pytest
import torch

import rnnkit as rk
from rnnkit.train import hidden_gradient_norms
from rnnkit.train.plots import plot_gradient_flow

F64 = torch.float64


def make_cell(kind, H=3, **kw):
    torch.manual_seed(0)
    make = {"elman": rk.cells.ElmanCell, "lstm": rk.cells.LSTMCell, "gru": rk.cells.GRUCell}[kind]
    return make(2, H, dtype=F64, **kw)


def weighted_loss(B, T, H):
    w = torch.randn(B, T, H, dtype=F64, generator=torch.Generator().manual_seed(1))
    return lambda out: (w * out).sum() + (out[:, -1] ** 2).sum()  # every step, and a nonlinear last one


def run(cell, x, bump=None):
    """The cell over x (B, T, F); bump(t, h) may change h_t before it is used. Returns the outputs and h_t."""
    state, outs, hs = None, [], []
    for t in range(x.shape[1]):
        _, state = cell(x[:, t], state)
        h = state if isinstance(state, torch.Tensor) else state[0]
        if bump is not None:
            h = bump(t, h)
            state = h if isinstance(state, torch.Tensor) else (h, *state[1:])
        hs.append(h)
        outs.append(h)  # y_t = h_t for these cells
    return torch.stack(outs, 1), hs


@pytest.mark.parametrize("kind", ["elman", "lstm", "gru"])
def test_norms_equal_autograd_of_each_state(kind):
    B, T = 2, 5
    cell, x = make_cell(kind), torch.randn(B, T, 2, dtype=F64)
    loss_fn = weighted_loss(B, T, 3)
    got = hidden_gradient_norms(cell, x, loss_fn)
    out, hs = run(cell, x)
    grads = torch.autograd.grad(loss_fn(out), hs)  # total derivatives dL/dh_t through the recurrence
    torch.testing.assert_close(got, torch.stack([g.norm() for g in grads]), rtol=1e-12, atol=0)
    direct = torch.autograd.grad(loss_fn(out), out)[0]  # the direct path only: must differ
    assert not torch.allclose(got[:-1], direct[:, :-1].flatten(2).norm(dim=(0, 2)))


def test_elman_norms_equal_finite_differences():
    B, T, H = 1, 4, 3
    cell, x = make_cell("elman", H), torch.randn(B, T, 2, dtype=F64)
    loss_fn, eps = weighted_loss(B, T, H), 1e-6
    got = hidden_gradient_norms(cell, x, loss_fn)
    expected = []
    with torch.no_grad():
        for t in range(T):
            g = torch.zeros(H, dtype=F64)
            for i in range(H):
                e = torch.zeros(B, H, dtype=F64)
                e[0, i] = eps
                up = loss_fn(run(cell, x, lambda s, h: h + e if s == t else h)[0])
                down = loss_fn(run(cell, x, lambda s, h: h - e if s == t else h)[0])
                g[i] = (up - down) / (2 * eps)
            expected.append(g.norm())
    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-6, atol=1e-9)


def test_elman_vanishes_lstm_with_forget_bias_does_not():
    T = 60
    x = torch.randn(1, T, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    last_only = lambda out: out[:, -1].sum()
    elman = make_cell("elman", 8)
    with torch.no_grad():
        for p in elman.parameters():
            p.mul_(0.5)  # small weights: |W_h tanh'| < 1
    lstm = make_cell("lstm", 8, forget_bias=3.0)
    e, l = hidden_gradient_norms(elman, x, last_only), hidden_gradient_norms(lstm, x, last_only)
    assert e.shape == l.shape == (T,)
    assert e[-1] == pytest.approx(8 ** 0.5) and l[-1] == pytest.approx(8 ** 0.5)  # d(sum h_T)/dh_T = ones
    assert e[0] < 1e-10 * e[-1]  # orders of magnitude below
    assert e[0] < e[T // 2] < e[-1]
    assert l[0] / l[-1] > 1e6 * (e[0] / e[-1])  # the cell path keeps the gradient alive
    assert l[0] / l[-1] > 1e-4


def test_plot_gradient_flow_writes_a_png(tmp_path):
    path = tmp_path / "flow.png"
    plot_gradient_flow({"elman": [1e-8, 1e-4, 1.0], "lstm": [0.1, 0.5, 1.0]}, path, title="T = 3")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name != "flow.png"]  # no temporary file left
