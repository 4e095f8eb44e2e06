"""The compiled pointwise steps of the LSTM and layer-norm LSTM kernels (``csrc/lstm_steps.c``, its header states
the equations), and the pointers they read.

A step of :mod:`rnnkit.kernels.lstm` or :mod:`rnnkit.kernels.layer_norm_lstm` is one recurrent product (torch)
and a dozen pointwise ops on (B, H) tensors, each a few µs of dispatch; at (32, 100, 256) those ops cost more
than the product. With the C library (:mod:`rnnkit.kernels.native`) each step's pointwise work, forward or
backward, is one call: :class:`Steps` holds the addresses of one sequence's buffers, so a call passes only
the step index. float32 on the CPU only; other dtypes and devices keep torch's ops (:func:`applies`).
"""
from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from . import native

_F = ctypes.c_void_p
_FIELDS = ["acts", "hs", "cs", "tanh_c", "peep", "keep", "d_out", "dh_rec", "dc", "d_acts", "hold_h", "d_peep",
           "x_hat", "rs", "gamma_h", "beta_h", "gamma_c", "beta_c", "mean_r", "rstd_r", "mean_c", "rstd_c",
           "d_ln_c", "d_rs", "scratch"]


class _Struct(ctypes.Structure):  # lstm_steps_t in csrc/lstm_steps.c, field for field
    _fields_ = [("batch", ctypes.c_int32), ("hidden", ctypes.c_int32), ("threads", ctypes.c_int32),
                ("eps", ctypes.c_float), *((name, _F) for name in _FIELDS)]


def library() -> ctypes.CDLL | None:
    lib = native.library("lstm_steps")
    if lib is not None and lib.rk_lstm_forward.argtypes is None:
        for name in ("rk_lstm_forward", "rk_lstm_backward", "rk_ln_lstm_forward", "rk_ln_lstm_backward"):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_int], None
    return lib


def applies(*tensors: Tensor | None) -> bool:
    """Whether the compiled steps can run on these tensors: all float32 on the CPU, and the library built."""
    if any(t is not None and (t.dtype != torch.float32 or t.device.type != "cpu") for t in tensors):
        return False
    return library() is not None


_INPUTS = {"peep", "keep", "d_out", "x_hat", "gamma_h", "beta_h", "gamma_c", "beta_c"}  # read only by the C side


class Steps:
    """One sequence's buffers for the compiled steps: B, H, and any fields of ``lstm_steps_t`` as tensors; the
    rest are NULL. The fields the kernel only reads are taken as contiguous copies where they are not (keep:
    bool (T, B) or (T, B, 1)); those it writes must be contiguous already. Holds the tensors while it lives."""

    def __init__(self, batch: int, hidden: int, eps: float = 0.0, **tensors: Tensor | None):
        unknown = set(tensors) - set(_FIELDS)
        if unknown:
            raise TypeError(f"Steps: unknown fields {sorted(unknown)}")
        tensors = {name: t.detach().contiguous() if name in _INPUTS and t is not None else t
                   for name, t in tensors.items()}
        for name, t in tensors.items():
            if t is not None and not t.is_contiguous():
                raise ValueError(f"Steps: {name} must be contiguous (the kernel writes into it)")
        self.lib = library()
        self.tensors = tensors
        pointers = {name: (None if t is None else t.data_ptr()) for name, t in tensors.items()}
        self.struct = _Struct(batch, hidden, torch.get_num_threads(), eps, **pointers)
        self.address = ctypes.addressof(self.struct)

    def set(self, name: str, t: Tensor) -> None:
        """Point field ``name`` at another tensor (the layer-norm LSTM's x̂ view, chunk by chunk)."""
        self.tensors[name] = t
        setattr(self.struct, name, t.data_ptr())

    def lstm_forward(self, t: int) -> None:
        self.lib.rk_lstm_forward(self.address, t)

    def lstm_backward(self, t: int) -> None:
        self.lib.rk_lstm_backward(self.address, t)

    def ln_lstm_forward(self, t: int) -> None:
        self.lib.rk_ln_lstm_forward(self.address, t)

    def ln_lstm_backward(self, t: int) -> None:
        self.lib.rk_ln_lstm_backward(self.address, t)


def backward_loop(step, product, d_rows: tuple[Tensor, ...], dh_rec: Tensor, rmask: Tensor | None,
                  hold: Tensor | None, after=None) -> None:
    """The backward pass over the steps t = T-1..0, shared by the LSTM kernels: ``step(t)`` (a compiled
    backward step, which reads dh_rec), then dh_rec = d_rows[t] W_h (``product.mm``), times the recurrent
    dropout mask, plus the δh of rows that ended (``hold``); ``after(t)`` once step t is done."""
    for t in range(len(d_rows) - 1, -1, -1):
        step(t)
        product.mm(d_rows[t], out=dh_rec)
        if rmask is not None:
            dh_rec.mul_(rmask)
        if hold is not None:
            dh_rec.add_(hold)
        if after is not None:
            after(t)

