"""TCN (Bai et al. 2018): causality, receptive field, shapes, lengths, weight norm, gradients, bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.layers import make_encoder
from rnnkit.layers.tcn import TCN


def tcn_of(F=3, H=5, L=2, k=3, dropout=0.0, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return TCN(F, H, L, kernel_size=k, dropout=dropout).to(dtype)


def x_of(B=2, T=9, F=3, seed=1, dtype=torch.float32):
    return torch.randn(B, T, F, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_shapes_and_no_state():
    tcn = tcn_of(F=3, H=5, L=3)
    out, state = tcn(x_of(4, 11, 3))
    assert out.shape == (4, 11, 5) and out.dtype == torch.float32
    assert state is None
    assert tcn.output_size == 5 and tcn.input_size == 3
    assert len(tcn.blocks) == 3
    assert [b.conv1.dilation[0] for b in tcn.blocks] == [1, 2, 4]


def test_make_encoder_builds_it():
    tcn = make_encoder("tcn", 2, 6, 3, kernel_size=4, dropout=0.1)
    assert isinstance(tcn, TCN)
    assert (tcn.kernel_size, tcn.num_layers, tcn.dropout, tcn.output_size) == (4, 3, 0.1, 6)


@pytest.mark.parametrize("k, L", [(2, 1), (3, 2), (7, 8), (8, 8)])
def test_receptive_field_formula(k, L):
    assert TCN(1, 2, L, kernel_size=k).receptive_field == 1 + 2 * (k - 1) * (2 ** L - 1)


@pytest.mark.parametrize("k, L", [(2, 1), (2, 3), (3, 2)])
def test_output_reads_exactly_its_receptive_field(k, L):
    """d out[T-1] / d x[s] is zero for s <= T-1-R and nonzero at s = T-R (the farthest input it sees)."""
    tcn = tcn_of(F=2, H=8, L=L, k=k, seed=3)
    R = tcn.receptive_field
    T = R + 5
    x = x_of(32, T, 2, seed=4).requires_grad_(True)  # many sequences: some ReLU path is open in one of them
    out, _ = tcn(x)
    out[:, -1].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 2))  # (T,)
    assert torch.all(grad[: T - R] == 0), grad
    assert grad[T - R] > 0 and grad[-1] > 0


@settings(max_examples=25, deadline=None)
@given(T=st.integers(2, 20), k=st.integers(2, 4), L=st.integers(1, 3), t=st.integers(0, 18), seed=st.integers(0, 99))
def test_causality_future_inputs_never_change_past_outputs(T, k, L, t, seed):
    t = t % (T - 1)
    tcn = tcn_of(F=2, H=4, L=L, k=k, seed=seed)
    x = x_of(2, T, 2, seed=seed)
    y = x.clone()
    y[:, t + 1:] = torch.randn(2, T - t - 1, 2) * 10
    a, _ = tcn(x)
    b, _ = tcn(y)
    assert torch.equal(a[:, : t + 1], b[:, : t + 1])
    assert not torch.equal(a[:, t + 1:], b[:, t + 1:])


def test_padded_batch_equals_each_sequence_alone_and_padding_is_ignored():
    tcn = tcn_of(F=3, H=4, L=2)
    lengths = torch.tensor([9, 4, 1])
    x = x_of(3, 9, 3)
    x[1, 4:] = float("nan")  # padding may hold anything
    x[2, 1:] = 1e6
    x.requires_grad_(True)
    out, state = tcn(x, lengths=lengths)
    assert state is None
    for b, n in enumerate(lengths.tolist()):
        alone, _ = tcn(x[b: b + 1, :n].detach())
        torch.testing.assert_close(out[b, :n], alone[0], rtol=0, atol=1e-6)
        assert torch.all(out[b, n:] == 0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad[1, 4:] == 0) and torch.all(x.grad[2, 1:] == 0)


def test_packed_sequence_in_packed_out():
    tcn = tcn_of()
    x, lengths = x_of(3, 6, 3), torch.tensor([6, 2, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = tcn(packed)
    padded, out_lengths = pad_packed_sequence(out, batch_first=True)
    assert state is None and torch.equal(out_lengths, lengths)
    torch.testing.assert_close(padded, tcn(x, lengths=lengths)[0])


def test_weight_norm_parametrizes_every_dilated_convolution():
    tcn = tcn_of(F=3, H=5, L=2)
    for block in tcn.blocks:
        for conv in (block.conv1, block.conv2):
            g = conv.parametrizations.weight.original0  # (C_out, 1, 1)
            v = conv.parametrizations.weight.original1  # (C_out, C_in, k)
            expected = g * v / v.norm(dim=(1, 2), keepdim=True)
            torch.testing.assert_close(conv.weight, expected)
    assert tcn.blocks[0].downsample is not None  # 3 -> 5 channels: a 1x1 convolution on the residual
    assert tcn.blocks[1].downsample is None


def test_gradient_reaches_every_parameter_and_the_first_input():
    tcn = tcn_of(F=2, H=6, L=3, k=3)
    x = x_of(2, tcn.receptive_field, 2).requires_grad_(True)
    out, _ = tcn(x)
    out[:, -1].pow(2).sum().backward()  # a loss on the last step only
    for name, p in tcn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad[:, 0].abs().sum() > 0


def test_gradcheck_float64():
    tcn = tcn_of(F=2, H=3, L=2, k=2, dtype=torch.float64)
    x = x_of(2, 5, 2, dtype=torch.float64).requires_grad_(True)
    params = list(tcn.parameters())
    for p in params:
        p.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda inp: tcn(inp, lengths=torch.tensor([5, 3]))[0], (x,))

    # the weight-norm scale g of the first convolution: centred finite differences against autograd
    g = tcn.blocks[0].conv1.parametrizations.weight.original0  # (C_out, 1, 1)
    out, _ = tcn(x.detach())
    loss = out.pow(2).sum()
    (grad_g,) = torch.autograd.grad(loss, g)
    eps = 1e-6
    for i in range(g.shape[0]):
        with torch.no_grad():
            g[i] += eps
            up = tcn(x.detach())[0].pow(2).sum()
            g[i] -= 2 * eps
            down = tcn(x.detach())[0].pow(2).sum()
            g[i] += eps
        torch.testing.assert_close(grad_g[i, 0, 0], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_dropout_only_in_training():
    tcn = tcn_of(dropout=0.5)
    x = x_of()
    tcn.train()
    a, b = tcn(x)[0], tcn(x)[0]
    assert not torch.equal(a, b)
    tcn.eval()
    assert torch.equal(tcn(x)[0], tcn(x)[0])


def test_learns_to_delay_a_signal_by_its_receptive_field():
    """y_t = x_{t-6}: a memory of 6 steps, within the receptive field R = 9 of k=3, L=2."""
    torch.manual_seed(0)
    tcn = TCN(1, 8, 2, kernel_size=3)  # R = 9
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam([*tcn.parameters(), *head.parameters()], lr=1e-2)
    x = torch.randn(16, 30, 1, generator=torch.Generator().manual_seed(0))
    y = torch.zeros_like(x)
    y[:, 6:] = x[:, :-6]
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(head(tcn(x)[0])[:, 6:], y[:, 6:])
        first = first or loss.detach().item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.detach().item() < first / 10


def test_bad_input_is_a_clear_error():
    tcn = tcn_of(F=3)
    with pytest.raises(ValueError, match=r"TCN: a TCN has no state between calls.*got Tensor"):
        tcn(x_of(), state=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"TCN: expected input \(B, T, 3\), got \(2, 9, 4\)"):
        tcn(torch.randn(2, 9, 4))
    with pytest.raises(TypeError, match="TCN: expected input of dtype torch.float32 like the parameters, got torch.float64"):
        tcn(x_of(dtype=torch.float64))
    with pytest.raises(ValueError, match=r"TCN: expected every length in \[1, 9\].*lengths\[1\] = 10"):
        tcn(x_of(), lengths=torch.tensor([9, 10]))
    with pytest.raises(ValueError, match="TCN: expected kernel_size >= 2"):
        TCN(3, 4, 2, kernel_size=1)
    with pytest.raises(ValueError, match="TCN: expected dropout in"):
        TCN(3, 4, 2, dropout=1.5)
    with pytest.raises(ValueError, match="a TCN is causal; expected bidirectional=False"):
        make_encoder("tcn", 3, 4, 2, bidirectional=True)
    with pytest.raises(ValueError, match="a TCN has no recurrence"):
        make_encoder("tcn", 3, 4, 2, recurrent_dropout=0.2)
