"""The generation path of a unidirectional stack: one step per token, with every weight prepared once.

``RNN.step`` checks its input and state and finds each layer's stacked weights on every call; that is right
for a decoder that calls it a few times, and most of a step's cost when a language model generates one
character at a time (batch 1: the matrix-vector products take ~250 µs for a 2x512 LSTM, the Python around
them as much again). A :class:`Stepper` does the same arithmetic with the preparation hoisted out of the
loop:

    layer 1, input table (optional):  a_t = T[id_t] + W_h h_{t-1},   T = X W_x^T + b_ih + b_hh   (V, kH)
                                       where X (V, F) are the inputs of every token (embedding rows, or one-hot)
    layer l > 1 (or no table):         a_t = [x_t, h_{t-1}] [W_x; W_h]^T + (b_ih + b_hh)
    then the cell's own pointwise rest: (y_t, state_t) = cell.update(a_t, state_{t-1})

so a token costs one row lookup, one product per layer and the cell's pointwise ops. On the CPU each product
is split by columns into PARTS blocks run as one batched product (``baddbmm``): a matrix-vector product runs
on one core, the batched one on all of them (2x512 LSTM, 2 cores: 1.4x faster, the same numbers, since
a column split does not change any sum). ``precision="bf16"`` keeps the weights of the products in bf16
(oneDNN's packed bf16 product on CPUs that have one): half the bytes read per token; for a 2x512 LSTM 324 and
312 µs per character against 346 and 336 in float32, no gain at 1x512 (166 against 156 µs;
``bench_charlm.py latency``, 2 threads, this project's CPU); the state, the input table and the output layer
stay float32. Shapes: ids or x_t (B,) / (B, F) -> y_t (B, H);
the state is ``RNN.step``'s list of per-layer states, so the two are interchangeable.

For an LSTM, GRU or Elman language model at batch 1, :func:`native_step` goes further: the same arithmetic,
the output layer and the draw of the next token as one compiled call (:mod:`rnnkit.kernels.lm_step`), 72 µs
per character at 1x512 and 143 at 2x512 in float32 against 206 and 390 here (``bench_charlm.py latency``,
2 threads, one run); ``generate`` uses it where it applies.

A stepper is a snapshot: it copies the weights when it is made, for inference (no autograd, no dropout).
Make a new one after changing the weights. Cells without a pointwise ``update`` (GRU, minimal GRU) have no
joint product; ``stepper_for`` returns None for them and callers keep using ``RNN.step``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells.elman import ElmanCell
from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from ..kernels import lm_step
from ..kernels.packed import Int8Product, StepProduct


PRECISIONS = ("fp32", "bf16", "int8")
PARTS = 4  # column blocks of a product on the CPU (measured: 4 beats 2 beats 1 on 2 cores)


def column_blocks(weight: Tensor, parts: int) -> Tensor:
    """(K, N) -> (P, K, N / P): P consecutive column blocks, each contiguous."""
    K, N = weight.shape
    return weight.reshape(K, parts, N // parts).permute(1, 0, 2).contiguous()


def blocked_product(add: Tensor | None, x: Tensor, blocks: Tensor) -> Tensor:
    """add + x @ W with W given as column blocks (P, K, n): add (N,) or (B, N) or None, x (B, K) -> (B, N)."""
    P, K, n = blocks.shape
    B = x.shape[0]
    if P == 1:
        out = x @ blocks[0]
        return out if add is None else out + add
    xs = x.expand(P, B, K)
    if add is None:
        out = torch.bmm(xs, blocks)
    else:
        add = add.reshape(P, 1, n) if add.dim() == 1 else add.reshape(B, P, n).transpose(0, 1)
        out = torch.baddbmm(add, xs, blocks)
    return out.transpose(0, 1).reshape(B, P * n)  # (P, B, n) -> (B, N), columns back in order


class Stepper:
    def __init__(self, rnn, input_table: Tensor | None = None, precision: str = "fp32"):
        check_precision("Stepper", precision)
        self.cells = rnn.cells
        self.table = None
        self.layers = []  # (product: x (B, K) -> x W (B, kH), bias (kH,) or None) per layer
        with torch.no_grad():
            for i, cell in enumerate(rnn.cells):
                bias = None if cell.bias_ih is None else cell.bias_ih + cell.bias_hh
                if i == 0 and input_table is not None:
                    self.table = token_table("Stepper", input_table, cell, bias)
                    weight, bias = cell.weight_hh, None
                else:
                    weight = torch.cat([cell.weight_ih, cell.weight_hh], dim=1)  # (kH, F+R)
                self.layers.append((product(weight, precision), bias))

    def __call__(self, x: Tensor, state: list) -> tuple[Tensor, list]:
        """x: ids (B,) when made with an input table, else inputs (B, F) -> (y (B, H), new state).
        Call it under ``torch.no_grad()`` (``generate`` does)."""
        new_state = []
        for i, (cell, (times, bias), s) in enumerate(zip(self.cells, self.layers, state)):
            h = s if isinstance(s, Tensor) else s[0]
            if i == 0 and self.table is not None:
                a = times(h, F.embedding(x, self.table))
            else:
                a = times(torch.cat([x, h], dim=1), bias)
            x, s = cell.update(a, s)
            new_state.append(s)
        return x, new_state


def token_table(who: str, inputs: Tensor, cell, bias: Tensor | None) -> Tensor:
    """The first layer's input product for every token, one row a token: inputs (V, F) -> inputs W_x^T + bias
    (V, kH), bias (kH,) or None."""
    if inputs.dim() != 2 or inputs.shape[1] != cell.input_size:
        raise ValueError(f"{who}: expected an input table (V, {cell.input_size}), got {tuple(inputs.shape)}")
    table = inputs.to(cell.weight_ih.dtype) @ cell.weight_ih.t()
    return table if bias is None else table + bias


def product(weight: Tensor, precision: str = "fp32"):
    """``(x, add) -> add + x @ weight.T`` for weight (N, K), x (B, K), add (N,), (B, N) or None; the result in
    float32 (the state's precision) whatever the weights'.

    float32: the column-blocked batched product (``bench_charlm.py latency``, 1x512 LSTM, 2 threads: 156 µs per
    character, against 179 µs when the stepper used oneDNN's packed float32 product). ``precision="bf16"``, on
    CPUs with oneDNN's bf16 products: against the weight packed once in bf16 (``kernels.packed.StepProduct``;
    weights and input rounded to bf16, sums in float32, the product rounded to bf16 as under autocast);
    elsewhere the column-blocked product of the weights rounded to bf16. ``precision="int8"``: int8 weights,
    one scale per output row (``kernels.packed.Int8Product``, CPU only; ``bench_charlm.py latency``, 2 x 512,
    2 threads: 240 µs per character against 361 in float32)."""
    if precision == "int8":
        return _plus(Int8Product(weight))
    if precision == "bf16" and weight.dtype == torch.float32:
        low = StepProduct(weight.detach().bfloat16(), 1, always=True)
        if low.packed is not None:
            return _plus(lambda x: low(x.bfloat16()))
        weight = weight.bfloat16().float()  # the same rounding of the weights where there is no bf16 product
    weight = weight.t()  # (K, N)
    parts = 1 if weight.device.type != "cpu" else max(p for p in (PARTS, 2, 1) if weight.shape[1] % p == 0)
    blocks = column_blocks(weight, parts)
    return lambda x, add: blocked_product(add, x, blocks)


def _plus(times):
    """``x -> x W^T`` in any precision -> ``(x, add) -> add + x W^T`` in float32 (the add promotes it)."""
    def run(x: Tensor, add: Tensor | None) -> Tensor:
        out = times(x)
        return out.float() if add is None else torch.add(add, out)
    return run


def check_precision(who: str, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{who}: expected precision 'fp32', 'bf16' or 'int8', got {precision!r}")


def stepper_for(rnn, input_table: Tensor | None = None, precision: str = "fp32") -> Stepper | None:
    """A :class:`Stepper` for ``rnn`` if it can have one (unidirectional, every cell with a pointwise
    ``update``, no recurrent dropout in training), else None."""
    if getattr(rnn, "bidirectional", True) or not getattr(rnn, "joint_step", False) or rnn.training:
        return None
    return Stepper(rnn, input_table, precision)


def native_step(rnn, input_table: Tensor, head: Tensor, head_bias: Tensor, precision: str = "fp32"):
    """A stack's step from token ids (their inputs: ``input_table`` (V, F)) and an output layer (head (V, H),
    head_bias (V,)) as one native call per token (:class:`rnnkit.kernels.lm_step.NativeLMStep`, batch 1), or
    None where that kernel does not apply: a cell other than the LSTM (with or without peepholes), the GRU
    (either form) and the Elman cell (tanh, relu, sigmoid or identity), a bidirectional stack, training mode,
    weights not float32 on the CPU, or no compiled kernel (``rnnkit.kernels.native.unavailable("lm_step")``
    says why)."""
    check_precision("native_step", precision)
    cells = getattr(rnn, "cells", None)
    if cells is None or getattr(rnn, "bidirectional", True) or rnn.training:
        return None
    kinds = [_native_kind(cell) for cell in cells]
    if None in kinds or len({cell.hidden_size for cell in cells}) != 1:
        return None
    tensors = (input_table, head, head_bias, *(p for cell in cells for p in cell.parameters()))
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return None
    lib = lm_step.library()
    if lib is None:
        return None
    layers = []
    with torch.no_grad():
        for i, (cell, kind) in enumerate(zip(cells, kinds)):
            peephole = getattr(cell, "peephole", False)
            peep = torch.stack([cell.weight_ci, cell.weight_cf, cell.weight_co]) if peephole else None
            layers.append(lm_step.Layer(kind, cell.weight_hh, cell.bias_hh, None if i == 0 else cell.weight_ih,
                                        None if i == 0 else cell.bias_ih, peep, getattr(cell, "activation", "tanh")))
        table = token_table("native_step", input_table, cells[0], cells[0].bias_ih)  # b_h stays in the layer
        return lm_step.NativeLMStep(lib, table, layers, head, head_bias, precision)


def _native_kind(cell) -> str | None:
    """The kernel's name for the cell (``lm_step.KINDS``), or None where it has none."""
    if type(cell) is LSTMCell:
        return "lstm"
    if type(cell) is GRUCell:
        return "gru" if cell.reset_after else "gru-cho"
    if type(cell) is ElmanCell and cell.activation in lm_step.ACTIVATIONS:
        return "elman"
    return None
