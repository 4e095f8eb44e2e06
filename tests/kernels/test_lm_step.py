"""The native generation step (csrc/lm_step.c through kernels.lm_step): the same logits, states and draws as the
torch stepper, in float32, bf16 and int8 weights; generate() uses it and gives the same text; it is absent,
with a reason, where it cannot run."""
import ctypes

import pytest
import torch

from rnnkit.decode.sample import generate, next_token
from rnnkit.kernels import lm_step, native
from rnnkit.layers import RNN
from rnnkit.models.lm import LanguageModel, LMConfig

pytestmark = pytest.mark.skipif(lm_step.library() is None,
                                reason=f"no native kernels here: {native.unavailable('lm_step')}")
V = 13


def model_of(cell="lstm", embedding=5, layers=2, hidden=24, seed=0):
    torch.manual_seed(seed)
    model = LanguageModel(LMConfig(vocab_size=V, cell=cell, hidden=hidden, layers=layers, embedding=embedding)).eval()
    with torch.no_grad():
        for p in model.parameters():  # biases and peepholes away from zero, gates away from saturation
            p.add_(torch.randn_like(p) * 0.2)
    return model


def with_activation(model, activation):
    """The model with its Elman stack rebuilt around another φ (LMConfig has no activation)."""
    c = model.config
    torch.manual_seed(1)
    model.rnn = RNN("rnn", c.embedding or c.vocab_size, c.hidden, c.layers, activation=activation).eval()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


NATIVE = ["lstm", "peephole", "gru", "gru-cho", "rnn", "rnn-relu", "rnn-sigmoid", "rnn-identity"]


def native_model(cell, embedding=5, layers=2, hidden=24):
    if cell.startswith("rnn-"):
        return with_activation(model_of("rnn", embedding, layers, hidden), cell[4:])
    return model_of(cell, embedding, layers, hidden)


@pytest.mark.parametrize("cell", NATIVE)
@pytest.mark.parametrize("embedding", [0, 5])
@pytest.mark.parametrize("layers", [1, 3])
def test_native_step_equals_the_torch_step(cell, embedding, layers):
    model = native_model(cell, embedding, layers)
    native_step = model.native_stepper()
    assert native_step is not None
    ids = torch.randint(0, V, (12,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full, state = model(ids[None])
        native_step.load_state(model.rnn.initial_state(1, dtype=torch.float32))
        for t in range(len(ids)):
            logits = native_step.step(int(ids[t]))
            assert (logits - full[0, t]).norm() <= 1e-5 * full[0, t].norm()  # float32's rounding, no more
    for ours, ref in zip(native_step.state(), state):  # (h, c) for an LSTM, h for the others
        for a, b in zip(ours if isinstance(ours, tuple) else [ours], ref if isinstance(ref, tuple) else [ref]):
            assert (a - b).norm() <= 1e-5 * b.norm()


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru-cho", "rnn"])
@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.05), ("int8", 0.05)])
def test_low_precision_weights_stay_close_and_are_really_used(cell, precision, tolerance):
    model = model_of(cell, hidden=64, layers=3)
    exact, low = model.native_stepper(), model.native_stepper(precision)
    start = model.rnn.initial_state(1, dtype=torch.float32)
    exact.load_state(start)
    low.load_state(start)
    for token in [1, 4, 9, 2, 7]:
        a, b = exact.step(token).clone(), low.step(token)
        assert (a - b).abs().max() < tolerance * a.abs().max()
        assert not torch.equal(a, b)  # the rounded weights, not a float32 copy


def test_int8_weights_are_per_row_symmetric():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -0.75]])
    q, scales = lm_step.quantized(w, "int8")
    assert q.dtype == torch.int8 and q.abs().max() == 127
    torch.testing.assert_close(scales, torch.tensor([1.0 / 127, 1.0, 3.0 / 127]))
    assert (q[1] == 0).all()
    assert ((q.float() * scales[:, None] - w).abs() <= scales[:, None] / 2 + 1e-7).all()
    bits, none = lm_step.quantized(w, "bf16")
    assert none is None and bits.dtype == torch.int16
    torch.testing.assert_close(bits.view(torch.bfloat16).float(), w.bfloat16().float(), rtol=0, atol=0)


def test_the_draw_is_next_tokens_inverse_cdf():
    logits = torch.randn(1, 40, generator=torch.Generator().manual_seed(3)) * 3
    for temperature in (0.5, 1.0, 2.0):
        cdf = (logits / temperature).softmax(-1).cumsum(-1)[0]
        for u in torch.rand(300, generator=torch.Generator().manual_seed(4)).tolist():
            expected = min(int((cdf <= u * cdf[-1]).sum()), 39)
            if (cdf - u * cdf[-1]).abs().min() < 1e-6:
                continue  # within rounding of a boundary: either index is right
            assert lm_step.draw(logits[0], temperature, u) == expected
    assert lm_step.draw(logits[0], 0.0, 0.3) == int(logits.argmax())
    assert lm_step.draw(torch.tensor([1.0, 5.0, 5.0]), 0.0, 0.0) == 1  # the first largest, as torch.argmax


def test_a_token_of_probability_zero_is_never_drawn():
    logits = torch.tensor([0.0, float("-inf"), 0.0, float("-inf")])
    draws = {lm_step.draw(logits, 1.0, u) for u in torch.linspace(0, 0.999999, 101).tolist()}
    assert draws == {0, 2}


@pytest.mark.parametrize("cell, precision", [("lstm", "fp32"), ("gru", "fp32"), ("gru-cho", "fp32"), ("rnn", "fp32"),
                                              ("lstm", "bf16"), ("rnn", "bf16")])  # torch's ops have no bf16 GRU step
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_generate_gives_the_torch_paths_text(cell, temperature, precision, monkeypatch):
    """The same text as torch's ops from the same seed. (int8 is not compared: the two paths round the input
    differently, so they are close, not equal; the closeness and bound tests cover it.)"""
    model = model_of(cell, hidden=32)
    prime = torch.tensor([1, 2, 3])
    fast = list(generate(model, prime, 120, temperature=temperature, generator=torch.Generator().manual_seed(5),
                         precision=precision))
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert model.native_stepper(precision) is None
    torch_ops = list(generate(model, prime, 120, temperature=temperature,
                              generator=torch.Generator().manual_seed(5), precision=precision))
    assert fast == torch_ops


def test_generate_stops_after_eos_and_draws_as_many_uniforms(monkeypatch):
    model = model_of(hidden=32)
    g_native, g_torch = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    tokens = list(generate(model, torch.tensor([1]), 200, eos_id=4, generator=g_native))
    assert tokens[-1] == 4 and 4 not in tokens[:-1]
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    reference = list(generate(model, torch.tensor([1]), 200, eos_id=4, generator=g_torch))  # torch's ops
    assert tokens == reference
    assert torch.equal(g_native.get_state(), g_torch.get_state())  # the generator is left where torch's leaves it
    assert list(generate(model, torch.tensor([1]), 0)) == []


def test_the_first_token_is_drawn_from_the_prime_as_before():
    model = model_of(hidden=32)
    with torch.no_grad():
        logits, _ = model(torch.tensor([[3, 1]]))
    expected = int(next_token(logits[:, -1], temperature=0.7, generator=torch.Generator().manual_seed(8)))
    assert list(generate(model, torch.tensor([3, 1]), 1, temperature=0.7,
                         generator=torch.Generator().manual_seed(8))) == [expected]


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru-cho", "rnn"])
def test_thread_count_does_not_change_the_numbers(cell):
    model = model_of(cell, hidden=40)
    out = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            step = model.native_stepper()
            step.load_state(model.rnn.initial_state(1, dtype=torch.float32))
            out.append(torch.stack([step.step(t).clone() for t in (1, 5, 7, 2)]))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("why", ["minimal-gru", "layer-norm-lstm", "jordan", "tcn", "training", "float64"])
def test_no_native_step_where_the_kernel_does_not_apply(why):
    model = model_of(why if why not in ("training", "float64") else "lstm")
    if why == "training":
        model.train()
    if why == "float64":
        model.double()
    assert model.native_stepper() is None
    assert len(list(generate(model, torch.tensor([1]), 5))) == 5  # torch's ops generate instead


def test_load_state_refuses_a_batch():
    step = model_of().native_stepper()
    with pytest.raises(ValueError, match=r"layer 0 \(lstm\): expected a batch-1 state of \(h, c\), each \(1, 24\), "
                                         r"got \[\(3, 24\), \(3, 24\)\]"):
        step.load_state([(torch.zeros(3, 24), torch.zeros(3, 24))] * 2)
    with pytest.raises(ValueError, match=r"layer 0 \(gru\): expected a batch-1 state of h, each \(1, 24\)"):
        model_of("gru").native_stepper().load_state([(torch.zeros(1, 24), torch.zeros(1, 24))] * 2)
    with pytest.raises(ValueError, match="expected a state of 2 layers, got 1"):
        step.load_state([(torch.zeros(1, 24), torch.zeros(1, 24))])


def test_build_is_cached_per_machine_and_reports_a_missing_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    lib, why = native._build("lm_step")
    assert why is None and isinstance(lib, ctypes.CDLL)
    built = list(tmp_path.glob("lm_step-*.so"))
    assert len(built) == 1 and not list(tmp_path.glob("*.so.*")) and not list(tmp_path.glob("tmp*"))
    native._build("lm_step")
    assert list(tmp_path.glob("lm_step-*.so")) == built  # found, not built again
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("RNNKIT_CACHE", str(blocked / "cache"))  # a cache that cannot be made: an answer, not a crash
    lib, why = native._build("lm_step")
    assert lib is None and why.startswith("the C kernels did not build") and "a-file" in why
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    lib, why = native._build("lm_step")
    assert lib is None and "does not run" in why
    monkeypatch.setenv("RNNKIT_NATIVE", "off")
    assert native.library("lm_step") is None and native.unavailable("lm_step") == "turned off by RNNKIT_NATIVE"


def test_a_token_outside_the_vocabulary_is_refused_before_the_kernel_reads_it():
    step = model_of().native_stepper()
    step.load_state(model_of().rnn.initial_state(1))
    with pytest.raises(ValueError, match=r"expected a token in \[0, 13\), got 13"):
        step.step(13)
    with pytest.raises(ValueError, match=r"got -1, 1.0, 0.5"):
        step.sample(-1, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"got 2, -0.5, 0.5"):
        step.sample(2, -0.5, 0.5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_native_step_is_a_snapshot_of_the_weights(cell):
    model = model_of(cell)
    step = model.native_stepper()
    step.load_state(model.rnn.initial_state(1))
    before = step.step(3).clone()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    step.load_state(model.rnn.initial_state(1))
    assert torch.equal(step.step(3), before)


@pytest.mark.parametrize("cell", ["lstm", "peephole", "gru", "gru-cho", "rnn"])
@pytest.mark.parametrize("hidden", [1, 7, 33, 70])
def test_any_width_including_the_vector_loops_tails(cell, hidden):
    """Widths that are not multiples of the kernel's 16-unit pieces or 32-wide bf16 dot products."""
    model = model_of(cell, embedding=3, layers=2, hidden=hidden)
    ids = torch.randint(0, V, (6,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full, _ = model(ids[None])
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 3e-2), ("int8", 5e-2)):
        step = model.native_stepper(precision)
        step.load_state(model.rnn.initial_state(1))
        for t in range(len(ids)):
            logits = step.step(int(ids[t]))
            assert (logits - full[0, t]).norm() <= tolerance * full[0, t].norm() + 1e-6, (precision, t)


def test_int8_error_stays_within_the_rounding_bound():
    """An identity Elman layer read out by an identity head: the logits are the gate pre-activations, so the
    int8 product's error can be checked against its analytic bound, row by row."""
    H = 96
    g = torch.Generator().manual_seed(9)
    wh, h0, table = torch.randn(H, H, generator=g), torch.randn(1, H, generator=g), torch.randn(H, H, generator=g)
    layer = lm_step.Layer("elman", wh, activation="identity")
    step = lm_step.NativeLMStep(lm_step.library(), table, [layer], torch.eye(H), torch.zeros(H), "int8")
    step.load_state([h0])
    got = step.step(5).double()
    exact = table[5].double() + wh.double() @ h0[0].double()
    s_w = wh.abs().amax(1).double() / 127
    s_x = h0.abs().max().double() / 127
    bound = h0.abs().sum().double() * s_w / 2 + wh.abs().sum(1).double() * s_x / 2 + 1e-4
    assert ((got - exact).abs() <= bound).all()
    assert (got - exact).abs().max() > 1e-3  # rounded for real, not a float32 product


@pytest.fixture(scope="module")
def portable():
    """lm_step built without AVX-512 VNNI and BF16: the paths a CPU without them runs (int8 with float inputs,
    bf16 widened to float32)."""
    lib, why = native._build("lm_step", ("-mno-avx512vnni", "-mno-avx512bf16"))
    if lib is None:
        pytest.skip(f"the portable build failed: {why}")
    return lm_step.bind(lib)


@pytest.mark.parametrize("cell", ["lstm", "gru-cho"])
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_the_portable_paths_stay_close(cell, precision, portable, monkeypatch):
    model = model_of(cell, hidden=70)  # 70: tails of every vector loop
    exact = model.native_stepper()
    monkeypatch.setattr(lm_step, "library", lambda: portable)
    low = model.native_stepper(precision)
    assert low.lib is portable
    for step in (exact, low):
        step.load_state(model.rnn.initial_state(1))
    for token in [1, 4, 9, 2, 7]:
        a, b = exact.step(token).clone(), low.step(token)
        assert (a - b).abs().max() < 0.05 * a.abs().max()
        assert not torch.equal(a, b)


def test_portable_int8_rounds_only_the_weights(portable):
    """Without VNNI the input stays float32: the result is the product with the dequantized weights, to float32
    rounding (with VNNI, where the input is rounded to int8 too, it is not)."""
    H = 96
    g = torch.Generator().manual_seed(9)
    wh, h0, table = torch.randn(H, H, generator=g), torch.randn(1, H, generator=g), torch.randn(H, H, generator=g)
    q, scales = lm_step.quantized(wh, "int8")
    weight_only = table[5].double() + (q.double() * scales.double()[:, None]) @ h0[0].double()
    layers = [lm_step.Layer("elman", wh, activation="identity")]
    for lib, rounds_input in ((portable, False), (lm_step.library(), "avx512_vnni" in native._cpu_flags())):
        step = lm_step.NativeLMStep(lib, table, layers, torch.eye(H), torch.zeros(H), "int8")
        step.load_state([h0])
        error = (step.step(5).double() - weight_only).abs().max()
        assert error > 1e-3 if rounds_input else error < 1e-4


def test_a_build_without_openmp_runs_on_one_thread_to_the_same_numbers(monkeypatch):
    """What a compiler without OpenMP (Apple's clang) builds: the pragmas ignored, the same arithmetic."""
    lib, why = native._build("lm_step", ("-fno-openmp",))
    assert lib is not None, why
    model = model_of("gru-cho", hidden=40)
    steps = [model.native_stepper()]
    monkeypatch.setattr(lm_step, "library", lambda: lm_step.bind(lib))
    steps.append(model.native_stepper())
    out = []
    for step in steps:
        step.load_state(model.rnn.initial_state(1))
        out.append(torch.stack([step.step(t).clone() for t in (1, 5, 7, 2)]))
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("top_k, top_p", [(1, None), (3, None), (10, None), (None, 0.3), (None, 0.9), (5, 0.8),
                                          (40, None), (None, 1.0)])
def test_top_k_and_top_p_draw_as_next_token_does(top_k, top_p):
    logits = torch.randn(40, generator=torch.Generator().manual_seed(11)) * 2
    for seed in range(300):
        u = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()  # the uniform next_token draws
        expected = next_token(logits[None], temperature=0.7, top_k=top_k, top_p=top_p,
                              generator=torch.Generator().manual_seed(seed))
        assert lm_step.draw(logits, 0.7, u, top_k, top_p) == int(expected)


def test_top_k_keeps_ties_at_the_kth_value_and_top_p_keeps_the_first():
    logits = torch.tensor([2.0, 1.0, 1.0, 0.0])
    draws = {lm_step.draw(logits, 1.0, u, top_k=2) for u in torch.linspace(0, 0.999, 200).tolist()}
    assert draws == {0, 1, 2}  # the 2nd largest value, 1.0, is shared: both are kept, as torch's masking does
    assert {lm_step.draw(logits, 1.0, u, top_p=0.01) for u in torch.linspace(0, 0.999, 50).tolist()} == {0}
    with pytest.raises(ValueError, match="expected top_k >= 1 and top_p in"):
        lm_step.draw(logits, 1.0, 0.5, top_k=0)


@pytest.mark.parametrize("top_k, top_p", [(5, None), (None, 0.8), (4, 0.9)])
def test_generate_with_top_k_top_p_gives_the_torch_paths_text(top_k, top_p, monkeypatch):
    model = model_of("gru", hidden=32)
    kwargs = dict(temperature=0.9, top_k=top_k, top_p=top_p)
    fast = list(generate(model, torch.tensor([1, 2]), 150, generator=torch.Generator().manual_seed(2), **kwargs))
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert fast == list(generate(model, torch.tensor([1, 2]), 150, generator=torch.Generator().manual_seed(2),
                                 **kwargs))

