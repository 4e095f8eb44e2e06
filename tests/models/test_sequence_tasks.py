"""SequenceModel: any encoder kind under a linear head, many-to-one or many-to-many, checked config."""
import pytest
import torch

from rnnkit.layers import ENCODERS
from rnnkit.models.sequence_tasks import SequenceModel, SequenceModelConfig


@pytest.mark.parametrize("model", ENCODERS)
@pytest.mark.parametrize("readout", ["last", "all"])
def test_shapes_for_every_encoder(model, readout):
    torch.manual_seed(0)
    net = SequenceModel(SequenceModelConfig(3, 4, model=model, hidden=5, layers=2, readout=readout))
    preds, state = net(torch.randn(2, 6, 3))
    assert preds.shape == ((2, 4) if readout == "last" else (2, 6, 4))
    assert state == () if model == "tcn" else len(state) == 2


def test_last_readout_reads_each_sequences_last_valid_step():
    torch.manual_seed(0)
    net = SequenceModel(SequenceModelConfig(3, 2, model="tcn", hidden=4, layers=2))
    x = torch.randn(2, 6, 3)
    padded, _ = net(x, lengths=torch.tensor([6, 3]))
    torch.testing.assert_close(padded[0], net(x[:1])[0][0])
    torch.testing.assert_close(padded[1], net(x[1:, :3])[0][0])


def test_rnn_state_carries_and_the_empty_tcn_state_is_accepted():
    torch.manual_seed(0)
    rnn = SequenceModel(SequenceModelConfig(3, 1, model="gru", hidden=4, readout="all"))
    x = torch.randn(2, 8, 3)
    whole, _ = rnn(x)
    first, state = rnn(x[:, :5])
    second, _ = rnn(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    tcn = SequenceModel(SequenceModelConfig(3, 1, model="tcn", hidden=4, readout="all"))
    torch.testing.assert_close(tcn(x, ())[0], tcn(x)[0])


def test_dropout_acts_before_the_head_even_for_one_layer():
    torch.manual_seed(0)
    net = SequenceModel(SequenceModelConfig(3, 2, model="lstm", hidden=8, dropout=0.5))
    x = torch.randn(4, 5, 3)
    assert not torch.equal(net(x)[0], net(x)[0])
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0])


def test_tcn_kernel_size():
    net = SequenceModel(SequenceModelConfig(3, 2, model="tcn", hidden=4, layers=3, kernel_size=5))
    assert net.encoder.kernel_size == 5 and net.encoder.receptive_field == 1 + 2 * 4 * 7
    assert SequenceModel(SequenceModelConfig(3, 2, model="tcn")).encoder.kernel_size == 3


@pytest.mark.parametrize("kw, message", [
    ({"model": "wavenet"}, "expected model in"),
    ({"readout": "mean"}, r"expected readout in \('last', 'all'\), got 'mean'"),
    ({"hidden": 0}, "expected hidden >= 1, got 0"),
    ({"model": "gru", "kernel_size": 3}, "kernel_size applies to the TCN only"),
])
def test_bad_config(kw, message):
    with pytest.raises(ValueError, match=message):
        SequenceModelConfig(3, 2, **kw)
