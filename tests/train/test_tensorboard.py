"""TensorBoard logging: used when the package is there, silently absent when it is not."""
import builtins

import torch

import rnnkit.train.trainer as trainer_module
from rnnkit.data import Batch
from rnnkit.train import TrainConfig, Trainer
from tiny import Regressor, Source, mse  # tests/train/tiny.py


class FakeWriter:
    def __init__(self):
        self.scalars, self.flushed = [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        self.flushed = True


def test_scalars_go_to_tensorboard_when_available(tmp_path, monkeypatch):
    writer = FakeWriter()
    monkeypatch.setattr(trainer_module, "tensorboard_writer", lambda path: writer)
    torch.manual_seed(0)
    batch = Batch(torch.randn(2, 3, 2), torch.randn(2, 3, 1))
    Trainer(Regressor(), TrainConfig(steps=3, quiet=True), loss_fn=mse, train_data=Source(batch),
            run_dir=tmp_path / "run").fit()
    tags = {(tag, step) for tag, _, step in writer.scalars}
    assert {("train/loss", 1), ("train/loss", 3), ("train/grad_norm", 2), ("train/lr", 3)} <= tags
    assert writer.flushed


def test_without_tensorboard_the_writer_is_none(monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert trainer_module.tensorboard_writer("/nonexistent") is None

