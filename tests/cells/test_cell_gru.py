"""GRUCell: shape/dtype contract, hand-written equations in both forms (reset before / after),
parity with torch.nn.GRUCell, lecture 003's z <-> 1 - z convention, gradcheck, recurrent mask and
error messages."""

import pytest
import torch

from rnnkit.cells import GRUCell
from cellkit import _raises, fill_deterministic_, gradcheck_cell, params_of

B, FEAT, H = 3, 3, 4
DT = torch.float64
TIGHT = {"rtol": 1e-12, "atol": 1e-12}
R, Z, G = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)  # gate rows r, z, g (torch's n)


def gru_by_hand(p, x, h, reset_after, mask=None):
    """Our convention: z weighs h_{t-1}. The mask touches h only inside the recurrent products."""
    W, U, bx, bh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    hr = h if mask is None else h * mask
    r = torch.sigmoid(x @ W[R].T + bx[R] + hr @ U[R].T + bh[R])
    z = torch.sigmoid(x @ W[Z].T + bx[Z] + hr @ U[Z].T + bh[Z])
    if reset_after:
        g = torch.tanh(x @ W[G].T + bx[G] + r * (hr @ U[G].T + bh[G]))
    else:
        g = torch.tanh(x @ W[G].T + bx[G] + (r * hr) @ U[G].T + bh[G])
    return z * h + (1 - z) * g  # the UNmasked h_{t-1}


# --- 1. shape and dtype contract -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset_after", [False, True])
def test_shapes_and_dtypes(dtype, reset_after):
    cell = GRUCell(FEAT, H, reset_after=reset_after, dtype=dtype)
    x = torch.randn(B, FEAT, dtype=dtype)
    h0 = cell.initial_state(B)
    assert h0.shape == (B, H) and h0.dtype == dtype and h0.device == x.device
    assert torch.count_nonzero(h0) == 0
    y, h = cell(x, h0)
    assert y.shape == h.shape == (B, H) and y.dtype == h.dtype == dtype
    assert torch.equal(y, h) and cell.output_size == H
    y0, _ = cell(x)
    assert torch.equal(y0, y)


def test_initial_state_dtype_override():
    h0 = GRUCell(FEAT, H).initial_state(2, dtype=torch.float64)
    assert h0.dtype == torch.float64 and h0.shape == (2, H) and torch.count_nonzero(h0) == 0


@pytest.mark.parametrize("reset_after", [False, True])
def test_parameter_names_and_count(reset_after):
    cell = GRUCell(FEAT, H, reset_after=reset_after)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert cell.weight_ih.shape == (3 * H, FEAT) and cell.weight_hh.shape == (3 * H, H)
    assert sum(p.numel() for p in cell.parameters()) == 108  # 36 + 48 + 12 + 12
    nobias = GRUCell(FEAT, H, reset_after=reset_after, bias=False)
    assert [n for n, _ in nobias.named_parameters()] == ["weight_ih", "weight_hh"]
    assert sum(p.numel() for p in nobias.parameters()) == 84


# --- 2. equations by hand and fixed numeric answers ----------------------------------------------


@pytest.mark.parametrize("reset_after", [False, True])
def test_equations_by_hand(reset_after):
    torch.manual_seed(0)
    cell = GRUCell(FEAT, H, reset_after=reset_after, dtype=DT)
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    y, h1 = cell(x, h)
    expected = gru_by_hand(params_of(cell), x, h, reset_after)
    torch.testing.assert_close(y, expected, **TIGHT)
    torch.testing.assert_close(h1, expected, **TIGHT)
    # the two forms really differ on the same weights
    assert not torch.allclose(expected, gru_by_hand(params_of(cell), x, h, not reset_after))


# computed once from gru_by_hand with fill_deterministic_ and the fixed inputs below
FIXED = {
    False: [[0.498459, 0.523141, 0.474959, 0.373627], [-0.315879, -0.502003, -0.658354, -0.780029]],
    True: [[0.391181, 0.433136, 0.416391, 0.343843], [-0.324551, -0.509385, -0.663494, -0.783131]],
}


@pytest.mark.parametrize("reset_after", [False, True])
def test_fixed_numeric_answer(reset_after):
    cell = GRUCell(FEAT, H, reset_after=reset_after, dtype=DT)
    fill_deterministic_(cell)
    x = torch.linspace(-1.0, 1.0, 2 * FEAT, dtype=DT).reshape(2, FEAT)
    h = torch.linspace(0.4, -0.4, 2 * H, dtype=DT).reshape(2, H)
    y, h1 = cell(x, h)
    want = torch.tensor(FIXED[reset_after], dtype=DT)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h1, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gru_by_hand(params_of(cell), x, h, reset_after), want, rtol=1e-5, atol=1e-6)


# --- 3. parity with torch.nn.GRUCell ------------------------------------------------------------


def _loss_and_grads(module, x, h, call):
    x = x.clone().requires_grad_()
    out = call(module, x, h)
    w = torch.linspace(-1.0, 2.0, out.numel(), dtype=DT).reshape(out.shape)
    (out * w).sum().backward()
    return out.detach(), x.grad, {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_parity_with_torch_grucell(direction):
    torch.manual_seed(1)
    ref = torch.nn.GRUCell(FEAT, H, dtype=DT)
    ours = GRUCell(FEAT, H, reset_after=True, dtype=DT)
    if direction == "torch_to_ours":
        ours.load_state_dict(ref.state_dict())
    else:
        ref.load_state_dict(ours.state_dict())
    for name, p in ours.named_parameters():
        assert torch.equal(p, getattr(ref, name))
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    y1, gx1, gp1 = _loss_and_grads(ours, x, h, lambda m, x, h: m(x, h)[1])
    y2, gx2, gp2 = _loss_and_grads(ref, x, h, lambda m, x, h: m(x, h))
    torch.testing.assert_close(y1, y2, **TIGHT)
    torch.testing.assert_close(gx1, gx2, **TIGHT)
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        torch.testing.assert_close(gp1[name], gp2[name], **TIGHT)


def test_reset_before_is_not_torch():
    """Torch's weights load into the reset-before form, but it computes a different function."""
    torch.manual_seed(2)
    ref = torch.nn.GRUCell(FEAT, H, dtype=DT)
    ours = GRUCell(FEAT, H, reset_after=False, dtype=DT)
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    diff = (ours(x, h)[0] - ref(x, h)).abs().max()
    assert diff > 1e-4


# --- 4. lecture 003/004 convention: h_t = (1 - z) h_{t-1} + z h~ ------------------------------


def gru_lecture003(Wz, Wr, W, bz, br, bx, bh, x, h, reset_after):
    """Lecture 003 with weights acting on [h_{t-1}, x_t]; biases added (b_h split for reset-after)."""
    hx = torch.cat([h, x], dim=1)
    z = torch.sigmoid(hx @ Wz.T + bz)
    r = torch.sigmoid(hx @ Wr.T + br)
    if reset_after:
        h_tilde = torch.tanh(x @ W[:, H:].T + bx + r * (h @ W[:, :H].T + bh))
    else:
        h_tilde = torch.tanh(torch.cat([r * h, x], dim=1) @ W.T + bx + bh)
    return (1 - z) * h + z * h_tilde


@pytest.mark.parametrize("reset_after", [False, True])
def test_lecture003_convention_by_negating_z_rows(reset_after):
    torch.manual_seed(3)
    Wz, Wr, W = (torch.randn(H, H + FEAT, dtype=DT) for _ in range(3))
    bz_x, bz_h, br, bx, bh = (torch.randn(H, dtype=DT) for _ in range(5))
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    lecture = gru_lecture003(Wz, Wr, W, bz_x + bz_h, br, bx, bh, x, h, reset_after)

    def load(cell, sign):
        with torch.no_grad():
            cell.weight_ih.copy_(torch.cat([Wr[:, H:], sign * Wz[:, H:], W[:, H:]]))
            cell.weight_hh.copy_(torch.cat([Wr[:, :H], sign * Wz[:, :H], W[:, :H]]))
            cell.bias_ih.copy_(torch.cat([br, sign * bz_x, bx]))
            cell.bias_hh.copy_(torch.cat([torch.zeros(H, dtype=DT), sign * bz_h, bh]))
        return cell

    negated = load(GRUCell(FEAT, H, reset_after=reset_after, dtype=DT), -1.0)
    torch.testing.assert_close(negated(x, h)[0], lecture, **TIGHT)
    # and without the negation the two conventions disagree
    plain = load(GRUCell(FEAT, H, reset_after=reset_after, dtype=DT), 1.0)
    assert not torch.allclose(plain(x, h)[0], lecture)


# --- 6. gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_after, bias", [(False, True), (True, True), (False, False), (True, False)])
def test_gradcheck_with_parameters(reset_after, bias):
    torch.manual_seed(4)
    cell = GRUCell(FEAT, H, reset_after=reset_after, bias=bias, dtype=DT)
    assert gradcheck_cell(cell)


# --- 7. recurrent mask ----------------------------------------------------------------------------


@pytest.mark.parametrize("reset_after", [False, True])
def test_recurrent_mask(reset_after):
    torch.manual_seed(5)
    cell = GRUCell(FEAT, H, reset_after=reset_after, dtype=DT)
    x, h = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    xp = cell.project_input(x)
    y_none, _ = cell.step(xp, h)
    y_ones, _ = cell.step(xp, h, torch.ones(B, H, dtype=DT))
    assert torch.equal(y_ones, y_none)
    mask = torch.tensor([[0.0, 2.0, 2.0, 0.0], [2.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=DT)
    y_m, h_m = cell.step(xp, h, mask)
    expected = gru_by_hand(params_of(cell), x, h, reset_after, mask=mask)
    torch.testing.assert_close(y_m, expected, **TIGHT)
    torch.testing.assert_close(h_m, expected, **TIGHT)
    assert not torch.allclose(y_m, y_none)
    # z * h_{t-1} must use the unmasked h: masking it there too gives a different answer
    p = params_of(cell)
    z = torch.sigmoid(x @ p["weight_ih"][Z].T + p["bias_ih"][Z] + (h * mask) @ p["weight_hh"][Z].T + p["bias_hh"][Z])
    wrong = expected + z * (h * mask - h)
    assert not torch.allclose(y_m, wrong)


# --- 8. bad input -------------------------------------------------------------------------------


def test_bad_input():
    cell = GRUCell(FEAT, H)
    with _raises(ValueError, "GRUCell: expected input (B, 3), got (2, 5, 3)"):
        cell(torch.randn(2, 5, 3))
    with _raises(ValueError, "GRUCell: expected input (B, 3), got (6,)"):
        cell(torch.randn(6))
    with _raises(ValueError, "GRUCell: expected input (B, 3), got (2, 2)"):
        cell(torch.randn(2, 2))
    with _raises(TypeError, "GRUCell: expected input to be a floating-point tensor, got dtype torch.int64"):
        cell(torch.ones(2, FEAT, dtype=torch.long))


def test_bad_state():
    cell = GRUCell(FEAT, H)
    x = torch.randn(2, FEAT)
    with _raises(ValueError, "GRUCell: expected state[0] of shape (2, 4), got (2, 12)"):
        cell(x, torch.zeros(2, 3 * H))
    with _raises(ValueError, "GRUCell: expected state[0] of shape (2, 4), got (5, 4)"):
        cell(x, torch.zeros(5, H))
    with _raises(ValueError, "GRUCell: expected state[0] on cpu with dtype torch.float64 like the input, "
                             "got cpu torch.float32"):
        GRUCell(FEAT, H, dtype=DT)(x.double(), torch.zeros(2, H))
    with _raises(TypeError, "GRUCell: expected state to be a tensor of shapes [(2, 4)], got a tuple of 2"):
        cell(x, (torch.zeros(2, H), torch.zeros(2, H)))


def test_bad_constructor_arguments():
    with _raises(ValueError, "GRUCell: expected hidden_size >= 1, got 0"):
        GRUCell(FEAT, 0)
    with _raises(TypeError, "GRUCell: expected hidden_size to be an int, got bool True"):
        GRUCell(FEAT, True)


def test_one_tuple_state_is_rejected_by_the_cell():
    cell = GRUCell(FEAT, H)
    with pytest.raises((TypeError, ValueError), match="GRUCell"):
        cell(torch.randn(2, FEAT), (torch.zeros(2, H),))
