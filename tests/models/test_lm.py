"""LanguageModel: shapes, one-hot vs embedding inputs, tied weights, step == forward, overfits a batch."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.layers import KINDS
from rnnkit.models.lm import LanguageModel, LMConfig

V = 11


def model_of(**kw):
    torch.manual_seed(kw.pop("seed", 0))
    return LanguageModel(LMConfig(vocab_size=kw.pop("vocab_size", V), **{"hidden": 8, "layers": 2, **kw}))


def ids(B=3, T=7, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("embedding", [0, 5])
def test_shapes(embedding):
    model = model_of(embedding=embedding, hidden=8, layers=2)
    logits, state = model(ids(3, 7))
    assert logits.shape == (3, 7, V) and logits.dtype == torch.float32
    assert isinstance(state, list) and len(state) == 2
    step_logits, step_state = model.step(ids(3, 1)[:, 0])
    assert step_logits.shape == (3, V) and len(step_state) == 2


def test_one_hot_and_embedding_inputs():
    one_hot = model_of(embedding=0)
    assert one_hot.embed is None and one_hot.rnn.input_size == V
    x = ids(2, 4)
    assert torch.equal(one_hot.inputs(x), F.one_hot(x, V).float())
    embedded = model_of(embedding=5)
    assert embedded.rnn.input_size == 5
    assert torch.equal(embedded.inputs(x), embedded.embed.weight[x])


def test_one_hot_model_equals_embedding_model_with_identity_embedding():
    one_hot = model_of(embedding=0, cell="gru")
    embedded = model_of(embedding=V, cell="gru", seed=5)
    state = {k: v for k, v in one_hot.state_dict().items()}
    state["embed.weight"] = torch.eye(V)
    embedded.load_state_dict(state)
    x = ids(3, 6)
    torch.testing.assert_close(embedded(x)[0], one_hot(x)[0])


def test_tie_weights_shares_one_parameter():
    model = model_of(embedding=8, hidden=8, tie_weights=True)
    assert model.head.weight is model.embed.weight
    untied = model_of(embedding=8, hidden=8)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(untied) - n(model) == V * 8
    logits, _ = model(ids())
    logits.sum().backward()
    assert model.embed.weight.grad is not None and model.head.weight.grad is model.embed.weight.grad


@pytest.mark.parametrize("embedding, hidden", [(8, 16), (0, 8)])
def test_tie_weights_needs_embedding_equal_to_hidden(embedding, hidden):
    with pytest.raises(ValueError, match="tie_weights needs embedding == hidden"):
        LMConfig(vocab_size=V, embedding=embedding, hidden=hidden, tie_weights=True)


@pytest.mark.parametrize("kw, expected", [
    ({"cell": "nope"}, "'nope'"), ({"hidden": 0}, "hidden"), ({"layers": 0}, "layers"),
    ({"embedding": -1}, "embedding"), ({"vocab_size": 0}, "vocab_size"),
])
def test_config_errors(kw, expected):
    with pytest.raises(ValueError, match=expected):
        LMConfig(**{"vocab_size": V, **kw})


@pytest.mark.parametrize("cell", sorted(KINDS))
@pytest.mark.parametrize("embedding", [0, 6])
def test_step_by_step_equals_forward(cell, embedding):
    model = model_of(cell=cell, embedding=embedding, hidden=8, layers=2).eval()
    x = ids(3, 9)
    full, full_state = model(x)
    # the first 4 steps by forward, then token by token from its state
    logits, state = model(x[:, :4])
    outs = [logits]
    for t in range(4, 9):
        step_logits, state = model.step(x[:, t], state)
        outs.append(step_logits.unsqueeze(1))
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    # and entirely by step from the initial state
    state, outs = None, []
    for t in range(9):
        step_logits, state = model.step(x[:, t], state)
        outs.append(step_logits)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=1e-5)
    for a, b in zip(torch.utils._pytree.tree_leaves(state), torch.utils._pytree.tree_leaves(full_state)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=12, cell="lstm", hidden=32, layers=1, embedding=16))
    x = torch.randint(0, 12, (4, 21), generator=torch.Generator().manual_seed(0))
    inputs, targets = x[:, :-1], x[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, 12), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool, torch.uint8])
def test_non_index_dtype_is_a_type_error(dtype):
    model = model_of(embedding=4)
    with pytest.raises(TypeError, match="integer token ids"):
        model(ids().to(dtype))
    with pytest.raises(TypeError, match="integer token ids"):
        model.step(ids()[:, 0].to(dtype))


def test_int32_ids_equal_int64_ids():
    for embedding in (0, 4):
        model = model_of(embedding=embedding)
        x = ids()
        torch.testing.assert_close(model(x.int())[0], model(x)[0])


def test_forward_needs_2d_ids():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model_of()(ids()[0])
