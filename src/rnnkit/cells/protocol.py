"""What a cell is: any module with these two methods. Documentation only; no base class needed."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

State = Any  # a Tensor or a tuple of Tensors, each (B, size)


@runtime_checkable
class Cell(Protocol):
    """One time step: ``y_t, state_t = cell(x_t, state_{t-1})``; ``cell.initial_state(B)`` makes zeros.

    rnnkit's own cells also offer ``project_input(x)`` (the input product for all time steps in one
    GEMM) and ``step(xp_t, state, recurrent_mask)``; layers use them when present and fall back to
    calling the cell otherwise, so a user's cell needs only the two methods below.

    A cell may also offer a whole-sequence path, ``sequence(xs, state, mask=None, recurrent_mask=None)``
    with xs (T, B, F) time-major, mask (T, B) bool or None (False past a sequence's length: the state is
    held there) and recurrent_mask (B, R) or None, returning (outputs (T, B, O), final state) — or None to
    let the layer run its per-step loop for these arguments. ``Recurrent`` tries it first.
    """

    input_size: int
    output_size: int

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]: ...

    def initial_state(self, batch_size: int) -> State: ...
