"""GRU char model with hand-written BPTT, in both the reset-after and reset-before forms.

Forward, for t = 0 .. T-1 (x_t one-hot, gate order r, z, n as in torch.nn.GRUCell: rows [0:H],
[H:2H], [2H:3H] of weight_ih, weight_hh, bias_ih, bias_hh; W_ir is rows [0:H] of W_ih, etc.):

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)                 reset gate (lecture's Γ^r)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)                 update gate (lecture's 1 - Γ^u)
    reset_after=True  (torch, cuDNN):
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    reset_after=False (Cho et al. 2014, the lecture):
        n_t = tanh(W_in x_t + b_in + W_hn (r_t ⊙ h_{t-1}) + b_hn)
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
    y_t = W_hy h_t + b_y                                           (V,)
    L   = Σ_t -log softmax(y_t)[targets[t]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .common import (
    check_params,
    check_sequences,
    check_vector,
    clip_grads,
    one_hot,
    sigmoid,
    softmax_cross_entropy,
)


def gru_loss(
    params: dict[str, np.ndarray],
    inputs: Sequence[int],
    targets: Sequence[int],
    state: np.ndarray,
    clip: float | None = 5.0,
    *,
    reset_after: bool = False,
) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """Loss, gradients and last hidden state of a GRU over one sequence.

    Args:
        params: weight_ih (3H, V), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,),
            weight_hy (V, H), bias_y (V,). With reset_after=True the cell arrays load into
            torch.nn.GRUCell.
        inputs: T token ids in [0, V).
        targets: T token ids in [0, V).
        state: h_{-1}, (H,).
        clip: clip every gradient elementwise to [-clip, clip]; None disables clipping.
        reset_after: apply the reset gate after the recurrent matmul (torch's form) instead of
            before it (the lecture's form).

    Returns:
        (loss, grads, h_{T-1}), grads with the same keys and shapes as `params`.

    Shape legend: T sequence length, V vocabulary size, H hidden size.
    """
    V, H = check_params("gru_loss", "gru", params)
    inputs, targets = check_sequences("gru_loss", inputs, targets, V)
    dtype = params["weight_hh"].dtype
    W_ih, W_hh, b_ih, b_hh = params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"]
    W_hy, b_y = params["weight_hy"], params["bias_y"]
    W_hn = W_hh[2 * H :]  # (H, H) the candidate's recurrent weight
    T = len(inputs)

    xs, hs, gates, hn, dys = {}, {}, {}, {}, {}
    hs[-1] = check_vector("gru_loss", "state", state, H, dtype)
    loss = 0.0

    # forward pass
    for t in range(T):
        xs[t] = one_hot(inputs[t], V, dtype)  # (V,)
        gi = W_ih @ xs[t] + b_ih  # (3H,) input part of every gate
        gh_rz = W_hh[: 2 * H] @ hs[t - 1] + b_hh[: 2 * H]  # (2H,) recurrent part of r and z
        r = sigmoid(gi[:H] + gh_rz[:H])
        z = sigmoid(gi[H : 2 * H] + gh_rz[H:])
        if reset_after:
            hn[t] = W_hn @ hs[t - 1] + b_hh[2 * H :]  # W_hn h_{t-1} + b_hn, kept for backward
            n = np.tanh(gi[2 * H :] + r * hn[t])
        else:
            hn[t] = r * hs[t - 1]  # r ⊙ h_{t-1}, kept for backward
            n = np.tanh(gi[2 * H :] + W_hn @ hn[t] + b_hh[2 * H :])
        hs[t] = (1.0 - z) * n + z * hs[t - 1]
        gates[t] = (r, z, n)
        y = W_hy @ hs[t] + b_y  # (V,)
        loss_t, dys[t] = softmax_cross_entropy(y, targets[t])
        loss += loss_t

    # backward pass
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dh_next = np.zeros(H, dtype=dtype)  # dL/dh_t through step t+1
    for t in reversed(range(T)):
        r, z, n = gates[t]
        h_prev = hs[t - 1]
        dy = dys[t]
        # y_t = W_hy h_t + b_y
        grads["weight_hy"] += np.outer(dy, hs[t])
        grads["bias_y"] += dy
        # h_t feeds y_t and step t+1
        dh = W_hy.T @ dy + dh_next
        # h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        dh_prev = dh * z
        # n_t = tanh(a_n)
        da_n = dn * (1.0 - n * n)
        if reset_after:
            # a_n = W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn)
            dr = da_n * hn[t]
            dhn = da_n * r  # into W_hn h_{t-1} + b_hn
            dh_prev += W_hn.T @ dhn
            grads["weight_hh"][2 * H :] += np.outer(dhn, h_prev)
            grads["bias_hh"][2 * H :] += dhn
        else:
            # a_n = W_in x_t + b_in + W_hn (r_t ⊙ h_{t-1}) + b_hn
            d_rh = W_hn.T @ da_n  # into r_t ⊙ h_{t-1}
            dr = d_rh * h_prev
            dh_prev += d_rh * r
            grads["weight_hh"][2 * H :] += np.outer(da_n, hn[t])
            grads["bias_hh"][2 * H :] += da_n
        # r_t = σ(a_r), z_t = σ(a_z)
        da_r = dr * r * (1.0 - r)
        da_z = dz * z * (1.0 - z)
        # a_r, a_z = W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z}
        da_rz = np.concatenate([da_r, da_z])  # (2H,)
        grads["weight_hh"][: 2 * H] += np.outer(da_rz, h_prev)
        grads["bias_hh"][: 2 * H] += da_rz
        dh_prev += W_hh[: 2 * H].T @ da_rz
        # input side of all three gates: W_ih x_t + b_ih
        da_in = np.concatenate([da_r, da_z, da_n])  # (3H,)
        grads["weight_ih"] += np.outer(da_in, xs[t])
        grads["bias_ih"] += da_in
        dh_next = dh_prev  # into step t-1

    clip_grads(grads, clip)
    return loss, grads, hs[T - 1].copy()
