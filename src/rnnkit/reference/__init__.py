"""NumPy Elman RNN, LSTM and GRU with hand-written backpropagation through time.

The independent check of the torch code's gradients: lecture 001's char-RNN `lossFun`,
generalised to the three cells, with torch's parameter names and gate order so the same arrays
load into torch.nn.RNNCell / LSTMCell / GRUCell and into rnnkit.cells. Pure NumPy, float64 by
default; nothing here imports torch.

Example:
    >>> import numpy as np
    >>> from rnnkit.reference import init_params, initial_state, lstm_loss
    >>> params = init_params("lstm", vocab_size=5, hidden_size=4, rng=0)
    >>> loss, grads, (h, c) = lstm_loss(params, [0, 1, 2], [1, 2, 3], initial_state("lstm", 4))
    >>> grads["weight_ih"].shape
    (16, 5)
"""

from .common import (
    clip_grads,
    init_params,
    initial_state,
    numerical_gradient,
    one_hot,
    param_shapes,
    sigmoid,
    softmax_cross_entropy,
)
from .elman import elman_loss
from .gru import gru_loss
from .lstm import lstm_loss

__all__ = [
    "clip_grads",
    "elman_loss",
    "gru_loss",
    "init_params",
    "initial_state",
    "lstm_loss",
    "numerical_gradient",
    "one_hot",
    "param_shapes",
    "sigmoid",
    "softmax_cross_entropy",
]
