"""DMN / DMN+ (lecture 004): the episodic memory and the attention-GRU against the lecture's equations written out by
hand, positional encoding, Kumar et al.'s story GRU, masks (padded facts get gate 0 and change nothing), gradient flow
and gradcheck, gate supervision, the answer decoder, the Trainer contract, and overfitting one batch."""
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models.dmn import DMN, VARIANTS, DMNConfig, EpisodicMemory, position_encoding

V = 30


def make(seed=0, **kw):
    torch.manual_seed(seed)
    fields = {"vocab_size": V, "hidden": 8, "dropout": 0.0, **kw}
    return DMN(DMNConfig(**fields)).eval()


def stories(seed=0, B=3, F_=4, W=5, Q=4):
    """Random ids with ragged stories: row 1 has 2 facts, row 2 has short sentences and a short question."""
    g = torch.Generator().manual_seed(seed)
    facts = torch.randint(3, V, (B, F_, W), generator=g)
    facts[1, 2:] = 0
    facts[2, :, 3:] = 0
    facts[2, 0, 1:] = 0
    question = torch.randint(3, V, (B, Q), generator=g)
    question[2, 2:] = 0
    return facts, question


def gru(cell, x, h):
    """The lectures' reset-before GRU (Cho et al. 2014), written out from a GRUCell's weights."""
    H = h.shape[-1]
    Wi, Wh, bi, bh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    r = torch.sigmoid(Wi[:H] @ x + bi[:H] + Wh[:H] @ h + bh[:H])
    z = torch.sigmoid(Wi[H:2 * H] @ x + bi[H:2 * H] + Wh[H:2 * H] @ h + bh[H:2 * H])
    g = torch.tanh(Wi[2 * H:] @ x + bi[2 * H:] + Wh[2 * H:] @ (r * h) + bh[2 * H:])
    return z * h + (1 - z) * g


def reference_memory(memory, facts, q):
    """Lecture 004's episodic memory for ONE story (facts (F, H), q (H,)), scalar by scalar."""
    W1, b1 = memory.gate_mlp[0].weight, memory.gate_mlp[0].bias
    W2, b2 = memory.gate_mlp[2].weight[0], memory.gate_mlp[2].bias[0]
    m, all_gates = q, []
    for t in range(memory.passes):
        Z = torch.stack([W2 @ torch.tanh(W1 @ torch.cat([s * q, s * m, (s - q).abs(), (s - m).abs()]) + b1) + b2
                         for s in facts])
        g = torch.exp(Z) / torch.exp(Z).sum() if memory.gate == "softmax" else torch.sigmoid(Z)
        h = torch.zeros_like(q)
        for s, g_i in zip(facts, g):
            h = g_i * gru(memory.attention_gru, s, h) + (1 - g_i) * h
        update = memory.updates[0 if memory.tied else t]
        if memory.update == "relu":
            m = torch.relu(update.weight @ torch.cat([m, h, q]) + update.bias)
        else:
            m = gru(update, h, m)
        all_gates.append(g)
    return m, torch.stack(all_gates)


@pytest.mark.parametrize("gate, update, tied", [("softmax", "relu", False), ("sigmoid", "gru", True),
                                                ("softmax", "gru", False), ("sigmoid", "relu", True)])
def test_episodic_memory_matches_the_lecture_equations(gate, update, tied):
    torch.manual_seed(0)
    memory = EpisodicMemory(5, 3, gate=gate, update=update, tied=tied).double()
    facts = torch.randn(3, 4, 5, dtype=torch.float64)
    q = torch.randn(3, 5, dtype=torch.float64)
    counts = [4, 2, 1]
    mask = torch.arange(4)[None] < torch.tensor(counts)[:, None]
    facts = facts * mask[..., None]
    m, gates, scores = memory(facts, q, mask)
    assert m.shape == (3, 5) and gates.shape == scores.shape == (3, 3, 4)
    for b, n in enumerate(counts):
        m_ref, g_ref = reference_memory(memory, facts[b, :n], q[b])
        torch.testing.assert_close(m[b], m_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gates[b, :, :n], g_ref, rtol=1e-10, atol=1e-12)
        assert (gates[b, :, n:] == 0).all()  # padded facts get gate 0
    if gate == "softmax":
        torch.testing.assert_close(gates.sum(-1), torch.ones(3, 3, dtype=torch.float64))
    assert len(memory.updates) == (1 if tied else 3)


def test_episodic_memory_gradcheck():
    torch.manual_seed(1)
    memory = EpisodicMemory(3, 2).double()
    facts = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda f, q: memory(f, q, mask)[0], (facts, q))


def test_position_encoding_is_the_formula():
    l = position_encoding(torch.tensor([[3, 1]]), 4, 2)  # (1, 2, W=4, D=2)
    for j in range(1, 5):
        for d in range(1, 3):
            M = 3
            want = (1 - j / M) - (d / 2) * (1 - 2 * j / M) if j <= M else 0.0
            assert l[0, 0, j - 1, d - 1].item() == pytest.approx(want)
    assert l[0, 1, 1:].abs().sum() == 0 and l[0, 1, 0].tolist() == pytest.approx([0.0 - 0.5 * (1 - 2), 0.0 - (1 - 2)])


def test_dmn_plus_sentences_are_position_encoded_sums():
    model = make(fusion=False)
    facts, _ = stories()
    s, mask = model.encode_facts(facts)
    words = model.embedding(facts[2, 0, :1])  # a one-word sentence: l_1 = (1 - 1) - (d/D)(1 - 2) = d/D
    torch.testing.assert_close(s[2, 0], words[0] * torch.arange(1, 9) / 8)
    assert mask.tolist() == [[True] * 4, [True, True, False, False], [True] * 4]


def test_kumar_input_module_reads_the_whole_story_with_one_gru():
    model = make(**VARIANTS["dmn"])
    facts, _ = stories()
    s, mask = model.encode_facts(facts)
    for b in range(3):
        sentences = [f[f != 0] for f in facts[b] if (f != 0).any()]
        story = torch.cat(sentences)
        out, _ = model.sentence_rnn(model.embedding(story)[None])
        ends = torch.tensor([len(x) for x in sentences]).cumsum(0) - 1
        torch.testing.assert_close(s[b, : len(sentences)], out[0, ends])
        assert (s[b, len(sentences):] == 0).all()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("answer", ["softmax", "gru"])
def test_a_padded_batch_equals_each_story_alone(variant, answer):
    model = make(answer=answer, max_answer_len=2, **VARIANTS[variant])
    facts, question = stories()
    answer_in = torch.tensor([[2, 5, 6], [2, 7, 0], [2, 8, 9]]) if answer == "gru" else None
    out = model.run(facts, question, answer_in)
    for b in range(3):
        n = int((facts[b] != 0).any(-1).sum())
        w = int((facts[b, :n] != 0).sum(-1).max())
        q = int((question[b] != 0).sum())
        a = None if answer_in is None else answer_in[b: b + 1, : int((answer_in[b] != 0).sum())]
        alone = model.run(facts[b: b + 1, :n, :w], question[b: b + 1, :q], a)
        L = alone.logits.shape[1]
        torch.testing.assert_close(out.logits[b: b + 1, :L], alone.logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.gates[b: b + 1, :, :n], alone.gates, rtol=1e-5, atol=1e-6)
        assert (out.gates[b, :, n:] == 0).all()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("answer", ["softmax", "gru"])
def test_gradients_reach_every_parameter(variant, answer):
    model = make(answer=answer, **VARIANTS[variant]).train()
    facts, question = stories()
    answer_in = torch.tensor([[2, 5], [2, 7], [2, 8]]) if answer == "gru" else None
    out = model.run(facts, question, answer_in)
    y = torch.tensor([[5, 2], [7, 2], [8, 2]]) if answer == "gru" else torch.tensor([[5], [7], [8]])
    (model.answer_loss(out.logits, y) + model.gate_loss(out, torch.tensor([[0, 1], [1, -1], [3, 0]]))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name
    assert model.embedding.weight.grad[0].abs().sum() == 0  # <pad> stays zero


def test_gate_loss_is_the_cross_entropy_of_the_supporting_fact():
    model = make()
    facts, question = stories()
    out = model.run(facts, question)
    supporting = torch.tensor([[2, 0, 1], [1, -1, -1], [0, 3, -1]])
    # 3 passes: pass t is trained toward supporting[:, t]; -1 is no target
    pairs = [(0, 0, 2), (0, 1, 0), (0, 2, 1), (1, 0, 1), (2, 0, 0), (2, 1, 3)]
    want = -sum(math.log(out.gates[b, t, s].item()) for b, t, s in pairs) / len(pairs)
    assert model.gate_loss(out, supporting).item() == pytest.approx(want, rel=1e-5)
    sig = make(gate="sigmoid")
    out = sig.run(facts, question)
    target = torch.zeros(4)
    target[1] = 1
    n = 2  # row 1 has 2 real facts
    want = F.binary_cross_entropy(out.gates[1, 0, :n], target[:n])
    assert sig.gate_loss(out, torch.tensor([[-1], [1], [-1]])).item() == pytest.approx(want.item(), rel=1e-5)
    assert model.gate_loss(out, torch.full((3, 1), -1)).item() == 0.0
    with pytest.raises(ValueError, match="supporting fact index 9 is outside the 4 facts"):
        model.gate_loss(out, torch.tensor([[9], [0], [0]]))


def test_the_trainer_contract_and_greedy_answers():
    model = make(answer="gru", max_answer_len=2)
    facts, question = stories()
    answer_in = torch.tensor([[2, 5, 6], [2, 7, 0], [2, 8, 9]])
    width = max(facts.shape[2], question.shape[1], answer_in.shape[1])
    x = torch.zeros(3, facts.shape[1] + 2, width, dtype=torch.long)
    x[:, :-2, : facts.shape[2]], x[:, -2, : question.shape[1]], x[:, -1, :3] = facts, question, answer_in
    out, state = model(x)
    assert state is None
    torch.testing.assert_close(out.logits, model.run(facts, question, answer_in).logits)
    ids, greedy = model.predict(facts, question)
    assert ids.shape[0] == 3 and 1 <= ids.shape[1] <= 3  # at most max_answer_len words and the final <eos>
    assert greedy.gates.shape == (3, 3, 4)
    # the answer greedy decoding gives is the one teacher forcing scores as most likely, step by step
    for b in range(3):
        words = [t for t in ids[b].tolist() if t != 0]
        forced = model.run(facts[b: b + 1], question[b: b + 1], torch.tensor([[2] + words]))
        assert forced.logits[0].argmax(-1).tolist()[: len(words)] == words
    with pytest.raises(ValueError, match="expected state=None"):
        model(x, torch.zeros(1))
    with pytest.raises(ValueError, match=r"expected x as int64 word ids with 3 dimensions, got torch.float32"):
        model(x.float())
    with pytest.raises(ValueError, match=r"expected facts ids in \[0, 30\), got values in \[0, 99\]"):
        model.run(facts.masked_fill(facts == facts.max(), 99), question)
    with pytest.raises(ValueError, match="every story needs at least one fact, got none in row 1"):
        model.run(facts * torch.tensor([1, 0, 1])[:, None, None], question)
    with pytest.raises(ValueError, match="every question needs at least one word, got none in row 0"):
        model.run(facts, question * torch.tensor([0, 1, 1])[:, None])
    with pytest.raises(ValueError, match="the GRU answer decoder needs answer_in"):
        model.run(facts, question)


def test_config_errors_name_the_field():
    for kw, message in [({"gate": "relu"}, "expected gate in softmax, sigmoid, got 'relu'"),
                        ({"sentence": "lstm"}, "expected sentence in pe, gru"),
                        ({"answer": "beam"}, "expected answer in softmax, gru"),
                        ({"passes": 0}, "expected passes >= 1, got 0"),
                        ({"dropout": 1.0}, r"expected dropout in \[0, 1\)"),
                        ({"eos_id": 30}, r"expected eos_id in \[0, 30\)")]:
        with pytest.raises(ValueError, match=message):
            DMNConfig(vocab_size=V, **kw)
    with pytest.raises(TypeError, match="expected fusion to be a bool"):
        DMNConfig(vocab_size=V, fusion="yes")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_overfits_one_batch(variant):
    torch.manual_seed(0)
    model = DMN(DMNConfig(vocab_size=V, hidden=16, passes=2, dropout=0.0, **VARIANTS[variant]))
    facts, question = stories(B=8, F_=3)
    y = torch.randint(3, V, (8, 1), generator=torch.Generator().manual_seed(5))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(80):
        loss = model.answer_loss(model.run(facts, question).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids, _ = model.predict(facts, question)
    assert torch.equal(ids, y), (loss.item(), ids.flatten().tolist(), y.flatten().tolist())
