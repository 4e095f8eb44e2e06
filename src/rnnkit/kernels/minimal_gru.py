r"""Lecture 001's simplified GRU over a whole sequence with a hand-written backward pass.

Forward, for t = 1..T (gate rows u, h — or u, r, h with the reset gate — as in
:class:`rnnkit.cells.MinimalGRUCell`; ``xp_t = W_x x_t + b`` precomputed for all t):

.. math::
    \Gamma^u_t &= \sigma(xp^u_t + U_u h_{t-1}),\qquad
    \tilde h_t = \tanh(xp^h_t + U_h h_{t-1})
    \quad\text{or, with } \Gamma^r_t = \sigma(xp^r_t + U_r h_{t-1}):\quad
    \tilde h_t = \tanh(xp^h_t + U_h (\Gamma^r_t \odot h_{t-1}))\\
    h_t &= \tilde h_t,\qquad c_t = c_{t-1} + \Gamma^u_t \odot (\tilde h_t - c_{t-1}),\qquad y_t = c_t

Backward, from :math:`\delta c_t` (the output's gradient plus the next step's) and :math:`\delta h_t`
(the next step's gates'):

.. math::
    \delta \tilde h_t &= \delta h_t + \delta c_t \odot \Gamma^u_t,\qquad
    \delta a^h_t = \delta \tilde h_t \odot (1 - \tilde h_t^2),\qquad
    \delta a^u_t = \delta c_t \odot (\tilde h_t - c_{t-1})\, \Gamma^u_t (1 - \Gamma^u_t)\\
    \delta c_{t-1} &= \delta c_t \odot (1 - \Gamma^u_t),\qquad \delta h_{t-1} = \delta a_t U

(with the reset gate, :math:`\delta h_{t-1}` goes through :math:`\Gamma^r_t` as in
:mod:`rnnkit.kernels.gru`); the recurrent weight gradients are GEMMs over all (T·B) rows after the loop.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import workspace
from .gru import reset_candidate, reset_candidate_backward
from .packed import StepProduct
from .pointwise import by_step, tanh_


class MinimalGRUSequence(torch.autograd.Function):
    """(xp (T, B, kH), h0, c0 (B, H), w_hh (kH, H), keep (T, B, 1) | None, rmask (B, H) | None)
    -> (c_1..c_T (T, B, H), h_T, c_T); k = 2 (u, h) or 3 (u, r, h)."""

    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, keep, rmask):
        T, B, G = xp.shape
        H = w_hh.shape[1]
        reset = G == 3 * H
        acts = workspace.empty_like(xp)  # u, (r,) h~ after their nonlinearities
        hs, cs = workspace.empty((T + 1, B, H), xp), workspace.empty((T + 1, B, H), xp)
        rhs = workspace.empty((T, B, H), xp) if reset else None  # Γr_t ⊙ h_{t-1}
        hrs = None if rmask is None else workspace.empty((T, B, H), xp)
        hs[0], cs[0] = h0, c0
        u_gates = StepProduct(w_hh[:2 * H] if reset else w_hh, B)  # [U_u; U_r] with the reset gate, else all
        u_h = StepProduct(w_hh[2 * H:], B) if reset else None
        gates = by_step(acts, G // H)  # each step's views, made once: u, (r,) h~
        u_, hn_ = gates[0], gates[-1]
        xp_, acts_, hs_, cs_ = xp.unbind(0), acts.unbind(0), hs.unbind(0), cs.unbind(0)
        if reset:
            r_, rhs_ = gates[1], rhs.unbind(0)
            xp_ur_, xp_h_, ur_ = xp[..., :2 * H].unbind(0), xp[..., 2 * H:].unbind(0), acts[..., :2 * H].unbind(0)
        for t in range(T):
            h, c, c_new = hs_[t], cs_[t], cs_[t + 1]
            hr = h if hrs is None else torch.mul(h, rmask, out=hrs[t])
            if reset:
                u_gates.addmm(xp_ur_[t], hr, out=ur_[t]).sigmoid_()
                h_new = reset_candidate(xp_h_[t], r_[t], hr, u_h, rhs_[t], hn_[t])
            else:
                u_gates.addmm(xp_[t], hr, out=acts_[t])
                h_new = tanh_(hn_[t], acts_[t])
            hs_[t + 1].copy_(h_new)
            torch.sub(h_new, c, out=c_new).mul_(u_[t]).add_(c)
            if keep is not None:
                torch.where(keep[t], hs_[t + 1], h, out=hs_[t + 1])
                torch.where(keep[t], c_new, c, out=c_new)
        ctx.save_for_backward(acts, hs, cs, rhs, hrs, w_hh, keep, rmask)
        return cs[1:], hs[T], cs[T]

    @staticmethod
    def backward(ctx, d_out, d_hT, d_cT):
        acts, hs, cs, rhs, hrs, w_hh, keep, rmask = ctx.saved_tensors
        T, B, G = acts.shape
        H = w_hh.shape[1]
        reset = rhs is not None
        d_acts = workspace.empty_like(acts)
        dh, dc, dc_rec = d_hT.clone(), torch.empty_like(d_cT), d_cT.clone()
        d_hn, k, d_rh, one = torch.empty_like(dh), torch.empty_like(dh), torch.empty_like(dh), dh.new_ones(())
        u_gates_t = StepProduct((w_hh[:2 * H] if reset else w_hh).t(), B)
        u_h_t = StepProduct(w_hh[2 * H:].t(), B) if reset else None
        gates, d_gates = by_step(acts, G // H), by_step(d_acts, G // H)
        u_, hn_, da_u_, da_h_ = gates[0], gates[-1], d_gates[0], d_gates[-1]
        d_out_, d_acts_, hs_, cs_ = d_out.unbind(0), d_acts.unbind(0), hs.unbind(0), cs.unbind(0)
        if reset:
            r_, da_r_, d_ur_ = gates[1], d_gates[1], d_acts[..., :2 * H].unbind(0)
        for t in range(T - 1, -1, -1):
            u, h_new, da_u, da_h = u_[t], hn_[t], da_u_[t], da_h_[t]
            hr = hs_[t] if hrs is None else hrs[t]
            torch.add(d_out_[t], dc_rec, out=dc)
            if keep is not None:  # an ended sequence passes its gradients straight to the held state
                hold_h, hold_c = dh * ~keep[t], dc * ~keep[t]
                dh.mul_(keep[t])
                dc.mul_(keep[t])
            torch.addcmul(dh, dc, u, out=d_hn)
            torch.sub(h_new, cs_[t], out=da_u).mul_(dc).mul_(torch.addcmul(u, u, u, value=-1, out=k))
            torch.mul(d_hn, torch.addcmul(one, h_new, h_new, value=-1, out=k), out=da_h)
            torch.addcmul(dc, dc, u, value=-1, out=dc_rec)
            if reset:
                via_h = reset_candidate_backward(da_h, r_[t], hr, u_h_t, da_r_[t], d_rh, k)
                u_gates_t.addmm(via_h, d_ur_[t], out=dh)
            else:
                u_gates_t.mm(d_acts_[t], out=dh)
            if rmask is not None:
                dh.mul_(rmask)
            if keep is not None:
                dh.add_(hold_h)
                dc_rec.add_(hold_c)
        h_prev = (hs[:-1] if hrs is None else hrs).reshape(T * B, H)
        d_flat = d_acts.reshape(T * B, G)
        if reset:
            d_w = torch.cat([d_flat[:, :2 * H].t() @ h_prev, d_flat[:, 2 * H:].t() @ rhs.reshape(T * B, H)])
        else:
            d_w = d_flat.t() @ h_prev
        return d_acts, dh, dc_rec, d_w, None, None


def minimal_gru_sequence(xp: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, mask: Tensor | None = None,
                         recurrent_mask: Tensor | None = None):
    """Run :class:`MinimalGRUSequence`: xp (T, B, kH), state (h0, c0), mask (T, B) bool or None
    -> (outputs c_1..c_T (T, B, H), (h_T, c_T))."""
    keep = None if mask is None else mask.unsqueeze(-1)
    out, h, c = MinimalGRUSequence.apply(xp, state[0], state[1], w_hh, keep, recurrent_mask)
    return out, (h, c)
