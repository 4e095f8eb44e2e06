"""The whole-sequence paths (rnnkit.kernels) against the per-step loop, autograd's numbers and finite differences."""
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import GRUCell, JordanCell, LayerNormLSTMCell, LSTMCell, MinimalGRUCell
from rnnkit.kernels import layer_norm_lstm, packed, workspace
from rnnkit.layers import Recurrent

TIGHT = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True)
def reuse_every_buffer(monkeypatch):
    """Every test here runs with the workspace keeping buffers of any size, so reuse is exercised everywhere."""
    monkeypatch.setattr(workspace, "MIN_BYTES", 0)
    yield
    workspace.release()

CELLS = {
    "lstm": lambda F, H: LSTMCell(F, H),
    "peephole": lambda F, H: LSTMCell(F, H, peephole=True),
    "gru-cho": lambda F, H: GRUCell(F, H, reset_after=False),
    "minimal-gru": lambda F, H: MinimalGRUCell(F, H),
    "minimal-gru-reset": lambda F, H: MinimalGRUCell(F, H, reset_gate=True),
    "jordan": lambda F, H: JordanCell(F, H, H + 2),
    "jordan-relu-sigmoid": lambda F, H: JordanCell(F, H, 3, activation="relu", output_activation="sigmoid"),
    "jordan-sigmoid-identity": lambda F, H: JordanCell(F, H, activation="sigmoid", output_activation="identity"),
    "layer-norm-lstm": lambda F, H: _perturbed(LayerNormLSTMCell(F, H)),
}


def _perturbed(cell):
    """Every γ and β away from its initial 1 and 0, so that their gradients are tested."""
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if name.startswith("norm_"):
                p.add_(0.3 * torch.randn_like(p))
    return cell


def make(name, F=4, H=5, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return CELLS[name](F, H).to(dtype)


def state_for(cell, B, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    template = cell.initial_state(B, dtype=dtype)
    parts = template if isinstance(template, tuple) else (template,)
    made = tuple(torch.randn(p.shape, generator=g, dtype=dtype).requires_grad_() for p in parts)
    return made if isinstance(template, tuple) else made[0]


def leaves(state):
    return list(state) if isinstance(state, tuple) else [state]


def run_layer(cell, x, lengths, state, fused, recurrent_dropout=0.0, seed=2):
    """Outputs, final state and every gradient of a loss that weights every output and final state."""
    layer = Recurrent(cell, fused=fused, recurrent_dropout=recurrent_dropout)
    torch.manual_seed(seed)  # the same recurrent dropout mask on both paths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, final = layer(x, lengths, state)
    w = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    loss = (out * w).pow(2).sum() + sum((s * s.sum(0, keepdim=True).tanh()).sum() for s in leaves(final))
    inputs = [x] + leaves(state) + list(cell.parameters())
    return [out] + leaves(final) + list(torch.autograd.grad(loss, inputs))


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("lengths", [None, [6, 3, 1]])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.4])
def test_sequence_path_equals_the_step_loop_float64(name, lengths, recurrent_dropout):
    cell = make(name)
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    state = state_for(cell, 3, torch.float64)
    fast = run_layer(cell, x, lengths, state, "auto", recurrent_dropout)
    if name == "lstm" and not recurrent_dropout:  # the layer would run torch's kernel: hide the cell's class
        fast = run_layer(_only_sequence(cell), x, lengths, state, "auto", recurrent_dropout)
    slow = run_layer(cell, x, lengths, state, False, recurrent_dropout)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, **TIGHT)


@pytest.mark.parametrize("chunk", [1, 2, 4])
@pytest.mark.parametrize("lengths", [None, [6, 3, 1]])
def test_layer_norm_lstm_chunks_of_steps_give_the_step_loop(chunk, lengths, monkeypatch):
    """The layer-norm LSTM normalises xp and sums its γ, β gradients over chunks of steps: chunks of 1, of
    2 (T = 6 in 3) and of 4 (a short last chunk) all give the per-step loop's numbers."""
    monkeypatch.setattr(layer_norm_lstm, "chunk_steps", lambda B, G: chunk)
    cell = make("layer-norm-lstm")
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    state = state_for(cell, 3, torch.float64)
    fast = run_layer(cell, x, lengths, state, "auto", 0.4)
    slow = run_layer(cell, x, lengths, state, False, 0.4)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, **TIGHT)


def _only_sequence(cell):
    """A plain LSTM cell wearing a different class name, so that no torch kernel matches it but its own
    whole-sequence path still runs."""
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = cell
            self.input_size, self.output_size = cell.input_size, cell.output_size

        weight_ih = property(lambda self: cell.weight_ih)
        weight_hh = property(lambda self: cell.weight_hh)

        def initial_state(self, *a, **k):
            return cell.initial_state(*a, **k)

        def sequence(self, *a, **k):
            return cell.sequence(*a, **k)

        def project_input(self, x):
            return cell.project_input(x)

        def step(self, *a):
            return cell.step(*a)

        def forward(self, x, s):
            return cell(x, s)
    return Wrapped()


@pytest.mark.parametrize("name", sorted(CELLS))
def test_gradcheck_against_finite_differences(name):
    cell = make(name, F=2, H=3)
    xs = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)  # (T, B, F)
    state = state_for(cell, 2, torch.float64)
    mask = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    params = list(cell.parameters())

    def f(xs, *rest):
        s = tuple(rest[:len(leaves(state))])
        s = s if isinstance(state, tuple) else s[0]
        out, final = cell.sequence(xs, s, mask=mask)
        return (out,) + tuple(leaves(final))
    assert torch.autograd.gradcheck(f, (xs, *leaves(state)))
    assert torch.autograd.gradcheck(lambda *p: _with_params(cell, params, p, f, xs, state), params)


def _with_params(cell, params, values, f, xs, state):
    """f with the cell's parameters replaced by `values` (so gradcheck can perturb them)."""
    saved = [p.data for p in params]
    for p, v in zip(params, values):
        p.data = v
    try:
        return tuple(o * 1 for o in f(xs, *leaves(state)))
    finally:
        for p, s in zip(params, saved):
            p.data = s


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("pack", [False, True], ids=["mm", "packed"])
def test_float32_is_the_loop_to_1e_5_relative(name, pack, monkeypatch):
    if pack and not packed.packs(torch.ones(1, 1)):
        pytest.skip("no oneDNN packed products in this build")
    monkeypatch.setattr(packed, "MIN_PACKED_MACS", 0 if pack else 1 << 62)
    assert (packed.StepProduct(torch.ones(2, 2), 1).packed is not None) == pack  # the path under test is in effect
    cell64 = make(name, F=6, H=16)
    cell32 = make(name, F=6, H=16, dtype=torch.float32)
    x = torch.randn(4, 20, 6, dtype=torch.float64, requires_grad=True)
    s64 = state_for(cell64, 4, torch.float64)
    s32 = tuple(s.detach().float().requires_grad_() for s in leaves(s64))
    s32 = s32 if isinstance(s64, tuple) else s32[0]
    slow = run_layer(cell64, x, [20, 15, 7, 1], s64, False)
    x32 = x.detach().float().requires_grad_()
    layer_cell = _only_sequence(cell32) if name == "lstm" else cell32
    fast = run_layer(layer_cell, x32, [20, 15, 7, 1], s32, "auto")
    loop32 = run_layer(cell32, x32, [20, 15, 7, 1], s32, False)
    for a, b, c in zip(fast, slow, loop32):  # relative to each tensor's norm: 1e-5 of float64's, as float32's own loop
        assert (a.double() - b).norm() <= 1e-5 * b.norm() + 1e-12
        assert (a - c).norm() <= 1e-5 * c.norm() + 1e-12


@pytest.mark.parametrize("name", ["peephole", "gru-cho", "minimal-gru-reset", "jordan"])
def test_backward_twice_with_retain_graph_gives_the_same_gradients(name):
    cell = make(name)
    xs = torch.randn(5, 2, 4, dtype=torch.float64)
    out, _ = cell.sequence(xs, cell.initial_state(2, dtype=torch.float64))
    loss = out.pow(2).sum()
    first = torch.autograd.grad(loss, list(cell.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(cell.parameters()))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, **TIGHT)


def test_layer_uses_the_sequence_path_unless_fused_is_false(monkeypatch):
    cell = make("peephole")
    calls = []
    original = LSTMCell.sequence
    monkeypatch.setattr(LSTMCell, "sequence", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    Recurrent(cell)(x)
    assert calls == [1]
    Recurrent(cell, fused=False)(x)
    assert calls == [1]


def test_subclasses_and_callables_fall_back_to_the_loop():
    class MyLSTM(LSTMCell):
        pass
    xs = torch.randn(3, 2, 4)
    assert MyLSTM(4, 5, peephole=True).sequence(xs, (torch.zeros(2, 5), torch.zeros(2, 5))) is None
    jordan = JordanCell(4, 5, activation=torch.nn.functional.softsign)
    assert jordan.sequence(xs, torch.zeros(2, 5)) is None
    assert GRUCell(4, 5, reset_after=True).sequence(xs, torch.zeros(2, 5)) is None


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("pack", [False, True], ids=["mm", "packed"])
def test_bf16_autocast_runs_the_sequence_path_as_close_to_float32_as_the_loop(name, pack, monkeypatch):
    if pack and not packed.packs(torch.ones(1, 1, dtype=torch.bfloat16)):
        pytest.skip("no oneDNN bf16 packed products on this CPU")
    monkeypatch.setattr(packed, "MIN_PACKED_MACS", 0 if pack else 1 << 62)
    assert (packed.StepProduct(torch.ones(2, 2), 1).packed is not None) == pack  # the path under test is in effect
    cell = make(name, F=8, H=16, dtype=torch.float32)
    x = torch.randn(4, 12, 8)
    state = state_for(cell, 4, torch.float32)
    layer_cell = _only_sequence(cell) if name == "lstm" else cell
    reference = run_layer(layer_cell, x.requires_grad_(), [12, 9, 5, 1], state, "auto")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = run_layer(layer_cell, x, [12, 9, 5, 1], state, "auto")
        loop = run_layer(cell, x, [12, 9, 5, 1], state, False)  # autocast over the per-step loop
    assert low[0].dtype == torch.bfloat16  # outputs in bf16, as torch's kernels under autocast
    n_state = len(leaves(state))
    assert all(s.dtype == torch.float32 for s in low[1:1 + n_state])  # the state stays in the layer's precision
    assert all(g.dtype == torch.float32 for g in low[1 + n_state:])  # gradients in the parameters' dtype
    for a, b, c in zip(low, reference, loop):  # as close to float32 as autocast's own loop gets, or closer
        assert (a.float() - b).norm() <= 1.5 * (c.float() - b).norm() + 0.01 * b.norm()


def test_outputs_share_no_storage_a_user_can_corrupt():
    cell = make("gru-cho")
    out, h = cell.sequence(torch.randn(4, 2, 4, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64))
    out.sum().backward()  # fine
    out, h = cell.sequence(torch.randn(4, 2, 4, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(RuntimeError):
        out.mul_(2)  # an in-place change of a saved buffer is refused, never silently wrong
        out.sum().backward()


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(set(CELLS) - {"lstm"})), st.integers(1, 4), st.integers(1, 7), st.integers(1, 4),
       st.integers(1, 4), st.data())
def test_any_shape_and_lengths(name, B, T, F, H, data):
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    cell = make(name, F, H)
    x = torch.randn(B, T, F, dtype=torch.float64, requires_grad=True)
    state = state_for(cell, B, torch.float64)
    for a, b in zip(run_layer(cell, x, lengths, state, "auto"), run_layer(cell, x, lengths, state, False)):
        torch.testing.assert_close(a, b, **TIGHT)


@pytest.mark.parametrize("name", ["peephole", "layer-norm-lstm", "gru-cho"])
def test_inference_mode_then_training_reuses_no_read_only_buffer(name):
    cell = make(name)
    xs = torch.randn(5, 2, 4, dtype=torch.float64)
    with torch.inference_mode():
        cell.sequence(xs, cell.initial_state(2, dtype=torch.float64))  # its buffers are inference tensors
    out, _ = cell.sequence(xs, cell.initial_state(2, dtype=torch.float64))
    out.sum().backward()  # would fail on an inference tensor saved for backward or changed in place
    assert all(p.grad is not None for p in cell.parameters())
