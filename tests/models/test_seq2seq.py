"""Seq2Seq: decoding step by step equals teacher forcing; padding, reversal and the bridge; scheduled sampling;
every attention trains; the Trainer's contract; bad configs."""
import math

import pytest
import torch

from rnnkit.layers.lengths import reverse_within_lengths
from rnnkit.models.seq2seq import ATTENTIONS, Seq2Seq, Seq2SeqConfig, teacher_forcing_probability

V_SRC, V_TGT = 11, 13


def model(seed=0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(V_SRC, V_TGT, **{"hidden": 8, "embedding": 6, **kw}))


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 3, 1])
    src = torch.randint(4, V_SRC, (3, 5), generator=g)
    src[torch.arange(5)[None, :] >= lengths[:, None]] = 0
    tgt = torch.randint(4, V_TGT, (3, 4), generator=g)
    tgt[:, 0] = 2
    return src, lengths, tgt


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_by_step_equals_teacher_forcing(attention, cell):
    m = model(attention=attention, cell=cell, layers=2).eval()
    src, lengths, tgt = batch()
    logits, weights = m.teacher_forced(src, lengths, tgt)
    assert logits.shape == (3, 4, V_TGT)
    state = m.encode(src, lengths)
    for i in range(4):
        step_logits, state = m.step(tgt[:, i], state)
        torch.testing.assert_close(step_logits, logits[:, i], atol=1e-6, rtol=1e-5)
        if attention != "none":
            torch.testing.assert_close(state.weights, weights[:, i])
    if attention == "none":
        assert weights is None
    else:
        assert weights.shape == (3, 4, 5)
        assert torch.equal(weights[2, :, 1:], torch.zeros(4, 4))  # padding gets no attention
        assert torch.equal(weights[1, :, 3:], torch.zeros(4, 2))


@pytest.mark.parametrize("attention", ["none", "luong-general", "local-m", "luong-concat"])
def test_all_at_once_path_equals_the_step_loop(attention):
    kw = {} if attention == "none" else {"input_feeding": False}
    m = model(attention=attention, **kw).eval()
    src, lengths, tgt = batch()
    tgt[2, 2:] = 0  # a shorter target
    fast, fast_w = m.teacher_forced(src, lengths, tgt)
    state, steps = m.encode(src, lengths), []
    for i in range(4):
        step_logits, state = m.step(tgt[:, i], state)
        steps.append(step_logits)
    torch.testing.assert_close(torch.stack(steps, 1)[:2], fast[:2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.stack(steps, 1)[2, :2], fast[2, :2], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attention", ["none", "bahdanau", "local-p"])
def test_a_padded_batch_equals_each_sentence_alone(attention):
    m = model(attention=attention).eval()
    src, lengths, tgt = batch()
    logits, _ = m.teacher_forced(src, lengths, tgt)
    for b in range(3):
        n = int(lengths[b])
        alone, _ = m.teacher_forced(src[b:b + 1, :n], None, tgt[b:b + 1])
        torch.testing.assert_close(alone[0], logits[b], atol=1e-6, rtol=1e-5)


def test_reversed_source_reads_backwards_and_keeps_the_memory_in_source_order():
    forward_model = model(attention="bahdanau", bidirectional=False).eval()
    reversed_model = model(attention="bahdanau", bidirectional=False, reverse_source=True).eval()
    src, lengths, _ = batch()
    flipped = reverse_within_lengths(src, lengths, time_dim=1)
    a = reversed_model.encode(src, lengths)
    b = forward_model.encode(flipped, lengths)
    torch.testing.assert_close(a.output, b.output)  # the same final state: the same backwards reading
    torch.testing.assert_close(a.memory, reverse_within_lengths(b.memory, lengths, time_dim=1))


def test_bridges():
    src, lengths, _ = batch()
    m = model(bridge="copy", cell="lstm", layers=2).eval()
    _, final = m.encoder(m.src_embed(src), lengths)
    state = m.encode(src, lengths)
    for layer in range(2):
        (hf, cf), (hb, cb) = final[layer]
        torch.testing.assert_close(state.rnn[layer][0], torch.cat([hf, hb], -1))
        torch.testing.assert_close(state.rnn[layer][1], torch.cat([cf, cb], -1))
    zeros = model(bridge="zeros").encode(src, lengths)
    assert not zeros.rnn[0][0].any() and not zeros.output.any()
    learned = model(bridge="learned", cell="gru", bidirectional=False).eval()
    _, final = learned.encoder(learned.src_embed(src), lengths)
    torch.testing.assert_close(learned.encode(src, lengths).rnn[0], torch.tanh(learned.bridge.maps[0](final[0])))


def test_teacher_forcing_schedules():
    assert teacher_forcing_probability("none", 5, 10**6) == 1.0
    assert teacher_forcing_probability("linear", 100, 25) == 0.75
    assert teacher_forcing_probability("linear", 100, 500) == 0.0
    assert teacher_forcing_probability("exponential", 0.99, 100) == pytest.approx(0.99 ** 100)
    assert teacher_forcing_probability("inverse-sigmoid", 10, 20) == pytest.approx(10 / (10 + math.exp(2)))


def test_scheduled_sampling_feeds_own_samples_and_counts_updates():
    src, lengths, tgt = batch()
    m = model(attention="bahdanau", scheduled_sampling="linear", sampling_k=1.0)
    torch.manual_seed(0)
    first, _ = m.teacher_forced(src, lengths, tgt)  # update 0: epsilon 1, pure teacher forcing
    assert int(m.updates) == 1
    second, _ = m.teacher_forced(src, lengths, tgt)  # update 1: epsilon 0, every fed token is a sample
    m.eval()
    m.updates.zero_()
    forced, _ = m.teacher_forced(src, lengths, tgt)
    assert int(m.updates) == 0  # evaluation never advances the schedule, and always teacher-forces
    torch.testing.assert_close(first, forced)
    assert not torch.allclose(second[:, 1:], forced[:, 1:])
    torch.testing.assert_close(second[:, 0], forced[:, 0])  # <bos> is always fed


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_overfits_one_batch(attention):
    src, lengths, tgt = batch()
    target = torch.cat([tgt[:, 1:], torch.full((3, 1), 3)], dim=1)  # y_1.. y_n <eos>
    m = model(attention=attention, hidden=16)
    opt = torch.optim.Adam(m.parameters(), lr=0.03)
    for _ in range(60):
        logits, _ = m.teacher_forced(src, lengths, tgt)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V_TGT), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, loss.item()
    assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("tgt_embed")), attention


def test_the_trainers_contract_stacks_source_and_decoder_input():
    m = model().eval()
    src, lengths, tgt = batch()
    x = torch.zeros(3, 2, 7, dtype=torch.long)
    x[:, 0, :5], x[:, 1, :4] = src, tgt
    logits, state = m(x, None, lengths=lengths)
    torch.testing.assert_close(logits, m.teacher_forced(src, lengths, tgt)[0])
    assert state == ()
    with pytest.raises(ValueError, match=r"expected x \(B, 2, L\)"):
        m(src)
    with pytest.raises(ValueError, match="expected state=None"):
        m(x, [torch.zeros(1)], lengths=lengths)


def test_shared_embeddings_are_one_module():
    m = Seq2Seq(Seq2SeqConfig(9, 9, hidden=8, embedding=4, shared_embeddings=True))
    assert m.tgt_embed is m.src_embed


@pytest.mark.parametrize("kw, message", [
    ({"attention": "global"}, "expected attention in"),
    ({"hidden": 7}, "even with a bidirectional encoder"),
    ({"attention": "bahdanau", "input_feeding": True}, "input feeding is Luong's"),
    ({"tgt_vocab_size": 12, "shared_embeddings": True}, "shared_embeddings needs one vocabulary"),
    ({"scheduled_sampling": "exponential", "sampling_k": 2.0}, "in (0, 1) for the exponential schedule"),
    ({"cell": "tcn"}, "expected cell in"),
    ({"bos_id": 0}, "distinct pad, bos and eos ids"),
])
def test_bad_configs(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Seq2SeqConfig(**{"src_vocab_size": V_SRC, "tgt_vocab_size": V_TGT, "hidden": 8, **kw})


def test_bad_source():
    m = model()
    with pytest.raises(ValueError, match="expected source ids"):
        m.encode(torch.randn(2, 3))
    with pytest.raises(ValueError, match="at least one source token"):
        m.encode(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected source lengths \(2,\) in \[1, 3\]"):
        m.encode(torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 4]))
