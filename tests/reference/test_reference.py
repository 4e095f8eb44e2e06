"""The NumPy reference (hand-written BPTT) against finite differences, torch autograd, and itself.

Every model is checked the same way:
  1. each gradient entry equals a centred finite difference of the loss;
  2. loss, every gradient and the final state equal torch autograd through torch.nn cells (or
     rnnkit.cells where torch has no such cell) with the same weights copied in;
  3. clip=5 gives np.clip of the unclipped gradients;
and the package imports no torch, and Elman + Adagrad learns a repeating string (lecture 001).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnnkit.reference as ref
from rnnkit.reference import elman_loss, gru_loss, init_params, initial_state, lstm_loss, numerical_gradient

V, H, T = 5, 4, 6
OUTPUT = ("weight_hy", "bias_y")

# name -> (kind, loss function keyword arguments, init_params keyword arguments)
MODELS = {
    "elman": ("elman", {}, {}),
    "lstm": ("lstm", {}, {}),
    "lstm_peephole": ("lstm", {"peephole": True}, {"peephole": True}),
    "gru_reset_after": ("gru", {"reset_after": True}, {}),
    "gru_reset_before": ("gru", {"reset_after": False}, {}),
}
LOSS_FN = {"elman": elman_loss, "lstm": lstm_loss, "gru": gru_loss}


def make_case(name, *, seed=0, scale=0.5, T=T, targets=None):
    """Random params (biases and peepholes too), a sequence, and a non-zero initial state."""
    kind, loss_kw, init_kw = MODELS[name]
    rng = np.random.default_rng(seed)
    params = init_params(kind, V, H, rng, **init_kw)
    params = {k: rng.standard_normal(v.shape) * scale for k, v in params.items()}
    inputs = rng.integers(0, V, size=T).tolist()
    if targets is None:
        targets = rng.integers(0, V, size=T).tolist()
    state = initial_state(kind, H)
    state = tuple(rng.standard_normal(H) * 0.5 for _ in state) if kind == "lstm" else rng.standard_normal(H) * 0.5

    def loss(params, clip=None):
        return LOSS_FN[kind](params, inputs, targets, state, clip, **loss_kw)

    return params, inputs, targets, state, loss


def assert_same_state(got, expected, **tol):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, **tol)
    else:
        np.testing.assert_allclose(got, expected, **tol)


# ---------------------------------------------------------------- 1. finite differences


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_match_finite_differences(name):
    params, _, _, _, loss = make_case(name, seed=1)
    _, grads, _ = loss(params)
    assert set(grads) == set(params)
    numeric = numerical_gradient(lambda p: loss(p)[0], params, eps=1e-5)
    for key in params:
        assert grads[key].shape == params[key].shape, key
        assert np.any(grads[key] != 0), f"{name}: {key} gradient is all zero, the check would be vacuous"
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-6, atol=1e-8, err_msg=f"{name}: {key}")


# ---------------------------------------------------------------- 2. torch autograd


def torch_cell(name):
    """(cell module, step(x_t, state) -> (h_t, state)) for the torch or rnnkit cell of `name`."""
    if name == "elman":
        cell = torch.nn.RNNCell(V, H, nonlinearity="tanh", dtype=torch.float64)
        return cell, lambda x, s: (cell(x, s),) * 2
    if name == "lstm":
        cell = torch.nn.LSTMCell(V, H, dtype=torch.float64)

        def step(x, s):
            h, c = cell(x, s)
            return h, (h, c)

        return cell, step
    if name == "gru_reset_after":
        cell = torch.nn.GRUCell(V, H, dtype=torch.float64)
        return cell, lambda x, s: (cell(x, s),) * 2
    # torch has no peephole LSTM nor reset-before GRU: use the project's cells (same names, same API)
    from rnnkit.cells import GRUCell, LSTMCell

    if name == "lstm_peephole":
        cell = LSTMCell(V, H, peephole=True).double()
    else:
        cell = GRUCell(V, H, reset_after=False).double()
    return cell, cell


def torch_loss(name, params, inputs, targets, state):
    """Loss, gradients and final state by autograd, with `params` copied into torch modules."""
    cell, step = torch_cell(name)
    cell_params = {k: v for k, v in params.items() if k not in OUTPUT}
    # strict load: the names and shapes of the NumPy params must be exactly the cell's
    cell.load_state_dict({k: torch.tensor(v) for k, v in cell_params.items()})
    out = torch.nn.Linear(H, V, dtype=torch.float64)
    out.load_state_dict({"weight": torch.tensor(params["weight_hy"]), "bias": torch.tensor(params["bias_y"])})

    xs = F.one_hot(torch.tensor(inputs), V).to(torch.float64)  # (T, V)
    if isinstance(state, tuple):
        s = tuple(torch.tensor(v).unsqueeze(0) for v in state)  # (1, H) each
    else:
        s = torch.tensor(state).unsqueeze(0)  # (1, H)
    logits = []
    for t in range(len(inputs)):
        y, s = step(xs[t : t + 1], s)  # y (1, H)
        logits.append(out(y))  # (1, V)
    loss = F.cross_entropy(torch.cat(logits), torch.tensor(targets), reduction="sum")
    loss.backward()

    grads = {k: p.grad.numpy() for k, p in cell.named_parameters()}
    assert set(grads) == set(cell_params)
    grads["weight_hy"], grads["bias_y"] = out.weight.grad.numpy(), out.bias.grad.numpy()
    if isinstance(s, tuple):
        final = tuple(v.detach().squeeze(0).numpy() for v in s)
    else:
        final = s.detach().squeeze(0).numpy()
    return loss.item(), grads, final


@pytest.mark.parametrize("name", list(MODELS))
def test_matches_torch_autograd(name):
    params, inputs, targets, state, loss = make_case(name, seed=2)
    np_loss, np_grads, np_state = loss(params)
    t_loss, t_grads, t_state = torch_loss(name, params, inputs, targets, state)

    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np_loss, t_loss, **tol)
    assert set(np_grads) == set(t_grads) == set(params)
    for key in params:
        np.testing.assert_allclose(np_grads[key], t_grads[key], err_msg=f"{name}: {key}", **tol)
    assert_same_state(np_state, t_state, **tol)


def test_zero_peepholes_equal_plain_lstm():
    params, inputs, targets, state, _ = make_case("lstm_peephole", seed=3)
    for key in ("weight_ci", "weight_cf", "weight_co"):
        params[key][:] = 0.0
    plain = {k: v for k, v in params.items() if not k.startswith("weight_c")}
    loss_p, grads_p, state_p = lstm_loss(params, inputs, targets, state, None, peephole=True)
    loss_0, grads_0, state_0 = lstm_loss(plain, inputs, targets, state, None)
    assert loss_p == pytest.approx(loss_0, rel=1e-14)
    for key in plain:
        np.testing.assert_allclose(grads_p[key], grads_0[key], rtol=1e-12, atol=1e-14)
    assert_same_state(state_p, state_0, rtol=1e-14)
    # the peephole weights still get a gradient at zero
    assert all(np.any(grads_p[k] != 0) for k in ("weight_ci", "weight_cf", "weight_co"))


# ---------------------------------------------------------------- 3. clipping


@pytest.mark.parametrize("name", list(MODELS))
def test_clip_is_elementwise_np_clip(name):
    # one repeated target over a long sequence with large weights: dL/db_y alone reaches ~ -T
    params, _, _, _, loss = make_case(name, seed=4, scale=2.0, T=20, targets=[0] * 20)
    loss_raw, raw, state_raw = loss(params, clip=None)
    loss_clip, clipped, state_clip = loss(params, clip=5.0)

    everything = np.concatenate([g.ravel() for g in raw.values()])
    assert np.abs(everything).max() > 5.0, "test needs gradients beyond the clip value"
    assert np.any(np.abs(everything) < 5.0), "test needs gradients inside the clip value too"
    for key in params:
        assert np.all(np.abs(clipped[key]) <= 5.0), key
        np.testing.assert_array_equal(clipped[key], np.clip(raw[key], -5.0, 5.0), err_msg=key)
    assert loss_clip == loss_raw
    assert_same_state(state_clip, state_raw, rtol=0, atol=0)


def test_default_clip_is_five():
    params, inputs, targets, state, loss = make_case("elman", seed=4, scale=2.0, T=20, targets=[0] * 20)
    _, default, _ = elman_loss(params, inputs, targets, state)
    _, five, _ = loss(params, clip=5.0)
    _, raw, _ = loss(params, clip=None)
    assert any(np.any(np.abs(g) > 5.0) for g in raw.values())
    for key in params:
        np.testing.assert_array_equal(default[key], five[key])


# ---------------------------------------------------------------- bad input


def test_bad_input_names_the_problem():
    params, inputs, targets, state, _ = make_case("lstm_peephole")
    with pytest.raises(ValueError, match="peephole"):
        lstm_loss(params, inputs, targets, state)  # peephole weights but peephole=False
    params, inputs, targets, state, _ = make_case("elman")
    with pytest.raises(ValueError, match="len"):
        elman_loss(params, inputs, targets[:-1], state)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        elman_loss(params, inputs, [V] * len(inputs), state)
    with pytest.raises(ValueError, match=r"weight_hh \(4, 4\)"):
        elman_loss({**params, "weight_hh": np.zeros((4, 5))}, inputs, targets, state)
    with pytest.raises(ValueError, match="state"):
        gru_loss(init_params("gru", V, H, 0), inputs, targets, np.zeros(H + 1))


# ---------------------------------------------------------------- 4. no torch


def test_reference_imports_no_torch():
    # Load the reference package straight from its folder under another name, so rnnkit/__init__
    # (which may import torch for the rest of the toolkit) does not run: this checks that the
    # reference's own code needs no torch and imports nothing else from rnnkit.
    folder = Path(ref.__file__).parent
    code = f"""
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location(
    "isolated_reference", {str(folder / "__init__.py")!r}, submodule_search_locations=[{str(folder)!r}]
)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
for sub in ("common", "elman", "lstm", "gru"):
    importlib.import_module("isolated_reference." + sub)
for kind, fn in (("elman", module.elman_loss), ("lstm", module.lstm_loss), ("gru", module.gru_loss)):
    fn(module.init_params(kind, 3, 2, 0), [0, 1], [1, 2], module.initial_state(kind, 2))
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "rnnkit"))
assert not bad, bad
print("ok")
"""
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------- 5. lecture 001's training loop


def test_adagrad_learns_a_repeating_string():
    data = "hello world " * 20
    chars = sorted(set(data))
    ix = {ch: i for i, ch in enumerate(chars)}
    vocab, hidden, seq_length, lr = len(chars), 32, 12, 0.1
    params = init_params("elman", vocab, hidden, np.random.default_rng(0))
    mem = {k: np.zeros_like(v) for k, v in params.items()}  # Adagrad memory

    losses, p, hprev = [], 0, initial_state("elman", hidden)
    for _ in range(200):
        if p + seq_length + 1 > len(data):
            p, hprev = 0, initial_state("elman", hidden)  # go from the start of the data
        inputs = [ix[ch] for ch in data[p : p + seq_length]]
        targets = [ix[ch] for ch in data[p + 1 : p + seq_length + 1]]
        loss, grads, hprev = elman_loss(params, inputs, targets, hprev)
        for k in params:  # Adagrad update, as in the lecture
            mem[k] += grads[k] * grads[k]
            params[k] += -lr * grads[k] / np.sqrt(mem[k] + 1e-8)
        losses.append(loss)
        p += seq_length

    first, last = losses[0], np.mean(losses[-10:])
    assert first == pytest.approx(seq_length * np.log(vocab), rel=0.01)  # ~uniform guess at the start
    assert last < 0.05 * first, (first, last)  # ~0.06 vs ~25 when BPTT is right
