"""Beam search: K = 1 is greedy; it finds the best sequence where greedy fails; length normalisation; batched
rows are independent; greedy and sampled decoding."""
import math

import pytest
import torch

from rnnkit.decode.beam import Hypothesis, beam_search, decode
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig

BOS, EOS = 0, 1


class Table(torch.nn.Module):
    """A toy step model: p(next | last token) from a fixed table; the state is the last token (B,)."""

    def __init__(self, table: dict[int, dict[int, float]], vocab: int):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        logp = torch.full((vocab, vocab), -1e9)
        for last, nexts in table.items():
            for token, p in nexts.items():
                logp[last, token] = math.log(p)
        self.logp = logp

    def step(self, tokens, state):
        return self.logp[tokens], tokens


# greedy takes 2 (0.6) and then only poor continuations; beam finds 3 <eos> (0.4 x 0.9 = 0.36 > 0.6 x 0.5 = 0.30)
GARDEN_PATH = {BOS: {2: 0.6, 3: 0.4}, 2: {4: 0.5, 5: 0.5}, 3: {EOS: 0.9, 4: 0.1}, 4: {EOS: 1.0}, 5: {EOS: 1.0}}


def test_beam_finds_what_greedy_misses():
    m = Table(GARDEN_PATH, 6)
    greedy = decode(m, torch.zeros(1, dtype=torch.long), batch_size=1, bos_id=BOS, eos_id=EOS, max_len=5)[0]
    assert greedy.tokens[0] == 2 and greedy.log_prob == pytest.approx(math.log(0.6 * 0.5 * 1.0))
    best = beam_search(m, torch.zeros(1, dtype=torch.long), batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=2,
                       max_len=5, length_penalty=0.0)[0]
    assert best == Hypothesis([3], pytest.approx(math.log(0.36)), pytest.approx(math.log(0.36)), True)


def test_length_normalisation_decides_between_short_and_long():
    # short: 2 <eos> = 0.5 x 0.5 = 0.25 (2 tokens); long: 3 4 4 <eos> = 0.5 x 1 x 0.8 x 0.7 = 0.28 ... per token
    table = {BOS: {2: 0.5, 3: 0.5}, 2: {EOS: 0.5, 5: 0.5}, 5: {EOS: 1.0}, 3: {4: 1.0}, 4: {4: 0.4, EOS: 0.6}}
    m = Table(table, 6)
    state = torch.zeros(1, dtype=torch.long)
    raw = beam_search(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=6, length_penalty=0.0)[0]
    mean = beam_search(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=6, length_penalty=1.0)[0]
    assert raw.tokens == [3, 4] and raw.log_prob == pytest.approx(math.log(0.3))  # highest total probability
    assert mean.tokens == [3, 4]  # 0.3 over 3 tokens beats 2 <eos> 0.25 over 2 and 2 5 <eos> 0.25 over 3
    table[3] = {4: 0.5, EOS: 0.5}  # now 3 <eos> (0.25, 2 tokens) ties with 2 <eos>; 3 4 <eos> is 0.15 over 3
    m = Table(table, 6)
    raw = beam_search(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=6, length_penalty=0.0)[0]
    long = beam_search(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=6, length_penalty=3.0)[0]
    assert len(raw.tokens) == 1 and raw.log_prob == pytest.approx(math.log(0.25))
    assert len(long.tokens) == 2, long  # a strong length penalty prefers the longer hypothesis
    assert long.score == pytest.approx(long.log_prob / 3 ** 3.0)


def seq2seq(attention="bahdanau", seed=0):
    torch.manual_seed(seed)
    m = Seq2Seq(Seq2SeqConfig(12, 9, hidden=8, embedding=6, attention=attention)).eval()
    src = torch.randint(4, 12, (4, 6))
    lengths = torch.tensor([6, 4, 2, 1])
    src[torch.arange(6)[None, :] >= lengths[:, None]] = 0
    return m, src, lengths


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong-general", "local-m"])
def test_beam_one_is_greedy(attention):
    m, src, lengths = seq2seq(attention)
    common = dict(batch_size=4, bos_id=2, eos_id=3, max_len=8)
    greedy = decode(m, m.encode(src, lengths), **common)
    beam = beam_search(m, m.encode(src, lengths), beam_size=1, **common)
    for g, b in zip(greedy, beam):
        assert g.tokens == b.tokens and g.finished == b.finished
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-9)


def test_batched_rows_are_independent_and_scores_are_the_models():
    m, src, lengths = seq2seq()
    common = dict(bos_id=2, eos_id=3, max_len=7, beam_size=4)
    together = beam_search(m, m.encode(src, lengths), batch_size=4, **common)
    for b in range(4):
        n = int(lengths[b])
        alone = beam_search(m, m.encode(src[b:b + 1, :n]), batch_size=1, **common)[0]
        assert alone.tokens == together[b].tokens
        assert alone.log_prob == pytest.approx(together[b].log_prob, abs=1e-5)
        h = together[b]
        tgt_in = torch.tensor([[2] + h.tokens])
        with torch.no_grad():
            logits, _ = m.teacher_forced(src[b:b + 1, :n], None, tgt_in)
        targets = h.tokens + ([3] if h.finished else [])
        lp = torch.log_softmax(logits[0, : len(targets)].double(), -1)[torch.arange(len(targets)), targets].sum()
        assert h.log_prob == pytest.approx(float(lp), abs=1e-5)  # the hypothesis's score is its model log p


def test_unfinished_hypotheses_at_max_len():
    m = Table({BOS: {2: 1.0}, 2: {2: 1.0}}, 4)
    h = beam_search(m, torch.zeros(2, dtype=torch.long), batch_size=2, bos_id=BOS, eos_id=EOS, beam_size=2, max_len=3)
    assert h[0].tokens == [2, 2, 2] and not h[0].finished
    g = decode(m, torch.zeros(2, dtype=torch.long), batch_size=2, bos_id=BOS, eos_id=EOS, max_len=3)
    assert g[1].tokens == [2, 2, 2] and not g[1].finished


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    m, src, lengths = seq2seq()
    common = dict(batch_size=4, bos_id=2, eos_id=3, max_len=8)
    a = decode(m, m.encode(src, lengths), temperature=1.0, generator=torch.Generator().manual_seed(5), **common)
    b = decode(m, m.encode(src, lengths), temperature=1.0, generator=torch.Generator().manual_seed(5), **common)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    k1 = decode(m, m.encode(src, lengths), temperature=1.0, top_k=1, **common)
    greedy = decode(m, m.encode(src, lengths), **common)
    assert [h.tokens for h in k1] == [h.tokens for h in greedy]


def test_bad_arguments():
    m = Table(GARDEN_PATH, 6)
    state = torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="beam_size >= 1"):
        beam_search(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty >= 0"):
        beam_search(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, length_penalty=-1)
    with pytest.raises(ValueError, match="max_len >= 1"):
        decode(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=0)
    with pytest.raises(ValueError, match="temperature >= 0"):
        decode(m, state, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=3, temperature=-1)
