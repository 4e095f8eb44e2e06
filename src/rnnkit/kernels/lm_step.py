r"""A recurrent language model's generation step and next-token draw as one native call (``csrc/lm_step.c``).

A token through torch's ops costs one product per layer plus ~20 small ops (the cell's pointwise update, the
output layer, the draw), each a few µs of dispatch on the CPU; at batch 1 that is most of the step. Here one
C call does all of it and returns the next id, for stacks of LSTMs (peepholes or not), GRUs (torch's
reset-after form and Cho et al.'s reset-before form) and Elman cells (tanh, ReLU, sigmoid, identity):

.. math::
    a^{(1)} = T[\mathrm{id}] + W^{(1)}_h h^{(1)}_{t-1} + b^{(1)}_h,\qquad
    a^{(l)} = W^{(l)}_x h^{(l-1)}_t + b^{(l)}_x + W^{(l)}_h h^{(l)}_{t-1} + b^{(l)}_h

each layer's own update on those gate rows (the header of ``csrc/lm_step.c`` writes out all four), then
``logits = W_y h^{(L)}_t + b_y``, and :func:`rnnkit.decode.sample.next_token`'s inverse-CDF draw for a uniform
u the caller draws from torch's generator (so the same seed gives the same text as the torch path, but for a
draw that lands within rounding of a boundary). Shapes: the table T (V, G) with G = 4H, 3H or H by the first
layer's cell, every W (G, H), the state (H,) per layer, batch 1.

Precisions of the recurrent weights: float32; bf16 (rounded to nearest even, products summed in float32; on
CPUs with AVX-512 BF16 against the layer input rounded to bf16 too, as torch's bf16 product does); int8, one
scale per row (w ≈ s_n q_n, s_n = max|w_n| / 127). On CPUs with AVX-512 VNNI the int8 products also round
each input vector to int8 (one scale per vector and step, s_x = max|x| / 127; sums in int32), as
:class:`rnnkit.kernels.packed.Int8Product` does (with 7 bits there), so each gate is off by at most
sum_k |x_k| s_n / 2 + sum_k |w_nk| s_x / 2; elsewhere the input stays float32 and only the first term
remains. The table, the state and the output layer stay float32.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch import Tensor

from . import native

PRECISION_CODES = {"fp32": 0, "bf16": 1, "int8": 2}
_P = ctypes.POINTER(ctypes.c_void_p)


class _Struct(ctypes.Structure):  # lm_step_t in csrc/lm_step.c, field for field
    _fields_ = [("layers", ctypes.c_int32), ("hidden", ctypes.c_int32), ("vocab", ctypes.c_int32),
                ("precision", ctypes.c_int32), ("threads", ctypes.c_int32), ("kinds", ctypes.c_void_p),
                ("activations", ctypes.c_void_p), ("table", ctypes.c_void_p),
                *((name, _P) for name in ("wx", "wh", "sx", "sh", "qx", "qh", "bx", "bh", "peepholes", "h", "c")),
                ("scratch", ctypes.c_void_p), ("head_weight", ctypes.c_void_p), ("head_bias", ctypes.c_void_p),
                ("logits", ctypes.c_void_p), ("cdf", ctypes.c_void_p), ("ranked", ctypes.c_void_p)]


KINDS = {"lstm": 0, "gru": 1, "gru-cho": 2, "elman": 3}  # gru: reset after the product (torch's); gru-cho: before
GATES = {"lstm": 4, "gru": 3, "gru-cho": 3, "elman": 1}
ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}


@dataclass
class Layer:
    """One layer for the kernel: kind (a key of KINDS), wh (G, H), bh (G,) or None, and for layers above the
    first wx (G, H) and bx (G,) or None (the first layer's input part is the table); peepholes (3, H) for an
    LSTM with them; activation (a key of ACTIVATIONS) for an Elman layer."""

    kind: str
    wh: Tensor
    bh: Tensor | None = None
    wx: Tensor | None = None
    bx: Tensor | None = None
    peepholes: Tensor | None = None
    activation: str = "tanh"


def library() -> ctypes.CDLL | None:
    """The compiled ``csrc/lm_step.c`` (:func:`rnnkit.kernels.native.library`), bound, or None."""
    return bind(native.library("lm_step"))


def bind(lib: ctypes.CDLL | None) -> ctypes.CDLL | None:
    """Declare the argument and result types of a loaded ``lm_step`` library's functions (once)."""
    if lib is not None and lib.rk_lm_sample.restype is not ctypes.c_int64:
        f, i32, p = ctypes.c_float, ctypes.c_int32, ctypes.c_void_p
        lib.rk_lm_sample.argtypes = [p, ctypes.c_int64, f, f, i32, f]
        lib.rk_lm_sample.restype = ctypes.c_int64
        lib.rk_lm_step.argtypes = [p, ctypes.c_int64]
        lib.rk_lm_step.restype = None
        lib.rk_draw.argtypes = [p, p, p, i32, f, f, i32, f]
        lib.rk_draw.restype = ctypes.c_int64
    return lib


def quantized(w: Tensor, precision: str) -> tuple[Tensor, Tensor | None]:
    """A weight (N, K) as the kernel reads it: float32, bf16 bits (int16), or int8 with its row scales (N,)."""
    w = _copy(w)
    if precision == "fp32":
        return w, None
    if precision == "bf16":
        return w.bfloat16().view(torch.int16).contiguous(), None
    largest = w.abs().amax(dim=1)
    scales = (largest / 127).masked_fill_(largest == 0, 1.0)  # a zero row keeps scale 1, not 0
    return torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8), scales


def _row_sums(weights, scales) -> list[Tensor | None]:
    """Each int8 weight's row sums (int32), which the kernel's int8 products subtract; None for the others."""
    return [None if s is None else w.sum(1, dtype=torch.int32) for w, s in zip(weights, scales)]


def _copy(t: Tensor | None) -> Tensor | None:
    """A float32 contiguous copy that shares no storage with t (a parameter changed later leaves it alone)."""
    return None if t is None else t.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=True)


def _pointers(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(None if t is None else t.data_ptr() for t in tensors))


class NativeLMStep:
    """The kernel's weights, state and buffers, for one language model at batch 1 (float32, CPU).

    table (V, G): the first layer's W_x x + b_x for every token; layers: a :class:`Layer` each, all of hidden
    size H; head (V, H) and head_bias (V,). The weights are copied (and rounded to ``precision``) when it is
    made, so it is a snapshot, like :class:`rnnkit.layers.stepping.Stepper`.
    """

    def __init__(self, lib: ctypes.CDLL, table: Tensor, layers: list[Layer], head: Tensor, head_bias: Tensor,
                 precision: str = "fp32"):
        V, H = table.shape[0], head.shape[1]
        self.lib, self.vocab, self.hidden, self.layers = lib, V, H, layers
        for i, layer in enumerate(layers):
            if layer.kind not in KINDS or layer.activation not in ACTIVATIONS:
                raise ValueError(f"NativeLMStep: layer {i}: expected a kind in {sorted(KINDS)} and an activation in "
                                 f"{sorted(ACTIVATIONS)}, got {layer.kind!r}, {layer.activation!r}")
            G = GATES[layer.kind] * H
            shapes = [(layer.wh, (G, H)), (layer.wx, None if i == 0 else (G, H)), (layer.bh, (G,)), (layer.bx, (G,)),
                      (layer.peepholes, (3, H)), (table if i == 0 else None, (V, G))]
            for t, shape in shapes:
                if t is not None and tuple(t.shape) != shape:
                    raise ValueError(f"NativeLMStep: layer {i} ({layer.kind}): expected {shape}, got {tuple(t.shape)}")
            if (i == 0) != (layer.wx is None):
                raise ValueError(f"NativeLMStep: layer {i}: the first layer takes the table, the others wx")

        wh, sh = zip(*(quantized(layer.wh, precision) for layer in layers))
        wx, sx = zip(*((None, None) if layer.wx is None else quantized(layer.wx, precision) for layer in layers))
        qh, qx = _row_sums(wh, sh), _row_sums(wx, sx)
        self.h = [torch.zeros(H) for _ in layers]
        self.c = [torch.zeros(H) if layer.kind == "lstm" else None for layer in layers]
        self.table, self.head, self.head_bias = _copy(table), _copy(head), _copy(head_bias)
        self.logits, cdf, scratch = torch.zeros(V), torch.zeros(V), torch.zeros(8 * H + 4)
        ranked = torch.zeros(V, 2, dtype=torch.int32)  # (value, index) pairs for top-k and top-p
        kinds = torch.tensor([KINDS[layer.kind] for layer in layers], dtype=torch.int32)
        activations = torch.tensor([ACTIVATIONS[layer.activation] for layer in layers], dtype=torch.int32)
        per_layer = [wx, wh, sx, sh, qx, qh, *([_copy(getattr(layer, name)) for layer in layers]
                                               for name in ("bx", "bh", "peepholes")), self.h, self.c]
        arrays = [_pointers(ts) for ts in per_layer]
        self._keep = (per_layer, kinds, activations, cdf, ranked, scratch, arrays)  # the C side holds their addresses
        self.struct = _Struct(len(layers), H, V, PRECISION_CODES[precision], torch.get_num_threads(),
                              kinds.data_ptr(), activations.data_ptr(), self.table.data_ptr(), *arrays,
                              scratch.data_ptr(), self.head.data_ptr(), self.head_bias.data_ptr(),
                              self.logits.data_ptr(), cdf.data_ptr(), ranked.data_ptr())
        self._address = ctypes.addressof(self.struct)

    def load_state(self, state: list) -> None:
        """Copy a batch-1 state, ``RNN.step``'s list of per-layer states ((h, c) for an LSTM, h otherwise, each
        (1, H)), into the kernel."""
        if len(state) != len(self.h):
            raise ValueError(f"NativeLMStep: expected a state of {len(self.h)} layers, got {len(state)}")
        for i, (h, c, s) in enumerate(zip(self.h, self.c, state)):
            parts = (s,) if isinstance(s, Tensor) else tuple(s)
            if len(parts) != (1 if c is None else 2) or any(p.numel() != self.hidden for p in parts):
                raise ValueError(f"NativeLMStep: layer {i} ({self.layers[i].kind}): expected a batch-1 state of "
                                 f"{'h' if c is None else '(h, c)'}, each (1, {self.hidden}), got "
                                 f"{[tuple(p.shape) for p in parts]}")
            h.copy_(parts[0].reshape(-1))
            if c is not None:
                c.copy_(parts[1].reshape(-1))
        self.struct.threads = torch.get_num_threads()

    def state(self) -> list:
        """The kernel's state as ``RNN.step``'s list: (h, c) for an LSTM layer, h otherwise, each (1, H), copies."""
        return [h.clone()[None] if c is None else (h.clone()[None], c.clone()[None]) for h, c in zip(self.h, self.c)]

    def sample(self, token: int, temperature: float, u: float, top_k: int | None = None,
               top_p: float | None = None) -> int:
        """Step from ``token`` and draw the next id as :func:`rnnkit.decode.sample.next_token` does, with the
        uniform u (``temperature`` 0: the largest logit, u unused)."""
        if not (0 <= token < self.vocab and temperature >= 0 and 0 <= u < 1):  # the C side reads table[token]
            raise ValueError(f"NativeLMStep.sample: expected a token in [0, {self.vocab}), temperature >= 0 and "
                             f"u in [0, 1), got {token}, {temperature}, {u}")
        return self.lib.rk_lm_sample(self._address, token, temperature, u, *_filters(top_k, top_p))

    def step(self, token: int) -> Tensor:
        """Step from ``token``; the logits (V,), a view the next call overwrites."""
        if not 0 <= token < self.vocab:
            raise ValueError(f"NativeLMStep.step: expected a token in [0, {self.vocab}), got {token}")
        self.lib.rk_lm_step(self._address, token)
        return self.logits


def _filters(top_k: int | None, top_p: float | None) -> tuple[int, float]:
    """top_k and top_p as the kernel takes them: 0 and 1.0 mean off; checked as ``next_token`` checks them."""
    if (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError(f"NativeLMStep: expected top_k >= 1 and top_p in (0, 1], got {top_k}, {top_p}")
    return (0 if top_k is None else top_k), (1.0 if top_p is None else top_p)


def draw(logits: Tensor, temperature: float, u: float, top_k: int | None = None, top_p: float | None = None) -> int:
    """The kernel's draw from logits (V,) float32 alone (what ``NativeLMStep.sample`` does after its step)."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {native.unavailable('lm_step')}")
    logits = logits.detach().float().contiguous()
    z, ranked = torch.empty_like(logits), torch.empty(logits.numel(), 2, dtype=torch.int32)  # the kernel's scratch
    return lib.rk_draw(logits.data_ptr(), z.data_ptr(), ranked.data_ptr(), logits.numel(), temperature, u,
                       *_filters(top_k, top_p))
