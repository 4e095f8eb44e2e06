"""The fp32 GEMM peak of this machine, measured in-process with the thread count the rows use.

A square ``torch.mm`` of float32 (n x n) @ (n x n), 2 n^3 FLOPs, timed ``repeats`` times after one warm-up
call; the peak is the best repetition (contention only ever slows a call down). On CUDA the call is
synchronised and TF32 is whatever ``torch.backends.cuda.matmul.allow_tf32`` says (torch's default: off,
true fp32), as it is for the rows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Peak:
    gflops: float     # best repetition
    size: int         # n
    repeats: int
    threads: int
    device: str

    def describe(self) -> str:
        return (f"{self.gflops:,.1f} GFLOP/s (best of {self.repeats} float32 {self.size}x{self.size}x{self.size} "
                f"torch.mm on {self.device}, {self.threads} thread(s))")


def sgemm_peak(size: int = 2048, *, repeats: int = 5, device: str = "cpu", seed: int = 0) -> Peak:
    """Best GFLOP/s of a float32 size x size x size matrix product."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    torch.mm(a, b, out=out)  # warm-up: threads, caches, cuBLAS handle
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        sync()
        best = min(best, time.perf_counter() - start)
    return Peak(2 * size ** 3 / best / 1e9, size, repeats, torch.get_num_threads(), str(device))
