"""LanguageModel.stepper(): the generation path (weights prepared once, first layer as a token table) gives
the same logits and states as ``step`` and as one forward call, and falls back to ``step`` where it cannot."""
import pytest
import torch

from rnnkit.decode.sample import generate
from rnnkit.layers import KINDS
from rnnkit.kernels import packed as packing
from rnnkit.kernels.packed import packs
from rnnkit.layers import stepping
from rnnkit.layers.stepping import Stepper, stepper_for
from rnnkit.models.lm import LanguageModel, LMConfig

V = 11
JOINT = ["rnn", "lstm", "peephole"]  # cells with a pointwise update: the stepper's kinds


def model_of(cell, embedding, layers=2, bias_noise=True):
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=V, cell=cell, hidden=6, layers=layers, embedding=embedding,
                                   dropout=0.3)).double().eval()
    with torch.no_grad():
        for p in model.parameters():  # biases and peephole weights away from their zero initialisation
            p.add_(torch.randn_like(p) * 0.3) if bias_noise else None
    return model


@pytest.mark.parametrize("cell", JOINT)
@pytest.mark.parametrize("embedding", [0, 4])
@pytest.mark.parametrize("batch", [1, 3])
def test_stepper_equals_step_and_forward(cell, embedding, batch):
    model = model_of(cell, embedding)
    step = model.stepper()
    assert step != model.step  # the prepared path, not the fallback
    ids = torch.randint(0, V, (batch, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, _ = model(ids)
        state_a = state_b = None
        for t in range(ids.shape[1]):
            a, state_a = step(ids[:, t], state_a)
            b, state_b = model.step(ids[:, t], state_b)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
            torch.testing.assert_close(a, full[:, t], rtol=0, atol=1e-12)
    for sa, sb in zip(state_a, state_b):
        for x, y in zip(sa if isinstance(sa, tuple) else [sa], sb if isinstance(sb, tuple) else [sb]):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-12)


def test_stepper_is_a_snapshot_and_a_new_one_sees_new_weights():
    model = model_of("lstm", 4)
    old = model.stepper()
    ids = torch.tensor([3])
    before, _ = old(ids)
    with torch.no_grad():
        model.embed.weight.add_(1.0)
    torch.testing.assert_close(old(ids)[0], before, rtol=0, atol=0)
    fresh, _ = model.stepper()(ids)
    torch.testing.assert_close(fresh, model.step(ids)[0], rtol=0, atol=1e-12)
    assert not torch.allclose(fresh, before)


@pytest.mark.parametrize("cell", sorted(set(KINDS) - set(JOINT)) + ["tcn"])
def test_other_cells_fall_back_to_step(cell):
    assert cell == "tcn" or not hasattr(KINDS[cell][0], "update")
    model = model_of(cell, 4)
    assert model.stepper() == model.step


def test_training_mode_falls_back_to_step():
    model = model_of("lstm", 4).train()
    assert model.stepper() == model.step  # dropout and autograd belong to step


def test_bidirectional_has_no_stepper():
    from rnnkit.layers import RNN
    assert stepper_for(RNN("lstm", 3, 4, bidirectional=True).eval()) is None


def test_bad_inputs_are_named():
    model = model_of("lstm", 4)
    with pytest.raises(ValueError, match=r"expected integer ids \(B,\), got torch.float64 \(2, 1\)"):
        model.stepper()(torch.zeros(2, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected an input table \(V, 4\), got \(11, 5\)"):
        Stepper(model.rnn, torch.zeros(V, 5, dtype=torch.float64))


def test_generate_draws_the_same_tokens_through_the_stepper():
    """generate uses the stepper; the tokens equal a loop over model.step with the same random stream."""
    model = model_of("lstm", 0)
    prime = torch.tensor([1, 2, 3])
    got = list(generate(model, prime, 40, temperature=0.9, generator=torch.Generator().manual_seed(7)))

    class StepOnly:  # the same model without a stepper
        def __init__(self, m):
            self.m = m
        def __getattr__(self, name):
            if name == "stepper":
                raise AttributeError(name)
            return getattr(self.m, name)
        def __call__(self, *a):
            return self.m(*a)

    want = list(generate(StepOnly(model), prime, 40, temperature=0.9, generator=torch.Generator().manual_seed(7)))
    assert got == want and len(got) == 40


@pytest.mark.parametrize("parts", [1, 2, 4])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("add", ["none", "bias", "rows"])
def test_blocked_product_is_the_plain_product(parts, batch, add):
    from rnnkit.layers.stepping import blocked_product, column_blocks
    g = torch.Generator().manual_seed(0)
    W, x = torch.randn(5, 8, generator=g, dtype=torch.float64), torch.randn(batch, 5, generator=g, dtype=torch.float64)
    extra = {"none": None, "bias": torch.randn(8, generator=g, dtype=torch.float64),
             "rows": torch.randn(batch, 8, generator=g, dtype=torch.float64)}[add]
    want = x @ W if extra is None else x @ W + extra
    torch.testing.assert_close(blocked_product(extra, x, column_blocks(W, parts)), want, rtol=0, atol=1e-12)


def float32_model(cell, layers=2):
    return model_of(cell, 8, layers).float().eval()


@pytest.mark.parametrize("cell", JOINT)
def test_float32_stepper_equals_step(cell):
    model = float32_model(cell)
    step = model.stepper()
    ids = torch.randint(0, V, (2, 8), generator=torch.Generator().manual_seed(1))
    state_a = state_b = None
    with torch.no_grad():
        for t in range(ids.shape[1]):
            a, state_a = step(ids[:, t], state_a)
            b, state_b = model.step(ids[:, t], state_b)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("add", ["none", "rows"])
def test_bf16_product_rounds_the_weights_and_the_input_only(packed, add, monkeypatch):
    """product(w, "bf16") = add + x W^T with W rounded to bf16; packed (oneDNN), x too and the product rounded to
    bf16 as under autocast (equal to torch's bf16 mm to one bf16 unit); the result float32."""
    if packed and not packs(torch.zeros(4, 4, dtype=torch.bfloat16)):
        pytest.skip("oneDNN's packed bf16 products are not available")
    if not packed:
        monkeypatch.setattr(packing, "packs", lambda w, rows=None: False)
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(48, 32, generator=g), torch.randn(3, 32, generator=g)
    extra = None if add == "none" else torch.randn(3, 48, generator=g)
    got = stepping.product(w, "bf16")(x, extra)
    want = (x.bfloat16() @ w.bfloat16().t()).float() if packed else x @ w.bfloat16().float().t()
    want = want if extra is None else want + extra
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=2 ** -7 if packed else 1e-5, atol=1e-5)
    assert not torch.allclose(got, x @ w.t() if extra is None else x @ w.t() + extra, rtol=0, atol=1e-6)


def _int8_available():
    return "fbgemm" in torch.backends.quantized.supported_engines


@pytest.mark.parametrize("precision", ["bf16", "int8"])
@pytest.mark.parametrize("cell", JOINT)
def test_low_precision_stepper_stays_close_to_float32(cell, precision):
    if precision == "int8" and not _int8_available():
        pytest.skip("torch's fbgemm quantized engine is not in this build")
    model = float32_model(cell)
    fp32, low = model.stepper(), model.stepper(precision)
    ids = torch.randint(0, V, (1, 20), generator=torch.Generator().manual_seed(2))
    state_a = state_b = None
    with torch.no_grad():
        for t in range(ids.shape[1]):
            a, state_a = fp32(ids[:, t], state_a)
            b, state_b = low(ids[:, t], state_b)
            assert b.dtype == torch.float32 and (state_b[0][0] if cell != "rnn" else state_b[0]).dtype == torch.float32
            torch.testing.assert_close(b, a, rtol=0, atol={"bf16": 3e-2, "int8": 5e-2}[precision])
    prime = torch.tensor([1, 2])
    g = torch.Generator().manual_seed(3)
    tokens = list(generate(model, prime, 30, temperature=0.8, precision=precision, generator=g))
    assert len(tokens) == 30 and all(0 <= t < V for t in tokens)


def test_low_precision_generation_is_refused_where_there_is_no_prepared_step():
    with pytest.raises(ValueError, match="bf16 weights need the prepared step, which the rnn, lstm and peephole cells "
                                         r"have in eval mode \(GRU models: generate\(\) with the compiled step, "
                                         r"native_stepper\); this minimal-gru model has no prepared step"):
        generate(model_of("minimal-gru", 4).float(), torch.tensor([1]), 5, precision="bf16")  # refused at the call
    with pytest.raises(ValueError, match="this lstm model is in training mode"):
        model_of("lstm", 4).float().train().stepper("bf16")
    with pytest.raises(ValueError, match="expected precision 'fp32', 'bf16' or 'int8', got 'fp16'"):
        model_of("lstm", 4).float().stepper("fp16")
    with pytest.raises(ValueError, match="int8 weights need the prepared step"):
        model_of("gru", 4).float().stepper("int8")


@pytest.mark.skipif(not _int8_available(), reason="torch's fbgemm quantized engine is not in this build")
@pytest.mark.parametrize("add", ["none", "rows"])
def test_int8_product_quantizes_the_weights_per_row_within_the_bound(add):
    """product(w, "int8") = add + x W^T with W as int8 (scale max|w_n| / 127 per row) and x as 7-bit uint8 per
    tensor: off from the exact product by no more than the two roundings can make it, and not equal to it."""
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(48, 32, generator=g), torch.randn(3, 32, generator=g).tanh()
    w[5] = 0  # a zero row has scale 1, not a division by zero
    extra = None if add == "none" else torch.randn(3, 48, generator=g)
    got = stepping.product(w, "int8")(x, extra)
    exact = x.double() @ w.double().t() + (0 if extra is None else extra.double())
    s_w = w.abs().amax(1).double() / 127  # (48,)
    s_x = (max(x.max().item(), 0) - min(x.min().item(), 0)) / 127
    bound = x.abs().double().sum(1, keepdim=True) * s_w / 2 + w.abs().double().sum(1) * s_x / 2  # (3, 48)
    assert got.dtype == torch.float32 and got.shape == (3, 48)
    assert ((got.double() - exact).abs() <= bound * 1.01 + 1e-5).all()
    assert (got[:, 5].double() == (0 if extra is None else extra[:, 5].double())).all()
    assert not torch.allclose(got.double(), exact, rtol=0, atol=1e-5)  # it did quantize
