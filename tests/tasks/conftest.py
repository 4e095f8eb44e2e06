"""Task tests: one intra-op thread for each whole module (the trained runs are module fixtures)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # clikit.py under --import-mode=importlib


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: extra threads only spin on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
