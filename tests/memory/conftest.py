"""Memory-network tests: one intra-op thread for each module (the tensors are tiny; extra threads only spin)."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
