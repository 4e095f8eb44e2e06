"""LSTM char model with hand-written BPTT, optionally with diagonal peepholes.

Forward, for t = 0 .. T-1 (x_t one-hot, gate order i, f, g, o as in torch.nn.LSTMCell: rows
[0:H], [H:2H], [2H:3H], [3H:4H] of weight_ih, weight_hh, bias_ih, bias_hh):

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      (4H,) split into a_i, a_f, a_g, a_o
    i_t = σ(a_i [+ w_ci ⊙ c_{t-1}])                  input ("include") gate
    f_t = σ(a_f [+ w_cf ⊙ c_{t-1}])                  forget gate
    g_t = tanh(a_g)                                  candidate cell
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                  memory cell
    o_t = σ(a_o [+ w_co ⊙ c_t])                      output gate; the peephole sees the NEW cell
    h_t = o_t ⊙ tanh(c_t)
    y_t = W_hy h_t + b_y                             (V,)
    L   = Σ_t -log softmax(y_t)[targets[t]]

The bracketed terms are the peepholes of Gers & Schmidhuber (2000), "Recurrent nets that time
and count", with diagonal weights weight_ci, weight_cf, weight_co of shape (H,).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .common import (
    PEEPHOLES,
    check_params,
    check_sequences,
    check_vector,
    clip_grads,
    one_hot,
    sigmoid,
    softmax_cross_entropy,
)


def lstm_loss(
    params: dict[str, np.ndarray],
    inputs: Sequence[int],
    targets: Sequence[int],
    state: tuple[np.ndarray, np.ndarray],
    clip: float | None = 5.0,
    *,
    peephole: bool = False,
) -> tuple[float, dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loss, gradients and last (h, c) of an LSTM over one sequence.

    Args:
        params: weight_ih (4H, V), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,),
            weight_hy (V, H), bias_y (V,); with peephole=True also weight_ci, weight_cf,
            weight_co (H,). Without peepholes the cell arrays load into torch.nn.LSTMCell.
        inputs: T token ids in [0, V).
        targets: T token ids in [0, V).
        state: (h_{-1}, c_{-1}), each (H,).
        clip: clip every gradient elementwise to [-clip, clip]; None disables clipping.
        peephole: use the diagonal peephole connections (params must then hold them).

    Returns:
        (loss, grads, (h_{T-1}, c_{T-1})), grads with the same keys and shapes as `params`.

    Shape legend: T sequence length, V vocabulary size, H hidden size.
    """
    V, H = check_params("lstm_loss", "lstm", params, peephole=peephole)
    inputs, targets = check_sequences("lstm_loss", inputs, targets, V)
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError(f"lstm_loss: expected state as a pair (h, c), got {type(state).__name__}")
    dtype = params["weight_hh"].dtype
    W_ih, W_hh, b_ih, b_hh = params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"]
    W_hy, b_y = params["weight_hy"], params["bias_y"]
    if peephole:
        w_ci, w_cf, w_co = (params[name] for name in PEEPHOLES)
    else:  # zero peepholes leave every equation equal to the plain LSTM
        w_ci = w_cf = w_co = np.zeros(H, dtype=dtype)
    T = len(inputs)

    xs, hs, cs, tanh_cs, gates, dys = {}, {}, {}, {}, {}, {}
    hs[-1] = check_vector("lstm_loss", "state[0] (h)", state[0], H, dtype)
    cs[-1] = check_vector("lstm_loss", "state[1] (c)", state[1], H, dtype)
    loss = 0.0

    # forward pass
    for t in range(T):
        xs[t] = one_hot(inputs[t], V, dtype)  # (V,)
        a = W_ih @ xs[t] + b_ih + W_hh @ hs[t - 1] + b_hh  # (4H,)
        a_i, a_f, a_g, a_o = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        i = sigmoid(a_i + w_ci * cs[t - 1])
        f = sigmoid(a_f + w_cf * cs[t - 1])
        g = np.tanh(a_g)
        cs[t] = f * cs[t - 1] + i * g
        o = sigmoid(a_o + w_co * cs[t])
        tanh_cs[t] = np.tanh(cs[t])
        hs[t] = o * tanh_cs[t]
        gates[t] = (i, f, g, o)
        y = W_hy @ hs[t] + b_y  # (V,)
        loss_t, dys[t] = softmax_cross_entropy(y, targets[t])
        loss += loss_t

    # backward pass
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    d_peep = {name: np.zeros(H, dtype=dtype) for name in PEEPHOLES}
    dh_next = np.zeros(H, dtype=dtype)  # dL/dh_t through step t+1
    dc_next = np.zeros(H, dtype=dtype)  # dL/dc_t through step t+1
    for t in reversed(range(T)):
        i, f, g, o = gates[t]
        dy = dys[t]
        # y_t = W_hy h_t + b_y
        grads["weight_hy"] += np.outer(dy, hs[t])
        grads["bias_y"] += dy
        # h_t feeds y_t and step t+1
        dh = W_hy.T @ dy + dh_next
        # h_t = o_t ⊙ tanh(c_t)
        do = dh * tanh_cs[t]
        # o_t = σ(a_o + w_co ⊙ c_t)
        da_o = do * o * (1.0 - o)
        d_peep["weight_co"] += da_o * cs[t]
        # c_t feeds h_t (through tanh), o_t (peephole) and step t+1
        dc = dc_next + dh * o * (1.0 - tanh_cs[t] ** 2) + da_o * w_co
        # c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        di, df, dg = dc * g, dc * cs[t - 1], dc * i
        # i_t = σ(a_i + w_ci ⊙ c_{t-1}),  f_t = σ(a_f + w_cf ⊙ c_{t-1}),  g_t = tanh(a_g)
        da_i = di * i * (1.0 - i)
        da_f = df * f * (1.0 - f)
        da_g = dg * (1.0 - g * g)
        d_peep["weight_ci"] += da_i * cs[t - 1]
        d_peep["weight_cf"] += da_f * cs[t - 1]
        # a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        da = np.concatenate([da_i, da_f, da_g, da_o])  # (4H,)
        grads["weight_ih"] += np.outer(da, xs[t])
        grads["weight_hh"] += np.outer(da, hs[t - 1])
        grads["bias_ih"] += da
        grads["bias_hh"] += da
        # into step t-1: h_{t-1} through a_t; c_{t-1} through c_t and the i, f peepholes
        dh_next = W_hh.T @ da
        dc_next = dc * f + da_i * w_ci + da_f * w_cf

    if peephole:
        grads.update(d_peep)
    clip_grads(grads, clip)
    return loss, grads, (hs[T - 1].copy(), cs[T - 1].copy())
