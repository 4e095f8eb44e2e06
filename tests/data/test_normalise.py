"""Normalisation fitted on the training rows only (lecture 003), min/max, constant columns, JSON round trip."""
import json

import numpy as np
import pytest

from rnnkit.data.normalise import Normaliser


def test_standard_uses_only_the_training_rows_like_the_lecture():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 3)) * [1, 5, 0.1] + [0, 10, -3]
    values[300:] += 1000  # the later rows must not move the statistics
    n = Normaliser.fit(values, ["a", "b", "c"], (0, 300))
    train = values[:300]
    np.testing.assert_allclose(n.shift, train.mean(axis=0))
    np.testing.assert_array_equal(n.mean, n.shift)
    np.testing.assert_allclose(n.scale, train.std(axis=0))  # numpy's default ddof = 0, as the lecture
    out = n.transform(values)
    np.testing.assert_allclose(out[:300].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out[:300].std(axis=0), 1)
    np.testing.assert_allclose(n.inverse(out), values)
    np.testing.assert_allclose(n.inverse(out[:, 1], "b"), values[:, 1])


def test_minmax_maps_the_training_range_to_0_1():
    values = np.array([[1.0, 10], [3, 20], [2, 15], [10, 0]])
    n = Normaliser.fit(values, ["a", "b"], (0, 3), "minmax")
    out = n.transform(values)
    assert out[:3].min(axis=0).tolist() == [0, 0] and out[:3].max(axis=0).tolist() == [1, 1]
    assert out[3].tolist() == [4.5, -1]
    assert n.mean.tolist() == [2, 15]  # the training mean, for the training-mean baseline


def test_constant_training_column_is_an_error_naming_it():
    values = np.array([[1.0, 0], [2, 0], [3, 0], [4, 7]])
    with pytest.raises(ValueError, match=r"s.csv: column\(s\) 'Is' constant over the training rows 0..2 \(std = 0"):
        Normaliser.fit(values, ["a", "Is"], (0, 3), source="s.csv")
    with pytest.raises(ValueError, match="constant"):
        Normaliser.fit(values, ["a", "Is"], (0, 3), "minmax")


def test_json_round_trip_and_bad_input():
    n = Normaliser.fit(np.arange(12.0).reshape(6, 2) ** 2, ["x", "y"], (1, 5))
    again = Normaliser.from_json(json.loads(json.dumps(n.to_json())))
    assert again.columns == n.columns and again.rows == (1, 5)
    np.testing.assert_array_equal(again.shift, n.shift)
    np.testing.assert_array_equal(again.scale, n.scale)
    np.testing.assert_array_equal(again.mean, n.mean)
    with pytest.raises(ValueError, match="missing or bad entry 'scale'"):
        Normaliser.from_json({"method": "standard", "columns": ["x"], "shift": [0], "rows": [0, 1]})
    with pytest.raises(ValueError, match=r"expected values \(N, 2\)"):
        n.transform(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="expected method in"):
        Normaliser.fit(np.zeros((3, 1)), ["x"], (0, 3), "robust")
    with pytest.raises(ValueError, match="unknown column 'z'"):
        n.inverse(np.zeros(3), "z")
