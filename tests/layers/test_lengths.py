"""Lengths: padded batch == each sequence run alone == a PackedSequence input, for Recurrent,
Bidirectional, Stacked and RNN; reversal within lengths; masks; the checks on lengths."""
import re

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from layer_refs import (TIGHT, assert_tree_close, make_cell, randn, random_state, sequences_alone)
from rnnkit.cells import LSTMCell
from rnnkit.layers import RNN, Bidirectional, Recurrent, Stacked
from rnnkit.layers.lengths import check_lengths, reverse_within_lengths, time_mask

B, T, FEAT, H = 4, 6, 2, 3
LENGTHS = [4, 6, 1, 3]  # unsorted, one full, one of a single step


def build_recurrent(name, fused, reverse=False):
    return lambda: Recurrent(make_cell(name, FEAT, H), fused=fused, reverse=reverse)


def build_bidirectional(name, fused):
    return lambda: Bidirectional(make_cell(name, FEAT, H), make_cell(name, FEAT, H, seed=1), fused=fused)


def build_rnn(kind, fused):
    def build():
        torch.manual_seed(0)
        return RNN(kind, FEAT, H, 2, bidirectional=True, fused=fused).double()
    return build


def build_stacked(fused):
    return lambda: Stacked([Recurrent(make_cell("gru-cho", FEAT, H), fused=fused),
                            Bidirectional(make_cell("lstm", H, 2, seed=1), make_cell("lstm", H, 2, seed=2),
                                          fused=fused),
                            Recurrent(make_cell("jordan", 4, H, seed=3), reverse=True, fused=fused)], dropout=0.3)


LAYERS = {
    **{f"recurrent-{n}-{f}": build_recurrent(n, f) for n in ("elman-tanh", "lstm", "gru", "jordan", "peephole",
                                                             "minimal-gru-reset") for f in ("auto", False)},
    **{f"recurrent-reverse-{n}-{f}": build_recurrent(n, f, reverse=True) for n in ("lstm", "gru-cho")
       for f in ("auto", False)},
    **{f"bidirectional-{n}-{f}": build_bidirectional(n, f) for n in ("lstm", "gru", "minimal-gru")
       for f in ("auto", False)},
    **{f"rnn-{k}-{f}": build_rnn(k, f) for k in ("rnn", "lstm", "gru", "gru-cho", "peephole", "jordan")
       for f in ("auto", False)},
    **{f"stacked-{f}": build_stacked(f) for f in ("auto", False)},
}


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("layer", LAYERS)
def test_padded_batch_equals_each_sequence_alone_equals_packed(layer, with_state):
    layer = LAYERS[layer]().eval()
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B)) if with_state else None

    padded_out, padded_state = layer(x, torch.tensor(LENGTHS), state)
    alone_out, alone_state = sequences_alone(layer, x, LENGTHS, state)
    assert_tree_close(padded_out, alone_out, **TIGHT)
    assert_tree_close(padded_state, alone_state, **TIGHT)

    packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    packed_out, packed_state = layer(packed, None, state)
    assert isinstance(packed_out, PackedSequence)
    assert torch.equal(packed_out.batch_sizes, packed.batch_sizes)
    unpacked, lengths = pad_packed_sequence(packed_out, batch_first=True, total_length=T)
    assert lengths.tolist() == LENGTHS  # back in the caller's order
    assert_tree_close(unpacked, padded_out, **TIGHT)
    assert_tree_close(packed_state, padded_state, **TIGHT)


@pytest.mark.parametrize("fused", ["auto", False])
def test_packed_time_major(fused):
    layer = Recurrent(make_cell("lstm", FEAT, H), batch_first=False, fused=fused)
    x = randn(T, B, FEAT)
    out, state = layer(x, LENGTHS)
    packed_out, packed_state = layer(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    assert_tree_close(pad_packed_sequence(packed_out, total_length=T)[0], out, **TIGHT)
    assert_tree_close(packed_state, state, **TIGHT)


def test_bidirectional_merge_none_packs_both_outputs():
    layer = Bidirectional(make_cell("gru", FEAT, H), make_cell("gru", FEAT, H, seed=1), merge="none")
    x = randn(B, T, FEAT)
    (f, b), _ = layer(x, LENGTHS)
    (pf, pb), _ = layer(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))
    assert_tree_close(pad_packed_sequence(pf, batch_first=True, total_length=T)[0], f, **TIGHT)
    assert_tree_close(pad_packed_sequence(pb, batch_first=True, total_length=T)[0], b, **TIGHT)


def test_final_state_is_the_state_at_the_last_valid_step():
    layer = Recurrent(make_cell("lstm", FEAT, H), fused=False)
    x = randn(B, T, FEAT)
    out, (h, c) = layer(x, LENGTHS)
    for b, n in enumerate(LENGTHS):
        torch.testing.assert_close(h[b], out[b, n - 1], **TIGHT)  # h_t is the output y_t
        _, (h_n, c_n) = layer(x[b:b + 1, :n])
        torch.testing.assert_close((h[b], c[b]), (h_n[0], c_n[0]), **TIGHT)


# --- reverse_within_lengths and time_mask ----------------------------------------------------------------


def test_reverse_within_lengths_by_hand():
    x = randn(T, B, 2)
    rev = reverse_within_lengths(x, torch.tensor(LENGTHS))
    for b, n in enumerate(LENGTHS):
        assert torch.equal(rev[:n, b], x[:n, b].flip(0))
        assert torch.equal(rev[n:, b], x[n:, b])  # padding stays where it is
    assert torch.equal(reverse_within_lengths(rev, torch.tensor(LENGTHS)), x)  # its own inverse
    batch_first = reverse_within_lengths(x.transpose(0, 1), torch.tensor(LENGTHS), time_dim=1)
    assert torch.equal(batch_first, rev.transpose(0, 1))
    assert torch.equal(reverse_within_lengths(x, None), x.flip(0))


def test_time_mask():
    mask = time_mask(torch.tensor([3, 1]), 4, "cpu")
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True], [True, False], [True, False], [False, False]]


# --- check_lengths ------------------------------------------------------------------------------


def test_check_lengths_accepts_lists_and_tensors():
    assert check_lengths("X", [3, 1], 2, 4).tolist() == [3, 1]
    out = check_lengths("X", torch.tensor([3, 1], dtype=torch.int32), 2, 4)
    assert out.dtype == torch.int64 and out.tolist() == [3, 1]
    assert check_lengths("X", None, 2, 4) is None
    assert check_lengths("X", [4, 4], 2, 4) is None  # all full: nothing to mask


@pytest.fixture(params=["recurrent", "recurrent-explicit", "bidirectional", "rnn"])
def module(request):
    """(module, its name in error messages)."""
    return {
        "recurrent": (Recurrent(LSTMCell(FEAT, H)), "Recurrent"),
        "recurrent-explicit": (Recurrent(LSTMCell(FEAT, H), fused=False), "Recurrent"),
        "bidirectional": (Bidirectional(LSTMCell(FEAT, H), LSTMCell(FEAT, H)), "Bidirectional"),
        "rnn": (RNN("lstm", FEAT, H, 2), "RNN"),
    }[request.param]


@pytest.mark.parametrize("lengths, err, msg", [
    ([4, 6], ValueError, f"expected lengths of shape ({B},), got (2,)"),
    ([[4, 6, 1, 3]], ValueError, f"expected lengths of shape ({B},), got (1, 4)"),
    (torch.tensor(3), ValueError, f"expected lengths of shape ({B},), got ()"),
    ([4.0, 6.0, 1.0, 3.0], TypeError, "expected integer lengths, got dtype torch.float32"),
    (torch.tensor([True] * B), TypeError, "expected integer lengths, got dtype torch.bool"),
    ([4, 0, 1, 3], ValueError, f"expected every length in [1, {T}], got lengths[1] = 0 (zero-length sequences"),
    ([4, 6, -2, 3], ValueError, f"expected every length in [1, {T}], got lengths[2] = -2"),
    ([4, 6, 7, 3], ValueError, f"expected every length in [1, {T}] (the padded T), got lengths[2] = 7"),
    ("four", TypeError, "expected lengths as a (B,) integer tensor or list, got str"),
])
def test_bad_lengths(module, lengths, err, msg):
    layer, owner = module
    with pytest.raises(err, match=re.escape(f"{owner}: {msg}")):
        layer(torch.randn(B, T, FEAT), lengths)
