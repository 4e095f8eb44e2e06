"""Many-to-one classifiers: SequenceClassifier (embedding or dense -> encoder -> pooling -> dense) and
lecture 003's 1D ConvNet. Shapes, pooling against hand computations, padding never changing an answer,
overfitting one batch, and the errors for bad configs and inputs."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.models.classifier import (POOLINGS, AttentionPooling, ClassifierConfig, SequenceClassifier, class_scores,
                                      predictions, probabilities)
from rnnkit.models.conv_text import ConvTextClassifier, ConvTextConfig


def make(**kw):
    torch.manual_seed(0)
    defaults = dict(num_classes=3, input_size=5, hidden=8)
    return SequenceClassifier(ClassifierConfig(**{**defaults, **kw})).eval()


def padded(seqs):
    """A list of (T_i, F) or (T_i,) tensors -> padded batch and lengths."""
    lengths = torch.tensor([len(s) for s in seqs])
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    return x, lengths


@pytest.mark.parametrize("num_classes, width", [(2, 1), (3, 3), (10, 10)])
def test_binary_has_one_logit_multiclass_one_per_class(num_classes, width):
    model = make(num_classes=num_classes)
    logits, state = model(torch.randn(4, 7, 5))
    assert logits.shape == (4, width) and logits.dtype == torch.float32
    assert isinstance(state, list) and state[0][0].shape == (4, 8)  # the LSTM's per-layer (h, c)


def test_lecture_000_row_mnist_shape():
    model = SequenceClassifier(ClassifierConfig(num_classes=10, input_size=28, hidden=150, model="rnn"))
    logits, _ = model(torch.rand(4, 28, 28))
    assert logits.shape == (4, 10)


def test_embedding_input_with_padding_id_zero():
    model = make(num_classes=2, vocab_size=20, embedding=6)
    assert model.embed.padding_idx == 0 and torch.all(model.embed.weight[0] == 0)
    logits, _ = model(torch.randint(1, 20, (3, 9)), lengths=torch.tensor([9, 4, 1]))
    assert logits.shape == (3, 1)


def test_last_pooling_is_the_final_state_unidirectional():
    model = make(model="lstm", layers=2)
    x, lengths = padded([torch.randn(6, 5), torch.randn(2, 5), torch.randn(4, 5)])
    pooled, state = model.features(x, None, lengths)
    h_top = state[-1][0]  # the last layer's h at each sequence's last valid step
    torch.testing.assert_close(pooled, h_top)


def test_last_pooling_bidirectional_takes_the_backward_state_at_t0():
    model = make(model="gru", bidirectional=True)
    x, lengths = padded([torch.randn(6, 5), torch.randn(2, 5), torch.randn(4, 5)])
    outputs, state = model.encoder(x, lengths=lengths)
    pooled, _ = model.features(x, None, lengths)
    forward_h, backward_h = state[0]
    torch.testing.assert_close(pooled, torch.cat([forward_h, backward_h], dim=1))
    torch.testing.assert_close(pooled[:, 8:], outputs[:, 0, 8:])


def test_mean_and_max_pool_only_the_valid_steps():
    for pooling in ("mean", "max"):
        model = make(pooling=pooling)
        x, lengths = padded([torch.randn(6, 5), torch.randn(2, 5)])
        outputs, _ = model.encoder(x, lengths=lengths)
        pooled = model.pool(outputs, lengths)
        for b, n in enumerate(lengths.tolist()):
            expected = outputs[b, :n].mean(0) if pooling == "mean" else outputs[b, :n].amax(0)
            torch.testing.assert_close(pooled[b], expected)


def test_attention_weights_sum_to_one_over_valid_steps_and_vanish_on_padding():
    model = make(pooling="attention")
    x, lengths = padded([torch.randn(6, 5), torch.randn(2, 5), torch.randn(1, 5)])
    w = model.attention_weights(x, lengths)
    assert w.shape == (3, 6)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    assert torch.all(w[1, 2:] == 0) and torch.all(w[2, 1:] == 0) and w[2, 0] == 1
    with pytest.raises(ValueError, match="needs pooling='attention', got 'last'"):
        make().attention_weights(x, lengths)


def test_attention_pooling_by_hand():
    torch.manual_seed(1)
    pool = AttentionPooling(4, 3)
    o = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    context, weights = pool(o, mask)
    e = torch.tanh(o @ pool.proj.weight.T + pool.proj.bias) @ pool.score.weight[0]  # (2, 5)
    a0 = torch.softmax(e[0, :3], 0)
    torch.testing.assert_close(weights[0, :3], a0)
    torch.testing.assert_close(context[0], a0 @ o[0, :3])


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("model_kind, bidirectional", [("lstm", False), ("lstm", True), ("gru-cho", True),
                                                        ("rnn", False)])
def test_a_padded_batch_gives_what_each_sequence_gives_alone(pooling, model_kind, bidirectional):
    model = make(model=model_kind, bidirectional=bidirectional, pooling=pooling, layers=2)
    seqs = [torch.randn(7, 5), torch.randn(3, 5), torch.randn(1, 5), torch.randn(5, 5)]
    x, lengths = padded(seqs)
    x[1, 3:] = 100.0  # garbage in the padding must not matter
    batch, _ = model(x, lengths=lengths)
    alone = torch.cat([model(s[None])[0] for s in seqs])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), pooling=st.sampled_from(POOLINGS),
       bidirectional=st.booleans())
def test_property_padding_changes_nothing(lengths, pooling, bidirectional):
    model = make(pooling=pooling, bidirectional=bidirectional, model="gru")
    g = torch.Generator().manual_seed(sum(lengths))
    seqs = [torch.randn(n, 5, generator=g) for n in lengths]
    x, lens = padded(seqs)
    extra = torch.cat([x, torch.randn(len(lengths), 2, 5, generator=g)], dim=1)  # two more padded steps
    a, _ = model(x, lengths=lens)
    b, _ = model(extra, lengths=lens)
    assert a.shape == (len(lengths), 3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_overfits_one_batch(num_classes):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(num_classes=num_classes, vocab_size=30, embedding=8, hidden=16,
                                                bidirectional=True, pooling="mean"))
    x = torch.randint(1, 30, (16, 6))
    lengths = torch.randint(1, 7, (16,))
    y = torch.randint(0, num_classes, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(80):
        logits, _ = model(x, lengths=lengths)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float()) if num_classes == 2
                else torch.nn.functional.cross_entropy(logits, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(predictions(model(x, lengths=lengths)[0]), y)


def test_probabilities_predictions_and_scores():
    binary = torch.tensor([[0.0], [2.0], [-1.0]])
    p = probabilities(binary)
    torch.testing.assert_close(p[:, 1], torch.sigmoid(binary[:, 0]))
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    assert predictions(binary).tolist() == [0, 1, 0]  # p = 0.5 is not > 0.5
    assert class_scores(binary).argmax(1).tolist() == [0, 1, 0]
    multi = torch.tensor([[1.0, 3.0, 2.0]])
    assert predictions(multi).tolist() == [1]
    torch.testing.assert_close(probabilities(multi), torch.softmax(multi, 1))


@pytest.mark.parametrize("kw, message", [
    (dict(num_classes=1), "num_classes >= 2, got 1"),
    (dict(model="transformer"), "expected model in"),
    (dict(pooling="first"), r"expected pooling in \('last', 'mean', 'max', 'attention'\), got 'first'"),
    (dict(input_size=0), "input_size >= 1 for dense inputs"),
    (dict(vocab_size=5, pad_id=5), r"pad_id in \[0, 5\), got 5"),
    (dict(dropout=1.0), r"dropout in \[0, 1\), got 1.0"),
])
def test_bad_configs_name_the_value(kw, message):
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**{"num_classes": 2, "input_size": 3, **kw})


def test_bad_inputs_name_expected_and_received():
    dense = make()
    with pytest.raises(ValueError, match=r"expected dense input \(B, T, 5\) of a floating dtype, got torch.float32 \(2, 3, 4\)"):
        dense(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="lengths"):
        dense(torch.randn(2, 3, 5), lengths=torch.tensor([3, 4]))
    text = make(vocab_size=10, embedding=4)
    with pytest.raises(ValueError, match=r"expected token ids \(B, T\) of an integer dtype, got torch.float32"):
        text(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"expected ids in \[0, 10\), got values in \[0, 12\]"):
        text(torch.tensor([[0, 12]]))


def test_tcn_encoder_when_available():
    pytest.importorskip("rnnkit.layers.tcn")
    model = make(model="tcn", layers=2, kernel_size=2, pooling="last")
    x, lengths = padded([torch.randn(6, 5), torch.randn(2, 5)])
    logits, state = model(x, lengths=lengths)
    assert logits.shape == (2, 3) and state == ()
    alone, _ = model(x[1:2, :2])
    torch.testing.assert_close(logits[1:2], alone, rtol=1e-5, atol=1e-5)  # causal: padding after changes nothing


# ----- lecture 003's 1D ConvNet -----------------------------------------------------------------------

def conv(**kw):
    torch.manual_seed(0)
    return ConvTextClassifier(ConvTextConfig(**{"num_classes": 2, "vocab_size": 50, "embedding": 8, "channels": 6,
                                                **kw})).eval()


def test_conv_shapes_and_stateless():
    logits, state = conv()(torch.randint(1, 50, (4, 23)), lengths=torch.tensor([23, 12, 3, 1]))
    assert logits.shape == (4, 1) and state == ()
    logits, _ = conv(num_classes=5)(torch.randint(1, 50, (2, 3)))
    assert logits.shape == (2, 5)


def test_conv_padding_changes_nothing():
    model = conv(kernel_size=3, pool=2)
    seqs = [torch.randint(1, 50, (n,)) for n in (11, 4, 1, 7)]
    x, lengths = padded(seqs)
    x[1, 4:] = 49  # not even pad ids in the padding
    batch, _ = model(x, lengths=lengths)
    alone = torch.cat([model(s[None])[0] for s in seqs])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)


def test_conv_layers_follow_the_slide():
    model = conv(embedding=128, channels=32, vocab_size=10_000)
    assert model.conv1.kernel_size == (7,) and model.conv1.out_channels == 32 and model.conv2.in_channels == 32
    assert model.config.pool == 5 and model.head.out_features == 1


def test_conv_errors():
    with pytest.raises(ValueError, match="expected an odd kernel_size"):
        ConvTextConfig(num_classes=2, vocab_size=5, kernel_size=4)
    with pytest.raises(ValueError, match="no recurrent state"):
        conv()(torch.ones(1, 3, dtype=torch.long), state=torch.zeros(1))
    with pytest.raises(ValueError, match=r"expected ids in \[0, 50\)"):
        conv()(torch.tensor([[1, 50]]))
