"""LSTMCell: shape/dtype contract, hand-written equations (with and without peepholes), parity with
torch.nn.LSTMCell, forget_bias, gradcheck, recurrent mask and error messages."""
import re

import pytest
import torch

from rnnkit.cells import LSTMCell
from cellkit import _raises, fill_deterministic_, gradcheck_cell, params_of

B, FEAT, H = 3, 3, 4
DT = torch.float64
TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def lstm_by_hand(p, x, h, c, peephole=False, mask=None):
    """Gate rows i, f, g, o; peepholes w_ci * c_{t-1}, w_cf * c_{t-1}, w_co * c_t (the NEW c)."""
    W, U, bx, bh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    hr = h if mask is None else h * mask  # the mask only touches h inside U h
    i_, f_, g_, o_ = (slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, 4 * H))
    a_i = x @ W[i_].T + bx[i_] + hr @ U[i_].T + bh[i_]
    a_f = x @ W[f_].T + bx[f_] + hr @ U[f_].T + bh[f_]
    a_g = x @ W[g_].T + bx[g_] + hr @ U[g_].T + bh[g_]
    a_o = x @ W[o_].T + bx[o_] + hr @ U[o_].T + bh[o_]
    if peephole:
        a_i = a_i + p["weight_ci"] * c
        a_f = a_f + p["weight_cf"] * c
    i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g)
    c_new = f * c + i * g
    if peephole:
        a_o = a_o + p["weight_co"] * c_new
    o = torch.sigmoid(a_o)
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


# --- 1. shape and dtype contract -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("peephole", [False, True])
def test_shapes_and_dtypes(dtype, peephole):
    cell = LSTMCell(FEAT, H, peephole=peephole, dtype=dtype)
    x = torch.randn(B, FEAT, dtype=dtype)
    state0 = cell.initial_state(B)
    assert isinstance(state0, tuple) and len(state0) == 2
    for s in state0:
        assert s.shape == (B, H) and s.dtype == dtype and s.device == x.device
        assert torch.count_nonzero(s) == 0
    y, (h, c) = cell(x, state0)
    assert y.shape == h.shape == c.shape == (B, H)
    assert y.dtype == h.dtype == c.dtype == dtype
    assert torch.equal(y, h)
    assert cell.output_size == H
    y0, (h0, c0) = cell(x)
    assert torch.equal(y0, y) and torch.equal(c0, c)


def test_initial_state_dtype_override():
    h0, c0 = LSTMCell(FEAT, H).initial_state(2, dtype=torch.float64)
    for s in (h0, c0):
        assert s.dtype == torch.float64 and s.shape == (2, H) and torch.count_nonzero(s) == 0


def test_parameter_names_and_count():
    cell = LSTMCell(FEAT, H)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert cell.weight_ih.shape == (4 * H, FEAT) and cell.weight_hh.shape == (4 * H, H)
    assert sum(p.numel() for p in cell.parameters()) == 144  # 48 + 64 + 16 + 16
    peep = LSTMCell(FEAT, H, peephole=True)
    assert [n for n, _ in peep.named_parameters()] == [
        "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ci", "weight_cf", "weight_co"]
    assert sum(p.numel() for p in peep.parameters()) == 144 + 3 * H
    nobias = LSTMCell(FEAT, H, bias=False)
    assert [n for n, _ in nobias.named_parameters()] == ["weight_ih", "weight_hh"]
    assert sum(p.numel() for p in nobias.parameters()) == 112


# --- 2 / 5. equations by hand and fixed numeric answers ------------------------------------------


@pytest.mark.parametrize("peephole", [False, True])
def test_equations_by_hand(peephole):
    torch.manual_seed(0)
    cell = LSTMCell(FEAT, H, peephole=peephole, dtype=DT)
    if peephole:  # make the peepholes large so that using c_{t-1} vs c_t for o is visible
        with torch.no_grad():
            for name in ("weight_ci", "weight_cf", "weight_co"):
                getattr(cell, name).uniform_(-2.0, 2.0)
    x = torch.randn(B, FEAT, dtype=DT)
    h, c = torch.randn(B, H, dtype=DT), 2.0 * torch.randn(B, H, dtype=DT)
    y, (h1, c1) = cell(x, (h, c))
    h_hand, c_hand = lstm_by_hand(params_of(cell), x, h, c, peephole=peephole)
    torch.testing.assert_close(c1, c_hand, **TIGHT)
    torch.testing.assert_close(h1, h_hand, **TIGHT)
    torch.testing.assert_close(y, h_hand, **TIGHT)


def test_peephole_o_reads_new_c_not_old():
    """w_co multiplies c_t: feeding c_{t-1} into o instead gives a different (wrong) answer."""
    torch.manual_seed(5)
    cell = LSTMCell(FEAT, H, peephole=True, dtype=DT)
    with torch.no_grad():
        cell.weight_co.fill_(3.0)
    x, h, c = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)
    _, (h1, c1) = cell(x, (h, c))
    p = params_of(cell)
    a_o = x @ p["weight_ih"][3 * H:].T + p["bias_ih"][3 * H:] + h @ p["weight_hh"][3 * H:].T + p["bias_hh"][3 * H:]
    h_old_c = torch.sigmoid(a_o + p["weight_co"] * c) * torch.tanh(c1)
    h_new_c = torch.sigmoid(a_o + p["weight_co"] * c1) * torch.tanh(c1)
    torch.testing.assert_close(h1, h_new_c, **TIGHT)
    assert not torch.allclose(h1, h_old_c)


# computed once from lstm_by_hand with fill_deterministic_ and the fixed inputs below
FIXED = {
    False: {"h": [[-0.0540701, -0.00561941, 0.0700463, 0.171508],
                  [-0.00334902, -0.0261443, -0.0312094, -0.0274075]],
            "c": [[-0.0708324, -0.00693806, 0.082763, 0.197415],
                  [-0.0171371, -0.173852, -0.274242, -0.319374]]},
    True: {"h": [[-0.0706013, -0.0600895, -0.0296002, -0.0120518],
                 [0.046719, 0.122773, 0.239003, 0.394172]],
           "c": [[-0.403985, -0.631266, -0.739483, -0.734651],
                 [0.0543887, 0.136906, 0.259867, 0.430864]]},
}


def fixed_inputs():
    x = torch.linspace(-1.0, 1.0, 2 * FEAT, dtype=DT).reshape(2, FEAT)
    h = torch.linspace(0.4, -0.4, 2 * H, dtype=DT).reshape(2, H)
    c = torch.linspace(-0.3, 0.6, 2 * H, dtype=DT).reshape(2, H)
    return x, h, c


@pytest.mark.parametrize("peephole", [False, True])
def test_fixed_numeric_answer(peephole):
    cell = LSTMCell(FEAT, H, peephole=peephole, dtype=DT)
    fill_deterministic_(cell)
    x, h, c = fixed_inputs()
    y, (h1, c1) = cell(x, (h, c))
    want_h = torch.tensor(FIXED[peephole]["h"], dtype=DT)
    want_c = torch.tensor(FIXED[peephole]["c"], dtype=DT)
    for got, want in ((y, want_h), (h1, want_h), (c1, want_c)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    h_hand, c_hand = lstm_by_hand(params_of(cell), x, h, c, peephole=peephole)
    torch.testing.assert_close(h_hand, want_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_hand, want_c, rtol=1e-5, atol=1e-6)


# --- 5. forget_bias ----------------------------------------------------------------------------


def test_forget_bias():
    torch.manual_seed(6)
    cell = LSTMCell(FEAT, H, forget_bias=1.0)
    assert torch.equal(cell.bias_ih[H:2 * H], torch.ones(H))
    assert torch.equal(cell.bias_hh[H:2 * H], torch.zeros(H))
    # the other gates keep torch's U(-1/sqrt(H), 1/sqrt(H)) initialisation
    others = torch.cat([cell.bias_ih[:H], cell.bias_ih[2 * H:], cell.bias_hh[:H], cell.bias_hh[2 * H:]])
    assert (others.abs() <= 0.5).all() and others.abs().sum() > 0
    peep = LSTMCell(FEAT, H, forget_bias=2.5, peephole=True)
    assert torch.equal(peep.bias_ih[H:2 * H], torch.full((H,), 2.5))
    assert torch.equal(peep.bias_hh[H:2 * H], torch.zeros(H))
    # reset_parameters re-applies it
    with torch.no_grad():
        cell.bias_ih.zero_()
    cell.reset_parameters()
    assert torch.equal(cell.bias_ih[H:2 * H], torch.ones(H))
    # default: no special forget bias
    plain = LSTMCell(FEAT, H)
    assert not torch.equal(plain.bias_ih[H:2 * H], torch.ones(H))


def test_forget_bias_without_bias_raises():
    with pytest.raises(ValueError, match=re.escape("LSTMCell: forget_bias needs bias=True, got bias=False")):
        LSTMCell(FEAT, H, forget_bias=1.0, bias=False)


# --- 3. parity with torch.nn.LSTMCell ------------------------------------------------------------


def _loss_and_grads(module, x, h, c, call):
    x = x.clone().requires_grad_()
    h_new, c_new = call(module, x, (h, c))
    w1 = torch.linspace(-1.0, 2.0, h_new.numel(), dtype=DT).reshape(h_new.shape)
    w2 = torch.linspace(1.5, -0.5, c_new.numel(), dtype=DT).reshape(c_new.shape)
    ((h_new * w1).sum() + (c_new * w2).sum()).backward()
    return h_new.detach(), c_new.detach(), x.grad, {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_parity_with_torch_lstmcell(direction):
    torch.manual_seed(1)
    ref = torch.nn.LSTMCell(FEAT, H, dtype=DT)
    ours = LSTMCell(FEAT, H, dtype=DT)
    if direction == "torch_to_ours":
        ours.load_state_dict(ref.state_dict())
    else:
        ref.load_state_dict(ours.state_dict())
    for name, p in ours.named_parameters():
        assert torch.equal(p, getattr(ref, name))
    x, h, c = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)
    h1, c1, gx1, gp1 = _loss_and_grads(ours, x, h, c, lambda m, x, s: m(x, s)[1])
    h2, c2, gx2, gp2 = _loss_and_grads(ref, x, h, c, lambda m, x, s: m(x, s))
    torch.testing.assert_close(h1, h2, **TIGHT)
    torch.testing.assert_close(c1, c2, **TIGHT)
    torch.testing.assert_close(gx1, gx2, **TIGHT)
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        torch.testing.assert_close(gp1[name], gp2[name], **TIGHT)


# --- 6. gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("peephole, bias", [(False, True), (True, True), (True, False)])
def test_gradcheck_with_parameters(peephole, bias):
    torch.manual_seed(2)
    cell = LSTMCell(FEAT, H, peephole=peephole, bias=bias, dtype=DT)
    assert gradcheck_cell(cell)


# --- 7. recurrent mask ----------------------------------------------------------------------------


@pytest.mark.parametrize("peephole", [False, True])
def test_recurrent_mask(peephole):
    torch.manual_seed(3)
    cell = LSTMCell(FEAT, H, peephole=peephole, dtype=DT)
    x, h, c = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)
    xp = cell.project_input(x)
    y_none, (h_none, c_none) = cell.step(xp, (h, c))
    y_ones, (h_ones, c_ones) = cell.step(xp, (h, c), torch.ones(B, H, dtype=DT))
    assert torch.equal(y_ones, y_none) and torch.equal(c_ones, c_none)
    mask = torch.tensor([[0.0, 2.0, 2.0, 0.0], [2.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 0.0]], dtype=DT)
    y_m, (h_m, c_m) = cell.step(xp, (h, c), mask)
    # the carried c_{t-1} (f * c and the peepholes) is NOT masked; only h inside W_h h is
    h_hand, c_hand = lstm_by_hand(params_of(cell), x, h, c, peephole=peephole, mask=mask)
    torch.testing.assert_close(c_m, c_hand, **TIGHT)
    torch.testing.assert_close(h_m, h_hand, **TIGHT)
    torch.testing.assert_close(y_m, h_hand, **TIGHT)
    assert not torch.allclose(h_m, h_none)


# --- 8. bad input -------------------------------------------------------------------------------


def test_bad_input():
    cell = LSTMCell(FEAT, H)
    with _raises(ValueError, "LSTMCell: expected input (B, 3), got (2, 5, 3)"):
        cell(torch.randn(2, 5, 3))
    with _raises(ValueError, "LSTMCell: expected input (B, 3), got (2, 8)"):
        cell(torch.randn(2, 8))
    with _raises(TypeError, "LSTMCell: expected input to be a floating-point tensor, got dtype torch.int64"):
        cell(torch.ones(2, FEAT, dtype=torch.long))


def test_bad_state():
    cell = LSTMCell(FEAT, H)
    x = torch.randn(2, FEAT)
    z = torch.zeros(2, H)
    with _raises(ValueError, "LSTMCell: expected state[1] of shape (2, 4), got (2, 5)"):
        cell(x, (z, torch.zeros(2, 5)))
    with _raises(ValueError, "LSTMCell: expected state[0] of shape (2, 4), got (3, 4)"):
        cell(x, (torch.zeros(3, H), z))
    with _raises(TypeError, "LSTMCell: expected state to be a tuple of 2 tensors of shapes "
                            "[(2, 4), (2, 4)], got a tuple of 3"):
        cell(x, (z, z, z))
    with _raises(TypeError, "LSTMCell: expected state to be a tuple of 2 tensors of shapes "
                            "[(2, 4), (2, 4)], got Tensor"):
        cell(x, z)
    with _raises(ValueError, "LSTMCell: expected state[0] on cpu with dtype torch.float64 like the input, "
                             "got cpu torch.float32"):
        LSTMCell(FEAT, H, dtype=DT)(x.double(), (z, z.double()))


def test_bad_constructor_arguments():
    with _raises(ValueError, "LSTMCell: expected hidden_size >= 1, got 0"):
        LSTMCell(FEAT, 0)
    with _raises(TypeError, "LSTMCell: expected hidden_size to be an int, got bool True"):
        LSTMCell(FEAT, True)
    with _raises(TypeError, "LSTMCell: expected input_size to be an int, got float 3.0"):
        LSTMCell(3.0, H)
