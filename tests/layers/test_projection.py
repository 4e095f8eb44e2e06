"""OutputProjection: a Linear on every output of the wrapped layer, zero past each length; state passes through."""
import re

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from layer_refs import EXACT, TIGHT, assert_tree_close, make_cell, randn, random_state
from rnnkit.layers import RNN, Bidirectional, OutputProjection, Recurrent

B, T, FEAT, H, P = 3, 5, 2, 4, 1
LENGTHS = [5, 2, 3]


def layers():
    torch.manual_seed(0)
    return {
        "recurrent": Recurrent(make_cell("lstm", FEAT, H)),
        "jordan": Recurrent(make_cell("jordan", FEAT, H)),
        "bidirectional": Bidirectional(make_cell("gru", FEAT, H), make_cell("gru-cho", FEAT, H, seed=1)),
        "rnn": RNN("lstm", FEAT, H, 2, bidirectional=True).double(),
    }


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
@pytest.mark.parametrize("name", ["recurrent", "jordan", "bidirectional", "rnn"])
def test_equals_linear_on_layer_outputs(name, lengths):
    layer = layers()[name]
    proj = OutputProjection(layer, P).double()
    with torch.no_grad():
        proj.projection.bias.fill_(0.5)  # nonzero: padded positions must be cleared, not just left at W*0
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    y, final = proj(x, lengths, state)
    out, want_final = layer(x, lengths, state)
    want = F.linear(out, proj.projection.weight, proj.projection.bias)
    assert y.shape == (B, T, P) and proj.output_size == P and proj.input_size == FEAT
    for b, n in enumerate(lengths or [T] * B):
        torch.testing.assert_close(y[b, :n], want[b, :n], **TIGHT)
        assert torch.count_nonzero(y[b, n:]) == 0
        assert torch.count_nonzero(y[b, :n]) > 0
    assert_tree_close(final, want_final, **EXACT)


def test_time_major():
    cell = make_cell("gru", FEAT, H)
    bf = OutputProjection(Recurrent(cell), 3).double()
    tm = OutputProjection(Recurrent(cell, batch_first=False), 3).double()
    tm.projection.load_state_dict(bf.projection.state_dict())
    x = randn(B, T, FEAT)
    y_bf, s_bf = bf(x, LENGTHS)
    y_tm, s_tm = tm(x.transpose(0, 1), LENGTHS)
    assert y_tm.shape == (T, B, 3)
    assert_tree_close((y_tm.transpose(0, 1), s_tm), (y_bf, s_bf), **TIGHT)


def test_no_bias_and_gradients_reach_projection_only_at_valid_steps():
    proj = OutputProjection(Recurrent(make_cell("elman-tanh", FEAT, H)), 2, bias=False).double()
    assert proj.projection.bias is None
    x = randn(B, T, FEAT)
    y, _ = proj(x, LENGTHS)
    (g,) = torch.autograd.grad(y.sum(), [proj.projection.weight])
    out, _ = proj.layer(x, LENGTHS)
    torch.testing.assert_close(g, out.sum((0, 1)).expand(2, -1), **TIGHT)  # padded outputs are zero anyway


def test_initial_state_is_the_layers():
    layer = layers()["rnn"]
    assert_tree_close(OutputProjection(layer, P).initial_state(B), layer.initial_state(B), **EXACT)


def test_packed_input():
    proj = OutputProjection(layers()["recurrent"], P).double()
    x = randn(B, T, FEAT)
    y, _ = proj(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))
    torch.testing.assert_close(torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True)[0], proj(x, LENGTHS)[0])


def test_bad_lengths_name_the_module():
    proj = OutputProjection(Recurrent(make_cell("lstm", FEAT, H)), P)
    with pytest.raises(ValueError, match=re.escape("Recurrent: expected every length in [1, 5] (the padded T), "
                                                   "got lengths[0] = 6")):
        proj(randn(B, T, FEAT), [6, 1, 1])
