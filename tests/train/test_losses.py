"""Losses: sequence_loss against a hand-written double loop over (b, t) (all masks, all averages),
independence from padding, weight emphasis, parity with F.cross_entropy, zero gradient at padding,
masked regression against hand loops, binary and multiclass losses against torch and hand formulas,
and the error messages for bad input."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.train.losses import (
    binary_classification_loss,
    classification_loss,
    masked_mae,
    masked_mse,
    sequence_loss,
)

DT = torch.float64
TIGHT = {"rtol": 1e-12, "atol": 1e-12}
B, T, V = 4, 6, 5
LENGTHS = torch.tensor([6, 3, 1, 4])
IGNORE = 2


def make_batch(seed=0, b=B, t=T, v=V):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, dtype=DT) * 2
    targets = torch.randint(0, v, (b, t), generator=g)
    weights = torch.rand(b, t, generator=g, dtype=DT) * 3 + 0.1
    return logits, targets, weights


def ce_by_hand(row, y):
    """-log softmax(row)[y] in float64 Python: log sum exp (shifted by the max) minus the target score."""
    m = max(row)
    return m + math.log(sum(math.exp(v - m) for v in row)) - row[y]


def sequence_loss_by_hand(logits, targets, weights=None, lengths=None, ignore_index=None, average="tokens"):
    x, y = logits.tolist(), targets.tolist()
    w = None if weights is None else weights.tolist()
    n = None if lengths is None else [int(v) for v in lengths]
    total_num = total_w = 0.0
    per_sequence = []
    for b in range(len(x)):
        num = den = 0.0
        for t in range(len(x[b])):
            if n is not None and t >= n[b]:
                continue
            if ignore_index is not None and y[b][t] == ignore_index:
                continue
            wt = 1.0 if w is None else w[b][t]
            num += wt * ce_by_hand(x[b][t], y[b][t])
            den += wt
        total_num, total_w = total_num + num, total_w + den
        if den > 0:
            per_sequence.append(num / den)
    if average == "tokens":
        return total_num / total_w
    if average == "sum":
        return total_num
    return sum(per_sequence) / len(per_sequence)


# --- 1. sequence_loss equals the hand loop ---------------------------------------------------------


@pytest.mark.parametrize("average", ["tokens", "sum", "sequence"])
@pytest.mark.parametrize("use_weights", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("ignore_index", [None, IGNORE])
def test_sequence_loss_matches_hand_loop(average, use_weights, use_lengths, ignore_index):
    logits, targets, weights = make_batch(seed=1)
    kwargs = {
        "weights": weights if use_weights else None,
        "lengths": LENGTHS if use_lengths else None,
        "ignore_index": ignore_index,
    }
    assert (targets == IGNORE).any()  # the ignore case really drops something
    got = sequence_loss(logits, targets, average=average, **kwargs)
    want = sequence_loss_by_hand(logits, targets, average=average, **kwargs)
    assert got.shape == () and got.dtype == DT
    assert got.item() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_sequence_average_skips_sequences_without_weight():
    logits, targets, weights = make_batch(seed=2)
    weights[1] = 0.0  # sequence 1 carries no weight: excluded, not counted as a 0
    got = sequence_loss(logits, targets, weights=weights, average="sequence")
    means = [sequence_loss(logits[b:b + 1], targets[b:b + 1], weights=weights[b:b + 1]).item() for b in (0, 2, 3)]
    assert got.item() == pytest.approx(sum(means) / 3, rel=1e-12)
    assert got.item() == pytest.approx(sequence_loss_by_hand(logits, targets, weights, average="sequence"), rel=1e-12)


def test_sum_is_tokens_times_total_weight():
    logits, targets, weights = make_batch(seed=3)
    s = sequence_loss(logits, targets, weights=weights, lengths=LENGTHS, average="sum")
    m = sequence_loss(logits, targets, weights=weights, lengths=LENGTHS)
    total = sum(weights[b, : LENGTHS[b]].sum().item() for b in range(B))
    torch.testing.assert_close(s, m * total, **TIGHT)


# --- 2. padding never matters, valid targets do ----------------------------------------------------


@pytest.mark.parametrize("pad_value", [-1, V + 5, 0, -100])
def test_padded_targets_do_not_change_the_loss(pad_value):
    logits, targets, weights = make_batch(seed=4)
    pad = torch.arange(T)[None, :] >= LENGTHS[:, None]  # (B, T)
    for average in ("tokens", "sum", "sequence"):
        ref = sequence_loss(logits, targets, weights=weights, lengths=LENGTHS, average=average)
        garbage = targets.masked_fill(pad, pad_value)
        got = sequence_loss(logits, garbage, weights=weights, lengths=LENGTHS, average=average)
        assert torch.equal(got, ref)
        # the padding's logits and weights do not matter either (even NaN weights there)
        logits2 = logits.masked_fill(pad[..., None], 1e4)
        weights2 = weights.masked_fill(pad, 1e6)
        assert torch.equal(sequence_loss(logits2, garbage, weights=weights2, lengths=LENGTHS, average=average), ref)
        # non-finite padded logits (CE there is NaN) leave the loss untouched too: replaced, not multiplied by 0
        logits3 = logits.masked_fill(pad[..., None], float("inf"))
        assert torch.equal(sequence_loss(logits3, garbage, weights=weights, lengths=LENGTHS, average=average), ref)


def test_ignored_positions_may_hold_out_of_range_ignore_index():
    logits, targets, _ = make_batch(seed=5)
    padded = targets.clone()
    padded[1, 3:] = -100
    padded[2, 1:] = -100
    got = sequence_loss(logits, padded, ignore_index=-100)
    torch.testing.assert_close(got, sequence_loss(logits, targets, lengths=[6, 3, 1, 6]), **TIGHT)
    assert got.item() == pytest.approx(sequence_loss_by_hand(logits, padded, ignore_index=-100), rel=1e-12)


def test_changing_a_valid_target_changes_the_loss():
    logits, targets, weights = make_batch(seed=6)
    ref = sequence_loss(logits, targets, weights=weights, lengths=LENGTHS)
    changed = targets.clone()
    changed[1, 2] = (changed[1, 2] + 1) % V  # t = 2 < lengths[1] = 3: a valid position
    got = sequence_loss(logits, changed, weights=weights, lengths=LENGTHS)
    assert not torch.equal(got, ref)
    assert got.item() == pytest.approx(sequence_loss_by_hand(logits, changed, weights, LENGTHS), rel=1e-12)


# --- 3. weights emphasise positions ---------------------------------------------------------------


def test_doubling_one_weight_moves_the_loss_toward_that_position():
    logits, targets, _ = make_batch(seed=7)
    ce = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none").view(B, T)
    b, t = divmod(int(ce.argmax()), T)  # the worst position, far from the mean
    w = torch.ones(B, T, dtype=DT)
    base = sequence_loss(logits, targets, weights=w)
    w[b, t] = 2.0
    emphasised = sequence_loss(logits, targets, weights=w)
    n, s = B * T, ce.sum()
    torch.testing.assert_close(base, s / n, **TIGHT)
    torch.testing.assert_close(emphasised, (s + ce[b, t]) / (n + 1), **TIGHT)  # counted twice
    assert abs(emphasised - ce[b, t]) < abs(base - ce[b, t])
    assert emphasised > base  # it is the largest CE, so the average rises toward it


def test_uniform_weights_scale_out():
    logits, targets, _ = make_batch(seed=8)
    ref = sequence_loss(logits, targets, lengths=LENGTHS)
    got = sequence_loss(logits, targets, lengths=LENGTHS, weights=torch.full((B, T), 7.5, dtype=DT))
    torch.testing.assert_close(got, ref, **TIGHT)


# --- 4. parity with F.cross_entropy ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_cross_entropy_without_mask(dtype):
    logits, targets, _ = make_batch(seed=9)
    logits = logits.to(dtype)
    got = sequence_loss(logits, targets)
    assert got.dtype == dtype
    torch.testing.assert_close(got, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)))


def test_equals_cross_entropy_with_ignore_index_and_lengths():
    logits, targets, _ = make_batch(seed=10)
    torch.testing.assert_close(
        sequence_loss(logits, targets, ignore_index=IGNORE),
        F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE), **TIGHT)
    valid = torch.arange(T)[None, :] < LENGTHS[:, None]
    torch.testing.assert_close(sequence_loss(logits, targets, lengths=LENGTHS),
                               F.cross_entropy(logits[valid], targets[valid]), **TIGHT)
    # and the per-sequence mean equals the mean of per-sequence cross-entropies
    per = [F.cross_entropy(logits[b, : LENGTHS[b]], targets[b, : LENGTHS[b]]) for b in range(B)]
    torch.testing.assert_close(sequence_loss(logits, targets, lengths=LENGTHS, average="sequence"),
                               torch.stack(per).mean(), **TIGHT)


def test_lengths_accept_a_list():
    logits, targets, _ = make_batch(seed=11)
    assert torch.equal(sequence_loss(logits, targets, lengths=LENGTHS.tolist()),
                       sequence_loss(logits, targets, lengths=LENGTHS))


# --- 5. gradient ----------------------------------------------------------------------------------


@pytest.mark.parametrize("average", ["tokens", "sum", "sequence"])
def test_gradient_is_exactly_zero_at_padded_positions(average):
    logits, targets, weights = make_batch(seed=12)
    weights[0, 1] = 0.0  # weighted out
    targets[3, 0] = IGNORE  # ignored
    logits.requires_grad_(True)
    sequence_loss(logits, targets, weights=weights, lengths=LENGTHS, ignore_index=IGNORE, average=average).backward()
    dead = (torch.arange(T)[None, :] >= LENGTHS[:, None]) | (targets == IGNORE)
    dead[0, 1] = True
    assert torch.equal(logits.grad[dead], torch.zeros_like(logits.grad[dead]))
    assert (logits.grad[~dead].abs().sum(-1) > 0).all()


def test_gradcheck_float64():
    logits, targets, weights = make_batch(seed=13, b=2, t=3, v=3)
    logits.requires_grad_(True)
    weights.requires_grad_(True)
    for average in ("tokens", "sum", "sequence"):
        assert torch.autograd.gradcheck(
            lambda x, w: sequence_loss(x, targets, weights=w, lengths=[3, 2], average=average),
            (logits, weights))


# --- 6. zero total weight -------------------------------------------------------------------------


@pytest.mark.parametrize("average", ["tokens", "sum", "sequence"])
def test_zero_total_weight_raises(average):
    logits, targets, _ = make_batch(seed=14)
    with pytest.raises(ValueError, match=r"sequence_loss: total weight is 0"):
        sequence_loss(logits, targets, weights=torch.zeros(B, T, dtype=DT), average=average)
    everything_ignored = torch.full((B, T), 3)
    with pytest.raises(ValueError, match=r"sequence_loss: total weight is 0"):
        sequence_loss(logits, everything_ignored, ignore_index=3, average=average)
    # zero only where lengths keep: the valid part has zero weight
    weights = torch.zeros(B, T, dtype=DT)
    weights[0, 5] = 1.0
    with pytest.raises(ValueError, match=r"total weight is 0"):
        sequence_loss(logits, targets, weights=weights, lengths=[5, 3, 1, 4], average=average)


# --- 7. bad input ---------------------------------------------------------------------------------

X3 = torch.randn(4, 12, 7)
Y2 = torch.randint(0, 7, (4, 12))
BAD_SEQUENCE = [
    ("targets shorter", dict(targets=Y2[:, :10]), ValueError, ["targets", "(4, 12)", "(4, 10)", "(4, 12, 7)"]),
    ("targets 3-d", dict(targets=Y2[..., None]), ValueError, ["targets", "(4, 12, 1)"]),
    ("float targets", dict(targets=Y2.float()), TypeError, ["targets", "torch.float32"]),
    ("bool targets", dict(targets=Y2 > 3), TypeError, ["targets", "torch.bool"]),
    ("list targets", dict(targets=Y2.tolist()), TypeError, ["targets", "list"]),
    ("int logits", dict(logits=Y2[..., None].expand(4, 12, 7).contiguous()), TypeError, ["logits", "torch.int64"]),
    ("2-d logits", dict(logits=X3[:, 0]), ValueError, ["logits", "(B, T, V)", "(4, 7)"]),
    ("empty vocab", dict(logits=X3[..., :0]), ValueError, ["logits", "(4, 12, 0)"]),
    ("id too large", dict(targets=Y2.index_put((torch.tensor([1]), torch.tensor([4])), torch.tensor(9))),
     ValueError, ["1 targets out of range [0, 7)", "targets[1, 4] = 9"]),
    ("negative id", dict(targets=Y2.index_put((torch.tensor([2]), torch.tensor([0])), torch.tensor(-1))),
     ValueError, ["1 targets out of range", "targets[2, 0] = -1"]),
    ("weights shape", dict(weights=torch.ones(4, 11)), ValueError, ["weights", "(4, 12)", "(4, 11)"]),
    ("weights (B,)", dict(weights=torch.ones(4)), ValueError, ["weights", "(4, 12)", "(4,)"]),
    ("int weights", dict(weights=torch.ones(4, 12, dtype=torch.int64)), TypeError, ["weights", "torch.int64"]),
    ("negative weight", dict(weights=torch.ones(4, 12).index_put((torch.tensor([3]), torch.tensor([5])),
                                                                  torch.tensor(-0.5))),
     ValueError, ["weights", ">= 0", "weights[3, 5] = -0.5"]),
    ("nan weight", dict(weights=torch.ones(4, 12).index_put((torch.tensor([0]), torch.tensor([0])),
                                                             torch.tensor(float("nan")))),
     ValueError, ["weights", "non-finite", "weights[0, 0]"]),
    ("length 0", dict(lengths=torch.tensor([12, 0, 3, 4])), ValueError, ["lengths", "[1, 12]", "lengths[1] = 0"]),
    ("length > T", dict(lengths=torch.tensor([12, 13, 3, 4])), ValueError, ["lengths", "[1, 12]", "= 13"]),
    ("lengths shape", dict(lengths=torch.tensor([12, 3])), ValueError, ["lengths", "(4,)", "(2,)"]),
    ("float lengths", dict(lengths=torch.tensor([12.0, 3, 3, 4])), TypeError, ["lengths", "float32"]),
    ("bad average", dict(average="mean"), ValueError, ["average", "'mean'"]),
    ("float ignore", dict(ignore_index=0.0), TypeError, ["ignore_index", "float"]),
]


@pytest.mark.parametrize("case", BAD_SEQUENCE, ids=[c[0] for c in BAD_SEQUENCE])
def test_sequence_loss_bad_input_raises_with_message(case):
    _, change, exc, fragments = case
    kwargs = {"logits": X3, "targets": Y2, **change}
    with pytest.raises(exc) as info:
        sequence_loss(kwargs.pop("logits"), kwargs.pop("targets"), **kwargs)
    message = str(info.value)
    assert message.startswith("sequence_loss: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_out_of_range_id_reports_count():
    targets = Y2.clone()
    targets[0, 11], targets[3, 11], targets[2, 5] = 7, 100, -3
    with pytest.raises(ValueError, match=re.escape("sequence_loss: 3 targets out of range [0, 7)")):
        sequence_loss(X3, targets)
    # the same ids at padded positions are fine
    assert torch.isfinite(sequence_loss(X3, targets, lengths=[11, 12, 5, 11]))


# --- 8. masked regression -------------------------------------------------------------------------


def masked_mean_by_hand(preds, targets, lengths=None, weights=None, power=2):
    """Loop over every element; weights may be (B,), (B, T) or the full shape."""
    p, y = preds.tolist(), targets.tolist()
    num = den = 0.0
    for index in torch.cartesian_prod(*[torch.arange(n) for n in preds.shape]).reshape(-1, preds.dim()).tolist():
        if lengths is not None and index[1] >= int(lengths[index[0]]):
            continue
        w = 1.0 if weights is None else float(weights[tuple(index[: weights.dim()])])
        a, b = p, y
        for i in index:
            a, b = a[i], b[i]
        num += w * abs(a - b) ** power
        den += w
    return num / den


@pytest.mark.parametrize("fn, power", [(masked_mse, 2), (masked_mae, 1)])
@pytest.mark.parametrize("weights_shape", [None, (4,), (4, 6), (4, 6, 3)])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_masked_regression_matches_hand_loop(fn, power, weights_shape, use_lengths):
    g = torch.Generator().manual_seed(15)
    preds, targets = torch.randn(2, 4, 6, 3, generator=g, dtype=DT)
    weights = None if weights_shape is None else torch.rand(weights_shape, generator=g, dtype=DT) + 0.1
    lengths = LENGTHS if use_lengths else None
    got = fn(preds, targets, lengths=lengths, weights=weights)
    assert got.shape == () and got.dtype == DT
    assert got.item() == pytest.approx(masked_mean_by_hand(preds, targets, lengths, weights, power), rel=1e-12)


def test_masked_regression_without_time_axis_and_torch_parity():
    g = torch.Generator().manual_seed(16)
    preds, targets = torch.randn(2, 5, 3, generator=g, dtype=DT)
    torch.testing.assert_close(masked_mse(preds, targets), F.mse_loss(preds, targets), **TIGHT)
    torch.testing.assert_close(masked_mae(preds, targets), F.l1_loss(preds, targets), **TIGHT)
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0], dtype=DT)
    got = masked_mse(preds, targets, weights=w)
    assert got.item() == pytest.approx(masked_mean_by_hand(preds, targets, weights=w), rel=1e-12)
    p1, y1 = preds[:, 0], targets[:, 0]  # (B,)
    torch.testing.assert_close(masked_mae(p1, y1), (p1 - y1).abs().mean(), **TIGHT)


@pytest.mark.parametrize("fn", [masked_mse, masked_mae])
def test_masked_regression_ignores_nan_padding(fn):
    g = torch.Generator().manual_seed(17)
    preds, targets = torch.randn(2, 4, 6, 2, generator=g, dtype=DT)
    pad = (torch.arange(6)[None, :] >= LENGTHS[:, None])[..., None].expand(4, 6, 2)
    ref = fn(preds, targets, lengths=LENGTHS)
    nan_targets = targets.masked_fill(pad, float("nan"))
    preds.requires_grad_(True)
    got = fn(preds, nan_targets, lengths=LENGTHS)
    assert torch.equal(got.detach(), ref)
    got.backward()
    assert torch.equal(preds.grad[pad], torch.zeros_like(preds.grad[pad]))
    assert torch.isfinite(preds.grad).all()
    valid_targets = targets.clone()
    valid_targets[0, 0, 0] += 1.0
    assert not torch.equal(fn(preds, valid_targets, lengths=LENGTHS), ref)


BAD_REGRESSION = [
    ("targets shape", dict(targets=torch.randn(4, 6)), ValueError, ["targets", "(4, 6, 3)", "(4, 6)"]),
    ("broadcastable targets", dict(targets=torch.randn(1, 6, 3)), ValueError, ["(4, 6, 3)", "(1, 6, 3)"]),
    ("int preds", dict(preds=torch.ones(4, 6, 3, dtype=torch.int64)), TypeError, ["preds", "torch.int64"]),
    ("int targets", dict(targets=torch.ones(4, 6, 3, dtype=torch.int64)), TypeError, ["targets", "torch.int64"]),
    ("weights shape", dict(weights=torch.ones(4, 3)), ValueError, ["weights", "(4, 6)", "(4, 3)"]),
    ("negative weights", dict(weights=-torch.ones(4, 6)), ValueError, ["weights", ">= 0"]),
    ("length 0", dict(lengths=[6, 0, 1, 1]), ValueError, ["lengths", "[1, 6]", "lengths[1] = 0"]),
    ("length > T", dict(lengths=[6, 7, 1, 1]), ValueError, ["lengths", "[1, 6]", "= 7"]),
    ("lengths shape", dict(lengths=[6, 6]), ValueError, ["lengths", "(4,)", "(2,)"]),
    ("lengths without time", dict(preds=torch.randn(4), targets=torch.randn(4), lengths=[1, 1, 1, 1]),
     ValueError, ["time axis", "(4,)"]),
    ("zero weight", dict(weights=torch.zeros(4)), ValueError, ["total weight is 0", "(4, 6, 3)"]),
]


@pytest.mark.parametrize("fn", [masked_mse, masked_mae])
@pytest.mark.parametrize("case", BAD_REGRESSION, ids=[c[0] for c in BAD_REGRESSION])
def test_masked_regression_bad_input(fn, case):
    _, change, exc, fragments = case
    kwargs = {"preds": torch.randn(4, 6, 3), "targets": torch.randn(4, 6, 3), **change}
    with pytest.raises(exc) as info:
        fn(kwargs.pop("preds"), kwargs.pop("targets"), **kwargs)
    message = str(info.value)
    assert message.startswith(f"{fn.__name__}: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --- 9. binary classification ---------------------------------------------------------------------


def bce_by_hand(x, y, p=1.0):
    total = 0.0
    for xb, yb in zip(x.tolist(), y.tolist()):
        s = 1.0 / (1.0 + math.exp(-xb))
        total += -(p * yb * math.log(s) + (1 - yb) * math.log(1 - s))
    return total / len(x.tolist())


@pytest.mark.parametrize("pos_weight", [None, 3.0, torch.tensor(0.5, dtype=DT), torch.tensor([2.0])])
@pytest.mark.parametrize("label_dtype", [torch.float64, torch.int64, torch.bool])
@pytest.mark.parametrize("column", [False, True])
def test_binary_matches_torch_and_hand(pos_weight, label_dtype, column):
    g = torch.Generator().manual_seed(18)
    x = torch.randn(7, generator=g, dtype=DT) * 2
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    logits = x[:, None] if column else x
    got = binary_classification_loss(logits, y.to(label_dtype), pos_weight=pos_weight)
    p = 1.0 if pos_weight is None else float(pos_weight)
    pw = None if pos_weight is None else torch.tensor(p, dtype=DT)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(x, y.to(DT), pos_weight=pw), **TIGHT)
    assert got.item() == pytest.approx(bce_by_hand(x, y, p), rel=1e-12)
    assert got.shape == ()


BAD_BINARY = [
    ("labels 0.5", dict(labels=torch.tensor([0.0, 0.5, 1.0, 1.0])), ValueError, ["{0, 1}", "labels[1] = 0.5"]),
    ("labels 2", dict(labels=torch.tensor([0, 1, 2, 2])), ValueError, ["2 other values", "labels[2] = 2"]),
    ("labels shape", dict(labels=torch.tensor([0, 1, 1])), ValueError, ["labels", "(4,)", "(3,)"]),
    ("labels (B, 1) vs (B,)", dict(labels=torch.ones(4, 1)), ValueError, ["labels", "(4,)", "(4, 1)"]),
    ("logits (B, 2)", dict(logits=torch.randn(4, 2)), ValueError, ["logits", "(B,) or (B, 1)", "(4, 2)"]),
    ("int logits", dict(logits=torch.ones(4, dtype=torch.int64)), TypeError, ["logits", "torch.int64"]),
    ("negative pos_weight", dict(pos_weight=-1.0), ValueError, ["pos_weight", ">= 0", "-1.0"]),
    ("pos_weight vector", dict(pos_weight=torch.ones(2)), ValueError, ["pos_weight", "(2,)"]),
    ("pos_weight str", dict(pos_weight="2"), TypeError, ["pos_weight", "str"]),
]


@pytest.mark.parametrize("case", BAD_BINARY, ids=[c[0] for c in BAD_BINARY])
def test_binary_bad_input(case):
    _, change, exc, fragments = case
    kwargs = {"logits": torch.randn(4), "labels": torch.tensor([0, 1, 1, 0]), **change}
    with pytest.raises(exc) as info:
        binary_classification_loss(kwargs.pop("logits"), kwargs.pop("labels"), **kwargs)
    message = str(info.value)
    assert message.startswith("binary_classification_loss: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --- 10. multiclass classification ----------------------------------------------------------------


def classification_by_hand(logits, labels, eps=0.0, weights=None):
    x, y = logits.tolist(), labels.tolist()
    C = len(x[0])
    w = [1.0] * C if weights is None else weights.tolist()
    num = den = 0.0
    for row, yb in zip(x, y):
        nll = [ce_by_hand(row, c) for c in range(C)]  # -log p_c for every class
        num += (1 - eps) * w[yb] * nll[yb] + eps / C * sum(w[c] * nll[c] for c in range(C))
        den += w[yb]
    return num / den


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("use_weights", [False, True])
def test_classification_matches_torch_and_hand(eps, use_weights):
    g = torch.Generator().manual_seed(19)
    logits = torch.randn(6, 4, generator=g, dtype=DT) * 2
    labels = torch.tensor([0, 3, 1, 1, 2, 3])
    weights = torch.tensor([0.5, 2.0, 1.0, 0.0], dtype=DT) if use_weights else None
    got = classification_loss(logits, labels, label_smoothing=eps, class_weights=weights)
    torch.testing.assert_close(got, F.cross_entropy(logits, labels, weight=weights, label_smoothing=eps), **TIGHT)
    assert got.item() == pytest.approx(classification_by_hand(logits, labels, eps, weights), rel=1e-12)
    # int32 labels give the same answer
    assert torch.equal(classification_loss(logits, labels.int(), label_smoothing=eps, class_weights=weights), got)


BAD_CLASSIFICATION = [
    ("labels shape", dict(labels=torch.tensor([0, 1])), ValueError, ["labels", "(4,)", "(2,)", "(4, 3)"]),
    ("labels (B, 1)", dict(labels=torch.zeros(4, 1, dtype=torch.int64)), ValueError, ["labels", "(4, 1)"]),
    ("float labels", dict(labels=torch.zeros(4)), TypeError, ["labels", "torch.float32"]),
    ("label too large", dict(labels=torch.tensor([0, 1, 3, 2])), ValueError,
     ["1 labels out of range [0, 3)", "labels[2] = 3"]),
    ("negative label", dict(labels=torch.tensor([-100, 1, 1, 2])), ValueError, ["labels[0] = -100"]),
    ("logits 3-d", dict(logits=torch.randn(4, 2, 3)), ValueError, ["logits", "(B, C)", "(4, 2, 3)"]),
    ("int logits", dict(logits=torch.ones(4, 3, dtype=torch.int64)), TypeError, ["logits", "torch.int64"]),
    ("smoothing 1", dict(label_smoothing=1.0), ValueError, ["label_smoothing", "[0, 1)"]),
    ("class_weights shape", dict(class_weights=torch.ones(4)), ValueError, ["class_weights", "(3,)", "(4,)"]),
    ("negative class weight", dict(class_weights=torch.tensor([1.0, -1.0, 1.0])), ValueError,
     ["class_weights", ">= 0", "class_weights[1] = -1.0"]),
    ("zero label weight", dict(class_weights=torch.tensor([1.0, 0.0, 0.0]), labels=torch.tensor([1, 2, 2, 1])),
     ValueError, ["total weight of the labels is 0"]),
]


@pytest.mark.parametrize("case", BAD_CLASSIFICATION, ids=[c[0] for c in BAD_CLASSIFICATION])
def test_classification_bad_input(case):
    _, change, exc, fragments = case
    kwargs = {"logits": torch.randn(4, 3), "labels": torch.tensor([0, 1, 2, 1]), **change}
    with pytest.raises(exc) as info:
        classification_loss(kwargs.pop("logits"), kwargs.pop("labels"), **kwargs)
    message = str(info.value)
    assert message.startswith("classification_loss: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --- 11. property: random shapes, masks and averages ---------------------------------------------


@settings(max_examples=30, deadline=None)
@given(data=st.data(), b=st.integers(1, 4), t=st.integers(1, 6), v=st.integers(1, 6),
       seed=st.integers(0, 2**31 - 1), average=st.sampled_from(["tokens", "sum", "sequence"]),
       use_weights=st.booleans(), ignore_index=st.sampled_from([None, 0, -100]))
def test_sequence_loss_matches_hand_loop_property(data, b, t, v, seed, average, use_weights, ignore_index):
    logits, targets, weights = make_batch(seed, b, t, v)
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, t), min_size=b, max_size=b), label="lengths"))
    pad = torch.arange(t)[None, :] >= lengths[:, None]
    targets = targets.masked_fill(pad, data.draw(st.sampled_from([-1, v, v + 5, -100]), label="pad id"))
    kwargs = {"weights": weights if use_weights else None, "lengths": lengths, "ignore_index": ignore_index}
    want_weight = sum(
        (1.0 if not use_weights else weights[i, j].item())
        for i in range(b) for j in range(int(lengths[i])) if targets[i, j].item() != ignore_index)
    if want_weight == 0:
        with pytest.raises(ValueError, match="total weight is 0"):
            sequence_loss(logits, targets, average=average, **kwargs)
        return
    got = sequence_loss(logits, targets, average=average, **kwargs)
    want = sequence_loss_by_hand(logits, targets, average=average, **kwargs)
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)
