"""Lecture 003's one-to-many (RepeatVector) and keep-last-N many-to-many recipes."""
import pytest
import torch

from rnnkit.layers import RNN
from rnnkit.layers.recipes import KeepLast, RepeatDecoder, RepeatVector, keep_last


def test_repeat_vector():
    v = torch.randn(2, 4)
    y = RepeatVector(3)(v)
    assert y.shape == (2, 3, 4) and torch.equal(y[:, 2], v)
    with pytest.raises(ValueError, match=r"expected input \(B, F\), got \(2, 3, 4\)"):
        RepeatVector(3)(y)
    with pytest.raises(ValueError, match="n >= 1"):
        RepeatVector(0)


def test_repeat_decoder_equals_a_hand_loop():
    torch.manual_seed(0)
    rnn = RNN("lstm", 5, 7)
    decoder = RepeatDecoder(rnn, steps=4)
    v = torch.randn(3, 5)
    out, state = decoder(v, lengths=[4, 2, 1])
    assert out.shape == (3, 4, 7)
    cell = rnn.cells[0]
    for b, n in enumerate([4, 2, 1]):
        s = cell.initial_state(1)
        for t in range(n):
            y, s = cell(v[b:b + 1], s)
            assert torch.allclose(out[b, t], y[0], atol=1e-5)
        assert torch.allclose(state[0][0][b], s[0][0], atol=1e-5)
        assert torch.all(out[b, n:] == 0)
    with pytest.raises(ValueError, match=r"lengths \(3,\) in \[1, 4\]"):
        decoder(v, lengths=[5, 1, 1])


def test_keep_last_respects_lengths():
    y = torch.randn(3, 6, 2)
    assert torch.equal(keep_last(y, 2), y[:, -2:])
    kept = keep_last(y, 2, lengths=[6, 3, 2])
    for b, n in enumerate([6, 3, 2]):
        assert torch.equal(kept[b], y[b, n - 2:n])
    with pytest.raises(ValueError, match=r"in \[n = 2, T = 6\]"):
        keep_last(y, 2, lengths=[6, 1, 2])
    with pytest.raises(ValueError, match="n <= T = 6"):
        keep_last(y, 7)


def test_keep_last_layer():
    torch.manual_seed(0)
    rnn = RNN("gru", 4, 8)
    x = torch.randn(3, 6, 4)
    out, _ = KeepLast(rnn, n=2)(x, lengths=[6, 4, 2])
    full, _ = rnn(x, lengths=[6, 4, 2])
    assert out.shape == (3, 2, 8)
    assert torch.equal(out[1], full[1, 2:4])
