"""Normalisation fitted on the training rows only, saved with the run as JSON.

Lecture 003 (Jena):

    mean = float_data[:200000].mean(axis=0); float_data -= mean
    std = float_data[:200000].std(axis=0);   float_data /= std

:class:`Normaliser` is that, for any training range, with min/max scaling as the alternative:

    standard: x' = (x - mean) / std          (std with ddof = 0, as numpy's default)
    minmax:   x' = (x - min) / (max - min)   (the training range maps to [0, 1])

Statistics come from the training rows alone, so nothing about the validation or test rows leaks into
the inputs. A column that is constant over the training rows (std = 0 or max = min) cannot be scaled:
that is an error naming the column, never a silent division by zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("standard", "minmax")


@dataclass
class Normaliser:
    """Per-column ``x' = (x - shift) / scale``; ``shift``/``scale`` are mean/std or min/(max - min).
    ``mean`` is every column's training mean in any case (the training-mean forecast of a baseline)."""

    method: str
    columns: list[str]
    shift: np.ndarray  # (F,)
    scale: np.ndarray  # (F,)
    rows: tuple[int, int]  # the training rows [start, stop) the statistics come from
    mean: np.ndarray  # (F,) training means, original units

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str], rows: tuple[int, int], method: str = "standard",
            source: str = "data") -> "Normaliser":
        """Statistics of ``values[rows[0]:rows[1]]`` (N, F) for every column."""
        if method not in METHODS:
            raise ValueError(f"Normaliser: expected method in {METHODS}, got {method!r}")
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise ValueError(f"Normaliser: expected values (N, {len(columns)}), got {values.shape}")
        start, stop = rows
        if not 0 <= start < stop <= len(values):
            raise ValueError(f"Normaliser: expected training rows within [0, {len(values)}), got [{start}, {stop})")
        train = values[start:stop]
        if method == "standard":
            shift, scale = train.mean(axis=0), train.std(axis=0)
        else:
            shift = train.min(axis=0)
            scale = train.max(axis=0) - shift
        constant = [c for c, s in zip(columns, scale) if not s > 0]
        if constant:
            raise ValueError(f"{source}: column(s) {', '.join(repr(c) for c in constant)} constant over the training "
                             f"rows {start}..{stop - 1} (std = 0, nothing to learn from); leave them out of --features")
        return cls(method, list(columns), shift.astype(np.float64), scale.astype(np.float64), (int(start), int(stop)),
                   train.mean(axis=0).astype(np.float64))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(N, F) -> (N, F) normalised."""
        self._check(values)
        return (values - self.shift) / self.scale

    def inverse(self, values: np.ndarray, column: str | None = None) -> np.ndarray:
        """Back to the original units: every column of (N, F), or one ``column`` of any shape."""
        if column is None:
            self._check(values)
            return values * self.scale + self.shift
        j = self.index(column)
        return np.asarray(values) * self.scale[j] + self.shift[j]

    def index(self, column: str) -> int:
        if column not in self.columns:
            raise ValueError(f"Normaliser: unknown column {column!r}; known: {', '.join(self.columns)}")
        return self.columns.index(column)

    def _check(self, values: np.ndarray) -> None:
        if values.ndim != 2 or values.shape[1] != len(self.columns):
            raise ValueError(f"Normaliser: expected values (N, {len(self.columns)}) for columns "
                             f"{self.columns}, got {values.shape}")

    def to_json(self) -> dict:
        return {"method": self.method, "columns": self.columns, "shift": self.shift.tolist(),
                "scale": self.scale.tolist(), "rows": list(self.rows), "mean": self.mean.tolist()}

    @classmethod
    def from_json(cls, obj: dict) -> "Normaliser":
        try:
            n = cls(obj["method"], list(obj["columns"]), np.asarray(obj["shift"], np.float64),
                    np.asarray(obj["scale"], np.float64), tuple(obj["rows"]), np.asarray(obj["mean"], np.float64))
        except (KeyError, TypeError) as e:
            raise ValueError(f"Normaliser: malformed statistics, missing or bad entry {e}") from None
        shapes = {n.shift.shape, n.scale.shape, n.mean.shape}
        if n.method not in METHODS or shapes != {(len(n.columns),)}:
            raise ValueError(f"Normaliser: malformed statistics for {len(n.columns)} columns "
                             f"(method {n.method!r}, shift {n.shift.shape}, scale {n.scale.shape}, "
                             f"mean {n.mean.shape})")
        return n
