import pytest
import torch


@pytest.fixture
def one_thread():
    """Bit-identical comparisons need the same kernel order: one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
