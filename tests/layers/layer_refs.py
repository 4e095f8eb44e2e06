"""Shared references for the layer tests (not a test file).

The main reference is Flax's best test: a hand-written loop over the cell, one sequence at a time,
sliced to its own length with Python slicing, calling ``cell(x_t, state)`` and nothing else from the
layer code. Every layer must equal it, with and without padding.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence

from rnnkit.cells import ElmanCell, GRUCell, JordanCell, LSTMCell, MinimalGRUCell
from rnnkit.layers import KINDS, Bidirectional, Recurrent, make_cell

# kinds whose state is a pair (h, c)
PAIRED_STATE = {k for k in KINDS if isinstance(make_cell(k, 1, 1).initial_state(1), tuple)}

DT = torch.float64
TIGHT = {"rtol": 0.0, "atol": 1e-10}  # float64: the two computations are the same arithmetic
EXACT = {"rtol": 0.0, "atol": 0.0}
F32 = {"rtol": 1e-5, "atol": 1e-6}

# Every cell a layer must unroll: name -> builder(F, H, **kw). Jordan gets O != H so that a mix-up
# between hidden and output size shows.
CELLS = {
    "elman-tanh": lambda f, h, **kw: ElmanCell(f, h, **kw),
    "elman-relu": lambda f, h, **kw: ElmanCell(f, h, activation="relu", **kw),
    "jordan": lambda f, h, **kw: JordanCell(f, h, output_size=h + 1, **kw),
    "lstm": lambda f, h, **kw: LSTMCell(f, h, **kw),
    "peephole": lambda f, h, **kw: LSTMCell(f, h, peephole=True, **kw),
    "gru": lambda f, h, **kw: GRUCell(f, h, reset_after=True, **kw),
    "gru-cho": lambda f, h, **kw: GRUCell(f, h, reset_after=False, **kw),
    "minimal-gru": lambda f, h, **kw: MinimalGRUCell(f, h, **kw),
    "minimal-gru-reset": lambda f, h, **kw: MinimalGRUCell(f, h, reset_gate=True, **kw),
}
FUSABLE = ("elman-tanh", "elman-relu", "lstm", "gru")  # the cells torch has a kernel for
RNN_FUSABLE = {"rnn": {}, "rnn-relu": {"activation": "relu"}, "lstm": {}, "gru": {}}  # RNN kind -> kwargs


def make_cell(name: str, f: int = 2, h: int = 3, *, dtype=DT, seed: int = 0):
    torch.manual_seed(seed)
    return CELLS[name](f, h, dtype=dtype)


def randn(*shape, dtype=DT, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- states as trees: a Tensor, or a tuple/list of trees -------------------------------------------


def tree_map(fn, *trees):
    first = trees[0]
    if isinstance(first, Tensor):
        return fn(*trees)
    return type(first)(tree_map(fn, *parts) for parts in zip(*trees))


def leaves(tree) -> list[Tensor]:
    if isinstance(tree, PackedSequence):
        return [tree.data]
    if isinstance(tree, Tensor):
        return [tree]
    return [t for part in tree for t in leaves(part)]


def rebuild(template, flat: list[Tensor]):
    """Inverse of leaves(): the tensors of flat, in order, in template's structure."""
    it = iter(flat)
    out = tree_map(lambda _: next(it), template)
    assert next(it, None) is None
    return out


def take(state, b: int):
    """Sequence b of a batched state, as a batch of one."""
    return tree_map(lambda s: s[b:b + 1], state)


def cat_batch(states: list):
    return tree_map(lambda *s: torch.cat(s), *states)


def random_state(template, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return tree_map(lambda t: 0.5 * torch.randn(t.shape, generator=g, dtype=t.dtype), template)


def assert_tree_close(actual, expected, **tol):
    """Same structure (tuple and list alike), same shapes, values within tol."""
    if isinstance(expected, Tensor):
        assert isinstance(actual, Tensor), f"expected a tensor, got {type(actual).__name__}"
        assert actual.shape == expected.shape, f"{tuple(actual.shape)} != {tuple(expected.shape)}"
        torch.testing.assert_close(actual, expected, **tol)
        return
    assert isinstance(actual, (tuple, list)), f"expected a tuple/list, got {type(actual).__name__}"
    assert len(actual) == len(expected), f"{len(actual)} parts != {len(expected)}"
    for a, e in zip(actual, expected):
        assert_tree_close(a, e, **tol)


# --- the hand-written references ---------------------------------------------------------------


def run_by_hand(cell, x: Tensor, lengths=None, state=None, *, reverse: bool = False):
    """Recurrent(cell) on a batch-first x (B, T, F), written out: each sequence alone, cut to its
    length, stepped with cell(x_t, s) (backwards when reverse, outputs flipped back into line);
    outputs zero past the length; final state the one after the last step read."""
    B, T, _ = x.shape
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    if state is None:
        state = cell.initial_state(B, dtype=x.dtype)
    outs, finals = [], []
    for b, n in enumerate(lengths):
        seq = x[b, :n].flip(0) if reverse else x[b, :n]  # (n, F)
        s, ys = take(state, b), []
        for t in range(n):
            y, s = cell(seq[t:t + 1], s)
            ys.append(y)
        y = torch.cat(ys)  # (n, O)
        if reverse:
            y = y.flip(0)
        outs.append(torch.cat([y, y.new_zeros(T - n, y.shape[1])]))
        finals.append(s)
    return torch.stack(outs), cat_batch(finals)


def bidirectional_by_hand(fcell, bcell, x, lengths=None, state=None):
    """((forward outputs, backward outputs), (forward state, backward state)), unmerged."""
    s_f, s_b = (None, None) if state is None else state
    out_f, s_f = run_by_hand(fcell, x, lengths, s_f)
    out_b, s_b = run_by_hand(bcell, x, lengths, s_b, reverse=True)
    return (out_f, out_b), (s_f, s_b)


def stack_by_hand(layers, x, lengths=None, states=None):
    """A stack of Recurrent/Bidirectional layers (no dropout) from the hand references of their cells."""
    states = [None] * len(layers) if states is None else states
    finals = []
    for layer, s in zip(layers, states):
        if isinstance(layer, Bidirectional):
            (o_f, o_b), s = bidirectional_by_hand(layer.forward_layer.cell, layer.backward_layer.cell, x, lengths, s)
            x = torch.cat([o_f, o_b], dim=-1)
        else:
            assert isinstance(layer, Recurrent)
            x, s = run_by_hand(layer.cell, x, lengths, s, reverse=layer.reverse)
        finals.append(s)
    return x, finals


def sequences_alone(layer, x, lengths, state=None):
    """The layer run on each sequence alone (B=1, cut to its own length), padded back to T."""
    B, T = x.shape[:2]
    outs, finals = [], []
    for b in range(B):
        n = int(lengths[b])
        out, s = layer(x[b:b + 1, :n], None, None if state is None else take(state, b))
        outs.append(torch.cat([out[0], out.new_zeros(T - n, out.shape[2])]))
        finals.append(s)
    return torch.stack(outs), cat_batch(finals)


def pad_with(x: Tensor, lengths, value: float) -> Tensor:
    """x with every position past its sequence's length set to value (batch-first)."""
    x = x.clone()
    for b, n in enumerate(lengths):
        x[b, int(n):] = value
    return x


# --- gradients -----------------------------------------------------------------------------------


def weighted_sum(*trees, seed: int = 7) -> Tensor:
    """A loss that reaches every output and state entry with a different fixed weight."""
    g = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for tree in trees for t in leaves(tree))


def output_and_grads(module, x, lengths=None, state=None):
    """(outputs, final state, grads w.r.t. x, every state leaf and every parameter, by name)."""
    x = x.detach().requires_grad_()
    state = None if state is None else tree_map(lambda s: s.detach().requires_grad_(), state)
    out, final = module(x, lengths, state)
    wrt = {"x": x} | {f"state{i}": s for i, s in enumerate(leaves(state) if state is not None else [])}
    wrt |= dict(module.named_parameters())
    grads = torch.autograd.grad(weighted_sum(out, final), list(wrt.values()))
    return out, final, dict(zip(wrt, grads))


def twins(build):
    """The same module built twice, fused='auto' and fused=False, sharing one state dict."""
    fast, slow = build("auto"), build(False)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def check_gradients(module, x, lengths=None, state=None, **kw):
    """torch.autograd.gradcheck w.r.t. x, the initial state leaves and every parameter."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]
    state = module.initial_state(x.shape[0]) if state is None else state
    state_leaves = [s.detach().clone().requires_grad_() for s in leaves(state)]

    def f(x, *rest):
        p = dict(zip(names, rest[:len(names)]))
        s = rebuild(state, list(rest[len(names):]))
        out, final = functional_call(module, p, (x, lengths, s))
        return (out, *leaves(final))

    assert gradcheck(f, (x.detach().clone().requires_grad_(), *params, *state_leaves), **kw)
