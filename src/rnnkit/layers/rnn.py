"""RNN: the convenience constructor, a stack of (bidirectional) layers of one kind, on the fastest correct path."""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import (check_dtype_matches, check_positive_int, check_probability, check_sequences, check_state,
                       check_step_input)
from ..cells import (ElmanCell, GRUCell, JordanCell, LayerNormLSTMCell, LSTMCell, MinGRUCell, MinimalGRUCell,
                     MinLSTMCell)
from ..cells.params import joint_gates, small_inference
from . import fused as kernels
from .bidirectional import Bidirectional
from .lengths import check_lengths, run_packed
from .recurrent import Recurrent, check_fused_flag
from .stacked import Stacked
from .state import check_state_like

# kind -> (cell class, fixed keyword arguments). The names are the CLI's --cell choices.
KINDS = {
    "rnn": (ElmanCell, {}),
    "jordan": (JordanCell, {}),
    "lstm": (LSTMCell, {}),
    "peephole": (LSTMCell, {"peephole": True}),
    "gru": (GRUCell, {"reset_after": True}),
    "gru-cho": (GRUCell, {"reset_after": False}),
    "minimal-gru": (MinimalGRUCell, {}),
    "layer-norm-lstm": (LayerNormLSTMCell, {}),
    "min-gru": (MinGRUCell, {}),
    "min-lstm": (MinLSTMCell, {}),
}


# torch's RNNBase.mode -> (RNN kind, cell keyword arguments, gates per layer)
TORCH_MODES = {
    "LSTM": ("lstm", {}, 4),
    "GRU": ("gru", {}, 3),
    "RNN_TANH": ("rnn", {}, 1),
    "RNN_RELU": ("rnn", {"activation": "relu"}, 1),
}
_TORCH_NAMES = {"LSTM": "nn.LSTM", "GRU": "nn.GRU", "RNN_TANH": "nn.RNN (tanh)", "RNN_RELU": "nn.RNN (relu)"}
_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def make_cell(kind: str, input_size: int, hidden_size: int, **cell_kwargs) -> nn.Module:
    """A cell by name: ``make_cell("peephole", 8, 16)`` is ``LSTMCell(8, 16, peephole=True)``."""
    if kind not in KINDS:
        raise ValueError(f"RNN: expected kind in {sorted(KINDS)}, got {kind!r}")
    cls, fixed = KINDS[kind]
    return cls(input_size, hidden_size, **fixed, **cell_kwargs)


class RNN(nn.Module):
    r"""``num_layers`` recurrent layers of one kind, optionally bidirectional, like ``torch.nn.LSTM``.

    ``kind`` is one of ``rnn`` (Elman; ``activation="relu"`` for a ReLU RNN), ``jordan``, ``lstm``,
    ``peephole`` (LSTM with peepholes), ``gru`` (reset-after form, torch/cuDNN), ``gru-cho`` (Cho et al.'s
    reset-before form of the lectures), ``minimal-gru`` (lecture 001; ``reset_gate=True`` for two gates),
    ``min-gru`` and ``min-lstm`` (Feng et al. 2024: gates from x_t only, run as one scan,
    ``mode="auto"`` / ``"sequential"`` / ``"parallel"``; no recurrent dropout).

    The module is a :class:`Stacked` of :class:`Recurrent` or :class:`Bidirectional` layers (``self.stack``),
    so every cell is reachable as e.g. ``rnn.stack.layers[0].forward_layer.cell``. When every cell has a torch
    kernel and nothing needs the explicit loop, forward makes **one** fused kernel call over all layers and
    directions, as ``nn.LSTM`` does; otherwise it runs the stack layer by layer.

    Args:
        kind, input_size, hidden_size, num_layers, bidirectional: as above (hidden_size per direction).
        dropout: between layers, on every layer's outputs but the last (torch's meaning).
        input_dropout: Keras's ``dropout``: on each layer's inputs, one mask per sequence held over time.
        recurrent_dropout: Keras's ``recurrent_dropout``: on :math:`h_{t-1}` inside the recurrence, one mask
            per sequence; needs the explicit loop (used in training, kernel again in evaluation).
            Lecture 003's ``GRU(32, dropout=0.1, recurrent_dropout=0.5)`` is
            ``RNN("gru", F, 32, input_dropout=0.1, recurrent_dropout=0.5)``.
        batch_first: (B, T, ·) tensors (default) or (T, B, ·).
        fused: ``"auto"`` (default), ``True`` (error if impossible) or ``False`` (always the explicit loop).
        **cell_kwargs: passed to every cell (``activation``, ``forget_bias``, ``bias``, ``reset_gate``, ...).

    Shape:
        x: (B, T, F) or PackedSequence; lengths: (B,); state: list of per-layer states, each a cell state or,
        bidirectional, a pair (forward, backward). Returns outputs (B, T, D*H) and that list.

    Example::

        >>> rnn = RNN("lstm", 8, 32, num_layers=2, bidirectional=True, dropout=0.2)
        >>> out, states = rnn(torch.randn(4, 10, 8), lengths=[10, 9, 5, 2])
        >>> out.shape, len(states), states[0][0][0].shape   # layer 0, forward direction, h
        (torch.Size([4, 10, 64]), 2, torch.Size([4, 32]))
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dropout: float = 0.0, input_dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, batch_first: bool = True, fused="auto", **cell_kwargs):
        super().__init__()
        check_positive_int("RNN", "input_size", input_size)
        check_positive_int("RNN", "hidden_size", hidden_size)
        check_positive_int("RNN", "num_layers", num_layers)
        check_probability("RNN", "dropout", dropout)
        check_probability("RNN", "input_dropout", input_dropout)
        check_probability("RNN", "recurrent_dropout", recurrent_dropout)
        check_fused_flag("RNN", fused)
        if fused is True and recurrent_dropout > 0:
            raise ValueError("RNN: recurrent_dropout needs the explicit path, got fused=True; use fused='auto' or False")
        self.kind, self.num_layers, self.bidirectional = kind, num_layers, bidirectional
        self.dropout, self.input_dropout = dropout, input_dropout
        self.recurrent_dropout, self.fused, self.batch_first = recurrent_dropout, fused, batch_first
        layer_kwargs = dict(batch_first=batch_first, input_dropout=input_dropout,
                            recurrent_dropout=recurrent_dropout, fused=False if fused is False else "auto")
        layers, size = [], input_size
        for _ in range(num_layers):
            if bidirectional:
                layer = Bidirectional(make_cell(kind, size, hidden_size, **cell_kwargs),
                                      make_cell(kind, size, hidden_size, **cell_kwargs), **layer_kwargs)
            else:
                layer = Recurrent(make_cell(kind, size, hidden_size, **cell_kwargs), **layer_kwargs)
            layers.append(layer)
            size = layer.output_size
        self.stack = Stacked(layers, dropout=dropout)
        self.cells = [c for layer in layers for c in self._layer_cells(layer)]  # layer-major, direction-minor
        self.kernel = kernels.common_mode(self.cells)
        # every cell's step is "gates from W_x x + W_h h, then pointwise": RNN.step may use the generation path
        self.joint_step = all(hasattr(c, "update") for c in self.cells)
        if fused is True and self.kernel is None:
            raise ValueError(f"RNN: fused=True needs a kind torch has a kernel for ('rnn' tanh/relu, 'lstm', 'gru'), "
                             f"got {kind!r}" + (f" with {cell_kwargs}" if cell_kwargs else ""))
        if fused is True:  # the layers insist too when the stack runs layer by layer (input dropout)
            for layer in layers:
                for sub in (layer.forward_layer, layer.backward_layer) if isinstance(layer, Bidirectional) else (layer,):
                    sub.fused = True

    @staticmethod
    def _layer_cells(layer):
        return [layer.forward_layer.cell, layer.backward_layer.cell] if isinstance(layer, Bidirectional) else [layer.cell]

    @property
    def input_size(self) -> int:
        return self.stack.input_size

    @property
    def output_size(self) -> int:
        return self.stack.output_size

    @property
    def hidden_size(self) -> int:
        return self.cells[0].hidden_size

    def initial_state(self, batch_size: int, **kwargs) -> list:
        return self.stack.initial_state(batch_size, **kwargs)

    def uses_kernel(self) -> bool:
        """Whether the next forward call is a single fused kernel call."""
        if self.kernel is None or self.fused is False or self.input_dropout > 0:
            return False
        return not (self.training and self.recurrent_dropout > 0)

    def forward(self, x, lengths=None, state=None):
        if isinstance(x, PackedSequence):
            return run_packed(self, x, state)
        if not self.uses_kernel():
            return self.stack(x, lengths, state)
        B, T = check_sequences("RNN", x, self.input_size, self.batch_first)
        check_dtype_matches("RNN", x, self.cells[0].weight_ih)
        lengths = check_lengths("RNN", lengths, B, T)
        if state is None:  # zeros straight in the kernel's (L*D, B, H) layout, as nn.LSTM does
            zeros = x.new_zeros(len(self.cells), B, self.hidden_size)
            hx = (zeros, zeros) if self.kernel == "LSTM" else zeros
        else:
            state = check_state_like("RNN", state, self.initial_state(B, device=x.device, dtype=x.dtype))
            per_cell = [s for layer_state in state for s in (layer_state if self.bidirectional else [layer_state])]
            hx = kernels.to_kernel_state(self.kernel, per_cell)
        out, hn = kernels.run(self.kernel, x, lengths, hx, self.cells,
                              num_layers=self.num_layers, bidirectional=self.bidirectional, dropout=self.dropout,
                              training=self.training, batch_first=self.batch_first)
        per_cell = kernels.from_kernel_state(self.kernel, hn)
        if self.bidirectional:
            return out, [tuple(per_cell[2 * i: 2 * i + 2]) for i in range(self.num_layers)]
        return out, per_cell

    def step(self, x, state=None):
        """One time step through every layer, for generation and decoders: x (B, F) -> (y (B, H), state).

        Uses the cells directly (no kernel launch, no sequence bookkeeping), which is what makes
        batch-1 generation fast. Unidirectional stacks only: a backward direction needs the future.
        """
        if self.bidirectional:
            raise ValueError("RNN.step: a bidirectional RNN cannot run one step at a time (the backward "
                             "direction reads the future)")
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        elif not isinstance(state, (list, tuple)) or len(state) != self.num_layers:
            raise ValueError(f"RNN.step: expected state as a list of {self.num_layers} per-layer states, "
                             f"got {type(state).__name__}")
        if self.joint_step and small_inference(self.cells[0], x.shape[0]):
            return self._joint_step(x, state)
        new_state = []
        for i, (cell, s) in enumerate(zip(self.cells, state)):
            x, s = cell(x, s)
            new_state.append(s)
            if i < self.num_layers - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return x, new_state

    def _joint_step(self, x, state):
        """The generation path: what the loop above computes, with one product [x, h] [W_x; W_h]^T per layer,
        the checks done once per layer without a module call each (a third of a small step's time)."""
        check_step_input("RNN.step", x, self.input_size)
        new_state = []
        for i, (cell, s) in enumerate(zip(self.cells, state)):
            count = 1 if isinstance(s, Tensor) else 2
            check_state(f"RNN.step: layer {i}", s, [(x.shape[0], cell.weight_hh.shape[1])] * count, x)
            x, s = cell.update(joint_gates(cell, x, s if count == 1 else s[0]), s if count == 1 else tuple(s))
            new_state.append(s)
            if i < self.num_layers - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return x, new_state

    # ----- torch.nn.LSTM / GRU / RNN interoperability ------------------------------------------------

    @classmethod
    def from_torch(cls, module: nn.Module, *, batch_first: bool | None = None, fused="auto") -> "RNN":
        """An RNN computing what ``module`` (a ``torch.nn.LSTM``, ``nn.GRU`` or ``nn.RNN``) computes, with its
        weights copied (on the module's device and dtype, in its train / eval mode).

        Taken from the module: the kind (``nn.GRU`` is the reset-after form, rnnkit's ``"gru"``; ``nn.RNN``
        with ``nonlinearity="relu"`` is ``RNN("rnn", ..., activation="relu")``), ``input_size``,
        ``hidden_size``, ``num_layers``, ``bidirectional``, ``bias`` and ``dropout`` (between layers, the same
        meaning in both). ``batch_first`` is the module's unless given: torch defaults to (T, B, F) inputs,
        rnnkit to (B, T, F). LSTM projections (``proj_size > 0``) have no rnnkit counterpart and are refused.

        The final state differs in layout only: torch's ``h_n`` (L*D, B, H) is rnnkit's list of per-layer
        states, ``h_n[l * D + d]`` being layer ``l``'s state (direction ``d``; for an LSTM the pair (h, c)).

        Example::

            >>> lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
            >>> rnn = RNN.from_torch(lstm)       # rnn.torch_state_dict() loads back with strict=True
        """
        if not isinstance(module, nn.RNNBase) or module.mode not in TORCH_MODES:
            hint = (" (for a single cell, load its state dict into rnnkit.cells.ElmanCell / LSTMCell / GRUCell)"
                    if isinstance(module, nn.RNNCellBase) else "")
            raise TypeError(f"RNN.from_torch: expected a torch.nn.LSTM, nn.GRU or nn.RNN, got "
                            f"{type(module).__module__}.{type(module).__qualname__}{hint}")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"RNN.from_torch: LSTM projections are not supported (rnnkit's LSTM has no weight_hr); "
                             f"expected proj_size=0, got proj_size={module.proj_size}")
        kind, cell_kwargs, _ = TORCH_MODES[module.mode]
        rnn = cls(kind, module.input_size, module.hidden_size, module.num_layers,
                  bidirectional=module.bidirectional, dropout=float(module.dropout),
                  batch_first=module.batch_first if batch_first is None else batch_first, fused=fused,
                  bias=module.bias, **cell_kwargs)
        ref = module.weight_ih_l0
        rnn.to(device=ref.device, dtype=ref.dtype)
        rnn.load_torch_state_dict(module.state_dict())
        return rnn.train(module.training)

    def torch_state_dict(self) -> "OrderedDict[str, torch.Tensor]":
        """The parameters under torch's names, loadable with ``strict=True`` into the ``nn.LSTM`` / ``nn.GRU``
        / ``nn.RNN`` of the same sizes: ``weight_ih_l{k}`` (G*H, F_k), ``weight_hh_l{k}`` (G*H, H),
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G*H,) for layer k (G gates: 4 LSTM, 3 GRU, 1 RNN; F_0 the input
        size, F_k = D*H above), with the suffix ``_reverse`` for the backward direction. The tensors are
        detached and share memory with the parameters, as ``state_dict()`` does.

        Raises ValueError when the kind has no torch module (``peephole``, ``gru-cho``, ``jordan``, ...).
        """
        self._torch_mode("torch_state_dict")
        return OrderedDict((name, p.detach()) for name, p in self._torch_parameters())

    def load_torch_state_dict(self, state_dict: Mapping) -> "RNN":
        """Copy a ``torch.nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` state dict (torch's names, see
        :meth:`torch_state_dict`) into this RNN's parameters, in place; returns self.

        Everything is checked before anything is copied: the kind must be one torch has (``lstm``,
        ``gru`` = reset-after, ``rnn`` tanh / relu), the keys must be exactly the expected ones (the
        message names the expected and received layers, directions and bias), and every shape must match
        (a GRU's 3 gates in an LSTM's 4 are named). Values are cast to the parameters' dtype and device.
        A state dict cannot tell tanh from relu: that comes from this RNN (:meth:`from_torch` reads it).
        """
        mode = self._torch_mode("load_torch_state_dict")
        owner = "RNN.load_torch_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{owner}: expected a state dict (a mapping of names to tensors), "
                            f"got {type(state_dict).__name__}")
        if any(isinstance(k, str) and k.startswith("weight_hr_l") for k in state_dict):
            raise ValueError(f"{owner}: the state dict has LSTM projection weights (weight_hr_l*, proj_size > 0); "
                             "rnnkit's LSTM has no projection, so it cannot be loaded")
        own = OrderedDict(self._torch_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise ValueError(f"{owner}: expected the state dict of {self._torch_description(mode)}, got "
                             f"{_describe_torch_keys(state_dict)}; missing {missing}, unexpected {unexpected}")
        G = TORCH_MODES[mode][2]
        problems = []
        for name, p in own.items():
            value = state_dict[name]
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{owner}: expected {name!r} to be a tensor, got {type(value).__name__}")
            if value.shape != p.shape:
                problems.append(f"{name!r} has shape {tuple(value.shape)}, expected {tuple(p.shape)}"
                                + _gate_hint(name, value, G, self.hidden_size, mode))
        if problems:
            raise ValueError(f"{owner}: the state dict does not fit {self._torch_description(mode)} with "
                             f"hidden_size {self.hidden_size} and input_size {self.input_size}: " + "; ".join(problems))
        with torch.no_grad():
            for name, p in own.items():
                p.copy_(state_dict[name])
        return self

    def _torch_mode(self, what: str) -> str:
        """The torch module this RNN equals ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'), or a ValueError."""
        if self.kernel is None:
            hint = {"gru-cho": "; torch's nn.GRU is the reset-after form, RNN('gru', ...)",
                    "peephole": "; torch's nn.LSTM has no peepholes, RNN('lstm', ...)"}.get(self.kind, "")
            if self.kind == "rnn":
                hint = f"; torch's nn.RNN is tanh or relu, got activation {self.cells[0].activation!r}"
            raise ValueError(f"RNN.{what}: expected a kind torch has a module for ('lstm', 'gru' reset-after, "
                             f"'rnn' tanh/relu), got {self.kind!r}{hint}")
        return self.kernel

    def _torch_parameters(self):
        """(torch name, parameter) in nn.LSTM's order: per layer, per direction, w_ih, w_hh[, b_ih, b_hh]."""
        directions = 2 if self.bidirectional else 1
        for k in range(self.num_layers):
            for d in range(directions):
                cell = self.cells[k * directions + d]
                suffix = f"_l{k}" + ("_reverse" if d else "")
                names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if cell.bias else ())
                for name in names:
                    yield name + suffix, getattr(cell, name)

    def _torch_description(self, mode: str) -> str:
        layers = f"{self.num_layers} layer{'s' if self.num_layers > 1 else ''}"
        way = "bidirectional" if self.bidirectional else "unidirectional"
        bias = "with bias" if self.cells[0].bias else "without bias"
        return f"a {layers} {way} {_TORCH_NAMES[mode]} {bias}"

    def extra_repr(self) -> str:
        return f"{self.kind!r}, num_layers={self.num_layers}, bidirectional={self.bidirectional}"


def _describe_torch_keys(state_dict: Mapping) -> str:
    """'2 layers, bidirectional, with bias' as read from a torch RNN state dict's keys."""
    found = [m for m in (_TORCH_KEY.match(k) if isinstance(k, str) else None for k in state_dict) if m]
    if not found:
        shown = ", ".join(repr(k) for k in list(state_dict)[:4]) + (", ..." if len(state_dict) > 4 else "")
        return f"no torch RNN keys (keys: {shown or 'none'})"
    layers = max(int(m.group(2)) for m in found) + 1
    way = "bidirectional" if any(m.group(3) for m in found) else "unidirectional"
    bias = "with bias" if any(m.group(1).startswith("bias") for m in found) else "without bias"
    return f"{layers} layer{'s' if layers > 1 else ''}, {way}, {bias}"


def _gate_hint(name: str, value: torch.Tensor, gates: int, hidden_size: int, mode: str) -> str:
    """' (3 gates x 16: an nn.GRU's layout, ...)' when a weight_hh of the right hidden size (H columns) has
    another kind's gate count of rows."""
    if not name.startswith("weight_hh") or value.dim() != 2 or value.shape[1] != hidden_size:
        return ""
    if value.shape[0] % hidden_size or value.shape[0] // hidden_size == gates:
        return ""
    other = {4: "an nn.LSTM's", 3: "an nn.GRU's", 1: "an nn.RNN's"}.get(value.shape[0] // hidden_size)
    if other is None:
        return ""
    return f" ({value.shape[0] // hidden_size} gates x {hidden_size}: {other} layout, this is {_TORCH_NAMES[mode]})"
