"""Training tests: import path for their shared tiny models (tiny.py) under --import-mode=importlib,
and one intra-op thread while they run."""
import sys
from pathlib import Path

import pytest
import torch

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are tiny: extra threads only spin on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
