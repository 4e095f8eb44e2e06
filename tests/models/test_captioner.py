"""The captioner (Show and Tell; Show, Attend and Tell) and DMN+ for VQA: shapes, decoding, overfitting, bad input."""
import pytest
import torch

from rnnkit.decode.beam import beam_search, decode
from rnnkit.models.captioner import Captioner, CaptionerConfig, doubly_stochastic_penalty, pack, unpack
from rnnkit.models.vqa import VisualDMN, VQAConfig, snake, snake_order

TINY = dict(vocab_size=12, image_size=16, channels=(8, 8), pools=1, embedding=8, hidden=16)


def model(**kw):
    torch.manual_seed(0)
    return Captioner(CaptionerConfig(**{**TINY, **kw}))


@pytest.mark.parametrize("attention,image", [("none", "state"), ("none", "input"), ("soft", "state"),
                                             ("hard", "state")])
def test_shapes_and_step_equals_teacher_forcing(attention, image):
    m = model(attention=attention, image=image).eval()
    images, tgt = torch.rand(2, 3, 16, 16), torch.tensor([[2, 5, 6, 7], [2, 8, 9, 0]])
    out = m.teacher_forced(images, tgt)
    assert out.logits.shape == (2, 4, 12)
    assert (out.weights is None) == (attention == "none")
    if out.weights is not None:
        assert out.weights.shape == (2, 4, 64) and torch.allclose(out.weights.sum(-1), torch.ones(2, 4))
    state, logits = m.encode(images), []
    for t in range(4):
        step, state = m.step(tgt[:, t], state)
        logits.append(step)
    assert torch.allclose(torch.stack(logits, 1)[0], out.logits[0], atol=1e-5)
    assert torch.allclose(m(pack(images, tgt))[0].logits, out.logits, atol=1e-5)


def test_beam_one_is_greedy():
    m = model(attention="soft").eval()
    images = torch.rand(3, 3, 16, 16)
    kw = dict(batch_size=3, bos_id=2, eos_id=3, max_len=6)
    greedy = decode(m, m.encode(images), **kw)
    beam = beam_search(m, m.encode(images), beam_size=1, **kw)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam]
    assert len(beam_search(m, m.encode(images), beam_size=4, **kw)) == 3


def test_doubly_stochastic_penalty():
    w = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]]])  # (1, 3 steps, 3 regions)
    steps = torch.tensor([[True, True, False]])
    # sums over the real steps: 1.0, 0.5, 0.5 -> (0)^2 + 0.25 + 0.25
    assert torch.isclose(doubly_stochastic_penalty(w, steps), torch.tensor(0.5))


@pytest.mark.parametrize("attention", ["none", "soft"])
def test_overfits_a_small_batch(attention):
    m = model(attention=attention, hidden=32)
    images = torch.rand(4, 3, 16, 16)
    tgt_in = torch.tensor([[2, 4, 5, 6], [2, 7, 8, 0], [2, 9, 10, 11], [2, 5, 4, 0]])
    tgt_out = torch.tensor([[4, 5, 6, 3], [7, 8, 3, 0], [9, 10, 11, 3], [5, 4, 3, 0]])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        logits = m.teacher_forced(images, tgt_in).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    hyps = decode(m, m.eval().encode(images), batch_size=4, bos_id=2, eos_id=3, max_len=6)
    assert [h.tokens for h in hyps] == [[4, 5, 6], [7, 8], [9, 10, 11], [5, 4]]


def test_bad_input():
    m = model()
    with pytest.raises(ValueError, match=r"expected images \(B, 3, 16, 16\), got \(2, 3, 8, 8\)"):
        m.encode(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"ids in \[0, 12\)"):
        m.teacher_forced(torch.rand(1, 3, 16, 16), torch.tensor([[2, 40]]))
    with pytest.raises(ValueError, match="as many captions as images"):
        m.teacher_forced(torch.rand(2, 3, 16, 16), torch.tensor([[2, 4]]))
    with pytest.raises(ValueError, match=r"packed x \(B, 3·16·16 \+ T\)"):
        unpack(torch.rand(2, 10), 16)
    with pytest.raises(ValueError, match="expected attention in"):
        CaptionerConfig(vocab_size=10, attention="global")
    with pytest.raises(ValueError, match="divisible by 2\\^pools"):
        CaptionerConfig(vocab_size=10, image_size=18, pools=2)
    with pytest.raises(ValueError, match="image='input' is Show and Tell's"):
        CaptionerConfig(vocab_size=10, attention="soft", image="input")


def test_snake_order():
    assert snake_order(3, 4).tolist() == [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11]
    f = torch.arange(12.).view(1, 1, 3, 4)
    assert snake(f)[0, :, 0].tolist() == [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11]


def test_visual_dmn_shapes_and_overfit():
    torch.manual_seed(0)
    m = VisualDMN(VQAConfig(vocab_size=10, answer_size=5, image_size=16, channels=(8, 8), pools=2, hidden=16,
                            dropout=0.0))
    images = torch.rand(4, 3, 16, 16)
    q = torch.tensor([[2, 3, 4], [2, 5, 0], [6, 3, 4], [7, 8, 9]])
    y = torch.tensor([0, 1, 2, 3])
    logits, gates = m.run(images, q)
    assert logits.shape == (4, 5) and gates.shape == (4, 3, 16)
    assert torch.allclose(gates.sum(-1), torch.ones(4, 3))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        loss = VisualDMN.loss(m(pack(images, q))[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    with pytest.raises(ValueError, match="at least one word"):
        m.run(images[:1], torch.zeros(1, 3, dtype=torch.int64))


@pytest.mark.parametrize("feature_norm", [True, False])
def test_large_cnn_features_still_give_each_image_its_own_facts(feature_norm):
    """What 10 minutes of training did to the unnormalised model: ReLU features with a large part common to every
    image (mean |f| ≈ 9) drove the tanh projection to ±1 with the same sign for every image, so every image gave
    the same facts (their spread over a batch was 3e-6). Layer-normalised per region, the facts still tell the
    images apart."""
    torch.manual_seed(0)
    m = VisualDMN(VQAConfig(vocab_size=10, answer_size=5, image_size=16, channels=(8, 8), pools=2, hidden=16,
                            dropout=0.0, feature_norm=feature_norm)).eval()
    with torch.no_grad():
        m.encoder.net[-3].bias.add_(50.0)  # the last convolution: a large response shared by every image
        facts = m.facts(torch.rand(8, 3, 16, 16))
    spread = facts.std(dim=0).mean()
    assert (spread > 0.02) if feature_norm else (spread < 0.01)
