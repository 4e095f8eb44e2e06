"""Recurrent: equals a hand-written loop over the cell for every cell kind, with and without padding;
padding never matters; reverse; time-major; gradcheck; error messages."""
import re

import pytest
import torch

from layer_refs import (CELLS, EXACT, FUSABLE, TIGHT, assert_tree_close, check_gradients, make_cell,
                        output_and_grads, pad_with, randn, random_state, run_by_hand)
from rnnkit.cells import LSTMCell
from rnnkit.layers import Recurrent

B, T, FEAT, H = 4, 6, 2, 3
LENGTHS = [6, 2, 5, 1]
PATHS = ["auto", False]  # fused="auto" runs the kernel for the FUSABLE cells, False the explicit loop


def layer_for(name, fused="auto", **kw):
    return Recurrent(make_cell(name, FEAT, H), fused=fused, **kw)


# --- 1. the layer equals a hand-written loop over the cell ---------------------------------------


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
@pytest.mark.parametrize("name", CELLS)
def test_equals_hand_loop(name, lengths, fused):
    layer = layer_for(name, fused)
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    out, final = layer(x, lengths, state)
    want_out, want_final = run_by_hand(layer.cell, x, lengths, state)
    assert_tree_close(out, want_out, **TIGHT)
    assert_tree_close(final, want_final, **TIGHT)
    assert layer.uses_kernel() == (fused == "auto" and name in FUSABLE)


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", CELLS)
def test_reverse_equals_hand_loop_backwards_within_lengths(name, fused):
    layer = layer_for(name, fused, reverse=True)
    x = randn(B, T, FEAT)
    for lengths in (None, LENGTHS):
        out, final = layer(x, lengths)
        want_out, want_final = run_by_hand(layer.cell, x, lengths, reverse=True)
        assert_tree_close(out, want_out, **TIGHT)
        assert_tree_close(final, want_final, **TIGHT)


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", ["elman-tanh", "lstm", "gru-cho"])
def test_default_state_is_zeros(name, fused):
    layer = layer_for(name, fused)
    x = randn(B, T, FEAT)
    zeros = layer.initial_state(B)
    assert_tree_close(layer(x, LENGTHS), layer(x, LENGTHS, zeros), **EXACT)


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", ["elman-relu", "lstm", "gru", "jordan", "minimal-gru"])
def test_outputs_past_length_are_exactly_zero(name, fused):
    layer = layer_for(name, fused)
    with torch.no_grad():  # a large bias: padded steps would be far from zero if computed
        for p in layer.parameters():
            p.add_(1.0)
    out, _ = layer(randn(B, T, FEAT).abs(), LENGTHS)  # positive: no ReLU output is zero by chance
    for b, n in enumerate(LENGTHS):
        assert torch.count_nonzero(out[b, n:]) == 0
        assert torch.all(out[b, n - 1] != 0)


# --- padding values never reach outputs, states or gradients ------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("fill", [float("nan"), 1e9, float("inf")])
@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", CELLS)
def test_padding_values_change_nothing(name, fused, fill, reverse):
    layer = layer_for(name, fused, reverse=reverse)
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    clean = output_and_grads(layer, pad_with(x, LENGTHS, 0.0), LENGTHS, state)
    dirty = output_and_grads(layer, pad_with(x, LENGTHS, fill), LENGTHS, state)
    assert_tree_close(dirty[:2], clean[:2], **EXACT)
    for k, g in clean[2].items():
        assert torch.isfinite(dirty[2][k]).all(), k
        torch.testing.assert_close(dirty[2][k], g, **EXACT, msg=k)
    for b, n in enumerate(LENGTHS):  # and the input gradient is zero at the padding
        assert torch.count_nonzero(dirty[2]["x"][b, n:]) == 0


# --- layout, dtype, cells with only forward() ---------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", ["elman-tanh", "lstm", "gru", "peephole", "jordan"])
def test_time_major_is_the_transpose(name, fused, reverse):
    bf = layer_for(name, fused, reverse=reverse)
    tm = Recurrent(bf.cell, batch_first=False, fused=fused, reverse=reverse)
    x = randn(B, T, FEAT)
    state = random_state(bf.initial_state(B))
    for lengths in (None, LENGTHS):
        out_bf, s_bf = bf(x, lengths, state)
        out_tm, s_tm = tm(x.transpose(0, 1).contiguous(), lengths, state)
        assert out_tm.shape == (T, B, bf.output_size)
        assert_tree_close(out_tm.transpose(0, 1), out_bf, **TIGHT)
        assert_tree_close(s_tm, s_bf, **TIGHT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fused", PATHS)
def test_shapes_and_dtype(fused, dtype):
    layer = Recurrent(make_cell("lstm", FEAT, H, dtype=dtype), fused=fused)
    out, (h, c) = layer(randn(B, T, FEAT, dtype=dtype), torch.tensor(LENGTHS))
    assert out.shape == (B, T, H) and out.dtype == dtype
    assert h.shape == c.shape == (B, H) and h.dtype == c.dtype == dtype
    assert layer.input_size == FEAT and layer.output_size == H


def test_jordan_output_size_is_the_cells():
    layer = layer_for("jordan")
    out, y = layer(randn(B, T, FEAT), LENGTHS)
    assert layer.output_size == H + 1 and out.shape == (B, T, H + 1) and y.shape == (B, H + 1)


class ForwardOnlyCell(torch.nn.Module):
    """A user's cell with just forward(x, state) and initial_state: no project_input/step."""

    def __init__(self):
        super().__init__()
        self.input_size, self.output_size = FEAT, H
        self.inner = make_cell("gru-cho", FEAT, H)

    def initial_state(self, batch_size, **kw):
        return self.inner.initial_state(batch_size, **kw)

    def forward(self, x, state):
        y, s = self.inner(x, state)
        return 2 * y, s


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_cell_with_only_forward(lengths):
    cell = ForwardOnlyCell()
    layer = Recurrent(cell)
    assert not layer.uses_kernel()
    x = randn(B, T, FEAT)
    out, final = layer(x, lengths)
    assert_tree_close((out, final), run_by_hand(cell, x, lengths), **TIGHT)
    with pytest.raises(TypeError, match="Recurrent: recurrent_dropout needs a cell with project_input"):
        Recurrent(cell, recurrent_dropout=0.1)


def test_not_a_cell():
    with pytest.raises(TypeError, match="Recurrent: expected a cell .*Linear has no initial_state"):
        Recurrent(torch.nn.Linear(2, 3))


# --- gradcheck ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, fused", [(n, False) for n in CELLS] + [(n, "auto") for n in FUSABLE])
def test_gradcheck(name, fused):
    layer = Recurrent(make_cell(name, 2, 3), fused=fused)
    x = randn(2, 3, 2)
    check_gradients(layer, x, [3, 2], random_state(layer.initial_state(2)))
    check_gradients(Recurrent(layer.cell, fused=fused, reverse=True), x, [2, 3])


# --- bad input: ValueError/TypeError naming the module, the expected and the received --------------


@pytest.fixture
def lstm_layer():
    return Recurrent(LSTMCell(FEAT, H))  # float32


def test_bad_input_rank(lstm_layer):
    for x in (torch.randn(B, FEAT), torch.randn(1, B, T, FEAT)):
        msg = f"Recurrent: expected input (B, T, {FEAT}), got {tuple(x.shape)}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            lstm_layer(x)
    tm = Recurrent(LSTMCell(FEAT, H), batch_first=False)
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected input (T, B, {FEAT}), got (3, 4)")):
        tm(torch.randn(3, 4))


def test_bad_feature_size(lstm_layer):
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected input (B, T, {FEAT}), got ({B}, {T}, 5)")):
        lstm_layer(torch.randn(B, T, 5))


def test_integer_input(lstm_layer):
    with pytest.raises(TypeError, match="Recurrent: expected input to be a floating-point tensor, "
                                        "got dtype torch.int64"):
        lstm_layer(torch.ones(B, T, FEAT, dtype=torch.long))
    with pytest.raises(TypeError, match="Recurrent: expected input to be a torch.Tensor, got list"):
        lstm_layer([[[0.0] * FEAT]])


@pytest.mark.parametrize("fused", PATHS)
def test_float64_input_into_float32_module(fused):
    layer = Recurrent(LSTMCell(FEAT, H), fused=fused)
    with pytest.raises(TypeError, match="Recurrent: expected input of dtype torch.float32 like the parameters, "
                                        "got torch.float64"):
        layer(torch.randn(B, T, FEAT, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(0, T, FEAT), (B, 0, FEAT)])
def test_empty_batch_or_no_steps(lstm_layer, shape):
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected at least one sequence and one time step, "
                                                   f"got input {shape}")):
        lstm_layer(torch.randn(*shape))


@pytest.mark.parametrize("bad", ["yes", None, "True", 2])
def test_bad_fused_flag(bad):
    msg = f"Recurrent: expected fused to be 'auto', True or False, got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        Recurrent(LSTMCell(FEAT, H), fused=bad)


@pytest.mark.parametrize("bad", [0, 1])
def test_fused_flag_0_or_1_is_rejected(bad):
    msg = f"Recurrent: expected fused to be 'auto', True or False, got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        Recurrent(LSTMCell(FEAT, H), fused=bad)


@pytest.mark.parametrize("name", [n for n in CELLS if n not in FUSABLE])
def test_fused_true_without_a_kernel(name):
    with pytest.raises(ValueError, match="Recurrent: fused=True needs a cell torch has a kernel for"):
        Recurrent(make_cell(name), fused=True)


@pytest.mark.parametrize("name", FUSABLE)
def test_fused_true_with_a_kernel(name):
    assert Recurrent(make_cell(name), fused=True).uses_kernel()


@pytest.mark.parametrize("arg", ["input_dropout", "recurrent_dropout"])
@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_bad_dropout(arg, p):
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected {arg} in [0, 1), got {p}")):
        Recurrent(LSTMCell(FEAT, H), **{arg: p})
    with pytest.raises(TypeError, match=f"Recurrent: expected {arg} to be a float in"):
        Recurrent(LSTMCell(FEAT, H), **{arg: "0.1"})
