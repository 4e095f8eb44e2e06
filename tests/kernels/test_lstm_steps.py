"""The compiled pointwise steps (csrc/lstm_steps.c) inside the LSTM and layer-norm LSTM kernels: outputs and every
gradient as torch's ops give them (RNNKIT_NATIVE=0) and as float64's step loop, with lengths and recurrent
dropout; NaN passes through; other dtypes keep torch's ops."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import LayerNormLSTMCell, LSTMCell
from rnnkit.kernels import lstm_steps, native
from rnnkit.layers import Recurrent

pytestmark = pytest.mark.skipif(lstm_steps.library() is None,
                                reason=f"no native kernels here: {native.unavailable('lstm_steps')}")

CELLS = {
    "lstm": lambda F, H: LSTMCell(F, H),
    "peephole": lambda F, H: LSTMCell(F, H, peephole=True),
    "layer-norm-lstm": lambda F, H: LayerNormLSTMCell(F, H),
}


def make(name, F, H, dtype=torch.float32):
    torch.manual_seed(0)
    cell = CELLS[name](F, H)
    with torch.no_grad():
        for p in cell.parameters():  # γ, β, peepholes and biases away from their initial values
            p.add_(0.3 * torch.randn_like(p))
    return cell.to(dtype)


def run(cell, x, lengths, state, recurrent_dropout=0.0):
    """Outputs, final state and the gradients of a loss over all of them, through the cell's whole-sequence
    kernel: x (B, T, F), lengths or None, a recurrent dropout mask drawn from a fixed seed."""
    B, T, _ = x.shape
    mask = None if lengths is None else torch.arange(T)[:, None] < torch.tensor(lengths)[None]  # (T, B)
    rmask = None
    if recurrent_dropout:
        keep = torch.rand(B, state[0].shape[1], generator=torch.Generator().manual_seed(3)) >= recurrent_dropout
        rmask = keep.to(x.dtype) / (1 - recurrent_dropout)
    out, (h, c) = cell.sequence(x.transpose(0, 1), state, mask=mask, recurrent_mask=rmask)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).pow(2).sum() + (h * c.tanh()).sum()
    return [out, h, c, *torch.autograd.grad(loss, [x, *state, *cell.parameters()])]


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("lengths", [None, [9, 4, 1, 9, 6]])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
def test_compiled_steps_give_torch_ops_numbers(name, lengths, recurrent_dropout, monkeypatch):
    B, T, F, H = 5, 9, 6, 40  # B·H above the kernels' threading threshold in some tests below, not here
    x64 = torch.randn(B, T, F, dtype=torch.float64, requires_grad=True)
    s64 = tuple(torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(2))
    exact = run(make(name, F, H, torch.float64), x64, lengths, s64, recurrent_dropout)
    x, state = x64.detach().float().requires_grad_(), tuple(s.detach().float().requires_grad_() for s in s64)
    compiled = run(make(name, F, H), x, lengths, state, recurrent_dropout)
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert not lstm_steps.applies(x)
    ops = run(make(name, F, H), x, lengths, state, recurrent_dropout)
    for a, b, c in zip(compiled, ops, exact):
        assert (a - b).norm() <= 1e-5 * b.norm() + 1e-12
        assert (a.double() - c).norm() <= 1e-5 * c.norm() + 1e-12


@pytest.mark.parametrize("name", sorted(CELLS))
def test_two_threads_split_the_rows_to_the_same_numbers(name):
    B, T, F, H = 8, 5, 16, 600  # B·H above the threshold: rows split between threads
    x = torch.randn(B, T, F, requires_grad=True)
    state = tuple(torch.randn(B, H, requires_grad=True) for _ in range(2))
    results = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(run(make(name, F, H), x, [5, 3, 5, 1, 2, 5, 4, 5], state))
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*results):
        assert (a - b).norm() <= 1e-6 * b.norm() + 1e-12  # the products may sum in another order; the steps do not


@pytest.mark.parametrize("name", sorted(CELLS))
def test_nan_in_the_input_comes_out_as_nan(name):
    cell = make(name, 3, 8)
    x = torch.randn(2, 4, 3)
    x[1, 2, 0] = float("nan")
    out = cell.sequence(x.transpose(0, 1), cell.initial_state(2))[0]  # (T, B, H)
    assert out[:, 0].isfinite().all()
    assert out[2:, 1].isnan().any() and out[:2, 1].isfinite().all()


def test_saturated_gates_stay_finite_and_exact():
    cell = make("lstm", 2, 8)
    x = torch.tensor([[[80.0, -80.0], [-300.0, 300.0], [1e-3, 0.0]]])
    out = cell.sequence(x.transpose(0, 1), cell.initial_state(1))[0]
    ref = Recurrent(make("lstm", 2, 8, torch.float64), fused=False)(x.double())[0].transpose(0, 1)
    assert out.isfinite().all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


def test_float64_and_bf16_keep_torch_ops():
    assert not lstm_steps.applies(torch.ones(1, dtype=torch.float64))
    assert not lstm_steps.applies(torch.ones(1), torch.ones(1, dtype=torch.bfloat16))
    assert lstm_steps.applies(torch.ones(1), None)


def test_steps_refuse_unknown_fields_and_strided_tensors():
    with pytest.raises(TypeError, match=r"unknown fields \['gates'\]"):
        lstm_steps.Steps(1, 1, gates=torch.ones(1))
    with pytest.raises(ValueError, match="acts must be contiguous"):
        lstm_steps.Steps(2, 2, acts=torch.ones(4, 4).t())


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(CELLS)), st.integers(1, 5), st.integers(1, 6), st.integers(1, 4), st.integers(1, 70),
       st.data())
def test_any_shape_and_lengths_compiled_as_torch_ops(name, B, T, F, H, data):
    """Against float64, the compiled steps are within float32 rounding as torch's float32 ops are: 1e-5 of each
    tensor, or within 10x torch's own error where the problem amplifies rounding (a layer norm over a few units
    of nearly equal values has a large 1/std; the two paths round differently there, a wrong formula would be
    off by far more). For the layer-norm LSTM, F and H start at 2: LN(W_x x) does not change with the scale of
    x, so with F = 1 its ∂L/∂x is 0 but for rounding, and a layer norm over H = 1 unit ignores its γ."""
    if name == "layer-norm-lstm":
        F, H = max(F, 2), max(H, 2)
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    x = torch.randn(B, T, F, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(2))
    exact = run(make(name, F, H, torch.float64), x, lengths, state)
    x32, state32 = x.detach().float().requires_grad_(), tuple(s.detach().float().requires_grad_() for s in state)
    compiled = run(make(name, F, H), x32, lengths, state32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNKIT_NATIVE", "0")
        ops = run(make(name, F, H), x32, lengths, state32)
    for a, b, c in zip(compiled, ops, exact):
        assert (a.double() - c).norm() <= 1e-5 * c.norm() + 10 * (b.double() - c).norm() + 1e-7


def test_a_layer_norm_over_one_unit_adds_no_rounding_noise_to_the_cell_gradient():
    """LN over H = 1 unit has an input gradient of exactly 0; computed as γ dy − mean(γ dy) with γ dy rounded
    differently in the two places (a fused multiply-add in one), it was a rounding error times rstd = 1/√eps
    ≈ 316, and ∂L/∂c_0 was off by 4e-5 of itself."""
    torch.manual_seed(105)
    x = torch.randn(1, 2, 2, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(1, 1, dtype=torch.float64, requires_grad=True) for _ in range(2))
    exact = run(make("layer-norm-lstm", 2, 1, torch.float64), x, None, state)
    x32, state32 = x.detach().float().requires_grad_(), tuple(s.detach().float().requires_grad_() for s in state)
    compiled = run(make("layer-norm-lstm", 2, 1), x32, None, state32)
    dc0, exact_dc0 = compiled[5].double(), exact[5]
    assert (dc0 - exact_dc0).abs().item() <= 1e-6 * exact_dc0.abs().item()

