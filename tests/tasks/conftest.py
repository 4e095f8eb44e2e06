"""Task tests: one intra-op thread for each whole module (the trained runs are module fixtures)."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: extra threads only spin on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
