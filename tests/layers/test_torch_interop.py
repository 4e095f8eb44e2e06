"""torch.nn.LSTM / GRU / RNN <-> rnnkit RNN: from_torch, load_torch_state_dict and torch_state_dict give the
same outputs and final states as torch's module (float64, padded batch with lengths through
pack_padded_sequence) for every kind x layers {1, 2} x directions, on the kernel and the explicit path;
torch_state_dict loads into a fresh torch module with strict=True; mismatches are named."""
import re

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.layers import RNN

B, T, FEAT, H = 4, 6, 3, 5
LENGTHS = torch.tensor([6, 2, 1, 4])
TIGHT = {"rtol": 1e-10, "atol": 1e-12}

# name -> (torch class, torch kwargs, rnnkit kind, rnnkit cell kwargs)
KINDS = {
    "lstm": (nn.LSTM, {}, "lstm", {}),
    "gru": (nn.GRU, {}, "gru", {}),
    "rnn-tanh": (nn.RNN, {"nonlinearity": "tanh"}, "rnn", {}),
    "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}, "rnn", {"activation": "relu"}),
}


def torch_module(kind, num_layers, bidirectional, *, batch_first=True, seed=0, **kw):
    cls, kwargs, _, _ = KINDS[kind]
    torch.manual_seed(seed)
    return cls(FEAT, H, num_layers, bidirectional=bidirectional, batch_first=batch_first, **kwargs,
               **kw).double().eval()


def rk_module(kind, num_layers, bidirectional, *, seed=1, **kw):
    _, _, rk_kind, cell_kwargs = KINDS[kind]
    torch.manual_seed(seed)
    return RNN(rk_kind, FEAT, H, num_layers, bidirectional=bidirectional, **cell_kwargs, **kw).double().eval()


def inputs(seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, FEAT, generator=g, dtype=torch.float64)


def torch_reference(module, x, lengths, hx=None):
    """torch's own answer on a padded batch: pack, run, unpack to (B, T, D*H), zeros past each length."""
    packed = pack_padded_sequence(x, lengths, batch_first=module.batch_first, enforce_sorted=False)
    out, hn = module(packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    return out, hn


def to_torch_state(states, kind, bidirectional):
    """rnnkit's per-layer list -> torch's h_n (L*D, B, H), or (h_n, c_n) for an LSTM."""
    per_cell = [s for layer in states for s in (layer if bidirectional else [layer])]
    if kind == "lstm":
        return torch.stack([s[0] for s in per_cell]), torch.stack([s[1] for s in per_cell])
    return torch.stack(per_cell)


def to_rk_state(hx, kind, num_layers, bidirectional):
    """torch's h_0 (L*D, B, H) [and c_0] -> rnnkit's per-layer list."""
    per_cell = list(zip(hx[0].unbind(0), hx[1].unbind(0))) if kind == "lstm" else list(hx.unbind(0))
    if bidirectional:
        return [tuple(per_cell[2 * i: 2 * i + 2]) for i in range(num_layers)]
    return per_cell


def random_hx(kind, num_layers, bidirectional, seed=3):
    g = torch.Generator().manual_seed(seed)
    shape = (num_layers * (2 if bidirectional else 1), B, H)
    h = torch.randn(*shape, generator=g, dtype=torch.float64)
    return (h, torch.randn(*shape, generator=g, dtype=torch.float64)) if kind == "lstm" else h


def assert_same(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, **TIGHT)
    else:
        torch.testing.assert_close(a, b, **TIGHT)


GRID = [(kind, layers, bi) for kind in sorted(KINDS) for layers in (1, 2) for bi in (False, True)]
IDS = [f"{k}-L{n}-{'bi' if b else 'uni'}" for k, n, b in GRID]


@pytest.mark.parametrize("kind, num_layers, bidirectional", GRID, ids=IDS)
def test_torch_to_rnnkit_same_outputs_and_final_states(kind, num_layers, bidirectional):
    ref = torch_module(kind, num_layers, bidirectional)
    x, hx = inputs(), random_hx(kind, num_layers, bidirectional)
    want_out, want_hn = torch_reference(ref, x, LENGTHS)
    want_out_h0, want_hn_h0 = torch_reference(ref, x, LENGTHS, hx)

    rk = RNN.from_torch(ref)
    assert (rk.num_layers, rk.bidirectional, rk.batch_first, rk.training) == (num_layers, bidirectional, True, False)
    assert rk.cells[0].weight_ih.dtype == torch.float64
    explicit = rk_module(kind, num_layers, bidirectional, fused=False).load_torch_state_dict(ref.state_dict())
    for model in (rk, explicit):  # torch's kernel on the copied weights, and rnnkit's own loop over its cells
        out, states = model(x, lengths=LENGTHS)
        torch.testing.assert_close(out, want_out, **TIGHT)
        assert_same(to_torch_state(states, kind, bidirectional), want_hn)
        out, states = model(x, lengths=LENGTHS, state=to_rk_state(hx, kind, num_layers, bidirectional))
        torch.testing.assert_close(out, want_out_h0, **TIGHT)
        assert_same(to_torch_state(states, kind, bidirectional), want_hn_h0)


@pytest.mark.parametrize("kind, num_layers, bidirectional", GRID, ids=IDS)
def test_rnnkit_to_torch_loads_strictly_and_gives_the_same_outputs(kind, num_layers, bidirectional):
    rk = rk_module(kind, num_layers, bidirectional)
    state_dict = rk.torch_state_dict()
    fresh = torch_module(kind, num_layers, bidirectional, seed=99)
    assert list(state_dict) == list(fresh.state_dict())  # the same names in torch's order
    fresh.load_state_dict(state_dict, strict=True)
    x = inputs()
    want_out, want_hn = torch_reference(fresh, x, LENGTHS)
    out, states = rk(x, lengths=LENGTHS)
    torch.testing.assert_close(out, want_out, **TIGHT)
    assert_same(to_torch_state(states, kind, bidirectional), want_hn)
    # the torch names are views of rnnkit's parameters, as state_dict() gives
    assert state_dict["weight_ih_l0"].data_ptr() == rk.cells[0].weight_ih.data_ptr()


def test_round_trip_without_bias_time_major_and_dropout():
    ref = torch_module("gru", 2, True, batch_first=False, bias=False, dropout=0.25)
    rk = RNN.from_torch(ref)
    assert rk.batch_first is False and rk.dropout == 0.25 and not rk.cells[0].bias
    x = inputs().transpose(0, 1)  # (T, B, F), torch's default layout
    want_out, _ = torch_reference(ref, x, LENGTHS)
    torch.testing.assert_close(rk(x, lengths=LENGTHS)[0], want_out, **TIGHT)
    assert RNN.from_torch(ref, batch_first=True).batch_first is True
    fresh = torch_module("gru", 2, True, batch_first=False, bias=False, dropout=0.25, seed=5)
    fresh.load_state_dict(rk.torch_state_dict(), strict=True)
    for a, b in zip(fresh.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_from_torch_keeps_dtype_and_training_mode():
    ref = nn.LSTM(FEAT, H)  # float32, training mode
    rk = RNN.from_torch(ref)
    assert rk.training and rk.cells[0].weight_ih.dtype == torch.float32
    assert torch.equal(rk.cells[0].weight_hh, ref.weight_hh_l0)


# ----- bad input ------------------------------------------------------------------------------------

def test_from_torch_refuses_other_modules_and_projections():
    with pytest.raises(TypeError, match=r"expected a torch.nn.LSTM, nn.GRU or nn.RNN, got torch.nn.modules.rnn.LSTMCell"
                                        r".*rnnkit.cells"):
        RNN.from_torch(nn.LSTMCell(FEAT, H))
    with pytest.raises(TypeError, match="got torch.nn.modules.linear.Linear"):
        RNN.from_torch(nn.Linear(FEAT, H))
    with pytest.raises(ValueError, match=r"projections are not supported.*expected proj_size=0, got proj_size=2"):
        RNN.from_torch(nn.LSTM(FEAT, H, proj_size=2))
    rk = rk_module("lstm", 1, False)
    with pytest.raises(ValueError, match=r"weight_hr_l\*, proj_size > 0"):
        rk.load_torch_state_dict(nn.LSTM(FEAT, H, proj_size=2).state_dict())


def test_mismatched_kind_names_the_gate_layout():
    rk = rk_module("lstm", 1, False)
    before = [p.detach().clone() for p in rk.parameters()]
    with pytest.raises(ValueError) as info:
        rk.load_torch_state_dict(torch_module("gru", 1, False).state_dict())
    message = str(info.value)
    assert f"'weight_hh_l0' has shape ({3 * H}, {H}), expected ({4 * H}, {H}) (3 gates x {H}: an nn.GRU's layout, " \
           "this is nn.LSTM)" in message
    assert f"'weight_ih_l0' has shape ({3 * H}, {FEAT}), expected ({4 * H}, {FEAT})" in message
    assert all(torch.equal(a, b) for a, b in zip(before, rk.parameters()))  # nothing copied


@pytest.mark.parametrize("source, want, got", [
    ((2, False), "expected the state dict of a 1 layer unidirectional nn.LSTM with bias",
     "got 2 layers, unidirectional, with bias; missing [], unexpected ['weight_ih_l1', "),
    ((1, True), "expected the state dict of a 1 layer unidirectional nn.LSTM with bias",
     "got 1 layer, bidirectional, with bias; missing [], unexpected ['weight_ih_l0_reverse', "),
])
def test_mismatched_layers_and_directions_are_named(source, want, got):
    rk = rk_module("lstm", 1, False)
    with pytest.raises(ValueError) as info:
        rk.load_torch_state_dict(torch_module("lstm", *source).state_dict())
    assert want in str(info.value) and got in str(info.value)


def test_missing_layer_bias_and_hidden_size_are_named():
    rk = rk_module("gru", 2, True)
    with pytest.raises(ValueError, match=re.escape("a 2 layers bidirectional nn.GRU with bias, got 1 layer, "
                                                   "bidirectional, with bias; missing ['weight_ih_l1', ")):
        rk.load_torch_state_dict(torch_module("gru", 1, True).state_dict())
    with pytest.raises(ValueError, match=re.escape("got 2 layers, bidirectional, without bias; missing ['bias_ih_l0'")):
        rk.load_torch_state_dict(torch_module("gru", 2, True, bias=False).state_dict())
    wider = nn.GRU(FEAT, H + 1, 2, bidirectional=True).double().state_dict()
    with pytest.raises(ValueError, match=re.escape(f"hidden_size {H} and input_size {FEAT}: 'weight_ih_l0' has shape "
                                                   f"({3 * (H + 1)}, {FEAT}), expected ({3 * H}, {FEAT})")):
        rk.load_torch_state_dict(wider)


def test_bad_state_dict_values():
    rk = rk_module("rnn-tanh", 1, False)
    with pytest.raises(TypeError, match="expected a state dict .* got list"):
        rk.load_torch_state_dict([("weight_ih_l0", torch.zeros(1))])
    state_dict = dict(rk.torch_state_dict(), bias_hh_l0=[0.0] * H)
    with pytest.raises(TypeError, match="expected 'bias_hh_l0' to be a tensor, got list"):
        rk.load_torch_state_dict(state_dict)
    with pytest.raises(ValueError, match=re.escape("got no torch RNN keys (keys: 'stack.layers.0.cell.weight_ih'")):
        rk.load_torch_state_dict(rk.state_dict())


@pytest.mark.parametrize("kind, kwargs, hint", [
    ("gru-cho", {}, "torch's nn.GRU is the reset-after form"),
    ("peephole", {}, "torch's nn.LSTM has no peepholes"),
    ("jordan", {}, "got 'jordan'"),
    ("minimal-gru", {}, "got 'minimal-gru'"),
    ("rnn", {"activation": "sigmoid"}, "torch's nn.RNN is tanh or relu, got activation 'sigmoid'"),
])
def test_kinds_torch_has_no_module_for_are_refused(kind, kwargs, hint):
    rk = RNN(kind, FEAT, H, **kwargs)
    for call in (rk.torch_state_dict, lambda: rk.load_torch_state_dict(nn.GRU(FEAT, H).state_dict())):
        with pytest.raises(ValueError, match="expected a kind torch has a module for") as info:
            call()
        assert hint in str(info.value)
