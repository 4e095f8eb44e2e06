"""Bidirectional: the forward direction is the usual hand loop, the backward one reverses each sequence
within its own length by hand (Python slicing), runs the cell and flips back; merges; final states of
both directions; one kernel call when both cells share a kernel; gradcheck; error messages."""
import re

import pytest
import torch

from layer_refs import (CELLS, EXACT, FUSABLE, TIGHT, assert_tree_close, bidirectional_by_hand, check_gradients,
                        make_cell, output_and_grads, pad_with, randn, random_state)
from rnnkit.cells import ElmanCell, LSTMCell
from rnnkit.layers import Bidirectional, Recurrent
import rnnkit.layers.fused as fused_module

B, T, FEAT, H = 4, 5, 2, 3
LENGTHS = [5, 1, 3, 4]
PATHS = ["auto", False]


def pair(name, fused="auto", **kw):
    return Bidirectional(make_cell(name, FEAT, H, seed=0), make_cell(name, FEAT, H, seed=1), fused=fused, **kw)


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
@pytest.mark.parametrize("name", CELLS)
def test_equals_hand_loops_both_ways(name, lengths, fused):
    layer = pair(name, fused, merge="none")
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    (out_f, out_b), (s_f, s_b) = layer(x, lengths, state)
    (want_f, want_b), (want_sf, want_sb) = bidirectional_by_hand(
        layer.forward_layer.cell, layer.backward_layer.cell, x, lengths, state)
    assert_tree_close(out_f, want_f, **TIGHT)
    assert_tree_close(out_b, want_b, **TIGHT)
    assert_tree_close(s_f, want_sf, **TIGHT)
    assert_tree_close(s_b, want_sb, **TIGHT)  # the state after reading each sequence's FIRST step


def test_backward_direction_by_hand_differs_from_forward():
    """Guard for the test above: with lengths, reversing the whole padded T would give other numbers."""
    layer = pair("elman-tanh", merge="none")
    x = randn(B, T, FEAT)
    (_, out_b), _ = layer(x, LENGTHS)
    cell = layer.backward_layer.cell
    naive = Recurrent(cell, fused=False)(x.flip(1))[0].flip(1)  # padding read first: wrong
    assert not torch.allclose(out_b[1], naive[1])


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "none"])
def test_merges(merge, fused):
    layer = pair("lstm", fused, merge=merge)
    x = randn(B, T, FEAT)
    out, state = layer(x, LENGTHS)
    (f, b), want_state = bidirectional_by_hand(layer.forward_layer.cell, layer.backward_layer.cell, x, LENGTHS)
    want = {"concat": torch.cat([f, b], dim=-1), "sum": f + b, "mean": (f + b) / 2, "none": (f, b)}[merge]
    assert_tree_close(out, want, **TIGHT)
    assert_tree_close(state, want_state, **TIGHT)
    assert layer.output_size == (2 * H if merge == "concat" else H)
    if merge != "none":
        assert out.shape == (B, T, layer.output_size)


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", ["lstm", "jordan"])
def test_concat_of_different_sizes(name, fused):
    fwd, bwd = make_cell(name, FEAT, H), make_cell(name, FEAT, H + 2, seed=1)
    layer = Bidirectional(fwd, bwd, fused=fused)
    x = randn(B, T, FEAT)
    out, state = layer(x, LENGTHS)
    (f, b), want_state = bidirectional_by_hand(fwd, bwd, x, LENGTHS)
    assert layer.output_size == fwd.output_size + bwd.output_size == out.shape[-1]
    assert_tree_close((out, state), (torch.cat([f, b], -1), want_state), **TIGHT)


@pytest.mark.parametrize("fused", PATHS)
def test_built_from_layers_equals_built_from_cells(fused):
    from_cells = pair("gru", fused)
    fwd, bwd = from_cells.forward_layer.cell, from_cells.backward_layer.cell
    from_layers = Bidirectional(Recurrent(fwd, fused=fused), Recurrent(bwd, reverse=True, fused=fused))
    x = randn(B, T, FEAT)
    assert_tree_close(from_layers(x, LENGTHS), from_cells(x, LENGTHS), **EXACT)


@pytest.mark.parametrize("name", FUSABLE)
def test_one_bidirectional_kernel_call_when_cells_share_a_kernel(name, monkeypatch):
    calls = []
    real = fused_module.run
    monkeypatch.setattr(fused_module, "run", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    layer = pair(name)
    layer(randn(B, T, FEAT), LENGTHS)
    assert [c["bidirectional"] for c in calls] == [True]
    calls.clear()
    pair(name, fused=False)(randn(B, T, FEAT), LENGTHS)
    assert calls == []
    # different hidden sizes: no common kernel, so one single-direction kernel call per direction
    Bidirectional(make_cell(name, FEAT, H), make_cell(name, FEAT, H + 1))(randn(B, T, FEAT), LENGTHS)
    assert [c["bidirectional"] for c in calls] == [False, False]


@pytest.mark.parametrize("fill", [float("nan"), 1e9])
@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("name", ["lstm", "gru", "gru-cho"])
def test_padding_values_change_nothing(name, fused, fill):
    layer = pair(name, fused)
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    clean = output_and_grads(layer, pad_with(x, LENGTHS, 0.0), LENGTHS, state)
    dirty = output_and_grads(layer, pad_with(x, LENGTHS, fill), LENGTHS, state)
    assert_tree_close(dirty[:2], clean[:2], **EXACT)
    assert_tree_close(list(dirty[2].values()), list(clean[2].values()), **EXACT)


@pytest.mark.parametrize("fused", PATHS)
def test_time_major_is_the_transpose(fused):
    bf = pair("lstm", fused)
    tm = Bidirectional(bf.forward_layer.cell, bf.backward_layer.cell, batch_first=False, fused=fused)
    x = randn(B, T, FEAT)
    for lengths in (None, LENGTHS):
        out_bf, s_bf = bf(x, lengths)
        out_tm, s_tm = tm(x.transpose(0, 1), lengths)
        assert_tree_close((out_tm.transpose(0, 1), s_tm), (out_bf, s_bf), **TIGHT)


@pytest.mark.parametrize("name, fused", [("lstm", "auto"), ("lstm", False), ("gru", "auto"), ("gru-cho", False),
                                         ("elman-relu", "auto"), ("minimal-gru", False)])
def test_gradcheck(name, fused):
    layer = Bidirectional(make_cell(name, 2, 3), make_cell(name, 2, 3, seed=1), fused=fused)
    check_gradients(layer, randn(2, 3, 2), [2, 3], random_state(layer.initial_state(2)), fast_mode=True)


# --- bad input -----------------------------------------------------------------------------------


def test_unknown_merge():
    with pytest.raises(ValueError, match=re.escape("Bidirectional: expected merge in ('concat', 'sum', 'mean', "
                                                   "'none'), got 'avg'")):
        Bidirectional(LSTMCell(FEAT, H), LSTMCell(FEAT, H), merge="avg")


@pytest.mark.parametrize("merge", ["sum", "mean"])
def test_sum_of_different_output_sizes(merge):
    with pytest.raises(ValueError, match=f"Bidirectional: merge='{merge}' needs equal output sizes, got 3 and 4"):
        Bidirectional(ElmanCell(FEAT, 3), ElmanCell(FEAT, 4), merge=merge)


def test_different_input_sizes():
    with pytest.raises(ValueError, match="Bidirectional: the two layers must read the same input size, got 2 and 5"):
        Bidirectional(ElmanCell(2, 3), ElmanCell(5, 3))


def test_backward_layer_must_be_reversed():
    with pytest.raises(ValueError, match="Bidirectional: expected a forward layer with reverse=False and a backward "
                                         "layer with reverse=True, got False and False"):
        Bidirectional(Recurrent(ElmanCell(2, 3)), Recurrent(ElmanCell(2, 3)))


def test_layer_options_for_layers():
    with pytest.raises(TypeError, match=re.escape("Bidirectional: layer options ['fused'] apply to cells")):
        Bidirectional(Recurrent(ElmanCell(2, 3)), Recurrent(ElmanCell(2, 3), reverse=True), fused=False)


def test_batch_first_must_agree():
    with pytest.raises(ValueError, match="Bidirectional: the two layers must agree on batch_first"):
        Bidirectional(Recurrent(ElmanCell(2, 3)), Recurrent(ElmanCell(2, 3), reverse=True, batch_first=False))


@pytest.mark.parametrize("fused", PATHS)
@pytest.mark.parametrize("bad", ["one tensor", "triple", "not a state"])
def test_state_not_a_pair(bad, fused):
    layer = Bidirectional(ElmanCell(FEAT, H), ElmanCell(FEAT, H), fused=fused)
    h = torch.zeros(B, H)
    state = {"one tensor": h, "triple": (h, h, h), "not a state": "h"}[bad]
    with pytest.raises(ValueError, match=r"Bidirectional: expected state .+, got [\w(]"):
        layer(torch.randn(B, T, FEAT), None, state)


@pytest.mark.parametrize("fused", PATHS)
def test_bad_input_rank(fused):
    layer = Bidirectional(LSTMCell(FEAT, H), LSTMCell(FEAT, H), fused=fused)
    with pytest.raises(ValueError, match=re.escape(f"expected input (B, T, {FEAT}), got ({B}, {FEAT})")):
        layer(torch.randn(B, FEAT))


@pytest.mark.parametrize("fused", ["auto", False])
def test_float64_input_into_float32_module(fused):
    layer = Bidirectional(LSTMCell(FEAT, H), LSTMCell(FEAT, H), fused=fused)
    with pytest.raises(TypeError, match="expected input of dtype torch.float32 like the parameters, got torch.float64"):
        layer(torch.randn(B, T, FEAT, dtype=torch.float64))
