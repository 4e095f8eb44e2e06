r"""Sequence to sequence: an RNN encoder, a bridge, an RNN decoder, and optional attention (lectures 000, 001, 004).

Lecture 001 (Sutskever et al. 2014): the encoder reads :math:`x_1..x_S` into a fixed representation
:math:`h`, and the decoder models :math:`p(y_1..y_T \mid x) = \prod_t p(y_t \mid h, y_1..y_{t-1})`; all
the information must pass through that final state (the *bottleneck*). Lecture 004: reversing the source
helps (``reverse_source``), sentences end with ``<eos>``, and attention removes the bottleneck. Lecture 000:
the encoder-decoder's context :math:`c = f(h_1..h_T)`, the previous translated word fed to the decoder,
Bahdanau attention over bidirectional annotations.

::

    source ids (B, S) ──embed──> (B, S, E) ──[reverse within lengths]──> encoder RNN ──> memory (B, S, H)
                                                   │ final states             (put back in source order)
                                                   └──bridge──> decoder state s_0
    y_{i-1} (B,) ──embed──> (B, E) ──decoder step (below)──> logits (B, V) over the target vocabulary

The decoder step, by ``attention``:

* ``none`` (Sutskever): :math:`s_i = \mathrm{RNN}(s_{i-1}, E y_{i-1})`, :math:`p(y_i) = \mathrm{softmax}(W_o s_i)`.
* ``bahdanau`` (attention *before* the cell): :math:`c_i = \mathrm{attn}(s_{i-1}, h)`,
  :math:`s_i = \mathrm{RNN}(s_{i-1}, [E y_{i-1}; c_i])`, :math:`p(y_i) = \mathrm{softmax}(W_o \tanh(W_d
  [s_i; c_i; E y_{i-1}]))` (a deep output layer, Bahdanau's :math:`g(y_{i-1}, s_i, c_i)`).
* ``luong-dot``, ``luong-general``, ``luong-concat``, ``local-m``, ``local-p``, ``hard`` (attention *after*
  the cell): :math:`h_t = \mathrm{RNN}(h_{t-1}, [E y_{t-1}; \tilde h_{t-1}])` (input feeding; without it
  just :math:`E y_{t-1}`), :math:`c_t = \mathrm{attn}(h_t, h)`, :math:`\tilde h_t = \tanh(W_c [c_t; h_t])`,
  :math:`p(y_t) = \mathrm{softmax}(W_s \tilde h_t)`.

``hidden`` is the size of the decoder state and of an annotation: a bidirectional encoder runs
``hidden // 2`` units per direction and concatenates them. The encoder and the decoder have ``layers``
layers each, and the bridge maps layer l's final encoder state to layer l's initial decoder state:
``copy`` (the bidirectional halves concatenated), ``learned`` (:math:`s_0 = \tanh(W_b h_S)` per layer and
state tensor; Bahdanau's initial state is this map of the backward state) or ``zeros``.

Training uses teacher forcing (the true :math:`y_{i-1}` is fed) with an optional *scheduled sampling*
(Bengio et al. 2015): at update k each fed token is the true one with probability :math:`\epsilon_k` and
otherwise a sample from the model's own distribution at the previous step, with
:math:`\epsilon_k = \max(0, 1 - k/K)` (linear), :math:`K^k` (exponential, K < 1) or
:math:`K / (K + e^{k/K})` (inverse sigmoid, K >= 1). The update count is a buffer of the model
(``updates``), so it is saved with the weights and resumes exactly.

Decoding runs :meth:`Seq2Seq.step` with a :class:`DecoderState` -- the decoder's state, the memory and the
last attention weights -- one token at a time, never re-running the prefix (``rnnkit.decode.beam``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..attention import BahdanauAttention, HardAttention, LocalAttention, LuongAttention, source_mask
from ..layers import KINDS, RNN, make_cell
from ..layers.lengths import reverse_within_lengths
from ..layers.state import map_state

ATTENTIONS = ("none", "bahdanau", "luong-dot", "luong-general", "luong-concat", "local-m", "local-p", "hard")
LUONG_STYLE = ("luong-dot", "luong-general", "luong-concat", "local-m", "local-p", "hard")
BRIDGES = ("copy", "learned", "zeros")
SAMPLING_SCHEDULES = ("none", "linear", "exponential", "inverse-sigmoid")


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3
    cell: str = "lstm"  # any rnnkit recurrent kind (rnnkit.layers.KINDS), for encoder and decoder
    embedding: int = 64
    hidden: int = 128  # decoder state and annotation size (a bidirectional encoder: hidden // 2 per direction)
    layers: int = 1
    bidirectional: bool = True  # the encoder reads both ways (Bahdanau's annotations)
    attention: str = "bahdanau"  # one of ATTENTIONS
    attention_size: int = 0  # hidden size of the additive/concat score and of local-p's W_p (0: hidden)
    window: int = 5  # D, the half-width of local attention's window
    input_feeding: bool | None = None  # Luong-style attentions: feed h~_{t-1} back (None: on for them)
    bridge: str = "learned"  # copy | learned | zeros
    reverse_source: bool = False  # Sutskever: read the source backwards
    shared_embeddings: bool = False  # one embedding for source and target (a shared vocabulary)
    dropout: float = 0.0  # on embeddings, between layers, before the output layer
    scheduled_sampling: str = "none"  # none | linear | exponential | inverse-sigmoid
    sampling_k: float = 1000.0  # K of the schedule

    def __post_init__(self):
        def bad(name, want):
            raise ValueError(f"Seq2SeqConfig: expected {name} {want}, got {getattr(self, name)!r}")

        if self.cell not in KINDS:
            bad("cell", f"in {sorted(KINDS)}")
        if self.attention not in ATTENTIONS:
            bad("attention", f"in {ATTENTIONS}")
        if self.bridge not in BRIDGES:
            bad("bridge", f"in {BRIDGES}")
        if self.scheduled_sampling not in SAMPLING_SCHEDULES:
            bad("scheduled_sampling", f"in {SAMPLING_SCHEDULES}")
        for name in ("src_vocab_size", "tgt_vocab_size", "embedding", "hidden", "layers", "window"):
            if getattr(self, name) < 1:
                bad(name, ">= 1")
        if self.attention_size < 0:
            bad("attention_size", ">= 0 (0: hidden)")
        if not 0 <= self.dropout < 1:
            bad("dropout", "in [0, 1)")
        if self.bidirectional and self.hidden % 2:
            bad("hidden", "even with a bidirectional encoder (hidden // 2 units per direction)")
        if self.input_feeding is not None and self.attention not in LUONG_STYLE:
            raise ValueError(f"Seq2SeqConfig: input feeding is Luong's (attention {', '.join(LUONG_STYLE)}); "
                             f"got input_feeding={self.input_feeding} with attention {self.attention!r}")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError(f"Seq2SeqConfig: expected distinct pad, bos and eos ids, got {self.pad_id}, "
                             f"{self.bos_id}, {self.eos_id}")
        if self.shared_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"Seq2SeqConfig: shared_embeddings needs one vocabulary, got sizes "
                             f"{self.src_vocab_size} and {self.tgt_vocab_size}")
        k = self.sampling_k
        if self.scheduled_sampling in ("linear", "inverse-sigmoid") and not (k >= 1 and math.isfinite(k)):
            bad("sampling_k", f">= 1 for the {self.scheduled_sampling} schedule")
        if self.scheduled_sampling == "exponential" and not 0 < k < 1:
            bad("sampling_k", "in (0, 1) for the exponential schedule")

    @property
    def feeds_input(self) -> bool:
        """Whether the decoder gets h~_{t-1} with its input (Luong's input feeding)."""
        return self.attention in LUONG_STYLE and self.input_feeding is not False


def teacher_forcing_probability(schedule: str, k: float, update: int) -> float:
    """epsilon_k, the probability of feeding the true previous token at update k (Bengio et al. 2015)."""
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        return max(0.0, 1.0 - update / k)
    if schedule == "exponential":
        return k ** update
    if schedule == "inverse-sigmoid":
        return k / (k + math.exp(min(update / k, 700.0)))
    raise ValueError(f"teacher_forcing_probability: expected schedule in {SAMPLING_SCHEDULES}, got {schedule!r}")


@dataclass
class DecoderState:
    """Everything one decoder step needs; ``index_select`` reorders every tensor along the batch (beam search).

    rnn: the decoder RNN's per-layer states; output: (B, H) the top layer's last output s_{i-1} (Bahdanau's
    query); feed: (B, H) h~_{t-1} for input feeding, or None; step: the position i of the next token;
    memory: (B, S, H) annotations; keys: the attention's projection of the memory (or None); mask: (B, S)
    bool; weights: (B, S) the last step's attention weights (None before the first step or without attention).
    """

    rnn: list
    output: Tensor
    feed: Tensor | None
    step: int
    memory: Tensor
    keys: Tensor | None
    mask: Tensor
    weights: Tensor | None = None

    def index_select(self, index: Tensor) -> "DecoderState":
        def pick(t):
            return None if t is None else t.index_select(0, index)

        return DecoderState(map_state(pick, self.rnn), pick(self.output), pick(self.feed), self.step,
                            pick(self.memory), pick(self.keys), pick(self.mask), pick(self.weights))


class Bridge(nn.Module):
    """The decoder's initial state from the encoder's final states, layer by layer: copy, learned or zeros.

    A final state is, per layer, the cell's state (a tensor, or a tuple such as LSTM's (h, c)); for a
    bidirectional encoder a pair (forward, backward), concatenated here into one state of 2 x (H / 2).
    """

    def __init__(self, mode: str, kind: str, hidden: int, layers: int):
        super().__init__()
        self.mode = mode
        parts = len(_as_tuple(make_cell(kind, 1, 1).initial_state(1)))  # tensors per cell state: LSTM 2, GRU 1
        if mode == "learned":  # one W_b (H x H) per layer and state tensor
            self.maps = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers * parts))

    def forward(self, final: list, bidirectional: bool, zeros: list) -> list:
        if self.mode == "zeros":
            return zeros
        if bidirectional:  # (forward, backward) -> one state, halves concatenated
            final = [map_state(lambda f, b: torch.cat([f, b], dim=-1), *layer) for layer in final]
        if self.mode == "copy":
            return final
        maps = iter(self.maps)
        return [map_state(lambda s: torch.tanh(next(maps)(s)), layer) for layer in final]


def _as_tuple(state) -> tuple:
    return (state,) if isinstance(state, Tensor) else tuple(state)


def _top_output(state) -> Tensor:
    """The top layer's hidden state h from a per-layer state list (the first tensor of an (h, c) pair)."""
    return _as_tuple(state[-1])[0]


class Seq2Seq(nn.Module):
    """Encoder-decoder with optional attention; see the module docstring for the equations.

    ``logits, weights = model.teacher_forced(src, src_lengths, tgt_in)`` for training and scoring;
    ``state = model.encode(src, src_lengths)`` then ``logits, state = model.step(y_prev, state)`` to decode.
    ``model(x, state=None, lengths=None)`` is the Trainer's contract, with the source and the decoder input
    stacked in one tensor (``rnnkit.data.pairs.PairBatches`` makes them).

    Shape:
        src (B, S) ids, src_lengths (B,) in [1, S]; tgt_in (B, T) ids, ``<bos>`` then the target tokens,
        padded with pad_id. Returns logits (B, T, V_tgt) and attention weights (B, T, S) (None without
        attention). Trainer form: x (B, 2, L) = stack(src, tgt_in), both padded to L.
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        H, E = c.hidden, c.embedding
        self.src_embed = nn.Embedding(c.src_vocab_size, E, padding_idx=c.pad_id)
        self.tgt_embed = self.src_embed if c.shared_embeddings else nn.Embedding(c.tgt_vocab_size, E,
                                                                                 padding_idx=c.pad_id)
        directions = 2 if c.bidirectional else 1
        self.encoder = RNN(c.cell, E, H // directions, c.layers, bidirectional=c.bidirectional, dropout=c.dropout)
        self.bridge = Bridge(c.bridge, c.cell, H, c.layers)
        decoder_input = E + (H if c.attention == "bahdanau" or c.feeds_input else 0)
        self.decoder = RNN(c.cell, decoder_input, H, c.layers, dropout=c.dropout)
        self.attention = make_attention(c)
        if c.attention == "bahdanau":
            self.combine = nn.Linear(H + H + E, H)  # deep output: tanh(W_d [s_i; c_i; E y_{i-1}])
        elif c.attention != "none":
            self.combine = nn.Linear(H + H, H, bias=False)  # h~_t = tanh(W_c [c_t; h_t])
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(H, c.tgt_vocab_size)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))  # training forwards (scheduled sampling)

    # ----- encoder ----------------------------------------------------------------------------------

    def encode(self, src: Tensor, lengths=None) -> DecoderState:
        """Read the source: the memory (annotations in source order), its mask and the decoder's s_0."""
        c = self.config
        src, lengths = self._check_source(src, lengths)
        B, S = src.shape
        x = self.drop(self.src_embed(src))  # (B, S, E)
        if c.reverse_source:
            x = reverse_within_lengths(x, lengths, time_dim=1)
        memory, final = self.encoder(x, lengths)  # (B, S, H), per-layer final states
        if c.reverse_source:
            memory = reverse_within_lengths(memory, lengths, time_dim=1)  # h_j lines up with x_j again
        zeros = self.decoder.initial_state(B, device=memory.device, dtype=memory.dtype)
        rnn = self.bridge(final, c.bidirectional, zeros)
        mask = source_mask(lengths.to(src.device), S)
        keys = None if self.attention is None else self.attention.keys(memory)
        feed = memory.new_zeros(B, c.hidden) if c.feeds_input else None
        return DecoderState(rnn=rnn, output=_top_output(rnn), feed=feed, step=0, memory=memory, keys=keys, mask=mask)

    def _check_source(self, src: Tensor, lengths) -> tuple[Tensor, Tensor]:
        if not isinstance(src, Tensor) or src.dtype not in (torch.int64, torch.int32) or src.dim() != 2:
            what = f"{src.dtype} {tuple(src.shape)}" if isinstance(src, Tensor) else type(src).__name__
            raise ValueError(f"Seq2Seq: expected source ids (B, S) of an integer dtype, got {what}")
        B, S = src.shape
        if B == 0 or S == 0:
            raise ValueError(f"Seq2Seq: expected at least one source token per sentence, got source {(B, S)} "
                             "(translate an empty sentence as an empty one without the model)")
        if lengths is None:
            return src, torch.full((B,), S, dtype=torch.int64)
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64)
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > S:
            raise ValueError(f"Seq2Seq: expected source lengths ({B},) in [1, {S}], got {lengths.tolist()}")
        return src, lengths

    # ----- decoder ----------------------------------------------------------------------------------

    def step(self, y_prev: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoder step: y_prev (B,) the previous token (``<bos>`` first) -> logits (B, V), the next state."""
        c = self.config
        emb = self.drop(self.tgt_embed(y_prev))  # (B, E)
        feed, weights = None, None
        if c.attention == "none":
            out, rnn = self.decoder.step(emb, state.rnn)  # s_i
            hidden = out
        elif c.attention == "bahdanau":
            context, weights = self.attention(state.output, state.memory, state.mask, keys=state.keys)  # c_i from s_{i-1}
            out, rnn = self.decoder.step(torch.cat([emb, context], dim=-1), state.rnn)  # s_i = f(s_{i-1}, y_{i-1}, c_i)
            hidden = torch.tanh(self.combine(torch.cat([out, context, emb], dim=-1)))
        else:
            x = torch.cat([emb, state.feed], dim=-1) if c.feeds_input else emb
            out, rnn = self.decoder.step(x, state.rnn)  # h_t
            context, weights = self.attention(out, state.memory, state.mask, keys=state.keys, step=state.step)
            hidden = feed = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))  # h~_t
            feed = feed if c.feeds_input else None
        logits = self.out(self.drop(hidden))  # (B, V)
        return logits, replace(state, rnn=rnn, output=out, feed=feed, step=state.step + 1, weights=weights)

    def teacher_forced(self, src: Tensor, lengths, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, V) for every target position given the previous true tokens (scheduled sampling in
        training replaces some of them by the model's own samples), and the attention weights (B, T, S)."""
        c = self.config
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.shape[0] != src.shape[0] or tgt_in.shape[1] == 0:
            got = tuple(tgt_in.shape) if isinstance(tgt_in, Tensor) else type(tgt_in).__name__
            raise ValueError(f"Seq2Seq: expected decoder inputs ({src.shape[0]}, T) with T >= 1 like the source "
                             f"{tuple(src.shape)}, got {got}")
        state = self.encode(src, lengths)
        epsilon = teacher_forcing_probability(c.scheduled_sampling, c.sampling_k, int(self.updates)) \
            if self.training else 1.0
        if self.training:
            self.updates += 1
        if epsilon == 1.0 and not (c.attention == "bahdanau" or c.feeds_input):
            return self._decode_all_at_once(tgt_in, state)
        logits, weights = [], []
        y = tgt_in[:, 0]
        for i in range(tgt_in.shape[1]):
            if i > 0:
                y = tgt_in[:, i]
                if epsilon < 1.0:  # scheduled sampling: some fed tokens are the model's own samples
                    own = torch.multinomial(logits[-1].detach().float().softmax(dim=-1), 1).squeeze(1)
                    coin = torch.rand(y.shape, device=y.device) >= epsilon
                    y = torch.where(coin & (y != c.pad_id), own, y)
            step_logits, state = self.step(y, state)
            logits.append(step_logits)
            weights.append(state.weights)
        stacked = None if weights[0] is None else torch.stack(weights, dim=1)  # (B, T, S)
        return torch.stack(logits, dim=1), stacked

    def _decode_all_at_once(self, tgt_in: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        """No step depends on the previous one's output (no attention, or Luong without input feeding): one RNN
        call over all T steps, then attention for all T queries at once."""
        lengths = (tgt_in != self.config.pad_id).sum(dim=1).clamp(min=1)
        out, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)), lengths, state.rnn)  # (B, T, H)
        if self.attention is None:
            return self.out(self.drop(out)), None
        context, weights = self.attention(out, state.memory, state.mask, keys=state.keys, step=0)  # (B, T, H)
        hidden = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))  # h~_t
        return self.out(self.drop(hidden)), weights

    def forward(self, x: Tensor, state=None, lengths=None):
        """The Trainer's contract: x (B, 2, L) = stack(source, decoder input) -> logits (B, L', V), and the
        final decoder RNN state (L' = the longest decoder input)."""
        if state is not None:
            raise ValueError("Seq2Seq: every pair starts from the encoder; expected state=None (no carried state)")
        if x.dim() != 3 or x.shape[1] != 2:
            raise ValueError(f"Seq2Seq: expected x (B, 2, L) = stack(source ids, decoder input ids), "
                             f"got {tuple(x.shape)}")
        pad = self.config.pad_id
        src, tgt_in = x[:, 0], x[:, 1]
        src = src[:, : int((src != pad).sum(dim=1).max())]  # drop the columns that are padding for every row
        tgt_in = tgt_in[:, : int((tgt_in != pad).sum(dim=1).max())]
        logits, _ = self.teacher_forced(src, lengths, tgt_in)
        return logits, ()


def make_attention(c: Seq2SeqConfig) -> nn.Module | None:
    """The attention module for ``c.attention`` (None for ``none``); queries and memory are both hidden-sized."""
    H, A = c.hidden, c.attention_size or c.hidden
    kind = c.attention
    if kind == "none":
        return None
    if kind == "bahdanau":
        return BahdanauAttention(H, H, A)
    if kind.startswith("luong-"):
        return LuongAttention(kind.removeprefix("luong-"), H, H, A)
    if kind in ("local-m", "local-p"):
        return LocalAttention(kind[-1], H, H, window=c.window, attention_size=A)
    return HardAttention(H, H, attention_size=A)
