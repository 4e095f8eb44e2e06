r"""Image captioning: a small CNN trained from scratch, an LSTM decoder, optional attention over the feature
map (lectures 003 and 004; Show and Tell, Vinyals et al. 2015; Show, Attend and Tell, Xu et al. 2015).

::

    image (B, 3, S, S) ──ConvEncoder──> feature map (B, C, h, w) ──flatten──> a_1..a_L (B, L, C), L = h·w
                                            (row by row: a_{r·w + c} is the region in row r, column c)
    y_{t-1} (B,) ──embed──> (B, E) ──decoder step (below)──> logits (B, V)

The decoder step, by ``attention``:

* ``none`` (Show and Tell): the image enters once. ``image="state"``: :math:`h_0 = \tanh(W_h \bar a)`,
  :math:`c_0 = \tanh(W_c \bar a)` with :math:`\bar a = \frac1L \sum_i a_i`; ``image="input"`` (Vinyals et al.'s
  choice): :math:`x_{-1} = W_I \bar a` is the LSTM's input at step −1 from a zero state. Then
  :math:`h_t = \mathrm{LSTM}(h_{t-1}, E y_{t-1})`, :math:`p(y_t) = \mathrm{softmax}(W_o h_t)`.
* ``soft`` (Show, Attend and Tell, "soft" deterministic attention): Bahdanau's score over the L regions
  with the state *before* the step, :math:`e_{ti} = v^\top \tanh(W h_{t-1} + U a_i)`,
  :math:`\alpha_t = \mathrm{softmax}(e_t)`, the gated context :math:`\hat z_t = \beta_t \sum_i \alpha_{ti}
  a_i` with :math:`\beta_t = \sigma(f_\beta(h_{t-1}))` (section 4.2.1), :math:`h_t = \mathrm{LSTM}(h_{t-1},
  [E y_{t-1}; \hat z_t])` and the deep output :math:`p(y_t) = \mathrm{softmax}(W_o \tanh(W_d [h_t; \hat z_t;
  E y_{t-1}]))`. Training adds the doubly stochastic regularisation :math:`\lambda \sum_i (1 - \sum_t
  \alpha_{ti})^2` (:func:`doubly_stochastic_penalty`): every region is looked at about once over the caption.
* ``hard`` ("hard" stochastic attention): one region :math:`s_t \sim \mathrm{Categorical}(\alpha_t)` and
  :math:`\hat z_t = \beta_t a_{s_t}`; trained with Gumbel-softmax straight-through
  (:class:`rnnkit.attention.HardAttention`, additive score), not Xu et al.'s REINFORCE; the mode in evaluation.

The image state enters as :math:`h_0, c_0` for soft and hard attention (Xu et al.: the MLPs of :math:`\bar a`).

Decoding runs :meth:`Captioner.step` on a :class:`~rnnkit.models.seq2seq.DecoderState` (the memory is the L
regions, the mask all True), so ``rnnkit.decode.beam.beam_search`` and ``decode`` work unchanged.

Shape legend: B batch, S image side (pixels), C channels, h × w the feature map, L = h·w regions, T caption
steps, E embedding, H hidden, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from ..attention import BahdanauAttention, HardAttention
from ..layers import RNN
from .seq2seq import DecoderState

ATTENTIONS = ("none", "soft", "hard")
IMAGE_INPUTS = ("state", "input")


@dataclass
class CaptionerConfig:
    vocab_size: int
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3
    image_size: int = 32  # S: images are (3, S, S), resized to it when read
    channels: tuple = (32, 64, 64)  # one 3x3 conv + ReLU per entry
    pools: int = 2  # the first `pools` convs are followed by a 2x2 max-pool: the map is S / 2^pools on a side
    embedding: int = 64
    hidden: int = 256
    attention: str = "soft"  # none | soft | hard
    attention_size: int = 0  # A of the additive score (0: hidden)
    image: str = "state"  # none attention: the image as the initial state or as the first input
    gate: bool = True  # Xu et al.'s beta_t = sigmoid(f_beta(h_{t-1})) on the context
    dropout: float = 0.0  # on embeddings and before the output layer

    def __post_init__(self):
        self.channels = tuple(self.channels)
        for name in ("vocab_size", "image_size", "embedding", "hidden"):
            check_positive_int("CaptionerConfig", name, getattr(self, name))
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"CaptionerConfig: expected channels as positive ints, got {self.channels!r}")
        if not 0 <= self.pools <= len(self.channels):
            raise ValueError(f"CaptionerConfig: expected pools in [0, {len(self.channels)}] (one per conv at most), "
                             f"got {self.pools!r}")
        if self.image_size % (2 ** self.pools):
            raise ValueError(f"CaptionerConfig: expected image_size divisible by 2^pools = {2 ** self.pools}, got "
                             f"{self.image_size}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"CaptionerConfig: expected attention in {ATTENTIONS}, got {self.attention!r}")
        if self.image not in IMAGE_INPUTS:
            raise ValueError(f"CaptionerConfig: expected image in {IMAGE_INPUTS}, got {self.image!r}")
        if self.attention != "none" and self.image != "state":
            raise ValueError(f"CaptionerConfig: with {self.attention} attention the image enters as the initial state "
                             f"(Xu et al.); image='input' is Show and Tell's (attention 'none'), got {self.image!r}")
        if self.attention_size < 0:
            raise ValueError(f"CaptionerConfig: expected attention_size >= 0 (0: hidden), got {self.attention_size}")
        check_probability("CaptionerConfig", "dropout", self.dropout)
        ids = (self.pad_id, self.bos_id, self.eos_id)
        if len(set(ids)) != 3 or any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError(f"CaptionerConfig: expected distinct pad, bos, eos ids in [0, {self.vocab_size}), got "
                             f"{ids}")

    @property
    def grid(self) -> int:
        """h = w, the feature map's side."""
        return self.image_size // (2 ** self.pools)


class CaptionOutput(NamedTuple):
    """logits (B, T, V); weights (B, T, L) attention over the regions (None without attention)."""

    logits: Tensor
    weights: Tensor | None


class ConvEncoder(nn.Module):
    r"""A small CNN from scratch: per entry of ``channels`` a 3×3 convolution (padding 1) and ReLU, the first
    ``pools`` of them followed by 2×2 max-pooling. Pixels in [0, 255] (uint8) or [0, 1] are scaled to about
    [−1, 1] first.

    Shape:
        images (B, 3, S, S) -> feature map (B, C, S / 2^pools, S / 2^pools), C = channels[-1].
    """

    def __init__(self, image_size: int, channels=(32, 64, 64), pools: int = 2):
        super().__init__()
        self.image_size = image_size
        blocks, size = [], 3
        for i, c in enumerate(channels):
            blocks += [nn.Conv2d(size, c, 3, padding=1), nn.ReLU()]
            if i < pools:
                blocks.append(nn.MaxPool2d(2))
            size = c
        self.net = nn.Sequential(*blocks)
        self.out_channels = size

    def forward(self, images: Tensor) -> Tensor:
        S = self.image_size
        if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (3, S, S):
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"ConvEncoder: expected images (B, 3, {S}, {S}), got {got}")
        if images.dtype == torch.uint8:
            x = images.float() / 255.0
        elif images.is_floating_point():
            x = images
        else:
            raise ValueError(f"ConvEncoder: expected uint8 pixels or floats in [0, 1], got dtype {images.dtype}")
        return self.net((x - 0.5) * 2.0)


def regions(features: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, L = h·w, C), row by row (region r·w + c is row r, column c)."""
    return features.flatten(2).transpose(1, 2)  # b c h w -> b (h w) c


def doubly_stochastic_penalty(weights: Tensor, steps: Tensor) -> Tensor:
    r""":math:`\frac1B \sum_b \sum_i (1 - \sum_t \alpha_{bti})^2` over each caption's real steps.

    weights (B, T, L); steps (B, T) bool, True at the caption's real decoder steps (``<eos>`` included)."""
    total = (weights * steps[..., None].to(weights.dtype)).sum(dim=1)  # (B, L): Σ_t α_ti
    return ((1.0 - total) ** 2).sum(dim=1).mean()


class Captioner(nn.Module):
    """CNN encoder + LSTM decoder with optional soft or hard attention; equations in the module docstring.

    ``out = model.teacher_forced(images, tgt_in)`` for training and scoring; ``state = model.encode(images)``
    then ``logits, state = model.step(y_prev, state)`` to decode (``rnnkit.decode.beam``). ``model(x)`` is the
    Trainer's contract, with the image and the decoder input packed in one float tensor (:func:`pack`).

    Shape:
        images (B, 3, S, S) uint8 or float in [0, 1]; tgt_in (B, T) ids, ``<bos>`` then the caption, padded.
        Returns :class:`CaptionOutput`: logits (B, T, V), weights (B, T, L) or None.

    Example::

        >>> model = Captioner(CaptionerConfig(vocab_size=20, image_size=16, channels=(8, 8), pools=1, hidden=32))
        >>> out = model.teacher_forced(torch.rand(2, 3, 16, 16), torch.tensor([[2, 5, 6], [2, 7, 0]]))
        >>> out.logits.shape, out.weights.shape
        (torch.Size([2, 3, 20]), torch.Size([2, 3, 64]))
    """

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = c = config
        E, H = c.embedding, c.hidden
        self.encoder = ConvEncoder(c.image_size, c.channels, c.pools)
        C = self.encoder.out_channels
        self.embed = nn.Embedding(c.vocab_size, E, padding_idx=c.pad_id)
        attends = c.attention != "none"
        self.decoder = RNN("lstm", E + (C if attends else 0), H)
        if c.image == "state":
            self.init_h, self.init_c = nn.Linear(C, H), nn.Linear(C, H)  # h_0, c_0 = tanh(W ā)
        else:
            self.image_in = nn.Linear(C, E)  # x_{-1} = W_I ā
        A = c.attention_size or H
        self.attention = None
        if c.attention == "soft":
            self.attention = BahdanauAttention(H, C, A)
        elif c.attention == "hard":
            self.attention = HardAttention(H, C, score="concat", attention_size=A)
        if attends:
            self.beta = nn.Linear(H, 1) if c.gate else None
            self.combine = nn.Linear(H + C + E, H)  # deep output tanh(W_d [h_t; z_t; E y_{t-1}])
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(H, c.vocab_size)

    # ----- encoder ------------------------------------------------------------------------------------------

    def encode(self, images: Tensor) -> DecoderState:
        """The L regions, and the decoder's state before the first word."""
        memory = regions(self.encoder(images))  # (B, L, C)
        B, L, _ = memory.shape
        mean = memory.mean(dim=1)  # ā (B, C)
        if self.config.image == "state":
            rnn = [(torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))]
        else:  # Show and Tell: the image is the input of step -1, from a zero state
            _, rnn = self.decoder.step(self.image_in(mean), None)
        mask = torch.ones(B, L, dtype=torch.bool, device=memory.device)
        keys = None if self.attention is None else self.attention.keys(memory)
        return DecoderState(rnn=rnn, output=rnn[0][0], feed=None, step=0, memory=memory, keys=keys, mask=mask)

    # ----- decoder ------------------------------------------------------------------------------------------

    def step(self, y_prev: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One word: y_prev (B,) (``<bos>`` first) -> logits (B, V), the next state (its ``weights``: α_t (B, L))."""
        emb = self.drop(self.embed(y_prev))  # (B, E)
        if self.attention is None:
            out, rnn = self.decoder.step(emb, state.rnn)
            return self.out(self.drop(out)), replace(state, rnn=rnn, output=out, step=state.step + 1)
        h_prev = state.output
        context, weights = self.attention(h_prev, state.memory, state.mask, keys=state.keys)  # Σ α_ti a_i, α_t
        if self.beta is not None:
            context = torch.sigmoid(self.beta(h_prev)) * context  # ẑ_t = β_t Σ α_ti a_i
        out, rnn = self.decoder.step(torch.cat([emb, context], dim=-1), state.rnn)  # h_t
        hidden = torch.tanh(self.combine(torch.cat([out, context, emb], dim=-1)))
        return self.out(self.drop(hidden)), replace(state, rnn=rnn, output=out, step=state.step + 1, weights=weights)

    def teacher_forced(self, images: Tensor, tgt_in: Tensor) -> CaptionOutput:
        """Logits for every caption position given the true previous words, and the attention weights."""
        self._check_ids(tgt_in, images)
        state = self.encode(images)
        if self.attention is None:  # no step depends on the last one's output: one RNN call for all T
            lengths = (tgt_in != self.config.pad_id).sum(dim=1).clamp(min=1)
            out, _ = self.decoder(self.drop(self.embed(tgt_in)), lengths, state.rnn)  # (B, T, H)
            return CaptionOutput(self.out(self.drop(out)), None)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            step_logits, state = self.step(tgt_in[:, t], state)
            logits.append(step_logits)
            weights.append(state.weights)
        return CaptionOutput(torch.stack(logits, dim=1), torch.stack(weights, dim=1))  # (B, T, V), (B, T, L)

    def forward(self, x: Tensor, state=None, lengths=None):
        """The Trainer's contract: x (B, 3·S·S + T) from :func:`pack` -> (CaptionOutput, None)."""
        if state is not None:
            raise ValueError("Captioner: every caption starts from its image; expected state=None")
        images, tgt_in = unpack(x, self.config.image_size)
        tgt_in = tgt_in[:, : max(1, int((tgt_in != self.config.pad_id).sum(dim=1).max()))]
        return self.teacher_forced(images, tgt_in), None

    def _check_ids(self, tgt_in, images) -> None:
        if not isinstance(tgt_in, Tensor) or tgt_in.dtype != torch.int64 or tgt_in.dim() != 2 or tgt_in.shape[1] == 0:
            got = f"{tgt_in.dtype} {tuple(tgt_in.shape)}" if isinstance(tgt_in, Tensor) else type(tgt_in).__name__
            raise ValueError(f"Captioner: expected decoder inputs (B, T) of int64 ids with T >= 1, got {got}")
        if isinstance(images, Tensor) and images.dim() == 4 and images.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"Captioner: expected as many captions as images, got {tgt_in.shape[0]} and "
                             f"{images.shape[0]}")
        if int(tgt_in.min()) < 0 or int(tgt_in.max()) >= self.config.vocab_size:
            raise ValueError(f"Captioner: expected ids in [0, {self.config.vocab_size}), got values in "
                             f"[{int(tgt_in.min())}, {int(tgt_in.max())}]")


def pack(images: Tensor, tgt_in: Tensor) -> Tensor:
    """One float tensor (B, 3·S·S + T) holding the pixels in [0, 1] and the decoder input ids (exact as floats
    below 2^24): what the Trainer hands to ``model(x)``."""
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    return torch.cat([images.flatten(1).float(), tgt_in.float()], dim=1)


def unpack(x: Tensor, image_size: int) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`pack`: images (B, 3, S, S) and ids (B, T)."""
    P = 3 * image_size * image_size
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] <= P or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"Captioner: expected packed x (B, 3·{image_size}·{image_size} + T) = (B, {P} + T) floats "
                         f"with T >= 1, got {got}")
    return x[:, :P].view(-1, 3, image_size, image_size), x[:, P:].round().long()
