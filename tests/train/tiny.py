"""Tiny models, sources and losses for the trainer tests (imported as ``tiny``: conftest.py puts this
folder on sys.path, which spawned DDP workers inherit)."""
from __future__ import annotations

import json
import os

import torch
from torch import nn

import rnnkit as rk
from rnnkit.train import masked_mse, sequence_loss


class Regressor(nn.Module):
    """(B, T, F) floats -> (B, T, 1): one recurrent layer and a linear head. Takes lengths."""

    def __init__(self, input_size=2, hidden_size=3, *, cell="elman", dropout=0.0):
        super().__init__()
        make = {"elman": rk.cells.ElmanCell, "lstm": rk.cells.LSTMCell}[cell]
        self.rnn = rk.layers.Recurrent(make(input_size, hidden_size), input_dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x, state=None, lengths=None):
        out, state = self.rnn(x, lengths=lengths, state=state)  # (B, T, H)
        return self.head(self.drop(out)), state


class LM(nn.Module):
    """(B, T) ids -> (B, T, V) logits: embedding, one recurrent layer, projection."""

    def __init__(self, vocab=7, hidden_size=5, *, cell="lstm", dropout=0.0):
        super().__init__()
        make = {"elman": rk.cells.ElmanCell, "lstm": rk.cells.LSTMCell}[cell]
        self.embed = nn.Embedding(vocab, 4)
        self.rnn = rk.layers.Recurrent(make(4, hidden_size))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab)

    def forward(self, x, state=None, lengths=None):
        out, state = self.rnn(self.embed(x), lengths=lengths, state=state)  # (B, T, H)
        return self.head(self.drop(out)), state


class Source:
    """A fixed list of batches, the same every epoch."""

    def __init__(self, *batches):
        self.items = list(batches)

    def __len__(self):
        return len(self.items)

    def batches(self, epoch=0):
        yield from self.items


def mse(preds, batch):
    return masked_mse(preds, batch.y, lengths=batch.lengths)


def xent(logits, batch):
    return sequence_loss(logits, batch.y, lengths=batch.lengths)


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_params_equal(a, b):
    a = params(a) if isinstance(a, nn.Module) else a
    b = params(b) if isinstance(b, nn.Module) else b
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs: max |diff| {(a[k] - b[k]).abs().max().item()}"


def read_metrics(run_dir, split="train") -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    records = [json.loads(line) for line in open(path) if line.strip()]
    return [r for r in records if r.get("split", "train") == split]


# ----- data-parallel worker (spawned by tests/train/test_distributed.py) -----------------------------

def ddp_data(T=4):
    g = torch.Generator().manual_seed(3)
    return torch.randn(4, T, 2, generator=g), torch.randn(4, T, 1, generator=g)


def ddp_train(setting: str, steps: int = 3, seen: list | None = None):
    """Train a fresh Regressor on the fixed global batch of 4; under torch.distributed each rank gets
    its 2 rows through the trainer's sharding. Returns the model; `seen` collects each loss call's targets."""
    from rnnkit.data import TensorBatches
    from rnnkit.train import TrainConfig, Trainer

    T = {"full": 4, "tbptt": 6}[setting]
    bptt = {"full": {}, "tbptt": {"bptt": 2, "bptt_window": 3}}[setting]
    x, y = ddp_data(T)
    torch.manual_seed(0)
    model = Regressor()
    cfg = TrainConfig(steps=steps, batch_size=4, optimizer="sgd", lr=0.5, device="cpu", quiet=True, **bptt)

    def loss_fn(preds, batch):
        if seen is not None:
            seen.append(batch.y.detach().clone())
        return mse(preds, batch)

    Trainer(model, cfg, loss_fn=loss_fn, train_data=TensorBatches(x, y, 4, shuffle=False)).fit()
    return model


def ddp_worker(rank: int, world_size: int, port: int, out_dir: str):
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    try:
        for setting in ("full", "tbptt"):
            seen = []
            model = ddp_train(setting, seen=seen)  # the first Trainer joins the process group
            torch.save(seen, os.path.join(out_dir, f"{setting}.rank{rank}.targets.pt"))
            if rank == 0:
                torch.save(model.state_dict(), os.path.join(out_dir, f"{setting}.pt"))
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
