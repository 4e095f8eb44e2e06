"""MinimalGRUCell (lecture 001's simplified GRU): shape/dtype contract, hand-written equations for the
one-gate and two-gate versions, the memory cell held by a closed update gate, gradcheck, recurrent
mask and error messages. torch has no such cell."""

import pytest
import torch

from rnnkit.cells import MinimalGRUCell
from cellkit import _raises, fill_deterministic_, gradcheck_cell, params_of

B, FEAT, H = 3, 3, 4
DT = torch.float64
TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def minimal_gru_by_hand(p, x, h, c, reset_gate, mask=None):
    """Lecture 001: rows u, h (or u, r, h). Returns (y_t = c_t, h_t, c_t)."""
    W, U, bx, bh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    hr = h if mask is None else h * mask
    u_ = slice(0, H)
    u = torch.sigmoid(x @ W[u_].T + bx[u_] + hr @ U[u_].T + bh[u_])
    if reset_gate:
        r_, h_ = slice(H, 2 * H), slice(2 * H, 3 * H)
        r = torch.sigmoid(x @ W[r_].T + bx[r_] + hr @ U[r_].T + bh[r_])
        h_new = torch.tanh(x @ W[h_].T + bx[h_] + (r * hr) @ U[h_].T + bh[h_])
    else:
        h_ = slice(H, 2 * H)
        h_new = torch.tanh(x @ W[h_].T + bx[h_] + hr @ U[h_].T + bh[h_])
    c_new = (1 - u) * c + u * h_new
    return c_new, h_new, c_new


# --- 1 / 9. shape and dtype contract, gate blocks ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset_gate", [False, True])
def test_shapes_and_dtypes(dtype, reset_gate):
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, dtype=dtype)
    x = torch.randn(B, FEAT, dtype=dtype)
    state0 = cell.initial_state(B)
    assert isinstance(state0, tuple) and len(state0) == 2
    for s in state0:
        assert s.shape == (B, H) and s.dtype == dtype and s.device == x.device
        assert torch.count_nonzero(s) == 0
    y, (h, c) = cell(x, state0)
    assert y.shape == h.shape == c.shape == (B, H)
    assert y.dtype == h.dtype == c.dtype == dtype
    assert torch.equal(y, c)  # the output is the memory cell
    assert cell.output_size == H
    y0, _ = cell(x)
    assert torch.equal(y0, y)


def test_initial_state_dtype_override():
    h0, c0 = MinimalGRUCell(FEAT, H).initial_state(2, dtype=torch.float64)
    for s in (h0, c0):
        assert s.dtype == torch.float64 and s.shape == (2, H) and torch.count_nonzero(s) == 0


@pytest.mark.parametrize("reset_gate, k, count", [(False, 2, 72), (True, 3, 108)])
def test_gate_blocks_parameter_names_and_count(reset_gate, k, count):
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate)
    assert cell.gates == k
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert cell.weight_ih.shape == (k * H, FEAT) and cell.weight_hh.shape == (k * H, H)
    assert cell.bias_ih.shape == cell.bias_hh.shape == (k * H,)
    assert sum(p.numel() for p in cell.parameters()) == count  # k*H*F + k*H*H + 2*k*H
    nobias = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, bias=False)
    assert [n for n, _ in nobias.named_parameters()] == ["weight_ih", "weight_hh"]
    assert sum(p.numel() for p in nobias.parameters()) == count - 2 * k * H


# --- 2. equations by hand and fixed numeric answers ----------------------------------------------


@pytest.mark.parametrize("reset_gate", [False, True])
def test_equations_by_hand(reset_gate):
    torch.manual_seed(0)
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, dtype=DT)
    x, h, c = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)
    y, (h1, c1) = cell(x, (h, c))
    y_hand, h_hand, c_hand = minimal_gru_by_hand(params_of(cell), x, h, c, reset_gate)
    torch.testing.assert_close(y, y_hand, **TIGHT)
    torch.testing.assert_close(h1, h_hand, **TIGHT)
    torch.testing.assert_close(c1, c_hand, **TIGHT)


# computed once from minimal_gru_by_hand with fill_deterministic_ and the fixed inputs below
FIXED = {
    False: {"h": [[0.185369, 0.628934, 0.859588, 0.951166], [-0.380198, -0.771423, -0.928497, -0.978917]],
            "c": [[-0.2432, -0.021661, 0.214911, 0.440422], [-0.314987, -0.563174, -0.508371, -0.277218]]},
    True: {"h": [[0.603195, 0.759769, 0.859957, 0.920256], [-0.716681, -0.84631, -0.919413, -0.958526]],
           "c": [[-0.197914, -0.0271272, 0.145646, 0.315411], [-0.623289, -0.675334, -0.638682, -0.528679]]},
}


def fixed_inputs():
    x = torch.linspace(-1.0, 1.0, 2 * FEAT, dtype=DT).reshape(2, FEAT)
    h = torch.linspace(0.4, -0.4, 2 * H, dtype=DT).reshape(2, H)
    c = torch.linspace(-0.3, 0.6, 2 * H, dtype=DT).reshape(2, H)
    return x, h, c


@pytest.mark.parametrize("reset_gate", [False, True])
def test_fixed_numeric_answer(reset_gate):
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, dtype=DT)
    fill_deterministic_(cell)
    x, h, c = fixed_inputs()
    y, (h1, c1) = cell(x, (h, c))
    want_h = torch.tensor(FIXED[reset_gate]["h"], dtype=DT)
    want_c = torch.tensor(FIXED[reset_gate]["c"], dtype=DT)
    for got, want in ((y, want_c), (h1, want_h), (c1, want_c)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    _, h_hand, c_hand = minimal_gru_by_hand(params_of(cell), x, h, c, reset_gate)
    torch.testing.assert_close(h_hand, want_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_hand, want_c, rtol=1e-5, atol=1e-6)


# --- 9. a closed update gate keeps the memory cell -------------------------------------------


@pytest.mark.parametrize("reset_gate", [False, True])
def test_closed_update_gate_keeps_memory_exactly(reset_gate):
    torch.manual_seed(1)
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, dtype=DT)
    with torch.no_grad():
        cell.bias_ih[:H].fill_(-1e4)  # Gamma^u = sigmoid(-1e4 + ...) == 0 in float64
    c0 = torch.randn(B, H, dtype=DT)
    state = (torch.randn(B, H, dtype=DT), c0.clone())
    hs = []
    for _ in range(50):
        y, state = cell(torch.randn(B, FEAT, dtype=DT), state)
        assert torch.equal(y, c0) and torch.equal(state[1], c0)
        hs.append(state[0])
    assert not torch.allclose(hs[0], hs[-1])  # the vanilla state h keeps moving


@pytest.mark.parametrize("reset_gate", [False, True])
def test_open_update_gate_copies_h(reset_gate):
    torch.manual_seed(2)
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, dtype=DT)
    with torch.no_grad():
        cell.bias_ih[:H].fill_(1e4)  # Gamma^u == 1: c_t = h_t
    y, (h1, c1) = cell(torch.randn(B, FEAT, dtype=DT), (torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)))
    torch.testing.assert_close(c1, h1, **TIGHT)


# --- 6. gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_gate, bias", [(False, True), (True, True), (True, False)])
def test_gradcheck_with_parameters(reset_gate, bias):
    torch.manual_seed(3)
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, bias=bias, dtype=DT)
    assert gradcheck_cell(cell)


# --- 7. recurrent mask ----------------------------------------------------------------------------


@pytest.mark.parametrize("reset_gate", [False, True])
def test_recurrent_mask(reset_gate):
    torch.manual_seed(4)
    cell = MinimalGRUCell(FEAT, H, reset_gate=reset_gate, dtype=DT)
    x, h, c = torch.randn(B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)
    xp = cell.project_input(x)
    y_none, (h_none, c_none) = cell.step(xp, (h, c))
    y_ones, (h_ones, c_ones) = cell.step(xp, (h, c), torch.ones(B, H, dtype=DT))
    assert torch.equal(y_ones, y_none) and torch.equal(h_ones, h_none)
    mask = torch.tensor([[0.0, 2.0, 2.0, 0.0], [2.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 0.0]], dtype=DT)
    y_m, (h_m, c_m) = cell.step(xp, (h, c), mask)
    y_hand, h_hand, c_hand = minimal_gru_by_hand(params_of(cell), x, h, c, reset_gate, mask=mask)
    torch.testing.assert_close(y_m, y_hand, **TIGHT)
    torch.testing.assert_close(h_m, h_hand, **TIGHT)
    torch.testing.assert_close(c_m, c_hand, **TIGHT)
    assert not torch.allclose(h_m, h_none)


# --- 8. bad input -------------------------------------------------------------------------------


def test_bad_input():
    cell = MinimalGRUCell(FEAT, H)
    with _raises(ValueError, "MinimalGRUCell: expected input (B, 3), got (2, 5, 3)"):
        cell(torch.randn(2, 5, 3))
    with _raises(ValueError, "MinimalGRUCell: expected input (B, 3), got (2, 1)"):
        cell(torch.randn(2, 1))
    with _raises(TypeError, "MinimalGRUCell: expected input to be a floating-point tensor, got dtype torch.int64"):
        cell(torch.ones(2, FEAT, dtype=torch.long))


def test_bad_state():
    cell = MinimalGRUCell(FEAT, H)
    x = torch.randn(2, FEAT)
    z = torch.zeros(2, H)
    with _raises(TypeError, "MinimalGRUCell: expected state to be a tuple of 2 tensors of shapes "
                            "[(2, 4), (2, 4)], got a tuple of 1"):
        cell(x, (z,))
    with _raises(TypeError, "MinimalGRUCell: expected state to be a tuple of 2 tensors of shapes "
                            "[(2, 4), (2, 4)], got Tensor"):
        cell(x, z)
    with _raises(ValueError, "MinimalGRUCell: expected state[1] of shape (2, 4), got (2, 3)"):
        cell(x, (z, torch.zeros(2, 3)))
    with _raises(ValueError, "MinimalGRUCell: expected state[0] of shape (2, 4), got (4, 4)"):
        cell(x, (torch.zeros(4, H), z))
    with _raises(ValueError, "MinimalGRUCell: expected state[0] on cpu with dtype torch.float64 like the input, "
                             "got cpu torch.float32"):
        MinimalGRUCell(FEAT, H, dtype=DT)(x.double(), (z, z.double()))


def test_bad_constructor_arguments():
    with _raises(ValueError, "MinimalGRUCell: expected hidden_size >= 1, got 0"):
        MinimalGRUCell(FEAT, 0)
    with _raises(TypeError, "MinimalGRUCell: expected hidden_size to be an int, got bool True"):
        MinimalGRUCell(FEAT, True)
