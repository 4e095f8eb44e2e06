"""Adaptive Computation Time: the halting rule, remainder, mean field and ponder cost against a per-example
reference written from Graves (2016), the max-steps cap, the first-step flag, gradcheck of one step, bad input."""
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from rnnkit.cells import ElmanCell, GRUCell, LSTMCell
from rnnkit.memory import ACT, ACTConfig, ACTModel


def reference(act: ACT, x: torch.Tensor, state):
    """One example at a time, Graves (2016) section 2 as written: returns y, state, N, R, rho."""
    ys, states, Ns, Rs = [], [], [], []
    for b in range(x.shape[0]):
        s = tuple(t[b:b + 1] for t in state) if isinstance(state, tuple) else state[b:b + 1]
        hs, outs, ss = [], [], []
        for n in range(1, act.max_steps + 1):
            flag = torch.ones(1, 1) if n == 1 else torch.zeros(1, 1)
            y, s = act.cell(torch.cat([x[b:b + 1], flag.to(x.dtype)], dim=1), s)
            hs.append(torch.sigmoid(act.halt(y))[0, 0])
            outs.append(y)
            ss.append(s)
            if sum(hs) >= 1 - act.epsilon or n == act.max_steps:
                break
        N = len(hs)
        R = 1 - sum(hs[:-1]) if N > 1 else torch.ones((), dtype=x.dtype)
        p = hs[:-1] + [R]
        ys.append(sum(pn * yn for pn, yn in zip(p, outs)))
        if isinstance(state, tuple):
            states.append(tuple(sum(pn * sn[i] for pn, sn in zip(p, ss)) for i in range(len(state))))
        else:
            states.append(sum(pn * sn for pn, sn in zip(p, ss)))
        Ns.append(N)
        Rs.append(R)
    y = torch.cat(ys)
    s = tuple(torch.cat([st[i] for st in states]) for i in range(len(state))) if isinstance(state, tuple) \
        else torch.cat(states)
    R = torch.stack(Rs)
    return y, s, torch.tensor(Ns, dtype=x.dtype), R, torch.tensor(Ns, dtype=x.dtype) + R


@pytest.mark.parametrize("cell_cls", [ElmanCell, LSTMCell, GRUCell])
def test_step_equals_the_per_example_reference(cell_cls):
    torch.manual_seed(0)
    act = ACT(cell_cls(4 + 1, 6), epsilon=0.05, max_steps=8, halting_bias=-1.0).double()
    with torch.no_grad():
        act.halt.weight.mul_(8)  # halting depends strongly on the state: the rows halt after different N
    x = torch.randn(6, 4, dtype=torch.float64)
    state = act.cell.initial_state(6)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    y, s, halting = act.step(x, state)
    ry, rs, rN, rR, rho = reference(act, x, state)
    assert len(set(halting.steps.tolist())) > 1, halting.steps  # a mixed batch
    torch.testing.assert_close(halting.steps, rN)
    torch.testing.assert_close(halting.remainder, rR)
    torch.testing.assert_close(halting.cost, rho)
    torch.testing.assert_close(y, ry)
    for a, b in zip(s if isinstance(s, tuple) else (s,), rs if isinstance(rs, tuple) else (rs,)):
        torch.testing.assert_close(a, b)


def constant_halting(h: float, **kw) -> ACT:
    """An ACT whose halting unit outputs h at every step (zero weights, bias logit(h))."""
    act = ACT(ElmanCell(3 + 1, 5), **kw)
    with torch.no_grad():
        act.halt.weight.zero_()
        act.halt.bias.fill_(math.log(h / (1 - h)))
    return act


def test_remainder_and_ponder_cost():
    # h = 0.3: 0.3 + 0.3 + 0.3 = 0.9 < 0.99 <= 1.2, so N = 4 and R = 1 - 0.9 = 0.1, rho = N + R = 4.1
    _, _, halting = constant_halting(0.3).step(torch.randn(4, 3))
    assert halting.steps.tolist() == [4.0] * 4
    torch.testing.assert_close(halting.remainder, torch.full((4,), 0.1), atol=1e-6, rtol=0)
    torch.testing.assert_close(halting.cost, torch.full((4,), 4.1), atol=1e-6, rtol=0)
    # h >= 1 - eps at once: N = 1, R = 1 (an empty sum)
    _, _, halting = constant_halting(0.995).step(torch.randn(2, 3))
    assert halting.steps.tolist() == [1.0, 1.0] and halting.remainder.tolist() == [1.0, 1.0]


def test_halts_at_max_steps():
    act = constant_halting(0.1, max_steps=3)  # 0.1 * 3 < 0.99: the cap decides
    y, _, halting = act.step(torch.randn(5, 3))
    assert halting.steps.tolist() == [3.0] * 5
    torch.testing.assert_close(halting.remainder, torch.full((5,), 0.8))  # 1 - 0.1 - 0.1
    assert torch.isfinite(y).all()


def test_max_steps_one_is_the_plain_cell():
    act = ACT(ElmanCell(3 + 1, 5), max_steps=1)
    x, h0 = torch.randn(4, 3), torch.randn(4, 5)
    y, s, halting = act.step(x, h0)
    y_cell, _ = act.cell(torch.cat([x, torch.ones(4, 1)], dim=1), h0)
    torch.testing.assert_close(y, y_cell)
    assert halting.steps.tolist() == [1.0] * 4 and halting.cost.tolist() == [2.0] * 4


def test_ponder_cost_gradient_is_minus_one_per_step_before_the_last():
    """d rho / d h^n = -1 for n < N: with h = sigmoid(b), d rho / d b = -(N - 1) h (1 - h)."""
    act = constant_halting(0.3)
    _, _, halting = act.step(torch.randn(1, 3))
    halting.cost.sum().backward()
    h = 0.3
    assert act.halt.bias.grad.item() == pytest.approx(-(4 - 1) * h * (1 - h), rel=1e-5)


class Recorder(nn.Module):
    """A cell that records its inputs (to see the first-step flag)."""

    def __init__(self):
        super().__init__()
        self.input_size, self.output_size, self.seen = 3, 2, []
        self.linear = nn.Linear(3, 2)

    def initial_state(self, batch_size, *, device=None, dtype=None):
        return torch.zeros(batch_size, 2)

    def forward(self, x, state):
        self.seen.append(x.clone())
        return torch.tanh(self.linear(x)) + state, state


def test_the_binary_flag_is_one_on_the_first_ponder_step_only():
    act = ACT(Recorder(), halting_bias=-3.0, max_steps=4)
    x = torch.randn(2, 2)
    act.step(x)
    flags = [x_n[:, -1].tolist() for x_n in act.cell.seen]
    assert flags == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert all(torch.equal(x_n[:, :2], x) for x_n in act.cell.seen)


def test_gradcheck_one_step():
    """Finite differences (float64) for the input, the state and every parameter of one input's pondering (the
    outputs, the mean-field state and the ponder cost); N(t) is piecewise constant, so the check holds away from
    the thresholds, which these random values are."""
    torch.manual_seed(3)
    act = ACT(LSTMCell(3 + 1, 4), epsilon=0.01, max_steps=6, halting_bias=0.0).double()
    names = [n for n, _ in act.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in act.parameters()]
    x = torch.randn(3, 1, 3, dtype=torch.float64, requires_grad=True)  # one input per sequence
    h0, c0 = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))

    def step(x, h0, c0, *p):
        y, (h, c), halting = functional_call(act, dict(zip(names, p)), (x, (h0, c0)))
        return y, h, c, halting.cost

    steps = act(x, (h0, c0))[2].steps
    assert (steps > 1).all() and (steps < 6).all(), steps  # halted by the threshold, not the cap
    assert torch.autograd.gradcheck(step, (x, h0, c0, *params), atol=1e-6)


def test_sequences_with_lengths_equal_each_sequence_alone():
    torch.manual_seed(4)
    model = ACTModel(ACTConfig(input_size=3, output_size=2, cell="gru", hidden_size=5, halting_bias=0.0))
    x = torch.randn(2, 5, 3)
    out, state = model(x, lengths=torch.tensor([5, 2]))
    alone, alone_state = model(x[1:, :2])
    torch.testing.assert_close(out.logits[1, :2], alone.logits[0])
    torch.testing.assert_close(state[1], alone_state[0])
    assert out.halting.steps[1, 2:].abs().sum() == 0 and (out.halting.steps[0] >= 1).all()
    assert out.logits.shape == (2, 5, 2) and out.halting.cost.shape == (2, 5)


def test_bad_input_names_expected_and_received():
    with pytest.raises(ValueError, match=r"ACT: expected epsilon in \(0.0, 1.0\), got 1.5"):
        ACT(ElmanCell(4, 5), epsilon=1.5)
    with pytest.raises(ValueError, match="ACT: expected max_steps >= 1, got 0"):
        ACT(ElmanCell(4, 5), max_steps=0)
    with pytest.raises(ValueError, match="expected a cell with input_size >= 2 .* got input_size 1"):
        ACT(ElmanCell(1, 5))
    with pytest.raises(TypeError, match="ACT: expected a cell with .* Linear has no initial_state"):
        ACT(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"ACT: expected input \(B, 3\), got \(2, 4\)"):
        ACT(ElmanCell(4, 5)).step(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"ACT: expected input \(B, T, 3\), got \(2, 4\)"):
        ACT(ElmanCell(4, 5))(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"ACTConfig: expected cell in .*, got 'transformer'"):
        ACTConfig(3, 1, cell="transformer")
