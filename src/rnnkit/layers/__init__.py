"""Layers: unroll cells over padded batches with lengths; stack them, run them both ways, project them."""
from .bidirectional import Bidirectional
from .encoder import ENCODERS, make_encoder
from .projection import OutputProjection
from .recurrent import Recurrent
from .rnn import KINDS, RNN, make_cell
from .stacked import Stacked
from .state import detach_state
from .tcn import TCN

__all__ = ["Bidirectional", "ENCODERS", "KINDS", "OutputProjection", "RNN", "Recurrent", "Stacked", "TCN", "detach_state", "make_cell", "make_encoder"]
