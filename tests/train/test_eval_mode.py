"""rnnkit._modes.eval_mode: evaluation inside the block, the module's own mode after it, whatever happens."""
import pytest
from torch import nn

from rnnkit._modes import eval_mode


@pytest.mark.parametrize("training", [True, False])
def test_the_mode_is_restored_after_the_block_and_after_an_error(training):
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    with eval_mode(net) as inside:
        assert inside is net and not net.training and not net[1].training
    assert net.training is training and net[1].training is training
    with pytest.raises(RuntimeError):
        with eval_mode(net):
            raise RuntimeError("boom")
    assert net.training is training


def test_a_generator_closed_early_restores_the_mode():
    net = nn.Linear(2, 2).train()

    def steps():
        with eval_mode(net):
            while True:
                yield net.training

    gen = steps()
    assert next(gen) is False and net.training is False
    gen.close()
    assert net.training is True
