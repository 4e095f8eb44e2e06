r"""The layer-normalised LSTM (Ba et al. 2016) over a whole sequence with a hand-written backward pass.

Forward, for t = 1..T (``xp_t = W_x x_t`` precomputed for all t in one GEMM, gate rows i, f, g, o as in
:class:`rnnkit.cells.LayerNormLSTMCell`):

.. math::
    a_t &= \mathrm{LN}(xp_t; \gamma_x, \beta_x) + \mathrm{LN}(W_h h_{t-1}; \gamma_h, \beta_h)\\
    c_t &= \sigma(a^f_t) \odot c_{t-1} + \sigma(a^i_t) \odot \tanh(a^g_t),\qquad
    h_t = \sigma(a^o_t) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))

Backward as in :mod:`rnnkit.kernels.lstm`, with the normalisations differentiated by torch's own layer-norm
backward (``aten::native_layer_norm_backward``, from the mean and reciprocal standard deviation saved by the
forward pass). Only LN(W_h h_{t-1}) and LN(c_t) sit on the recurrence; everything else runs over chunks of K
steps (about ``CHUNK_ELEMENTS`` gate values, so a chunk is still in cache): LN(xp) forward for the next K
steps at once, and, once the backward pass has finished a chunk, LN(xp)'s backward and all six γ, β
gradients over its K steps in three calls. Per step that leaves two layer norms each way, their input
gradients only; in float32 on the CPU those and the rest of the step's pointwise work are one compiled call
(:mod:`rnnkit.kernels.lstm_steps`). Measured (2 threads, (32, 100, 256), ``bench_cells.py``): 0.87-1.01x
nn.LSTM's tokens/s with the compiled steps (four runs), 0.70-0.72x with torch's ops, 0.61x with every normalisation and
γ, β sum step by step. :math:`\partial L/\partial W_h` is one GEMM over all (T·B) rows after the loop.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import lstm_steps, workspace
from .lstm import cell_backward
from .packed import StepProduct
from .pointwise import accumulator_like, by_step, tanh_

_ln_backward = torch.ops.aten.native_layer_norm_backward
CHUNK_ELEMENTS = 1 << 18  # (B, 4H) rows of the step-independent layer-norm work done at once: 1 MB in fp32


class LayerNormLSTMSequence(torch.autograd.Function):
    """(xp (T, B, 4H), h0, c0 (B, H), w_hh (4H, H), γ_x, β_x, γ_h, β_h (4H,), γ_c, β_c (H,), eps,
    keep (T, B, 1) | None, rmask (B, H) | None) -> (h_1..h_T (T, B, H), h_T, c_T). xp is W_x x before its
    normalisation; keep and rmask as in ``LSTMSequence``."""

    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, g_x, b_x, g_h, b_h, g_c, b_c, eps, keep, rmask):
        T, B, G = xp.shape
        H = G // 4
        acts = workspace.empty_like(xp)  # gates after their nonlinearities
        rs = workspace.empty_like(xp)  # W_h h_{t-1}
        hs, cs = workspace.empty((T + 1, B, H), xp), workspace.empty((T + 1, B, H), xp)
        tanh_c = workspace.empty((T, B, H), xp)
        hrs = None if rmask is None else workspace.empty((T, B, H), xp)
        hs[0], cs[0] = h0, c0
        u = StepProduct(w_hh, B)
        K = chunk_steps(B, G)
        x_stats = []  # mean and 1/std of xp, per chunk
        x_hats = _normalised_inputs(xp, K, g_x, b_x, eps, x_stats)
        hs_, rs_ = hs.unbind(0), rs.unbind(0)
        if lstm_steps.applies(xp, g_x, b_x, g_h, b_h, g_c, b_c):  # each step's pointwise work in one compiled call
            stats = [xp.new_empty(T, B, 1) for _ in range(4)]  # mean and 1/std of W_h h_{t-1}, then of c_t
            steps = lstm_steps.Steps(B, H, eps, acts=acts, hs=hs, cs=cs, tanh_c=tanh_c, rs=rs, keep=keep,
                                     **_norms(g_h, b_h, g_c, b_c), **dict(zip(_STATS, stats)),
                                     scratch=xp.new_empty(B, G))
            for t, x_hat in enumerate(x_hats):
                steps.set("x_hat", x_hat)
                u.mm(hs_[t] if hrs is None else torch.mul(hs_[t], rmask, out=hrs[t]), out=rs_[t])
                steps.ln_lstm_forward(t)
            r_stats, c_stats = stats[:2], stats[2:]
        else:
            r_stats, c_stats = _forward_ops(u, x_hats, acts, rs, hs, cs, tanh_c, g_h, b_h, g_c, b_c, eps, keep,
                                            rmask, hrs)
        ctx.eps, ctx.K, ctx.x_stats, ctx.r_stats, ctx.c_stats = eps, K, x_stats, r_stats, c_stats
        ctx.save_for_backward(xp, acts, rs, hs, cs, tanh_c, hrs, w_hh, g_x, b_x, g_h, b_h, g_c, b_c, keep, rmask)
        return hs[1:], hs[T], cs[T]

    @staticmethod
    def backward(ctx, d_out, d_hT, d_cT):
        xp, acts, rs, hs, cs, tanh_c, hrs, w_hh, g_x, b_x, g_h, b_h, g_c, b_c, keep, rmask = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 4
        K, (mean_r, rstd_r), (mean_c, rstd_c) = ctx.K, ctx.r_stats, ctx.c_stats
        d_xp, d_acts, d_rs = workspace.empty_like(xp), workspace.empty_like(acts), workspace.empty_like(rs)
        d_ln_c = workspace.empty_like(tanh_c)  # δ LN(c_t)
        dh_rec, dc = d_hT.clone(), d_cT.clone()
        norms = (g_x, b_x, g_h, b_h, g_c, b_c)
        d_norms = [accumulator_like(p) for p in norms]
        u_t = StepProduct(w_hh.t(), B)

        def chunk_done(t):  # the chunk t..t+K-1 is done: its γ, β gradients and LN(xp)'s backward at once
            if t % K == 0:
                _chunk_backward(ctx, t, d_norms, d_xp, d_acts, d_ln_c, xp, rs, cs, norms)

        if lstm_steps.applies(acts, d_out, g_h, g_c):  # each step's pointwise work in one compiled call
            hold = None if keep is None else torch.empty_like(dc)  # δh of the rows that ended, for the held state
            steps = lstm_steps.Steps(B, H, ctx.eps, acts=acts, hs=hs, cs=cs, tanh_c=tanh_c, rs=rs, keep=keep,
                                     d_out=d_out, dh_rec=dh_rec, dc=dc, d_acts=d_acts, hold_h=hold, d_ln_c=d_ln_c,
                                     d_rs=d_rs, **_norms(g_h, b_h, g_c, b_c),
                                     **dict(zip(_STATS, (mean_r, rstd_r, mean_c, rstd_c))),
                                     scratch=acts.new_empty(B, G))
            lstm_steps.backward_loop(steps.ln_lstm_backward, u_t, d_rs.unbind(0), dh_rec, rmask, hold, chunk_done)
        else:
            _backward_ops(u_t, d_out, acts, rs, cs, tanh_c, d_acts, d_rs, d_ln_c, dh_rec, dc, ctx.r_stats,
                          ctx.c_stats, g_h, b_h, g_c, b_c, keep, rmask, chunk_done)
        h_prev = hs[:-1] if hrs is None else hrs
        d_w = d_rs.reshape(T * B, G).t() @ h_prev.reshape(T * B, H)
        return d_xp, dh_rec, dc, d_w, *(d.to(p.dtype) for d, p in zip(d_norms, norms)), None, None, None


_STATS = ("mean_r", "rstd_r", "mean_c", "rstd_c")


def _norms(g_h, b_h, g_c, b_c) -> dict:
    """The recurrent normalisations' γ, β under the compiled steps' field names."""
    return {"gamma_h": g_h, "beta_h": b_h, "gamma_c": g_c, "beta_c": b_c}


def _normalised_inputs(xp, K, g_x, b_x, eps, stats: list):
    """LN(xp_t) for t = 0..T-1, one view (B, 4H) a step, normalised K steps at a time (it needs no state);
    each chunk's mean and 1/std appended to ``stats``."""
    for t in range(0, xp.shape[0], K):
        x_hat, *chunk_stats = torch.native_layer_norm(xp[t:t + K], (xp.shape[-1],), g_x, b_x, eps)
        stats.append(chunk_stats)
        yield from x_hat.unbind(0)


def _forward_ops(u, x_hats, acts, rs, hs, cs, tanh_c, g_h, b_h, g_c, b_c, eps, keep, rmask, hrs):
    """LayerNormLSTMSequence's forward loop in torch's ops (other dtypes, GPUs, no compiled steps): fills the
    buffers step by step; returns the means and 1/stds of W_h h_{t-1} and of c_t, each (T, B, 1)."""
    G, H = acts.shape[-1], hs.shape[-1]
    r_stats, c_stats = [], []
    i_, f_, g_, o_ = by_step(acts, 4)
    acts_, rs_ = acts.unbind(0), rs.unbind(0)
    hs_, cs_, tanh_c_ = hs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    for t, x_hat in enumerate(x_hats):
        h, c, c_new, a = hs_[t], cs_[t], cs_[t + 1], acts_[t]
        hr = h if hrs is None else torch.mul(h, rmask, out=hrs[t])
        r_hat, *stats = torch.native_layer_norm(u.mm(hr, out=rs_[t]), (G,), g_h, b_h, eps)
        r_stats.append(stats)
        torch.add(x_hat, r_hat, out=a)
        tanh_(g_[t], a)
        torch.mul(f_[t], c, out=c_new).addcmul_(i_[t], g_[t])
        c_hat, *stats = torch.native_layer_norm(c_new, (H,), g_c, b_c, eps)
        c_stats.append(stats)
        torch.mul(o_[t], tanh_(tanh_c_[t], of=c_hat), out=hs_[t + 1])
        if keep is not None:
            torch.where(keep[t], hs_[t + 1], hs_[t], out=hs_[t + 1])
            torch.where(keep[t], c_new, c, out=c_new)
    return [torch.stack(s) for s in zip(*r_stats)], [torch.stack(s) for s in zip(*c_stats)]


def _backward_ops(u_t, d_out, acts, rs, cs, tanh_c, d_acts, d_rs, d_ln_c, dh_rec, dc, r_stats, c_stats,
                  g_h, b_h, g_c, b_c, keep, rmask, chunk_done):
    """LayerNormLSTMSequence's backward loop in torch's ops: fills d_acts, d_rs, d_ln_c, leaves δh_0 in dh_rec
    and δc_0 in dc, and calls ``chunk_done(t)`` after each step."""
    G, H = acts.shape[-1], dc.shape[-1]
    (mean_r, rstd_r), (mean_c, rstd_c) = r_stats, c_stats
    dh = torch.empty_like(dh_rec)
    k, one = torch.empty_like(dh), dh.new_ones(())
    input_only = [True, False, False]
    i_, f_, g_, o_ = by_step(acts, 4)
    da_i_, da_f_, da_g_, da_o_ = by_step(d_acts, 4)
    d_out_, d_acts_, d_rs_, d_ln_c_ = d_out.unbind(0), d_acts.unbind(0), d_rs.unbind(0), d_ln_c.unbind(0)
    rs_, cs_, tanh_c_ = rs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    for t in range(len(d_out_) - 1, -1, -1):
        i, f, g, o, tc = i_[t], f_[t], g_[t], o_[t], tanh_c_[t]
        da_i, da_f, da_g, da_o = da_i_[t], da_f_[t], da_g_[t], da_o_[t]
        torch.add(d_out_[t], dh_rec, out=dh)
        if keep is not None:  # an ended sequence passes its gradients straight to the held state
            hold_h, hold_c = dh * ~keep[t], dc * ~keep[t]
            dh.mul_(keep[t])
            dc.mul_(keep[t])
        torch.mul(dh, o, out=d_ln_c_[t]).mul_(torch.addcmul(one, tc, tc, value=-1, out=k))
        torch.mul(dh, tc, out=da_o).mul_(torch.addcmul(o, o, o, value=-1, out=k))
        dc.add_(_ln_backward(d_ln_c_[t], cs_[t + 1], (H,), mean_c[t], rstd_c[t], g_c, b_c, input_only)[0])
        cell_backward(dc, i, f, g, cs_[t], da_i, da_f, da_g, k, one)
        d_r = _ln_backward(d_acts_[t], rs_[t], (G,), mean_r[t], rstd_r[t], g_h, b_h, input_only)[0]
        u_t.mm(d_rs_[t].copy_(d_r), out=dh_rec)
        if rmask is not None:
            dh_rec.mul_(rmask)
        if keep is not None:
            dh_rec.add_(hold_h)
            dc.add_(hold_c)
        chunk_done(t)


def _chunk_backward(ctx, t, d_norms, d_xp, d_acts, d_ln_c, xp, rs, cs, norms):
    """The parts of the backward pass no later step waits for, over the steps t..t+K-1 at once: δxp through
    LN(xp), and the six γ, β gradients (each a sum over steps and rows)."""
    G, H = xp.shape[-1], cs.shape[-1]
    s = slice(t, t + ctx.K)
    mean_x, rstd_x = ctx.x_stats[t // ctx.K]
    (mean_r, rstd_r), (mean_c, rstd_c) = ((m[s], r[s]) for m, r in (ctx.r_stats, ctx.c_stats))
    g_x, b_x, g_h, b_h, g_c, b_c = norms
    d_x, *d_xn = _ln_backward(d_acts[s], xp[s], (G,), mean_x, rstd_x, g_x, b_x, [True, True, True])
    d_xp[s].copy_(d_x)
    d_hn = _ln_backward(d_acts[s], rs[s], (G,), mean_r, rstd_r, g_h, b_h, [False, True, True])[1:]
    c_s = slice(t + 1, t + 1 + ctx.K)
    d_cn = _ln_backward(d_ln_c[s], cs[c_s], (H,), mean_c, rstd_c, g_c, b_c, [False, True, True])[1:]
    for acc, d in zip(d_norms, (*d_xn, *d_hn, *d_cn)):
        acc += d


def chunk_steps(B: int, G: int) -> int:
    """Steps per chunk of the step-independent layer-norm work: about CHUNK_ELEMENTS of (B, G) rows."""
    return max(1, CHUNK_ELEMENTS // (B * G))


def layer_norm_lstm_sequence(xp: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, g_x: Tensor, b_x: Tensor,
                             g_h: Tensor, b_h: Tensor, g_c: Tensor, b_c: Tensor, *, eps: float,
                             mask: Tensor | None = None, recurrent_mask: Tensor | None = None):
    """Run :class:`LayerNormLSTMSequence`: xp = W_x x (T, B, 4H) before its normalisation, state (h0, c0),
    γ_x, β_x, γ_h, β_h (4H,), γ_c, β_c (H,), mask (T, B) bool or None -> (outputs (T, B, H), (h_T, c_T))."""
    keep = None if mask is None else mask.unsqueeze(-1)
    out, h, c = LayerNormLSTMSequence.apply(xp, state[0], state[1], w_hh, g_x, b_x, g_h, b_h, g_c, b_c, eps, keep,
                                            recurrent_mask)
    return out, (h, c)
