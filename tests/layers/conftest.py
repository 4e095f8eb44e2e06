"""Layer tests: import path for their shared references (layer_refs.py) under --import-mode=importlib,
and one intra-op thread while they run."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """The tensors here are tiny: extra threads only spin, and on a busy machine make each backward
    pass tens of times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
