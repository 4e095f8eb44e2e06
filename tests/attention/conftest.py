"""One intra-op thread while these tests run: the tensors are tiny, extra threads only spin on a busy machine."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
