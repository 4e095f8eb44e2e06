r"""Neural Turing Machine (Graves, Wayne & Danihelka 2014; lecture 003, "Attention and Augmented RNNs").

A controller network is coupled to a memory of N locations of M numbers each. At every step it emits, for
each head, a *weighting* over the locations -- lecture 003's "attention distribution which describes how we
spread out the amount we care about different memory positions" -- and reads and writes through it::

    x_t, r_{t-1} ──controller (any rnnkit cell, or feed-forward)──> h_t ──linear──> per head: k β g s γ (e a)
        heads address M_{t-1}:  content ─> interpolation ─> shift ─> sharpening ─> w_t      (B, heads, N)
        read heads:   r_t = Σ_i w_t(i) M_{t-1}(i)                                          (B, R, M)
        write heads:  M_t(i) = M_{t-1}(i) (1 − w_t(i) e_t) + w_t(i) a_t                    (B, N, M)
        output:       y_t = W_o [h_t; r_t] + b_o                                            (B, O)

**The lecture's notation.** Lecture 003 writes the attention as :math:`a_i`, the read as
:math:`r \leftarrow \sum_i a_i M_i` and the write of a value :math:`w` as
:math:`M_i \leftarrow a_i w + (1 - a_i) M_i`. Here (Graves et al.'s notation) the attention is
:math:`w_t(i)` and a write head emits an *erase* vector :math:`e_t \in (0, 1)^M` and an *add* vector
:math:`a_t`: :math:`M_t(i) = M_{t-1}(i) \odot (1 - w_t(i) e_t) + w_t(i) a_t`. With :math:`e_t = 1` (erase
everything that is attended to) this is exactly the lecture's write, :math:`w_t(i) a_t + (1 - w_t(i))
M_{t-1}(i)`, with the lecture's :math:`a_i` = our :math:`w_t(i)` and the lecture's write value :math:`w` = our
:math:`a_t`; the erase vector lets a head keep some components of a location while it overwrites others.

**Addressing** (Graves et al. section 3.3; lecture 003's "Content-based attention & location-based
attention"), for one head with key :math:`k_t`, key strength :math:`\beta_t \ge 0`, interpolation gate
:math:`g_t \in (0, 1)`, shift weighting :math:`s_t` over the shifts :math:`-S..S` and sharpening
:math:`\gamma_t \ge 1`:

.. math::
    K(u, v) &= \frac{u \cdot v}{\lVert u \rVert \lVert v \rVert + \epsilon}
        \qquad \text{(cosine similarity; } \epsilon = 10^{-8}\text{)}\\
    w^c_t(i) &= \frac{\exp(\beta_t K(k_t, M_{t-1}(i)))}{\sum_j \exp(\beta_t K(k_t, M_{t-1}(j)))}
        \qquad \text{(the query scored against every location, then softmax)}\\
    w^g_t &= g_t w^c_t + (1 - g_t) w_{t-1}
        \qquad \text{(interpolation with the previous weighting)}\\
    \tilde w_t(i) &= \sum_{j=0}^{N-1} w^g_t(j)\, s_t(i - j) \quad \text{(circular convolution, indices mod } N)\\
    w_t(i) &= \frac{\tilde w_t(i)^{\gamma_t}}{\sum_j \tilde w_t(j)^{\gamma_t}} \qquad \text{(sharpening)}

The head's raw outputs are squashed into those ranges: :math:`\beta = \operatorname{softplus}(\hat\beta)`,
:math:`g = \sigma(\hat g)`, :math:`s = \operatorname{softmax}(\hat s)`,
:math:`\gamma = 1 + \operatorname{softplus}(\hat\gamma)`, :math:`e = \sigma(\hat e)`, :math:`a = \tanh(\hat a)`;
the key is used as emitted (the cosine ignores its length). Sharpening is computed as
:math:`\operatorname{softmax}_i(\gamma \log \tilde w(i))`, the same value without overflow for large
:math:`\gamma`. With several write heads, every erase applies before any add (Graves et al. 3.2):
:math:`M_t = M_{t-1} \odot \prod_k (1 - w^k_t e^{k\top}_t) + \sum_k w^k_t a^{k\top}_t`.

**Decisions** the paper leaves open, taken here: every head addresses :math:`M_{t-1}`, the read heads read
it, then the write heads write (so :math:`r_t` is available to this step's output); the memory starts as a
constant :math:`M_0(i) = 10^{-6}` for every location (Collier & Beel 2018's "constant initialisation", the
fastest of the schemes they compare), fixed or learned (``memory_init``); every head's first weighting
:math:`w_0` is the first location (one-hot), and :math:`r_0 = M_0(0)`, the read that weighting gives.

Legend: B batch, T time, N memory locations (``memory_size``), M numbers per location (``memory_width``),
K heads = R read + W write heads, S shift range (shifts -S..S), F inputs, H controller outputs, O outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int, check_step_input
from ..layers.recurrent import Recurrent
from ..layers.rnn import KINDS, make_cell

__all__ = ["CONTROLLERS", "MEMORY_INITS", "NTM", "NTMCell", "NTMConfig", "FeedForwardController", "address",
           "content_weighting", "interpolate", "read", "sharpen", "shift", "write"]

EPSILON = 1e-8  # in the cosine similarity's denominator
TINY = 1e-30  # w~ below this counts as TINY before the log of sharpening (it only guards against underflow)
MEMORY_INIT_VALUE = 1e-6  # the constant every memory location starts at
MEMORY_INITS = ("fixed", "learned")
CONTROLLERS = (*KINDS, "feedforward")


# ----- addressing, reading, writing: plain functions of tensors (tests compare them with NumPy) -----------------

def content_weighting(memory: Tensor, key: Tensor, beta: Tensor, eps: float = EPSILON) -> Tensor:
    """w^c(i) = softmax_i(β K(k, M(i))), K the cosine similarity. memory (B, N, M), key (B, K, M), beta (B, K)
    -> (B, K, N)."""
    dots = key @ memory.transpose(1, 2)  # (B, K, N)
    norms = key.norm(dim=-1, keepdim=True) * memory.norm(dim=-1).unsqueeze(1)  # (B, K, 1) * (B, 1, N)
    return torch.softmax(beta.unsqueeze(-1) * dots / (norms + eps), dim=-1)


def interpolate(content: Tensor, previous: Tensor, gate: Tensor) -> Tensor:
    """w^g = g w^c + (1 − g) w_{t−1}. content, previous (B, K, N), gate (B, K) -> (B, K, N)."""
    g = gate.unsqueeze(-1)
    return g * content + (1 - g) * previous


def shift(weights: Tensor, shifts: Tensor) -> Tensor:
    """Circular convolution w~(i) = Σ_j w(i − j) s(j) over the shifts j = -S..S (indices mod N).
    weights (B, K, N), shifts (B, K, 2S + 1) with shifts[..., S + j] the weight of shift j -> (B, K, N)."""
    S, N = (shifts.shape[-1] - 1) // 2, weights.shape[-1]
    padded = torch.cat([weights[..., N - S:], weights, weights[..., :S]], dim=-1)  # (B, K, N + 2S), circular
    windows = padded.unfold(-1, N, 1)  # (B, K, 2S+1, N): window m holds w(i + m − S), i.e. shift j = S − m
    return (shifts.flip(-1).unsqueeze(-2) @ windows).squeeze(-2)  # Σ_j s(j) w(i − j): (B, K, 1, N) -> (B, K, N)


def sharpen(weights: Tensor, gamma: Tensor) -> Tensor:
    """w(i) = w~(i)^γ / Σ_j w~(j)^γ, as softmax(γ log w~). weights (B, K, N), gamma (B, K) -> (B, K, N)."""
    return torch.softmax(gamma.unsqueeze(-1) * weights.clamp_min(TINY).log(), dim=-1)


def address(memory: Tensor, previous: Tensor, key: Tensor, beta: Tensor, gate: Tensor, shifts: Tensor,
            gamma: Tensor) -> Tensor:
    """The whole addressing pipeline of Graves et al. Figure 2: content, interpolation, shift, sharpening.
    memory (B, N, M); previous (B, K, N); key (B, K, M); beta, gate, gamma (B, K); shifts (B, K, 2S+1)."""
    w = content_weighting(memory, key, beta)
    w = interpolate(w, previous, gate)
    w = shift(w, shifts)
    return sharpen(w, gamma)


def read(memory: Tensor, weights: Tensor) -> Tensor:
    """r = Σ_i w(i) M(i) for each read head. memory (B, N, M), weights (B, R, N) -> (B, R, M)."""
    return weights @ memory


def write(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """M(i) ← M(i) Π_k (1 − w_k(i) e_k) + Σ_k w_k(i) a_k. memory (B, N, M); weights (B, W, N); erase, add
    (B, W, M) -> (B, N, M). One head with e = 1 is lecture 003's M_i ← a_i w + (1 − a_i) M_i."""
    keep = 1 - weights.unsqueeze(-1) * erase.unsqueeze(-2)  # (B, W, N, M)
    keep = keep[:, 0] if keep.shape[1] == 1 else keep.prod(dim=1)  # (B, N, M)
    return memory * keep + weights.transpose(1, 2) @ add  # (B, N, W) @ (B, W, M)


# ----- the machine ----------------------------------------------------------------------------------------------

class FeedForwardController(nn.Module):
    """A feed-forward controller, h_t = tanh(W [x_t; r_{t-1}] + b): the cell protocol with an empty state, so that
    the machine's memory is its only memory (Graves et al. compare it with an LSTM controller)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.output_size = input_size, hidden_size
        self.linear = nn.Linear(input_size, hidden_size)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple:
        return ()

    def forward(self, x: Tensor, state: tuple = ()):
        return torch.tanh(self.linear(x)), ()


@dataclass
class NTMConfig:
    input_size: int  # F
    output_size: int  # O
    controller: str = "lstm"  # any rnnkit cell kind (rnnkit.layers.KINDS) or "feedforward"
    controller_size: int = 100  # H: Graves et al.'s copy-task LSTM controller has 100 units
    memory_size: int = 128  # N locations (Graves et al.: 128)
    memory_width: int = 20  # M numbers per location (Graves et al.: 20)
    read_heads: int = 1  # R
    write_heads: int = 1  # W
    shift_range: int = 1  # S: shifts -S..S (Graves et al.: -1, 0, +1)
    memory_init: str = "fixed"  # M_0 = 1e-6 everywhere: "fixed" (a buffer) or "learned" (a parameter)

    def __post_init__(self):
        for name in ("input_size", "output_size", "controller_size", "memory_size", "memory_width", "read_heads",
                     "write_heads"):
            check_positive_int("NTMConfig", name, getattr(self, name))
        S = self.shift_range
        if isinstance(S, bool) or not isinstance(S, int):
            raise TypeError(f"NTMConfig: expected shift_range to be an int, got {type(S).__name__} {S!r}")
        if S < 0:
            raise ValueError(f"NTMConfig: expected shift_range >= 0 (shifts -S..S), got {S}")
        if 2 * S + 1 > self.memory_size:
            raise ValueError(f"NTMConfig: expected 2 * shift_range + 1 <= memory_size (each shift reaches a "
                             f"different location), got shift_range {S} with memory_size {self.memory_size}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"NTMConfig: expected controller in {list(CONTROLLERS)}, got {self.controller!r}")
        if self.memory_init not in MEMORY_INITS:
            raise ValueError(f"NTMConfig: expected memory_init in {MEMORY_INITS}, got {self.memory_init!r}")


class NTMCell(nn.Module):
    r"""One step of a Neural Turing Machine (equations in the module docstring), a cell like any other:
    ``y_t, state = cell(x_t, state)``, ``cell.initial_state(B)``, so ``Recurrent(NTMCell(...))`` unrolls it.

    Parameters: ``controller`` (a cell of ``config.controller``), ``heads`` (one linear layer for every head's
    :math:`k, \hat\beta, \hat g, \hat s, \hat\gamma`, then the write heads' :math:`\hat e, \hat a`), ``output``
    (:math:`W_o, b_o`), and ``memory_bias`` (:math:`M_0`, N x M; a parameter only with ``memory_init="learned"``).

    Shape:
        x_t: (B, F); state ``(controller_state, r (B, R·M), w (B, K·N), M (B, N·M))``: the cell protocol's
        (B, size) tensors, so layers can mask and carry them; ``w.view(B, K, N)`` holds the read heads' weightings
        first, ``M.view(B, N, M)`` the memory. Returns y_t: (B, O) and the new state.

    Example::

        >>> cell = NTMCell(NTMConfig(9, 8, memory_size=16, memory_width=5))
        >>> y, state = cell(torch.randn(4, 9))
        >>> y.shape, state[3].view(4, 16, 5).shape
        (torch.Size([4, 8]), torch.Size([4, 16, 5]))
    """

    def __init__(self, config: NTMConfig):
        super().__init__()
        self.config = c = config
        self.input_size, self.output_size = c.input_size, c.output_size
        N, M, R, W, S = c.memory_size, c.memory_width, c.read_heads, c.write_heads, c.shift_range
        self.heads_count = R + W
        controller_in = c.input_size + R * M
        if c.controller == "feedforward":
            self.controller = FeedForwardController(controller_in, c.controller_size)
        else:
            self.controller = make_cell(c.controller, controller_in, c.controller_size)
        H = self.controller.output_size
        self.address_sizes = [M, 1, 1, 2 * S + 1, 1]  # k, β, g, s, γ of every head
        self.heads = nn.Linear(H, (R + W) * sum(self.address_sizes) + W * 2 * M)
        self.output = nn.Linear(H + R * M, c.output_size)
        memory = torch.full((N, M), MEMORY_INIT_VALUE)
        if c.memory_init == "learned":
            self.memory_bias = nn.Parameter(memory)
        else:
            self.register_buffer("memory_bias", memory)

    def initial_state(self, batch_size: int, *, device=None, dtype=None):
        """M_0 for every sequence, every head on location 0 (w_0 one-hot), r_0 = M_0(0), the controller's zeros."""
        check_positive_int("NTMCell", "batch_size", batch_size)
        c, B = self.config, batch_size
        device = device or self.output.weight.device
        dtype = dtype or self.output.weight.dtype
        memory = self.memory_bias.to(device, dtype)  # (N, M)
        weights = torch.zeros(B, self.heads_count, c.memory_size, device=device, dtype=dtype)
        weights[:, :, 0] = 1.0  # (B, K, N)
        reads = memory[0].repeat(B, c.read_heads)  # (B, R*M): what w_0 reads
        controller = self.controller.initial_state(B, device=device, dtype=dtype)
        return controller, reads, weights.flatten(1), memory.flatten().expand(B, -1)  # ..., (B, K*N), (B, N*M)

    def head_parameters(self, h: Tensor):
        """The heads' squashed parameters from the controller output h (B, H): key (B, K, M), beta, gate,
        gamma (B, K), shifts (B, K, 2S+1), erase and add (B, W, M)."""
        B, K, W, M = h.shape[0], self.heads_count, self.config.write_heads, self.config.memory_width
        p = self.heads(h)
        addressing, writing = p.split([K * sum(self.address_sizes), W * 2 * M], dim=1)
        key, beta, gate, shifts, gamma = addressing.view(B, K, -1).split(self.address_sizes, dim=-1)
        erase, add = writing.view(B, W, 2 * M).split([M, M], dim=-1)
        return (key, F.softplus(beta).squeeze(-1), torch.sigmoid(gate).squeeze(-1), torch.softmax(shifts, dim=-1),
                1 + F.softplus(gamma).squeeze(-1), torch.sigmoid(erase), torch.tanh(add))

    def forward(self, x: Tensor, state=None):
        check_step_input("NTMCell", x, self.input_size)
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        c, B = self.config, x.shape[0]
        self._check_state(state, B)
        controller_state, reads, previous, memory = state
        previous = previous.view(B, self.heads_count, c.memory_size)  # (B, K, N)
        memory = memory.view(B, c.memory_size, c.memory_width)  # (B, N, M)
        h, controller_state = self.controller(torch.cat([x, reads], dim=1), controller_state)  # (B, H)
        key, beta, gate, shifts, gamma, erase, add = self.head_parameters(h)
        weights = address(memory, previous, key, beta, gate, shifts, gamma)  # (B, K, N), all on M_{t-1}
        R = c.read_heads
        reads = read(memory, weights[:, :R]).flatten(1)  # (B, R, M) -> (B, R*M)
        memory = write(memory, weights[:, R:], erase, add)  # (B, N, M): M_t
        y = self.output(torch.cat([h, reads], dim=1))  # (B, O)
        return y, (controller_state, reads, weights.flatten(1), memory.flatten(1))

    def _check_state(self, state, B: int) -> None:
        """The machine's own parts of the state (the controller checks its own)."""
        c = self.config
        if not isinstance(state, (tuple, list)) or len(state) != 4:
            got = type(state).__name__
            if isinstance(state, (tuple, list)):
                got = f"a {got} of {len(state)}"
            raise TypeError(f"NTMCell: expected state (controller_state, reads, weights, memory), got {got}")
        shapes = [(B, c.read_heads * c.memory_width), (B, self.heads_count * c.memory_size),
                  (B, c.memory_size * c.memory_width)]
        for i, (part, shape) in enumerate(zip(state[1:], shapes), start=1):
            if not isinstance(part, Tensor) or tuple(part.shape) != shape:
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise ValueError(f"NTMCell: expected state[{i}] of shape {shape}, got {got}")

    def extra_repr(self) -> str:
        c = self.config
        return (f"memory {c.memory_size} x {c.memory_width}, {c.read_heads} read / {c.write_heads} write heads, "
                f"shifts -{c.shift_range}..{c.shift_range}, memory_init={c.memory_init}")


class NTM(nn.Module):
    """The machine over sequences: ``logits, state = ntm(x, state=None, lengths=None)`` (the Trainer's contract),
    an :class:`NTMCell` unrolled by :class:`rnnkit.layers.Recurrent`; ``ntm.trace(x)`` also returns what the heads
    did at every step (for the plots).

    Shape:
        x (B, T, F); lengths (B,) or None (steps after a sequence's length give zeros and keep its state);
        logits (B, T, O); state: the cell's state after each sequence's last valid step.

    Example::

        >>> ntm = NTM(NTMConfig(input_size=9, output_size=8))     # the copy task: 8 bits + a delimiter
        >>> logits, state = ntm(torch.zeros(2, 41, 9))
        >>> logits.shape
        torch.Size([2, 41, 8])
    """

    def __init__(self, config: NTMConfig):
        super().__init__()
        self.config = config
        self.cell = NTMCell(config)
        self.layer = Recurrent(self.cell)

    def forward(self, x: Tensor, state=None, lengths=None):
        return self.layer(x, lengths, state)  # (B, T, O), state

    @torch.no_grad()
    def trace(self, x: Tensor) -> dict[str, Tensor]:
        """Run x (B, T, F) step by step and keep every step's weightings and memory:
        {"logits" (B, T, O), "read_weights" (B, T, R, N), "write_weights" (B, T, W, N), "memory" (B, T, N, M)}
        (memory[:, t] is the memory after step t's write)."""
        if x.dim() != 3 or x.shape[2] != self.config.input_size:
            raise ValueError(f"NTM.trace: expected x (B, T, {self.config.input_size}), got {tuple(x.shape)}")
        c, (B, T) = self.config, x.shape[:2]
        state = self.cell.initial_state(B, device=x.device, dtype=x.dtype)
        logits, weights, memories = [], [], []
        for x_t in x.unbind(1):
            y, state = self.cell(x_t, state)
            logits.append(y)
            weights.append(state[2])
            memories.append(state[3])
        weights = torch.stack(weights, dim=1).view(B, T, -1, c.memory_size)  # (B, T, K, N)
        return {"logits": torch.stack(logits, dim=1), "read_weights": weights[:, :, :c.read_heads],
                "write_weights": weights[:, :, c.read_heads:],
                "memory": torch.stack(memories, dim=1).view(B, T, c.memory_size, c.memory_width)}
