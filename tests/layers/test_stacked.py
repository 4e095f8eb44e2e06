"""Stacked: equals running its layers one after another by hand; dropout only between layers and only
in training; one state per layer; error messages."""
import re

import pytest
import torch
import torch.nn.functional as F

from layer_refs import (DT, EXACT, TIGHT, assert_tree_close, make_cell, randn, random_state, stack_by_hand)
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell
from rnnkit.layers import Bidirectional, Recurrent, Stacked

B, T, FEAT = 3, 5, 2
LENGTHS = [5, 2, 4]


def three_layers(fused="auto"):
    """LSTM 2->3, bidirectional GRU 3->2x4, Jordan 8->(H=3, O=4): mixed cells, sizes and state structures."""
    return [Recurrent(make_cell("lstm", FEAT, 3), fused=fused),
            Bidirectional(make_cell("gru", 3, 4, seed=1), make_cell("gru", 3, 4, seed=2), fused=fused),
            Recurrent(make_cell("jordan", 8, 3, seed=3), fused=fused)]


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_equals_layers_one_after_another(lengths, fused):
    layers = three_layers(fused)
    stack = Stacked(layers)
    x = randn(B, T, FEAT)
    state = random_state(stack.initial_state(B))
    out, states = stack(x, lengths, state)

    h, want_states = x, []
    for layer, s in zip(layers, state):  # by hand, with the layers themselves
        h, s = layer(h, lengths, s)
        want_states.append(s)
    assert_tree_close(out, h, **EXACT)
    assert_tree_close(states, want_states, **EXACT)
    # and against the hand loops over the cells
    assert_tree_close((out, states), stack_by_hand(layers, x, lengths, state), **TIGHT)


def test_per_layer_states_list():
    stack = Stacked(three_layers())
    out, states = stack(randn(B, T, FEAT), LENGTHS)
    assert isinstance(states, list) and len(states) == 3
    (h, c), ((g_f), (g_b)), y = states
    assert h.shape == c.shape == (B, 3)
    assert g_f.shape == g_b.shape == (B, 4)
    assert y.shape == (B, 4)  # Jordan carries its output, O = H + 1
    assert out.shape == (B, T, 4) and stack.output_size == 4 and stack.input_size == FEAT
    assert [type(s) for s in stack.initial_state(B)] == [tuple, tuple, torch.Tensor]


def test_eval_dropout_is_deterministic_and_does_nothing():
    layers = three_layers()
    with_dropout, without = Stacked(layers, dropout=0.5).eval(), Stacked(layers).eval()
    x = randn(B, T, FEAT)
    first = with_dropout(x, LENGTHS)
    assert_tree_close(with_dropout(x, LENGTHS), first, **EXACT)
    assert_tree_close(first, without(x, LENGTHS), **EXACT)


def test_train_dropout_between_layers_only():
    layers = three_layers()
    stack = Stacked(layers, dropout=0.5).train()
    x = randn(B, T, FEAT)
    torch.manual_seed(123)
    out, states = stack(x, LENGTHS)

    torch.manual_seed(123)  # the same random stream, by hand: dropout after layers 0 and 1, not after 2
    h0, s0 = layers[0](x, LENGTHS)
    h1, s1 = layers[1](F.dropout(h0, 0.5, True), LENGTHS)
    h2, s2 = layers[2](F.dropout(h1, 0.5, True), LENGTHS)
    assert_tree_close((out, states), (h2, [s0, s1, s2]), **EXACT)

    out_again, states_again = stack(x, LENGTHS)  # a new draw: different numbers
    assert not torch.equal(out_again, out)
    assert_tree_close(states_again[0], s0, **EXACT)  # the first layer reads x itself: no dropout
    for b, n in enumerate(LENGTHS):  # padding still zero
        assert torch.count_nonzero(out_again[b, n:]) == 0


def test_single_layer_never_drops_out():
    layer = Recurrent(make_cell("gru", FEAT, 3))
    stack = Stacked([layer], dropout=0.9).train()
    x = randn(B, T, FEAT)
    assert_tree_close(stack(x, LENGTHS), (layer(x, LENGTHS)[0], [layer(x, LENGTHS)[1]]), **EXACT)


def test_time_major():
    layers = three_layers()
    tm = Stacked([Recurrent(layers[0].cell, batch_first=False),
                  Bidirectional(layers[1].forward_layer.cell, layers[1].backward_layer.cell, batch_first=False),
                  Recurrent(layers[2].cell, batch_first=False)])
    x = randn(B, T, FEAT)
    out_bf, s_bf = Stacked(layers)(x, LENGTHS)
    out_tm, s_tm = tm(x.transpose(0, 1), LENGTHS)
    assert_tree_close((out_tm.transpose(0, 1), s_tm), (out_bf, s_bf), **TIGHT)


# --- bad input -----------------------------------------------------------------------------------


def test_mismatched_sizes():
    with pytest.raises(ValueError, match="Stacked: layer 0 outputs 3 features but layer 1 expects 4"):
        Stacked([Recurrent(LSTMCell(2, 3)), Recurrent(LSTMCell(4, 5))])
    with pytest.raises(ValueError, match="Stacked: layer 1 outputs 6 features but layer 2 expects 3"):
        Stacked([Recurrent(LSTMCell(2, 3)), Bidirectional(GRUCell(3, 3), GRUCell(3, 3)), Recurrent(LSTMCell(3, 3))])


def test_no_layers():
    with pytest.raises(ValueError, match="Stacked: expected at least one layer, got none"):
        Stacked([])


def test_bidirectional_merge_none_below_another_layer():
    with pytest.raises(ValueError, match="Stacked: layer 0 is Bidirectional with merge='none'"):
        Stacked([Bidirectional(ElmanCell(2, 3), ElmanCell(2, 3), merge="none"), Recurrent(ElmanCell(3, 3))])


def test_batch_first_must_agree():
    with pytest.raises(ValueError, match="Stacked: all layers must agree on batch_first"):
        Stacked([Recurrent(ElmanCell(2, 3)), Recurrent(ElmanCell(3, 3), batch_first=False)])


@pytest.mark.parametrize("p", [1.0, 2.0, -0.5])
def test_bad_dropout(p):
    with pytest.raises(ValueError, match=re.escape(f"Stacked: expected dropout in [0, 1), got {p}")):
        Stacked([Recurrent(ElmanCell(2, 3))], dropout=p)


@pytest.mark.parametrize("n_states, got", [(2, "2 items"), (4, "4 items")])
def test_state_list_of_wrong_length(n_states, got):
    stack = Stacked(three_layers())
    state = stack.initial_state(B)
    state = state[:n_states] if n_states < 3 else state + [state[0]]
    with pytest.raises(ValueError, match=f"Stacked: expected state as a list of 3 per-layer states, got {got}"):
        stack(randn(B, T, FEAT), LENGTHS, state)


def test_state_not_a_list():
    stack = Stacked([Recurrent(ElmanCell(FEAT, 3, dtype=DT))])
    with pytest.raises(ValueError, match="Stacked: expected state as a list of 1 per-layer states, got Tensor"):
        stack(randn(B, T, FEAT), None, torch.zeros(B, 3, dtype=DT))
