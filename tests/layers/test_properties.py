"""Property tests over random sizes, lengths, kinds, directions and depths (hypothesis)."""
import warnings

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layer_refs import PAIRED_STATE, TIGHT, assert_tree_close, leaves, randn, random_state, sequences_alone
from rnnkit.layers import KINDS, RNN



@st.composite
def cases(draw, kinds=tuple(sorted(KINDS))):
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 6))
    return {
        "B": B, "T": T, "F": draw(st.integers(1, 5)), "H": draw(st.integers(1, 5)),
        "lengths": draw(st.lists(st.integers(1, T), min_size=B, max_size=B)),
        "kind": draw(st.sampled_from(kinds)),
        "bidirectional": draw(st.booleans()),
        "num_layers": draw(st.integers(1, 2)),
        "seed": draw(st.integers(0, 2 ** 16)),
    }


def build(c, fused="auto"):
    torch.manual_seed(c["seed"])
    return RNN(c["kind"], c["F"], c["H"], c["num_layers"], bidirectional=c["bidirectional"], fused=fused).double()


@settings(max_examples=25, deadline=None)
@given(cases())
def test_shapes_zeros_and_state_structure(c):
    rnn = build(c)
    B, T, H, D = c["B"], c["T"], c["H"], 2 if c["bidirectional"] else 1
    out, states = rnn(randn(B, T, c["F"], seed=c["seed"]), c["lengths"])
    assert out.shape == (B, T, D * H) and out.dtype == torch.float64
    for b, n in enumerate(c["lengths"]):
        assert torch.count_nonzero(out[b, n:]) == 0
    assert isinstance(states, list) and len(states) == c["num_layers"]
    per_direction = [d for s in states for d in (s if c["bidirectional"] else (s,))]
    assert len(per_direction) == c["num_layers"] * D
    for s in per_direction:
        parts = s if c["kind"] in PAIRED_STATE else (s,)
        assert len(parts) == (2 if c["kind"] in PAIRED_STATE else 1)
        assert all(p.shape == (B, H) for p in parts)
    # the top layer's output at each sequence's last step is its forward final h (or c for minimal-gru)
    top = per_direction[-D]
    top = top[1] if c["kind"] == "minimal-gru" else (top[0] if c["kind"] in PAIRED_STATE else top)
    for b, n in enumerate(c["lengths"]):
        torch.testing.assert_close(out[b, n - 1, :H], top[b], **TIGHT)


@settings(max_examples=25, deadline=None)
@given(cases(kinds=("rnn", "lstm", "gru")), st.booleans())
def test_fused_equals_explicit(c, relu):
    kw = {"activation": "relu"} if relu and c["kind"] == "rnn" else {}
    torch.manual_seed(c["seed"])
    fast = RNN(c["kind"], c["F"], c["H"], c["num_layers"], bidirectional=c["bidirectional"], **kw).double()
    slow = RNN(c["kind"], c["F"], c["H"], c["num_layers"], bidirectional=c["bidirectional"], fused=False, **kw).double()
    slow.load_state_dict(fast.state_dict())
    assert fast.uses_kernel() and not slow.uses_kernel()
    x = randn(c["B"], c["T"], c["F"], seed=c["seed"])
    state = random_state(fast.initial_state(c["B"]), seed=c["seed"])
    results = []
    for rnn in (fast, slow):
        xg = x.clone().requires_grad_()
        out, final = rnn(xg, c["lengths"], state)
        loss = (out * out.detach().sin()).sum() + sum(s.sum() for s in leaves(final))
        grads = torch.autograd.grad(loss, [xg, *rnn.parameters()])
        results.append((out, final, list(grads)))
    assert_tree_close(results[0], results[1], **TIGHT)


@settings(max_examples=25, deadline=None)
@given(cases(), st.sampled_from(["auto", False]))
def test_padded_equals_each_sequence_alone(c, fused):
    rnn = build(c, fused)
    x = randn(c["B"], c["T"], c["F"], seed=c["seed"])
    state = random_state(rnn.initial_state(c["B"]), seed=c["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        padded = rnn(x, c["lengths"], state)
    assert_tree_close(padded, sequences_alone(rnn, x, c["lengths"], state), **TIGHT)
