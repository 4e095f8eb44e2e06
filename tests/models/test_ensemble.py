"""Ensemble of language models: log of the averaged next-token distributions, forward and step alike."""
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.decode.sample import generate
from rnnkit.models.ensemble import Ensemble
from rnnkit.models.lm import LanguageModel, LMConfig
from rnnkit.train import sequence_loss

V = 11


def lm(seed, **kw):
    torch.manual_seed(seed)
    return LanguageModel(LMConfig(vocab_size=V, **{"hidden": 12, "layers": 2, "embedding": 5, **kw})).eval()


def ids(B=3, T=9, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_forward_is_the_log_of_the_mean_of_the_members_softmax():
    members = [lm(0), lm(1, cell="gru"), lm(2, embedding=0)]
    x = ids()
    log_p, states = Ensemble(members)(x)
    by_hand = torch.stack([F.softmax(m(x)[0], dim=-1) for m in members]).mean(0).log()
    torch.testing.assert_close(log_p, by_hand, rtol=1e-5, atol=1e-6)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(3, 9))  # a distribution: softmax(log p) = p
    torch.testing.assert_close(F.log_softmax(log_p, -1), log_p, rtol=0, atol=1e-5)
    assert len(states) == 3


def test_one_member_is_that_model():
    model = lm(0)
    x = ids()
    torch.testing.assert_close(Ensemble([model])(x)[0], F.log_softmax(model(x)[0], -1))


def test_steps_with_state_equal_the_whole_sequence():
    ens = Ensemble([lm(0), lm(1)])
    x = ids(2, 7)
    whole, _ = ens(x)
    for step in (ens.step, ens.stepper()):
        state, outs = None, []
        for t in range(7):
            out, state = step(x[:, t], state)
            outs.append(out)
        torch.testing.assert_close(torch.stack(outs, 1), whole, rtol=1e-5, atol=1e-5)


def test_loss_of_the_ensemble_is_at_most_the_members_mean_loss():
    members = [lm(s) for s in range(4)]
    x, y = ids(4, 20, seed=2), ids(4, 20, seed=3)
    with torch.no_grad():
        member_losses = [float(sequence_loss(m(x)[0], y)) for m in members]
        ensemble_loss = float(sequence_loss(Ensemble(members)(x)[0], y))
    assert ensemble_loss <= sum(member_losses) / 4 + 1e-6  # Jensen: -log mean p <= mean -log p


def test_generation_samples_from_the_ensemble():
    ens = Ensemble([lm(0), lm(1)])
    prime = torch.tensor([1, 2, 3])
    a = list(generate(ens, prime, 15, temperature=0.8, generator=torch.Generator().manual_seed(5)))
    b = list(generate(ens, prime, 15, temperature=0.8, generator=torch.Generator().manual_seed(5)))
    assert a == b and len(a) == 15 and all(0 <= t < V for t in a)
    greedy = list(generate(ens, prime, 5, temperature=0))
    log_p, _ = ens(prime[None])
    assert greedy[0] == int(log_p[0, -1].argmax())


def test_bad_members_and_states():
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
    other = LanguageModel(LMConfig(vocab_size=V + 1, hidden=4, layers=1))
    with pytest.raises(ValueError, match=r"one vocabulary, got vocabulary sizes \[11, 12\]"):
        Ensemble([lm(0), other])
    ens = Ensemble([lm(0), lm(1)])
    _, state = lm(0)(ids())
    with pytest.raises(ValueError, match="expected a list of 2 member states"):
        ens(ids(), state[:1])
    with torch.no_grad():
        assert math.isclose(float(ens(ids())[0].exp().sum(-1).mean()), 1.0, rel_tol=1e-5)
