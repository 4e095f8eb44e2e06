r"""An LSTM language model's generation step and next-token draw as one native call (``csrc/lm_step.c``).

A token through torch's ops costs one product per layer plus ~20 small ops (the LSTM's pointwise update, the
output layer, the draw), each a few µs of dispatch on the CPU; at batch 1 that is most of the step. Here one
C call does all of it and returns the next id:

.. math::
    a^{(1)} = T[\mathrm{id}] + W^{(1)}_h h^{(1)}_{t-1},\qquad
    a^{(l)} = W^{(l)}_x h^{(l-1)}_t + W^{(l)}_h h^{(l)}_{t-1} + b^{(l)}

then each layer's LSTM update (peepholes included), ``logits = W_y h^{(L)}_t + b_y``, and
:func:`rnnkit.decode.sample.next_token`'s inverse-CDF draw for a uniform u the caller draws from torch's
generator (so the same seed gives the same text as the torch path, but for a draw that lands within
rounding of a boundary). Shapes: the table T (V, 4H), layer weights (4H, H) for layer 1 and (4H, 2H)
above it, the state (H,) per layer, batch 1.

Precisions of the recurrent weights: float32; bf16 (rounded to nearest even, products summed in float32; on
CPUs with AVX-512 BF16 against the layer input rounded to bf16 too, as torch's bf16 product does); int8, one scale per row (w ≈ s_n q_n, s_n = max|w_n| / 127), the state kept
in float32, so each gate is off by at most sum_k |x_k| s_n / 2, the weight half of
:class:`rnnkit.kernels.packed.Int8Product`'s bound, which also rounds the input. The table and the output
layer stay float32.
"""
from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from . import native

PRECISION_CODES = {"fp32": 0, "bf16": 1, "int8": 2}
_P = ctypes.POINTER(ctypes.c_void_p)


class _Struct(ctypes.Structure):  # lm_step_t in csrc/lm_step.c, field for field
    _fields_ = [("layers", ctypes.c_int32), ("hidden", ctypes.c_int32), ("vocab", ctypes.c_int32),
                ("precision", ctypes.c_int32), ("threads", ctypes.c_int32), ("table", ctypes.c_void_p),
                ("weights", _P), ("scales", _P), ("biases", _P), ("peepholes", _P), ("h", _P), ("c", _P),
                ("input", ctypes.c_void_p), ("head_weight", ctypes.c_void_p), ("head_bias", ctypes.c_void_p),
                ("logits", ctypes.c_void_p), ("cdf", ctypes.c_void_p)]


def library() -> ctypes.CDLL | None:
    lib = native.library("lm_step")
    if lib is not None and lib.rk_lm_sample.restype is not ctypes.c_int64:
        lib.rk_lm_sample.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_float]
        lib.rk_lm_sample.restype = ctypes.c_int64
        lib.rk_lm_step.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.rk_lm_step.restype = None
        lib.rk_draw.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_float, ctypes.c_float]
        lib.rk_draw.restype = ctypes.c_int64
    return lib


def quantized(w: Tensor, precision: str) -> tuple[Tensor, Tensor | None]:
    """A weight (N, K) as the kernel reads it: float32, bf16 bits (int16), or int8 with its row scales (N,)."""
    w = w.detach().float().contiguous()
    if precision == "fp32":
        return w, None
    if precision == "bf16":
        return w.bfloat16().view(torch.int16).contiguous(), None
    largest = w.abs().amax(dim=1)
    scales = (largest / 127).masked_fill_(largest == 0, 1.0)  # a zero row keeps scale 1, not 0
    return torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8), scales


def _pointers(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(None if t is None else t.data_ptr() for t in tensors))


class NativeLMStep:
    """The kernel's weights, state and buffers, for one language model at batch 1 (float32, CPU).

    table (V, 4H): layer 1's input products and both its biases for every token; layers: per layer
    (weight (4H, K), bias (4H,) or None, peepholes (3, H) or None), K = H for layer 1 and 2H above, the
    columns [W_x, W_h]; head (V, H) and head_bias (V,). The weights are copied (and rounded to ``precision``)
    when it is made, so it is a snapshot, like :class:`rnnkit.layers.stepping.Stepper`.
    """

    def __init__(self, lib: ctypes.CDLL, table: Tensor, layers: list, head: Tensor, head_bias: Tensor,
                 precision: str = "fp32"):
        V, G = table.shape
        H = G // 4
        self.lib, self.vocab, self.hidden = lib, V, H
        weights, scales = zip(*(quantized(w, precision) for w, _, _ in layers))
        f32 = [None if t is None else t.detach().float().contiguous() for t in (b for _, b, _ in layers)]
        peeps = [None if p is None else p.detach().float().contiguous() for _, _, p in layers]
        self.h = [torch.zeros(H) for _ in layers]
        self.c = [torch.zeros(H) for _ in layers]
        self.table, self.head = table.detach().float().contiguous(), head.detach().float().contiguous()
        self.head_bias = head_bias.detach().float().contiguous()
        self.logits, cdf, scratch = torch.zeros(V), torch.zeros(V), torch.zeros(3 * H)
        arrays = [_pointers(ts) for ts in (weights, scales, f32, peeps, self.h, self.c)]
        self._keep = (weights, scales, f32, peeps, cdf, scratch, arrays)  # the C side holds their addresses
        self.struct = _Struct(len(layers), H, V, PRECISION_CODES[precision], torch.get_num_threads(),
                              self.table.data_ptr(), *arrays, scratch.data_ptr(), self.head.data_ptr(),
                              self.head_bias.data_ptr(), self.logits.data_ptr(), cdf.data_ptr())
        self._address = ctypes.addressof(self.struct)

    def load_state(self, state: list) -> None:
        """Copy a batch-1 state, ``RNN.step``'s list of (h, c) per layer, each (1, H), into the kernel."""
        if len(state) != len(self.h):
            raise ValueError(f"NativeLMStep: expected a state of {len(self.h)} layers, got {len(state)}")
        for h, c, (h_in, c_in) in zip(self.h, self.c, state):
            if h_in.numel() != self.hidden or c_in.numel() != self.hidden:
                raise ValueError(f"NativeLMStep: expected a batch-1 state (1, {self.hidden}) per layer, "
                                 f"got {tuple(h_in.shape)} and {tuple(c_in.shape)}")
            h.copy_(h_in.reshape(-1))
            c.copy_(c_in.reshape(-1))
        self.struct.threads = torch.get_num_threads()

    def state(self) -> list[tuple[Tensor, Tensor]]:
        """The kernel's state as ``RNN.step``'s list of (h, c), each (1, H), copies."""
        return [(h.clone()[None], c.clone()[None]) for h, c in zip(self.h, self.c)]

    def sample(self, token: int, temperature: float, u: float) -> int:
        """Step from ``token`` and draw the next id (``temperature`` 0: the largest logit, u unused)."""
        if not (0 <= token < self.vocab and temperature >= 0 and 0 <= u < 1):  # the C side reads table[token]
            raise ValueError(f"NativeLMStep.sample: expected a token in [0, {self.vocab}), temperature >= 0 and "
                             f"u in [0, 1), got {token}, {temperature}, {u}")
        return self.lib.rk_lm_sample(self._address, token, temperature, u)

    def step(self, token: int) -> Tensor:
        """Step from ``token``; the logits (V,), a view the next call overwrites."""
        if not 0 <= token < self.vocab:
            raise ValueError(f"NativeLMStep.step: expected a token in [0, {self.vocab}), got {token}")
        self.lib.rk_lm_step(self._address, token)
        return self.logits


def draw(logits: Tensor, temperature: float, u: float) -> int:
    """The kernel's draw from logits (V,) float32 alone (what ``NativeLMStep.sample`` does after its step)."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {native.unavailable('lm_step')}")
    logits = logits.detach().float().contiguous()
    scratch = torch.empty_like(logits)  # held here: the kernel writes into it
    return lib.rk_draw(logits.data_ptr(), scratch.data_ptr(), logits.numel(), temperature, u)
