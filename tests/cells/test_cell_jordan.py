"""JordanCell: the fed-back state is y_{t-1}; shape/dtype contract, hand equations over several steps,
output activation, gradcheck, recurrent mask and error messages. torch has no Jordan cell."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.cells import JordanCell
from cellkit import _raises, fill_deterministic_, gradcheck_cell, params_of

B, FEAT, H, O = 3, 3, 4, 2
DT = torch.float64


def jordan_by_hand(p, x, y_prev, phi_h=torch.tanh, phi_y=torch.tanh, mask=None):
    """h_t = phi_h(W_h x_t + U_h (m * y_{t-1}) + b_h);  y_t = phi_y(W_y h_t + b_y)  (lecture 003)."""
    yr = y_prev if mask is None else y_prev * mask
    h = phi_h(x @ p["weight_ih"].T + p["bias_ih"] + yr @ p["weight_hh"].T + p["bias_hh"])
    return phi_y(h @ p["weight_ho"].T + p["bias_ho"])


# --- 1. shape and dtype contract -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("out", [None, O, 6])
def test_shapes_and_dtypes(dtype, out):
    cell = JordanCell(FEAT, H, out, dtype=dtype)
    O_ = H if out is None else out
    assert cell.output_size == O_ and cell.hidden_size == H and cell.input_size == FEAT
    x = torch.randn(B, FEAT, dtype=dtype)
    s0 = cell.initial_state(B)
    assert s0.shape == (B, O_) and s0.dtype == dtype and s0.device == x.device
    assert torch.count_nonzero(s0) == 0
    y, s = cell(x, s0)
    assert y.shape == (B, O_) and s.shape == (B, O_)
    assert y.dtype == dtype and s.dtype == dtype
    y0, _ = cell(x)
    torch.testing.assert_close(y0, y, rtol=0, atol=0)


def test_initial_state_dtype_override():
    cell = JordanCell(FEAT, H, O)
    s0 = cell.initial_state(2, dtype=torch.float64)
    assert s0.dtype == torch.float64 and s0.shape == (2, O) and torch.count_nonzero(s0) == 0


def test_parameter_names_and_count():
    cell = JordanCell(FEAT, H, O)
    assert [n for n, _ in cell.named_parameters()] == [
        "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ho", "bias_ho"]
    assert cell.weight_ih.shape == (H, FEAT)
    assert cell.weight_hh.shape == (H, O)  # U_h reads y_{t-1}
    assert cell.weight_ho.shape == (O, H) and cell.bias_ho.shape == (O,)
    assert sum(p.numel() for p in cell.parameters()) == 38  # 12 + 8 + 4 + 4 + 8 + 2
    assert sum(p.numel() for p in JordanCell(FEAT, H).parameters()) == 56  # 12 + 16 + 4 + 4 + 16 + 4
    nobias = JordanCell(FEAT, H, O, bias=False)
    assert [n for n, _ in nobias.named_parameters()] == ["weight_ih", "weight_hh", "weight_ho"]
    assert sum(p.numel() for p in nobias.parameters()) == 28


# --- 2 / 10. equations by hand, y_{t-1} fed back, output activation --------------------------


@pytest.mark.parametrize("out_act, phi_y", [("tanh", torch.tanh), ("identity", lambda v: v),
                                            ("sigmoid", torch.sigmoid)])
def test_three_steps_by_hand_feed_back_output(out_act, phi_y):
    torch.manual_seed(0)
    cell = JordanCell(FEAT, H, O, output_activation=out_act, dtype=DT)
    p = params_of(cell)
    xs = torch.randn(3, B, FEAT, dtype=DT)
    y_hand = torch.randn(B, O, dtype=DT)
    state = y_hand.clone()
    for t in range(3):
        y_hand = jordan_by_hand(p, xs[t], y_hand, phi_y=phi_y)  # fed back: the previous OUTPUT
        y, state = cell(xs[t], state)
        torch.testing.assert_close(y, y_hand, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(state, y_hand, rtol=1e-12, atol=1e-12)


def test_output_activation_matters():
    torch.manual_seed(1)
    a = JordanCell(FEAT, H, O, output_activation="identity", dtype=DT)
    b = JordanCell(FEAT, H, O, output_activation="tanh", dtype=DT)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.bias_ho.fill_(3.0)
        b.bias_ho.fill_(3.0)
    x, s = torch.randn(B, FEAT, dtype=DT), torch.randn(B, O, dtype=DT)
    ya, _ = a(x, s)
    yb, _ = b(x, s)
    torch.testing.assert_close(yb, torch.tanh(ya), rtol=1e-12, atol=1e-12)
    assert (ya.abs() > 1).any()  # identity is unbounded, tanh is not
    assert (yb.abs() < 1).all()


def test_hidden_activation_by_hand():
    torch.manual_seed(2)
    cell = JordanCell(FEAT, H, O, activation="relu", output_activation="identity", dtype=DT)
    x, s = torch.randn(B, FEAT, dtype=DT), torch.randn(B, O, dtype=DT)
    y, _ = cell(x, s)
    torch.testing.assert_close(y, jordan_by_hand(params_of(cell), x, s, torch.relu, lambda v: v),
                               rtol=1e-12, atol=1e-12)


# computed once from jordan_by_hand with fill_deterministic_, x = linspace(-1, 1), y0 = linspace(0.4, -0.4)
FIXED = [[0.941084, 0.318954],
         [0.723414, -0.729444]]


def test_fixed_numeric_answer():
    cell = JordanCell(FEAT, H, O, dtype=DT)
    fill_deterministic_(cell)
    x = torch.linspace(-1.0, 1.0, 2 * FEAT, dtype=DT).reshape(2, FEAT)
    y0 = torch.linspace(0.4, -0.4, 2 * O, dtype=DT).reshape(2, O)
    y, s = cell(x, y0)
    expected = torch.tensor(FIXED, dtype=DT)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(jordan_by_hand(params_of(cell), x, y0), expected, rtol=1e-5, atol=1e-6)


# --- 6. gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("out, act, out_act", [(O, "tanh", "tanh"), (H, "tanh", "identity"),
                                               (5, "sigmoid", "tanh"), (O, F.softsign, "sigmoid")])
def test_gradcheck_with_parameters(out, act, out_act):
    torch.manual_seed(3)
    cell = JordanCell(FEAT, H, out, activation=act, output_activation=out_act, dtype=DT)
    assert gradcheck_cell(cell)


# --- 7. recurrent mask: y_{t-1} is masked ------------------------------------------------------


def test_recurrent_mask():
    torch.manual_seed(4)
    cell = JordanCell(FEAT, H, O, dtype=DT)
    x, s = torch.randn(B, FEAT, dtype=DT), torch.randn(B, O, dtype=DT)
    xp = cell.project_input(x)
    y_none, _ = cell.step(xp, s)
    y_ones, _ = cell.step(xp, s, torch.ones(B, O, dtype=DT))
    torch.testing.assert_close(y_ones, y_none, rtol=0, atol=0)
    mask = torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, 0.0]], dtype=DT)
    y_m, s_m = cell.step(xp, s, mask)
    expected = jordan_by_hand(params_of(cell), x, s, mask=mask)
    torch.testing.assert_close(y_m, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s_m, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(y_m, y_none)


# --- 8. bad input -------------------------------------------------------------------------------


def test_bad_input():
    cell = JordanCell(FEAT, H, O)
    with _raises(ValueError, "JordanCell: expected input (B, 3), got (2, 5, 3)"):
        cell(torch.randn(2, 5, 3))
    with _raises(ValueError, "JordanCell: expected input (B, 3), got (2, 4)"):
        cell(torch.randn(2, 4))
    with _raises(TypeError, "JordanCell: expected input to be a floating-point tensor, got dtype torch.int32"):
        cell(torch.ones(2, FEAT, dtype=torch.int32))


def test_bad_state():
    cell = JordanCell(FEAT, H, O)
    x = torch.randn(2, FEAT)
    # the state is y (B, O), not h (B, H)
    with _raises(ValueError, "JordanCell: expected state[0] of shape (2, 2), got (2, 4)"):
        cell(x, torch.zeros(2, H))
    with _raises(ValueError, "JordanCell: expected state[0] of shape (2, 2), got (1, 2)"):
        cell(x, torch.zeros(1, O))
    with _raises(ValueError, "JordanCell: expected state[0] on cpu with dtype torch.float64 like the input, "
                             "got cpu torch.float32"):
        JordanCell(FEAT, H, O, dtype=DT)(x.double(), torch.zeros(2, O))


def test_bad_constructor_arguments():
    with _raises(ValueError, "JordanCell: expected hidden_size >= 1, got 0"):
        JordanCell(FEAT, 0)
    with _raises(TypeError, "JordanCell: expected hidden_size to be an int, got bool False"):
        JordanCell(FEAT, False)
    with _raises(ValueError, "JordanCell: expected output_size >= 1, got -1"):
        JordanCell(FEAT, H, -1)
    with _raises(ValueError, "JordanCell: expected activation to be one of "
                             "['identity', 'relu', 'sigmoid', 'tanh'] or a callable, got 'gelu'"):
        JordanCell(FEAT, H, activation="gelu")
    with _raises(ValueError, "JordanCell: expected activation to be one of "
                             "['identity', 'relu', 'sigmoid', 'tanh'] or a callable, got 'softmax'"):
        JordanCell(FEAT, H, output_activation="softmax")
