r"""Time and peak memory of one training pass over a length-T sequence: full BPTT against truncated BPTT.

Full BPTT keeps every step's activations for the backward pass, so its memory grows linearly with T;
truncated BPTT (k steps, :func:`rnnkit.train.tbptt.plan` with k1 = k2 = k, the state detached between
updates as the Trainer does) holds one k-step graph at a time, so its memory stays flat. Both do T steps of
work per sequence: the time per *sequence* grows linearly in both, the time per *update* (one optimizer
step's worth of forward + backward) is flat for truncated BPTT.

A pass is ``zero_grad(set_to_none=True)``, then for each update: forward over its window of
``rk.layers.RNN(kind, H, H)`` from the (detached) state, MSE against a fixed random target, backward. No
optimizer update (it costs the same in both modes); gradients accumulate over the updates.

**How memory is measured.** In a fresh subprocess (:func:`worker_main`), so nothing the
main benchmark allocated, and no other library, is in the numbers. For each (mode, T): build the input
batch, run a warm-up pass at a short length (kernels, thread pools, first-use allocations), drop the
gradients, then on CPU return freed heap to the OS (glibc ``malloc_trim(0)``), reset the kernel's resident
high-water mark (``echo 5 > /proc/self/clear_refs``), read the resident set size (``VmRSS``), run one pass
and read the high-water mark (``VmHWM``). The reported peak is VmHWM - VmRSS-before: every page the pass
touched beyond what was resident before it: the saved activations, the gradients (constant in T), the
kernels' workspaces and temporaries; not the input batch or the weights. On CUDA the same difference is
``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()`` after ``reset_peak_memory_stats()``
(tensors only, not the caching allocator's reserve). If the high-water mark cannot be reset (not Linux),
every (mode, T) runs in its own process and the peak is the growth of ``ru_maxrss`` over the pass.
(``tracemalloc`` would see none of it: torch allocates outside Python's allocator.) The times are from
``repeats`` further passes: the memory pass starts from a trimmed heap and pays every page fault afresh.

RSS counts what the C allocator keeps as well as live tensors. With glibc's default dynamic mmap threshold,
freed large blocks raise the threshold and later ones come from the fragmenting heap, so truncated BPTT's
flat line creeps up a little with T; the worker runs with the user's allocator settings, so set
``MALLOC_MMAP_THRESHOLD_=131072`` (fixed threshold: large blocks mmapped, returned on free) to see the live
memory alone.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MemorySpec:
    kind: str = "lstm"
    batch: int = 32
    hidden: int = 256
    steps: tuple[int, ...] = (100, 400, 1600)
    k: int = 100
    device: str = "cpu"
    threads: int = 1
    repeats: int = 2        # timed passes per (mode, T), after the memory pass
    seed: int = 0


@dataclass
class MemoryRow:
    mode: str               # "full" or "truncated"
    steps: int              # T
    updates: int            # optimizer steps per sequence: 1 for full BPTT, ceil(T / k) truncated
    seconds: float          # median seconds per pass over the T steps
    peak_bytes: int | None  # None: could not be measured here

    @property
    def seconds_per_update(self) -> float:
        return self.seconds / self.updates


def training_pass(rnn, x, target, k: int | None) -> int:
    """One training pass over x (B, T, F) with full (k=None) or truncated BPTT; returns the number of updates."""
    from ..layers import detach_state
    from ..train import tbptt

    rnn.zero_grad(set_to_none=True)
    state = None
    updates = tbptt.plan(x.shape[1], k)  # k1 = k2 = k: windows do not overlap, no state saved inside one
    for u in updates:
        out, state = rnn(x[:, u.start:u.stop], state=state)
        F.mse_loss(out, target[:, u.start:u.stop]).backward()
        state = detach_state(state)
    return len(updates)


# --------------------------------------------------------------------------------------------------
# Peak readers
# --------------------------------------------------------------------------------------------------

class ProcPeak:
    """Resident memory of this process from /proc/self/status, with a resettable high-water mark."""

    def __init__(self):
        try:
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    @staticmethod
    def available() -> bool:
        return Path("/proc/self/status").exists()

    def reset(self) -> bool:
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
            return True
        except OSError:
            return False

    @staticmethod
    def _field(name: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"/proc/self/status has no {name}")

    def current(self) -> int:
        return self._field("VmRSS")

    def peak(self) -> int:
        return self._field("VmHWM")


class MaxRSSPeak:
    """ru_maxrss: a high-water mark that cannot be reset (one measurement per process)."""

    def reset(self) -> bool:
        gc.collect()
        return False

    def current(self) -> int:
        raise NotImplementedError("ru_maxrss has no current value; use the growth of peak()")

    def peak(self) -> int:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


class CudaPeak:
    def __init__(self, device):
        self.device = device

    def reset(self) -> bool:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return True

    def current(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)


METHODS = {
    "proc": "peak RSS above the RSS before the pass (/proc/self VmHWM reset via clear_refs, after malloc_trim), "
            "fresh subprocess",
    "growth": "growth of the process's peak RSS over the pass (not resettable here), one subprocess per row",
    "cuda": "torch.cuda.max_memory_allocated above memory_allocated before the pass (tensors), fresh subprocess",
}


# --------------------------------------------------------------------------------------------------
# The worker (runs in the subprocess)
# --------------------------------------------------------------------------------------------------

def run_worker(spec: MemorySpec, todo: list[tuple[str, int]]) -> dict:
    """Measure the (mode, T) pairs in order; stops after the first when the peak cannot be reset."""
    from ..layers import RNN

    torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    if device.type == "cuda":
        reader, method = CudaPeak(device), "cuda"
    elif ProcPeak.available():
        reader, method = ProcPeak(), "proc"
    else:
        reader, method = MaxRSSPeak(), "growth"
    torch.manual_seed(spec.seed)
    rnn = RNN(spec.kind, spec.hidden, spec.hidden).to(device).train()
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    done = []
    for i, (mode, T) in enumerate(todo):
        k = None if mode == "full" else spec.k
        x = torch.randn(spec.batch, T, spec.hidden, device=device)
        target = torch.randn(spec.batch, T, rnn.output_size, device=device)
        warm = min(8, T)
        training_pass(rnn, x[:, :warm], target[:, :warm], None)  # first use of every kernel
        rnn.zero_grad(set_to_none=True)
        sync()
        resettable = reader.reset()
        if i > 0 and not resettable:
            break  # the parent runs the rest in a new process
        if not resettable:  # a high-water mark we cannot reset: count its growth over the pass
            method = "growth"
        before = reader.current() if resettable else reader.peak()
        updates = training_pass(rnn, x, target, k)
        sync()
        peak = reader.peak() - before
        times = []  # not the memory pass: it started from a trimmed heap, so it paid every page fault afresh
        for _ in range(spec.repeats):
            start = time.perf_counter()
            training_pass(rnn, x, target, k)
            sync()
            times.append(time.perf_counter() - start)
        done.append({"mode": mode, "steps": T, "updates": updates, "seconds": statistics.median(times),
                     "peak_bytes": max(0, peak)})
        del x, target
    return {"method": method, "rows": done}


def measure_scaling(spec: MemorySpec, log: Callable[[str], None] = lambda m: None,
                    timeout: float = 1800) -> tuple[list[MemoryRow], str]:
    """The rows (for each T: full, then truncated) and a description of the memory method."""
    todo = [(mode, T) for T in spec.steps for mode in ("full", "truncated")]
    rows, method = [], "proc"
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the folder holding the rnnkit package
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    while todo:
        arg = json.dumps({"spec": asdict(spec), "todo": todo})
        log(f"  memory worker: {len(todo)} pass(es) of RNN(\"{spec.kind}\") B={spec.batch} H={spec.hidden}")
        proc = subprocess.run([sys.executable, "-c", WORKER, arg], capture_output=True, text=True, env=env,
                              timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"memory worker exited with status {proc.returncode}: {tail}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        method = result["method"]
        if not result["rows"]:
            raise RuntimeError("memory worker measured nothing")
        for r in result["rows"]:
            rows.append(MemoryRow(**r))
            log(f"  {r['mode']:>9} BPTT T={r['steps']:<5} {r['seconds'] * 1e3:9.1f} ms  "
                f"peak {r['peak_bytes'] / 2 ** 20:8.1f} MiB")
        todo = todo[len(result["rows"]):]
    return rows, METHODS[method]


# the subprocess's program (not `python -m rnnkit.bench.memory`: the package imports this module first)
WORKER = "import sys; from rnnkit.bench.memory import worker_main; sys.exit(worker_main(sys.argv[1:]))"


def worker_main(argv: list[str]) -> int:
    """Entry point of the subprocess: argv = [JSON {"spec": MemorySpec fields, "todo": [[mode, T], ...]}]."""
    if len(argv) != 1:
        print('usage: python -c "$WORKER" \'{"spec": {...}, "todo": [[mode, T], ...]}\'', file=sys.stderr)
        return 2
    arg = json.loads(argv[0])
    spec = arg["spec"]
    spec["steps"] = tuple(spec["steps"])
    result = run_worker(MemorySpec(**spec), [tuple(t) for t in arg["todo"]])
    print(json.dumps(result))
    return 0

