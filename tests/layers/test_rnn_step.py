"""RNN.step (generation and decoders): one step at a time equals the whole-sequence forward, on the
generation path (small batches without autograd) and on the cells' own path."""
import pytest
import torch

from rnnkit.layers import RNN

KINDS = [("rnn", {}), ("rnn", {"activation": "relu"}), ("lstm", {}), ("peephole", {}), ("gru", {}),
         ("gru-cho", {}), ("minimal-gru", {}), ("jordan", {})]


def stepped(rnn, x, state=None):
    ys = []
    for t in range(x.shape[1]):
        y, state = rnn.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize("kind,kwargs", KINDS, ids=[k + str(v) for k, v in KINDS])
@pytest.mark.parametrize("batch", [1, 3, 11])  # 11 > SMALL_BATCH: the cells' own path
@pytest.mark.parametrize("grad", [False, True])
def test_step_by_step_equals_forward(kind, kwargs, batch, grad):
    torch.manual_seed(0)
    rnn = RNN(kind, 4, 6, num_layers=2, dropout=0.3, **kwargs).double().eval()  # eval: no dropout
    x = torch.randn(batch, 5, 4, dtype=torch.float64)
    with torch.set_grad_enabled(grad):
        out, state = rnn(x)
        out_s, state_s = stepped(rnn, x)
    torch.testing.assert_close(out_s, out)
    torch.testing.assert_close(state_s, state)


def test_step_continues_from_a_forward_state():
    torch.manual_seed(0)
    rnn = RNN("lstm", 3, 5, num_layers=2).eval()
    x = torch.randn(1, 7, 3)
    with torch.no_grad():
        full, _ = rnn(x)
        _, state = rnn(x[:, :4])
        rest, _ = stepped(rnn, x[:, 4:], state)
    torch.testing.assert_close(rest, full[:, 4:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("grad", [False, True])
def test_step_with_a_wrong_state_names_the_layer(grad):
    rnn = RNN("lstm", 3, 5, num_layers=2)
    x = torch.randn(1, 3)
    state = rnn.initial_state(1)
    state[1] = (state[1][0], torch.zeros(1, 4))
    with torch.set_grad_enabled(grad), pytest.raises(ValueError, match=r"expected state\[1\] of shape \(1, 5\), got \(1, 4\)"):
        rnn.step(x, state)
    with torch.set_grad_enabled(grad), pytest.raises(ValueError, match=r"expected input \(B, 3\), got \(1, 4\)"):
        rnn.step(torch.randn(1, 4))
