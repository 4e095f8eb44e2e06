"""Hard attention: one real position per query; Gumbel straight-through samples alpha in training, the mode in
evaluation; the gradient reaches the score."""
import pytest
import torch

from rnnkit.attention import HardAttention, LuongAttention, source_mask


def setup(seed=0):
    torch.manual_seed(seed)
    attn = HardAttention(4, 4)
    lengths = torch.tensor([5, 3])
    return attn, torch.randn(2, 4), torch.randn(2, 5, 4), source_mask(lengths, 5)


def test_evaluation_picks_the_mode_of_the_soft_weights():
    attn, q, memory, mask = setup()
    soft = LuongAttention("general", 4, 4)
    soft.score.load_state_dict(attn.score.state_dict())
    _, alpha = soft(q, memory, mask)
    attn.eval()
    context, weights = attn(q, memory, mask)
    j = alpha.argmax(-1)
    assert torch.equal(weights, torch.nn.functional.one_hot(j, 5).float())
    torch.testing.assert_close(context, memory[torch.arange(2), j])


def test_training_samples_alpha_never_a_padded_position():
    attn, q, memory, mask = setup(1)
    soft = LuongAttention("general", 4, 4)
    soft.score.load_state_dict(attn.score.state_dict())
    _, alpha = soft(q, memory, mask)
    torch.manual_seed(0)
    n = 4000
    counts = torch.zeros(2, 5)
    with torch.no_grad():
        for _ in range(n):
            _, w = attn(q, memory, mask)
            assert torch.equal(w.sum(-1), torch.ones(2))
            counts += w
    assert counts[1, 3:].sum() == 0  # padding is never drawn
    torch.testing.assert_close(counts / n, alpha, atol=0.03, rtol=0)  # j ~ Categorical(alpha)


def test_straight_through_gradient_reaches_the_score():
    attn, q, memory, mask = setup(2)
    context, weights = attn(q, memory, mask)
    assert set(weights.detach().unique().tolist()) <= {0.0, 1.0}
    (context * torch.randn_like(context)).sum().backward()
    assert attn.score.W_a.weight.grad.abs().sum() > 0


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature > 0"):
        HardAttention(4, 4, temperature=0)
