"""scikit-learn's bundled 8x8 handwritten digits: sequential MNIST's offline stand-in.

``sklearn.datasets.load_digits`` ships 1,797 images of 8x8 pixels (values 0-16, UCI's optical
recognition of handwritten digits test set) inside the package, so it needs no download. Read as a
sequence they are 8 rows of 8 (row mode) or 64 pixels (pixel modes), a small version of MNIST's 28x28.
"""
from __future__ import annotations

import numpy as np

DIGITS_MAX = 16  # pixel values are 0..16


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (1797, 8, 8) scaled to [0, 1], labels int64 (1797,))."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32) / DIGITS_MAX
    return images, bunch.target.astype(np.int64)
