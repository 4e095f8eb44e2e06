"""The whole suite runs on one intra-op thread: its tensors are tiny, and extra OpenMP threads only spin
(on a busy 2-core machine they make a backward pass tens of times slower). Set once per test module, so
module-scoped fixtures that train a small run get it too. Also puts this folder on the import path, for
the CLI helpers every test can use (clikit.py) under --import-mode=importlib."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
