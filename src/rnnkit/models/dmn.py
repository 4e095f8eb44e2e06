r"""Dynamic Memory Network for question answering: DMN+ (Xiong, Merity & Socher 2016) and the DMN of Kumar et
al. (2016), in lecture 004's notation.

::

    facts (B, F, W) ──embedding──> (B, F, W, H) ──input module──> s_1..s_F (B, F, H)      (facts: "s_i")
                                   DMN+: positional encoding, then the input fusion bi-GRU (directions summed)
                                   DMN:  one GRU over all the story's words, its state at each sentence's end
    question (B, Q) ──embedding──> GRU ──> q (B, H)                 question module  q_t = GRU(v_t, q_{t-1})
    episodic memory, m^0 = q, for t = 1..T passes:
        z_i^t = [s_i ∘ q; s_i ∘ m^{t-1}; |s_i - q|; |s_i - m^{t-1}|]                          (B, F, 4H)
        Z_i^t = W^{(2)} tanh(W^{(1)} z_i^t + b^{(1)}) + b^{(2)}                              (B, F)
        g_i^t = exp(Z_i^t) / Σ_k exp(Z_k^t)   (softmax over the facts; or g_i^t = σ(Z_i^t))  (B, F)
        h_i^t = g_i^t * GRU(s_i, h_{i-1}^t) + (1 - g_i^t) * h_{i-1}^t,  h_0^t = 0   attention-GRU over the facts
        e^t = h_F^t                                                                        the episode (B, H)
        m^t = ReLU(W^t [m^{t-1}; e^t; q] + b)   (DMN+; untied: one W^t per pass, tied: one W)
           or GRU(e^t, m^{t-1})                  (DMN)
    answer module: y = softmax(W^{(a)} [m^T; q])                        one word (bAbI; lecture 004)
               or  a_0 = m^T, a_t = GRU([y_{t-1}; q], a_{t-1}), y_t = softmax(W^{(a)} a_t)   a word sequence
                   (task 19's paths "n,w", task 8's lists), ending with <eos>; y_{t-1} enters as the previous
                   word's embedding (<eos> at t = 1; teacher-forced in training, greedy at inference)

The lecture names the facts s_i in z and c_t inside GRU(c_t, h): the same vectors, written s_i here throughout.
Padded facts (rows of 0s after a story's last fact) get g = 0, so the attention-GRU carries h past them
unchanged and the episode is h at the story's last fact. GRU(s_i, h) is rnnkit's ``GRUCell`` in the lectures'
reset-before form: the lecture's equation keeps the whole GRU and blends it with g (Xiong et al.'s AttnGRU
instead puts g in place of the update gate; with the cell's own gate z this is h = g(1 - z) h̃ + (1 - g(1 - z)) h,
which reduces to it when z = 0). The question, sentence and fusion GRUs run torch's fused kernel.

Shape legend: B batch, F facts (the batch's longest story), W words (the longest sentence), Q question words,
H hidden (= the word embedding size), T passes, L answer steps, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from .._modes import eval_mode
from ..cells import GRUCell
from ..layers import RNN, Bidirectional

SENTENCES = ("pe", "gru")
GATES = ("softmax", "sigmoid")
UPDATES = ("relu", "gru")
ANSWERS = ("softmax", "gru")
# the two published models; every field can still be set on its own
VARIANTS = {
    "dmn+": {"sentence": "pe", "fusion": True, "gate": "softmax", "update": "relu", "tied": False},
    "dmn": {"sentence": "gru", "fusion": False, "gate": "sigmoid", "update": "gru", "tied": True},
}


@dataclass
class DMNConfig:
    vocab_size: int
    hidden: int = 80  # H, also the word embedding size (Xiong et al.: 80)
    sentence: str = "pe"  # pe: positional encoding (DMN+) | gru: one GRU over the story's words (DMN)
    fusion: bool = True  # DMN+ input fusion layer: a bidirectional GRU across the facts, directions summed
    passes: int = 3  # T
    gate: str = "softmax"  # softmax over the facts (DMN+) | sigmoid per fact
    update: str = "relu"  # memory update: relu (DMN+) | gru (DMN)
    tied: bool = False  # one memory update for every pass (untied: one per pass)
    answer: str = "softmax"  # softmax: one word | gru: a GRU decoder for multi-word answers
    max_answer_len: int = 1  # the decoder's most words before <eos> at inference
    dropout: float = 0.1  # on the facts and before the answer layer
    pad_id: int = 0
    eos_id: int = 2

    def __post_init__(self):
        check_positive_int("DMNConfig", "vocab_size", self.vocab_size)
        check_positive_int("DMNConfig", "hidden", self.hidden)
        check_positive_int("DMNConfig", "passes", self.passes)
        check_positive_int("DMNConfig", "max_answer_len", self.max_answer_len)
        check_probability("DMNConfig", "dropout", self.dropout)
        for name, choices in (("sentence", SENTENCES), ("gate", GATES), ("update", UPDATES), ("answer", ANSWERS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"DMNConfig: expected {name} in {', '.join(choices)}, got {getattr(self, name)!r}")
        for name in ("fusion", "tied"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"DMNConfig: expected {name} to be a bool, got {getattr(self, name)!r}")
        for name in ("pad_id", "eos_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise ValueError(f"DMNConfig: expected {name} in [0, {self.vocab_size}), got {value!r}")


class DMNOutput(NamedTuple):
    """logits (B, L, V) of the answer words (L = 1 for the softmax answer); gates g (B, T, F), 0 on padded facts;
    scores Z (B, T, F) before the softmax / sigmoid; fact_mask (B, F), True on real facts."""

    logits: Tensor
    gates: Tensor
    scores: Tensor
    fact_mask: Tensor


def position_encoding(word_counts: Tensor, width: int, dim: int) -> Tensor:
    r"""Xiong et al.'s (and Sukhbaatar et al.'s) weights l_j for the DMN+ sentence encoding f_i = Σ_j l_j ∘ w_j^i:

    .. math:: l_{jd} = (1 - j/M) - (d/D)(1 - 2j/M),\quad j = 1..M \text{ words}, d = 1..D

    word_counts (B, F) = M per sentence -> (B, F, W, D), 0 for j > M (padding words)."""
    M = word_counts.clamp(min=1).to(torch.float32)[..., None, None]  # (B, F, 1, 1)
    j = torch.arange(1, width + 1, device=word_counts.device, dtype=torch.float32)[:, None]  # (W, 1)
    d = torch.arange(1, dim + 1, device=word_counts.device, dtype=torch.float32)  # (D,)
    l = (1 - j / M) - (d / dim) * (1 - 2 * j / M)  # (B, F, W, D)
    return l * (j <= M).to(l.dtype)


class EpisodicMemory(nn.Module):
    r"""T passes of attention over the facts, each updating the memory (lecture 004; see the module docstring).

    Parameters: ``gate_mlp`` (W^{(1)}, b^{(1)}: 4H -> H, tanh, W^{(2)}, b^{(2)}: H -> 1), shared by the passes;
    ``attention_gru``, the GRU of h_i = g_i GRU(s_i, h_{i-1}) + (1 - g_i) h_{i-1}, shared by the passes;
    ``updates``: the memory update, one per pass (untied) or one (tied): ``Linear(3H, H)`` + ReLU or a
    ``GRUCell(H, H)``.

    Shape:
        facts s (B, F, H), q (B, H), fact_mask (B, F) bool -> m^T (B, H), gates g (B, T, F), scores Z (B, T, F).
    """

    def __init__(self, hidden: int, passes: int, *, gate: str = "softmax", update: str = "relu", tied: bool = False):
        super().__init__()
        H = hidden
        self.hidden, self.passes, self.gate, self.update, self.tied = hidden, passes, gate, update, tied
        self.gate_mlp = nn.Sequential(nn.Linear(4 * H, H), nn.Tanh(), nn.Linear(H, 1))
        self.attention_gru = GRUCell(H, H)
        count = 1 if tied else passes
        if update == "relu":
            self.updates = nn.ModuleList(nn.Linear(3 * H, H) for _ in range(count))
        else:
            self.updates = nn.ModuleList(GRUCell(H, H) for _ in range(count))

    def scores(self, facts: Tensor, q: Tensor, m: Tensor) -> Tensor:
        """Z_i = W2 tanh(W1 z_i + b1) + b2 with z_i = [s_i ∘ q; s_i ∘ m; |s_i - q|; |s_i - m|]: (B, F)."""
        q, m = q[:, None], m[:, None]  # (B, 1, H)
        z = torch.cat([facts * q, facts * m, (facts - q).abs(), (facts - m).abs()], dim=-1)  # (B, F, 4H)
        return self.gate_mlp(z).squeeze(-1)

    def gates(self, scores: Tensor, fact_mask: Tensor) -> Tensor:
        """g = softmax over the real facts, or σ(Z) on them; 0 on padded facts: (B, F)."""
        if self.gate == "softmax":
            return scores.masked_fill(~fact_mask, float("-inf")).softmax(dim=-1)
        return torch.sigmoid(scores) * fact_mask

    def episode(self, projected: Tensor, g: Tensor) -> Tensor:
        """The attention-GRU over the facts: projected (B, F, 3H) = the GRU's input products of every s_i (one
        GEMM for all passes), g (B, F) -> e = h_F (B, H)."""
        cell = self.attention_gru
        h = projected.new_zeros(projected.shape[0], self.hidden)
        for x_i, g_i in zip(projected.unbind(1), g[..., None].unbind(1)):  # unbind: one cheap backward, not F
            candidate, _ = cell.step(x_i, h)  # GRU(s_i, h_{i-1})
            h = h + g_i * (candidate - h)  # = g_i * GRU(s_i, h_{i-1}) + (1 - g_i) * h_{i-1}
        return h

    def update_memory(self, t: int, m: Tensor, e: Tensor, q: Tensor) -> Tensor:
        layer = self.updates[0 if self.tied else t]
        if self.update == "relu":
            return F.relu(layer(torch.cat([m, e, q], dim=-1)))  # m^t = ReLU(W^t [m^{t-1}; e^t; q] + b)
        return layer(e, m)[1]  # m^t = GRU(e^t, m^{t-1})

    def forward(self, facts: Tensor, q: Tensor, fact_mask: Tensor):
        projected = self.attention_gru.project_input(facts)  # (B, F, 3H)
        m, gates, scores = q, [], []  # m^0 = q: "on the first pass m^{t-1} is the question itself"
        for t in range(self.passes):
            Z = self.scores(facts, q, m)
            g = self.gates(Z, fact_mask)
            m = self.update_memory(t, m, self.episode(projected, g), q)
            gates.append(g)
            scores.append(Z)
        return m, torch.stack(gates, dim=1), torch.stack(scores, dim=1)


class DMN(nn.Module):
    """The Dynamic Memory Network; equations in the module docstring.

    ``out = model.run(facts, question, answer_in)`` (training, teacher forcing for the decoder);
    ``ids, out = model.predict(facts, question)`` (greedy answers); ``model(x)`` is the Trainer's contract with
    facts, question and decoder input stacked in one tensor (``rnnkit.data.babi.BabiBatches`` makes them).

    Shape:
        facts (B, F, W) word ids, each story's real facts first, then rows of pad ids; every story has at least
        one fact and every fact at least one word. question (B, Q) ids padded after the words. answer_in (B, L):
        ``<eos>`` (the start symbol), then the answer words (decoder only). Returns :class:`DMNOutput`.

    Example::

        >>> model = DMN(DMNConfig(vocab_size=40, hidden=16))
        >>> facts = torch.randint(3, 40, (2, 5, 6)); question = torch.randint(3, 40, (2, 4))
        >>> out = model.run(facts, question)
        >>> out.logits.shape, out.gates.shape
        (torch.Size([2, 1, 40]), torch.Size([2, 3, 5]))
    """

    def __init__(self, config: DMNConfig):
        super().__init__()
        self.config = c = config
        H = c.hidden
        self.embedding = nn.Embedding(c.vocab_size, H, padding_idx=c.pad_id)
        self.sentence_rnn = RNN("gru", H, H) if c.sentence == "gru" else None
        self.fusion = Bidirectional(GRUCell(H, H, reset_after=True), GRUCell(H, H, reset_after=True),
                                    merge="sum") if c.fusion else None
        self.question_rnn = RNN("gru", H, H)
        self.memory = EpisodicMemory(H, c.passes, gate=c.gate, update=c.update, tied=c.tied)
        self.drop = nn.Dropout(c.dropout)
        if c.answer == "softmax":
            self.decoder = None
            self.answer_out = nn.Linear(2 * H, c.vocab_size)  # W^{(a)} [m^T; q]
        else:
            self.decoder = GRUCell(2 * H, H, reset_after=True)  # a_t = GRU([y_{t-1}; q], a_{t-1})
            self.answer_out = nn.Linear(H, c.vocab_size)

    # ----- modules ------------------------------------------------------------------------------------------

    def encode_facts(self, facts: Tensor) -> tuple[Tensor, Tensor]:
        """Input module: facts (B, F, W) ids -> s (B, F, H) and fact_mask (B, F)."""
        pad = self.config.pad_id
        word_mask = facts != pad  # (B, F, W)
        word_counts = word_mask.sum(dim=-1)  # (B, F)
        fact_mask = word_counts > 0
        fact_counts = fact_mask.sum(dim=-1)  # (B,)
        if bool((fact_counts == 0).any()):
            bad = int((fact_counts == 0).nonzero()[0])
            raise ValueError(f"DMN: every story needs at least one fact, got none in row {bad} of the batch")
        words = self.embedding(facts)  # (B, F, W, H); pad ids embed to 0
        if self.config.sentence == "pe":
            s = (words * position_encoding(word_counts, facts.shape[2], words.shape[-1]).to(words.dtype)).sum(dim=2)
        else:
            s = self._story_gru(words, word_counts, fact_mask)
        if self.fusion is not None:
            s, _ = self.fusion(s, lengths=fact_counts)  # f_i = forward_i + backward_i
        s = s * fact_mask[..., None]
        return self.drop(s), fact_mask

    def _story_gru(self, words: Tensor, word_counts: Tensor, fact_mask: Tensor) -> Tensor:
        """Kumar et al.'s input module: one GRU over the story's words in order; fact i is its hidden state at
        the last word of sentence i. words (B, F, W, H) -> (B, F, H)."""
        B, F_, W, H = words.shape
        word_mask = (torch.arange(W, device=words.device) < word_counts[..., None]).view(B, F_ * W)
        position = word_mask.long().cumsum(dim=1) - 1  # each real word's place in the story, (B, F*W)
        rows = torch.arange(B, device=words.device)[:, None].expand(B, F_ * W)
        totals = word_counts.sum(dim=1)  # (B,)
        story = words.new_zeros(B, int(totals.max()), H)
        story = story.index_put((rows[word_mask], position[word_mask]), words.reshape(B, F_ * W, H)[word_mask])
        out, _ = self.sentence_rnn(story, lengths=totals.cpu())  # (B, N, H)
        ends = (word_counts.cumsum(dim=1) - 1).clamp(min=0)  # (B, F): the last word of each sentence
        return out.gather(1, ends[..., None].expand(B, F_, H)) * fact_mask[..., None]

    def encode_question(self, question: Tensor) -> Tensor:
        """Question module q_t = GRU(v_t, q_{t-1}): question (B, Q) ids -> q = q_Q (B, H)."""
        lengths = (question != self.config.pad_id).sum(dim=1)
        if bool((lengths == 0).any()):
            bad = int((lengths == 0).nonzero()[0])
            raise ValueError(f"DMN: every question needs at least one word, got none in row {bad} of the batch")
        _, state = self.question_rnn(self.embedding(question), lengths=lengths.cpu())
        return state[-1]

    def answer_logits(self, m: Tensor, q: Tensor, answer_in: Tensor | None) -> Tensor:
        """(B, 1, V) for the softmax answer; (B, L, V) for the decoder, teacher-forced on answer_in (B, L)."""
        if self.decoder is None:
            return self.answer_out(self.drop(torch.cat([m, q], dim=-1)))[:, None]
        if answer_in is None:
            raise ValueError("DMN: the GRU answer decoder needs answer_in (B, L): <eos> then the answer words")
        a, logits = m, []  # a_0 = m^T
        embedded = self.embedding(answer_in)  # (B, L, H)
        for t in range(answer_in.shape[1]):
            a, _ = self.decoder(torch.cat([embedded[:, t], q], dim=-1), a)
            logits.append(self.answer_out(self.drop(a)))
        return torch.stack(logits, dim=1)

    # ----- whole model --------------------------------------------------------------------------------------

    def run(self, facts: Tensor, question: Tensor, answer_in: Tensor | None = None) -> DMNOutput:
        self._check_ids("facts", facts, 3)
        self._check_ids("question", question, 2)
        if facts.shape[0] != question.shape[0]:
            raise ValueError(f"DMN: expected facts and question with the same batch size, got {facts.shape[0]} "
                             f"and {question.shape[0]}")
        s, fact_mask = self.encode_facts(facts)
        q = self.encode_question(question)
        m, gates, scores = self.memory(s, q, fact_mask)
        return DMNOutput(self.answer_logits(m, q, answer_in), gates, scores, fact_mask)

    def forward(self, x: Tensor, state=None, lengths=None):
        """The Trainer's contract: x (B, F + 2, W) = facts (rows 0..F-1), question (row F), decoder input
        (row F + 1; unused by the softmax answer) -> (DMNOutput, None)."""
        if state is not None:
            raise ValueError("DMN: every question starts from its own story; expected state=None")
        self._check_ids("x", x, 3)
        if x.shape[1] < 3:
            raise ValueError(f"DMN: expected x (B, F + 2, W) with at least one fact, got {tuple(x.shape)}")
        pad = self.config.pad_id
        facts, question = x[:, :-2], x[:, -2]
        answer_in = None
        if self.decoder is not None:
            answer_in = x[:, -1, : max(1, int((x[:, -1] != pad).sum(dim=1).max()))]
        return self.run(facts, question, answer_in), None

    @torch.no_grad()
    def predict(self, facts: Tensor, question: Tensor) -> tuple[Tensor, DMNOutput]:
        """Greedy answers: ids (B, L) of the answer words, padded with pad_id after each answer (the decoder's
        final <eos> is not included; <pad> itself is never predicted); and the output whose gates show what
        each pass attended to."""
        c = self.config
        with eval_mode(self):
            s, fact_mask = self.encode_facts(facts)
            q = self.encode_question(question)
            m, gates, scores = self.memory(s, q, fact_mask)
            if self.decoder is None:
                logits = self.answer_out(torch.cat([m, q], dim=-1))[:, None]
                return self._best(logits), DMNOutput(logits, gates, scores, fact_mask)
            B = facts.shape[0]
            y = torch.full((B,), c.eos_id, dtype=torch.long, device=facts.device)
            done = torch.zeros(B, dtype=torch.bool, device=facts.device)
            a, ids, logits = m, [], []
            for _ in range(c.max_answer_len + 1):
                a, _ = self.decoder(torch.cat([self.embedding(y), q], dim=-1), a)
                step = self.answer_out(a)
                y = self._best(step)
                done = done | (y == c.eos_id)
                ids.append(y.masked_fill(done, c.pad_id))  # <eos> and everything after it -> pad
                logits.append(step)
                if bool(done.all()):
                    break
            return torch.stack(ids, dim=1), DMNOutput(torch.stack(logits, dim=1), gates, scores, fact_mask)

    def _best(self, logits: Tensor) -> Tensor:
        """argmax over the words, <pad> excluded."""
        return logits.index_fill(-1, torch.tensor([self.config.pad_id], device=logits.device), float("-inf")
                                 ).argmax(dim=-1)

    def _check_ids(self, name: str, ids: Tensor, dims: int) -> None:
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64 or ids.dim() != dims:
            what = f"{ids.dtype} tensor of shape {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"DMN: expected {name} as int64 word ids with {dims} dimensions, got {what}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise ValueError(f"DMN: expected {name} ids in [0, {self.config.vocab_size}), got values in "
                             f"[{int(ids.min())}, {int(ids.max())}]")

    # ----- losses -------------------------------------------------------------------------------------------

    def answer_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of the answer words (and the decoder's <eos>); y (B, L), pad ignored."""
        if logits.shape[:2] != y.shape:
            raise ValueError(f"DMN: expected targets y of shape {tuple(logits.shape[:2])}, got {tuple(y.shape)}")
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=self.config.pad_id)

    def gate_loss(self, out: DMNOutput, supporting: Tensor) -> Tensor:
        """Gate supervision (Kumar et al. 2016): at pass t, cross-entropy of the gates against the t-th supporting
        fact (in the order the data lists them): -log g_s for softmax gates, binary cross-entropy of every real
        fact's gate (1 for s, 0 for the others) for sigmoid gates. supporting (B, S), -1 = none; averaged over the
        (question, pass) pairs that have a supporting fact."""
        B, T, F_ = out.gates.shape
        if supporting.dim() != 2 or supporting.shape[0] != B:
            raise ValueError(f"DMN: expected supporting fact indices (B={B}, S), got {tuple(supporting.shape)}")
        if bool((supporting >= F_).any()):
            raise ValueError(f"DMN: supporting fact index {int(supporting.max())} is outside the {F_} facts")
        steps = min(T, supporting.shape[1])
        target = supporting[:, :steps]  # (B, steps)
        valid = target >= 0
        if not bool(valid.any()):
            return out.scores.sum() * 0.0
        scores = out.scores[:, :steps].float()  # (B, steps, F)
        mask = out.fact_mask[:, None, :].expand_as(scores)
        if self.config.gate == "softmax":
            logp = scores.masked_fill(~mask, float("-inf")).log_softmax(dim=-1)
            picked = logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)  # (B, steps)
            return -(picked[valid]).mean()
        onehot = F.one_hot(target.clamp(min=0), F_).to(scores.dtype)  # (B, steps, F)
        bce = F.binary_cross_entropy_with_logits(scores, onehot, reduction="none")
        keep = mask & valid[..., None]
        return bce[keep].mean()
