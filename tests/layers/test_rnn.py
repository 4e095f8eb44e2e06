"""RNN: the convenience stack equals hand loops over its cells for every kind, equals torch.nn.RNN/LSTM/GRU
with copied weights, runs one fused kernel call when it can; dropout; gradcheck; error messages."""
import re

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from layer_refs import (DT, EXACT, PAIRED_STATE, RNN_FUSABLE, TIGHT, assert_tree_close, check_gradients, output_and_grads, pad_with,
                        randn, random_state, stack_by_hand)
from rnnkit.layers import KINDS, RNN, Bidirectional, Recurrent
import rnnkit.layers.fused as fused_module

B, T, FEAT, H = 3, 5, 2, 3
LENGTHS = [5, 1, 3]


def build(kind, num_layers=2, bidirectional=True, fused="auto", **kw):
    torch.manual_seed(0)
    cell_kwargs = RNN_FUSABLE.get(kind, {}) if kind == "rnn-relu" else {}
    kind = "rnn" if kind == "rnn-relu" else kind
    return RNN(kind, FEAT, H, num_layers, bidirectional=bidirectional, fused=fused, **cell_kwargs, **kw).double()


def test_kinds():
    assert set(KINDS) == {"rnn", "jordan", "lstm", "peephole", "gru", "gru-cho", "minimal-gru", "layer-norm-lstm",
                          "min-gru", "min-lstm"}


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_equals_hand_loops_over_its_cells(kind, bidirectional, fused):
    rnn = build(kind, 2, bidirectional, fused)
    x = randn(B, T, FEAT)
    state = random_state(rnn.initial_state(B))
    for lengths in (None, LENGTHS):
        out, states = rnn(x, lengths, state)
        assert_tree_close((out, states), stack_by_hand(rnn.stack.layers, x, lengths, state), **TIGHT)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_shapes_and_structure(kind, num_layers, bidirectional):
    rnn = build(kind, num_layers, bidirectional)
    D = 2 if bidirectional else 1
    out, states = rnn(randn(B, T, FEAT), LENGTHS)
    assert out.shape == (B, T, D * H) and rnn.output_size == D * H and rnn.hidden_size == H
    assert isinstance(states, list) and len(states) == num_layers
    for s in states:
        directions = s if bidirectional else (s,)
        assert len(directions) == D
        for d in directions:
            parts = d if kind in PAIRED_STATE else (d,)
            assert len(parts) == (2 if kind in PAIRED_STATE else 1)
            assert all(isinstance(p, torch.Tensor) and p.shape == (B, H) for p in parts)
    assert len(rnn.cells) == num_layers * D
    cls = KINDS[kind][0]
    assert all(type(c) is cls for c in rnn.cells)
    layer0 = rnn.stack.layers[0]
    assert isinstance(layer0, Bidirectional if bidirectional else Recurrent)


# --- parity with torch.nn with copied weights -------------------------------------------------------


def torch_twin(rnn, kind):
    cls = {"rnn": torch.nn.RNN, "rnn-relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    kw = {"nonlinearity": "relu"} if kind == "rnn-relu" else {}
    ref = cls(FEAT, H, rnn.num_layers, bidirectional=rnn.bidirectional, batch_first=True, **kw).double()
    D = 2 if rnn.bidirectional else 1
    with torch.no_grad():
        for i, cell in enumerate(rnn.cells):
            sfx = f"_l{i // D}" + ("_reverse" if i % D else "")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, name + sfx).copy_(getattr(cell, name))
    return ref


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", RNN_FUSABLE)
def test_equals_torch_nn_with_copied_weights(kind, bidirectional, fused):
    rnn = build(kind, 2, bidirectional, fused)
    ref = torch_twin(rnn, kind)
    x = randn(B, T, FEAT)
    out, states = rnn(x, LENGTHS)
    ref_out, ref_hn = ref(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))
    ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=T)
    torch.testing.assert_close(out, ref_out, **TIGHT)
    per_cell = [d for s in states for d in (s if bidirectional else (s,))]
    if kind == "lstm":
        torch.testing.assert_close(torch.stack([h for h, _ in per_cell]), ref_hn[0], **TIGHT)
        torch.testing.assert_close(torch.stack([c for _, c in per_cell]), ref_hn[1], **TIGHT)
    else:
        torch.testing.assert_close(torch.stack(per_cell), ref_hn, **TIGHT)


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("kind", ["lstm", "gru", "peephole"])
def test_padding_values_change_nothing(kind, fused):
    rnn = build(kind, 2, True, fused)
    x = randn(B, T, FEAT)
    state = random_state(rnn.initial_state(B))
    clean = output_and_grads(rnn, pad_with(x, LENGTHS, 0.0), LENGTHS, state)
    dirty = output_and_grads(rnn, pad_with(x, LENGTHS, float("nan")), LENGTHS, state)
    assert_tree_close(dirty[:2], clean[:2], **EXACT)
    assert_tree_close(list(dirty[2].values()), list(clean[2].values()), **EXACT)


# --- the fused path is one kernel call over all layers and directions -----------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_kernel_call_when_every_cell_has_a_kernel(kind, monkeypatch):
    calls = []
    real = fused_module.run
    monkeypatch.setattr(fused_module, "run", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    rnn = build(kind, 3, True)
    rnn(randn(B, T, FEAT), LENGTHS)
    if kind in RNN_FUSABLE:
        assert rnn.uses_kernel()
        assert [(c["num_layers"], c["bidirectional"]) for c in calls] == [(3, True)]
    else:
        assert not rnn.uses_kernel() and calls == []


# --- dropout between layers ----------------------------------------------------------------------------


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("kind", ["lstm", "gru-cho"])
def test_dropout_between_layers(kind, fused):
    rnn = build(kind, 2, True, fused, dropout=0.5)
    plain = build(kind, 2, True, fused)
    plain.load_state_dict(rnn.state_dict())
    x = randn(B, T, FEAT)
    rnn.eval()
    assert_tree_close(rnn(x, LENGTHS), plain(x, LENGTHS), **EXACT)
    rnn.train()
    a, b = rnn(x, LENGTHS)[0], rnn(x, LENGTHS)[0]
    assert not torch.allclose(a, b)
    for i, n in enumerate(LENGTHS):
        assert torch.count_nonzero(a[i, n:]) == 0
    one_layer = build(kind, 1, True, fused, dropout=0.5).train()  # nothing between: no dropout at all
    ref = build(kind, 1, True, fused)
    ref.load_state_dict(one_layer.state_dict())
    assert_tree_close(one_layer(x, LENGTHS), ref(x, LENGTHS), **TIGHT)


# --- layout, gradcheck --------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("kind", ["lstm", "gru", "minimal-gru"])
def test_time_major_is_the_transpose(kind, fused):
    bf = build(kind, 2, True, fused)
    tm = build(kind, 2, True, fused, batch_first=False)
    tm.load_state_dict(bf.state_dict())
    x = randn(B, T, FEAT)
    state = random_state(bf.initial_state(B))
    for lengths in (None, LENGTHS):
        out_bf, s_bf = bf(x, lengths, state)
        out_tm, s_tm = tm(x.transpose(0, 1), lengths, state)
        assert out_tm.shape == (T, B, 2 * H)
        assert_tree_close((out_tm.transpose(0, 1), s_tm), (out_bf, s_bf), **TIGHT)


@pytest.mark.parametrize("kind, fused", [("lstm", "auto"), ("lstm", False), ("gru", "auto"), ("rnn-relu", "auto"),
                                         ("rnn", False), ("peephole", False), ("jordan", False)])
def test_gradcheck(kind, fused):
    torch.manual_seed(0)
    cell_kwargs = {"activation": "relu"} if kind == "rnn-relu" else {}
    rnn = RNN("rnn" if kind == "rnn-relu" else kind, 2, 3, 2, bidirectional=True, fused=fused, **cell_kwargs).double()
    assert rnn.uses_kernel() == (fused == "auto")
    check_gradients(rnn, randn(2, 3, 2), [3, 2], random_state(rnn.initial_state(2)), fast_mode=True)


# --- bad input -----------------------------------------------------------------------------------


def test_unknown_kind():
    with pytest.raises(ValueError, match=re.escape(f"RNN: expected kind in {sorted(KINDS)}, got 'LSTM'")):
        RNN("LSTM", 2, 3)


@pytest.mark.parametrize("arg, value, err, msg", [
    ("hidden_size", -1, ValueError, "RNN: expected hidden_size >= 1, got -1"),
    ("hidden_size", 0, ValueError, "RNN: expected hidden_size >= 1, got 0"),
    ("hidden_size", 3.0, TypeError, "RNN: expected hidden_size to be an int, got float 3.0"),
    ("input_size", 0, ValueError, "RNN: expected input_size >= 1, got 0"),
    ("num_layers", 0, ValueError, "RNN: expected num_layers >= 1, got 0"),
    ("dropout", 1.0, ValueError, "RNN: expected dropout in [0, 1), got 1.0"),
    ("dropout", -0.1, ValueError, "RNN: expected dropout in [0, 1), got -0.1"),
    ("input_dropout", 1.0, ValueError, "expected input_dropout in [0, 1), got 1.0"),
    ("recurrent_dropout", 1.2, ValueError, "expected recurrent_dropout in [0, 1), got 1.2"),
    ("fused", "yes", ValueError, "RNN: expected fused to be 'auto', True or False, got 'yes'"),
])
def test_bad_arguments(arg, value, err, msg):
    kw = {"kind": "lstm", "input_size": 2, "hidden_size": 3, "num_layers": 1} | {arg: value}
    with pytest.raises(err, match=re.escape(msg)):
        RNN(**kw)


NO_KERNEL = [("peephole", {}), ("gru-cho", {}), ("jordan", {}), ("minimal-gru", {}), ("rnn", {"activation": "sigmoid"})]


@pytest.mark.parametrize("kind, kw", NO_KERNEL)
def test_fused_true_without_a_kernel(kind, kw):
    with pytest.raises(ValueError, match=r"fused=True needs a (kind|cell) torch has a kernel for .*, got "):
        RNN(kind, 2, 3, fused=True, **kw)


@pytest.mark.parametrize("kind, kw", NO_KERNEL[:1])
def test_fused_true_error_names_rnn_and_the_kind(kind, kw):
    with pytest.raises(ValueError, match=f"RNN: fused=True needs a kind torch has a kernel for .*, got '{kind}'"):
        RNN(kind, 2, 3, fused=True, **kw)


@pytest.mark.parametrize("fused", ["auto", False])
def test_bad_input(fused):
    rnn = RNN("lstm", FEAT, H, 2, fused=fused)  # float32
    with pytest.raises(ValueError, match=re.escape(f"expected input (B, T, {FEAT}), got ({B}, {T}, 7)")):
        rnn(torch.randn(B, T, 7))
    with pytest.raises(TypeError, match="expected input of dtype torch.float32 like the parameters, got torch.float64"):
        rnn(torch.randn(B, T, FEAT, dtype=DT))
    with pytest.raises(TypeError, match="expected input to be a floating-point tensor, got dtype torch.int32"):
        rnn(torch.ones(B, T, FEAT, dtype=torch.int32))
    with pytest.raises(ValueError, match=re.escape(f"expected every length in [1, {T}] (the padded T), "
                                                   f"got lengths[1] = {T + 1}")):
        rnn(torch.randn(B, T, FEAT), [1, T + 1, 2])


def test_state_errors_name_the_module():
    rnn = RNN("lstm", FEAT, H, 2)
    state = rnn.initial_state(B)
    with pytest.raises(ValueError, match=r"RNN: expected state \[\(Tensor\(3, 3\), Tensor\(3, 3\)\), .*\], got"):
        rnn(torch.randn(B, T, FEAT), None, state[:1])
    with pytest.raises(ValueError, match="RNN: expected state tensors on cpu with dtype torch.float32, "
                                         "got cpu torch.float64"):
        rnn(torch.randn(B, T, FEAT), None, [(h.double(), c.double()) for h, c in state])
