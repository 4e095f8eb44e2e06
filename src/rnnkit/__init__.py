"""rnnkit: the recurrent architectures of the lectures, correct and fast, on PyTorch."""
from . import cells, layers

__version__ = "0.1.0"
__all__ = ["cells", "layers", "__version__"]
