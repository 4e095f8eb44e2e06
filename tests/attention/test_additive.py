"""Bahdanau attention against lecture 000's equations written out by hand; masking; keys; gradients."""
import pytest
import torch

from rnnkit.attention import BahdanauAttention, source_mask


def hand_bahdanau(attn, s, h, length):
    """e_j = v . tanh(W s + U h_j) for j < length, alpha = softmax(e), c = sum_j alpha_j h_j (one sentence)."""
    W, U, b_U, v = attn.score.W.weight, attn.score.U.weight, attn.score.U.bias, attn.score.v.weight[0]
    e = torch.stack([v @ torch.tanh(W @ s + U @ h[j] + b_U) for j in range(length)])
    alpha = torch.exp(e) / torch.exp(e).sum()
    c = sum(alpha[j] * h[j] for j in range(length))
    return c, torch.cat([alpha, torch.zeros(h.shape[0] - length, dtype=alpha.dtype)])


def setup(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    attn = BahdanauAttention(5, 6, 4).to(dtype)
    lengths = torch.tensor([4, 2, 1])
    return attn, torch.randn(3, 5, dtype=dtype), torch.randn(3, 4, 6, dtype=dtype), lengths, source_mask(lengths, 4)


def test_matches_the_equations():
    attn, s, h, lengths, mask = setup(torch.float64)
    context, weights = attn(s, h, mask)
    assert context.shape == (3, 6) and weights.shape == (3, 4)
    for b in range(3):
        c, alpha = hand_bahdanau(attn, s[b], h[b], int(lengths[b]))
        torch.testing.assert_close(context[b], c)
        torch.testing.assert_close(weights[b], alpha)


def test_padded_memory_never_matters():
    attn, s, h, lengths, mask = setup()
    h = h.requires_grad_()
    context, weights = attn(s, h, mask)
    assert torch.equal(weights[1, 2:], torch.zeros(2)) and torch.equal(weights[2, 1:], torch.zeros(3))
    garbage = h.detach().clone()
    garbage[1, 2:], garbage[2, 1:] = 1e6, -3e5  # any finite padding (an encoder pads with zeros)
    c2, w2 = attn(s, garbage, mask)
    torch.testing.assert_close(c2, context)
    context.sum().backward()
    assert torch.equal(h.grad[1, 2:], torch.zeros(2, 6)) and torch.equal(h.grad[2, 1:], torch.zeros(3, 6))


def test_precomputed_keys_and_many_queries_agree():
    attn, s, h, lengths, mask = setup()
    c1, w1 = attn(s, h, mask)
    c2, w2 = attn(s, h, mask, keys=attn.keys(h))
    torch.testing.assert_close(c1, c2)
    queries = torch.randn(3, 7, 5)
    c, w = attn(queries, h, mask)  # (B, T, Hq): T queries at once
    assert c.shape == (3, 7, 6) and w.shape == (3, 7, 4)
    for t in range(7):
        ct, wt = attn(queries[:, t], h, mask)
        torch.testing.assert_close(c[:, t], ct)
        torch.testing.assert_close(w[:, t], wt)


def test_gradcheck():
    attn, s, h, lengths, mask = setup(torch.float64)
    s, h = s.requires_grad_(), h.requires_grad_()
    assert torch.autograd.gradcheck(lambda s, h: attn(s, h, mask)[0], (s, h))


def test_bad_sizes():
    with pytest.raises(ValueError, match="attention_size >= 1"):
        BahdanauAttention(4, 4, 0)
    attn, s, h, lengths, mask = setup()
    with pytest.raises(ValueError, match=r"expected query \(3, 5\)"):
        attn(torch.randn(3, 4), h, mask)
