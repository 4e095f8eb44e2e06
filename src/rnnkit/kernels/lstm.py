r"""The LSTM, with or without peepholes, over a whole sequence with a hand-written backward pass.

Forward, for t = 1..T (gate rows i, f, g, o as in :class:`rnnkit.cells.LSTMCell`;
``xp_t = W_x x_t + b`` precomputed for all t; p = the peephole weights, or none):

.. math::
    a_t &= xp_t + W_h h_{t-1}\\
    i_t = \sigma(a^i_t + p_i \odot c_{t-1}),\quad f_t &= \sigma(a^f_t + p_f \odot c_{t-1}),\quad
    g_t = \tanh(a^g_t)\\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t\\
    o_t = \sigma(a^o_t + p_o \odot c_t),\quad h_t &= o_t \odot \tanh(c_t)

Backward, from :math:`\delta h_t` (the output's gradient plus the next step's) and :math:`\delta c_t`:

.. math::
    \delta c_t &\mathrel{+}= \delta h_t \odot o_t (1 - \tanh^2 c_t) + \delta a^o_t \odot p_o,\qquad
    \delta a^o_t = \delta h_t \odot \tanh(c_t)\, o_t (1 - o_t)\\
    \delta a^i_t &= \delta c_t \odot g_t\, i_t (1 - i_t),\quad
    \delta a^f_t = \delta c_t \odot c_{t-1} f_t (1 - f_t),\quad
    \delta a^g_t = \delta c_t \odot i_t (1 - g_t^2)\\
    \delta c_{t-1} &= \delta c_t \odot f_t + \delta a^i_t \odot p_i + \delta a^f_t \odot p_f,\qquad
    \delta h_{t-1} \mathrel{+}= \delta a_t W_h

and after the loop :math:`\partial L/\partial W_h = \sum_t \delta a_t^\top h_{t-1}` as one GEMM over
(T·B) rows, and the peephole gradients :math:`\partial L/\partial p_{i,f} = \sum_{t,b} \delta a^{i,f}_t \odot
c_{t-1}`, :math:`\partial L/\partial p_o = \sum_{t,b} \delta a^o_t \odot c_t` summed over the steps into a (B, ·)
accumulator (one multiply-add a step) and over the batch once at the end. Both passes multiply by W_h through
:class:`rnnkit.kernels.packed.StepProduct` and keep their (T, B, ·) buffers in :mod:`rnnkit.kernels.workspace`;
a step's views (gates, states) are made once, by ``unbind``, before the loop. In float32 on the CPU, each step's
pointwise work (all of the above but the products), forward and backward, is one compiled call instead
(:mod:`rnnkit.kernels.lstm_steps`, the same equations; torch's ops where it cannot be built).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import lstm_steps, workspace
from .packed import StepProduct
from .pointwise import accumulator_like, by_step, tanh_


def cell_backward(dc: Tensor, i: Tensor, f: Tensor, g: Tensor, c_prev: Tensor, da_i: Tensor, da_f: Tensor,
                  da_g: Tensor, k: Tensor, one: Tensor) -> None:
    """From δc_t, the cell update's part of a step's backward pass, in place (the LSTM's and the layer-norm
    LSTM's): δa^i = δc ⊙ g i (1 − i), δa^f = δc ⊙ c_{t-1} f (1 − f), δa^g = δc ⊙ i (1 − g²) into da_i, da_f,
    da_g; then δc ← δc ⊙ f (its path to c_{t-1}). ``k`` is (B, H) scratch, ``one`` a 0-dim 1."""
    torch.mul(dc, g, out=da_i).mul_(torch.addcmul(i, i, i, value=-1, out=k))
    torch.mul(dc, c_prev, out=da_f).mul_(torch.addcmul(f, f, f, value=-1, out=k))
    torch.mul(dc, i, out=da_g).mul_(torch.addcmul(one, g, g, value=-1, out=k))
    dc.mul_(f)


class LSTMSequence(torch.autograd.Function):
    """(xp (T, B, 4H), h0, c0 (B, H), w_hh (4H, H), peep (3, H) | None, keep (T, B, 1) | None,
    rmask (B, H) | None) -> (h_1..h_T (T, B, H), h_T, c_T).

    keep: False where a sequence has ended; the state is then held (h_t = h_{t-1}, c_t = c_{t-1}) and
    the output there is that held state. rmask multiplies h_{t-1} inside W_h h_{t-1} only.
    """

    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, peep, keep, rmask):
        T, B, G = xp.shape
        H = G // 4
        acts = workspace.empty_like(xp)  # i, f, g, o after their nonlinearities
        hs, cs = workspace.empty((T + 1, B, H), xp), workspace.empty((T + 1, B, H), xp)
        tanh_c = workspace.empty((T, B, H), xp)
        hs[0], cs[0] = h0, c0
        hrs = None if rmask is None else workspace.empty_like(tanh_c)  # h_{t-1} ⊙ rmask, for ∂L/∂W_h
        u = StepProduct(w_hh, B)
        # every step's views made once, by unbind, rather than sliced anew in Python at every step
        xp_, acts_, hs_ = xp.unbind(0), acts.unbind(0), hs.unbind(0)
        if lstm_steps.applies(xp, peep):  # each step's pointwise work in one compiled call
            steps = lstm_steps.Steps(B, H, acts=acts, hs=hs, cs=cs, tanh_c=tanh_c, peep=peep, keep=keep)
            for t in range(T):
                h = hs_[t] if hrs is None else torch.mul(hs_[t], rmask, out=hrs[t])
                u.addmm(xp_[t], h, out=acts_[t])
                steps.lstm_forward(t)
        else:
            _forward_ops(u, xp_, acts, hs, cs, tanh_c, peep, keep, rmask, hrs)
        ctx.save_for_backward(acts, hs, cs, tanh_c, w_hh, peep, keep, rmask, hrs)
        return hs[1:], hs[T], cs[T]

    @staticmethod
    def backward(ctx, d_out, d_hT, d_cT):
        acts, hs, cs, tanh_c, w_hh, peep, keep, rmask, hrs = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 4
        d_acts = workspace.empty_like(acts)
        dh_rec, dc = d_hT.clone(), d_cT.clone()
        u_t = StepProduct(w_hh.t(), B)
        if lstm_steps.applies(acts, d_out, peep):  # each step's pointwise work in one compiled call
            hold = None if keep is None else torch.empty_like(dc)  # δh of the rows that ended, for the held state
            d_peep = None if peep is None else torch.zeros(B, 3 * H)  # summed over the steps, per row
            steps = lstm_steps.Steps(B, H, acts=acts, hs=hs, cs=cs, tanh_c=tanh_c, peep=peep, keep=keep, d_out=d_out,
                                     dh_rec=dh_rec, dc=dc, d_acts=d_acts, hold_h=hold, d_peep=d_peep,
                                     scratch=torch.empty(B, G))
            lstm_steps.backward_loop(steps.lstm_backward, u_t, d_acts.unbind(0), dh_rec, rmask, hold)
            d_peep = None if peep is None else d_peep.sum(0).view(3, H)
        else:
            d_peep = _backward_ops(u_t, d_out, acts, cs, tanh_c, d_acts, dh_rec, dc, peep, keep, rmask)
        h_prev = hs[:-1] if hrs is None else hrs
        d_w = d_acts.reshape(T * B, G).t() @ h_prev.reshape(T * B, H)
        return d_acts, dh_rec, dc, d_w, None if d_peep is None else d_peep.to(peep.dtype), None, None


def _forward_ops(u, xp_, acts, hs, cs, tanh_c, peep, keep, rmask, hrs) -> None:
    """LSTMSequence's forward loop in torch's ops (other dtypes, GPUs, no compiled steps): fills acts, hs, cs,
    tanh_c (and hrs) step by step."""
    H = hs.shape[-1]
    sig = 4 * H if peep is None else 3 * H  # with peepholes o waits for c_t
    i_, f_, g_, o_ = by_step(acts, 4)
    acts_, sig_ = acts.unbind(0), acts[..., :sig].unbind(0)
    hs_, cs_, tanh_c_ = hs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    if peep is not None:
        if_ = acts.unflatten(2, (4, H))[:, :, :2].unbind(0)  # i and f of each step, (B, 2, H)
        c_col_ = cs.unsqueeze(2).unbind(0)  # c of each step, (B, 1, H)
        p_if, p_o = peep[:2], peep[2]
    for t in range(len(xp_)):
        h, c, c_new = hs_[t], cs_[t], cs_[t + 1]
        if hrs is not None:
            h = torch.mul(h, rmask, out=hrs[t])
        u.addmm(xp_[t], h, out=acts_[t])
        if peep is not None:
            if_[t].addcmul_(c_col_[t], p_if)
        tanh_(g_[t], sig_[t])
        torch.mul(f_[t], c, out=c_new).addcmul_(i_[t], g_[t])
        if peep is not None:
            o_[t].addcmul_(c_new, p_o).sigmoid_()
        torch.mul(o_[t], tanh_(tanh_c_[t], of=c_new), out=hs_[t + 1])
        if keep is not None:
            torch.where(keep[t], hs_[t + 1], hs_[t], out=hs_[t + 1])
            torch.where(keep[t], c_new, c, out=c_new)


def _backward_ops(u_t, d_out, acts, cs, tanh_c, d_acts, dh_rec, dc, peep, keep, rmask) -> Tensor | None:
    """LSTMSequence's backward loop in torch's ops: fills d_acts, leaves δh_0 in dh_rec and δc_0 in dc; returns
    the peephole gradient (3, H) in float32, or None."""
    H = dc.shape[-1]
    dh = torch.empty_like(dh_rec)
    k, one = torch.empty_like(dh), dh.new_ones(())
    i_, f_, g_, o_ = by_step(acts, 4)
    da_i_, da_f_, da_g_, da_o_ = by_step(d_acts, 4)
    d_out_, d_acts_, cs_, tanh_c_ = d_out.unbind(0), d_acts.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    if peep is not None:  # δa ⊙ c summed over the steps here, over the batch after the loop
        d_peep_if, d_peep_o = accumulator_like(acts[0, :, :2 * H]).unflatten(1, (2, H)), accumulator_like(dh)
        d_if_, c_col_ = d_acts.unflatten(2, (4, H))[:, :, :2].unbind(0), cs.unsqueeze(2).unbind(0)
        p_i, p_f, p_o = peep.unbind(0)
    for t in range(len(d_out_) - 1, -1, -1):
        i, f, g, o, tc = i_[t], f_[t], g_[t], o_[t], tanh_c_[t]
        da_i, da_f, da_g, da_o = da_i_[t], da_f_[t], da_g_[t], da_o_[t]
        torch.add(d_out_[t], dh_rec, out=dh)
        if keep is not None:  # an ended sequence passes its gradients straight to the held state
            hold_h, hold_c = dh * ~keep[t], dc * ~keep[t]
            dh.mul_(keep[t])
            dc.mul_(keep[t])
        dc.addcmul_(dh, torch.addcmul(one, tc, tc, value=-1, out=k).mul_(o))  # δh o (1 - tanh² c)
        torch.mul(dh, tc, out=da_o).mul_(torch.addcmul(o, o, o, value=-1, out=k))  # δh tanh c · o (1 - o)
        if peep is not None:
            dc.addcmul_(da_o, p_o)
        cell_backward(dc, i, f, g, cs_[t], da_i, da_f, da_g, k, one)
        if peep is not None:
            d_peep_if.addcmul_(d_if_[t], c_col_[t])
            d_peep_o.addcmul_(da_o, cs_[t + 1])
            dc.addcmul_(da_i, p_i).addcmul_(da_f, p_f)
        u_t.mm(d_acts_[t], out=dh_rec)
        if rmask is not None:
            dh_rec.mul_(rmask)
        if keep is not None:
            dh_rec.add_(hold_h)
            dc.add_(hold_c)
    return None if peep is None else torch.cat([d_peep_if.sum(0), d_peep_o.sum(0, keepdim=True)])


def lstm_sequence(xp: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, peep: Tensor | None = None,
                  mask: Tensor | None = None, recurrent_mask: Tensor | None = None):
    """Run :class:`LSTMSequence`: xp (T, B, 4H), state (h0, c0), mask (T, B) bool or None
    -> (outputs (T, B, H), (h_T, c_T))."""
    keep = None if mask is None else mask.unsqueeze(-1)
    out, h, c = LSTMSequence.apply(xp, state[0], state[1], w_hh, peep, keep, recurrent_mask)
    return out, (h, c)
