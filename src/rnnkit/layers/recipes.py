r"""Lecture 003's one-to-many and many-to-many mappings as small layer recipes.

Lecture 003 lists five input/output mappings with their Keras snippets; rnnkit's layers already give three
(one-to-one: ``nn.Linear``; many-to-one: a layer's final state; many-to-many with as many outputs as inputs:
a layer's outputs). The other two are here:

* **one-to-many** (Keras ``RepeatVector(T)`` then ``LSTM(..., return_sequences=True)``): a vector
  :math:`v` is fed at every one of T steps, :math:`h_t = f(h_{t-1}, v)`, and every :math:`h_t` is an output.
  :class:`RepeatVector` is the repeat, :class:`RepeatDecoder` the repeat and the recurrent layer together.
* **many-to-many with fewer outputs** (Keras ``LSTM(..., return_sequences=True)`` then
  ``Lambda(lambda x: x[:, -N:, :])``): the last N outputs of each sequence are kept.
  :func:`keep_last` does it per sequence, respecting lengths (the last N *valid* steps, not the last N
  columns of the padded batch), and :class:`KeepLast` wraps a layer with it.

Shape legend: B batch, T time steps, F features, H hidden (output) size, N kept steps.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_float_tensor, check_positive_int


class RepeatVector(nn.Module):
    """Keras's ``RepeatVector(n)``: (B, F) -> (B, n, F), the same vector at every step.

    Example::

        >>> RepeatVector(3)(torch.ones(2, 4)).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, n: int):
        super().__init__()
        self.n = check_positive_int("RepeatVector", "n", n)

    def forward(self, x: Tensor) -> Tensor:
        check_float_tensor("RepeatVector", "input", x)
        if x.dim() != 2:
            raise ValueError(f"RepeatVector: expected input (B, F), got {tuple(x.shape)}")
        return x[:, None, :].expand(x.shape[0], self.n, x.shape[1])  # (B, F) -> (B, n, F), a view

    def extra_repr(self) -> str:
        return f"n={self.n}"


class RepeatDecoder(nn.Module):
    r"""One-to-many: :math:`h_t = f(h_{t-1}, v)` for t = 1..T with the same input :math:`v` at every step.

    Lecture 003's ``RepeatVector(T)`` + ``LSTM(H, return_sequences=True)``. ``layer`` is any rnnkit layer
    (``RNN``, ``Recurrent``, ...) taking (B, T, F) with lengths; ``lengths`` (B,) cut each output sequence
    (the outputs past a sequence's length are 0 and its final state is the one at its last valid step).

    Shape:
        v (B, F) -> outputs (B, T, H), final state (the layer's).

    Example::

        >>> from rnnkit.layers import RNN
        >>> decoder = RepeatDecoder(RNN("lstm", 8, 16), steps=5)
        >>> out, state = decoder(torch.randn(3, 8))
        >>> out.shape
        torch.Size([3, 5, 16])
    """

    def __init__(self, layer: nn.Module, steps: int):
        super().__init__()
        self.layer = layer
        self.steps = check_positive_int("RepeatDecoder", "steps", steps)
        self.repeat = RepeatVector(steps)

    def forward(self, v: Tensor, lengths=None, state=None):
        x = self.repeat(v)  # (B, T, F)
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.shape != (v.shape[0],) or int(lengths.min()) < 1 or int(lengths.max()) > self.steps:
                raise ValueError(f"RepeatDecoder: expected lengths ({v.shape[0]},) in [1, {self.steps}], got "
                                 f"{lengths.tolist()}")
        return self.layer(x.contiguous(), lengths, state)


def keep_last(outputs: Tensor, n: int, lengths=None) -> Tensor:
    """The last ``n`` valid outputs of each sequence: (B, T, H) -> (B, n, H).

    Without lengths this is ``outputs[:, -n:]`` (the Keras ``Lambda``); with lengths (B,), row b keeps steps
    ``lengths[b] - n .. lengths[b] - 1``, so padding is never kept. Every length must be >= n.

    Example::

        >>> y = torch.arange(10.).view(2, 5, 1)
        >>> keep_last(y, 2, lengths=[5, 3]).squeeze(-1)
        tensor([[3., 4.],
                [6., 7.]])
    """
    check_float_tensor("keep_last", "outputs", outputs)
    check_positive_int("keep_last", "n", n)
    if outputs.dim() != 3:
        raise ValueError(f"keep_last: expected outputs (B, T, H), got {tuple(outputs.shape)}")
    B, T, _ = outputs.shape
    if n > T:
        raise ValueError(f"keep_last: expected n <= T = {T} time steps, got n = {n}")
    if lengths is None:
        return outputs[:, T - n:]
    lengths = torch.as_tensor(lengths, dtype=torch.int64).to(outputs.device)
    if lengths.shape != (B,) or int(lengths.min()) < n or int(lengths.max()) > T:
        raise ValueError(f"keep_last: expected lengths ({B},) in [n = {n}, T = {T}], got {lengths.tolist()}")
    index = lengths[:, None] - n + torch.arange(n, device=outputs.device)[None]  # (B, n) time steps kept
    return outputs.gather(1, index[..., None].expand(B, n, outputs.shape[2]))


class KeepLast(nn.Module):
    """Many-to-many with N outputs: a layer's outputs, of which the last ``n`` valid ones per sequence are kept.

    Shape:
        x (B, T, F), lengths (B,) >= n -> outputs (B, n, H), final state (the layer's).

    Example::

        >>> from rnnkit.layers import RNN
        >>> out, _ = KeepLast(RNN("gru", 4, 8), n=2)(torch.randn(3, 6, 4), lengths=[6, 4, 2])
        >>> out.shape
        torch.Size([3, 2, 8])
    """

    def __init__(self, layer: nn.Module, n: int):
        super().__init__()
        self.layer = layer
        self.n = check_positive_int("KeepLast", "n", n)

    def forward(self, x: Tensor, lengths=None, state=None):
        outputs, final = self.layer(x, lengths, state)
        return keep_last(outputs, self.n, lengths), final
