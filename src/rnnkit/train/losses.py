r"""Losses for padded batches: sequence cross-entropy, masked regression, binary and multiclass.

Lecture 000 compares two sequences with ``tf.contrib.seq2seq.sequence_loss``: a *weighted average of
cross-entropy across the sequence*, where the weights can emphasise parts of the target (more on
nouns than on articles) and zero weights switch padding off. :func:`sequence_loss` is that loss, with
the padding given by ``lengths`` and/or ``ignore_index`` as well as by ``weights``.

Every function here returns a 0-dim tensor, checks its input and raises ``ValueError``/``TypeError``
naming the function, the argument, the expected and the received shape. Nothing is broadcast
silently. Values at padded positions never matter: padded targets may hold any id (-1, V + 5, ...)
or, for regression, NaN; they are replaced before the loss is computed, and the gradient with
respect to padded logits/predictions is exactly 0.

Legend: B batch, T time, V classes (vocabulary), C classes of a classifier, ``...`` any feature dims.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_float_tensor, check_probability
from ..layers.lengths import check_lengths

__all__ = ["sequence_loss", "masked_mse", "masked_mae", "binary_classification_loss", "classification_loss"]

_AVERAGES = ("tokens", "sum", "sequence")


def sequence_loss(logits: Tensor, targets: Tensor, *, weights: Tensor | None = None, lengths=None,
                  ignore_index: int | None = None, average: str = "tokens") -> Tensor:
    r"""Weighted average of per-token cross-entropy over a padded batch (TF ``sequence_loss``).

    .. math::
        \mathrm{CE}_{bt} &= -\log \operatorname{softmax}(x_{bt})_{y_{bt}}
                          = \log \textstyle\sum_v e^{x_{btv}} - x_{bt\,y_{bt}}\\
        m_{bt} &= [\,t < \ell_b\,]\;[\,y_{bt} \ne \text{ignore\_index}\,]\\
        w_{bt} &= m_{bt}\,\omega_{bt} \qquad (\omega_{bt} = 1 \text{ without weights})

    ``average`` picks the reduction:

    * ``"tokens"`` (default): :math:`L = \sum_{bt} w_{bt}\,\mathrm{CE}_{bt} / \sum_{bt} w_{bt}`.
      This is TF's ``sequence_loss(average_across_timesteps=True, average_across_batch=True)``;
      without weights it equals ``F.cross_entropy(..., ignore_index=...)`` over the valid tokens.
    * ``"sum"``: :math:`L = \sum_{bt} w_{bt}\,\mathrm{CE}_{bt}`.
    * ``"sequence"``: each sequence's own weighted mean, averaged over the sequences that carry any
      weight: :math:`L = \frac{1}{|S|}\sum_{b \in S} \frac{\sum_t w_{bt}\,\mathrm{CE}_{bt}}{\sum_t w_{bt}}`,
      :math:`S = \{b : \sum_t w_{bt} > 0\}`. Short sequences count as much as long ones.

    If :math:`\sum_{bt} w_{bt} = 0` (everything padded, ignored or weighted 0) there is nothing to
    average, and every mode raises ``ValueError`` instead of returning NaN (or a silent 0).

    Args:
        logits: unnormalised scores :math:`x`, floating point.
        targets: class ids :math:`y`, any integer dtype. Only valid positions (:math:`m_{bt} = 1`) must
            hold ids in ``[0, V)``; padded and ignored positions may hold anything (-1, V + 5, ...).
        weights: :math:`\omega \ge 0`, finite, per position; e.g. more weight on nouns than on articles.
        lengths: :math:`\ell`, integers in ``[1, T]`` (a tensor or a list); positions ``t >= lengths[b]``
            get weight 0.
        ignore_index: a target id whose positions get weight 0 (e.g. the pad id).
        average: ``"tokens"``, ``"sum"`` or ``"sequence"``.

    Shape:
        logits (B, T, V); targets (B, T); weights (B, T); lengths (B,); returns a 0-dim tensor.

    Example::

        >>> logits, targets = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
        >>> loss = sequence_loss(logits, targets, lengths=torch.tensor([5, 3]))
    """
    owner = "sequence_loss"
    check_float_tensor(owner, "logits", logits)
    if logits.dim() != 3 or 0 in logits.shape:
        raise ValueError(f"{owner}: expected logits (B, T, V) with B, T, V >= 1, got {tuple(logits.shape)}")
    B, T, V = logits.shape
    _check_ids(owner, "targets", targets, logits, (B, T), f"(B, T) = {(B, T)} to match logits {(B, T, V)}")
    if average not in _AVERAGES:
        raise ValueError(f"{owner}: expected average in {_AVERAGES}, got {average!r}")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"{owner}: expected ignore_index to be an int or None, "
                        f"got {type(ignore_index).__name__} {ignore_index!r}")

    valid = torch.ones(B, T, dtype=torch.bool, device=logits.device)  # m: (B, T)
    lengths = check_lengths(owner, lengths, B, T)  # None when every sequence fills T
    if lengths is not None:
        valid = torch.arange(T, device=logits.device)[None, :] < lengths.to(logits.device)[:, None]
    if ignore_index is not None:
        valid = valid & (targets != ignore_index)
    _check_ids_in_range(owner, "targets", targets, valid, V, "at valid positions ")

    if weights is None:
        w = valid.to(logits.dtype)
    else:
        _check_weights(owner, weights, logits, (B, T), f"(B, T) = {(B, T)} to match logits {(B, T, V)}")
        w = torch.where(valid, weights, 0.0)  # w = m * omega, whatever weights hold at padding

    # Padded positions get id 0 so cross_entropy never sees an out-of-range id; their CE is then
    # replaced by 0 (not multiplied by w = 0), so even inf logits there leave the loss finite.
    safe_targets = torch.where(valid, targets, 0).long()
    ce = F.cross_entropy(logits.reshape(B * T, V), safe_targets.reshape(B * T), reduction="none")
    ce = torch.where(valid, ce.view(B, T), 0.0)  # (B, T)
    weighted = w * ce  # (B, T)

    total = w.sum()
    if not bool(total > 0):
        raise ValueError(f"{owner}: total weight is 0 for targets {(B, T)} (every position is padded, ignored "
                         "or weighted 0), so there is nothing to average; skip this batch")
    if average == "tokens":
        return weighted.sum() / total
    if average == "sum":
        return weighted.sum()
    per_weight = w.sum(dim=1)  # (B,)
    has_weight = per_weight > 0
    per_mean = weighted.sum(dim=1) / torch.where(has_weight, per_weight, 1.0)  # (B,)
    return torch.where(has_weight, per_mean, 0.0).sum() / has_weight.sum()


def masked_mse(preds: Tensor, targets: Tensor, *, lengths=None, weights: Tensor | None = None) -> Tensor:
    r"""Mean squared error over the valid elements of a padded batch.

    .. math::
        L = \frac{\sum_i w_i\,(\hat y_i - y_i)^2}{\sum_i w_i}, \qquad
        w_i = [\,t_i < \ell_{b_i}\,]\;\omega_i

    where :math:`i` runs over every element of ``preds`` (all feature dims included), so without
    lengths and weights it equals ``F.mse_loss(preds, targets)``. Padded elements may hold anything,
    NaN included (a common padding for time series): they are replaced before squaring.

    Args:
        preds, targets: floating point, the same shape.
        lengths: integers in ``[1, T]`` along dim 1 (needs preds with a time axis).
        weights: :math:`\omega \ge 0`, finite, with the shape of preds or a leading part of it, e.g.
            (B,) per sequence or (B, T) per step; it is then applied to every element below it.

    Shape:
        preds, targets (B, T, ...) or (B, ...); lengths (B,); weights preds.shape[:k], k >= 1;
        returns a 0-dim tensor. Raises ``ValueError`` when the total weight is 0.
    """
    return _masked_mean("masked_mse", torch.square, preds, targets, lengths, weights)


def masked_mae(preds: Tensor, targets: Tensor, *, lengths=None, weights: Tensor | None = None) -> Tensor:
    r"""Mean absolute error over the valid elements of a padded batch.

    .. math::
        L = \frac{\sum_i w_i\,|\hat y_i - y_i|}{\sum_i w_i}, \qquad
        w_i = [\,t_i < \ell_{b_i}\,]\;\omega_i

    Same arguments, shapes and masking as :func:`masked_mse`; without lengths and weights it equals
    ``F.l1_loss(preds, targets)``.
    """
    return _masked_mean("masked_mae", torch.abs, preds, targets, lengths, weights)


def binary_classification_loss(logits: Tensor, labels: Tensor, *, pos_weight=None) -> Tensor:
    r"""Mean binary cross-entropy with logits.

    .. math::
        L = -\frac{1}{B}\sum_b \big[\,p\,y_b \log \sigma(x_b) + (1 - y_b) \log(1 - \sigma(x_b))\,\big]

    with :math:`p` = ``pos_weight`` (1 when None), computed stably by
    ``F.binary_cross_entropy_with_logits``.

    Args:
        logits: :math:`x`, floating point.
        labels: :math:`y \in \{0, 1\}`, float, integer or bool.
        pos_weight: :math:`p \ge 0`, a number or a one-element tensor; > 1 counts positives more.

    Shape:
        logits (B,) or (B, 1); labels (B,) or the shape of logits; returns a 0-dim tensor.
    """
    owner = "binary_classification_loss"
    check_float_tensor(owner, "logits", logits)
    if not (logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1)) or logits.shape[0] == 0:
        raise ValueError(f"{owner}: expected logits (B,) or (B, 1) with B >= 1, got {tuple(logits.shape)}")
    B = logits.shape[0]
    x = logits.reshape(B)  # (B, 1) -> (B,)
    if not isinstance(labels, Tensor):
        raise TypeError(f"{owner}: expected labels to be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_complex():
        raise TypeError(f"{owner}: expected real labels in {{0, 1}}, got dtype {labels.dtype}")
    if tuple(labels.shape) not in {(B,), tuple(logits.shape)}:
        raise ValueError(f"{owner}: expected labels of shape (B,) = {(B,)} like logits {tuple(logits.shape)}, "
                         f"got {tuple(labels.shape)}")
    _check_device(owner, "labels", labels, logits)
    y = labels.reshape(B)
    bad = (y != 0) & (y != 1)  # NaN is caught too
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"{owner}: expected labels in {{0, 1}}, got {int(bad.sum())} other values, "
                         f"e.g. labels[{i}] = {y[i].item()}")
    pw = None
    if pos_weight is not None:
        if isinstance(pos_weight, bool) or not isinstance(pos_weight, (int, float, Tensor)):
            raise TypeError(f"{owner}: expected pos_weight to be a number or a one-element tensor, "
                            f"got {type(pos_weight).__name__} {pos_weight!r}")
        pw = torch.as_tensor(pos_weight, device=logits.device)
        if pw.numel() != 1 or pw.dim() > 1:
            raise ValueError(f"{owner}: expected pos_weight of shape () or (1,), got {tuple(pw.shape)}")
        if pw.dtype == torch.bool or pw.is_complex():
            raise TypeError(f"{owner}: expected a numeric pos_weight, got dtype {pw.dtype}")
        if not (bool(torch.isfinite(pw.double()).all()) and float(pw) >= 0):
            raise ValueError(f"{owner}: expected a finite pos_weight >= 0, got {float(pw)}")
        pw = pw.to(logits.dtype).reshape(())
    return F.binary_cross_entropy_with_logits(x, y.to(logits.dtype), pos_weight=pw)


def classification_loss(logits: Tensor, labels: Tensor, *, label_smoothing: float = 0.0,
                        class_weights: Tensor | None = None) -> Tensor:
    r"""Mean multiclass cross-entropy (``F.cross_entropy``), optionally smoothed and class-weighted.

    With :math:`p_{bc} = \operatorname{softmax}(x_b)_c`, smoothing :math:`\varepsilon` and class
    weights :math:`\omega_c` (all 1 when None):

    .. math::
        \ell_b &= (1 - \varepsilon)\,\omega_{y_b}\,(-\log p_{b y_b})
                  + \frac{\varepsilon}{C}\sum_c \omega_c\,(-\log p_{bc})\\
        L &= \frac{\sum_b \ell_b}{\sum_b \omega_{y_b}}

    so without class weights :math:`L = \frac{1}{B}\sum_b \ell_b`.

    Args:
        logits: :math:`x`, floating point.
        labels: class ids :math:`y` in ``[0, C)``, any integer dtype.
        label_smoothing: :math:`\varepsilon \in [0, 1)`.
        class_weights: :math:`\omega_c \ge 0`, finite, floating point (converted to the logits' dtype).

    Shape:
        logits (B, C); labels (B,); class_weights (C,); returns a 0-dim tensor. Raises ``ValueError``
        when :math:`\sum_b \omega_{y_b} = 0`.
    """
    owner = "classification_loss"
    check_float_tensor(owner, "logits", logits)
    if logits.dim() != 2 or 0 in logits.shape:
        raise ValueError(f"{owner}: expected logits (B, C) with B, C >= 1, got {tuple(logits.shape)}")
    B, C = logits.shape
    _check_ids(owner, "labels", labels, logits, (B,), f"(B,) = {(B,)} to match logits {(B, C)}")
    _check_ids_in_range(owner, "labels", labels, None, C, "")
    eps = check_probability(owner, "label_smoothing", label_smoothing)
    cw = None
    if class_weights is not None:
        _check_weights(owner, class_weights, logits, (C,), f"(C,) = {(C,)} to match logits {(B, C)}",
                       name="class_weights")
        cw = class_weights.to(logits.dtype)
        if not bool(cw[labels.long()].sum() > 0):
            raise ValueError(f"{owner}: total weight of the labels is 0 (every label's class weight is 0), "
                             "so there is nothing to average")
    return F.cross_entropy(logits, labels.long(), weight=cw, label_smoothing=eps)


# --- checks and the shared masked mean -----------------------------------------------------------


def _masked_mean(owner: str, error, preds, targets, lengths, weights) -> Tensor:
    """sum(w * error(preds - targets)) / sum(w) over all elements; w from lengths and weights."""
    check_float_tensor(owner, "preds", preds)
    check_float_tensor(owner, "targets", targets)
    if preds.dim() == 0 or preds.shape[0] == 0:
        raise ValueError(f"{owner}: expected preds (B, T, ...) or (B, ...) with B >= 1, got {tuple(preds.shape)}")
    if targets.shape != preds.shape:
        raise ValueError(f"{owner}: expected targets of shape {tuple(preds.shape)} like preds, "
                         f"got {tuple(targets.shape)}")
    _check_device(owner, "targets", targets, preds)
    if preds.numel() == 0:
        raise ValueError(f"{owner}: preds {tuple(preds.shape)} has no elements to average")

    def below(t: Tensor) -> Tensor:  # (B, T) -> (B, T, 1, ..., 1): lines up with preds' leading dims
        return t.reshape(*t.shape, *([1] * (preds.dim() - t.dim())))

    valid = None  # (B, T, 1, ...) bool
    if lengths is not None:
        if preds.dim() < 2:
            raise ValueError(f"{owner}: lengths need preds with a time axis (B, T, ...), got {tuple(preds.shape)}")
        B, T = preds.shape[:2]
        lengths = check_lengths(owner, lengths, B, T)
        if lengths is not None:
            valid = below(torch.arange(T, device=preds.device)[None, :] < lengths.to(preds.device)[:, None])
    if weights is not None:
        check_float_tensor(owner, "weights", weights)
        k = weights.dim()
        lead = tuple(preds.shape[:k]) if 1 <= k <= preds.dim() else None  # None never matches
        choices = " or ".join(str(tuple(preds.shape[:j])) for j in range(1, preds.dim() + 1))
        _check_weights(owner, weights, preds, lead, f"{choices} (a leading part of preds' shape)")

    diff = preds - targets
    if valid is not None:
        diff = torch.where(valid, diff, 0.0)  # before error(): NaN padding gives neither NaN loss nor grad
    err = error(diff)  # (B, T, ...) or (B, ...)
    if valid is None and weights is None:
        return err.mean()
    w = torch.ones((), dtype=preds.dtype, device=preds.device)
    if valid is not None:
        w = w * valid
    if weights is not None:
        w = w * below(weights)
    w = w.expand(preds.shape)  # a view: explicit expansion over the documented trailing dims
    total = w.sum()
    if not bool(total > 0):
        raise ValueError(f"{owner}: total weight is 0 for preds {tuple(preds.shape)} (every element is padded "
                         "or weighted 0), so there is nothing to average")
    return (w * err).sum() / total


def _check_device(owner: str, name: str, x: Tensor, ref: Tensor) -> None:
    if x.device != ref.device:
        raise ValueError(f"{owner}: expected {name} on {ref.device} like the logits/preds, got {x.device}")


def _check_ids(owner: str, name: str, ids, ref: Tensor, shape: tuple, like: str) -> None:
    """ids: an integer tensor of exactly `shape`, on ref's device."""
    if not isinstance(ids, Tensor):
        raise TypeError(f"{owner}: expected {name} to be an integer torch.Tensor, got {type(ids).__name__}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{owner}: expected {name} to hold integer class ids (e.g. torch.int64), got dtype "
                        f"{ids.dtype}")
    if tuple(ids.shape) != tuple(shape):
        raise ValueError(f"{owner}: expected {name} {like}, got {tuple(ids.shape)}")
    _check_device(owner, name, ids, ref)


def _check_ids_in_range(owner: str, name: str, ids: Tensor, valid: Tensor | None, n: int, where: str) -> None:
    bad = (ids < 0) | (ids >= n)
    if valid is not None:
        bad = bad & valid
    if bool(bad.any()):
        pos = bad.nonzero()[0].tolist()
        index = ", ".join(str(p) for p in pos)
        raise ValueError(f"{owner}: {int(bad.sum())} {name} out of range [0, {n}) {where}for {name} "
                         f"{tuple(ids.shape)}, e.g. {name}[{index}] = {int(ids[tuple(pos)])}")


def _check_weights(owner: str, weights, ref: Tensor, shape: tuple | None, like: str,
                   name: str = "weights") -> None:
    """weights: a floating tensor of exactly `shape`, finite and >= 0, on ref's device."""
    check_float_tensor(owner, name, weights)
    if shape is None or tuple(weights.shape) != tuple(shape):
        raise ValueError(f"{owner}: expected {name} {like}, got {tuple(weights.shape)}")
    _check_device(owner, name, weights, ref)
    bad = ~torch.isfinite(weights) | (weights < 0)
    if bool(bad.any()):
        pos = bad.nonzero()[0].tolist()
        index = ", ".join(str(p) for p in pos)
        raise ValueError(f"{owner}: expected finite {name} >= 0, got {int(bad.sum())} negative or non-finite "
                         f"values in {name} {tuple(weights.shape)}, "
                         f"e.g. {name}[{index}] = {weights[tuple(pos)].item()}")
