r"""The layer-normalised LSTM (Ba et al. 2016) over a whole sequence with a hand-written backward pass.

Forward, for t = 1..T (``xp_t = LN(W_x x_t; γ_x, β_x)`` precomputed for all t, gate rows i, f, g, o as in
:class:`rnnkit.cells.LayerNormLSTMCell`):

.. math::
    a_t &= xp_t + \mathrm{LN}(W_h h_{t-1}; \gamma_h, \beta_h)\\
    c_t &= \sigma(a^f_t) \odot c_{t-1} + \sigma(a^i_t) \odot \tanh(a^g_t),\qquad
    h_t = \sigma(a^o_t) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))

Backward as in :mod:`rnnkit.kernels.lstm`, with both normalisations differentiated by torch's own
layer-norm backward (``aten::native_layer_norm_backward``, one op per normalisation and step, from the mean
and reciprocal standard deviation saved by the forward pass). :math:`\partial L/\partial W_h` is one
GEMM over all (T·B) rows after the loop; the γ and β gradients are summed step by step.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .packed import StepProduct
from .pointwise import accumulator_like, tanh_

_ln_backward = torch.ops.aten.native_layer_norm_backward


class LayerNormLSTMSequence(torch.autograd.Function):
    """(xp (T, B, 4H), h0, c0 (B, H), w_hh (4H, H), γ_h, β_h (4H,), γ_c, β_c (H,), eps, keep (T, B, 1) | None,
    rmask (B, H) | None) -> (h_1..h_T (T, B, H), h_T, c_T). keep and rmask as in ``LSTMSequence``."""

    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, g_h, b_h, g_c, b_c, eps, keep, rmask):
        T, B, G = xp.shape
        H = G // 4
        acts, rs = torch.empty_like(xp), torch.empty_like(xp)  # gates after their nonlinearities; W_h h_{t-1}
        hs, cs, tanh_c = xp.new_empty(T + 1, B, H), xp.new_empty(T + 1, B, H), xp.new_empty(T, B, H)
        stats = xp.new_empty(4, T, B, 1)  # mean and 1/std of W_h h_{t-1}, then of c_t
        hrs = None if rmask is None else xp.new_empty(T, B, H)
        hs[0], cs[0] = h0, c0
        u = StepProduct(w_hh, B)
        for t in range(T):
            h, c, a = hs[t], cs[t], acts[t]
            hr = h if hrs is None else torch.mul(h, rmask, out=hrs[t])
            r_hat, stats[0, t], stats[1, t] = torch.native_layer_norm(u.mm(hr, out=rs[t]), (G,), g_h, b_h, eps)
            torch.add(xp[t], r_hat, out=a)
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            tanh_(g, a)
            c_new = torch.mul(f, c, out=cs[t + 1]).addcmul_(i, g)
            c_hat, stats[2, t], stats[3, t] = torch.native_layer_norm(c_new, (H,), g_c, b_c, eps)
            torch.mul(o, tanh_(c_hat), out=hs[t + 1])
            tanh_c[t] = c_hat
            if keep is not None:
                torch.where(keep[t], hs[t + 1], hs[t], out=hs[t + 1])
                torch.where(keep[t], c_new, c, out=c_new)
        ctx.save_for_backward(acts, rs, hs, cs, tanh_c, stats, hrs, w_hh, g_h, b_h, g_c, b_c, keep, rmask)
        return hs[1:], hs[T], cs[T]

    @staticmethod
    def backward(ctx, d_out, d_hT, d_cT):
        acts, rs, hs, cs, tanh_c, stats, hrs, w_hh, g_h, b_h, g_c, b_c, keep, rmask = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 4
        d_acts, d_rs = torch.empty_like(acts), torch.empty_like(rs)
        dh, dh_rec, dc = torch.empty_like(d_hT), d_hT.clone(), d_cT.clone()
        d_ln_c, k, one = torch.empty_like(dh), torch.empty_like(dh), dh.new_ones(())
        d_g_h, d_b_h, d_g_c, d_b_c = (accumulator_like(p) for p in (g_h, b_h, g_c, b_c))
        everything = [True, True, True]
        u_t = StepProduct(w_hh.t(), B)
        for t in range(T - 1, -1, -1):
            i, f, g, o = acts[t, :, :H], acts[t, :, H:2 * H], acts[t, :, 2 * H:3 * H], acts[t, :, 3 * H:]
            da_i, da_f, da_g, da_o = d_acts[t].chunk(4, dim=1)
            tc = tanh_c[t]
            torch.add(d_out[t], dh_rec, out=dh)
            if keep is not None:  # an ended sequence passes its gradients straight to the held state
                hold_h, hold_c = dh * ~keep[t], dc * ~keep[t]
                dh.mul_(keep[t])
                dc.mul_(keep[t])
            torch.mul(dh, o, out=d_ln_c).mul_(torch.addcmul(one, tc, tc, value=-1, out=k))  # δ LN(c_t)
            torch.mul(dh, tc, out=da_o).mul_(torch.addcmul(o, o, o, value=-1, out=k))
            d_c, d_gamma, d_beta = _ln_backward(d_ln_c, cs[t + 1], (H,), stats[2, t], stats[3, t], g_c, b_c, everything)
            dc.add_(d_c)
            d_g_c += d_gamma
            d_b_c += d_beta
            torch.mul(dc, g, out=da_i).mul_(torch.addcmul(i, i, i, value=-1, out=k))
            torch.mul(dc, cs[t], out=da_f).mul_(torch.addcmul(f, f, f, value=-1, out=k))
            torch.mul(dc, i, out=da_g).mul_(torch.addcmul(one, g, g, value=-1, out=k))
            dc.mul_(f)
            d_r, d_gamma, d_beta = _ln_backward(d_acts[t], rs[t], (G,), stats[0, t], stats[1, t], g_h, b_h, everything)
            d_rs[t] = d_r
            d_g_h += d_gamma
            d_b_h += d_beta
            u_t.mm(d_r, out=dh_rec)
            if rmask is not None:
                dh_rec.mul_(rmask)
            if keep is not None:
                dh_rec.add_(hold_h)
                dc.add_(hold_c)
        h_prev = hs[:-1] if hrs is None else hrs
        d_w = d_rs.reshape(T * B, G).t() @ h_prev.reshape(T * B, H)
        d_norms = (d.to(p.dtype) for d, p in zip((d_g_h, d_b_h, d_g_c, d_b_c), (g_h, b_h, g_c, b_c)))
        return d_acts, dh_rec, dc, d_w, *d_norms, None, None, None


def layer_norm_lstm_sequence(xp: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, g_h: Tensor, b_h: Tensor,
                             g_c: Tensor, b_c: Tensor, *, eps: float, mask: Tensor | None = None,
                             recurrent_mask: Tensor | None = None):
    """Run :class:`LayerNormLSTMSequence`: xp (T, B, 4H), state (h0, c0), γ_h, β_h (4H,), γ_c, β_c (H,),
    mask (T, B) bool or None -> (outputs (T, B, H), (h_T, c_T))."""
    keep = None if mask is None else mask.unsqueeze(-1)
    out, h, c = LayerNormLSTMSequence.apply(xp, state[0], state[1], w_hh, g_h, b_h, g_c, b_c, eps, keep, recurrent_mask)
    return out, (h, c)
