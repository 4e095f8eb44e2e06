"""Elman RNN char model with hand-written BPTT: lecture 001's `lossFun`, torch's parameter names.

Forward, for t = 0 .. T-1 (x_t is the one-hot vector of inputs[t]):

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh       (H,)
    h_t = tanh(a_t)                                   (H,)
    y_t = W_hy h_t + b_y                              (V,)  unnormalised log-probabilities
    L   = Σ_t -log softmax(y_t)[targets[t]]

The lecture's Wxh, Whh, Why, bh, by are weight_ih, weight_hh, weight_hy, bias_ih (+ bias_hh,
which torch keeps as a second bias), bias_y.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .common import check_params, check_sequences, check_vector, clip_grads, one_hot, softmax_cross_entropy


def elman_loss(
    params: dict[str, np.ndarray],
    inputs: Sequence[int],
    targets: Sequence[int],
    state: np.ndarray,
    clip: float | None = 5.0,
) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """Loss, gradients and last hidden state of an Elman RNN over one sequence.

    Args:
        params: weight_ih (H, V), weight_hh (H, H), bias_ih (H,), bias_hh (H,),
            weight_hy (V, H), bias_y (V,). The same arrays load into torch.nn.RNNCell.
        inputs: T token ids in [0, V).
        targets: T token ids in [0, V), the id to predict at each step.
        state: h_{-1}, the hidden state before the first step, (H,).
        clip: clip every gradient elementwise to [-clip, clip]; None disables clipping.

    Returns:
        (loss, grads, h_{T-1}): the summed cross-entropy, a dict with the same keys and shapes
        as `params`, and the final hidden state (H,).

    Shape legend: T sequence length, V vocabulary size, H hidden size.
    """
    V, H = check_params("elman_loss", "elman", params)
    inputs, targets = check_sequences("elman_loss", inputs, targets, V)
    dtype = params["weight_hh"].dtype
    W_ih, W_hh, b_ih, b_hh = params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"]
    W_hy, b_y = params["weight_hy"], params["bias_y"]
    T = len(inputs)

    xs, hs, dys = {}, {}, {}
    hs[-1] = check_vector("elman_loss", "state", state, H, dtype)
    loss = 0.0

    # forward pass
    for t in range(T):
        xs[t] = one_hot(inputs[t], V, dtype)  # (V,) 1-of-k encoding
        hs[t] = np.tanh(W_ih @ xs[t] + b_ih + W_hh @ hs[t - 1] + b_hh)  # (H,)
        y = W_hy @ hs[t] + b_y  # (V,)
        loss_t, dys[t] = softmax_cross_entropy(y, targets[t])  # dys[t] = p_t - onehot(target)
        loss += loss_t

    # backward pass: gradients going backwards in time
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dh_next = np.zeros(H, dtype=dtype)  # dL/dh_t through h_{t+1}; nothing flows in after T-1
    for t in reversed(range(T)):
        dy = dys[t]
        # y_t = W_hy h_t + b_y
        grads["weight_hy"] += np.outer(dy, hs[t])
        grads["bias_y"] += dy
        # h_t feeds y_t and a_{t+1}: sum both paths
        dh = W_hy.T @ dy + dh_next
        # h_t = tanh(a_t), tanh' = 1 - tanh²
        da = (1.0 - hs[t] * hs[t]) * dh
        # a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        grads["weight_ih"] += np.outer(da, xs[t])
        grads["weight_hh"] += np.outer(da, hs[t - 1])
        grads["bias_ih"] += da
        grads["bias_hh"] += da
        dh_next = W_hh.T @ da  # into h_{t-1}

    clip_grads(grads, clip)  # mitigate exploding gradients, as in the lecture
    return loss, grads, hs[T - 1].copy()
