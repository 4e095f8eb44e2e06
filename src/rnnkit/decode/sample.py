"""Sampling from a step-wise model: temperature, top-k, top-p (nucleus), greedy (lecture 001:
x_{t+1} | y_t ~ Multinomial(softmax(y_t)))."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from .._modes import eval_mode


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature >= 0:  # also refuses NaN
        raise ValueError(f"sample: expected temperature >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"sample: expected top_k >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"sample: expected top_p in (0, 1], got {top_p}")


def next_token(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """logits (B, V) -> ids (B,). temperature 0 means greedy (argmax); top_k keeps the k most likely
    tokens, top_p the smallest set whose probability reaches p; both renormalise before sampling."""
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first one always stays)
        drop = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    # inverse-CDF sampling: one uniform per row; for a few hundred classes this is several times
    # cheaper than torch.multinomial, which matters when generating one token at a time
    cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    u = torch.rand(cdf.shape[0], 1, device=cdf.device, generator=generator) * cdf[:, -1:]
    # the first index whose cdf exceeds u, i.e. the count of cdf <= u: a zero-probability token is never drawn
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


def generate(model, prime: Tensor, length: int, *, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, eos_id: int | None = None, generator: torch.Generator | None = None,
             precision: str = "fp32") -> Iterator[int]:
    """Yield up to `length` new token ids after the priming ids (T0,), one at a time as produced.

    The prime is read in one forward call; then the model runs one step per token with its state (no
    re-encoding of the prefix): ``model.stepper()`` where the model has one (weights prepared once), else
    ``model.step``. Stops early after yielding ``eos_id``. ``precision="bf16"`` or ``"int8"``: the stepper's
    recurrent products with bf16 or int8 weights (``LanguageModel.stepper``). The stepper is made by this call, from the
    weights as they are now. An LSTM, GRU or Elman language model on the CPU steps through
    ``model.native_stepper()`` instead (one compiled call a token: step, output layer and draw, top_k and top_p too)
    where the C kernel builds: the same uniforms from ``generator``, so the same text as torch's ops but for a
    draw that lands within rounding of a boundary.
    """
    check_generation(prime, length, temperature, top_k, top_p)  # now, not at the first next()
    if hasattr(model, "native_stepper"):
        with eval_mode(model):
            native = model.native_stepper(precision)
        if native is not None:
            return _sampled_native(model, native, prime, length, temperature, top_k, top_p, eos_id, generator)
    step = stepper(model, precision)
    return (int(token) for token in _sampled(model, step, prime, 1, length, temperature, top_k, top_p, eos_id,
                                             generator))


def generate_many(model, prime: Tensor, length: int, samples: int, *, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                  generator: torch.Generator | None = None, precision: str = "fp32") -> list[list[int]]:
    """``samples`` continuations of one prime at once: a batch of ``samples`` rows stepped together, so the
    weights are read once per step for all of them (B=64 costs little more per step than B=1 on a CPU).
    Returns one list of up to ``length`` new ids per sample; a sample ends after its ``eos_id``, the others
    go on. Row i is drawn from the same distribution as one call of :func:`generate`, not the same numbers
    (the draws of a step come from one ``torch.rand`` call for the whole batch)."""
    check_generation(prime, length, temperature, top_k, top_p)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"generate: expected samples >= 1, got {samples!r}")
    step = stepper(model, precision)
    steps = list(_sampled(model, step, prime, samples, length, temperature, top_k, top_p, eos_id, generator))
    rows = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in range(samples)]
    if eos_id is not None:  # each sample ends at its first <eos>, kept
        rows = [row[:row.index(eos_id) + 1] if eos_id in row else row for row in rows]
    return rows


def check_generation(prime: Tensor, length: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if prime.dim() != 1 or prime.numel() == 0:
        raise ValueError(f"generate: expected a non-empty 1-D tensor of priming ids, got shape {tuple(prime.shape)}")
    if length < 0:
        raise ValueError(f"generate: expected length >= 0, got {length}")
    check_sampling(temperature, top_k, top_p)


def stepper(model, precision: str = "fp32"):
    """The model's step for generation: ``model.stepper(precision)``, made in eval mode, where it has one, else
    ``model.step``; a precision the model cannot step in is refused here."""
    if hasattr(model, "stepper"):
        with eval_mode(model):
            return model.stepper(precision)
    if precision != "fp32":
        raise ValueError(f"generate: precision {precision!r} needs a model with a stepper, got {type(model).__name__}")
    return model.step


@torch.no_grad()
def _sampled(model, step, prime, rows, length, temperature, top_k, top_p, eos_id, generator):
    """Each step's sampled ids (rows,) on the CPU, for ``rows`` copies of the prime stepped as one batch (in eval
    mode, restored after); ends after ``length`` steps or once every row has produced ``eos_id``."""
    with eval_mode(model):
        logits, state = _read_prime(model, prime, rows)
        ended = torch.zeros(rows, dtype=torch.bool, device=logits.device) if eos_id is not None else None
        for i in range(length):
            token = next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            yield token.cpu()
            if ended is not None:
                ended |= token == eos_id
                if bool(ended.all()):
                    return
            if i == length - 1:
                return
            logits, state = step(token, state)


@torch.no_grad()
def _sampled_native(model, native, prime, length, temperature, top_k, top_p, eos_id, generator):
    """``_sampled`` for one row through a :class:`rnnkit.kernels.lm_step.NativeLMStep`: the prime read by the
    model's forward call, its last logits drawn from by ``next_token``, then one native call a token, each with
    the uniform ``next_token`` would have drawn (none when greedy)."""
    with eval_mode(model):
        logits, state = _read_prime(model, prime, 1)
    native.load_state(state)
    token = int(next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator))
    for i in range(length):
        yield token
        if token == eos_id or i == length - 1:
            return
        u = torch.rand(1, generator=generator).item() if temperature > 0 else 0.0
        token = native.sample(token, temperature, u, top_k, top_p)


def _read_prime(model, prime, rows):
    """The prime (T0,) read once per row by one forward call: the last logits (rows, V) and the state."""
    device = next(model.parameters()).device
    logits, state = model(prime.to(device).expand(rows, -1))  # (rows, T0, V)
    return logits[:, -1], state
