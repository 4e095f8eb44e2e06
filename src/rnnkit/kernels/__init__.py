"""Whole-sequence training paths for the lecture cells torch has no kernel for.

Each module holds one ``torch.autograd.Function`` that runs a cell over all T steps of a sequence
with a hand-written backward pass (BPTT, the NumPy reference in ``rnnkit.reference`` is the
template). What makes them fast, compared with autograd over a per-step loop:

* the input products ``W_x x_t + b`` of all steps are one GEMM, done by the caller (autograd);
* one GEMM per step for all the recurrent products, against a weight packed once per sequence where
  oneDNN can (:mod:`.packed`), written into the step's rows of a (T, B, ·) buffer;
* those buffers are reused from call to call on the CPU (:mod:`.workspace`), so a step touches no
  freshly mapped pages;
* the pointwise work of a step is a few in-place ops on views made once, before the loop (``unbind``);
  tanh as 2σ(2x) − 1 where torch's tanh is slow (:mod:`.pointwise`);
* the recurrent weight gradient is one GEMM over all time steps, not T small ones;
* no autograd graph of T × (a dozen) nodes to build, walk and free.

Cells call these from their ``sequence`` method (see :class:`rnnkit.cells.Cell`); tests check
them against the per-step loop in float64 and with ``torch.autograd.gradcheck``.
"""
