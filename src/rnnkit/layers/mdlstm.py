r"""Multi-dimensional LSTM over images (Graves, Fernández & Schmidhuber 2007; lecture 004's "MDLSTM").

A. Graves, S. Fernández, J. Schmidhuber, "Multi-Dimensional Recurrent Neural Networks", ICANN 2007
(arXiv:0705.2011), section 3; the lecture's figure is from Stollenga et al. 2015 (arXiv:1506.07452).

**The 2D cell.** Position :math:`(i, j)` of an image reads its input :math:`x_{ij}` and the states of
*two* earlier neighbours, the one above, :math:`(h^{\uparrow}, c^{\uparrow}) = (h_{i-1,j}, c_{i-1,j})`,
and the one to the left, :math:`(h^{\leftarrow}, c^{\leftarrow}) = (h_{i,j-1}, c_{i,j-1})` (zeros outside
the image). It has one forget gate per neighbour:

.. math::
    z &= W x_{ij} + U^{\uparrow} h^{\uparrow} + U^{\leftarrow} h^{\leftarrow} + b
         \quad\text{split into}\quad (z_i, z_{f\uparrow}, z_{f\leftarrow}, z_g, z_o) \\
    i &= \sigma(z_i),\quad f^{\uparrow} = \sigma(z_{f\uparrow}),\quad f^{\leftarrow} = \sigma(z_{f\leftarrow}),
         \quad g = \tanh(z_g),\quad o = \sigma(z_o) \\
    c_{ij} &= i \odot g + f^{\uparrow} \odot c^{\uparrow} + f^{\leftarrow} \odot c^{\leftarrow} \\
    h_{ij} &= o \odot \tanh(c_{ij})

Parameters, in torch's naming: ``weight_ih`` :math:`W` (5H, F), ``weight_hh`` :math:`[U^{\uparrow}\;
U^{\leftarrow}]` (5H, 2H: the first H columns read the upper neighbour, the next H the left one),
``bias_ih`` and ``bias_hh`` (5H,) each; gate order i, f↑, f←, g, o (torch's LSTM order with the forget
gate doubled).

**Four directions.** One scan starts at the top-left corner; the other three start at the other corners.
Scanning from a corner is the top-left scan of the image flipped so that corner comes first (flip the
columns: top-right; the rows: bottom-left; both: bottom-right), with the outputs flipped back, so every
position ends up with context from the whole image. Each direction has its own cell. The outputs are
concatenated (B, H, W, D*hidden) or summed (B, H, W, hidden) (``merge``).

**The diagonal wavefront.** :math:`(i, j)` depends only on positions of the anti-diagonal
:math:`i + j = k - 1`, so all the positions of diagonal :math:`k` are computed at once: H + W − 1 batched
steps instead of H·W per-pixel ones (Stollenga et al. 2015's observation, turned 45°). The four directions
run in the same steps, one batched matrix product per step for all of them (``torch.baddbmm`` over the
direction axis). Diagonal k covers rows :math:`i \in [\max(0, k-W+1), \min(H-1, k)]`; its upper and left
neighbours are two contiguous slices of diagonal k − 1 padded with one zero state at each end.

Shape legend: B batch, H × W image (rows × columns), F input features per position, D directions (1, 2 or
4; see DIRECTIONS), Hd hidden units per direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_positive_int

# which axes to flip for each scan's starting corner (rows = axis 1, columns = axis 2 of (B, H, W, F))
CORNERS = {"top-left": (), "top-right": (2,), "bottom-left": (1,), "bottom-right": (1, 2)}
DIRECTIONS = {1: ("top-left",), 2: ("top-left", "bottom-right"), 4: tuple(CORNERS)}
MERGES = ("concat", "sum")
GATES = 5  # i, f_up, f_left, g, o


@dataclass
class MDLSTMConfig:
    input_size: int
    hidden_size: int
    directions: int = 4  # 1: top-left only; 2: top-left and bottom-right; 4: all four corners
    merge: str = "concat"  # how the directions' outputs combine: concat (D*Hd) or sum (Hd)

    def __post_init__(self):
        check_positive_int("MDLSTMConfig", "input_size", self.input_size)
        check_positive_int("MDLSTMConfig", "hidden_size", self.hidden_size)
        if self.directions not in DIRECTIONS:
            raise ValueError(f"MDLSTMConfig: expected directions in {sorted(DIRECTIONS)}, got {self.directions!r}")
        if self.merge not in MERGES:
            raise ValueError(f"MDLSTMConfig: expected merge in {MERGES}, got {self.merge!r}")


class MDLSTMCell(nn.Module):
    r"""One position of a 2D LSTM: ``h, (h, c) = cell(x, (h_up, c_up, h_left, c_left))``.

    Equations in the module docstring. Shape: x (B, F); every state tensor (B, H); returns h (B, H) and
    (h, c). ``initial_state(B)`` gives the zero states of a neighbour outside the image.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = check_positive_int("MDLSTMCell", "input_size", input_size)
        self.hidden_size = H = check_positive_int("MDLSTMCell", "hidden_size", hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(GATES * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(GATES * H, 2 * H))  # [U_up  U_left]
        self.bias_ih = nn.Parameter(torch.empty(GATES * H))
        self.bias_hh = nn.Parameter(torch.empty(GATES * H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = self.hidden_size ** -0.5  # torch.nn.LSTMCell's U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> tuple[Tensor, ...]:
        p = self.weight_ih
        z = torch.zeros(batch_size, self.hidden_size, dtype=dtype or p.dtype, device=device or p.device)
        return (z, z, z, z)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor, Tensor, Tensor] | None = None):
        if x.dim() != 2 or x.shape[1] != self.input_size or not x.is_floating_point():
            raise ValueError(f"MDLSTMCell: expected input (B, {self.input_size}) floats, got {x.dtype} "
                             f"{tuple(x.shape)}")
        B, H = x.shape[0], self.hidden_size
        if state is None:
            state = self.initial_state(B, dtype=x.dtype, device=x.device)
        if len(state) != 4 or any(tuple(s.shape) != (B, H) for s in state):
            raise ValueError(f"MDLSTMCell: expected state (h_up, c_up, h_left, c_left), each ({B}, {H}), got "
                             f"{[tuple(s.shape) for s in state]}")
        h_up, c_up, h_left, c_left = state
        z = x @ self.weight_ih.T + torch.cat([h_up, h_left], 1) @ self.weight_hh.T + self.bias_ih + self.bias_hh
        c, h = _cell_update(z, c_up, c_left)
        return h, (h, c)


def _cell_update(z: Tensor, c_up: Tensor, c_left: Tensor) -> tuple[Tensor, Tensor]:
    """(..., 5H) pre-activations and the neighbours' cells -> (c, h), the equations of the module docstring."""
    zi, zfu, zfl, zg, zo = z.chunk(GATES, dim=-1)
    c = torch.sigmoid(zi) * torch.tanh(zg) + torch.sigmoid(zfu) * c_up + torch.sigmoid(zfl) * c_left
    return c, torch.sigmoid(zo) * torch.tanh(c)


def diagonals(H: int, W: int) -> list[tuple[int, int]]:
    """The row range [lo, hi] of each anti-diagonal k = i + j, k = 0 .. H + W - 2."""
    return [(max(0, k - W + 1), min(H - 1, k)) for k in range(H + W - 1)]


def wavefront(xw: Tensor, weight_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The top-left scan of D images at once, diagonal by diagonal.

    Args:
        xw: (D, B, H, W, 5Hd) input pre-activations ``W x + b`` of each direction (already flipped).
        weight_hh: (D, 5Hd, 2Hd) recurrent weights of each direction.
    Returns:
        h (D, B, H, W, Hd) at every position, and the last position's (h, c), each (D, B, Hd).
    """
    D, B, H, W, G = xw.shape
    Hd = G // GATES
    rows = diagonals(H, W)
    U = weight_hh.transpose(1, 2)  # (D, 2Hd, 5Hd)
    zero = xw.new_zeros(D, B, 1, Hd)
    h_prev = c_prev = None
    hs, order = [], []
    for k, (lo, hi) in enumerate(rows):
        n = hi - lo + 1
        i = torch.arange(lo, hi + 1, device=xw.device)
        z = xw[:, :, i, k - i]  # (D, B, n, 5Hd): the inputs along diagonal k
        if h_prev is None:  # k = 0: the corner has no neighbour
            c_up = c_left = xw.new_zeros(D, B, n, Hd)
        else:
            plo = rows[k - 1][0]
            hp = torch.cat([zero, h_prev, zero], 2)  # (D, B, n_prev + 2, Hd): padded row plo - 1 .. phi + 1
            cp = torch.cat([zero, c_prev, zero], 2)
            s = lo - plo  # padded index of row lo - 1 (the upper neighbour of row lo)
            h_up, h_left = hp[:, :, s:s + n], hp[:, :, s + 1:s + 1 + n]  # rows i - 1 and i of diagonal k - 1
            c_up, c_left = cp[:, :, s:s + n], cp[:, :, s + 1:s + 1 + n]
            hh = torch.cat([h_up, h_left], -1).reshape(D, B * n, 2 * Hd)  # (D, B*n, 2Hd)
            z = torch.baddbmm(z.reshape(D, B * n, G), hh, U).reshape(D, B, n, G)
        c_prev, h_prev = _cell_update(z, c_up, c_left)
        hs.append(h_prev)
        order.append(i * W + (k - i))
    flat = torch.cat(hs, 2)  # (D, B, H*W, Hd) in diagonal order
    inverse = torch.empty(H * W, dtype=torch.long, device=xw.device)
    inverse[torch.cat(order)] = torch.arange(H * W, device=xw.device)
    h = flat[:, :, inverse].reshape(D, B, H, W, Hd)  # back to row-major positions
    return h, h_prev[:, :, -1], c_prev[:, :, -1]


class MDLSTM(nn.Module):
    r"""A 2D LSTM layer scanning an image from ``directions`` corners with the diagonal wavefront.

    ``outputs, (h_n, c_n) = layer(x)``.

    Shape:
        x: (B, H, W, F) floats. outputs: (B, H, W, D*Hd) with merge "concat" (direction order: top-left,
        top-right, bottom-left, bottom-right; see DIRECTIONS), or (B, H, W, Hd) with "sum". h_n, c_n:
        (D, B, Hd), the state each direction's scan ends with (at the corner opposite its start).

    Example::

        >>> layer = MDLSTM(MDLSTMConfig(input_size=16, hidden_size=32))   # 4 directions, concatenated
        >>> out, (h_n, c_n) = layer(torch.rand(8, 7, 7, 16))              # MNIST as 7x7 patches of 4x4
        >>> out.shape, h_n.shape
        (torch.Size([8, 7, 7, 128]), torch.Size([4, 8, 32]))
    """

    def __init__(self, config: MDLSTMConfig):
        super().__init__()
        self.config = c = config
        self.corners = DIRECTIONS[c.directions]
        self.cells = nn.ModuleList(MDLSTMCell(c.input_size, c.hidden_size) for _ in self.corners)
        self.output_size = c.hidden_size * (c.directions if c.merge == "concat" else 1)

    def forward(self, x: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        c = self.config
        if state is not None:
            raise ValueError("MDLSTM: every scan starts from zero states at its corner; expected state=None")
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[3] != c.input_size or not x.is_floating_point():
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"MDLSTM: expected input (B, H, W, {c.input_size}) floats, got {got}")
        if min(x.shape[:3]) < 1:
            raise ValueError(f"MDLSTM: expected a non-empty batch of images, got {tuple(x.shape)}")
        if x.dtype != self.cells[0].weight_ih.dtype:
            raise ValueError(f"MDLSTM: input dtype {x.dtype} does not match the parameters' "
                             f"{self.cells[0].weight_ih.dtype}")
        flipped = torch.stack([x.flip(CORNERS[name]) if CORNERS[name] else x for name in self.corners])  # (D,B,H,W,F)
        w_ih = torch.stack([cell.weight_ih for cell in self.cells])  # (D, 5Hd, F)
        bias = torch.stack([cell.bias_ih + cell.bias_hh for cell in self.cells])  # (D, 5Hd)
        xw = torch.einsum("dbhwf,dgf->dbhwg", flipped, w_ih) + bias[:, None, None, None]  # (D, B, H, W, 5Hd)
        h, h_n, c_n = wavefront(xw, torch.stack([cell.weight_hh for cell in self.cells]))
        # flip each direction's outputs (B, H, W, Hd) back so that position (i, j) lines up for all of them
        outs = [h[d].flip(CORNERS[name]) if CORNERS[name] else h[d] for d, name in enumerate(self.corners)]
        merged = torch.cat(outs, -1) if c.merge == "concat" else torch.stack(outs).sum(0)
        return merged, (h_n, c_n)


def naive_scan(cell: MDLSTMCell, x: Tensor) -> Tensor:
    """The top-left scan as the per-pixel double loop of Graves et al.: (B, H, W, F) -> h (B, H, W, Hd).
    Slow; the reference the wavefront is tested against."""
    B, H, W, _ = x.shape
    zero = cell.initial_state(B, dtype=x.dtype, device=x.device)[0]
    h = [[None] * W for _ in range(H)]
    c = [[None] * W for _ in range(H)]
    for i in range(H):
        for j in range(W):
            up = (h[i - 1][j], c[i - 1][j]) if i > 0 else (zero, zero)
            left = (h[i][j - 1], c[i][j - 1]) if j > 0 else (zero, zero)
            h[i][j], (_, c[i][j]) = cell(x[:, i, j], (*up, *left))
    return torch.stack([torch.stack(row, 1) for row in h], 1)
