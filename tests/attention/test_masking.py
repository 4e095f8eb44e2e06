"""Masking helpers: the source mask, a softmax that gives padded positions exactly 0, the weighted sum."""
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.attention import attend, masked_softmax, source_mask
from rnnkit.attention.masking import check_attention_inputs


def test_source_mask():
    assert source_mask(torch.tensor([3, 1]), 4).tolist() == [[True, True, True, False], [True, False, False, False]]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 9), st.integers(0, 2**31 - 1), st.booleans())
def test_masked_softmax_sums_to_one_over_real_positions_and_is_zero_elsewhere(B, S, seed, per_step):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    mask = source_mask(lengths, S)
    scores = torch.randn(B, 3, S, generator=g) if per_step else torch.randn(B, S, generator=g)
    scores = scores.masked_fill(~(mask[:, None] if per_step else mask), 1e4)  # huge scores at padding: ignored
    w = masked_softmax(scores, mask)
    m = mask[:, None].expand_as(w) if per_step else mask
    assert torch.equal(w[~m], torch.zeros_like(w[~m]))
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))


def test_padded_positions_get_no_gradient():
    scores = torch.randn(2, 4, requires_grad=True)
    mask = source_mask(torch.tensor([4, 2]), 4)
    (masked_softmax(scores, mask) * torch.randn(2, 4)).sum().backward()
    assert torch.equal(scores.grad[1, 2:], torch.zeros(2))


def test_attend_is_the_weighted_sum():
    w, memory = torch.rand(2, 3), torch.randn(2, 3, 4)
    torch.testing.assert_close(attend(w, memory), (w[..., None] * memory).sum(1))
    w3 = torch.rand(2, 5, 3)
    torch.testing.assert_close(attend(w3, memory), torch.einsum("bts,bsh->bth", w3, memory))


@pytest.mark.parametrize("query, memory, mask, message", [
    (torch.randn(2, 4), torch.randn(2, 3, 5), None, "expected memory (B, S, 6)"),
    (torch.randn(3, 4), torch.randn(2, 3, 6), None, "expected query (2, 4) or (2, T, 4)"),
    (torch.randn(2, 4), torch.randn(2, 3, 6), torch.ones(2, 3), "bool tensor"),
    (torch.randn(2, 4), torch.randn(2, 3, 6), torch.ones(2, 4, dtype=torch.bool), "expected mask (2, 3)"),
    (torch.randn(2, 4), torch.randn(2, 3, 6), torch.tensor([[True] * 3, [False] * 3]), "mask[1] has no real position"),
    (torch.ones(2, 4, dtype=torch.long), torch.randn(2, 3, 6), None, "floating-point"),
])
def test_bad_inputs_name_what_was_expected(query, memory, mask, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        check_attention_inputs("Test", query, memory, mask, 4, 6)
