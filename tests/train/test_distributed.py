"""Data parallelism: 2 CPU processes (gloo) on a global batch of 4 train exactly like 1 process on it."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import tiny  # the spawned workers import it again by name: conftest.py put its folder on sys.path
from rnnkit.train.distributed import World, shard_rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_rows_are_contiguous_and_cover_the_batch():
    assert [shard_rows(World(rank=r, size=2), 4) for r in range(2)] == [(0, 2), (2, 4)]
    assert shard_rows(World(), 3) == (0, 3)
    with pytest.raises(ValueError, match="divisible"):
        shard_rows(World(rank=0, size=2), 3)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_processes_match_one(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    mp.spawn(tiny.ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    assert not dist.is_initialized()
    for setting in ("full", "tbptt"):  # full BPTT; TBPTT k1=2, k2=3 (segments outside the DDP wrapper)
        got = torch.load(tmp_path / f"{setting}.pt", weights_only=True)
        expected = tiny.ddp_train(setting).state_dict()  # one process, the whole batch
        torch.manual_seed(0)
        start = tiny.Regressor().state_dict()
        assert got.keys() == expected.keys()
        for k in got:
            torch.testing.assert_close(got[k], expected[k], rtol=0, atol=1e-5, msg=f"{setting}: {k}")
        assert any(not torch.allclose(got[k], start[k], atol=1e-3) for k in got)  # training moved them
        _, y = tiny.ddp_data({"full": 4, "tbptt": 6}[setting])
        for rank, rows in ((0, slice(0, 2)), (1, slice(2, 4))):  # each rank saw its own 2 rows, 3 times
            seen = torch.load(tmp_path / f"{setting}.rank{rank}.targets.pt", weights_only=True)
            assert len(seen) == 3
            for targets in seen:
                T = targets.shape[1]
                assert any(torch.equal(targets, y[rows, a:a + T]) for a in range(y.shape[1] - T + 1))
