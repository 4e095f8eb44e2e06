"""MinGRUCell and MinLSTMCell (Feng et al. 2024): the paper's equations written out, sequential == parallel
(log-space) scan in values and gradients, with lengths and a given initial state, the layers over them,
gradcheck of the hand-written backward, the auto rule and bad input. torch has no such cells."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

from rnnkit.cells import MinGRUCell, MinLSTMCell
from rnnkit.cells.min_rnn import PARALLEL_MAX_WIDTH, LinearScan, g, log_g
from rnnkit.layers import RNN, Recurrent
from rnnkit.layers.stepping import stepper_for
from cellkit import _raises, params_of

B, FEAT, H, T = 3, 4, 5, 7
DT = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
F32 = {"rtol": 1e-5, "atol": 1e-5}
CELLS = {"min-gru": MinGRUCell, "min-lstm": MinLSTMCell}


def by_hand(kind, p, xs, h, mask=None):
    """Feng et al.'s equations, one step at a time; mask (T, B) False holds the state. -> (T, B, H), h_T."""
    W, b = p["weight_ih"], p["bias_ih"]
    rows = lambda i: slice(i * H, (i + 1) * H)  # noqa: E731
    hand_g = lambda v: torch.where(v >= 0, v + 0.5, torch.sigmoid(v))  # noqa: E731
    outs = []
    for t, x in enumerate(xs):
        if kind == "min-gru":
            z = torch.sigmoid(x @ W[rows(0)].T + b[rows(0)])
            h_new = (1 - z) * h + z * hand_g(x @ W[rows(1)].T + b[rows(1)])
        else:
            f = torch.sigmoid(x @ W[rows(0)].T + b[rows(0)])
            i = torch.sigmoid(x @ W[rows(1)].T + b[rows(1)])
            h_new = f / (f + i) * h + i / (f + i) * hand_g(x @ W[rows(2)].T + b[rows(2)])
        h = h_new if mask is None else torch.where(mask[t, :, None], h_new, h)
        outs.append(h)
    return torch.stack(outs), h


def make(kind, mode="auto", dtype=DT, seed=0, f=FEAT, h=H):
    torch.manual_seed(seed)
    return CELLS[kind](f, h, mode=mode, dtype=dtype)


def lengths_mask(lengths, t=T):
    return torch.arange(t)[:, None] < torch.tensor(lengths)[None, :]  # (T, B)


def run(cell, mode, xs, h0, mask):
    """outputs, final state and the gradients of a loss on both, w.r.t. xs, h0 and the parameters."""
    cell.mode = mode
    xs, h0 = xs.clone().requires_grad_(), h0.clone().requires_grad_()
    out, h = cell.sequence(xs, h0, mask)
    loss = (out * out.detach().cos()).sum() + (h * h.detach().sin()).sum()
    return [out, h, *torch.autograd.grad(loss, [xs, h0, *cell.parameters()])]


# --- contract: shapes, parameters -----------------------------------------------------------------


@pytest.mark.parametrize("kind, k", [("min-gru", 2), ("min-lstm", 3)])
def test_shapes_and_parameters(kind, k):
    cell = CELLS[kind](FEAT, H)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "bias_ih"]
    assert cell.weight_ih.shape == (k * H, FEAT) and cell.bias_ih.shape == (k * H,) and cell.gates == k
    assert not hasattr(cell, "weight_hh") and cell.output_size == H
    h0 = cell.initial_state(B)
    assert h0.shape == (B, H) and h0.dtype == torch.float32 and torch.count_nonzero(h0) == 0
    y, h = cell(torch.randn(B, FEAT))
    assert y.shape == h.shape == (B, H) and torch.equal(y, h)
    nobias = CELLS[kind](FEAT, H, bias=False, dtype=DT)
    assert [n for n, _ in nobias.named_parameters()] == ["weight_ih"]
    assert nobias.initial_state(2).dtype == DT


def test_g_is_positive_continuous_and_log_g_is_its_log():
    x = torch.linspace(-30, 30, 601, dtype=DT)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), g(x).log(), **TIGHT)
    torch.testing.assert_close(g(torch.tensor([-1e-12, 0.0, 1e-12], dtype=DT)), torch.full((3,), 0.5, dtype=DT))


# --- the equations -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CELLS)
def test_step_is_the_papers_equations(kind):
    cell = make(kind)
    xs, h0 = torch.randn(T, B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    h, outs = h0, []
    for x in xs:
        y, h = cell(x, h)
        outs.append(y)
    want, h_want = by_hand(kind, params_of(cell), xs, h0)
    torch.testing.assert_close(torch.stack(outs), want, **TIGHT)
    torch.testing.assert_close(h, h_want, **TIGHT)


@pytest.mark.parametrize("mode", ["sequential", "parallel", "auto"])
@pytest.mark.parametrize("kind", CELLS)
def test_sequence_is_the_papers_equations_with_lengths(kind, mode):
    cell = make(kind, mode)
    xs, h0 = torch.randn(T, B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    mask = lengths_mask([T, 4, 1])
    out, h = cell.sequence(xs, h0, mask)
    want, h_want = by_hand(kind, params_of(cell), xs, h0, mask)
    torch.testing.assert_close(out, want, **TIGHT)
    torch.testing.assert_close(h, h_want, **TIGHT)


@pytest.mark.parametrize("kind", CELLS)
def test_closed_gate_holds_the_state_exactly(kind):
    cell = make(kind, "sequential")
    with torch.no_grad():  # min-gru: z = σ(-1e4) = 0; min-lstm: i = 0, so f' = 1
        cell.bias_ih[:H if kind == "min-gru" else 2 * H].fill_(-1e4)
        if kind == "min-lstm":
            cell.bias_ih[:H].fill_(0.0)
    h0 = torch.randn(B, H, dtype=DT)
    for mode in ("sequential", "parallel"):
        cell.mode = mode
        out, h = cell.sequence(torch.randn(T, B, FEAT, dtype=DT), h0)
        torch.testing.assert_close(out, h0.expand(T, B, H), rtol=0, atol=1e-14)


# --- sequential == parallel ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(DT, TIGHT), (torch.float32, F32)])
@pytest.mark.parametrize("lengths", [None, [T, 5, 1]])
@pytest.mark.parametrize("kind", CELLS)
def test_sequential_equals_parallel_values_and_gradients(kind, lengths, dtype, tol):
    cell = make(kind, dtype=dtype)
    xs, h0 = torch.randn(T, B, FEAT, dtype=dtype), torch.randn(B, H, dtype=dtype)
    mask = None if lengths is None else lengths_mask(lengths)
    seq, par = run(cell, "sequential", xs, h0, mask), run(cell, "parallel", xs, h0, mask)
    for a, b in zip(seq, par):
        torch.testing.assert_close(a, b, **tol)
    if mask is not None:  # nothing past a length reaches the loss
        assert torch.count_nonzero(seq[2][1:, 2]) == 0


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_carried_state_continues_the_recurrence(mode):
    """h_0 enters as given (no g): two halves with the state carried over equal the whole sequence."""
    cell = make("min-lstm", mode)
    xs, h0 = torch.randn(T, B, FEAT, dtype=DT), torch.randn(B, H, dtype=DT)
    whole, _ = cell.sequence(xs, h0)
    first, h = cell.sequence(xs[:3], h0)
    second, _ = cell.sequence(xs[3:], h)
    torch.testing.assert_close(torch.cat([first, second]), whole, **TIGHT)


def test_linear_scan_gradcheck():
    a = torch.rand(6, 2, 3, dtype=DT, requires_grad=True)
    c = torch.randn(6, 2, 3, dtype=DT, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    assert gradcheck(LinearScan.apply, (a, c, h0))
    assert gradcheck(lambda a, c, h0: LinearScan.apply(a, c, h0)[-1], (a, c, h0))  # final state only


class Sequence(torch.nn.Module):
    """cell.sequence as a module's forward, for functional_call."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, xs, h0, mask):
        return self.cell.sequence(xs, h0, mask)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
@pytest.mark.parametrize("kind", CELLS)
def test_sequence_gradcheck_with_lengths(kind, mode):
    whole = Sequence(make(kind, mode, f=2, h=2))
    names = [n for n, _ in whole.named_parameters()]
    weights = tuple(p.detach().clone().requires_grad_() for p in whole.parameters())
    xs = torch.randn(4, 2, 2, dtype=DT, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=DT, requires_grad=True)
    mask = lengths_mask([4, 2], t=4)

    def f(xs, h0, *weights):
        return torch.func.functional_call(whole, dict(zip(names, weights)), (xs, h0, mask))

    assert gradcheck(f, (xs, h0, *weights))


# --- the auto rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch, hidden, scan", [(1, PARALLEL_MAX_WIDTH, "parallel"), (2, PARALLEL_MAX_WIDTH // 2, "parallel"),
                                                 (1, PARALLEL_MAX_WIDTH + 1, "sequential"), (2, PARALLEL_MAX_WIDTH, "sequential")])
def test_auto_takes_the_parallel_scan_only_for_tiny_steps_on_cpu(batch, hidden, scan):
    cell = make("min-gru", "auto", f=2, h=hidden)
    out, _ = cell.sequence(torch.randn(3, batch, 2, dtype=DT, requires_grad=True), cell.initial_state(batch))
    assert ("LinearScan" in type(out.grad_fn).__name__) == (scan == "sequential")


# --- layers over the cells ---------------------------------------------------------------------------


def layer_results(rnn, x, lengths, state):
    x = x.clone().requires_grad_()
    out, final = rnn(x, lengths, state)
    flat = [s for layer in final for s in (layer if isinstance(layer, tuple) else (layer,))]
    loss = (out * out.detach().cos()).sum() + sum((s * s.detach().sin()).sum() for s in flat)
    return [out, *flat, *torch.autograd.grad(loss, [x, *rnn.parameters()])]


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
@pytest.mark.parametrize("kind", CELLS)
def test_rnn_bidirectional_with_lengths_equals_the_step_loop(kind, mode):
    torch.manual_seed(0)
    scan = RNN(kind, FEAT, H, num_layers=2, bidirectional=True, mode=mode).double()
    loop = RNN(kind, FEAT, H, num_layers=2, bidirectional=True, fused=False).double()  # cell.step per t
    loop.load_state_dict(scan.state_dict())
    x, lengths = torch.randn(B, T, FEAT, dtype=DT), [T, 3, 1]
    state = [(torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)) for _ in range(2)]
    got, want = layer_results(scan, x, lengths, state), layer_results(loop, x, lengths, state)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TIGHT)
    assert torch.count_nonzero(got[0][2, 1:]) == 0


@pytest.mark.parametrize("kind", CELLS)
def test_rnn_step_equals_the_layer_and_there_is_no_stepper(kind):
    torch.manual_seed(0)
    rnn = RNN(kind, FEAT, H, num_layers=2).double().eval()
    x = torch.randn(2, T, FEAT, dtype=DT)
    with torch.no_grad():
        out, final = rnn(x)
        state, ys = None, []
        for t in range(T):
            y, state = rnn.step(x[:, t], state)
            ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1), out, **TIGHT)
    torch.testing.assert_close(state[1], final[1], **TIGHT)
    assert stepper_for(rnn) is None  # no pointwise update(a_t, state): RNN.step serves generation


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_property_shapes_lengths_and_modes_agree(data):
    b, t = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    f, h = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    lengths = data.draw(st.lists(st.integers(1, t), min_size=b, max_size=b))
    kind, seed = data.draw(st.sampled_from(sorted(CELLS))), data.draw(st.integers(0, 2 ** 16))
    torch.manual_seed(seed)
    x = torch.randn(b, t, f, dtype=DT)
    results = {}
    for mode in ("sequential", "parallel"):
        torch.manual_seed(seed)
        layer = Recurrent(CELLS[kind](f, h, mode=mode, dtype=DT))
        results[mode] = layer(x, lengths)
    (out, h_n), (out_p, h_p) = results["sequential"], results["parallel"]
    assert out.shape == (b, t, h) and h_n.shape == (b, h)
    torch.testing.assert_close(out_p, out, **TIGHT)
    torch.testing.assert_close(h_p, h_n, **TIGHT)
    for i, n in enumerate(lengths):
        assert torch.count_nonzero(out[i, n:]) == 0
        torch.testing.assert_close(out[i, n - 1], h_n[i], rtol=0, atol=0)
        alone, h_alone = layer.cell.sequence(x[i:i + 1, :n].transpose(0, 1), layer.cell.initial_state(1, dtype=DT))
        torch.testing.assert_close(alone[:, 0], out_p[i, :n], **TIGHT)
        torch.testing.assert_close(h_alone[0], h_p[i], **TIGHT)


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CELLS)
def test_bad_input(kind):
    cls, name = CELLS[kind], CELLS[kind].__name__
    with _raises(ValueError, f"{name}: expected mode in ('auto', 'sequential', 'parallel'), got 'fast'"):
        cls(FEAT, H, mode="fast")
    with _raises(ValueError, f"{name}: expected hidden_size >= 1, got 0"):
        cls(FEAT, 0)
    cell = cls(FEAT, H)
    with _raises(ValueError, f"{name}: expected input (B, {FEAT}), got (2, 3)"):
        cell(torch.randn(2, 3))
    with _raises(ValueError, f"{name}: expected state[0] of shape (2, {H}), got (2, 3)"):
        cell(torch.randn(2, FEAT), torch.randn(2, 3))
    with _raises(ValueError, f"{name}: recurrent dropout needs h_(t-1) inside the gates"):
        cell.step(cell.project_input(torch.randn(2, FEAT)), cell.initial_state(2), torch.ones(2, H))
    with _raises(ValueError, f"{name}: recurrent dropout needs h_(t-1) inside the gates"):
        cell.sequence(torch.randn(T, 2, FEAT), cell.initial_state(2), recurrent_mask=torch.ones(2, H))
    with _raises(ValueError, f"Recurrent: recurrent_dropout drops h_(t-1) inside the recurrent products, and {name} "
                             "has none (its gates read only x_t); expected recurrent_dropout=0, got 0.1"):
        RNN(kind, FEAT, H, recurrent_dropout=0.1)


def test_subclass_falls_back_to_the_step_loop_and_autocast_runs_in_bf16():
    class Mine(MinGRUCell):
        pass

    xs, h0 = torch.randn(T, 2, FEAT), torch.zeros(2, H)
    assert Mine(FEAT, H).sequence(xs, h0) is None
    for mode in ("sequential", "parallel"):
        cell = MinLSTMCell(FEAT, H, mode=mode)
        want, h_want = cell.sequence(xs, h0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, h = cell.sequence(xs, h0)
        assert out.dtype == torch.bfloat16 and h.dtype == torch.float32
        torch.testing.assert_close(out.float(), want, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("kind", ["min-gru", "min-lstm"])
def test_a_subclass_runs_step_by_step(kind):
    class Mine(CELLS[kind]):
        pass

    torch.manual_seed(0)
    cell = Mine(FEAT, H, dtype=DT)
    xs, h0 = torch.randn(T, B, FEAT, dtype=DT), torch.zeros(B, H, dtype=DT)
    assert cell.sequence(xs, h0) is None  # a subclass may change the step: no whole-sequence scan
    out, h = Recurrent(cell, batch_first=False)(xs)
    torch.testing.assert_close(out, by_hand(kind, dict(cell.named_parameters()), xs, h0)[0], **TIGHT)
