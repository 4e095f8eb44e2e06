r"""The Jordan network of lecture 003 over a whole sequence with a hand-written backward pass.

Forward, for t = 1..T (``xp_t = W_h x_t + b_h`` precomputed for all t, as in :class:`rnnkit.cells.JordanCell`):

.. math::
    h_t = \sigma_h(xp_t + U_h y_{t-1}),\qquad y_t = \sigma_y(W_y h_t + b_y)

Backward, from :math:`\delta y_t` (the output's gradient plus the next step's):

.. math::
    \delta a^y_t = \delta y_t \odot \sigma_y'(\cdot),\qquad
    \delta a^h_t = (\delta a^y_t W_y) \odot \sigma_h'(\cdot),\qquad
    \delta y_{t-1} = \delta a^h_t U_h

with each derivative written through the activation's output (tanh: :math:`1 - y^2`, sigmoid:
:math:`y(1 - y)`, relu: :math:`[y > 0]`, identity: 1); :math:`\partial L/\partial U_h`,
:math:`\partial L/\partial W_y` and :math:`\partial L/\partial b_y` are one GEMM or sum over all (T·B) rows
after the loop. The named activations only: a user's callable runs the per-step loop.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import workspace
from .packed import StepProduct
from .pointwise import tanh_

FORWARD = {"tanh": tanh_, "sigmoid": torch.sigmoid_, "relu": torch.relu_, "identity": lambda x: x}


def times_derivative(d: Tensor, name: str, y: Tensor, k: Tensor, one: Tensor) -> Tensor:
    """d ⊙ φ'(a) in place, written through φ's output y = φ(a) (``k`` is scratch, ``one`` a 0-dim 1)."""
    if name == "tanh":
        return d.mul_(torch.addcmul(one, y, y, value=-1, out=k))
    if name == "sigmoid":
        return d.mul_(torch.addcmul(y, y, y, value=-1, out=k))
    if name == "relu":
        return d.mul_(y > 0)
    return d


class JordanSequence(torch.autograd.Function):
    """(xp (T, B, H), y0 (B, O), w_hh (H, O), w_ho (O, H), b_ho (O,) | None, acts (σ_h, σ_y) names,
    keep (T, B, 1) | None, rmask (B, O) | None) -> (y_1..y_T (T, B, O), y_T)."""

    @staticmethod
    def forward(ctx, xp, y0, w_hh, w_ho, b_ho, acts, keep, rmask):
        T, B, H = xp.shape
        O = w_ho.shape[0]
        phi_h, phi_y = FORWARD[acts[0]], FORWARD[acts[1]]
        hs, ys = workspace.empty_like(xp), workspace.empty((T + 1, B, O), xp)
        yrs = None if rmask is None else workspace.empty((T, B, O), xp)
        ys[0] = y0
        u, w_out = StepProduct(w_hh, B), StepProduct(w_ho, B, b_ho)
        xp_, hs_, ys_ = xp.unbind(0), hs.unbind(0), ys.unbind(0)  # every step's views, made once
        for t in range(T):
            y = ys_[t]
            yr = y if yrs is None else torch.mul(y, rmask, out=yrs[t])
            h = phi_h(u.addmm(xp_[t], yr, out=hs_[t]))
            phi_y(w_out.mm(h, out=ys_[t + 1]))
            if keep is not None:
                torch.where(keep[t], ys_[t + 1], y, out=ys_[t + 1])
        ctx.acts = acts
        ctx.save_for_backward(hs, ys, yrs, w_hh, w_ho, b_ho, keep, rmask)
        return ys[1:], ys[T]

    @staticmethod
    def backward(ctx, d_out, d_yT):
        hs, ys, yrs, w_hh, w_ho, b_ho, keep, rmask = ctx.saved_tensors
        act_h, act_y = ctx.acts
        T, B, H = hs.shape
        O = w_ho.shape[0]
        d_hs, d_ay = workspace.empty_like(hs), workspace.empty_like(ys[1:])
        dy_rec, k_h, k_y, one = d_yT.clone(), hs.new_empty(B, H), hs.new_empty(B, O), hs.new_ones(())
        u_t, w_out_t = StepProduct(w_hh.t(), B), StepProduct(w_ho.t(), B)
        d_out_, d_ay_, d_hs_, hs_, ys_ = d_out.unbind(0), d_ay.unbind(0), d_hs.unbind(0), hs.unbind(0), ys.unbind(0)
        for t in range(T - 1, -1, -1):
            dy = torch.add(d_out_[t], dy_rec, out=d_ay_[t])
            if keep is not None:  # an ended sequence passes its gradient straight to the held state
                hold = dy * ~keep[t]
                dy.mul_(keep[t])
            times_derivative(dy, act_y, ys_[t + 1], k_y, one)
            times_derivative(w_out_t.mm(dy, out=d_hs_[t]), act_h, hs_[t], k_h, one)
            u_t.mm(d_hs_[t], out=dy_rec)
            if rmask is not None:
                dy_rec.mul_(rmask)
            if keep is not None:
                dy_rec.add_(hold)
        y_prev = (ys[:-1] if yrs is None else yrs).reshape(T * B, O)
        d_flat, d_ay_flat = d_hs.reshape(T * B, H), d_ay.reshape(T * B, O)
        d_w_hh = d_flat.t() @ y_prev
        d_w_ho = d_ay_flat.t() @ hs.reshape(T * B, H)
        d_b_ho = None if b_ho is None else d_ay_flat.sum(0)
        return d_hs, dy_rec, d_w_hh, d_w_ho, d_b_ho, None, None, None


def jordan_sequence(xp: Tensor, y0: Tensor, w_hh: Tensor, w_ho: Tensor, b_ho: Tensor | None,
                    activations: tuple[str, str], mask: Tensor | None = None, recurrent_mask: Tensor | None = None):
    """Run :class:`JordanSequence`: xp (T, B, H), y0 (B, O), mask (T, B) bool or None -> (outputs (T, B, O), y_T)."""
    keep = None if mask is None else mask.unsqueeze(-1)
    return JordanSequence.apply(xp, y0, w_hh, w_ho, b_ho, activations, keep, recurrent_mask)
