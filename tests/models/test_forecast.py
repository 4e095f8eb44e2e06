"""Forecasters: every body's shape contract, the bidirectional summary, residual = persistence at zero,
seq2seq causality, overfitting one batch, and the configuration's errors."""
from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.models.forecast import MODELS, ForecastConfig, Forecaster

B, T, F = 4, 24, 3


def model(**kw) -> Forecaster:
    torch.manual_seed(0)
    return Forecaster(ForecastConfig(input_size=F, window=T, **kw))


def x_batch(seed=0):
    return torch.randn(B, T, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["gru", "lstm", "rnn", "peephole", "gru-cho", "jordan", "minimal-gru", "tcn",
                                  "dense", "cnn", "cnn-gru", "cnn-lstm"])
def test_every_model_maps_a_window_to_one_value(name):
    kw = {"kernel_size": 3} if name == "tcn" else {}
    preds, state = model(model=name, **kw)(x_batch())
    assert preds.shape == (B,) and preds.dtype == torch.float32 and state == ()
    assert name in MODELS


@pytest.mark.parametrize("kw", [dict(layers=2, dropout=0.2, input_dropout=0.1, recurrent_dropout=0.5),
                                dict(bidirectional=True), dict(model="lstm", layers=2, bidirectional=True)])
def test_recurrent_variants_of_lecture_003(kw):
    m = model(**kw)
    m.train()
    with pytest.warns(UserWarning) if kw.get("recurrent_dropout") else contextlib.nullcontext():
        preds, _ = m(x_batch())
    assert preds.shape == (B,)
    m.eval()
    a, _ = m(x_batch())
    b, _ = m(x_batch())
    assert torch.equal(a, b)  # no dropout in evaluation


def test_bidirectional_summary_is_forward_last_and_backward_first():
    m = model(bidirectional=True, hidden=5)
    x = x_batch()
    outputs, _ = m.encoder(x)  # (B, T, 10)
    expected = m.head(torch.cat([outputs[:, -1, :5], outputs[:, 0, 5:]], dim=-1)).squeeze(-1)
    assert torch.allclose(m(x)[0], expected)
    # the backward direction reads the whole window: changing the first step changes its summary
    x2 = x.clone()
    x2[:, 0] += 1
    assert not torch.allclose(m.encoder(x2)[0][:, 0, 5:], outputs[:, 0, 5:])


@pytest.mark.parametrize("name", ["gru", "dense", "cnn", "cnn-gru"])
def test_residual_with_a_zero_head_is_the_persistence_forecast(name):
    m = model(model=name, residual=True, target_index=1)
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.zero_()
    x = x_batch()
    assert torch.equal(m(x)[0], x[:, -1, 1])


def test_seq2seq_predicts_every_step_from_its_past_only():
    m = model(seq2seq=True, hidden=8)
    x = x_batch()
    preds, _ = m(x)
    assert preds.shape == (B, T)
    x2 = x.clone()
    x2[:, 10] += 5.0
    preds2, _ = m(x2)
    assert torch.equal(preds[:, :10], preds2[:, :10]) and not torch.allclose(preds[:, 10:], preds2[:, 10:])
    r = model(seq2seq=True, residual=True, target_index=0)
    with torch.no_grad():
        r.head.weight.zero_()
        r.head.bias.zero_()
    assert torch.equal(r(x)[0], x[:, :, 0])


@pytest.mark.parametrize("kw", [dict(model="gru"), dict(model="dense"), dict(model="cnn-gru"),
                                dict(model="gru", seq2seq=True)])
def test_overfits_one_batch(kw):
    m = model(**kw)
    x = x_batch()
    y = torch.sin(x.sum(dim=(1, 2)))[:, None].expand(B, T) if kw.get("seq2seq") else torch.sin(x.sum(dim=(1, 2)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(m(x)[0], y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 20


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 5), window=st.integers(19, 40), features=st.integers(1, 4),
       name=st.sampled_from(["gru", "dense", "cnn", "cnn-gru", "lstm"]))
def test_shapes_for_random_sizes(batch, window, features, name):
    m = Forecaster(ForecastConfig(input_size=features, window=window, model=name, hidden=4, channels=4, dense=4))
    preds, _ = m(torch.randn(batch, window, features))
    assert preds.shape == (batch,)


def test_bad_configurations_and_inputs():
    with pytest.raises(ValueError, match="expected model in .*got 'transformer'"):
        ForecastConfig(input_size=F, window=T, model="transformer")
    with pytest.raises(ValueError, match="dropout acts between recurrent layers; expected layers >= 2, got 1"):
        ForecastConfig(input_size=F, window=T, dropout=0.2)
    with pytest.raises(ValueError, match="model 'dense' has no recurrent layers; bidirectional"):
        ForecastConfig(input_size=F, window=T, model="dense", bidirectional=True)
    with pytest.raises(ValueError, match="seq2seq predicts from each step's past only"):
        ForecastConfig(input_size=F, window=T, seq2seq=True, bidirectional=True)
    with pytest.raises(ValueError, match="expected target_index in \\[0, 3\\), got 3"):
        ForecastConfig(input_size=F, window=T, target_index=3)
    with pytest.raises(ValueError, match="a window of 12 steps is too short for two convolutions of kernel 5 with "
                                         "pooling 3 \\(needs at least 19 steps\\)"):
        Forecaster(ForecastConfig(input_size=F, window=12, model="cnn"))
    with pytest.raises(ValueError, match=r"expected x \(B, 24, 3\), got \(4, 20, 3\)"):
        model()(torch.randn(4, 20, 3))
