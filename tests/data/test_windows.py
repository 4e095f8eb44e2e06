"""Lecture 003's generator, vectorised: the same batches as the lecture's Python loop, exactly; the Dataset,
its batches and lecture 000's per-step targets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.windows import WindowBatches, WindowDataset, generator


def lecture_generator(data, lookback, delay, min_index, max_index, shuffle=False, batch_size=128, step=6):
    """Lecture 003's generator, copied from the slide (Chollet, Deep Learning with Python, 6.3)."""
    if max_index is None:
        max_index = len(data) - delay - 1
    i = min_index + lookback
    while 1:
        if shuffle:
            rows = np.random.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = np.zeros((len(rows), lookback // step, data.shape[-1]))
        targets = np.zeros((len(rows),))
        for j, row in enumerate(rows):
            indices = range(rows[j] - lookback, rows[j], step)
            samples[j] = data[indices]
            targets[j] = data[rows[j] + delay][1]
        yield samples, targets


def take(gen, n):
    return [next(gen) for _ in range(n)]


def assert_same_batches(expected, got):
    assert len(expected) == len(got)
    for (xs, ys), (xg, yg) in zip(expected, got):
        assert xs.shape == xg.shape and xs.dtype == xg.dtype
        assert np.array_equal(xs, xg) and np.array_equal(ys, yg)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)


@pytest.mark.parametrize("lookback, step, delay, min_index, max_index, batch_size", [
    (24, 6, 12, 0, 300, 32),          # several batches, then the wrap back to the start
    (30, 1, 0, 100, 400, 50),         # delay 0, step 1
    (12, 3, 5, 0, None, 64),          # max_index None: len(data) - delay - 1
    (20, 4, 7, 50, 90, 64),           # fewer rows than one batch: a short batch each time
    (10, 5, 3, 0, 200, 190),          # the wrap when i + batch_size reaches max_index exactly
])
def test_sequential_batches_equal_the_lectures_loop(data, lookback, step, delay, min_index, max_index, batch_size):
    args = (data, lookback, delay, min_index, max_index, False, batch_size, step)
    assert_same_batches(take(lecture_generator(*args), 12), take(generator(*args), 12))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_shuffled_batches_equal_the_lectures_loop_with_the_same_global_seed(data, seed):
    args = (data, 48, 24, 10, 500, True, 16, 6)
    np.random.seed(seed)
    expected = take(lecture_generator(*args), 6)
    np.random.seed(seed)
    got = take(generator(*args), 6)
    assert_same_batches(expected, got)


def test_the_lectures_jena_parameters_on_ten_minute_data():
    """lookback 720 (5 days of 10-minute rows), step 6 (one per hour), delay 144 (24 h ahead)."""
    frame = np.random.default_rng(1).normal(size=(3000, 14))
    args = (frame, 720, 144, 0, 2000, True, 128, 6)
    np.random.seed(3)
    expected = take(lecture_generator(*args), 3)
    np.random.seed(3)
    got = take(generator(*args), 3)
    assert_same_batches(expected, got)
    assert got[0][0].shape == (128, 120, 14)
    ds = WindowDataset(frame, 720, 144, 0, 2000, step=6, target_index=1)
    x, y = ds[0]
    assert x.shape == (120, 14) and len(ds) == 2000 - 720
    assert torch.equal(x, torch.as_tensor(frame[0:720:6], dtype=torch.float32))
    assert y == torch.tensor(frame[720 + 144, 1], dtype=torch.float32)


def test_generator_uses_the_given_random_state(data):
    a = next(generator(data, 20, 5, 0, 300, True, 8, 2, rng=np.random.RandomState(5)))
    b = next(generator(data, 20, 5, 0, 300, True, 8, 2, rng=np.random.RandomState(5)))
    assert np.array_equal(a[0], b[0])


def test_generator_rejects_a_range_without_room_for_a_window(data):
    with pytest.raises(ValueError, match="expected max_index > min_index \\+ lookback = 120, got 110"):
        next(generator(data, 100, 5, 20, 110))


def test_dataset_gather_equals_items_and_the_sequential_generator(data):
    ds = WindowDataset(data, 24, 12, 0, 300, step=6, target_index=1)
    index = torch.arange(0, 32)
    x, y = ds.gather(index)
    for i in (0, 5, 31):
        xi, yi = ds[i]
        assert torch.equal(x[i], xi) and torch.equal(y[i], yi)
    samples, targets = next(generator(data, 24, 12, 0, 300, False, 32, 6))
    assert np.array_equal(x.numpy(), samples.astype(np.float32))
    assert np.array_equal(y.numpy(), targets.astype(np.float32))


def test_sequence_targets_are_the_inputs_shifted_to_the_same_horizon(data):
    ds = WindowDataset(data, 20, 3, 0, 500, step=1, target_index=2)
    index = torch.tensor([0, 7, 100])
    x, y = ds.gather(index)
    seq = ds.sequence_targets(index)  # (B, T)
    assert seq.shape == (3, 20)
    assert torch.equal(seq[:, -1], y)
    rows = ds.rows[index]
    for b, r in enumerate(rows.tolist()):  # position t holds row r - 20 + t; its target is delay + 1 rows later
        assert torch.equal(seq[b], torch.as_tensor(data[r - 20 + 4: r + 4, 2]))


def test_for_range_keeps_targets_inside_the_split_and_names_a_too_short_one(data):
    ds = WindowDataset.for_range(data, (100, 300), 24, 12, 6, target_index=0)
    assert int(ds.rows[0]) - 24 == 100 and int(ds.rows[-1]) + 12 == 299
    with pytest.raises(ValueError, match=r"the valid split has 30 rows \(100..129\), too few for lookback 24 \+ "
                                         r"delay 12: one window needs 37 rows"):
        WindowDataset.for_range(data, (100, 130), 24, 12, 6, target_index=0, name="valid")


def test_dataset_bad_arguments(data):
    with pytest.raises(ValueError, match="past the last row 599"):
        WindowDataset(data, 10, 5, 0, 599)
    with pytest.raises(ValueError, match="expected target_index < 5"):
        WindowDataset(data, 10, 5, 0, 100, target_index=5)
    with pytest.raises(ValueError, match="expected lookback >= 1, got 0"):
        WindowDataset(data, 0, 5, 0, 100)
    with pytest.raises(ValueError, match="expected delay >= 0, got -1"):
        WindowDataset(data, 10, -1, 0, 100)
    with pytest.raises(ValueError, match="no window fits"):
        WindowDataset(data, 10, 5, 50, 60)
    with pytest.raises(ValueError, match=r"expected data \(N, F\)"):
        WindowDataset(data[:, 0], 10, 5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(40, 200), features=st.integers(1, 4), lookback=st.integers(1, 30), step=st.integers(1, 7),
       delay=st.integers(0, 9))
def test_window_shapes_and_ranges(n, features, lookback, step, delay):
    data = np.arange(n * features, dtype=np.float32).reshape(n, features)
    if n - delay <= lookback:
        return
    ds = WindowDataset.for_range(data, (0, n), lookback, delay, step, target_index=features - 1)
    x, y = ds.gather(torch.arange(len(ds)))
    assert x.shape == (n - delay - lookback, len(range(0, lookback, step)), features)
    assert len(ds) == n - lookback - delay
    first_rows = x[:, 0, 0] / features  # data[i, 0] == i * features
    assert first_rows.min() == 0 and (first_rows + lookback).max() == ds.rows.max()
    assert torch.equal(y, torch.as_tensor(data[ds.rows.numpy() + delay, features - 1]))
    for i, r in enumerate(ds.rows.tolist()):  # every window, gathered from the phase-major copy, is the slice
        assert torch.equal(x[i], torch.as_tensor(data[r - lookback:r:step]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(60, 300), per_step=st.integers(1, 8), step=st.integers(1, 7), delay=st.integers(0, 9),
       batch_size=st.integers(1, 40), shuffle=st.booleans(), seed=st.integers(0, 99))
def test_generator_equals_the_lectures_loop_for_any_step(n, per_step, step, delay, batch_size, shuffle, seed):
    lookback = per_step * step  # the lecture's loop allocates lookback // step rows, so it needs a multiple
    if n - delay - 1 <= lookback:
        return
    data = np.random.default_rng(seed).normal(size=(n, 3))
    args = (data, lookback, delay, 0, None, shuffle, batch_size, step)
    np.random.seed(seed)
    expected = take(lecture_generator(*args), 4)
    np.random.seed(seed)
    assert_same_batches(expected, take(generator(*args), 4))


def test_batches_visit_every_window_once_per_epoch_in_a_seeded_order(data):
    ds = WindowDataset(data, 12, 3, 0, 200, step=1, target_index=0)
    source = WindowBatches(ds, 50, seed=3)
    first = [b.y for b in source.batches(0)]
    assert len(first) == len(source) == -(-len(ds) // 50)
    assert sorted(torch.cat(first).tolist()) == sorted(ds.gather(torch.arange(len(ds)))[1].tolist())
    again = [b.y for b in WindowBatches(ds, 50, seed=3).batches(0)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(torch.cat(first), torch.cat([b.y for b in source.batches(1)]))
    ordered = WindowBatches(ds, 50, shuffle=False, sequence=True)
    batch = next(ordered.batches(0))
    assert batch.x.shape == (50, 12, 5) and batch.y.shape == (50, 12)
