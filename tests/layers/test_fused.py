"""The fused path (torch's kernels on the cells' parameters) equals the explicit loop: outputs, final
states and gradients w.r.t. input, initial state and every parameter; a spy on fused.run proves which
path ran; kernel selection."""
import pytest
import torch

from layer_refs import (CELLS, F32, FUSABLE, RNN_FUSABLE, TIGHT, assert_tree_close, make_cell, output_and_grads,
                        randn, random_state, twins)
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell
from rnnkit.layers import RNN, Bidirectional, Recurrent
import rnnkit.layers.fused as fused_module
from rnnkit.layers.fused import common_mode, kernel_mode

B, T, FEAT, H = 4, 6, 3, 4
LENGTH_CASES = {"random": [6, 2, 5, 1], "short": [3, 1, 4, 2], "full": [6, 6, 6, 6], "none": None}
TOL = {torch.float64: TIGHT, torch.float32: F32}


@pytest.fixture
def kernel_calls(monkeypatch):
    """Every call to rnnkit.layers.fused.run, by its keyword arguments."""
    calls = []
    real = fused_module.run
    monkeypatch.setattr(fused_module, "run", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    return calls


def assert_same_run(fast, slow, x, lengths, state, dtype):
    """Outputs, final states and all gradients of the two twins agree."""
    out_f, s_f, g_f = output_and_grads(fast, x, lengths, state)
    out_s, s_s, g_s = output_and_grads(slow, x, lengths, state)
    tol = TOL[dtype]
    assert_tree_close(out_f, out_s, **tol)
    assert_tree_close(s_f, s_s, **tol)
    assert g_f.keys() == g_s.keys() and len(g_f) > 2
    for k in g_f:
        torch.testing.assert_close(g_f[k], g_s[k], **tol, msg=k)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("lengths", LENGTH_CASES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", RNN_FUSABLE)
def test_rnn_fused_equals_explicit(kind, num_layers, bidirectional, lengths, dtype, kernel_calls):
    lengths = LENGTH_CASES[lengths]

    def build(fused):
        name = "rnn" if kind == "rnn-relu" else kind
        return RNN(name, FEAT, H, num_layers, bidirectional=bidirectional, fused=fused, **RNN_FUSABLE[kind]).to(dtype)

    fast, slow = twins(build)
    assert fast.uses_kernel() and not slow.uses_kernel()
    x = randn(B, T, FEAT, dtype=dtype)
    state = random_state(fast.initial_state(B))
    assert_same_run(fast, slow, x, lengths, state, dtype)
    # fast ran one kernel call over all layers and directions (forward only; backward is autograd's)
    assert [(c["num_layers"], c["bidirectional"]) for c in kernel_calls] == [(num_layers, bidirectional)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("lengths", LENGTH_CASES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", FUSABLE)
def test_recurrent_fused_equals_explicit(name, reverse, lengths, dtype, kernel_calls):
    lengths = LENGTH_CASES[lengths]
    fast, slow = twins(lambda fused: Recurrent(make_cell(name, FEAT, H, dtype=dtype), reverse=reverse, fused=fused))
    assert fast.uses_kernel() and not slow.uses_kernel()
    assert_same_run(fast, slow, randn(B, T, FEAT, dtype=dtype), lengths,
                    random_state(fast.initial_state(B)), dtype)
    assert [c["bidirectional"] for c in kernel_calls] == [False]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("lengths", LENGTH_CASES)
@pytest.mark.parametrize("name", FUSABLE)
def test_bidirectional_fused_equals_explicit(name, lengths, dtype, kernel_calls):
    lengths = LENGTH_CASES[lengths]
    fast, slow = twins(lambda fused: Bidirectional(make_cell(name, FEAT, H, dtype=dtype),
                                                   make_cell(name, FEAT, H, dtype=dtype, seed=1), fused=fused))
    assert_same_run(fast, slow, randn(B, T, FEAT, dtype=dtype), lengths,
                    random_state(fast.initial_state(B)), dtype)
    assert [c["bidirectional"] for c in kernel_calls] == [True]


# --- which path runs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CELLS)
def test_recurrent_uses_kernel_exactly_for_kernel_cells(name, kernel_calls):
    auto, explicit = Recurrent(make_cell(name), fused="auto"), Recurrent(make_cell(name), fused=False)
    assert auto.uses_kernel() == (name in FUSABLE)
    assert not explicit.uses_kernel()
    auto(randn(2, 3, 2), [3, 1])
    explicit(randn(2, 3, 2), [3, 1])
    assert len(kernel_calls) == (1 if name in FUSABLE else 0)


def test_kernel_modes():
    assert kernel_mode(ElmanCell(2, 3)) == "RNN_TANH"
    assert kernel_mode(ElmanCell(2, 3, activation="relu")) == "RNN_RELU"
    assert kernel_mode(ElmanCell(2, 3, activation="sigmoid")) is None
    assert kernel_mode(ElmanCell(2, 3, activation=torch.tanh)) is None  # a callable: we cannot know
    assert kernel_mode(LSTMCell(2, 3)) == "LSTM"
    assert kernel_mode(LSTMCell(2, 3, peephole=True)) is None
    assert kernel_mode(GRUCell(2, 3, reset_after=True)) == "GRU"
    assert kernel_mode(GRUCell(2, 3)) is None
    for name in CELLS:
        assert (kernel_mode(make_cell(name)) is not None) == (name in FUSABLE)


def test_subclass_never_takes_the_kernel():
    class MyLSTM(LSTMCell):  # may change the step: the kernel would compute something else
        def step(self, xp, state, recurrent_mask=None):
            h, (_, c) = super().step(xp, state, recurrent_mask)
            return 2 * h, (2 * h, c)

    torch.manual_seed(0)
    cell = MyLSTM(2, 3).double()
    assert kernel_mode(cell) is None and not Recurrent(cell).uses_kernel()
    out, _ = Recurrent(cell)(randn(2, 3, 2))
    base = LSTMCell(2, 3).double()
    base.load_state_dict(cell.state_dict())
    assert not torch.allclose(out, Recurrent(base)(randn(2, 3, 2))[0])


def test_common_mode():
    assert common_mode([LSTMCell(2, 3), LSTMCell(3, 3)]) == "LSTM"
    assert common_mode([LSTMCell(2, 3), LSTMCell(2, 4)]) is None  # hidden sizes differ
    assert common_mode([LSTMCell(2, 3), LSTMCell(2, 3, bias=False)]) is None  # bias settings differ
    assert common_mode([LSTMCell(2, 3), GRUCell(2, 3, reset_after=True)]) is None
    assert common_mode([ElmanCell(2, 3), ElmanCell(2, 3, activation="relu")]) is None
    assert common_mode([LSTMCell(2, 3, peephole=True)] * 2) is None


@pytest.mark.parametrize("lengths", [None, [3, 1]])
@pytest.mark.parametrize("name", ["lstm", "gru", "elman-tanh"])
def test_no_bias_cells_fused_equals_explicit(name, lengths):
    def build(fused):
        torch.manual_seed(0)
        return RNN({"elman-tanh": "rnn"}.get(name, name), 2, 3, 2, bidirectional=True, fused=fused,
                   bias=False).double()

    fast, slow = twins(build)
    assert fast.uses_kernel() and not slow.uses_kernel()
    assert all(c.bias_ih is None for c in fast.cells)
    assert_same_run(fast, slow, randn(2, 3, 2), lengths, None, torch.float64)


def test_rnn_fused_true_runs_the_kernel_and_false_never(kernel_calls):
    RNN("gru", 2, 3, 2, fused=True)(torch.randn(2, 3, 2))
    assert len(kernel_calls) == 1
    RNN("gru", 2, 3, 2, fused=False)(torch.randn(2, 3, 2))
    assert len(kernel_calls) == 1
    RNN("gru", 2, 3, 2, input_dropout=0.1).eval()(torch.randn(2, 3, 2))  # input dropout: layer by layer,
    assert len(kernel_calls) == 3  # each Recurrent still on its kernel
