"""``rnnkit bench``: training throughput of every cell kind against torch, a Python loop, NumPy and Keras,
the fp32 GEMM peak it is measured against, and BPTT time and memory against the sequence length.

    >>> from rnnkit.bench import BenchConfig, run_bench
    >>> print(run_bench(BenchConfig.preset("quick", kinds=("lstm", "gru"))))

Modules: :mod:`.timing` (the interleaved-rounds timing loop, shared with ``benchmarks/bench_core.py``),
:mod:`.flops` (what a step costs), :mod:`.peak` (the sgemm peak), :mod:`.rows` (the models),
:mod:`.memory` (BPTT scaling, measured in a subprocess), :mod:`.table` (Markdown), :mod:`.suite` (the run).
"""
from .flops import forward_flops, train_flops
from .suite import BenchConfig, run_bench

__all__ = ["BenchConfig", "forward_flops", "run_bench", "train_flops"]
