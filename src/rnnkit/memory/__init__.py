"""Memory-augmented and pondering recurrent networks (lecture 003, "Attention and Augmented RNNs").

| class | what | module |
|---|---|---|
| NTM, NTMCell | Neural Turing Machine (Graves et al. 2014): controller, N x M memory, addressed heads | ntm.py |
| ACT, ACTModel | Adaptive Computation Time (Graves 2016) around any rnnkit cell: halting unit, ponder cost | act.py |

``rnnkit.memory.plot`` draws an NTM's weightings and memory, and ACT's ponder steps (imports matplotlib).
"""
from .act import ACT, ACTConfig, ACTModel, Halting, Pondered
from .ntm import NTM, NTMCell, NTMConfig, address, content_weighting, interpolate, read, sharpen, shift, write

__all__ = ["ACT", "ACTConfig", "ACTModel", "Halting", "NTM", "NTMCell", "NTMConfig", "Pondered", "address",
           "content_weighting", "interpolate", "read", "sharpen", "shift", "write"]
