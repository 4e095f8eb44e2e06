"""Luong global (dot, general, concat) and local (m, p) attention against the equations written out by hand."""
import math

import pytest
import torch

from rnnkit.attention import LocalAttention, LuongAttention, source_mask


def data(dtype=torch.float64, seed=0, Hq=6, Hm=6):
    torch.manual_seed(seed)
    lengths = torch.tensor([7, 4, 1])
    return torch.randn(3, Hq, dtype=dtype), torch.randn(3, 7, Hm, dtype=dtype), lengths, source_mask(lengths, 7)


def hand_score(attn_score, kind, h_t, hbar_s):
    if kind == "dot":
        return h_t @ hbar_s
    if kind == "general":
        return h_t @ (attn_score.W_a.weight @ hbar_s)  # h_t^T W_a h̄_s
    a = attn_score.additive  # v_a^T tanh(W_a [h_t; h̄_s]) with W_a = [W, U]
    W_a = torch.cat([a.W.weight, a.U.weight], dim=1)
    return a.v.weight[0] @ torch.tanh(W_a @ torch.cat([h_t, hbar_s]) + a.U.bias)


@pytest.mark.parametrize("kind", ["dot", "general", "concat"])
def test_global_scores_match_the_equations(kind):
    torch.manual_seed(1)
    attn = LuongAttention(kind, 6, 6).double()
    q, memory, lengths, mask = data()
    context, weights = attn(q, memory, mask)
    for b in range(3):
        n = int(lengths[b])
        e = torch.stack([hand_score(attn.score, kind, q[b], memory[b, s]) for s in range(n)])
        a = torch.softmax(e, 0)
        torch.testing.assert_close(weights[b, :n], a)
        assert torch.equal(weights[b, n:], torch.zeros(7 - n, dtype=weights.dtype))
        torch.testing.assert_close(context[b], (a[:, None] * memory[b, :n]).sum(0))


@pytest.mark.parametrize("kind", ["dot", "general", "concat"])
def test_many_queries_equal_one_at_a_time_and_gradcheck(kind):
    torch.manual_seed(2)
    attn = LuongAttention(kind, 6, 6).double()
    _, memory, lengths, mask = data()
    queries = torch.randn(3, 4, 6, dtype=torch.float64)
    c, w = attn(queries, memory, mask)
    for t in range(4):
        ct, wt = attn(queries[:, t], memory, mask)
        torch.testing.assert_close(c[:, t], ct)
    q, memory = queries[:, 0].clone().requires_grad_(), memory.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q, m: attn(q, m, mask)[0], (q, memory))


def test_dot_needs_equal_sizes_and_general_maps_between_them():
    with pytest.raises(ValueError, match="dot score needs query_size == memory_size, got 4 and 6"):
        LuongAttention("dot", 4, 6)
    with pytest.raises(ValueError, match="expected kind in"):
        LuongAttention("cosine", 4, 4)
    q, memory, _, mask = data(Hq=4, Hm=6)
    c, w = LuongAttention("general", 4, 6).double()(q, memory, mask)
    assert c.shape == (3, 6)


def window_reference(attn, q, memory, n, p, gaussian):
    """Luong's local attention for one sentence, written out: softmax over |s - p| <= D, times the Gaussian."""
    D = attn.window
    inside = [s for s in range(n) if abs(s - p) <= D]
    e = torch.stack([q @ (attn.score.W_a.weight @ memory[s]) for s in inside])
    a = torch.softmax(e, 0)
    if gaussian:
        a = a * torch.tensor([math.exp(-(s - p) ** 2 / (2 * (D / 2) ** 2)) for s in inside], dtype=a.dtype)
    full = torch.zeros(memory.shape[0], dtype=a.dtype)
    full[inside] = a
    return full


def test_local_m_reads_the_window_around_t_and_stays_on_the_source():
    torch.manual_seed(3)
    attn = LocalAttention("m", 6, 6, window=2).double()
    q, memory, lengths, mask = data()
    for t in (0, 3, 9):  # t = 9 is past every source: p_t = length - 1
        context, weights = attn(q, memory, mask, step=t)
        for b in range(3):
            n = int(lengths[b])
            p = min(t, n - 1)
            ref = window_reference(attn, q[b], memory[b], n, p, gaussian=False)
            torch.testing.assert_close(weights[b], ref)
            assert weights[b].sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="local-m needs the decoder position step=t"):
        attn(q, memory, mask)


def test_local_p_predicts_a_position_and_weighs_the_window_with_a_gaussian():
    torch.manual_seed(4)
    attn = LocalAttention("p", 6, 6, window=2).double()
    q, memory, lengths, mask = data()
    p = attn.positions(q, lengths).detach()
    assert p.shape == (3,) and bool((p >= 0).all()) and bool((p <= (lengths - 1)).all())
    assert float(p[2]) == 0.0  # a one-token source has one position
    # p_t = (S - 1) sigmoid(v_p^T tanh(W_p h_t))
    torch.testing.assert_close(p, (lengths - 1) * torch.sigmoid(attn.v_p(torch.tanh(attn.W_p(q)))).squeeze(-1))
    context, weights = attn(q, memory, mask)
    for b in range(3):
        ref = window_reference(attn, q[b], memory[b], int(lengths[b]), float(p[b]), gaussian=True)
        torch.testing.assert_close(weights[b], ref)
        outside = (torch.arange(7) - p[b]).abs() > 2
        assert torch.equal(weights[b][outside], torch.zeros(int(outside.sum()), dtype=weights.dtype))
        assert weights[b].sum() <= 1 + 1e-12
    torch.testing.assert_close(context, torch.einsum("bs,bsh->bh", weights, memory))


def test_local_p_gradient_reaches_the_position_predictor():
    torch.manual_seed(5)
    attn = LocalAttention("p", 6, 6, window=2).double()
    q, memory, lengths, mask = data()
    attn(q, memory, mask)[0].square().sum().backward()
    assert attn.W_p.weight.grad.abs().sum() > 0 and attn.v_p.weight.grad.abs().sum() > 0
    q = q.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q: attn(q, memory, mask)[0], (q,))


@pytest.mark.parametrize("mode", ["m", "p"])
def test_local_many_queries_equal_one_at_a_time(mode):
    torch.manual_seed(6)
    attn = LocalAttention(mode, 6, 6, window=1).double()
    _, memory, lengths, mask = data()
    queries = torch.randn(3, 5, 6, dtype=torch.float64)
    c, w = attn(queries, memory, mask)
    for t in range(5):
        ct, wt = attn(queries[:, t], memory, mask, step=t)
        torch.testing.assert_close(w[:, t], wt)
        torch.testing.assert_close(c[:, t], ct)


def test_local_arguments():
    with pytest.raises(ValueError, match="expected mode 'm'"):
        LocalAttention("x", 4, 4)
    with pytest.raises(ValueError, match="window >= 1"):
        LocalAttention("p", 4, 4, window=0)
