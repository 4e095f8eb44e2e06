r"""Truncated backpropagation through time with two parameters (lecture 002: "forward k1 steps,
backward k2 steps"; Williams & Peng 1990; Sutskever 2013).

Every k1 time steps the parameters are updated; the gradient of the loss on those k1 new steps flows
back through at most k2 steps. k1 = k2 is the usual chunked TBPTT. With k1 < k2 the windows overlap:

    time  0 ........................................ T
    k1=2, k2=4:  update 1: loss on [0,2), graph over [0,2)
                 update 2: loss on [2,4), graph over [0,4)
                 update 3: loss on [4,6), graph over [2,6)   state at 2 detached
                 ...

Each update re-runs the forward pass over its k2-step window from the detached state saved at the
window's start, with the current parameters (so the window's first k2 - k1 steps are computed twice).
This keeps memory at one k2-step graph and makes every update's gradient exact for its window.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Update:
    """One optimizer step: forward over segments [window_start, ..., stop), loss on [start, stop)."""

    window_start: int
    start: int
    stop: int
    cuts: tuple[int, ...]  # segment boundaries inside (window_start, stop), where states are saved


def plan(steps: int, k1: int | None, k2: int | None = None) -> list[Update]:
    """The updates for a batch of `steps` time steps. k1=None: one update over everything (full BPTT)."""
    if k1 is None:
        if k2 is not None:
            raise ValueError(f"tbptt: k2={k2} needs k1 (the number of steps between updates)")
        return [Update(0, 0, steps, ())]
    k2 = k1 if k2 is None else k2
    if k1 < 1 or k2 < k1:
        raise ValueError(f"tbptt: expected 1 <= k1 <= k2, got k1={k1}, k2={k2}")
    starts = list(range(0, steps, k1))
    stops = [min(s + k1, steps) for s in starts]
    window_starts = [max(0, stop - k2) for stop in stops]
    boundaries = sorted(set(starts) | set(window_starts))
    updates = []
    for start, stop, ws in zip(starts, stops, window_starts):
        cuts = tuple(b for b in boundaries if ws < b < stop)
        updates.append(Update(ws, start, stop, cuts))
    return updates
