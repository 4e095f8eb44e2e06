"""Recurrent: unroll one cell over a padded batch of sequences with per-sequence lengths."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_dtype_matches, check_probability, check_sequences
from . import fused as kernels
from .dropout import variational_mask
from .lengths import check_lengths, reverse_within_lengths, run_packed, time_mask
from .state import check_state_like, map_state


def check_fused_flag(owner: str, fused) -> None:
    if not (fused == "auto" or fused is True or fused is False):
        raise ValueError(f"{owner}: expected fused to be 'auto', True or False, got {fused!r}")


class Recurrent(nn.Module):
    r"""Unrolls any cell over a padded batch: ``outputs, final_state = layer(x, lengths, state)``.

    For t = 1..T: :math:`y_t, s_t = \mathrm{cell}(x_t, s_{t-1})`. With ``lengths``, sequence b stops at
    step ``lengths[b]``: its outputs after that are zero and its final state is :math:`s_{lengths[b]}`,
    the state at its last valid step (padding values never reach the cell).

    Two paths compute the same numbers (tested to 1e-10 in float64):

    * **fused** — for ``ElmanCell`` (tanh/relu), ``LSTMCell`` without peepholes and
      ``GRUCell(reset_after=True)`` the layer calls torch's own kernel (oneDNN / cuDNN) on the cell's
      parameters, with packed sequences for lengths;
    * **explicit** — any other cell: the input products of all steps in one GEMM
      (``cell.project_input``), then a loop of ``cell.step``; cells that only have
      ``forward(x_t, state)`` work too.

    ``fused="auto"`` picks the kernel when it applies; ``True`` demands it (error otherwise); ``False``
    forces the explicit loop. **Recurrent dropout needs the explicit path**: the kernels cannot drop
    :math:`h_{t-1}` inside the recurrence, so in training with ``recurrent_dropout > 0`` the layer
    runs the loop and warns once; in evaluation it uses the kernel again.

    Args:
        cell: a cell (see :class:`rnnkit.cells.Cell`).
        batch_first: inputs and outputs are (B, T, ·) (default) or (T, B, ·).
        reverse: read each sequence backwards within its own length (outputs are put back in input
            order); the backward half of :class:`Bidirectional`, and lecture 003's reversed-order run.
        input_dropout: Keras ``dropout``: drop input features with one mask per sequence held over time.
        recurrent_dropout: Keras ``recurrent_dropout`` (Gal & Ghahramani 2016): drop :math:`h_{t-1}` inside
            the recurrent products, one mask per sequence held over time.
        fused: ``"auto"``, ``True`` or ``False`` (see above).

    Shape:
        x: (B, T, F), or a ``PackedSequence`` (then the outputs are packed too); lengths: (B,) integers
        in [1, T] on any device; state: the cell's state for batch B (default zeros).
        Returns outputs (B, T, O) and the final state. B batch, T time, F features, O cell output size.

    Example::

        >>> layer = Recurrent(LSTMCell(8, 16))
        >>> out, (h, c) = layer(torch.randn(4, 10, 8), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 16]), torch.Size([4, 16]))
    """

    def __init__(self, cell: nn.Module, *, batch_first: bool = True, reverse: bool = False,
                 input_dropout: float = 0.0, recurrent_dropout: float = 0.0, fused="auto"):
        super().__init__()
        for attr in ("initial_state", "input_size", "output_size"):
            if not hasattr(cell, attr):
                raise TypeError(f"Recurrent: expected a cell with forward(x, state), initial_state(batch_size), "
                                f"input_size and output_size; {type(cell).__name__} has no {attr}")
        check_fused_flag("Recurrent", fused)
        self.cell = cell
        self.batch_first, self.reverse, self.fused = batch_first, reverse, fused
        self.input_dropout = check_probability("Recurrent", "input_dropout", input_dropout)
        self.recurrent_dropout = check_probability("Recurrent", "recurrent_dropout", recurrent_dropout)
        self.kernel = kernels.kernel_mode(cell)
        self._warned = False
        if fused is True and self.kernel is None:
            raise ValueError(f"Recurrent: fused=True needs a cell torch has a kernel for (ElmanCell tanh/relu, "
                             f"LSTMCell without peepholes, GRUCell(reset_after=True)), got {cell}")
        if fused is True and recurrent_dropout > 0:
            raise ValueError("Recurrent: recurrent_dropout needs the explicit path, got fused=True; "
                             "use fused='auto' or False")
        if recurrent_dropout > 0 and hasattr(cell, "step") and not hasattr(cell, "weight_hh"):
            raise ValueError(f"Recurrent: recurrent_dropout drops h_(t-1) inside the recurrent products, and "
                             f"{type(cell).__name__} has none (its gates read only x_t); expected recurrent_dropout=0, "
                             f"got {recurrent_dropout}")
        if recurrent_dropout > 0 and not (hasattr(cell, "step") and hasattr(cell, "project_input")):
            raise TypeError(f"Recurrent: recurrent_dropout needs a cell with project_input(x) and "
                            f"step(xp, state, recurrent_mask); {type(cell).__name__} lacks them")

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def initial_state(self, batch_size: int, **kwargs):
        return self.cell.initial_state(batch_size, **kwargs)

    def uses_kernel(self) -> bool:
        """Whether the next forward call runs torch's fused kernel."""
        if self.kernel is None or self.fused is False:
            return False
        if self.training and self.recurrent_dropout > 0:
            if not self._warned:
                warnings.warn("Recurrent: recurrent_dropout runs the explicit loop, not torch's fused kernel, "
                              "in training", stacklevel=3)
                self._warned = True
            return False
        return True

    def forward(self, x, lengths=None, state=None):
        if isinstance(x, PackedSequence):
            return run_packed(self, x, state)
        B, T = check_sequences("Recurrent", x, self.input_size, self.batch_first)
        check_dtype_matches("Recurrent", x, self.cell.weight_ih if hasattr(self.cell, "weight_ih") else x)
        lengths = check_lengths("Recurrent", lengths, B, T)
        template = self.cell.initial_state(B, device=x.device, dtype=x.dtype)
        state = template if state is None else check_state_like("Recurrent", state, template)
        if self.training and self.input_dropout > 0:
            x = x * variational_mask(B, self.input_size, self.input_dropout, x).unsqueeze(1 if self.batch_first else 0)
        if self.uses_kernel():
            return self._run_kernel(x, lengths, state)
        xs = x.transpose(0, 1) if self.batch_first else x  # (T, B, F)
        out, state = self._run_loop(xs, lengths, state)
        return (out.transpose(0, 1) if self.batch_first else out), state

    def _run_kernel(self, x: Tensor, lengths, state):
        time_dim = 1 if self.batch_first else 0
        if self.reverse:
            x = reverse_within_lengths(x, lengths, time_dim)
        hx = kernels.to_kernel_state(self.kernel, [state])
        out, hn = kernels.run(self.kernel, x, lengths, hx, [self.cell], num_layers=1, bidirectional=False,
                              dropout=0.0, training=self.training, batch_first=self.batch_first)
        if self.reverse:
            out = reverse_within_lengths(out, lengths, time_dim)
        return out, kernels.from_kernel_state(self.kernel, hn)[0]

    def _run_loop(self, xs: Tensor, lengths, state):
        """The explicit path on a time-major batch xs (T, B, F)."""
        T, B = xs.shape[:2]
        cell = self.cell
        mask = None if lengths is None else time_mask(lengths, T, xs.device)  # (T, B)
        if mask is not None:
            xs = xs.masked_fill(~mask[..., None], 0.0)  # padding never reaches the cell, nor its gradients
        if self.reverse:
            xs = reverse_within_lengths(xs, lengths)
        rmask = None
        if self.training and self.recurrent_dropout > 0:
            rmask = variational_mask(B, cell.weight_hh.shape[1], self.recurrent_dropout, xs)
        whole = None if self.fused is False else getattr(cell, "sequence", None)  # see rnnkit.cells.Cell
        result = None if whole is None else whole(xs, state, mask=mask, recurrent_mask=rmask)
        if result is None:
            if hasattr(cell, "project_input") and hasattr(cell, "step"):
                inputs = cell.project_input(xs).unbind(0)  # one GEMM for all T; unbind, not xp[t] (cheap backward)

                def step(x_t, s):
                    return cell.step(x_t, s, rmask)
            else:
                inputs, step = xs.unbind(0), cell
            result = _unroll(step, inputs, state, mask)
        out, state = result
        if mask is not None:
            out = out.masked_fill(~mask[..., None], 0.0)
        if self.reverse:
            out = reverse_within_lengths(out, lengths)
        return out, state

    def extra_repr(self) -> str:
        extras = [f"batch_first={self.batch_first}", f"fused={self.fused!r}"]
        if self.reverse:
            extras.append("reverse=True")
        if self.input_dropout:
            extras.append(f"input_dropout={self.input_dropout}")
        if self.recurrent_dropout:
            extras.append(f"recurrent_dropout={self.recurrent_dropout}")
        return ", ".join(extras)


def _unroll(step, inputs, state, mask):
    """The per-step loop: inputs T tensors (B, ·) -> (outputs (T, B, O), final state)."""
    ys = []
    for t, x_t in enumerate(inputs):
        y, new = step(x_t, state)
        if mask is not None:
            m = mask[t, :, None]  # (B, 1): finished sequences keep their last valid state
            new = map_state(lambda n, o: torch.where(m, n, o), new, state)
        state = new
        ys.append(y)
    return torch.stack(ys), state  # (T, B, O)
