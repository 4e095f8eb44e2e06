"""IDX files (LeCun's MNIST format), raw or gzip-compressed, read with every header checked.

Layout (big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 * d       each dimension as a uint32
    the rest    prod(dims) elements, row-major

MNIST: ``train-images-idx3-ubyte`` is uint8 (60000, 28, 28), ``train-labels-idx1-ubyte`` uint8 (60000,),
``t10k-*`` the 10,000 test examples. Whether a file is gzip is decided by its first bytes (1f 8b), not its name.
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_DIMS = 32  # numpy's limit is 64; MNIST needs 3
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzip or raw). Errors name the file and what is wrong: a bad magic
    number, an unknown element type, a truncated header or body, trailing bytes, corrupt gzip data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
        raise ValueError(f"{path}: not an IDX file: expected magic 00 00 <type in "
                         f"{', '.join(f'{t:02x}' for t in DTYPES)}> <ndim>, got {raw[:4].hex(' ')}")
    dtype, ndim = np.dtype(DTYPES[raw[2]]), raw[3]
    if ndim == 0:
        raise ValueError(f"{path}: expected at least one dimension, got 0")
    if ndim > MAX_DIMS:
        raise ValueError(f"{path}: expected at most {MAX_DIMS} dimensions (header byte 3), got {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, got {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize  # Python ints: 4 dimensions of 65536 overflow int64
    body = len(raw) - header
    if body < expected:
        raise ValueError(f"{path}: truncated: shape {dims} of {dtype.name} needs {expected} bytes of data, got {body}")
    if body > expected:
        raise ValueError(f"{path}: {body - expected} unexpected bytes after the {expected} bytes of shape {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_mnist_file(directory, name: str) -> Path:
    """``name`` or ``name.gz`` in directory (the canonical file names)."""
    directory = Path(directory)
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{directory}: expected {name} or {name}.gz (an MNIST directory holds "
                            f"{', '.join(n for pair in MNIST_FILES.values() for n in pair)}, raw or .gz)")


def read_mnist(directory, split: str = "train", *, image_size: tuple[int, int] = (28, 28)):
    """(images uint8 (N, H, W), labels int64 (N,)) of MNIST's "train" or "test" split from its IDX files.
    Images of another size, a label count that differs from the image count, or labels outside 0-9 are
    errors naming the file."""
    if split not in MNIST_FILES:
        raise ValueError(f"read_mnist: expected split 'train' or 'test', got {split!r}")
    images_name, labels_name = MNIST_FILES[split]
    images_path, labels_path = find_mnist_file(directory, images_name), find_mnist_file(directory, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    H, W = image_size
    if images.ndim != 3 or images.shape[1:] != (H, W):
        raise ValueError(f"{images_path}: expected images of {H}x{W} pixels, shape (N, {H}, {W}), got "
                         f"shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 pixels, got {images.dtype}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path}: expected {images.shape[0]} labels (one per image in {images_path.name}), "
                         f"got shape {labels.shape}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 9):
        i = int(np.flatnonzero((labels < 0) | (labels > 9))[0])
        raise ValueError(f"{labels_path}: expected digit labels 0-9, got {int(labels[i])} at index {i}")
    return images, labels.astype(np.int64)


def write_idx(path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write an array as IDX (for tests and tools); gzip-compressed when compress."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise ValueError(f"write_idx: expected one of the IDX element types, got {array.dtype}")
    header = bytes([0, 0, codes[dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.dtype(DTYPES[codes[dtype]])).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path
