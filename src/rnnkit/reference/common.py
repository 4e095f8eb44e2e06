"""Pieces shared by the NumPy reference models.

Softmax cross-entropy, elementwise gradient clipping, one-hot vectors, parameter shapes and
initialisation, input checks, and a centred finite-difference gradient.

This package is the independent check of the torch code, so it is pure NumPy and must never
import torch (tests/test_reference.py checks that). Modules inside it import each other
relatively, so it can be loaded without the rest of rnnkit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# Number of stacked gate blocks in weight_ih / weight_hh, in torch's order:
# Elman: (a,)   LSTM: (i, f, g, o)   GRU: (r, z, n)
GATES = {"elman": 1, "lstm": 4, "gru": 3}
PEEPHOLES = ("weight_ci", "weight_cf", "weight_co")


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + exp(-a)), written as exp(-log(1 + exp(-a))) so no |a| overflows."""
    return np.exp(-np.logaddexp(0.0, -a))


def one_hot(index: int, size: int, dtype=np.float64) -> np.ndarray:
    """The 1-of-k vector of length `size` with a one at `index` (lecture 001's xs[t])."""
    x = np.zeros(size, dtype=dtype)
    x[index] = 1.0
    return x


def softmax_cross_entropy(y: np.ndarray, target: int) -> tuple[float, np.ndarray]:
    """Loss and its gradient for one time step.

    p = softmax(y), loss = -log p[target], dL/dy = p - onehot(target).
    Computed as log-sum-exp minus the target logit, so large logits do not overflow.

    Shape: y (V,) -> (float, dy (V,)).
    """
    shifted = y - np.max(y)
    log_z = np.log(np.sum(np.exp(shifted)))
    loss = float(log_z - shifted[target])
    dy = np.exp(shifted - log_z)  # p
    dy[target] -= 1.0  # backprop into y, as in the lecture
    return loss, dy


def clip_grads(grads: dict[str, np.ndarray], clip: float | None) -> dict[str, np.ndarray]:
    """Clip every gradient elementwise to [-clip, clip] in place (lecture 001); None: no-op."""
    if clip is None:
        return grads
    if not clip > 0:
        raise ValueError(f"clip: expected a positive number or None, got {clip!r}")
    for g in grads.values():
        np.clip(g, -clip, clip, out=g)
    return grads


def param_shapes(
    kind: str, vocab_size: int, hidden_size: int, *, peephole: bool = False
) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes, laid out like torch.nn.RNNCell / LSTMCell / GRUCell.

    k = GATES[kind] gate blocks are stacked along the first axis of the cell weights.
    """
    if kind not in GATES:
        raise ValueError(f"kind: expected one of {sorted(GATES)}, got {kind!r}")
    if peephole and kind != "lstm":
        raise ValueError(f"peephole: only the 'lstm' kind has peepholes, got kind={kind!r}")
    V, H, k = vocab_size, hidden_size, GATES[kind]
    shapes = {
        "weight_ih": (k * H, V),
        "weight_hh": (k * H, H),
        "bias_ih": (k * H,),
        "bias_hh": (k * H,),
        "weight_hy": (V, H),
        "bias_y": (V,),
    }
    if peephole:
        shapes.update({name: (H,) for name in PEEPHOLES})
    return shapes


def init_params(
    kind: str,
    vocab_size: int,
    hidden_size: int,
    rng: np.random.Generator | int | None = None,
    *,
    peephole: bool = False,
    scale: float = 0.01,
    dtype=np.float64,
) -> dict[str, np.ndarray]:
    """Fresh parameters as in lecture 001: weights ~ N(0, scale²), biases zero.

    Args:
        kind: "elman", "lstm" or "gru".
        vocab_size: V, the one-hot input size and the number of output classes.
        hidden_size: H.
        rng: a numpy Generator, or a seed for one.
        peephole: add the LSTM's diagonal peephole weights weight_ci, weight_cf, weight_co (H,).
        scale: standard deviation of the weights (the lecture's 0.01).
    """
    if vocab_size < 1 or hidden_size < 1:
        raise ValueError(
            f"init_params: expected vocab_size >= 1 and hidden_size >= 1, "
            f"got {vocab_size} and {hidden_size}"
        )
    rng = np.random.default_rng(rng)
    params = {}
    for name, shape in param_shapes(kind, vocab_size, hidden_size, peephole=peephole).items():
        if name.startswith("bias"):
            params[name] = np.zeros(shape, dtype=dtype)
        else:
            params[name] = (rng.standard_normal(shape) * scale).astype(dtype)
    return params


def initial_state(kind: str, hidden_size: int, dtype=np.float64):
    """Zero state: h (H,) for "elman" and "gru", (h, c) for "lstm"."""
    if kind not in GATES:
        raise ValueError(f"kind: expected one of {sorted(GATES)}, got {kind!r}")
    if kind == "lstm":
        return np.zeros(hidden_size, dtype=dtype), np.zeros(hidden_size, dtype=dtype)
    return np.zeros(hidden_size, dtype=dtype)


def check_params(
    fn: str, kind: str, params: dict[str, np.ndarray], *, peephole: bool = False
) -> tuple[int, int]:
    """Check names and shapes of `params` for `kind`; return (V, H) read from weight_hy."""
    if "weight_hy" not in params or np.ndim(params["weight_hy"]) != 2:
        raise ValueError(f"{fn}: expected params['weight_hy'] of shape (V, H), got {params.get('weight_hy')!r:.80}")
    V, H = params["weight_hy"].shape
    expected = param_shapes(kind, V, H, peephole=peephole)
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{fn}: expected params {sorted(expected)} (peephole={peephole}), "
            f"missing {missing}, unexpected {extra}"
        )
    for name, shape in expected.items():
        if np.shape(params[name]) != shape:
            raise ValueError(f"{fn}: expected {name} {shape}, got {np.shape(params[name])}")
    return V, H


def check_sequences(
    fn: str, inputs: Sequence[int], targets: Sequence[int], vocab_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check that inputs and targets are equally long, non-empty integer ids in [0, V)."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    for name, ids in (("inputs", inputs), ("targets", targets)):
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{fn}: expected {name} as a non-empty 1-D sequence of ints, got {ids!r:.80}")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError(f"{fn}: expected {name} ids in [0, {vocab_size}), got min {ids.min()} max {ids.max()}")
    if len(inputs) != len(targets):
        raise ValueError(f"{fn}: expected len(targets) == len(inputs) = {len(inputs)}, got {len(targets)}")
    return inputs, targets


def check_vector(fn: str, name: str, value, hidden_size: int, dtype) -> np.ndarray:
    """A copy of one state vector as a (H,) array of `dtype`."""
    value = np.array(value, dtype=dtype)
    if value.shape != (hidden_size,):
        raise ValueError(f"{fn}: expected {name} ({hidden_size},), got {value.shape}")
    return value


def numerical_gradient(
    f: Callable[[dict[str, np.ndarray]], float], params: dict[str, np.ndarray], eps: float = 1e-5
) -> dict[str, np.ndarray]:
    """Centred finite differences (f(θ + eps) - f(θ - eps)) / 2eps for every entry of every param.

    `params` is perturbed in place one entry at a time and restored exactly afterwards.
    """
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            f_plus = f(params)
            value[idx] = old - eps
            f_minus = f(params)
            value[idx] = old
            g[idx] = (f_plus - f_minus) / (2 * eps)
        grads[name] = g
    return grads
