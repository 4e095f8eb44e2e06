"""ElmanCell: shape/dtype contract, hand-written equations, parity with torch.nn.RNNCell, gradcheck,
recurrent mask, and error messages for bad input."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.cells import ElmanCell
from cellkit import _raises, fill_deterministic_, gradcheck_cell, params_of

B, FEAT, H = 3, 3, 4
DT = torch.float64


def fixed_inputs(batch=2):
    x = torch.linspace(-1.0, 1.0, batch * FEAT, dtype=DT).reshape(batch, FEAT)
    h = torch.linspace(0.4, -0.4, batch * H, dtype=DT).reshape(batch, H)
    return x, h


def elman_by_hand(p, x, h, phi, mask=None):
    """h_t = phi(W_x x_t + b_ih + W_h (m * h_{t-1}) + b_hh), written out without the cell."""
    hr = h if mask is None else h * mask
    return phi(x @ p["weight_ih"].T + p["bias_ih"] + hr @ p["weight_hh"].T + p["bias_hh"])


# --- 1. shape and dtype contract -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtypes(dtype):
    cell = ElmanCell(FEAT, H, dtype=dtype)
    x = torch.randn(B, FEAT, dtype=dtype)
    h0 = cell.initial_state(B)
    assert h0.shape == (B, H) and h0.dtype == dtype and h0.device == x.device
    assert torch.count_nonzero(h0) == 0
    y, h = cell(x, h0)
    assert y.shape == (B, H) and h.shape == (B, H)
    assert y.dtype == dtype and h.dtype == dtype
    assert cell.output_size == H and cell.input_size == FEAT
    # state=None means zeros
    y0, _ = cell(x)
    torch.testing.assert_close(y0, y, rtol=0, atol=0)


def test_initial_state_dtype_override():
    cell = ElmanCell(FEAT, H)  # float32 parameters
    h0 = cell.initial_state(2, dtype=torch.float64)
    assert h0.dtype == torch.float64 and h0.shape == (2, H) and torch.count_nonzero(h0) == 0


def test_parameter_names_and_count():
    cell = ElmanCell(FEAT, H)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert cell.weight_ih.shape == (H, FEAT) and cell.weight_hh.shape == (H, H)
    assert sum(p.numel() for p in cell.parameters()) == 36  # 4*3 + 4*4 + 4 + 4
    nobias = ElmanCell(FEAT, H, bias=False)
    assert [n for n, _ in nobias.named_parameters()] == ["weight_ih", "weight_hh"]
    assert sum(p.numel() for p in nobias.parameters()) == 28


# --- 2. equations by hand and a fixed numeric answer --------------------------------------------


@pytest.mark.parametrize("activation, phi", [("tanh", torch.tanh), ("relu", torch.relu),
                                             ("sigmoid", torch.sigmoid), ("identity", lambda v: v),
                                             (F.softsign, F.softsign)])
def test_equations_by_hand(activation, phi):
    torch.manual_seed(0)
    cell = ElmanCell(FEAT, H, activation=activation, dtype=DT)
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    y, h_new = cell(x, h)
    expected = elman_by_hand(params_of(cell), x, h, phi)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_new, expected, rtol=1e-12, atol=1e-12)


# computed once from elman_by_hand with fill_deterministic_ and fixed_inputs
FIXED_TANH = [[-0.955947, -0.638212, 0.368184, 0.910046],
              [0.944457, 0.437919, -0.685006, -0.973047]]


def test_fixed_numeric_answer():
    cell = ElmanCell(FEAT, H, dtype=DT)
    fill_deterministic_(cell)
    x, h = fixed_inputs()
    y, h_new = cell(x, h)
    expected = torch.tensor(FIXED_TANH, dtype=DT)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_new, expected, rtol=1e-5, atol=1e-6)
    # and the literal numbers are what the hand equations give
    torch.testing.assert_close(elman_by_hand(params_of(cell), x, h, torch.tanh), expected, rtol=1e-5, atol=1e-6)


# --- 3. parity with torch.nn.RNNCell --------------------------------------------------------------


def _loss_and_grads(module, x, h, out_fn):
    x = x.clone().requires_grad_()
    out = out_fn(module, x, h)
    w = torch.linspace(-1.0, 2.0, out.numel(), dtype=DT).reshape(out.shape)
    (out * w).sum().backward()
    return out.detach(), x.grad, {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_parity_with_torch_rnncell(nonlinearity, direction):
    torch.manual_seed(1)
    ref = torch.nn.RNNCell(FEAT, H, nonlinearity=nonlinearity, dtype=DT)
    ours = ElmanCell(FEAT, H, activation=nonlinearity, dtype=DT)
    if direction == "torch_to_ours":
        ours.load_state_dict(ref.state_dict())
    else:
        ref.load_state_dict(ours.state_dict())
    for name, p in ours.named_parameters():
        assert torch.equal(p, getattr(ref, name))
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    y1, gx1, gp1 = _loss_and_grads(ours, x, h, lambda m, x, h: m(x, h)[0])
    y2, gx2, gp2 = _loss_and_grads(ref, x, h, lambda m, x, h: m(x, h))
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx1, gx2, rtol=1e-12, atol=1e-12)
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        torch.testing.assert_close(gp1[name], gp2[name], rtol=1e-12, atol=1e-12)


# --- 6. gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", F.softsign])
def test_gradcheck(activation):
    torch.manual_seed(2)
    cell = ElmanCell(FEAT, H, activation=activation, dtype=DT)
    assert gradcheck_cell(cell)


# --- 7. recurrent mask ----------------------------------------------------------------------------


def test_recurrent_mask():
    torch.manual_seed(3)
    cell = ElmanCell(FEAT, H, dtype=DT)
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    xp = cell.project_input(x)
    y_none, _ = cell.step(xp, h)
    y_ones, _ = cell.step(xp, h, torch.ones(B, H, dtype=DT))
    torch.testing.assert_close(y_ones, y_none, rtol=0, atol=0)
    mask = torch.tensor([[0.0, 2.0, 2.0, 0.0], [2.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 0.0]], dtype=DT)
    y_m, h_m = cell.step(xp, h, mask)
    expected = elman_by_hand(params_of(cell), x, h, torch.tanh, mask)
    torch.testing.assert_close(y_m, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_m, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(y_m, y_none)


# --- 8. bad input -------------------------------------------------------------------------------


def test_bad_input_rank_and_features():
    cell = ElmanCell(FEAT, H)
    with _raises(ValueError, "ElmanCell: expected input (B, 3), got (2, 5, 3)"):
        cell(torch.randn(2, 5, 3))
    with _raises(ValueError, "ElmanCell: expected input (B, 3), got (2, 7)"):
        cell(torch.randn(2, 7))


def test_bad_input_integer_dtype():
    cell = ElmanCell(FEAT, H)
    with _raises(TypeError, "ElmanCell: expected input to be a floating-point tensor, got dtype torch.int64"):
        cell(torch.ones(2, FEAT, dtype=torch.long))


def test_bad_state():
    cell = ElmanCell(FEAT, H)
    x = torch.randn(2, FEAT)
    with _raises(ValueError, "ElmanCell: expected state[0] of shape (2, 4), got (2, 5)"):
        cell(x, torch.zeros(2, 5))
    with _raises(ValueError, "ElmanCell: expected state[0] of shape (2, 4), got (3, 4)"):
        cell(x, torch.zeros(3, H))
    with _raises(ValueError, "ElmanCell: expected state[0] on cpu with dtype torch.float64 like the input, "
                             "got cpu torch.float32"):
        ElmanCell(FEAT, H, dtype=DT)(x.double(), torch.zeros(2, H))
    with _raises(TypeError, "ElmanCell: expected state to be a tensor of shapes [(2, 4)], got a tuple of 2"):
        cell(x, (torch.zeros(2, H), torch.zeros(2, H)))


def test_bad_constructor_arguments():
    with _raises(ValueError, "ElmanCell: expected hidden_size >= 1, got 0"):
        ElmanCell(FEAT, 0)
    with _raises(ValueError, "ElmanCell: expected hidden_size >= 1, got -2"):
        ElmanCell(FEAT, -2)
    with _raises(TypeError, "ElmanCell: expected hidden_size to be an int, got bool True"):
        ElmanCell(FEAT, True)
    with _raises(ValueError, "ElmanCell: expected input_size >= 1, got 0"):
        ElmanCell(0, H)
    with _raises(ValueError, "ElmanCell: expected activation to be one of "
                             "['identity', 'relu', 'sigmoid', 'tanh'] or a callable, got 'swish'"):
        ElmanCell(FEAT, H, activation="swish")


def test_one_tuple_state_is_rejected_by_the_cell():
    cell = ElmanCell(FEAT, H)
    with pytest.raises((TypeError, ValueError), match="ElmanCell"):
        cell(torch.randn(2, FEAT), (torch.zeros(2, H),))
