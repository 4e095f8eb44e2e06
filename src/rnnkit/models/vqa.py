r"""DMN+ for visual question answering (lecture 004; Xiong, Merity & Socher 2016, section 3.2): the input
module reads CNN feature vectors instead of sentences; the question module, the episodic memory and the
answer module are DMN+'s own (``rnnkit.models.dmn``).

::

    image (B, 3, S, S) ──ConvEncoder──> (B, C, h, w) ──snake order──> (B, L = h·w, C)
        ──LayerNorm over C, then tanh(W f + b)──> (B, L, H)
        ──input fusion bi-GRU (directions summed)──> facts s_1..s_L (B, L, H)
    question (B, Q) ids ──embedding──> GRU ──> q (B, H)
    EpisodicMemory (T passes of softmax-gated attention-GRU, untied ReLU updates) ──> m^T (B, H)
    answer: softmax(W^{(a)} [m^T; q]) over the answer words (B, V_a)

**Snake-like order** (lecture 004: "we introduce a snake-like order to the feature vectors"): the regions are
read row by row, left to right in even rows and right to left in odd rows, so consecutive facts are always
neighbours in the image and the fusion GRU sees a continuous path (:func:`snake_order`).

Shape legend: B batch, S image side, C channels, h × w feature map, L = h·w facts, Q question words, H hidden,
T passes, V_a answers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from ..cells import GRUCell
from ..layers import RNN, Bidirectional
from .captioner import ConvEncoder
from .dmn import EpisodicMemory


@dataclass
class VQAConfig:
    vocab_size: int  # question words
    answer_size: int  # answer words
    pad_id: int = 0
    image_size: int = 32
    channels: tuple = (32, 64, 64)
    pools: int = 2
    hidden: int = 64  # H: facts, question, memory
    passes: int = 3  # T
    dropout: float = 0.1
    feature_norm: bool = True  # layer-normalise each region's CNN features before the tanh projection

    def __post_init__(self):
        self.channels = tuple(self.channels)
        for name in ("vocab_size", "answer_size", "image_size", "hidden", "passes"):
            check_positive_int("VQAConfig", name, getattr(self, name))
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"VQAConfig: expected channels as positive ints, got {self.channels!r}")
        if not 0 <= self.pools <= len(self.channels) or self.image_size % (2 ** self.pools):
            raise ValueError(f"VQAConfig: expected pools in [0, {len(self.channels)}] with image_size divisible by "
                             f"2^pools, got pools {self.pools} and image_size {self.image_size}")
        check_probability("VQAConfig", "dropout", self.dropout)

    @property
    def grid(self) -> int:
        return self.image_size // (2 ** self.pools)


def snake_order(h: int, w: int) -> Tensor:
    """(h·w,) region indices (row-major r·w + c) in snake order: row 0 left to right, row 1 right to left, ...

    Example::

        >>> snake_order(3, 3).tolist()
        [0, 1, 2, 5, 4, 3, 6, 7, 8]
    """
    grid = torch.arange(h * w).view(h, w)
    grid[1::2] = grid[1::2].flip(1)
    return grid.flatten()


def snake(features: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, h·w, C), the regions in :func:`snake_order`."""
    B, C, h, w = features.shape
    return features.flatten(2).transpose(1, 2)[:, snake_order(h, w).to(features.device)]  # b c h w -> b (h w) c


class VisualDMN(nn.Module):
    """DMN+ over image regions; see the module docstring.

    ``out = model.run(images, question)``: logits (B, V_a), gates (B, T, L) over the facts in snake order.
    ``model(x)`` is the Trainer's contract, x (B, 3·S·S + Q) = pixels in [0, 1] and question ids packed
    (``rnnkit.models.captioner.pack``).

    Example::

        >>> model = VisualDMN(VQAConfig(vocab_size=30, answer_size=12, image_size=16, channels=(8, 8), pools=1,
        ...                             hidden=16))
        >>> logits, gates = model.run(torch.rand(2, 3, 16, 16), torch.tensor([[4, 5, 6], [7, 8, 0]]))
        >>> logits.shape, gates.shape
        (torch.Size([2, 12]), torch.Size([2, 3, 64]))
    """

    def __init__(self, config: VQAConfig):
        super().__init__()
        self.config = c = config
        H = c.hidden
        self.encoder = ConvEncoder(c.image_size, c.channels, c.pools)
        # ReLU features grow without bound in training (mean |f| ≈ 9 after 10 minutes): the tanh layer then saturates
        # (|W f + b| ≈ 17), every image gives the same facts and no gradient reaches the CNN; normalised, they stay
        # in tanh's range
        self.norm = nn.LayerNorm(self.encoder.out_channels) if c.feature_norm else nn.Identity()
        self.project = nn.Linear(self.encoder.out_channels, H)  # Xiong et al.: a tanh layer to the question's space
        self.fusion = Bidirectional(GRUCell(H, H, reset_after=True), GRUCell(H, H, reset_after=True), merge="sum")
        self.embedding = nn.Embedding(c.vocab_size, H, padding_idx=c.pad_id)
        self.question_rnn = RNN("gru", H, H)
        self.memory = EpisodicMemory(H, c.passes, gate="softmax", update="relu", tied=False)
        self.drop = nn.Dropout(c.dropout)
        self.answer_out = nn.Linear(2 * H, c.answer_size)  # W^{(a)} [m^T; q]

    def facts(self, images: Tensor) -> Tensor:
        """Input module: images -> facts (B, L, H) in snake order."""
        f = torch.tanh(self.project(self.norm(snake(self.encoder(images)))))  # (B, L, H)
        f, _ = self.fusion(f)  # forward + backward along the snake
        return self.drop(f)

    def encode_question(self, question: Tensor) -> Tensor:
        if not isinstance(question, Tensor) or question.dtype != torch.int64 or question.dim() != 2:
            got = f"{question.dtype} {tuple(question.shape)}" if isinstance(question, Tensor) else type(question).__name__
            raise ValueError(f"VisualDMN: expected question (B, Q) int64 word ids, got {got}")
        if question.numel() and (int(question.min()) < 0 or int(question.max()) >= self.config.vocab_size):
            raise ValueError(f"VisualDMN: expected question ids in [0, {self.config.vocab_size}), got values in "
                             f"[{int(question.min())}, {int(question.max())}]")
        lengths = (question != self.config.pad_id).sum(dim=1)
        if bool((lengths == 0).any()):
            raise ValueError(f"VisualDMN: every question needs at least one word, got none in row "
                             f"{int((lengths == 0).nonzero()[0])}")
        _, state = self.question_rnn(self.embedding(question), lengths=lengths.cpu())
        return state[-1]

    def run(self, images: Tensor, question: Tensor) -> tuple[Tensor, Tensor]:
        q = self.encode_question(question)
        if images.shape[0] != q.shape[0]:
            raise ValueError(f"VisualDMN: expected as many questions as images, got {q.shape[0]} and {images.shape[0]}")
        s = self.facts(images)
        mask = torch.ones(s.shape[:2], dtype=torch.bool, device=s.device)
        m, gates, _ = self.memory(s, q, mask)
        return self.answer_out(self.drop(torch.cat([m, q], dim=-1))), gates

    def forward(self, x: Tensor, state=None, lengths=None):
        from .captioner import unpack

        if state is not None:
            raise ValueError("VisualDMN: every question starts from its image; expected state=None")
        images, question = unpack(x, self.config.image_size)
        question = question[:, : max(1, int((question != self.config.pad_id).sum(dim=1).max()))]
        return self.run(images, question), None

    @staticmethod
    def loss(out, y: Tensor) -> Tensor:
        logits, _ = out
        return F.cross_entropy(logits.float(), y)
