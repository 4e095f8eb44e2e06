"""Evaluation: the average loss (and metrics) of a model over a batch source, weighted by tokens."""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from .._modes import eval_mode
from ..layers.state import detach_state, map_state


def forward(model, batch, state):
    """The model contract: ``preds, state = model(x, state)``, with ``lengths=`` when the batch has them."""
    if batch.lengths is not None:
        return model(batch.x, state, lengths=batch.lengths)
    return model(batch.x, state)


def reset_rows(state, reset):
    """Zero the carried state of the streams that restart here (reset: (B,) bool or None)."""
    if state is None or reset is None or not bool(reset.any()):
        return state
    if bool(reset.all()):
        return None  # the model starts every stream from its initial (zero) state
    keep = (~reset.to(torch.bool)).view(-1, 1)
    return map_state(lambda s: s * keep.to(s.device, s.dtype), state)


@torch.no_grad()
def evaluate(model, source, loss_fn: Callable, *, metrics_fn: Callable | None = None, device="cpu",
             stateful: bool = False, autocast=contextlib.nullcontext, epoch: int = 0) -> dict[str, float]:
    """Mean loss over every batch of ``source.batches(epoch)``, weighted by each batch's valid tokens;
    metrics_fn(preds, batch) -> {name: value} averaged the same way. With ``stateful`` the state
    carries from batch to batch as in training (stream data)."""
    totals: dict[str, float] = {}
    weight = 0
    state = None
    with eval_mode(model):
        for batch in source.batches(epoch):
            batch = batch.to(device)
            state = reset_rows(state, batch.reset) if stateful else None
            with autocast():
                preds, state = forward(model, batch, state)
                values = {"loss": float(loss_fn(preds, batch))}
                if metrics_fn is not None:
                    values.update({k: float(v) for k, v in metrics_fn(preds, batch).items()})
            state = detach_state(state) if stateful else None
            w = batch.tokens
            weight += w
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v * w
    if weight == 0:
        raise ValueError("evaluate: the evaluation data has no batches")
    return {k: v / weight for k, v in totals.items()}
