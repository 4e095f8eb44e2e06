"""Parameter creation and initialisation shared by the cells (plain functions, no base class)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_positive_int, check_state, check_step_input


def gate_parameters(module: nn.Module, gates: int, input_size: int, hidden_size: int, recurrent_size: int,
                    bias: bool, device=None, dtype=None) -> None:
    """Register torch-named weight_ih (gates*H, F), weight_hh (gates*H, R), bias_ih, bias_hh (gates*H,).
    recurrent_size 0: gates that read no state (minGRU, minLSTM), so only weight_ih and bias_ih."""
    kw = {"device": device, "dtype": dtype}
    module.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size, **kw))
    if recurrent_size:
        module.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, recurrent_size, **kw))
    for name in ("bias_ih", "bias_hh") if recurrent_size else ("bias_ih",):
        module.register_parameter(name, nn.Parameter(torch.empty(gates * hidden_size, **kw)) if bias else None)


def uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch's RNN initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.uniform_(-bound, bound)


def zeros(module: nn.Module, batch_size: int, size: int, count: int, device=None, dtype=None):
    """count zero tensors (B, size) on the module's device and dtype (or the ones given)."""
    check_positive_int(type(module).__name__, "batch_size", batch_size)
    ref = module.weight_ih
    kw = {"device": device or ref.device, "dtype": dtype or ref.dtype}
    states = tuple(torch.zeros(batch_size, size, **kw) for _ in range(count))
    return states[0] if count == 1 else states


SMALL_BATCH = 8


def weight_for(module: nn.Module, name: str, batch_size: int):
    """The weight matrix to multiply by, for a batch of batch_size rows.

    Stepping one token at a time without autograd (generation, greedy/beam decoding), x @ W.T with W
    stored row-major (torch's layout) runs the slow GEMV path: on this project's CPUs three distinct
    2048x512 products take ~3x longer than with W stored column-major. So for small batches outside
    autograd the cell multiplies by a cached column-major copy of W (same values, a view with W's
    shape), refreshed whenever W changes (its version counter, storage or dtype). It costs the memory
    of one more copy of the recurrent weights while generating.
    """
    w = getattr(module, name)
    if batch_size > SMALL_BATCH or (torch.is_grad_enabled() and w.requires_grad):
        return w
    cache = module.__dict__.setdefault("_column_major", {})
    key = (w.data_ptr(), w._version, w.dtype, w.device)
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        hit = cache[name] = (key, w.detach().t().contiguous().t())
    return hit[1]


def small_inference(module: nn.Module, batch_size: int) -> bool:
    """True for a batch of at most SMALL_BATCH rows outside autograd: stepping for generation or decoding."""
    return batch_size <= SMALL_BATCH and not (torch.is_grad_enabled() and module.weight_hh.requires_grad)


def joint_gates(module: nn.Module, x, h):
    """W_x x + b_ih + W_h h + b_hh as one product: [x, h] (B, F+R) @ [W_x; W_h]^T (F+R, kH) + (b_ih + b_hh).

    For small batches outside autograd (generation): one matrix-vector product instead of two, over a cached
    row-major (F+R, kH) copy of the stacked weights, which this CPU streams fastest (see ``weight_for``). The
    copy is rebuilt whenever a weight or bias changes (version counters, storage, dtype).
    """
    parts = [module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh]
    key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parts if p is not None)
    hit = module.__dict__.get("_joint")
    if hit is None or hit[0] != key:
        with torch.no_grad():
            weight = torch.cat([module.weight_ih, module.weight_hh], dim=1).t().contiguous()
            bias = None if module.bias_ih is None else module.bias_ih + module.bias_hh
        hit = module.__dict__["_joint"] = (key, weight, bias)
    xh = torch.cat([x, h], dim=1)
    return xh @ hit[1] if hit[2] is None else torch.addmm(hit[2], xh, hit[1])


def project(module: nn.Module, x):
    """W_x x + b_ih for any leading shape (..., F) -> (..., kH): one GEMM for all time steps at once."""
    batch = x.shape[0] if x.dim() == 2 else x.numel()
    return torch.nn.functional.linear(x, weight_for(module, "weight_ih", batch), module.bias_ih)


def project_all(module: nn.Module, xs):
    """W_x x + b_ih + b_hh for all steps, xs (T, B, F) -> (T, B, kH): what a whole-sequence path adds
    W_h h_{t-1} to (for cells whose hidden bias is added after the product, not inside a gate)."""
    bias = None if module.bias_ih is None else module.bias_ih + module.bias_hh
    return torch.nn.functional.linear(xs, module.weight_ih, bias)


def sequence_applies(cell: nn.Module, cls: type) -> bool:
    """Whether a cell's whole-sequence path may run: exactly this class (a subclass may change the step)."""
    return type(cell) is cls


def run_sequence(fn, xp, state, *tensors, **kwargs):
    """``fn(xp, state, *tensors, **kwargs)`` in xp's dtype, with autocast off inside.

    Under autocast (``--precision bf16``) the input products xp come out in the low-precision dtype; the
    state and the weights are then cast to it too, so the whole sequence runs in bf16 as torch's own
    LSTM kernel does under autocast (outputs in bf16). The final state is handed back in the dtype the
    state came in, the precision the layer keeps its state in.
    """
    dtype = xp.dtype

    def cast(t):
        return t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != dtype else t
    states = state if isinstance(state, tuple) else (state,)
    with torch.autocast(xp.device.type, enabled=False):
        out, final = fn(xp, tuple(map(cast, states)) if isinstance(state, tuple) else cast(state),
                        *map(cast, tensors), **{k: cast(v) for k, v in kwargs.items()})
    finals = final if isinstance(final, tuple) else (final,)
    finals = tuple(f.to(s.dtype) for f, s in zip(finals, states))
    return out, (finals if isinstance(final, tuple) else finals[0])


def recurrent_size(cell: nn.Module) -> int:
    """R, the width of the state a cell reads: weight_hh's columns, or hidden_size for gates that read no
    state (minGRU, minLSTM have no weight_hh)."""
    w = getattr(cell, "weight_hh", None)
    return cell.hidden_size if w is None else w.shape[1]


def checked_step(cell: nn.Module, x, state, count: int):
    """A cell's forward: check x_t (B, F) and a state of `count` tensors (B, R), then one step."""
    owner = type(cell).__name__
    check_step_input(owner, x, cell.input_size)
    if state is None:
        state = cell.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
    check_state(owner, state, [(x.shape[0], recurrent_size(cell))] * count, x)
    state = state if count == 1 else tuple(state)
    if hasattr(cell, "update") and small_inference(cell, x.shape[0]):  # generation: one product per step
        return cell.update(joint_gates(cell, x, state if count == 1 else state[0]), state)
    return cell.step(cell.project_input(x), state)
