r"""Decoding whole sequences from a conditional step model: batched beam search, greedy and sampling.

Any model with ``logits, state = model.step(tokens, state)`` works (``Seq2Seq`` after ``encode``, or a
language model); the state is reordered along the batch with its ``index_select(index)`` method when it has
one, otherwise tensor by tensor. Each step feeds one token per sequence and carries the state: the prefix
is never re-run.

**Beam search** keeps the K best prefixes of every sequence by total log-probability
:math:`\log p(y_1..y_t \mid x) = \sum_i \log p(y_i \mid y_{<i}, x)` (lecture 001's product, in logs). Each
step ranks the :math:`K \cdot V` extensions of the K prefixes; an extension that ends in ``<eos>`` among
the top K becomes a finished hypothesis, and the best K that do not end continue. A sequence is done when
it has K finished hypotheses; at ``max_len`` the unfinished prefixes count as finished (marked so).
Among the finished hypotheses the best by the *length-normalised* score wins,

.. math::
    \operatorname{score}(y) = \frac{\log p(y \mid x)}{|y|^{\alpha}}

(|y| counts ``<eos>``; α = 0 is the raw log-probability, which favours short outputs; α = 1 the mean
log-probability per token). With K = 1 this is exactly greedy decoding.

**Greedy and sampling** (:func:`decode`) draw each next token with :func:`rnnkit.decode.sample.next_token`
(temperature 0 = argmax; top-k, top-p).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_positive_int
from .._modes import eval_mode
from ..layers.state import map_state
from .sample import check_sampling, next_token


@dataclass
class Hypothesis:
    """One decoded sequence: its tokens (without ``<bos>`` and ``<eos>``), total log-probability (``<eos>``
    included when finished), length-normalised score, and whether it ended with ``<eos>`` (not cut at max_len)."""

    tokens: list[int]
    log_prob: float
    score: float
    finished: bool


def reorder_state(state, index: Tensor):
    """The state's rows in the order ``index`` (B',) gives: beams expanded, kept or dropped."""
    if not isinstance(state, Tensor) and hasattr(state, "index_select"):  # e.g. Seq2Seq's DecoderState
        return state.index_select(index)
    return map_state(lambda t: t.index_select(0, index.to(t.device)), state)


def _check(batch_size, max_len, bos_id, eos_id):
    check_positive_int("decode", "batch_size", batch_size)
    check_positive_int("decode", "max_len", max_len)
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"decode: expected {name} to be a token id >= 0, got {value!r}")


def _normalise(log_prob: float, length: int, alpha: float) -> float:
    return log_prob / (max(length, 1) ** alpha)


@torch.no_grad()
def decode(model, state, *, batch_size: int, bos_id: int, eos_id: int, max_len: int, temperature: float = 0.0,
           top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
           length_penalty: float = 1.0) -> list[Hypothesis]:
    """Greedy (temperature 0, the default) or sampled decoding of ``batch_size`` sequences from ``state``.

    Every sequence starts from ``bos_id`` and ends at ``eos_id`` or after ``max_len`` tokens. The
    log-probabilities are the model's own (before temperature / top-k / top-p); ``score`` normalises them
    by length as beam search does.
    """
    _check(batch_size, max_len, bos_id, eos_id)
    check_sampling(temperature, top_k, top_p)
    with eval_mode(model):
        device = next(model.parameters()).device
        tokens = torch.full((batch_size,), bos_id, dtype=torch.int64, device=device)
        out = torch.zeros(batch_size, max_len, dtype=torch.int64)
        log_prob = torch.zeros(batch_size, dtype=torch.float64)
        length = torch.full((batch_size,), max_len, dtype=torch.int64)  # tokens generated, <eos> included
        done = torch.zeros(batch_size, dtype=torch.bool)
        for t in range(max_len):
            logits, state = model.step(tokens, state)  # (B, V)
            tokens = next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            step_lp = F.log_softmax(logits.float(), dim=-1).gather(1, tokens[:, None]).squeeze(1).cpu().double()
            log_prob += torch.where(done, 0.0, step_lp)
            out[:, t] = tokens.cpu()
            ended = (tokens.cpu() == eos_id) & ~done
            length[ended] = t + 1
            done |= ended
            if bool(done.all()):
                break
    result = []
    for b in range(batch_size):
        n = int(length[b])
        finished = bool(done[b])
        ids = out[b, : n - 1 if finished else n].tolist()
        result.append(Hypothesis(ids, float(log_prob[b]), _normalise(float(log_prob[b]), n, length_penalty), finished))
    return result


@torch.no_grad()
def beam_search(model, state, *, batch_size: int, bos_id: int, eos_id: int, beam_size: int = 5, max_len: int = 100,
                length_penalty: float = 1.0) -> list[Hypothesis]:
    """The best hypothesis of each of ``batch_size`` sequences by beam search (see the module docstring).

    Args:
        model: ``logits, state = model.step(tokens (N,), state)``.
        state: the state for ``batch_size`` rows (e.g. ``Seq2Seq.encode(src, lengths)``).
        beam_size: K >= 1 prefixes kept per sequence (1: greedy).
        max_len: at most this many tokens per hypothesis, ``<eos>`` included.
        length_penalty: α >= 0 of the score log p / |y|^α.
    """
    _check(batch_size, max_len, bos_id, eos_id)
    check_positive_int("beam_search", "beam_size", beam_size)
    if not length_penalty >= 0:
        raise ValueError(f"beam_search: expected length_penalty >= 0, got {length_penalty}")
    with eval_mode(model):
        return _beam_search(model, state, batch_size, bos_id, eos_id, beam_size, max_len, length_penalty)


def _beam_search(model, state, B, bos_id, eos_id, K, max_len, alpha) -> list[Hypothesis]:
    device = next(model.parameters()).device
    state = reorder_state(state, torch.arange(B, device=device).repeat_interleave(K))  # row b*K + k: beam k of b
    tokens = torch.full((B * K,), bos_id, dtype=torch.int64, device=device)
    scores = torch.full((B, K), float("-inf"), dtype=torch.float64)
    scores[:, 0] = 0.0  # one live prefix (<bos>) per sequence at the start, not K copies of it
    history = torch.zeros(B, K, 0, dtype=torch.int64)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    for t in range(max_len):
        logits, state = model.step(tokens, state)
        V = logits.shape[-1]
        log_probs = F.log_softmax(logits.float(), dim=-1).cpu().double().view(B, K, V)
        candidates = (scores[:, :, None] + log_probs).view(B, K * V)  # every extension's total log p
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)  # 2K: enough to keep K alive after <eos>
        origin, token = top_index // V, top_index % V  # (B, 2K): which prefix, which next token
        new_scores = torch.full((B, K), float("-inf"), dtype=torch.float64)
        new_origin = torch.zeros(B, K, dtype=torch.int64)
        new_token = torch.full((B, K), eos_id, dtype=torch.int64)
        for b in range(B):
            if done[b]:
                continue
            alive = 0
            for rank in range(top_scores.shape[1]):
                s, o, w = float(top_scores[b, rank]), int(origin[b, rank]), int(token[b, rank])
                if s == float("-inf"):
                    break
                if w == eos_id:
                    if rank < K:  # only <eos> among the top K ends a hypothesis (so K = 1 is greedy)
                        finished[b].append(Hypothesis(history[b, o].tolist(), s, _normalise(s, t + 1, alpha), True))
                    continue
                new_scores[b, alive], new_origin[b, alive], new_token[b, alive] = s, o, w
                alive += 1
                if alive == K:
                    break
            if len(finished[b]) >= K or alive == 0:
                done[b] = True
                new_scores[b] = float("-inf")
        if all(done):
            break
        rows = (torch.arange(B)[:, None] * K + new_origin).view(-1)  # (B*K,) rows of the old beams
        state = reorder_state(state, rows.to(device))
        history = torch.cat([history.view(B * K, -1)[rows].view(B, K, -1), new_token[:, :, None]], dim=2)
        scores, tokens = new_scores, new_token.view(-1).to(device)
    for b in range(B):  # at max_len: the unfinished prefixes compete as they are
        if not done[b]:
            for k in range(K):
                s = float(scores[b, k])
                if s > float("-inf"):
                    tokens_b = history[b, k].tolist()
                    finished[b].append(Hypothesis(tokens_b, s, _normalise(s, len(tokens_b), alpha), False))
    return [max(hyps, key=lambda h: h.score) for hyps in finished]
