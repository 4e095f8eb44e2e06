"""Generated memory tasks: the adding problem, copy memory (Bai et al. 2018), lecture 002's noisy 1-2-3
pattern: exact layouts, seeding, fresh batches per epoch, baselines."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data import synthetic
from rnnkit.data.synthetic import (COPY_MARKER, GeneratedBatches, adding_problem, baseline, baseline_loss,
                                   copy_memory, copy_memory_ids, generate, noisy_pattern, seeded_generator)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), T=st.integers(2, 50), seed=st.integers(0, 1000))
def test_adding_problem_layout(n, T, seed):
    x, y = adding_problem(n, T, gen(seed))
    assert x.shape == (n, T, 2) and y.shape == (n, 1) and x.dtype == y.dtype == torch.float32
    numbers, markers = x[..., 0], x[..., 1]
    assert bool(((numbers >= 0) & (numbers < 1)).all())
    assert torch.equal(markers.sum(dim=1), torch.full((n,), 2.0))  # exactly two distinct marked steps
    assert bool(((markers == 0) | (markers == 1)).all())
    torch.testing.assert_close(y[:, 0], (numbers * markers).sum(dim=1))


def test_adding_marks_are_spread_over_the_whole_sequence():
    x, _ = adding_problem(4000, 10, gen())
    counts = x[..., 1].sum(dim=0)  # marks per position: 8000 spread over 10 positions
    assert counts.min() > 650 and counts.max() < 950


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 10), T=st.integers(1, 40), seed=st.integers(0, 1000))
def test_copy_memory_layout_as_bai_et_al(n, T, seed):
    ids, targets = copy_memory_ids(n, T, gen(seed))
    assert ids.shape == targets.shape == (n, T + 20)
    symbols = ids[:, :10]
    assert bool(((symbols >= 1) & (symbols <= 8)).all())
    assert bool((ids[:, 10: 10 + T - 1] == 0).all())  # T - 1 blanks
    assert bool((ids[:, T + 9:] == COPY_MARKER).all())  # 11 markers, the first one the delimiter
    assert bool((targets[:, : T + 10] == 0).all())
    assert torch.equal(targets[:, T + 10:], symbols)  # recall after the delimiter


def test_copy_memory_inputs_are_one_hot():
    x, y = copy_memory(3, 5, gen(1))
    ids, targets = copy_memory_ids(3, 5, gen(1))
    assert x.shape == (3, 25, 10) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x.argmax(dim=2), ids) and torch.equal(x.sum(dim=2), torch.ones(3, 25))
    assert torch.equal(y, targets)


def test_noisy_pattern_is_the_slides_sequence():
    x, y = noisy_pattern(200, 30, gen(2))
    assert x.shape == y.shape == (200, 30, 1)
    assert torch.equal(x[:, 1:], y[:, :-1])  # the target is the next value
    clean = x.floor()
    tenths = torch.round((x - clean) * 10)
    assert set(tenths.unique().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}  # noise 0.0 .. 0.4, the slide's values
    torch.testing.assert_close(x, clean + tenths / 10)
    assert set(clean.unique().tolist()) == {1.0, 2.0, 3.0}
    assert torch.equal((clean[:, 1:] - 1) % 3, clean[:, :-1] % 3)  # 1 -> 2 -> 3 -> 1
    assert set(clean[:, 0, 0].tolist()) == {1.0, 2.0, 3.0}  # random phase: the input is needed


def test_baselines():
    assert baseline("adding", 600) == ("predict 1", 1 / 6)
    name, loss = baseline("copy", 1000)
    assert "uniform guess" in name and loss == pytest.approx(10 * math.log(8) / 1020) and round(loss, 4) == 0.0204
    assert baseline("pattern", 30)[1] == pytest.approx(2 / 3 + 0.02)
    x, y = generate("adding", 20000, 50, seed=0)
    assert baseline_loss("adding", x, y) == pytest.approx(1 / 6, rel=0.03)
    x, y = generate("pattern", 5000, 30, seed=0)
    assert baseline_loss("pattern", x, y) == pytest.approx(2 / 3 + 0.02, rel=0.03)
    x, y = generate("copy", 10, 30, seed=0)
    assert baseline_loss("copy", x, y) == pytest.approx(10 * math.log(8) / 50)
    with pytest.raises(ValueError, match="expected copy-memory targets"):
        baseline_loss("copy", x, torch.ones_like(y))


def test_seeded_sets_repeat_and_streams_differ():
    a = generate("copy", 8, 20, seed=3)
    b = generate("copy", 8, 20, seed=3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = generate("copy", 8, 20, seed=3, stream=synthetic.VALID)
    assert not torch.equal(a[1], c[1])
    assert not torch.equal(generate("adding", 4, 9, seed=4)[0], generate("adding", 4, 9, seed=5)[0])


def test_generated_batches_are_fresh_per_epoch_and_replayable():
    source = GeneratedBatches("adding", 12, 4, 3, seed=7)
    assert len(source) == 3
    epoch0 = list(source.batches(0))
    assert len(epoch0) == 3 and epoch0[0].x.shape == (4, 12, 2) and epoch0[0].y.shape == (4, 1)
    again = list(source.batches(0))
    assert all(torch.equal(a.x, b.x) and torch.equal(a.y, b.y) for a, b in zip(epoch0, again))
    epoch1 = list(source.batches(1))
    assert not torch.equal(epoch0[0].x, epoch1[0].x)
    assert not torch.equal(epoch0[0].x, epoch0[1].x)
    # never the test set
    test_x, _ = generate("adding", 4, 12, seed=7)
    assert not torch.equal(test_x, epoch0[0].x)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"adding_problem: expected length >= 2 \(two marked steps\), got 1"):
        adding_problem(3, 1, gen())
    with pytest.raises(ValueError, match="copy_memory: expected blank_length >= 1, got 0"):
        copy_memory(3, 0, gen())
    with pytest.raises(TypeError, match="noisy_pattern: expected n to be an int, got float 2.5"):
        noisy_pattern(2.5, 4, gen())
    with pytest.raises(ValueError, match=r"expected task in \('adding', 'copy', 'pattern'\), got 'add'"):
        generate("add", 3, 4, seed=0)
    with pytest.raises(ValueError, match="expected a seed >= 0, got -1"):
        seeded_generator(-1, 0)
    with pytest.raises(ValueError, match="GeneratedBatches: expected batches_per_epoch >= 1, got 0"):
        GeneratedBatches("copy", 5, 4, 0)
