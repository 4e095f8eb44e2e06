"""The models ``rnnkit bench`` times: for each cell kind, rnnkit's RNN and what a user would pick instead.

For a kind and a shape (B, T, H), with F = H inputs, float32, training mode, one layer:

* **rnnkit**: ``rk.layers.RNN(kind, F, H)`` exactly as a user builds it (whatever path it takes: torch's
  fused kernel, a cell's whole-sequence path, or the explicit step loop).
* **torch fused**: the torch module of the kind's family (:func:`family`): ``nn.LSTM`` for LSTM-like kinds
  (lstm, peephole, any kind named ``*lstm*``), ``nn.GRU`` for GRU-like kinds (gru, gru-cho, minimal-gru,
  ``*gru*``), ``nn.RNN`` (tanh) for the rest (rnn, jordan). Measured once per family and shape.
* **Python loop**: ``for t in range(T): y, s = cell(x[:, t], s)`` over a fresh cell of the same kind (the
  cell's own per-step forward, plain torch ops; no input-projection hoisting, no fused path).
* **NumPy reference** (:mod:`rnnkit.reference`, forward + hand-written BPTT, float32, no clipping) where one
  exists: rnn -> ``elman_loss``, lstm / peephole -> ``lstm_loss``, gru / gru-cho -> ``gru_loss`` (reset
  after / before). It has no batch dimension: its step time is measured on a few of the B sequences and
  scaled to B. Its inputs are one-hot ids (V = F, so W_ih x is the same dense product) and it also runs its
  softmax output layer (V x H): extra work that only makes it slower. It runs on the CPU whatever --device.
* **Keras 3** on the torch backend (``KERAS_BACKEND=torch``), when installed: ``keras.layers.LSTM`` (LSTM
  family), ``GRU`` (``reset_after=False`` for gru-cho, the reset-before form), ``SimpleRNN`` (RNN family),
  ``return_sequences=True``. On CPU Keras runs its own Python loop over time; on CUDA, cuDNN.

One training step is :func:`rnnkit.bench.timing.train_step` (zero_grad + forward + MSE + backward) for every
torch model; for the reference, its loss function (forward + BPTT) over the sequences.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import reference
from ..cells import LayerNormLSTMCell, LSTMCell
from ..kernels import lstm_steps
from ..layers import KINDS, RNN, make_cell
from .flops import train_flops
from .timing import train_step

TORCH_FUSED = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}

# kind -> (reference function, its kind, keyword arguments); other kinds have no NumPy reference
REFERENCES = {
    "rnn": (reference.elman_loss, "elman", {}),
    "lstm": (reference.lstm_loss, "lstm", {}),
    "peephole": (reference.lstm_loss, "lstm", {"peephole": True}),
    "gru": (reference.gru_loss, "gru", {"reset_after": True}),
    "gru-cho": (reference.gru_loss, "gru", {"reset_after": False}),
}
KERAS_LAYERS = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}


def family(kind: str) -> str:
    """'LSTM', 'GRU' or 'RNN': the torch fused module (and Keras layer) a user of this kind would pick instead."""
    name = kind.lower()
    if "lstm" in name or name == "peephole":
        return "LSTM"
    if "gru" in name:
        return "GRU"
    return "RNN"


def keras_variant(kind: str) -> tuple[str, dict]:
    """The Keras layer (class name, keyword arguments) matching a kind."""
    fam = family(kind)
    kwargs = {"reset_after": False} if kind == "gru-cho" else {}
    return KERAS_LAYERS[fam], kwargs


def check_kinds(kinds) -> tuple[str, ...]:
    """The kinds as a tuple, each one a key of rk.layers.KINDS (ValueError naming the valid ones otherwise)."""
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError(f"rnnkit bench: expected at least one cell kind, got none; valid kinds: {', '.join(KINDS)}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"rnnkit bench: unknown cell kind{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(k) for k in unknown)}; valid kinds: {', '.join(KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"rnnkit bench: each kind once, got {', '.join(kinds)}")
    return kinds


# --------------------------------------------------------------------------------------------------
# Modules: forward(x) -> outputs (B, T, H)
# --------------------------------------------------------------------------------------------------

class Outputs(nn.Module):
    """A recurrent layer (torch's nn.LSTM/nn.GRU/nn.RNN or rnnkit's RNN) returning only its outputs."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


class CellLoop(nn.Module):
    """What a user writes around a cell: a Python loop of cell(x_t, state), outputs stacked."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cell = cell

    def forward(self, x):
        state, outs = None, []
        for t in range(x.shape[1]):
            y, state = self.cell(x[:, t], state)
            outs.append(y)
        return torch.stack(outs, dim=1)  # T x (B, H) -> (B, T, H)


def rk_path(rnn: RNN) -> str:
    """Which path rnnkit's RNN takes in training: torch's kernel, the cell's whole-sequence path
    (``cell.sequence``, when it accepts a plain float input: it returns None where it does not apply; "compiled
    steps" where its pointwise work runs in :mod:`rnnkit.kernels.lstm_steps`), or the explicit step loop."""
    if rnn.uses_kernel():
        return f"torch kernel ({rnn.kernel})"
    cell = rnn.cells[0]
    sequence = getattr(cell, "sequence", None)
    if sequence is not None and rnn.fused is not False:
        w = cell.weight_ih
        try:
            with torch.no_grad():
                applies = sequence(w.new_zeros(2, 1, cell.input_size), cell.initial_state(1)) is not None
        except Exception:  # noqa: BLE001 - a label only; the timing shows what it costs
            applies = False
        if applies:
            compiled = isinstance(cell, (LSTMCell, LayerNormLSTMCell)) and lstm_steps.applies(w)
            return "cell.sequence, compiled steps" if compiled else "cell.sequence"
    return "step loop"


# --------------------------------------------------------------------------------------------------
# Keras (optional)
# --------------------------------------------------------------------------------------------------

def keras_status() -> str | None:
    """None when Keras 3 can run on the torch backend here; otherwise why not ('not installed', ...)."""
    if "keras" not in sys.modules and importlib.util.find_spec("keras") is None:
        return "not installed"
    if "keras" not in sys.modules:
        # Keras reads its backend once, at import: this process's Keras must be the torch one.
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except Exception as err:  # noqa: BLE001 - a broken install is a row note, not a crash
        return f"import failed ({type(err).__name__})"
    if not hasattr(keras, "backend") or not str(getattr(keras, "__version__", "0")).startswith("3"):
        return f"Keras {getattr(keras, '__version__', '?')} is not Keras 3"
    if keras.backend.backend() != "torch":
        return f"Keras backend is {keras.backend.backend()}, not torch (already imported)"
    return None


class KerasOutputs(nn.Module):
    """A Keras 3 recurrent layer (torch backend: itself an nn.Module holding torch Parameters), built and
    called under ``keras.device(device)`` so Keras keeps its tensors where the benchmark put them."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, device: str):
        super().__init__()
        import keras

        name, kwargs = keras_variant(kind)
        self.device = device
        with keras.device(device):
            self.layer = getattr(keras.layers, name)(hidden_size, return_sequences=True, **kwargs)
            self.layer.build((None, None, input_size))

    def forward(self, x):
        import keras

        with keras.device(self.device):
            return self.layer(x)  # a torch tensor, differentiable by torch's autograd


# --------------------------------------------------------------------------------------------------
# NumPy reference
# --------------------------------------------------------------------------------------------------

def reference_step(kind: str, input_size: int, hidden_size: int, steps: int, sequences: int, *,
                   seed: int) -> Callable[[], None]:
    """One reference 'training step' over `sequences` random sequences of `steps` ids (float32, no clipping)."""
    fn, ref_kind, kwargs = REFERENCES[kind]
    peephole = kwargs.get("peephole", False)
    params = reference.init_params(ref_kind, input_size, hidden_size, rng=seed, peephole=peephole, scale=0.1,
                                   dtype=np.float32)
    rng = np.random.default_rng(seed)
    data = [(rng.integers(0, input_size, steps), rng.integers(0, input_size, steps)) for _ in range(sequences)]
    state = reference.initial_state(ref_kind, hidden_size, dtype=np.float32)

    def step():
        for inputs, targets in data:
            fn(params, inputs, targets, state, None, **kwargs)

    return step


def blas_limit(threads: int):
    """A context limiting NumPy's BLAS to `threads` threads, as torch is (threadpoolctl, which scikit-learn
    brings; a no-op without it). Entered once around the timing: entering it costs ~0.3 ms."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


# --------------------------------------------------------------------------------------------------
# One shape: the entries to time and the rows they make
# --------------------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One timed model. step_times are seconds per training step of the whole batch (after `scale`)."""

    key: str
    label: str
    step: Callable[[], None] = field(repr=False)
    scale: float = 1.0                       # the reference times a few sequences: x B / sequences
    step_times: list[float] = field(default_factory=list)
    iters: int = 1


@dataclass
class Row:
    """One line of the table: a kind at a shape, and the keys of the entries it is compared with."""

    kind: str
    shape: tuple[int, int, int]              # B, T, H
    path: str
    flops: int                               # one training step
    rk: str
    torch: str
    loop: str
    reference: str | None                    # entry key, or None (then reference_note says why)
    reference_note: str
    keras: str | None
    keras_note: str


def build(kinds, shape, *, device: str, seed: int, reference_sequences: int,
          keras_note: str | None) -> tuple[list[Row], dict[str, Entry]]:
    """The rows for one shape and the entries (deduplicated: one nn.LSTM serves lstm and peephole)."""
    B, T, H = shape
    F_ = H
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    entries: dict[str, Entry] = {}
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F_, generator=gen).to(dev)
    targets: dict[int, torch.Tensor] = {}

    def add(key: str, label: str, make: Callable[[], nn.Module], out_size: int = H) -> str:
        """The entry `key`, made (module = make()) on first use: baselines are shared by the kinds."""
        if key not in entries:
            module = make()
            module = module.train() if isinstance(module, KerasOutputs) else module.to(dev).train()
            if out_size not in targets:
                targets[out_size] = torch.randn(B, T, out_size, generator=gen).to(dev)
            step = partial(train_step, module, x, targets[out_size])
            entries[key] = Entry(key, label, step if sync is None else _synced(step, sync))
        return key

    rows = []
    for kind in kinds:
        torch.manual_seed(seed)
        rnn = RNN(kind, F_, H)
        fam = family(kind)
        torch_key = add(f"nn.{fam}", f"nn.{fam}", lambda: Outputs(TORCH_FUSED[fam](F_, H, batch_first=True)))
        rk_key = add(f"rk:{kind}", f'RNN("{kind}")', lambda: Outputs(rnn), rnn.output_size)
        cell = make_cell(kind, F_, H)
        loop_key = add(f"loop:{kind}", f"{kind} cell loop", lambda: CellLoop(cell), getattr(cell, "output_size", H))
        if kind in REFERENCES:
            n = max(1, min(B, reference_sequences))
            ref_key = f"numpy:{kind}"
            entries[ref_key] = Entry(ref_key, REFERENCES[kind][0].__name__,
                                     reference_step(kind, F_, H, T, n, seed=seed), scale=B / n)
            ref_note = REFERENCES[kind][0].__name__
        else:
            ref_key, ref_note = None, "— none"
        if keras_note is None:
            name, kwargs = keras_variant(kind)
            label = f"keras {name}" + "".join(f"({k}={v})" for k, v in kwargs.items())
            keras_key = add(label, label, lambda: KerasOutputs(kind, F_, H, device))
            k_note = name + ("(reset_after=False)" if kwargs else "")
        else:
            keras_key, k_note = None, keras_note
        rows.append(Row(kind, shape, rk_path(rnn), train_flops(rnn.cells, B, T), rk_key, torch_key, loop_key,
                        ref_key, ref_note, keras_key, k_note))
    return rows, entries


def _synced(step, sync):
    def run():
        step()
        sync()
    return run


# --------------------------------------------------------------------------------------------------
# Correctness, once, on a tiny shape
# --------------------------------------------------------------------------------------------------

def check_against_loop(kinds, seed: int = 0) -> list[str]:
    """For each kind: RNN(kind) == the Python loop over its own cell (outputs and input gradient, float64).

    Returns the kinds that disagree (empty when all agree); the timed rows stand only if this holds.
    """
    bad = []
    for kind in kinds:
        torch.manual_seed(seed)
        rnn = RNN(kind, 5, 6).double()
        loop = CellLoop(rnn.cells[0])
        x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
        got = rnn(x)[0]
        (dx_got,) = torch.autograd.grad(got.square().sum(), x)
        want = loop(x)
        (dx_want,) = torch.autograd.grad(want.square().sum(), x)
        if not (torch.allclose(got, want, atol=1e-10, rtol=1e-9) and torch.allclose(dx_got, dx_want, atol=1e-9, rtol=1e-8)):
            bad.append(kind)
    return bad


def gate_blocks(kind: str) -> str:
    """k, the number of H-row gate blocks of the kind's weight_ih ('?' for a cell without one)."""
    cell = make_cell(kind, 2, 3)
    w = getattr(cell, "weight_ih", None)
    return "?" if w is None or w.dim() != 2 else str(w.shape[0] // 3)
