r"""Export a trained run as a TorchScript or ONNX graph of plain tensors, for any batch size and length.

    rnnkit export RUN_DIR --format torchscript|onnx [--out DIR]
      RUN_DIR/export/model.pt or model.onnx      the graph (seq2seq: encoder.* and decoder_step.*)
      RUN_DIR/export/onnx.json (torchscript.json) the sidecar: task, inputs and outputs (names, dtypes, shapes),
                                                 the exporter, the check, the run files the inputs come from

**How lengths work in the graph.** rnnkit's layers run torch's fused kernels over ``PackedSequence`` when
sequences have lengths; ``pack_padded_sequence`` does not export to ONNX (pytorch#62240), and a traced Python
loop over time would be unrolled to the example's length. So the export never uses either: every recurrent
layer is replaced by the explicit step of its own cell inside a **scripted loop** over time
(:class:`_TimeLoop`, an ONNX ``Loop``), and lengths are a mask ``t < lengths[b]`` that keeps each sequence's
last valid state (``torch.where``), exactly what :class:`rnnkit.layers.Recurrent`'s explicit path computes.
The code around the loop (embedding, heads, pooling, attention) is the model's own ``forward``, traced
(``torch.jit.trace``); shapes are recorded as shape arithmetic, so the graph takes any B and T.

**Exporters.** TorchScript: ``torch.jit.trace`` of the model around ``torch.jit.script``-ed loops, saved with
``torch.jit.save``. torch 2.13 marks TorchScript deprecated (``torch.jit.script`` warns; the warnings are
silenced here) but it still works, and it is the only torch format whose graphs carry a loop over a dynamic
length without extra dependencies. ONNX: the TorchScript-based exporter, ``torch.onnx.export(...,
dynamo=False)`` at opset 17, on that same traced module, with dynamic axes for B and T. The default dynamo
exporter needs ``onnxscript`` and cannot export a Python loop over a symbolic length. Running the ONNX file
takes ``onnxruntime`` (the optional extra ``pip install rnnkit[onnx]``).

**Every export is checked.** The written file is loaded back (``torch.jit.load`` / ``onnxruntime``) and run
on a padded batch of mixed lengths whose B and T differ from the traced example's; its outputs must match
the eager model's (the fused kernels with packed sequences) to ``CHECK_TOLERANCE``, or the export fails.
Without onnxruntime the ONNX check is skipped, and the sidecar says so.

Supported tasks: ``charlm`` and ``wordlm`` (every ``--cell``; a TCN takes no lengths), ``classify`` (every
``--model``), ``seqmnist``, ``adding``, ``copy``, ``pattern``, ``forecast`` (any B; windows keep the run's
length), ``ntm`` (the NTM and the LSTM baseline; the NTM's step is rewritten with explicit sizes,
:class:`ExportNTMCell`, because inside an ONNX Loop body the exporter does not know the tensor ranks that
``unfold`` and ``squeeze`` need), ``seq2seq`` and ``dates`` (two graphs: the encoder, and one decoder step for a
greedy or beam search around it), ``act`` (the ponder steps are a scripted ``while`` loop inside the loop over
time, with ACT's per-row halting; :class:`ExportACT`) and ``babi`` (facts (B, F, W) and question (B, Q) of any
sizes; the GRUs and the attention-GRU over the facts are scripted loops, the T passes a fixed number; a GRU answer
decoder exports as ``encoder`` and ``decoder_step``, for a greedy loop as ``DMN.predict`` runs), ``captions`` (two
graphs like seq2seq's: ``encoder``, image -> regions, attention keys, h_0, c_0, and ``decoder_step``; every
``--attention``; images of the run's size, which the CNN's map fixes), ``vqa`` (image and question (B, Q) of any
Q; the fusion and question GRUs and babi's episodic memory as scripted loops), ``mdlstm`` (images (B, H, W) of any
size in multiples of the patch: the H + W - 1 diagonals of the wavefront are a scripted loop, :class:`ExportMDLSTM`),
``han`` (documents (B, S, W) of any S and W: the word GRU reads every sentence slot, padding masked, instead of
``HAN.attend``'s boolean indexing) and ``music`` (frames (B, T, 88), lengths and the state, as the LM; a TCN takes
lengths, no state).
"""
from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Tuple

import torch
from torch import Tensor, nn

from .cells.params import SMALL_BATCH
from .layers import RNN, Bidirectional, Recurrent, Stacked
from .layers.lengths import reverse_within_lengths
from .layers.state import map_state
from .memory.act import Halting
from .memory.ntm import EPSILON, TINY
from .train import checkpoint

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
OPSET = 17
CHECK_TOLERANCE = 1e-4  # float32, absolute: the fused kernels and the explicit steps round differently
# Traced with more than SMALL_BATCH sequences: the cells' small-batch inference shortcuts (cached weight copies)
# would otherwise be recorded as constants.
EXAMPLE_BATCH, EXAMPLE_STEPS = SMALL_BATCH + 1, 6
CHECK_BATCH, CHECK_STEPS = 5, 11  # another B and T than the example's: the graph must not depend on them

SUPPORTED = ("charlm", "wordlm", "classify", "seqmnist", "adding", "copy", "pattern", "forecast", "ntm",
             "seq2seq", "dates", "act", "babi", "captions", "vqa", "mdlstm", "han", "music")
UNSUPPORTED: dict[str, str] = {}  # task -> why it does not export (every task exports now)


# ----- a state as one (B, S) tensor, so a loop carries a single tensor whatever the cell -----------------------

def _parts(state) -> list[Tensor]:
    """The tensors of a nested state (tuples and lists of tensors), depth first."""
    if isinstance(state, Tensor):
        return [state]
    return [t for s in state for t in _parts(s)]


def _rebuild(parts: list[Tensor], template):
    """The inverse of _parts: tensors back into template's structure (consumes parts from the front)."""
    if isinstance(template, Tensor):
        return parts.pop(0)
    rebuilt = [_rebuild(parts, s) for s in template]
    return rebuilt if isinstance(template, list) else tuple(rebuilt)


def _flat(state) -> Tensor:
    return torch.cat([p.flatten(1) for p in _parts(state)], dim=1)  # (B, S)


def _unflat(flat: Tensor, template):
    """(B, S) -> a state shaped like template (whose batch size may differ)."""
    pieces = flat.split([p[0].numel() for p in _parts(template)], dim=1)
    parts = [x.reshape((-1,) + tuple(p.shape[1:])) for x, p in zip(pieces, _parts(template))]
    return _rebuild(parts, template)


class _CellStep(nn.Module):
    """One step of a cell on a flat state, traced: (x_t (B, G), s (B, S)) -> (y_t (B, O), s (B, S)). x_t is the
    input projection W_x x_t + b for cells with ``project_input`` and ``step`` (done for all T before the loop),
    else the input itself (the cell's ``forward``)."""

    def __init__(self, cell: nn.Module, template):
        super().__init__()
        self.cell, self.template = cell, template
        self.projected = hasattr(cell, "project_input") and hasattr(cell, "step")

    def forward(self, x: Tensor, s: Tensor):
        state = _unflat(s, self.template)
        y, state = self.cell.step(x, state) if self.projected else self.cell(x, state)
        return y, _flat(state)


class _TimeLoop(nn.Module):
    """The loop over time, scripted (an ONNX Loop): xs (T, B, G), mask (T, B, 1) bool, s (B, S) ->
    outputs (T, B, O) and the state after each sequence's last valid step."""

    def __init__(self, step: nn.Module):
        super().__init__()
        self.step = step

    def forward(self, xs: Tensor, mask: Tensor, s: Tensor) -> Tuple[Tensor, Tensor]:
        ys: List[Tensor] = []
        for t in range(xs.size(0)):
            y, new = self.step(xs[t], s)
            s = torch.where(mask[t], new, s)  # finished sequences keep their last valid state
            ys.append(y)
        return torch.stack(ys), s


@contextlib.contextmanager
def _quiet():
    """Silences TorchScript's deprecation warnings and the tracer's warnings about the models' Python-side input
    checks (int(lengths.min()) and the like: checked on the example at trace time, which is all they are for)."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        yield


class ExportRecurrent(nn.Module):
    """What :class:`rnnkit.layers.Recurrent` computes (evaluation mode), as an exportable graph: the input
    projection for all steps, a scripted loop of the cell's step, masks instead of packed sequences.

    ``forward(x, lengths=None, state=None) -> (outputs, final_state)`` with the layer's shapes and state structure.
    """

    def __init__(self, layer: Recurrent):
        super().__init__()
        self.cell, self.reverse, self.batch_first = layer.cell, layer.reverse, layer.batch_first
        with torch.no_grad():
            self.template = map_state(lambda s: s.detach(), layer.cell.initial_state(1))
            self.register_buffer("initial", _flat(self.template), persistent=False)  # (1, S): s_0 of one sequence
        step = _CellStep(layer.cell, self.template)
        B = EXAMPLE_BATCH
        x = torch.zeros(B, layer.cell.input_size, dtype=self.initial.dtype, device=self.initial.device)
        with torch.no_grad(), _quiet():
            x = layer.cell.project_input(x) if step.projected else x
            traced = torch.jit.trace(step, (x, self.initial.expand(B, -1).contiguous()), check_trace=False)
            self.loop = torch.jit.script(_TimeLoop(traced))

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None):
        xs = x.transpose(0, 1) if self.batch_first else x  # (T, B, F)
        if lengths is None:
            mask = torch.ones_like(xs[..., :1], dtype=torch.bool)  # (T, B, 1)
        else:
            mask = (torch.arange(xs.shape[0], device=xs.device)[:, None] < lengths.to(xs.device)[None, :])[..., None]
            xs = xs.masked_fill(~mask, 0.0)  # padding never reaches the cell
        if self.reverse:
            xs = reverse_within_lengths(xs, lengths)
        if hasattr(self.cell, "project_input") and hasattr(self.cell, "step"):
            xs = self.cell.project_input(xs)  # (T, B, G): one product for all steps
        s = self.initial.expand(xs.shape[1], -1) if state is None else _flat(state)
        out, s = self.loop(xs, mask, s)  # (T, B, O), (B, S)
        out = out.masked_fill(~mask, 0.0)
        if self.reverse:
            out = reverse_within_lengths(out, lengths)
        return (out.transpose(0, 1) if self.batch_first else out), _unflat(s, self.template)


class ExportBidirectional(nn.Module):
    """:class:`rnnkit.layers.Bidirectional` on two :class:`ExportRecurrent` layers."""

    def __init__(self, layer: Bidirectional):
        super().__init__()
        self.forward_layer = ExportRecurrent(layer.forward_layer)
        self.backward_layer = ExportRecurrent(layer.backward_layer)
        self.merge = layer._merge

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None):
        s_f, s_b = (None, None) if state is None else state
        out_f, s_f = self.forward_layer(x, lengths, s_f)
        out_b, s_b = self.backward_layer(x, lengths, s_b)
        return self.merge(out_f, out_b), (s_f, s_b)


class ExportStack(nn.Module):
    """An :class:`rnnkit.layers.RNN` or :class:`Stacked` of exportable layers (no dropout: evaluation)."""

    def __init__(self, stack: Stacked):
        super().__init__()
        self.layers = nn.ModuleList(exportable(layer) for layer in stack.layers)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None):
        states = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, lengths, None if state is None else state[i])
            states.append(s)
        return x, states


def exportable(layer: nn.Module) -> nn.Module:
    """The exportable twin of a recurrent layer (same call, same numbers, same parameters); any other
    module (a TCN: convolutions and masks export as they are) is returned unchanged."""
    if isinstance(layer, RNN):
        return ExportStack(layer.stack)
    if isinstance(layer, Stacked):
        return ExportStack(layer)
    if isinstance(layer, Bidirectional):
        return ExportBidirectional(layer)
    if isinstance(layer, Recurrent):
        return ExportRecurrent(layer)
    return layer


def _with(model: nn.Module, **modules: nn.Module) -> nn.Module:
    """A shallow copy of model whose named submodules are replaced; model itself is untouched."""
    clone = copy.copy(model)
    clone._modules = {**model._modules, **modules}
    return clone


# ----- the NTM's step in ranks the ONNX exporter can follow inside a Loop body -----------------------------------

class ExportNTMCell(nn.Module):
    """:class:`rnnkit.memory.ntm.NTMCell`'s step (same parameters, same numbers up to float rounding) written with
    the sizes as constants and positive dims only: inside an ONNX Loop body the TorchScript-based exporter does not
    know the carried state's rank, so the cell's ``unfold`` (circular shift), ``squeeze(-1)`` and ``view(B, K, -1)``
    do not export. Here the shift is the 2S+1 rolled copies of w summed with their weights, reshapes name every size
    but B (-1), and squeezes are index selections."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cell = cell
        self.input_size, self.output_size = cell.input_size, cell.output_size

    def initial_state(self, batch_size, **kwargs):
        return self.cell.initial_state(batch_size, **kwargs)

    def forward(self, x: Tensor, state):
        cell, c = self.cell, self.cell.config
        N, M, R, W, S, K = c.memory_size, c.memory_width, c.read_heads, c.write_heads, c.shift_range, cell.heads_count
        controller_state, reads, previous, memory = state
        previous = previous.reshape(-1, K, N)  # (B, K, N)
        memory = memory.reshape(-1, N, M)  # (B, N, M)
        h, controller_state = cell.controller(torch.cat([x, reads], dim=1), controller_state)  # (B, H)
        # the heads' parameters (NTMCell.head_parameters)
        addressing, writing = cell.heads(h).split([K * sum(cell.address_sizes), W * 2 * M], dim=1)
        key, beta, gate, shifts, gamma = addressing.reshape(-1, K, sum(cell.address_sizes)).split(cell.address_sizes,
                                                                                                  dim=2)
        erase, add = writing.reshape(-1, W, 2 * M).split([M, M], dim=2)
        beta, gate = torch.nn.functional.softplus(beta[:, :, 0]), torch.sigmoid(gate[:, :, 0])  # (B, K)
        gamma, shifts = 1 + torch.nn.functional.softplus(gamma[:, :, 0]), torch.softmax(shifts, dim=2)
        # addressing on M_{t-1} (ntm.address): content, interpolation, shift, sharpening
        dots = torch.matmul(key, memory.transpose(1, 2))  # (B, K, N)
        norms = key.norm(dim=2, keepdim=True) * memory.norm(dim=2).unsqueeze(1)
        w = torch.softmax(beta.unsqueeze(2) * dots / (norms + EPSILON), dim=2)
        g = gate.unsqueeze(2)
        w = g * w + (1 - g) * previous
        shifted = w * shifts[:, :, S:S + 1]  # shift 0
        for j in range(1, S + 1):  # w~(i) = Σ_j s(j) w(i − j): roll by j moves w(i − j) to i
            shifted = shifted + torch.roll(w, j, 2) * shifts[:, :, S + j:S + j + 1]
            shifted = shifted + torch.roll(w, -j, 2) * shifts[:, :, S - j:S - j + 1]
        w = torch.softmax(gamma.unsqueeze(2) * shifted.clamp_min(TINY).log(), dim=2)  # (B, K, N)
        # read M_{t-1}, then write M_t (ntm.read, ntm.write)
        reads = torch.matmul(w[:, :R], memory).reshape(-1, R * M)  # (B, R*M)
        write_w = w[:, R:]  # (B, W, N)
        keep = 1 - write_w.unsqueeze(3) * torch.sigmoid(erase).unsqueeze(2)  # (B, W, N, M)
        keep = keep[:, 0] if W == 1 else keep.prod(dim=1)
        memory = memory * keep + torch.matmul(write_w.transpose(1, 2), torch.tanh(add))  # (B, N, M)
        y = cell.output(torch.cat([h, reads], dim=1))  # (B, O)
        return y, (controller_state, reads, w.reshape(-1, K * N), memory.reshape(-1, N * M))


# ----- graphs: a module of plain tensors in and out, its ports, an example and the eager reference ---------------

@dataclass
class Port:
    name: str
    dtype: str  # "int64" or "float32"
    shape: tuple  # ints and symbols ("B", "T", "S")

    def describe(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Graph:
    """``module(*inputs)`` returns a tuple of tensors; ``example(B, T)`` makes inputs (a padded batch of mixed
    lengths) and ``reference(inputs)`` computes the same outputs with the eager model."""

    name: str
    module: nn.Module
    inputs: list[Port]
    outputs: list[Port]
    example: Callable[[int, int, torch.Generator], tuple]
    reference: Callable[[tuple], tuple]
    notes: list[str] = field(default_factory=list)


def _lengths(B: int, T: int, g: torch.Generator) -> Tensor:
    """(B,) lengths in [1, T], mixed: one sequence fills T, one has a single step (when B > 1)."""
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    if B > 1:
        lengths[-1] = 1
    return lengths


def _ids(B: int, T: int, vocab: int, g: torch.Generator) -> Tensor:
    return torch.randint(0, vocab, (B, T), generator=g)  # random padding too: it must not matter


def _floats(B: int, T: int, F: int, g: torch.Generator) -> Tensor:
    return torch.randn(B, T, F, generator=g)


class _Outputs(nn.Module):
    """Adapts fn(*inputs) -> tuple of tensors to a module (for tracing)."""

    def __init__(self, fn: Callable, **modules: nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.fn = fn

    def forward(self, *inputs):
        return tuple(self.fn(*inputs))


def _state_names(template) -> list[str]:
    count = len(_parts(template))
    return ["h"] if count == 1 else ["h", "c"] if count == 2 else [f"state{i}" for i in range(count)]


def _by_part(states: list) -> list[Tensor]:
    """An RNN's per-layer states -> one (L, B, H) tensor per state part (h; or h and c), torch's layout."""
    per_layer = [_parts(s) for s in states]
    return [torch.stack([p[k] for p in per_layer]) for k in range(len(per_layer[0]))]


def _by_layer(parts: list[Tensor], template) -> list:
    """The inverse of _by_part: (L, B, H) tensors -> per-layer states shaped like template (a cell's state)."""
    return [_rebuild([p[l] for p in parts], template) for l in range(parts[0].shape[0])]


def _lm_graphs(model) -> list[Graph]:
    c = model.config
    if c.cell == "tcn":
        return [_tcn_lm_graph(model)]
    clone = _with(model, rnn=exportable(model.rnn))
    template = model.rnn.cells[0].initial_state(1)
    names = _state_names(template)
    L, H = c.layers, c.hidden

    def run(ids, lengths, *state):
        logits, states = clone(ids, _by_layer(list(state), template), lengths)
        return (logits, *_by_part(states))

    def example(B, T, g):
        return (_ids(B, T, c.vocab_size, g), _lengths(B, T, g), *(0.5 * torch.randn(L, B, H, generator=g)
                                                                   for _ in names))

    def reference(inputs):
        ids, lengths, *state = inputs
        logits, states = model(ids, _by_layer(list(state), template), lengths)
        return (logits, *_by_part(states))

    inputs = [Port("ids", "int64", ("B", "T")), Port("lengths", "int64", ("B",)),
              *[Port(n, "float32", (L, "B", H)) for n in names]]
    outputs = [Port("logits", "float32", ("B", "T", c.vocab_size)), *[Port(f"{n}_n", "float32", (L, "B", H)) for n in names]]
    notes = [f"{', '.join(names)}: every layer's state, zeros to start a text; {', '.join(n + '_n' for n in names)}: "
             "each sequence's state after its last valid step (feed it back to continue)",
             "logits at t >= lengths[b] are those of a zero RNN output (padding)"]
    return [Graph("model", _Outputs(run, model=clone), inputs, outputs, example, reference, notes)]


def _tcn_lm_graph(model) -> Graph:
    """A TCN language model reads unpadded streams (no lengths): it is causal, so padding after a text's end
    never changes the logits before it."""
    V = model.config.vocab_size

    def run(ids):
        return (model(ids)[0],)

    return Graph("model", _Outputs(run, model=model), [Port("ids", "int64", ("B", "T"))],
                 [Port("logits", "float32", ("B", "T", V))], lambda B, T, g: (_ids(B, T, V, g),),
                 lambda inputs: (model(inputs[0])[0],),
                 notes=["a TCN: logits[:, t] read ids[:, :t + 1] only (causal), so pad texts at the end; no "
                        "state is carried between calls"])


def _classifier_graphs(model) -> list[Graph]:
    c = model.config
    encoder = getattr(model, "encoder", None)
    clone = model if encoder is None else _with(model, encoder=exportable(encoder))
    ids = c.vocab_size > 0
    classes = 1 if c.binary else c.num_classes

    def run(x, lengths):
        return (clone(x, lengths=lengths)[0],)

    def example(B, T, g):
        x = _ids(B, T, c.vocab_size, g) if ids else _floats(B, T, c.input_size, g)
        return x, _lengths(B, T, g)

    def reference(inputs):
        return (model(inputs[0], lengths=inputs[1])[0],)

    x_port = Port("ids", "int64", ("B", "T")) if ids else Port("x", "float32", ("B", "T", c.input_size))
    return [Graph("model", _Outputs(run, model=clone), [x_port, Port("lengths", "int64", ("B",))],
                  [Port("logits", "float32", ("B", classes))], example, reference,
                  notes=["logits (B, 1): binary, p(class 1) = sigmoid; (B, C): softmax over the classes"])]


def _sequence_graphs(model, what: str) -> list[Graph]:
    """SequenceModel (adding, copy, pattern, the ntm task's LSTM baseline) and NTM: x (B, T, F), lengths."""
    c = model.config
    if hasattr(model, "layer"):  # NTM: one Recurrent of an NTMCell, whose step is rewritten for ONNX
        clone = _with(model, layer=exportable(_with(model.layer, cell=ExportNTMCell(model.cell))))
        out_shape = ("B", "T", c.output_size)
    else:
        clone = _with(model, encoder=exportable(model.encoder))
        out_shape = ("B", c.output_size) if c.readout == "last" else ("B", "T", c.output_size)

    def run(x, lengths):
        return (clone(x, lengths=lengths)[0],)

    def example(B, T, g):
        return _floats(B, T, c.input_size, g), _lengths(B, T, g)

    def reference(inputs):
        return (model(inputs[0], lengths=inputs[1])[0],)

    return [Graph("model", _Outputs(run, model=clone),
                  [Port("x", "float32", ("B", "T", c.input_size)), Port("lengths", "int64", ("B",))],
                  [Port("preds", "float32", out_shape)], example, reference, notes=[what])]


def _forecast_graphs(model) -> list[Graph]:
    c = model.config
    encoder = getattr(model, "encoder", None)
    clone = model if encoder is None else _with(model, encoder=exportable(encoder))

    def run(x):
        return (clone(x)[0],)

    def example(B, T, g):  # a forecaster reads windows of exactly c.window steps
        return (_floats(B, c.window, c.input_size, g),)

    def reference(inputs):
        return (model(inputs[0])[0],)

    return [Graph("model", _Outputs(run, model=clone), [Port("x", "float32", ("B", c.window, c.input_size))],
                  [Port("preds", "float32", ("B", c.window) if c.seq2seq else ("B",))], example, reference,
                  notes=[f"x: windows of {c.window} normalised steps (normalisation.json, columns.json); "
                         "preds in normalised units of the target"])]


class _ZeroState(nn.Module):
    """A layer whose ``initial_state(B)`` is traceable: the cells check that B is an int, which a traced batch
    size is not (a 0-dim tensor). Everything else is the layer's own."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.template = map_state(lambda s: s.detach(), layer.initial_state(1))

    def initial_state(self, batch_size, *, device=None, dtype=None):
        return map_state(lambda s: s.to(device=device, dtype=dtype).expand(batch_size, -1), self.template)

    def forward(self, *args, **kwargs):
        return self.layer(*args, **kwargs)

    def step(self, x, state=None):
        if state is None:  # RNN.step would call the cells' initial_state, which a traced B does not pass
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        return self.layer.step(x, state)


def seq2seq_graphs(model) -> list[Graph]:
    """Two graphs around which any decoding loop (greedy, beam) runs: ``encoder`` reads the source once,
    ``decoder_step`` takes the previous token and the state and returns the next token's logits and state."""
    from .attention import source_mask
    from .models.seq2seq import DecoderState

    c = model.config
    clone = _with(model, encoder=exportable(model.encoder), decoder=_ZeroState(model.decoder))
    template = model.decoder.cells[0].initial_state(1)
    names = _state_names(template)
    L, H = c.layers, c.hidden
    has_keys = model.attention is not None and model.attention.keys(torch.zeros(1, 1, H)) is not None
    A = model.attention.keys(torch.zeros(1, 1, H)).shape[-1] if has_keys else None

    query = c.attention == "bahdanau"  # the only decoder that reads s_{i-1} (state.output) besides the RNN state
    local_m = c.attention == "local-m"  # the only one that reads the position
    attends = model.attention is not None

    def encoded(state: DecoderState) -> tuple:
        return (state.memory, *([state.keys] if has_keys else []), *_by_part(state.rnn),
                *([state.output] if query else []), *([state.feed] if c.feeds_input else []))

    def encode(src, lengths):
        return encoded(clone.encode(src, lengths))

    def encode_example(B, T, g):
        return _ids(B, T, c.src_vocab_size, g), _lengths(B, T, g)

    def encode_reference(inputs):
        return encoded(model.encode(*inputs))

    def decoder_state(inputs) -> tuple[Tensor, DecoderState]:
        y_prev, *rest = inputs
        parts, rest = rest[:len(names)], rest[len(names):]
        output, rest = (rest[0], rest[1:]) if query else (parts[0][-1], rest)  # else unused: the top layer's h
        feed, rest = (rest[0], rest[1:]) if c.feeds_input else (None, rest)
        if not attends:  # Sutskever's decoder reads its RNN state only
            return y_prev, DecoderState(rnn=_by_layer(list(parts), template), output=output, feed=None, step=0, memory=None,
                                        keys=None, mask=None)
        memory, rest = rest[0], rest[1:]
        keys, rest = (rest[0], rest[1:]) if has_keys else (None, rest)
        lengths, step = (rest[0], rest[1]) if local_m else (rest[0], 0)
        state = DecoderState(rnn=_by_layer(list(parts), template), output=output, feed=feed, step=step, memory=memory,
                             keys=keys, mask=source_mask(lengths, memory.shape[1]))
        return y_prev, state

    def stepped(logits, state: DecoderState) -> tuple:
        return (logits, *_by_part(state.rnn), *([state.output] if query else []), *([state.feed] if c.feeds_input else []),
                *([state.weights] if attends else []))

    def step(*inputs):
        return stepped(*clone.step(*decoder_state(inputs)))

    def step_example(B, T, g):  # T is the source length S here
        def r(*shape):
            return 0.5 * torch.randn(*shape, generator=g)

        return (torch.randint(0, c.tgt_vocab_size, (B,), generator=g), *(r(L, B, H) for _ in names),
                *([r(B, H)] if query else []), *([r(B, H)] if c.feeds_input else []),
                *([r(B, T, H), *([r(B, T, A)] if has_keys else []), _lengths(B, T, g)] if attends else []),
                *([torch.randint(0, T, (B,), generator=g)] if local_m else []))

    def step_reference(inputs):
        return stepped(*model.step(*decoder_state(inputs)))

    state_ports = [Port(n, "float32", (L, "B", H)) for n in names]
    extra = ([Port("keys", "float32", ("B", "S", A))] if has_keys else [])
    feed = [Port("feed", "float32", ("B", H))] if c.feeds_input else []
    output = [Port("output", "float32", ("B", H))] if query else []
    encoder = Graph("encoder", _Outputs(encode, model=clone),
                    [Port("src", "int64", ("B", "S")), Port("src_lengths", "int64", ("B",))],
                    [Port("memory", "float32", ("B", "S", H)), *extra, *state_ports, *output, *feed],
                    encode_example, encode_reference,
                    notes=["src: source ids ending with <eos> (src_vocab.json), padded; the outputs are the inputs "
                           "of decoder_step of the same names"])
    memory = [Port("memory", "float32", ("B", "S", H)), *extra, Port("src_lengths", "int64", ("B",))] if attends else []
    step_inputs = [Port("y_prev", "int64", ("B",)), *state_ports, *output, *feed, *memory,
                   *([Port("step", "int64", ("B",))] if local_m else [])]
    step_outputs = [Port("logits", "float32", ("B", c.tgt_vocab_size)), *[Port(f"{n}_n", "float32", (L, "B", H))
                                                                          for n in names],
                    *[Port("output_n", "float32", ("B", H))] * query, *[Port("feed_n", "float32", ("B", H))] * bool(feed),
                    *([Port("weights", "float32", ("B", "S"))] if attends else [])]
    decoder = Graph("decoder_step", _Outputs(step, model=clone), step_inputs, step_outputs, step_example,
                    step_reference,
                    notes=[f"y_prev: <bos> (id {c.bos_id}) first, then the chosen token (tgt_vocab.json); stop at "
                           f"<eos> (id {c.eos_id}); " + ("step: the position of the token to produce (0 first); "
                                                          if local_m else "") +
                           "feed the *_n outputs back as the next step's inputs of the same names"])
    return [encoder, decoder]


# ----- ACT: a data-dependent number of ponder steps, a scripted while loop inside the loop over time -------------

class _PonderStep(nn.Module):
    """One ponder step, traced: (x^n (B, F+1), s (B, S)) -> y^n (B, H), s^n (B, S), the halting unit h^n (B,)."""

    def __init__(self, act: nn.Module, template):
        super().__init__()
        self.cell, self.halt, self.template = act.cell, act.halt, template

    def forward(self, x: Tensor, s: Tensor):
        y, state = self.cell(x, _unflat(s, self.template))
        return y, _flat(state), torch.sigmoid(self.halt(y))[:, 0]


class _PonderLoop(nn.Module):
    """:meth:`rnnkit.memory.act.ACT.forward`, scripted: for every t, ponder while some row still runs and n <=
    max_steps, with the same per-row halting, remainder and mean field as ``ACT.step``. xs (T, B, F), mask
    (T, B, 1) bool, s (B, S) -> y (T, B, H), steps N(t) and remainders R(t) (T, B) (0 at padded steps), s_T."""

    def __init__(self, step: nn.Module, epsilon: float, max_steps: int, output_size: int):
        super().__init__()
        self.step, self.epsilon, self.max_steps, self.output_size = step, epsilon, max_steps, output_size

    def forward(self, xs: Tensor, mask: Tensor, s: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        ys: List[Tensor] = []
        all_steps: List[Tensor] = []
        all_remainders: List[Tensor] = []
        for t in range(xs.size(0)):
            x = xs[t]  # (B, F)
            flag = torch.zeros_like(x[:, :1])
            first, later = torch.cat([x, flag + 1], dim=1), torch.cat([x, flag], dim=1)  # x^1_t, x^n_t (n > 1)
            total = torch.zeros_like(x[:, 0])  # Σ h^n of the rows still pondering
            running = torch.ones_like(total, dtype=torch.bool)
            steps, remainder = torch.zeros_like(total), torch.zeros_like(total)
            y_mean = x.new_zeros([x.size(0), self.output_size])
            s_mean = torch.zeros_like(s)
            state = s
            n = 0
            go = True
            while go:
                n += 1
                y, state, h = self.step(first if n == 1 else later, state)
                if n == self.max_steps:
                    halts = running
                else:
                    halts = running & (total + h >= 1 - self.epsilon)  # n = N(t) for these rows
                p = torch.where(halts, 1 - total, torch.where(running, h, torch.zeros_like(h)))  # 0 once halted
                remainder = torch.where(halts, 1 - total, remainder)
                steps = torch.where(halts, torch.full_like(steps, n), steps)
                total = total + torch.where(running & ~halts, h, torch.zeros_like(h))
                running = running & ~halts
                y_mean = y_mean + p.unsqueeze(1) * y
                s_mean = s_mean + p.unsqueeze(1) * state
                go = n < self.max_steps and bool(running.any())
            valid = mask[t]  # (B, 1)
            s = torch.where(valid, s_mean, s)  # padded steps keep the state
            ys.append(y_mean * valid.to(y_mean.dtype))
            all_steps.append(steps * valid[:, 0].to(steps.dtype))
            all_remainders.append(remainder * valid[:, 0].to(remainder.dtype))
        return torch.stack(ys), torch.stack(all_steps), torch.stack(all_remainders), s


class ExportACT(nn.Module):
    """:class:`rnnkit.memory.act.ACT` as an exportable graph: ``forward(x, lengths) -> (outputs (B, T, H),
    Halting of (B, T))`` from the cell's initial state."""

    def __init__(self, act: nn.Module):
        super().__init__()
        with torch.no_grad():
            template = map_state(lambda s: s.detach(), act.cell.initial_state(1))
            self.register_buffer("initial", _flat(template), persistent=False)  # (1, S)
            B = EXAMPLE_BATCH
            x = torch.zeros(B, act.cell.input_size, dtype=self.initial.dtype, device=self.initial.device)
            with _quiet():
                step = torch.jit.trace(_PonderStep(act, template), (x, self.initial.expand(B, -1).contiguous()),
                                       check_trace=False)
                self.loop = torch.jit.script(_PonderLoop(step, act.epsilon, act.max_steps, act.output_size))

    def forward(self, x: Tensor, lengths: Tensor):
        xs = x.transpose(0, 1)  # (T, B, F)
        mask = (torch.arange(xs.shape[0], device=xs.device)[:, None] < lengths.to(xs.device)[None, :])[..., None]
        out, steps, remainder, _ = self.loop(xs, mask, self.initial.expand(xs.shape[1], -1))
        steps, remainder = steps.transpose(0, 1), remainder.transpose(0, 1)  # (B, T)
        return out.transpose(0, 1), Halting(steps, remainder, steps + remainder)


def _act_graphs(model) -> list[Graph]:
    c = model.config
    clone = _with(model, act=ExportACT(model.act))

    def run(x, lengths):
        out = clone.act(x, lengths)
        return (model.head(out[0]), out[1].steps, out[1].cost)

    def example(B, T, g):
        return _floats(B, T, c.input_size, g), _lengths(B, T, g)

    def reference(inputs):
        out, _ = model(inputs[0], lengths=inputs[1])
        return (out.logits, out.halting.steps, out.halting.cost)

    return [Graph("model", _Outputs(run, model=clone),
                  [Port("x", "float32", ("B", "T", c.input_size)), Port("lengths", "int64", ("B",))],
                  [Port("logits", "float32", ("B", "T", c.output_size)), Port("steps", "float32", ("B", "T")),
                   Port("cost", "float32", ("B", "T"))], example, reference,
                  notes=[f"ACT parity: x (B, 1, {c.input_size}) vectors, logits of parity 1; steps N(t) (at most "
                         f"{c.max_steps}) and the ponder cost N(t) + R(t) of every input, 0 at padded steps"])]


# ----- DMN: the GRUs over words, facts and the question, and the attention-GRU over the facts, as scripted loops --

class _AttentionStep(nn.Module):
    """GRU(s_i, h_{i-1}) of the attention-GRU, traced: projected s_i (B, 3H), h (B, H) -> the candidate (B, H)."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cell = cell

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return self.cell.step(x, h)[0]


class _FactLoop(nn.Module):
    """:meth:`rnnkit.models.dmn.EpisodicMemory.episode`, scripted: projected (F, B, 3H), g (F, B, 1), h_0 (B, H)
    -> e = h_F (B, H), with h_i = h_{i-1} + g_i (GRU(s_i, h_{i-1}) - h_{i-1})."""

    def __init__(self, step: nn.Module):
        super().__init__()
        self.step = step

    def forward(self, projected: Tensor, g: Tensor, h: Tensor) -> Tensor:
        for i in range(projected.size(0)):
            h = h + g[i] * (self.step(projected[i], h) - h)
        return h


class ExportEpisodicMemory(nn.Module):
    """:class:`rnnkit.models.dmn.EpisodicMemory` (same call, same parameters) with the episode a scripted loop over
    the facts; the T passes are a fixed number, unrolled when traced."""

    def __init__(self, memory: nn.Module):
        super().__init__()
        self.memory = memory
        H, B = memory.hidden, EXAMPLE_BATCH
        with torch.no_grad(), _quiet():
            x = memory.attention_gru.project_input(torch.zeros(B, H))
            step = torch.jit.trace(_AttentionStep(memory.attention_gru), (x, torch.zeros(B, H)), check_trace=False)
            self.facts = torch.jit.script(_FactLoop(step))

    def forward(self, facts: Tensor, q: Tensor, fact_mask: Tensor):
        memory = self.memory
        projected = memory.attention_gru.project_input(facts).transpose(0, 1)  # (F, B, 3H)
        m, gates, scores = q, [], []
        for t in range(memory.passes):
            Z = memory.scores(facts, q, m)
            g = memory.gates(Z, fact_mask)
            e = self.facts(projected, g.transpose(0, 1)[..., None], torch.zeros_like(q))  # (B, H)
            m = memory.update_memory(t, m, e, q)
            gates.append(g)
            scores.append(Z)
        return m, torch.stack(gates, dim=1), torch.stack(scores, dim=1)


class ExportStoryGRU(nn.Module):
    """Kumar et al.'s input module (``DMN._story_gru``) without the data-dependent story length: the GRU runs over
    all F x W word slots in order, skipping padding words (the state is kept there), so its output at each
    sentence's last real word is the eager model's. words (B, F, W, H), word_counts, fact_mask (B, F) -> (B, F, H)."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.layer = ExportRecurrent(rnn.stack.layers[0])

    def forward(self, words: Tensor, word_counts: Tensor, fact_mask: Tensor) -> Tensor:
        B, F_, W, H = words.shape
        layer = self.layer
        word_mask = torch.arange(W, device=words.device) < word_counts[..., None]  # (B, F, W)
        xs = layer.cell.project_input(words.reshape(B, F_ * W, H).transpose(0, 1))  # (F*W, B, 3H)
        out, _ = layer.loop(xs, word_mask.reshape(B, F_ * W).transpose(0, 1)[..., None], layer.initial.expand(B, -1))
        ends = torch.arange(F_, device=words.device) * W + (word_counts - 1).clamp(min=0)  # (B, F): last words
        return out.transpose(0, 1).gather(1, ends[..., None].expand(B, F_, H)) * fact_mask[..., None]


def _dmn_ids(B: int, T: int, V: int, pad: int, counts: Tensor, g: torch.Generator) -> Tensor:
    """(B, T) ids other than pad in the first counts[b] places, pad after."""
    ids = torch.randint(0, V - 1, (B, T), generator=g)
    ids = ids + (ids >= pad).long()
    return ids.masked_fill(torch.arange(T)[None, :] >= counts[:, None], pad)


def dmn_graphs(model) -> list[Graph]:
    """The softmax answer: one graph, facts and question -> logits and gates. The GRU decoder: ``encoder`` (facts,
    question -> a_0 = m^T, q, gates) and ``decoder_step`` (y_prev, a, q -> logits, a_n), for a greedy loop around it
    as ``DMN.predict`` runs (y_prev = <eos> first)."""
    c = model.config
    H, V, T, pad = c.hidden, c.vocab_size, c.passes, c.pad_id
    modules = {"memory": ExportEpisodicMemory(model.memory), "question_rnn": exportable(model.question_rnn)}
    if model.fusion is not None:
        modules["fusion"] = exportable(model.fusion)
    if model.sentence_rnn is not None:
        modules["story"] = ExportStoryGRU(model.sentence_rnn)
    clone = _with(model, **modules)
    if model.sentence_rnn is not None:  # DMN.encode_facts calls self._story_gru(words, word_counts, fact_mask)
        vars(clone)["_story_gru"] = clone.story  # an instance attribute: it shadows the method

    def encode(facts, question):
        s, fact_mask = clone.encode_facts(facts)
        q = clone.encode_question(question)
        m, gates, _ = clone.memory(s, q, fact_mask)
        return m, q, gates

    def encode_reference(facts, question):
        s, fact_mask = model.encode_facts(facts)
        q = model.encode_question(question)
        m, gates, _ = model.memory(s, q, fact_mask)
        return m, q, gates

    def example(B, F_, g):  # F facts; W words and Q question words vary with F too
        W, Q = max(2, F_ - 3), max(2, F_ - 4)
        fact_counts = _lengths(B, F_, g)
        word_counts = torch.randint(1, W + 1, (B, F_), generator=g)
        word_counts = word_counts.masked_fill(torch.arange(F_)[None, :] >= fact_counts[:, None], 0)
        facts = _dmn_ids(B * F_, W, V, pad, word_counts.flatten(), g).view(B, F_, W)
        return facts, _dmn_ids(B, Q, V, pad, _lengths(B, Q, g), g)

    fact_ports = [Port("facts", "int64", ("B", "F", "W")), Port("question", "int64", ("B", "Q"))]
    gates = Port("gates", "float32", ("B", T, "F"))
    ids = (f"facts: word ids (vocab.json) of each story's facts, one row per fact, the real facts first, pad (id {pad}) "
           "words and rows after; question: its word ids, pad after")
    if model.decoder is None:
        def run(facts, question):
            m, q, g = encode(facts, question)
            return clone.answer_out(torch.cat([m, q], dim=-1))[:, None], g

        def reference(inputs):
            _, out = model.predict(*inputs)
            return out.logits, out.gates

        return [Graph("model", _Outputs(run, model=clone), fact_ports,
                      [Port("logits", "float32", ("B", 1, V)), gates], example, reference,
                      notes=[ids, f"logits: the one-word answer (argmax over all words but pad); gates: what each of "
                             f"the {T} passes attended to, 0 on padded facts"])]

    def step(y_prev, a, q):
        a, _ = model.decoder(torch.cat([model.embedding(y_prev), q], dim=-1), a)
        return model.answer_out(a), a

    def step_example(B, F_, g):
        return (torch.randint(0, V, (B,), generator=g), 0.5 * torch.randn(B, H, generator=g),
                0.5 * torch.randn(B, H, generator=g))

    encoder = Graph("encoder", _Outputs(encode, model=clone), fact_ports,
                    [Port("a", "float32", ("B", H)), Port("q", "float32", ("B", H)), gates], example,
                    lambda inputs: encode_reference(*inputs),
                    notes=[ids, "a: the decoder's first state a_0 = m^T; q: the question; both are inputs of "
                           "decoder_step"])
    decoder = Graph("decoder_step", _Outputs(step, model=model),
                    [Port("y_prev", "int64", ("B",)), Port("a", "float32", ("B", H)), Port("q", "float32", ("B", H))],
                    [Port("logits", "float32", ("B", V)), Port("a_n", "float32", ("B", H))], step_example,
                    lambda inputs: step(*inputs),
                    notes=[f"y_prev: <eos> (id {c.eos_id}) first, then the chosen word (argmax but pad); stop at "
                           f"<eos> or after {c.max_answer_len + 1} steps; feed a_n back as a"])
    return [encoder, decoder]


# ----- the five image, document and music tasks ----------------------------------------------------------------

def _music_graphs(model) -> list[Graph]:
    """frames (B, T, 88) and lengths -> logits of the next frame (B, T, 88), and the RNN's state as the LM's."""
    c = model.config
    K = c.keys
    notes = ["frames: piano-roll frames of 0 / 1, padded after each piece's length; logits: p(key sounds in the "
             "next frame) = sigmoid; logits at t >= lengths[b] are those of padding"]
    if c.model == "tcn":
        def run(x, lengths):
            return (model(x, lengths=lengths)[0],)

        return [Graph("model", _Outputs(run, model=model),
                      [Port("frames", "float32", ("B", "T", K)), Port("lengths", "int64", ("B",))],
                      [Port("logits", "float32", ("B", "T", K))],
                      lambda B, T, g: (_frames(B, T, K, g), _lengths(B, T, g)),
                      lambda inputs: (model(inputs[0], lengths=inputs[1])[0],),
                      notes=notes + ["a TCN: no state is carried between calls"])]
    clone = _with(model, encoder=exportable(model.encoder))
    template = model.encoder.cells[0].initial_state(1)
    names = _state_names(template)
    L, H = c.layers, c.hidden

    def run(x, lengths, *state):
        logits, states = clone(x, _by_layer(list(state), template), lengths)
        return (logits, *_by_part(states))

    def example(B, T, g):
        return (_frames(B, T, K, g), _lengths(B, T, g), *(0.5 * torch.randn(L, B, H, generator=g) for _ in names))

    def reference(inputs):
        x, lengths, *state = inputs
        logits, states = model(x, _by_layer(list(state), template), lengths)
        return (logits, *_by_part(states))

    return [Graph("model", _Outputs(run, model=clone),
                  [Port("frames", "float32", ("B", "T", K)), Port("lengths", "int64", ("B",)),
                   *[Port(n, "float32", (L, "B", H)) for n in names]],
                  [Port("logits", "float32", ("B", "T", K)), *[Port(f"{n}_n", "float32", (L, "B", H)) for n in names]],
                  example, reference,
                  notes=notes + [f"{', '.join(names)}: every layer's state, zeros to start a piece; the *_n outputs: "
                                 "each piece's state after its last valid frame (feed it back to continue)"])]


def _frames(B: int, T: int, K: int, g: torch.Generator) -> Tensor:
    return (torch.rand(B, T, K, generator=g) < 0.1).float()


def _han_graphs(model) -> list[Graph]:
    """HAN without the data-dependent parts of ``HAN.attend`` (boolean indexing of the real sentences, dropping
    all-padding columns): the word GRU reads all B x S sentence slots (a padding sentence as one padding word),
    whose summaries are zeroed; every padded position gets weight 0, so the numbers are the eager model's."""
    c = model.config
    clone = _with(model, word_encoder=exportable(model.word_encoder),
                  sentence_encoder=exportable(model.sentence_encoder))
    classes = 1 if c.num_classes == 2 else c.num_classes

    def run(docs):
        B, S, W = docs.shape
        word_len = (docs != c.pad_id).sum(-1)  # (B, S)
        sent_valid = word_len > 0  # (B, S)
        n_sent = sent_valid.sum(-1)  # (B,)
        flat = docs.reshape(-1, W)  # (B*S, W): every sentence slot
        flat_len = word_len.reshape(-1).clamp(min=1)  # a padding sentence reads one word (never used)
        h, _ = clone.word_encoder(clone.embed(flat), lengths=flat_len)  # (B*S, W, 2H)
        s, alpha_w = clone.word_attention(h, torch.arange(W, device=docs.device)[None, :] < flat_len[:, None])
        valid = sent_valid.reshape(-1, 1).to(s.dtype)
        sentences = (s * valid).reshape(B, S, -1)  # (B, S, 2H), zeros at padding sentences
        hs, _ = clone.sentence_encoder(sentences, lengths=n_sent)
        v, alpha_s = clone.sentence_attention(hs, sent_valid)
        return clone.head(v), (alpha_w * valid).reshape(B, S, W), alpha_s

    def example(B, T, g):  # S = T sentences of up to W words
        S, W = T, max(2, T - 2)
        sent_counts = _lengths(B, S, g)
        word_counts = torch.randint(1, W + 1, (B, S), generator=g)
        word_counts = word_counts.masked_fill(torch.arange(S)[None, :] >= sent_counts[:, None], 0)
        return (_dmn_ids(B * S, W, c.vocab_size, c.pad_id, word_counts.flatten(), g).view(B, S, W),)

    def reference(inputs):
        (docs,) = inputs
        B, S, W = docs.shape
        logits, ww, ws = model.attend(docs)  # the weights without the all-padding columns: pad them back
        return (logits, torch.nn.functional.pad(ww, (0, W - ww.shape[2], 0, S - ww.shape[1])),
                torch.nn.functional.pad(ws, (0, S - ws.shape[1])))

    return [Graph("model", _Outputs(run, model=clone), [Port("docs", "int64", ("B", "S", "W"))],
                  [Port("logits", "float32", ("B", classes)), Port("word_weights", "float32", ("B", "S", "W")),
                   Port("sentence_weights", "float32", ("B", "S"))], example, reference,
                  notes=[f"docs: word ids (tokenizer.json), one row per sentence, pad (id {c.pad_id}) after a "
                         "sentence's words and as whole rows after a document's sentences; logits (B, 1): p(positive) "
                         "= sigmoid, (B, C): softmax; the weights are 0 at padding"])]


class _DiagonalLoop(nn.Module):
    """:func:`rnnkit.layers.mdlstm.wavefront`, scripted, on diagonals indexed by row: xs (K, D, B, H, 5Hd) the
    input pre-activations of position (i, k - i) at row i of diagonal k (anything where that is outside the image),
    valid (K, 1, 1, H, 1) 1.0 inside the image, U (D, 1, 2Hd, 5Hd) -> h of every diagonal (K, D, B, H, Hd), and
    the last diagonal's c (D, B, H, Hd). Row i's upper neighbour is row i - 1 of diagonal k - 1, its left one row
    i; positions outside the image are kept at zero, the zero state of a missing neighbour."""

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden

    def forward(self, xs: Tensor, valid: Tensor, U: Tensor) -> Tuple[Tensor, Tensor]:
        Hd = self.hidden
        h = torch.zeros_like(xs[0][:, :, :, 0:Hd])  # (D, B, H, Hd)
        c = torch.zeros_like(h)
        hs: List[Tensor] = []
        for k in range(xs.size(0)):
            zero = torch.zeros_like(h[:, :, 0:1])
            h_up = torch.cat([zero, h[:, :, 0:h.size(2) - 1]], 2)
            c_up = torch.cat([zero, c[:, :, 0:c.size(2) - 1]], 2)
            z = xs[k] + torch.matmul(torch.cat([h_up, h], 3), U)  # (D, B, H, 5Hd)
            c = (torch.sigmoid(z[:, :, :, 0:Hd]) * torch.tanh(z[:, :, :, 3 * Hd:4 * Hd])
                 + torch.sigmoid(z[:, :, :, Hd:2 * Hd]) * c_up + torch.sigmoid(z[:, :, :, 2 * Hd:3 * Hd]) * c)
            h = torch.sigmoid(z[:, :, :, 4 * Hd:5 * Hd]) * torch.tanh(c)
            h, c = h * valid[k], c * valid[k]
            hs.append(h)
        return torch.stack(hs), c


class ExportMDLSTM(nn.Module):
    """:class:`rnnkit.layers.mdlstm.MDLSTM` (same call, parameters and numbers) for images of any H x W: the
    wavefront's H + W - 1 diagonals are a scripted loop (:class:`_DiagonalLoop`) over fixed-size diagonals
    indexed by row, gathered from and back to row-major positions with index tensors made from the shape."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        with _quiet():
            self.loop = torch.jit.script(_DiagonalLoop(layer.config.hidden_size))

    def forward(self, x: Tensor):
        from .layers.mdlstm import CORNERS

        layer = self.layer
        flipped = torch.stack([x.flip(CORNERS[n]) if CORNERS[n] else x for n in layer.corners])  # (D, B, H, W, F)
        w_ih = torch.stack([cell.weight_ih for cell in layer.cells])
        bias = torch.stack([cell.bias_ih + cell.bias_hh for cell in layer.cells])
        xw = torch.einsum("dbhwf,dgf->dbhwg", flipped, w_ih) + bias[:, None, None, None]  # (D, B, H, W, 5Hd)
        D, B, H, W, G = xw.shape
        rows = torch.arange(H, device=x.device)
        cols = torch.arange(H + W - 1, device=x.device)[None, :] - rows[:, None]  # (H, K): column of row i on k
        inside = (cols >= 0) & (cols < W)
        index = torch.where(inside, cols, torch.zeros_like(cols))
        xs = xw.gather(3, index[None, None, :, :, None].expand(D, B, H, index.shape[1], G))  # (D, B, H, K, 5Hd)
        xs = xs.permute(3, 0, 1, 2, 4)  # (K, D, B, H, 5Hd)
        valid = inside.t()[:, None, None, :, None].to(xw.dtype)  # (K, 1, 1, H, 1)
        U = torch.stack([cell.weight_hh for cell in layer.cells]).transpose(1, 2)[:, None]  # (D, 1, 2Hd, 5Hd)
        hs, c = self.loop(xs, valid, U)  # (K, D, B, H, Hd), (D, B, H, Hd)
        K, Hd = hs.shape[0], hs.shape[4]
        where = ((rows[:, None] + torch.arange(W, device=x.device)[None, :]) * H + rows[:, None]).reshape(-1)
        h = hs.permute(1, 2, 0, 3, 4).reshape(D, B, K * H, Hd).index_select(2, where).reshape(D, B, H, W, Hd)
        outs = [h[d].flip(CORNERS[n]) if CORNERS[n] else h[d] for d, n in enumerate(layer.corners)]
        merged = torch.cat(outs, -1) if layer.config.merge == "concat" else torch.stack(outs).sum(0)
        return merged, (hs[-1][:, :, -1], c[:, :, -1])


def _mdlstm_graphs(model) -> list[Graph]:
    """images (B, H, W) of any H x W with sides multiples of the patch (the run's size is the trained one; the
    mean over positions takes any other) -> logits (B, C)."""
    c = model.config
    p = c.patch
    layers = nn.ModuleList(ExportMDLSTM(layer) for layer in model.layers)

    def run(images):
        B, H, W = images.shape
        x = images.reshape(B, -1, p, W)  # b (h p) W -> b h p W
        x = x.reshape(x.shape[0], x.shape[1], p, -1, p).permute(0, 1, 3, 2, 4)  # b h p w q -> b h w p q
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2], p * p)  # (B, h, w, p*p), MDLSTMClassifier.patches
        for layer in layers:
            x, _ = layer(x)  # (B, h, w, D*Hd)
        return (model.head(x.mean(dim=(1, 2))),)

    def example(B, T, g):  # h x w positions vary with T: 3 x 2 traced, 5 x 4 checked
        return (torch.rand(B, p * max(1, T // 2), p * max(1, T // 2 - 1), generator=g),)

    def reference(inputs):
        sized = copy.copy(model)
        sized.config = replace(c, image_size=tuple(inputs[0].shape[1:]))  # the model checks the trained size only
        return (sized(inputs[0])[0],)

    return [Graph("model", _Outputs(run, model=model, layers=layers), [Port("images", "float32", ("B", "H", "W"))],
                  [Port("logits", "float32", ("B", c.num_classes))], example, reference,
                  notes=[f"images: pixels in [0, 1]; trained on {c.image_size[0]} x {c.image_size[1]}; H and W must "
                         f"be multiples of the patch {p}; logits: softmax over the {c.num_classes} digits"])]


def _captions_graphs(model) -> list[Graph]:
    """seq2seq's two graphs: ``encoder`` (image -> the regions, their attention keys, h_0, c_0) and
    ``decoder_step`` (y_prev, h, c [, regions, keys] -> logits, h_n, c_n [, weights])."""
    from .models.seq2seq import DecoderState

    c = model.config
    S, H, V = c.image_size, c.hidden, c.vocab_size
    clone = _with(model, decoder=_ZeroState(model.decoder))
    C, L = model.encoder.out_channels, c.grid * c.grid
    attends = model.attention is not None
    A = model.attention.keys(torch.zeros(1, 1, C)).shape[-1] if attends else None

    def encoded(state: DecoderState) -> tuple:
        h, cc = state.rnn[0]
        return (*([state.memory, state.keys] if attends else []), h, cc)

    def decoder_state(h, cc, memory=None, keys=None) -> DecoderState:
        mask = None if memory is None else torch.ones_like(memory[..., 0], dtype=torch.bool)  # (B, L)
        return DecoderState(rnn=[(h, cc)], output=h, feed=None, step=0, memory=memory, keys=keys, mask=mask)

    def stepped(logits, state: DecoderState) -> tuple:
        h, cc = state.rnn[0]
        return (logits, h, cc, *([state.weights] if attends else []))

    def step(y_prev, h, cc, *memory):
        return stepped(*clone.step(y_prev, decoder_state(h, cc, *memory)))

    def step_example(B, T, g):
        def r(*shape):
            return 0.5 * torch.randn(*shape, generator=g)

        return (torch.randint(0, V, (B,), generator=g), r(B, H), r(B, H), *([r(B, L, C), r(B, L, A)] if attends else []))

    image = Port("images", "float32", ("B", 3, S, S))
    regions = [Port("memory", "float32", ("B", L, C)), Port("keys", "float32", ("B", L, A))] if attends else []
    state = [Port("h", "float32", ("B", H)), Port("c", "float32", ("B", H))]
    encoder = Graph("encoder", _Outputs(lambda images: encoded(clone.encode(images)), model=clone), [image],
                    [*regions, *state], lambda B, T, g: (torch.rand(B, 3, S, S, generator=g),),
                    lambda inputs: encoded(model.encode(inputs[0])),
                    notes=[f"images: RGB pixels in [0, 1] of {S} x {S} (the run's size: the CNN's map is {c.grid} x "
                           f"{c.grid} regions); the outputs are decoder_step's inputs of the same names"])
    decoder = Graph("decoder_step", _Outputs(step, model=clone), [Port("y_prev", "int64", ("B",)), *state, *regions],
                    [Port("logits", "float32", ("B", V)), Port("h_n", "float32", ("B", H)),
                     Port("c_n", "float32", ("B", H)), *([Port("weights", "float32", ("B", L))] if attends else [])],
                    step_example, lambda inputs: stepped(*model.step(inputs[0], decoder_state(*inputs[1:]))),
                    notes=[f"y_prev: <bos> (id {c.bos_id}) first, then the chosen word (vocab.json); stop at <eos> "
                           f"(id {c.eos_id}); feed h_n, c_n back as h, c" +
                           ("; weights: the attention over the regions, row by row" if attends else "")])
    return [encoder, decoder]


def _vqa_graphs(model) -> list[Graph]:
    """images (B, 3, S, S) and question (B, Q) -> answer logits (B, V_a) and the gates (B, T, L): the fusion GRU,
    the question GRU and the episodic memory (babi's :class:`ExportEpisodicMemory`) as scripted loops."""
    c = model.config
    S, L = c.image_size, c.grid * c.grid
    clone = _with(model, fusion=exportable(model.fusion), question_rnn=exportable(model.question_rnn),
                  memory=ExportEpisodicMemory(model.memory))

    def example(B, T, g):
        return (torch.rand(B, 3, S, S, generator=g), _dmn_ids(B, T, c.vocab_size, c.pad_id, _lengths(B, T, g), g))

    return [Graph("model", _Outputs(lambda images, question: clone.run(images, question), model=clone),
                  [Port("images", "float32", ("B", 3, S, S)), Port("question", "int64", ("B", "Q"))],
                  [Port("logits", "float32", ("B", c.answer_size)), Port("gates", "float32", ("B", c.passes, L))],
                  example, lambda inputs: model.run(*inputs),
                  notes=[f"images: RGB pixels in [0, 1] of {S} x {S}; question: word ids (vocab.json), pad (id "
                         f"{c.pad_id}) after; logits: softmax over the answers (answers.json); gates: what each of "
                         f"the {c.passes} passes attended to over the {L} regions in snake order"])]


GRAPHS = {
    "charlm": _lm_graphs,
    "wordlm": _lm_graphs,
    "classify": _classifier_graphs,
    "seqmnist": _classifier_graphs,
    "adding": lambda model: _sequence_graphs(model, "the adding problem: preds (B, 1), the sum"),
    "copy": lambda model: _sequence_graphs(model, "copy memory: preds (B, T, classes), scores per step"),
    "pattern": lambda model: _sequence_graphs(model, "the 1-2-3 pattern: preds (B, T, 1), the next value"),
    "ntm": lambda model: _sequence_graphs(model, "ntm copy tasks: preds (B, T, bits), logits of the bits"),
    "forecast": _forecast_graphs,
    "seq2seq": seq2seq_graphs,
    "dates": seq2seq_graphs,
    "act": _act_graphs,
    "babi": dmn_graphs,
    "captions": _captions_graphs,
    "vqa": _vqa_graphs,
    "mdlstm": _mdlstm_graphs,
    "han": _han_graphs,
    "music": _music_graphs,
}

# the run files a user needs to make the inputs or read the outputs, copied next to the graph
RUN_FILES = {"charlm": ["vocab.json"], "wordlm": ["vocab.json"], "classify": ["tokenizer.json"],
             "seqmnist": ["permutation.json"], "forecast": ["normalisation.json", "columns.json"],
             "seq2seq": ["src_vocab.json", "tgt_vocab.json"], "dates": ["src_vocab.json", "tgt_vocab.json"],
             "babi": ["vocab.json"], "captions": ["vocab.json"], "vqa": ["vocab.json", "answers.json"],
             "han": ["tokenizer.json"]}


# the symbols a task's ports use beside B, T and S
SYMBOLS = {"babi": {"F": "facts per story (any; padded rows after)", "W": "words per fact (any)",
                    "Q": "question words (any)"},
           "vqa": {"Q": "question words (any)"},
           "han": {"S": "sentences per document (any; padded rows after)", "W": "words per sentence (any)"},
           "mdlstm": {"H": "image rows (any multiple of the patch)", "W": "image columns (any multiple of the patch)"}}


def _load(task: str, run_dir: Path) -> nn.Module:
    from .tasks import (act, babi, captions, classify, forecast, han, lm, mdlstm, memory, music, ntm, seq2seq,
                        seqmnist, vqa)

    loaders = {"charlm": lm.load, "wordlm": lm.load, "classify": classify.load, "seqmnist": seqmnist.load,
               "adding": memory.load, "copy": memory.load, "pattern": memory.load, "forecast": forecast.load,
               "ntm": ntm.load, "seq2seq": seq2seq.load, "dates": seq2seq.load, "act": act.load,
               "babi": babi.load, "captions": captions.load, "vqa": vqa.load, "mdlstm": mdlstm.load,
               "han": han.load, "music": music.load}
    return loaders[task](run_dir)[0].float().eval()


# ----- writing and checking ----------------------------------------------------------------------------------------

def _trace(graph: Graph) -> torch.jit.ScriptModule:
    inputs = graph.example(EXAMPLE_BATCH, EXAMPLE_STEPS, torch.Generator().manual_seed(0))
    with torch.no_grad(), _quiet():
        return torch.jit.trace(graph.module.eval(), inputs, check_trace=False)


def _torchscript_bytes(traced) -> bytes:
    buffer = io.BytesIO()
    with _quiet():
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _onnx_bytes(traced, graph: Graph) -> bytes:
    try:
        import onnx  # noqa: F401  torch's exporter writes the graph with it
    except ImportError:
        raise ValueError("export --format onnx needs the onnx package, which is not installed: "
                         "pip install 'rnnkit[onnx]' (or use --format torchscript)") from None
    inputs = graph.example(EXAMPLE_BATCH, EXAMPLE_STEPS, torch.Generator().manual_seed(0))
    dynamic = {p.name: {i: s for i, s in enumerate(p.shape) if isinstance(s, str)} for p in graph.inputs + graph.outputs}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), _quiet():
        path = Path(tmp) / "graph.onnx"
        torch.onnx.export(traced, inputs, str(path), dynamo=False, opset_version=OPSET,
                          input_names=[p.name for p in graph.inputs], output_names=[p.name for p in graph.outputs],
                          dynamic_axes=dynamic)
        return path.read_bytes()


def _run_file(path: Path, fmt: str, graph: Graph, inputs: tuple) -> list[Tensor] | None:
    """The exported file's outputs on inputs; None for ONNX without onnxruntime."""
    if fmt == "torchscript":
        with torch.no_grad(), _quiet():
            return list(torch.jit.load(str(path))(*inputs))
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names != [p.name for p in graph.inputs]:  # the exporter drops inputs the graph never reads
        raise RuntimeError(f"export: {path.name} takes inputs {names}, expected {[p.name for p in graph.inputs]}")
    return [torch.from_numpy(o) for o in session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})]


def _check(path: Path, fmt: str, graph: Graph) -> dict:
    inputs = graph.example(CHECK_BATCH, CHECK_STEPS, torch.Generator().manual_seed(1))
    got = _run_file(path, fmt, graph, inputs)
    shape = {"input_shapes": {p.name: list(x.shape) for p, x in zip(graph.inputs, inputs)}}
    if got is None:
        return {**shape, "skipped": "onnxruntime is not installed (pip install 'rnnkit[onnx]')"}
    with torch.no_grad():
        want = graph.reference(inputs)
    if len(got) != len(want):
        raise RuntimeError(f"export: {path.name} returns {len(got)} outputs, expected {len(want)}")
    diff = 0.0
    for port, a, b in zip(graph.outputs, got, want):
        if tuple(a.shape) != tuple(b.shape):
            raise RuntimeError(f"export: {path.name} output {port.name} has shape {tuple(a.shape)} on a "
                               f"batch of {shape['input_shapes']}, the eager model {tuple(b.shape)}")
        diff = max(diff, float((a.float() - b.float()).abs().max()))
    if not diff <= CHECK_TOLERANCE:
        raise RuntimeError(f"export: {path.name} differs from the eager model by {diff:.3g} (> "
                           f"{CHECK_TOLERANCE:g}) on a padded batch of mixed lengths {shape['input_shapes']}")
    return {**shape, "max_abs_diff": diff}


def _exporter(fmt: str) -> str:
    if fmt == "torchscript":
        return f"torch.jit.trace around torch.jit.script-ed time loops, torch.jit.save (torch {torch.__version__})"
    return f"torch.onnx.export(dynamo=False), TorchScript-based, opset {OPSET} (torch {torch.__version__})"


def export_run(run_dir, fmt: str = "onnx", out=None) -> dict:
    """Export a run directory's model (best weights) to ``out`` (default RUN_DIR/export); returns the sidecar.

    Raises ValueError for an unknown format, a missing or incomplete run directory, or an unsupported task.
    """
    if fmt not in FORMATS:
        raise ValueError(f"export: expected --format {' or '.join(FORMATS)}, got {fmt!r}")
    run_dir = checkpoint.check_run_dir(run_dir, need=("config.json",))
    task = checkpoint.run_task(run_dir)
    if task not in SUPPORTED:
        why = f" ({UNSUPPORTED[task]})" if task in UNSUPPORTED else ""
        raise ValueError(f"export: task {task!r} of {run_dir} is not supported{why}; supported: "
                         f"{', '.join(SUPPORTED)}")
    model = _load(task, run_dir)
    graphs = GRAPHS[task](model)
    out = Path(out) if out is not None else run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for graph in graphs:
        traced = _trace(graph)
        data = _torchscript_bytes(traced) if fmt == "torchscript" else _onnx_bytes(traced, graph)
        path = checkpoint.atomic_write_bytes(out / (graph.name + SUFFIX[fmt]), data)
        written.append({"file": path.name, "bytes": len(data), "inputs": [p.describe() for p in graph.inputs],
                        "outputs": [p.describe() for p in graph.outputs], "notes": graph.notes,
                        "check": _check(path, fmt, graph)})
    files = []
    for name in RUN_FILES.get(task, []):
        if (run_dir / name).is_file():
            checkpoint.atomic_write_bytes(out / name, (run_dir / name).read_bytes())
            files.append(name)
    sidecar = {"task": task, "format": fmt, "exporter": _exporter(fmt), "run_dir": str(run_dir.resolve()),
               "graphs": written, "files": files,
               "vocabulary": [f for f in files if f.endswith(("vocab.json", "tokenizer.json"))],
               "symbols": {"B": "batch", "T": "time steps (any; lengths (B,) in [1, T])", "S": "source length",
                           **SYMBOLS.get(task, {})}}
    checkpoint.atomic_write_json(out / f"{fmt}.json", sidecar)
    return {**sidecar, "out": str(out), "sidecar": f"{fmt}.json"}
