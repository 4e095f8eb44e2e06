"""LayerNormLSTMCell: Ba et al. 2016's equations written out by hand, parameters and bad input."""
import pytest
import torch

from rnnkit.cells import LayerNormLSTMCell
from rnnkit.layers import RNN


def ln(a, gamma, beta, eps=1e-5):
    mu = a.mean(-1, keepdim=True)
    var = ((a - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (a - mu) / torch.sqrt(var + eps) + beta


def test_step_is_the_papers_equations():
    torch.manual_seed(0)
    cell = LayerNormLSTMCell(3, 4).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    a = ln(x @ cell.weight_ih.T, cell.norm_ih_weight, cell.norm_ih_bias) + \
        ln(h @ cell.weight_hh.T, cell.norm_hh_weight, cell.norm_hh_bias)
    i, f, g, o = a.chunk(4, dim=1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(ln(c_ref, cell.norm_c_weight, cell.norm_c_bias))
    y, (h1, c1) = cell(x, (h, c))
    torch.testing.assert_close(c1, c_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1, h_ref, rtol=1e-12, atol=1e-12)
    assert y is h1


def test_parameters_and_initialisation():
    cell = LayerNormLSTMCell(3, 4, forget_bias=1.0)
    shapes = {n: tuple(p.shape) for n, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (16, 3), "weight_hh": (16, 4), "norm_ih_weight": (16,), "norm_ih_bias": (16,),
                      "norm_hh_weight": (16,), "norm_hh_bias": (16,), "norm_c_weight": (4,), "norm_c_bias": (4,)}
    assert torch.all(cell.norm_c_weight == 1) and torch.all(cell.norm_hh_bias == 0)
    assert torch.all(cell.norm_ih_bias[4:8] == 1) and torch.all(cell.norm_ih_bias[:4] == 0)


def test_runs_in_a_bidirectional_stack_with_lengths():
    rnn = RNN("layer-norm-lstm", 3, 4, num_layers=2, bidirectional=True)
    out, states = rnn(torch.randn(2, 5, 3), lengths=[5, 2])
    assert out.shape == (2, 5, 8) and torch.count_nonzero(out[1, 2:]) == 0
    out.sum().backward()
    assert all(p.grad is not None for p in rnn.parameters())


@pytest.mark.parametrize("eps", [0.0, -1e-5])
def test_bad_eps_is_refused(eps):
    with pytest.raises(ValueError, match="eps > 0"):
        LayerNormLSTMCell(3, 4, eps=eps)
