"""Data parallelism with torch.distributed, launched by torchrun: the same command on 1..N processes.

``torchrun --nproc_per_node 2 -m rnnkit train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; ``setup``
joins the process group (gloo on CPU, NCCL on GPU). The trainer then wraps the model in
DistributedDataParallel, gives every rank its contiguous slice of each global batch, and lets rank 0
alone write the run directory and draw the progress bar.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> World:
    """Join the process group if torchrun started us (or one is already initialised); else one process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def shard_rows(world: World, batch_size: int) -> tuple[int, int]:
    """The rows [start, stop) of a global batch that this rank trains on."""
    if batch_size % world.size:
        raise ValueError(f"distributed training: the global batch size {batch_size} must be divisible by "
                         f"the number of processes {world.size}")
    per = batch_size // world.size
    return world.rank * per, (world.rank + 1) * per
