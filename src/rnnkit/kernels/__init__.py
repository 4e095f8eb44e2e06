"""Whole-sequence training paths for the lecture cells torch has no kernel for.

Each module holds one ``torch.autograd.Function`` that runs a cell over all T steps of a sequence
with a hand-written backward pass (BPTT, the NumPy reference in ``rnnkit.reference`` is the
template). What makes them fast, compared with autograd over a per-step loop:

* the input products ``W_x x_t + b`` of all steps are one GEMM, done by the caller (autograd);
* one GEMM per step for all the recurrent products, written into preallocated buffers (``out=``);
* the pointwise work of a step is a few in-place ops; in the backward pass every factor that does
  not depend on the incoming gradient (``σ'``, ``tanh'``, products of saved gate values) is
  computed for all steps at once before the loop;
* the recurrent weight gradient is one GEMM over all time steps, not T small ones;
* no autograd graph of T × (a dozen) nodes to build, walk and free.

Cells call these from their ``sequence`` method (see :class:`rnnkit.cells.Cell`); tests check
them against the per-step loop in float64 and with ``torch.autograd.gradcheck``.
"""
