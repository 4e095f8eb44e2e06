"""IDX files: round trips (raw, gzip, every element type) and a clear error for every kind of damage."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.idx import read_idx, read_mnist, write_idx

MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, dtype, compress):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = write_idx(tmp_path / "a.idx", array, compress=compress)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    assert np.array_equal(back, array)


def test_the_header_is_big_endian(tmp_path):
    raw = write_idx(tmp_path / "a", np.array([1, 258], dtype=np.int16)).read_bytes()
    assert raw == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])


def damaged(tmp_path, data: bytes, name="bad-idx1-ubyte") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00\x08", "4-byte magic number"),
    (b"\x01\x00\x08\x01", r"expected magic 00 00 <type in 08, 09, 0b, 0c, 0d, 0e> <ndim>, got 01 00 08 01"),
    (b"\x00\x00\x07\x01", r"got 00 00 07 01"),
    (b"\x00\x00\x08\x00", "at least one dimension"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02", r"truncated header: 2 dimensions need 12 bytes, got 8"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", r"truncated: shape \(5,\) of uint8 needs 5 bytes of data, got 2"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", r"1 unexpected bytes after the 1 bytes of shape \(1,\)"),
])
def test_damage_is_named(tmp_path, data, message):
    path = damaged(tmp_path, data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_and_truncated_gzip(tmp_path):
    good = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc" * 50)
    with pytest.raises(ValueError, match="corrupt gzip data"):
        read_idx(damaged(tmp_path, good[:-12], "cut.gz"))
    flipped = bytearray(good)
    flipped[15] ^= 0xFF
    with pytest.raises(ValueError, match="corrupt gzip data"):
        read_idx(damaged(tmp_path, bytes(flipped), "flipped.gz"))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_idx(tmp_path / "nope")


def mnist_dir(tmp_path, images, labels, compress=True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{'.gz' if compress else ''}", images, compress=compress)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{'.gz' if compress else ''}", labels, compress=compress)
    return tmp_path


@pytest.mark.parametrize("compress", [False, True])
def test_read_mnist_raw_or_gzip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    x, y = read_mnist(mnist_dir(tmp_path, images, labels, compress), "test")
    assert np.array_equal(x, images) and y.tolist() == [7, 0, 9] and y.dtype == np.int64


def test_read_mnist_checks_sizes_counts_and_labels(tmp_path):
    labels = np.array([1, 2], dtype=np.uint8)
    d = mnist_dir(tmp_path / "small", np.zeros((2, 20, 20), np.uint8), labels)
    with pytest.raises(ValueError, match=r"expected images of 28x28 pixels, shape \(N, 28, 28\), got shape \(2, 20, 20\)"):
        read_mnist(d)
    d = mnist_dir(tmp_path / "count", np.zeros((3, 28, 28), np.uint8), labels)
    with pytest.raises(ValueError, match=r"expected 3 labels \(one per image in train-images-idx3-ubyte.gz\), got shape \(2,\)"):
        read_mnist(d)
    d = mnist_dir(tmp_path / "label", np.zeros((2, 28, 28), np.uint8), np.array([1, 12], np.uint8))
    with pytest.raises(ValueError, match="expected digit labels 0-9, got 12 at index 1"):
        read_mnist(d)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected train-images-idx3-ubyte or train-images-idx3-ubyte.gz"):
        read_mnist(tmp_path / "empty")
    with pytest.raises(ValueError, match="split 'train' or 'test', got 'valid'"):
        read_mnist(tmp_path, "valid")


def test_the_shared_mnist_test_set():
    if not MNIST.exists():
        pytest.skip(f"shared data not found: {MNIST.resolve()}")
    images, labels = read_mnist(MNIST, "test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the canonical first test digits
    assert np.bincount(labels).tolist()[:2] == [980, 1135]
