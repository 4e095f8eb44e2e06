"""MDLSTM: the diagonal wavefront equals the per-pixel double loop, gradcheck, shapes, the four directions
equal flipped single-direction scans, and bad input."""
import pytest
import torch

from rnnkit.layers.mdlstm import CORNERS, MDLSTM, MDLSTMCell, MDLSTMConfig, diagonals, naive_scan


def _layer(F=3, Hd=4, directions=4, merge="concat", dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return MDLSTM(MDLSTMConfig(F, Hd, directions=directions, merge=merge)).to(dtype)


def test_cell_equations_by_hand():
    torch.manual_seed(1)
    cell = MDLSTMCell(3, 2).double()
    x, hu, cu, hl, cl = (torch.randn(5, n, dtype=torch.float64) for n in (3, 2, 2, 2, 2))
    h, (h2, c) = cell(x, (hu, cu, hl, cl))
    z = cell.weight_ih @ x.T + cell.weight_hh[:, :2] @ hu.T + cell.weight_hh[:, 2:] @ hl.T
    z = (z.T + cell.bias_ih + cell.bias_hh)
    i, fu, fl, g, o = (z[:, k * 2:(k + 1) * 2] for k in range(5))
    c_ref = i.sigmoid() * g.tanh() + fu.sigmoid() * cu + fl.sigmoid() * cl
    torch.testing.assert_close(c, c_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, o.sigmoid() * c_ref.tanh(), rtol=0, atol=1e-12)
    assert h is h2


@pytest.mark.parametrize("H, W", [(1, 1), (1, 5), (4, 1), (3, 5), (6, 4)])
def test_wavefront_equals_per_pixel_loop(H, W):
    layer = _layer(directions=1)
    x = torch.randn(2, H, W, 3, dtype=torch.float64)
    out, (h_n, c_n) = layer(x)
    ref = naive_scan(layer.cells[0], x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n[0], ref[:, -1, -1], rtol=0, atol=1e-12)


def test_four_directions_equal_flipped_single_scans():
    layer = _layer(directions=4)
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    out, _ = layer(x)
    assert out.shape == (2, 4, 5, 16)
    for d, name in enumerate(CORNERS):
        axes = CORNERS[name]
        xf = x.flip(axes) if axes else x
        ref = naive_scan(layer.cells[d], xf)
        ref = ref.flip(axes) if axes else ref
        torch.testing.assert_close(out[..., d * 4:(d + 1) * 4], ref, rtol=0, atol=1e-12)
    summed, _ = _layer(directions=4, merge="sum")(x)
    assert summed.shape == (2, 4, 5, 4)
    torch.testing.assert_close(summed, out.reshape(2, 4, 5, 4, 4).sum(3), rtol=0, atol=1e-12)


def test_each_position_sees_the_whole_image_with_four_directions():
    x = torch.randn(1, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    out, _ = _layer(directions=4)(x)
    out[0, 0, 0].sum().backward()
    assert (x.grad.abs().sum(-1) > 0).all()  # top-left output depends on every pixel
    x.grad = None
    out1, _ = _layer(directions=1)(x)
    out1[0, 1, 1].sum().backward()
    dep = x.grad.abs().sum(-1)[0] > 0
    assert dep[:2, :2].all() and not dep[2:].any() and not dep[:, 2:].any()  # only the upper-left quadrant


def test_gradcheck_tiny():
    layer = _layer(F=2, Hd=2, directions=4)
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x)[0], (x,), eps=1e-6, atol=1e-5)
    params = list(layer.parameters())
    assert torch.autograd.gradcheck(lambda *p: _with_params(layer, p, x.detach()), params, eps=1e-6, atol=1e-5)


def _with_params(layer, params, x):
    with torch.nn.utils.stateless._reparametrize_module(layer, dict(zip(
            [n for n, _ in layer.named_parameters()], params))):
        return layer(x)[0]


def test_diagonals_cover_every_position_once():
    H, W = 3, 5
    seen = sorted((i, k - i) for k, (lo, hi) in enumerate(diagonals(H, W)) for i in range(lo, hi + 1))
    assert seen == [(i, j) for i in range(H) for j in range(W)]


def test_float32_and_bad_input():
    layer = MDLSTM(MDLSTMConfig(3, 4))
    out, (h, c) = layer(torch.rand(2, 3, 3, 3))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 3, 16) and h.shape == c.shape == (4, 2, 4)
    with pytest.raises(ValueError, match=r"expected input \(B, H, W, 3\) floats, got torch.float32 \(2, 3, 3\)"):
        layer(torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match=r"expected input \(B, H, W, 3\).*\(2, 3, 3, 5\)"):
        layer(torch.rand(2, 3, 3, 5))
    with pytest.raises(ValueError, match="dtype torch.float64 does not match"):
        layer(torch.rand(2, 3, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected directions in"):
        MDLSTMConfig(3, 4, directions=3)
    with pytest.raises(ValueError, match="expected merge in"):
        MDLSTMConfig(3, 4, merge="mean")
    with pytest.raises(ValueError, match=r"MDLSTMCell: expected state .* each \(2, 4\)"):
        layer.cells[0](torch.rand(2, 3), (torch.zeros(2, 4),) * 3 + (torch.zeros(2, 5),))
