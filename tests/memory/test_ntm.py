"""Neural Turing Machine: every addressing equation against hand-written NumPy on a tiny memory, weightings that
sum to 1, lecture 003's write as the special case e = 1, gradcheck of one step, the cell/layer contract, bad input."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

from rnnkit.layers import KINDS
from rnnkit.memory import NTM, NTMCell, NTMConfig, address, content_weighting, interpolate, read, sharpen, shift, write
from rnnkit.memory.ntm import EPSILON

B, K, N, M = 2, 3, 5, 4  # batch, heads, locations, numbers per location


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


# ----- NumPy, one head and one sequence at a time, written from Graves et al. (2014) section 3 --------------------

def np_content(memory, key, beta):
    similarity = np.array([key @ row / (np.linalg.norm(key) * np.linalg.norm(row) + EPSILON) for row in memory])
    return softmax(beta * similarity)


def np_shift(w, s):
    S = (len(s) - 1) // 2
    return np.array([sum(w[(i - j) % len(w)] * s[j + S] for j in range(-S, S + 1)) for i in range(len(w))])


def np_sharpen(w, gamma):
    return w ** gamma / np.sum(w ** gamma)


def np_write(memory, weights, erases, adds):
    """Every erase, then every add (Graves et al. 3.2)."""
    out = memory.copy()
    for w, e in zip(weights, erases):
        out = out * (1 - np.outer(w, e))
    for w, a in zip(weights, adds):
        out = out + np.outer(w, a)
    return out


def tensors(rng):
    memory = rng.normal(size=(B, N, M))
    key = rng.normal(size=(B, K, M))
    beta = rng.uniform(0.5, 5, size=(B, K))
    previous = rng.dirichlet(np.ones(N), size=(B, K))
    gate = rng.uniform(size=(B, K))
    s = rng.dirichlet(np.ones(3), size=(B, K))
    gamma = rng.uniform(1, 4, size=(B, K))
    return memory, key, beta, previous, gate, s, gamma


def test_addressing_equations_equal_numpy(rng):
    memory, key, beta, previous, gate, s, gamma = tensors(rng)
    t = [torch.from_numpy(a) for a in (memory, key, beta, previous, gate, s, gamma)]
    content = content_weighting(t[0], t[1], t[2]).numpy()
    gated = interpolate(torch.from_numpy(content), t[3], t[4]).numpy()
    shifted = shift(torch.from_numpy(gated), t[5]).numpy()
    sharp = sharpen(torch.from_numpy(shifted), t[6]).numpy()
    whole = address(*t[:1], t[3], t[1], t[2], t[4], t[5], t[6]).numpy()
    for b in range(B):
        for k in range(K):
            wc = np_content(memory[b], key[b, k], beta[b, k])
            np.testing.assert_allclose(content[b, k], wc, rtol=1e-12)
            wg = gate[b, k] * wc + (1 - gate[b, k]) * previous[b, k]
            np.testing.assert_allclose(gated[b, k], wg, rtol=1e-12)
            ws = np_shift(wg, s[b, k])
            np.testing.assert_allclose(shifted[b, k], ws, rtol=1e-12)
            w = np_sharpen(ws, gamma[b, k])
            np.testing.assert_allclose(sharp[b, k], w, rtol=1e-10)
            np.testing.assert_allclose(whole[b, k], w, rtol=1e-10)
            assert w.sum() == pytest.approx(1.0, abs=1e-12) and (w >= 0).all()


def test_shift_is_a_circular_convolution_that_moves_the_focus():
    w = torch.tensor([[[0.0, 1.0, 0.0, 0.0, 0.0]]])
    forward = torch.tensor([[[0.0, 0.0, 1.0]]])  # all weight on shift +1
    backward = torch.tensor([[[1.0, 0.0, 0.0]]])  # shift -1
    assert shift(w, forward).tolist() == [[[0.0, 0.0, 1.0, 0.0, 0.0]]]
    assert shift(w, backward).tolist() == [[[1.0, 0.0, 0.0, 0.0, 0.0]]]
    last = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 1.0]]])
    assert shift(last, forward).tolist() == [[[1.0, 0.0, 0.0, 0.0, 0.0]]]  # wraps around
    two = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 1.0]]])  # shifts -2..2: +2 wraps from 0 to 2
    assert shift(torch.tensor([[[1.0, 0, 0, 0, 0]]]), two).tolist() == [[[0.0, 0.0, 1.0, 0.0, 0.0]]]
    torch.testing.assert_close(shift(w, torch.ones(1, 1, 1)), w)  # range 0: the identity


def test_sharpening_is_safe_for_large_gamma_and_zeros():
    w = torch.tensor([[[0.0, 0.2, 0.3, 0.5, 0.0]]])
    out = sharpen(w, torch.tensor([[200.0]]))
    assert torch.isfinite(out).all() and out.sum().item() == pytest.approx(1.0)
    assert out[0, 0, 3].item() == pytest.approx(1.0)  # the largest entry takes all
    torch.testing.assert_close(sharpen(w, torch.tensor([[1.0]])), w, atol=1e-7, rtol=0)  # γ = 1 keeps w


def test_read_and_erase_add_write_equal_numpy(rng):
    memory = rng.normal(size=(B, N, M))
    weights = rng.dirichlet(np.ones(N), size=(B, 2))  # two heads
    erase = rng.uniform(size=(B, 2, M))
    add = rng.normal(size=(B, 2, M))
    r = read(torch.from_numpy(memory), torch.from_numpy(weights)).numpy()
    new = write(*(torch.from_numpy(a) for a in (memory, weights, erase, add))).numpy()
    for b in range(B):
        for k in range(2):
            np.testing.assert_allclose(r[b, k], sum(weights[b, k, i] * memory[b, i] for i in range(N)), rtol=1e-12)
        np.testing.assert_allclose(new[b], np_write(memory[b], weights[b], erase[b], add[b]), rtol=1e-12)
    one = write(*(torch.from_numpy(a[:, :1]) if a.ndim == 3 and a.shape[1] == 2 else torch.from_numpy(a)
                  for a in (memory, weights, erase, add))).numpy()
    np.testing.assert_allclose(one[0], np_write(memory[0], weights[0, :1], erase[0, :1], add[0, :1]), rtol=1e-12)


def test_write_with_full_erase_is_the_lectures_write(rng):
    """Lecture 003: M_i <- a_i w + (1 - a_i) M_i, with a_i the attention and w the value written."""
    memory = torch.from_numpy(rng.normal(size=(1, N, M)))
    attention = torch.from_numpy(rng.dirichlet(np.ones(N), size=(1, 1)))
    value = torch.from_numpy(rng.normal(size=(1, 1, M)))
    lecture = torch.stack([attention[0, 0, i] * value[0, 0] + (1 - attention[0, 0, i]) * memory[0, i]
                           for i in range(N)])
    torch.testing.assert_close(write(memory, attention, torch.ones(1, 1, M, dtype=torch.float64), value)[0], lecture)


def small_config(**kw):
    return NTMConfig(**{"input_size": 3, "output_size": 2, "controller_size": 6, "memory_size": 7, "memory_width": 4,
                        "read_heads": 2, "write_heads": 2, **kw})


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_weightings_sum_to_one_over_many_steps(controller):
    torch.manual_seed(0)
    ntm = NTM(small_config(controller=controller))
    trace = ntm.trace(torch.randn(3, 25, 3))
    for name in ("read_weights", "write_weights"):
        w = trace[name]
        assert w.shape == (3, 25, 2, 7) and (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 25, 2))
    assert trace["memory"].shape == (3, 25, 7, 4) and torch.isfinite(trace["memory"]).all()
    logits, _ = ntm(torch.randn(3, 25, 3))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("controller, memory_init", [("lstm", "learned"), ("feedforward", "fixed")])
def test_gradcheck_one_step(controller, memory_init):
    """Finite differences (float64) for the input, every state tensor and every parameter of one NTM step
    (fast mode: the Jacobian along random directions, which checks every input at once)."""
    torch.manual_seed(1)
    cell = NTMCell(small_config(controller=controller, memory_init=memory_init, shift_range=2)).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    controller_state, reads, weights, memory = cell.initial_state(2)
    # a state away from the initial one: random memory and weightings
    memory = torch.randn_like(memory)
    weights = torch.softmax(torch.randn_like(weights).view(2, 4, 7), -1).flatten(1)
    reads = torch.randn_like(reads)
    controller_state = tuple(torch.randn_like(s) for s in controller_state)
    names = [n for n, p in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    if memory_init == "learned":
        assert "memory_bias" in names

    def step(x, reads, weights, memory, *rest):
        states, p = rest[:len(controller_state)], rest[len(controller_state):]
        y, (c, r, w, m) = functional_call(cell, dict(zip(names, p)), (x, (tuple(states), reads, weights, memory)))
        return (y, r, w, m, *c)

    inputs = [t.requires_grad_() for t in (x, reads, weights, memory, *controller_state)] + params
    assert torch.autograd.gradcheck(step, tuple(inputs), atol=1e-6, fast_mode=True)


def test_initial_state_and_the_learned_memory():
    fixed, learned = NTMCell(small_config()), NTMCell(small_config(memory_init="learned"))
    assert "memory_bias" not in dict(fixed.named_parameters()) and "memory_bias" in fixed.state_dict()
    assert "memory_bias" in dict(learned.named_parameters())
    controller, reads, weights, memory = fixed.initial_state(3)
    assert reads.shape == (3, 2 * 4) and weights.shape == (3, 4 * 7) and memory.shape == (3, 7 * 4)
    assert torch.all(memory == 1e-6)  # constant initialisation
    w = weights.view(3, 4, 7)
    assert torch.equal(w[..., 0], torch.ones(3, 4)) and w[..., 1:].abs().sum() == 0  # every head on location 0
    torch.testing.assert_close(reads, torch.full((3, 8), 1e-6))  # r_0 = M_0(0)
    ntm = NTM(small_config(memory_init="learned"))
    ntm(torch.randn(2, 6, 3))[0].sum().backward()
    assert ntm.cell.memory_bias.grad is not None and ntm.cell.memory_bias.grad.abs().sum() > 0


def test_layer_equals_a_loop_over_the_cell_and_padding_equals_alone():
    torch.manual_seed(2)
    ntm = NTM(small_config())
    x = torch.randn(2, 6, 3)
    out, state = ntm(x)
    s, ys = None, []
    for t in range(6):
        y, s = ntm.cell(x[:, t], s)
        ys.append(y)
    torch.testing.assert_close(out, torch.stack(ys, 1))
    torch.testing.assert_close(state[3], s[3])
    padded, pstate = ntm(x, lengths=torch.tensor([6, 4]))
    alone, astate = ntm(x[1:, :4])
    torch.testing.assert_close(padded[1, :4], alone[0])
    assert padded[1, 4:].abs().sum() == 0
    torch.testing.assert_close(pstate[3][1], astate[3][0])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_rnnkit_cell_can_be_the_controller(kind):
    ntm = NTM(small_config(controller=kind, read_heads=1, write_heads=1))
    logits, _ = ntm(torch.randn(2, 3, 3))
    assert logits.shape == (2, 3, 2)


@pytest.mark.parametrize("change, message", [
    ({"memory_size": 0}, "expected memory_size >= 1, got 0"),
    ({"memory_width": 0}, "expected memory_width >= 1, got 0"),
    ({"read_heads": 0}, "expected read_heads >= 1, got 0"),
    ({"shift_range": -1}, r"expected shift_range >= 0 \(shifts -S..S\), got -1"),
    ({"shift_range": 4}, "expected 2 \\* shift_range \\+ 1 <= memory_size .* got shift_range 4 with memory_size 7"),
    ({"controller": "transformer"}, "expected controller in .*'feedforward'.*, got 'transformer'"),
    ({"memory_init": "random"}, r"expected memory_init in \('fixed', 'learned'\), got 'random'"),
])
def test_bad_config_names_expected_and_received(change, message):
    with pytest.raises(ValueError, match=message):
        small_config(**change)
    with pytest.raises(TypeError, match="expected shift_range to be an int, got float 1.5"):
        small_config(shift_range=1.5)


def test_bad_input_names_expected_and_received():
    cell = NTMCell(small_config())
    with pytest.raises(ValueError, match=r"NTMCell: expected input \(B, 3\), got \(2, 5\)"):
        cell(torch.randn(2, 5))
    state = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"NTMCell: expected state\[3\] of shape \(2, 28\), got \(2, 27\)"):
        cell(torch.randn(2, 3), (*state[:3], torch.zeros(2, 27)))
    with pytest.raises(TypeError, match=r"expected state \(controller_state, reads, weights, memory\), got a tuple "
                                        r"of 3"):
        cell(torch.randn(2, 3), state[:3])
    with pytest.raises(ValueError, match=r"expected input \(B, T, 3\), got \(2, 4, 5\)"):
        NTM(small_config())(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"NTM.trace: expected x \(B, T, 3\), got \(4, 5\)"):
        NTM(small_config()).trace(torch.randn(4, 5))
