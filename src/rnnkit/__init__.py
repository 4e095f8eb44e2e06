"""rnnkit: the recurrent architectures of the lectures, correct and fast, on PyTorch.

``rk.cells`` (one time step), ``rk.layers`` (unrolled over padded batches), ``rk.models``,
``rk.train`` (the loop, losses, run directories), ``rk.decode`` (sampling, beam search), ``rk.data``,
``rk.attention`` (Bahdanau, Luong, local, hard), ``rk.memory`` (Neural Turing Machine, Adaptive Computation Time);
``rnnkit.reference`` is the NumPy check of the gradients (import it explicitly).
"""
from . import attention, cells, data, decode, layers, memory, models, train

__version__ = "0.1.0"
__all__ = ["attention", "cells", "data", "decode", "layers", "memory", "models", "train", "__version__"]
