"""State: running T steps at once equals running two chunks with the first's final state passed on
(every kind, fused and explicit); detach_state cuts the graph and keeps values and structure; state checks."""
import re

import pytest
import torch

from layer_refs import CELLS, DT, TIGHT, assert_tree_close, leaves, make_cell, randn, random_state
from rnnkit.cells import ElmanCell, LSTMCell
from rnnkit.layers import KINDS, RNN, Bidirectional, Recurrent, Stacked, detach_state
from rnnkit.layers.state import check_state_like, describe, map_state

B, T, FEAT, H = 3, 6, 2, 3
SPLIT = 2
LENGTHS = [6, 4, 3]  # every sequence reaches the second chunk: [4, 2, 1] steps there


def chunked(layer, x, lengths, state):
    """Two calls, T = SPLIT + rest, the first call's final state passed into the second."""
    first = None if lengths is None else [min(n, SPLIT) for n in lengths]
    rest = None if lengths is None else [n - SPLIT for n in lengths]
    out1, s = layer(x[:, :SPLIT], first, state)
    out2, s = layer(x[:, SPLIT:], rest, s)
    return torch.cat([out1, out2], dim=1), s


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("name", CELLS)
def test_recurrent_in_two_chunks(name, fused, lengths):
    layer = Recurrent(make_cell(name, FEAT, H), fused=fused)
    x = randn(B, T, FEAT)
    state = random_state(layer.initial_state(B))
    whole = layer(x, lengths, state)
    assert_tree_close(chunked(layer, x, lengths, state), whole, **TIGHT)


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_rnn_in_two_chunks(kind, fused):
    torch.manual_seed(0)
    rnn = RNN(kind, FEAT, H, 2, fused=fused).double()
    x = randn(B, T, FEAT)
    for lengths in (None, LENGTHS):
        assert_tree_close(chunked(rnn, x, lengths, None), rnn(x, lengths), **TIGHT)


def test_chunks_see_the_state():
    """Guard: starting the second chunk from zeros instead gives other numbers."""
    layer = Recurrent(make_cell("lstm", FEAT, H))
    x = randn(B, T, FEAT)
    whole, _ = layer(x)
    restarted, _ = layer(x[:, SPLIT:])
    assert not torch.allclose(restarted, whole[:, SPLIT:])


# --- detach_state ---------------------------------------------------------------------------------


def test_detach_state_keeps_values_and_structure():
    a = torch.randn(2, 3, requires_grad=True)
    state = [(a * 2, a + 1), ((a * 3,), [a - 1])]
    out = detach_state(state)
    assert type(out) is list and type(out[0]) is tuple and type(out[1]) is tuple
    assert type(out[1][0]) is tuple and type(out[1][1]) is list
    for before, after in zip(leaves(state), leaves(out)):
        assert torch.equal(before, after)
        assert not after.requires_grad and after.grad_fn is None
        assert after.data_ptr() == before.data_ptr()  # a view, not a copy
    single = detach_state(a * 2)
    assert isinstance(single, torch.Tensor) and single.grad_fn is None and not single.requires_grad


@pytest.mark.parametrize("fused", ["auto", False])
def test_detach_state_truncates_backprop(fused):
    torch.manual_seed(0)
    rnn = RNN("lstm", FEAT, H, 2, fused=fused).double()
    x1, x2 = randn(B, 3, FEAT).requires_grad_(), randn(B, 3, FEAT, seed=1)
    _, s1 = rnn(x1)
    assert all(t.grad_fn is not None for t in leaves(s1))
    kept = detach_state(s1)
    assert_tree_close(kept, s1, rtol=0, atol=0)
    assert all(t.grad_fn is None and not t.requires_grad for t in leaves(kept))
    out, _ = rnn(x2, None, kept)
    (g,) = torch.autograd.grad(out.sum(), [x1], allow_unused=True)
    assert g is None  # nothing flows back into the first chunk
    out, _ = rnn(x2, None, s1)
    (g,) = torch.autograd.grad(out.sum(), [x1])
    assert g.abs().sum() > 0  # and without detaching it would


def test_map_state_rejects_other_containers():
    with pytest.raises(TypeError, match="expected a state made of tensors, tuples and lists, got dict"):
        detach_state({"h": torch.zeros(1)})


def test_map_state_zips_several_states():
    s = (torch.ones(2), [torch.zeros(2)])
    out = map_state(lambda p, q: p + 2 * q, s, s)
    assert torch.equal(out[0], 3 * torch.ones(2)) and type(out[1]) is list


def test_describe():
    h = torch.zeros(2, 3)
    assert describe([(h, h), h]) == "[(Tensor(2, 3), Tensor(2, 3)), Tensor(2, 3)]"
    assert describe("h") == "str"


def test_check_state_like_accepts_list_for_tuple():
    h = torch.zeros(2, 3)
    state = [h, h]
    assert check_state_like("X", state, (h, h)) is state


# --- state errors name the module and show what was expected and received -------------------------------


@pytest.mark.parametrize("fused", ["auto", False])
def test_wrong_state_shape(fused):
    layer = Recurrent(LSTMCell(FEAT, H), fused=fused)
    bad = (torch.zeros(B, H), torch.zeros(B, H + 1))
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected state (Tensor({B}, {H}), Tensor({B}, {H})), "
                                                   f"got (Tensor({B}, {H}), Tensor({B}, {H + 1}))")):
        layer(torch.randn(B, T, FEAT), None, bad)
    with pytest.raises(ValueError, match=re.escape(f"got (Tensor({B + 1}, {H}), Tensor({B + 1}, {H}))")):
        layer(torch.randn(B, T, FEAT), None, LSTMCell(FEAT, H).initial_state(B + 1))


@pytest.mark.parametrize("fused", ["auto", False])
def test_wrong_state_structure(fused):
    lstm = Recurrent(LSTMCell(FEAT, H), fused=fused)
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected state (Tensor({B}, {H}), Tensor({B}, {H})), "
                                                   f"got Tensor({B}, {H})")):
        lstm(torch.randn(B, T, FEAT), None, torch.zeros(B, H))
    with pytest.raises(ValueError, match=re.escape("got (Tensor(3, 3), Tensor(3, 3), Tensor(3, 3))")):
        lstm(torch.randn(B, T, FEAT), None, (torch.zeros(B, H),) * 3)
    elman = Recurrent(ElmanCell(FEAT, H), fused=fused)
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected state Tensor({B}, {H}), "
                                                   f"got (Tensor({B}, {H}), Tensor({B}, {H}))")):
        elman(torch.randn(B, T, FEAT), None, (torch.zeros(B, H),) * 2)
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected state Tensor({B}, {H}), got str")):
        elman(torch.randn(B, T, FEAT), None, "h")


@pytest.mark.parametrize("fused", ["auto", False])
def test_wrong_state_dtype(fused):
    layer = Recurrent(LSTMCell(FEAT, H), fused=fused)
    bad = tuple(s.to(DT) for s in layer.initial_state(B))
    with pytest.raises(ValueError, match="Recurrent: expected state tensors on cpu with dtype torch.float32, "
                                         "got cpu torch.float64"):
        layer(torch.randn(B, T, FEAT), None, bad)


@pytest.mark.parametrize("fused", ["auto", False])
def test_bidirectional_state_of_wrong_shape(fused):
    layer = Bidirectional(ElmanCell(FEAT, H), ElmanCell(FEAT, H), fused=fused)
    # the kernel path checks the pair (Bidirectional: ...), the explicit one each direction (Recurrent: ...)
    with pytest.raises(ValueError, match=rf"(Bidirectional|Recurrent): expected state .*Tensor\({B}, {H}\).*, "
                                         rf"got .*Tensor\({B}, {H + 1}\)"):
        layer(torch.randn(B, T, FEAT), None, (torch.zeros(B, H), torch.zeros(B, H + 1)))


def test_stacked_passes_each_layer_its_state():
    stack = Stacked([Recurrent(LSTMCell(FEAT, H)), Recurrent(ElmanCell(H, H))])
    state = stack.initial_state(B)
    with pytest.raises(ValueError, match=re.escape(f"Recurrent: expected state (Tensor({B}, {H}), Tensor({B}, {H})), "
                                                   f"got Tensor({B}, {H})")):
        stack(torch.randn(B, T, FEAT), None, state[::-1])


def test_none_is_a_state_of_no_tensors():
    """A stateless model (TCN, ConvNet) may return state=None: the Trainer detaches and moves it as is."""
    assert detach_state(None) is None
    assert map_state(lambda s: s.cpu(), None) is None
