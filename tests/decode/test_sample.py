"""Sampling: temperature, top-k, top-p supports and frequencies; generate() via model.step."""
import math

import pytest
import torch

from rnnkit.decode.sample import generate, generate_many, next_token
from rnnkit.models.lm import LanguageModel, LMConfig


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def samples(logits_row, n=4000, seed=0, **kw):
    """n draws for one (V,) distribution, as one batch of n identical rows."""
    return next_token(logits_row.expand(n, -1), generator=gen(seed), **kw)


def support(draws):
    return set(draws.tolist())


# ----- next_token ---------------------------------------------------------------------------------

def test_temperature_zero_is_argmax():
    logits = torch.randn(50, 13, generator=gen(1))
    out = next_token(logits, temperature=0)
    assert out.shape == (50,) and torch.equal(out, logits.argmax(-1))


def test_top_k_one_is_argmax():
    logits = torch.randn(200, 13, generator=gen(2))
    assert torch.equal(next_token(logits, top_k=1, generator=gen(3)), logits.argmax(-1))


def test_top_k_keeps_only_the_k_highest():
    logits = torch.randn(10, generator=gen(4))
    top3 = set(logits.topk(3).indices.tolist())
    draws = samples(logits, top_k=3, temperature=2.0)  # a high temperature makes the others likely
    assert support(draws) == top3
    assert support(samples(logits, top_k=10, temperature=2.0)) == set(range(10))
    assert support(samples(logits, top_k=50, temperature=2.0)) == set(range(10))  # k > V: everything


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [2, 0, 3, 1]])
@pytest.mark.parametrize("p, expected", [(0.8, {0, 1}), (0.81, {0, 1, 2}), (0.5, {0}), (0.3, {0}),
                                         (0.96, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_reaching_p(p, expected, order):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = torch.empty(4)
    logits[order] = probs.log()  # token order[i] has probability probs[i]
    draws = samples(logits, top_p=p)
    assert support(draws) == {order[i] for i in expected}


def test_top_p_renormalises_over_the_kept_set():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    draws = samples(logits, n=20000, top_p=0.8)
    freq = (draws == 0).float().mean().item()
    assert abs(freq - 0.5 / 0.8) < 0.02


def test_frequencies_at_temperature_one_match_softmax():
    logits = torch.tensor([1.0, 0.0, -0.5, 2.0, -2.0])
    n = 20000
    counts = torch.bincount(samples(logits, n=n, seed=7), minlength=5).double()
    expected = logits.double().softmax(-1) * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 18.47, (counts, expected)  # chi-square, 4 degrees of freedom, p = 0.001


def test_temperature_scales_the_logits():
    logits = torch.tensor([1.0, 0.0, -0.5, 2.0, -2.0])
    n = 20000
    counts = torch.bincount(samples(logits, n=n, seed=8, temperature=2.0), minlength=5).double()
    expected = (logits.double() / 2).softmax(-1) * n
    assert float(((counts - expected) ** 2 / expected).sum()) < 18.47


def test_low_temperature_concentrates_mass():
    logits = torch.tensor([1.0, 0.0, -0.5, 1.5, -2.0])
    share = {t: (samples(logits, temperature=t, seed=9) == 3).float().mean().item() for t in (0.1, 0.5, 1.0, 3.0)}
    assert share[0.1] > 0.99
    assert share[0.1] > share[0.5] > share[1.0] > share[3.0]


@pytest.mark.parametrize("kw, expected", [
    ({"temperature": -0.1}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"top_p": -0.5}, "top_p"),
])
def test_bad_arguments(kw, expected):
    with pytest.raises(ValueError, match=expected):
        next_token(torch.zeros(1, 3), **kw)


# ----- generate -----------------------------------------------------------------------------------

class Counter(torch.nn.Module):
    """A fake step model: the next token is always (last token + 1) % V, with certainty. Counts calls."""

    def __init__(self, V=10):
        super().__init__()
        self.V = V
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.forward_inputs, self.steps = [], 0

    def logits_after(self, last):
        return 100 * torch.nn.functional.one_hot((last + 1) % self.V, self.V).float()

    def forward(self, ids, state=None):
        self.forward_inputs.append(ids.clone())
        return self.logits_after(ids), ("state", ids.shape[1])

    def step(self, ids, state):
        assert ids.shape == (1,) and state[0] == "state"
        self.steps += 1
        return self.logits_after(ids), ("state", state[1] + 1)


def test_generate_yields_length_tokens_reading_the_prime_once():
    model = Counter()
    prime = torch.tensor([4, 7, 2])
    out = list(generate(model, prime, 6, temperature=0))
    assert out == [3, 4, 5, 6, 7, 8]
    assert len(model.forward_inputs) == 1 and torch.equal(model.forward_inputs[0], prime.unsqueeze(0))
    assert model.steps in (5, 6)  # one step per new token (no re-encoding of the prefix)


def test_generate_stops_after_eos():
    model = Counter()
    assert list(generate(model, torch.tensor([1]), 50, temperature=1.0, eos_id=5, generator=gen())) == [2, 3, 4, 5]
    assert model.steps == 3


def test_generate_length_zero():
    assert list(generate(Counter(), torch.tensor([1]), 0)) == []


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    return LanguageModel(LMConfig(vocab_size=20, cell="gru", hidden=16, layers=2, embedding=8, dropout=0.3))


@pytest.mark.parametrize("native", ["0", "1"])
def test_generate_uses_step_on_a_real_model(native, monkeypatch):
    """The prime is read by one forward call, then one step a token: model.step through torch's ops, or, where
    the compiled step applies (a GRU does), none of model.step at all."""
    monkeypatch.setenv("RNNKIT_NATIVE", native)
    model = tiny_lm()
    compiled = model.eval().native_stepper() is not None
    calls = {"forward": 0, "step": 0}
    real_forward, real_step = model.forward, model.step

    def forward(*a, **k):
        calls["forward"] += 1
        return real_forward(*a, **k)

    def step(*a, **k):
        calls["step"] += 1
        return real_step(*a, **k)

    monkeypatch.setattr(model, "forward", forward)
    monkeypatch.setattr(model, "step", step)
    out = list(generate(model, torch.tensor([1, 2, 3, 4, 5]), 30, generator=gen()))
    assert len(out) == 30 and all(0 <= t < 20 for t in out)
    assert calls["forward"] == 1 and (calls["step"] == 0 if compiled else 29 <= calls["step"] <= 30)


def test_generate_matches_forward_greedy_and_restores_training_mode():
    model = tiny_lm()
    model.train()
    prime = torch.tensor([3, 1, 4])
    out = list(generate(model, prime, 8, temperature=0))
    assert model.training  # restored
    # greedy by re-reading the whole sequence each time, in eval mode (no dropout)
    model.eval()
    seq = prime.tolist()
    with torch.no_grad():
        for _ in range(8):
            seq.append(int(model(torch.tensor([seq]))[0][0, -1].argmax()))
    assert out == seq[3:]


def test_generate_is_deterministic_with_a_seeded_generator():
    model = tiny_lm()
    prime = torch.tensor([0, 5])
    a = list(generate(model, prime, 40, generator=gen(3)))
    b = list(generate(model, prime, 40, generator=gen(3)))
    c = list(generate(model, prime, 40, generator=gen(4)))
    assert a == b and a != c


@pytest.mark.parametrize("kw, expected", [
    ({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"length": -1}, "length"),
])
def test_generate_checks_arguments_before_iterating(kw, expected):
    model = Counter()
    args = {"length": 5, **kw}
    with pytest.raises(ValueError, match=expected):
        generate(model, torch.tensor([1]), **args)  # no next(): the call itself raises
    assert model.forward_inputs == [] and model.steps == 0


@pytest.mark.parametrize("prime", [torch.tensor([], dtype=torch.long), torch.tensor([[1, 2]])])
def test_generate_needs_a_nonempty_1d_prime(prime):
    with pytest.raises(ValueError, match="priming ids"):
        generate(Counter(), prime, 5)


def test_generate_argument_check_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    generate(Counter(), torch.tensor([1]), 5, temperature=1.0)
    assert torch.equal(torch.get_rng_state(), before)


def test_nan_temperature_is_a_value_error():
    with pytest.raises(ValueError, match="temperature"):
        next_token(torch.zeros(1, 3), temperature=math.nan)


# ----- generate_many: several samples as one batch -------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])  # lstm / rnn step through model.stepper(), gru model.step
def test_generate_many_greedy_rows_equal_one_sample_each(cell):
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=20, cell=cell, hidden=16, layers=2, embedding=8))
    prime = torch.tensor([3, 1, 4])
    rows = generate_many(model, prime, 12, 5, temperature=0)
    assert rows == [list(generate(model, prime, 12, temperature=0))] * 5


class Uniform(torch.nn.Module):
    """Every token equally likely after anything, for any batch; counts the steps."""

    def __init__(self, V=6):
        super().__init__()
        self.V, self.steps = V, 0
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, state=None):
        return torch.zeros(*ids.shape, self.V), None

    def step(self, ids, state):
        self.steps += 1
        return torch.zeros(ids.shape[0], self.V), None


def test_generate_many_ends_each_sample_at_its_own_eos():
    model = Uniform()
    rows = generate_many(model, torch.tensor([1]), 40, 50, eos_id=0, generator=gen(5))
    assert len(rows) == 50 and len({len(r) for r in rows}) > 1  # they end at different steps
    for row in rows:
        assert 0 not in row[:-1] and (row[-1] == 0 or len(row) == 40)
    longest = max(len(r) for r in rows)
    assert longest < 40 and model.steps == longest - 1  # no step after the last sample's <eos>
    frequencies = torch.bincount(torch.tensor([t for r in rows for t in r]), minlength=6).float()
    assert (frequencies > 0).all()  # every token drawn: rows are not copies of one sample


def test_generate_many_is_repeatable_and_checks_arguments():
    model = tiny_lm()
    prime = torch.tensor([0, 5])
    assert generate_many(model, prime, 15, 4, generator=gen(3)) == generate_many(model, prime, 15, 4, generator=gen(3))
    assert generate_many(model, prime, 0, 3) == [[], [], []]
    for samples in (0, -2, True, 1.5):
        with pytest.raises(ValueError, match="samples >= 1"):
            generate_many(model, prime, 5, samples)
    with pytest.raises(ValueError, match="temperature"):
        generate_many(model, prime, 5, 2, temperature=-1)
