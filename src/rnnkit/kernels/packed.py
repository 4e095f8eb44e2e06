"""The recurrent product ``h @ W.T``, taken T times per sequence with the same W: packed once, reused T times.

A whole-sequence path multiplies every step's state by the same recurrent matrix. torch's ``mm`` hands
each product to the BLAS, which lays W out for its micro-kernel again on every call; at a step's shape
(B = 64 rows, W 2048 × 512) that repacking is a large part of the product. On CPUs with oneDNN, torch
exposes the packing step itself (``mkldnn::_reorder_linear_weight``, the op its compiler uses for frozen
linear layers) and the product against a packed weight (``mkldnn::_linear_pointwise``). Packing W costs
about one pass over it; the T products after it ran 1.5x faster than ``mm`` in float32 on this project's
machine (2 threads, (64, 512) @ (512, 2048): 0.61 ms against 0.95 ms); bf16 runs oneDNN's bf16 kernels
(AVX-512 BF16, or AMX where the CPU has it). Small products are left to ``mm`` (``MIN_PACKED_MACS``).

Where those ops are missing or do not apply (float64, GPUs, oneDNN disabled with
``torch.backends.mkldnn.flags(enabled=False)``, a build without it), the plain ``mm``/``addmm`` runs.
Inside a generation loop (batch 1, 2 threads) the packed float32 product was slower than the stepper's
column-blocked one (:mod:`rnnkit.layers.stepping`); the stepper packs only bf16 weights.
The packed product sums in a different order, so its float32 results differ from ``mm``'s in the last bits.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

_PACKABLE = (torch.float32, torch.bfloat16)


def _mkldnn_ops():
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return ops._reorder_linear_weight, ops._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_OPS = _mkldnn_ops()


# Below this many multiply-adds per product (rows × in × out) oneDNN's fixed cost per call (~15 µs) eats
# the gain: at (32, 256) @ (256, 1024), 8.4M, packing still wins (101 µs against 133 µs, 2 threads); at
# (32, 256) @ (256, 512) it is even, and at (32, 256) @ (256, 256) plain mm is faster.
MIN_PACKED_MACS = 1 << 23


def packs(w: Tensor, rows: int | None = None) -> bool:
    """Whether products with w run against a packed copy: CPU, float32 or bf16, oneDNN present and on, and,
    given the ``rows`` of a product, at least MIN_PACKED_MACS multiply-adds."""
    if _OPS is None or w.device.type != "cpu" or w.dtype not in _PACKABLE or not torch._C._get_mkldnn_enabled():
        return False
    if rows is not None and rows * w.numel() < MIN_PACKED_MACS:
        return False
    return w.dtype != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()


class StepProduct:
    """``h @ w.T (+ bias)`` for h (B, in), w (out, in) and bias (out,) or None, with w packed once for
    many products.

    rows: the batch size B the products will have (a hint for the layout; other B still work).
    always: pack whatever the products' size (``MIN_PACKED_MACS`` is the training kernels' rule: there the
    per-call cost decides; a generation step packs bf16 weights to read half the bytes).
    w is read when the object is made: a StepProduct lives for one pass over one sequence.
    """

    def __init__(self, w: Tensor, rows: int, bias: Tensor | None = None, *, always: bool = False):
        self.w, self.bias = w, bias
        self.packed = None
        if packs(w, None if always else rows):
            reorder, self._linear = _OPS
            self.packed = reorder(w.detach().contiguous(), rows)

    def __call__(self, h: Tensor) -> Tensor:
        """h @ w.T + bias, a new tensor"""
        if self.packed is not None:
            return self._linear(h, self.packed, self.bias, "none", [], "")
        return h @ self.w.t() if self.bias is None else torch.addmm(self.bias, h, self.w.t())

    def mm(self, h: Tensor, out: Tensor) -> Tensor:
        """out = h @ w.T + bias"""
        if self.packed is not None:
            return out.copy_(self(h))
        if self.bias is None:
            return torch.mm(h, self.w.t(), out=out)
        return torch.addmm(self.bias, h, self.w.t(), out=out)

    def addmm(self, add: Tensor, h: Tensor, out: Tensor) -> Tensor:
        """out = add + h @ w.T + bias; add (B, out)"""
        if self.packed is not None:
            return out.copy_(self._linear.binary(h, add, self.packed, self.bias, "add"))
        out = torch.addmm(add, h, self.w.t(), out=out)
        return out if self.bias is None else out.add_(self.bias)


class Int8Product:
    """``x @ w.T`` for x (B, in) float32 and w (out, in), with w held as int8 and the products run by torch's
    quantized CPU engine (fbgemm: AVX-512 VNNI or AVX2 int8 kernels), for generation, where reading the weights
    is most of a step: a quarter of float32's bytes.

    w is quantized once, symmetrically per output row: w ≈ s_n q_n, q_n in [-127, 127], s_n = max|w_n| / 127.
    Each call quantizes x per tensor to uint8 over [min(x, 0), max(x, 0)] (torch's dynamic quantization;
    ``reduce_range``: 7 bits, which keeps the AVX2 kernel's 16-bit pair sums from saturating), sums in int32 and
    returns float32. So each output is off by at most sum_k |x_k| s_n / 2 + sum_k |w_nk| s_x / 2 (s_x the input's
    step), about 1 % of its size for an LSTM's gates (``tests/models/test_lm_stepper.py`` checks the bound).
    """

    def __init__(self, w: Tensor):
        ops = getattr(torch.ops, "quantized", None)
        if w.device.type != "cpu":
            raise ValueError(f"int8 products run on the CPU; the weights are on {w.device}")
        if w.dim() != 2:
            raise ValueError(f"Int8Product: expected a weight (out, in), got {tuple(w.shape)}")
        if ops is None or "fbgemm" not in torch.backends.quantized.supported_engines:
            raise ValueError("int8 products need torch's fbgemm quantized engine, which this torch build lacks; "
                             "use fp32 or bf16")
        w = w.detach().float()
        largest = w.abs().amax(dim=1)  # (out,)
        scales = (largest / 127).masked_fill_(largest == 0, 1.0)  # a zero row keeps scale 1, not 0
        with warnings.catch_warnings():  # torch marks its quantized tensors deprecated in favour of torchao
            warnings.filterwarnings("ignore", message=".*quantize_per_channel.*", category=UserWarning)
            q = torch.quantize_per_channel(w, scales.double(), torch.zeros(w.shape[0], dtype=torch.long), 0,
                                           torch.qint8)
        self.packed = ops.linear_prepack(q, None)
        self._linear = ops.linear_dynamic

    def __call__(self, x: Tensor) -> Tensor:
        """x @ w.T, a new float32 tensor (B, out)"""
        return self._linear(x, self.packed, True)  # reduce_range: 7-bit inputs
