r"""Cho et al.'s GRU (reset before the product) over a whole sequence with a hand-written backward pass.

Forward, for t = 1..T (gate rows r, z, g as in :class:`rnnkit.cells.GRUCell`, ``reset_after=False``;
``xp_t = W_x x_t + b`` precomputed for all t, :math:`U = [U_{rz}; U_g]` the recurrent weights):

.. math::
    [r_t; z_t] &= \sigma(xp^{rz}_t + U_{rz} h_{t-1}),\qquad
    g_t = \tanh(xp^g_t + U_g (r_t \odot h_{t-1}))\\
    h_t &= g_t + z_t \odot (h_{t-1} - g_t)

Backward, from :math:`\delta h_t` (the output's gradient plus the next step's):

.. math::
    \delta a^g_t &= \delta h_t \odot (1 - z_t)(1 - g_t^2),\qquad
    \delta a^z_t = \delta h_t \odot (h_{t-1} - g_t)\, z_t (1 - z_t)\\
    \delta(rh)_t &= \delta a^g_t U_g,\qquad \delta a^r_t = \delta(rh)_t \odot h_{t-1} r_t (1 - r_t)\\
    \delta h_{t-1} &= \delta h_t \odot z_t + \delta(rh)_t \odot r_t + \delta a^{rz}_t U_{rz}

and after the loop :math:`\partial L/\partial U_{rz} = \sum_t (\delta a^{rz}_t)^\top h_{t-1}`,
:math:`\partial L/\partial U_g = \sum_t (\delta a^g_t)^\top (r_t \odot h_{t-1})`, each one GEMM over
(T·B) rows. Two GEMMs per step each way, as the equations need (r_t must exist before U_g is applied).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import workspace
from .packed import StepProduct
from .pointwise import by_step, tanh_


def reset_candidate(xp_g: Tensor, r: Tensor, hr: Tensor, u_g: StepProduct, rh: Tensor, out: Tensor) -> Tensor:
    """g = tanh(xp_g + U_g (r ⊙ hr)) into ``out``, with r ⊙ hr kept in ``rh`` (for ∂L/∂U_g)."""
    torch.mul(r, hr, out=rh)
    return tanh_(u_g.addmm(xp_g, rh, out=out))


def reset_candidate_backward(da_g: Tensor, r: Tensor, hr: Tensor, u_g_t: StepProduct, da_r: Tensor, d_rh: Tensor,
                             k: Tensor) -> Tensor:
    """From δa_g: δ(rh) = δa_g U_g into ``d_rh`` (``u_g_t`` multiplies by U_g), δa_r = δ(rh) ⊙ hr ⊙ r (1 − r)
    into ``da_r``; returns δ(rh) ⊙ r, the part of δh_{t-1} through the candidate (``k`` is scratch)."""
    u_g_t.mm(da_g, out=d_rh)
    torch.mul(d_rh, hr, out=da_r).mul_(torch.addcmul(r, r, r, value=-1, out=k))
    return d_rh.mul_(r)


class GRUSequence(torch.autograd.Function):
    """(xp (T, B, 3H), h0 (B, H), w_hh (3H, H), keep (T, B, 1) | None, rmask (B, H) | None)
    -> (h_1..h_T (T, B, H), h_T). keep and rmask as in :class:`rnnkit.kernels.lstm.LSTMSequence`."""

    @staticmethod
    def forward(ctx, xp, h0, w_hh, keep, rmask):
        T, B, G = xp.shape
        H = G // 3
        acts = workspace.empty_like(xp)  # r, z, g after their nonlinearities
        hs = workspace.empty((T + 1, B, H), xp)
        rhs = workspace.empty((T, B, H), xp)  # r_t ⊙ h_{t-1}
        hrs = None if rmask is None else workspace.empty((T, B, H), xp)
        hs[0] = h0
        u_rz, u_g = StepProduct(w_hh[:2 * H], B), StepProduct(w_hh[2 * H:], B)
        r_, z_, g_ = by_step(acts, 3)  # each step's views, made once
        xp_rz_, xp_g_, rz_ = xp[..., :2 * H].unbind(0), xp[..., 2 * H:].unbind(0), acts[..., :2 * H].unbind(0)
        hs_, rhs_ = hs.unbind(0), rhs.unbind(0)
        for t in range(T):
            h = hs_[t]
            hr = h if hrs is None else torch.mul(h, rmask, out=hrs[t])
            u_rz.addmm(xp_rz_[t], hr, out=rz_[t]).sigmoid_()
            g = reset_candidate(xp_g_[t], r_[t], hr, u_g, rhs_[t], g_[t])
            torch.sub(h, g, out=hs_[t + 1]).mul_(z_[t]).add_(g)
            if keep is not None:
                torch.where(keep[t], hs_[t + 1], h, out=hs_[t + 1])
        ctx.save_for_backward(acts, hs, rhs, hrs, w_hh, keep, rmask)
        return hs[1:], hs[T]

    @staticmethod
    def backward(ctx, d_out, d_hT):
        acts, hs, rhs, hrs, w_hh, keep, rmask = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 3
        u_rz_t, u_g_t = StepProduct(w_hh[:2 * H].t(), B), StepProduct(w_hh[2 * H:].t(), B)
        d_acts = workspace.empty_like(acts)
        dh, dh_rec = torch.empty_like(d_hT), d_hT.clone()
        k, d_rh, one = torch.empty_like(dh), torch.empty_like(dh), dh.new_ones(())
        r_, z_, g_ = by_step(acts, 3)
        da_r_, da_z_, da_g_ = by_step(d_acts, 3)
        d_rz_, d_out_, hs_ = d_acts[..., :2 * H].unbind(0), d_out.unbind(0), hs.unbind(0)
        for t in range(T - 1, -1, -1):
            r, z, g, da_r, da_z, da_g = r_[t], z_[t], g_[t], da_r_[t], da_z_[t], da_g_[t]
            h_prev = hs_[t]
            hr = h_prev if hrs is None else hrs[t]
            torch.add(d_out_[t], dh_rec, out=dh)
            if keep is not None:
                hold = dh * ~keep[t]
                dh.mul_(keep[t])
            torch.mul(dh, torch.sub(one, z, out=k), out=da_g).mul_(torch.addcmul(one, g, g, value=-1, out=k))
            torch.sub(h_prev, g, out=da_z).mul_(dh).mul_(torch.addcmul(z, z, z, value=-1, out=k))
            via_g = reset_candidate_backward(da_g, r, hr, u_g_t, da_r, d_rh, k)
            u_rz_t.addmm(via_g, d_rz_[t], out=dh_rec)
            if rmask is not None:
                dh_rec.mul_(rmask)
            dh_rec.addcmul_(dh, z)
            if keep is not None:
                dh_rec.add_(hold)
        h_prev = (hs[:-1] if hrs is None else hrs).reshape(T * B, H)
        d_flat = d_acts.reshape(T * B, G)
        d_w = torch.cat([d_flat[:, :2 * H].t() @ h_prev, d_flat[:, 2 * H:].t() @ rhs.reshape(T * B, H)])
        return d_acts, dh_rec, d_w, None, None


def gru_sequence(xp: Tensor, h0: Tensor, w_hh: Tensor, mask: Tensor | None = None,
                 recurrent_mask: Tensor | None = None):
    """Run :class:`GRUSequence`: xp (T, B, 3H), h0 (B, H), mask (T, B) bool or None -> (outputs (T, B, H), h_T)."""
    return GRUSequence.apply(xp, h0, w_hh, None if mask is None else mask.unsqueeze(-1), recurrent_mask)
