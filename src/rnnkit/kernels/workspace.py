"""Reused CPU buffers for the whole-sequence kernels: no fresh pages for the (T, B, ·) tensors of every call.

A training step of a whole-sequence kernel allocates a few buffers of T·B rows (gate values, states, their
gradients): at (64, 100, 512) an LSTM's are 143 MB a step. glibc's malloc serves blocks that large with a
fresh ``mmap`` and hands them back on free, so every step the kernel touches every page of them for the
first time, and the kernel zeroes and maps each 4 KB page on a fault: measured here at about 1.8 µs a page,
20–40 ms of a 480 ms step (one thread, minor page faults counted by ``getrusage``). torch's fused LSTM pays
the same for its own workspace.

So on the CPU, :func:`empty` keeps the buffers it hands out and hands one out again once nothing uses it:
each call returns a new view of a kept base tensor, and a base is free when its storage is referenced by the
base alone (``torch._C._storage_Use_Count``: the base, plus the storage's Python object), that is when every
view of it -- the kernel's outputs, the tensors saved for the backward pass, a gradient stored in ``.grad``
-- is gone. A buffer is never handed out twice while anything can still read it.

A buffer made under ``torch.inference_mode()`` is an inference tensor, which torch allows no in-place
change to outside that mode: it is handed out again only inside inference mode, and the others only outside.
Only buffers of at least ``MIN_BYTES`` are kept (malloc reuses smaller blocks without faults), and at most
``MAX_BYTES`` in all, the least recently used dropped first; :func:`release` drops them all. GPUs have
torch's caching allocator and always get a plain ``new_empty``.
"""
from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

MIN_BYTES = 1 << 20
MAX_BYTES = 1 << 30

_kept: list[Tensor] = []  # least recently handed out first
_lock = threading.Lock()
_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _free(base: Tensor) -> bool:
    return _use_count(base.untyped_storage()._cdata) <= 2  # the base's own reference and its storage object's


def empty(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, reusing a kept CPU buffer."""
    shape = tuple(shape)
    nbytes = math.prod(shape) * like.element_size()
    if like.device.type != "cpu" or nbytes < MIN_BYTES or _use_count is None:
        return like.new_empty(shape)
    inference = torch.is_inference_mode_enabled()  # an inference tensor is read-only outside inference mode
    with _lock:
        for i, base in enumerate(_kept):
            if (base.shape == shape and base.dtype == like.dtype and base.is_inference() == inference
                    and _free(base)):
                _kept.append(_kept.pop(i))
                return base.view(shape)
        base = like.new_empty(shape)
        _kept.append(base)
        total = sum(b.nbytes for b in _kept)
        while total > MAX_BYTES and len(_kept) > 1:  # a dropped buffer still in use lives on with its users
            total -= _kept.pop(0).nbytes
        return base.view(shape)


def empty_like(t: Tensor) -> Tensor:
    """:func:`empty` with ``t``'s shape, dtype and device (contiguous)."""
    return empty(t.shape, t)


def kept_bytes() -> int:
    """Bytes of the buffers kept for reuse (in use or free)."""
    with _lock:
        return sum(b.nbytes for b in _kept)


def release() -> None:
    """Drop every kept buffer; those still in use are freed when their last user lets go."""
    with _lock:
        _kept.clear()
