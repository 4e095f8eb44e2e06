"""Evaluation mode for a block of code, the module's own mode restored after."""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside the block; afterwards, even after an error or a generator's early close, the
    module is back in the mode it was in (training or not)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
