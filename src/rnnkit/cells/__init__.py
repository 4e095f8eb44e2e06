"""Cells: one time step, ``y_t, state = cell(x_t, state)``. See each class for its equations."""
from .elman import ElmanCell
from .gru import GRUCell
from .jordan import JordanCell
from .layer_norm_lstm import LayerNormLSTMCell
from .lstm import LSTMCell
from .min_rnn import MinGRUCell, MinLSTMCell
from .minimal_gru import MinimalGRUCell
from .protocol import Cell

__all__ = ["Cell", "ElmanCell", "GRUCell", "JordanCell", "LayerNormLSTMCell", "LSTMCell", "MinGRUCell", "MinLSTMCell", "MinimalGRUCell"]
