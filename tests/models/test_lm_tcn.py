"""LanguageModel with cell="tcn": the context state makes chunked streams and step-by-step generation equal
one long forward call; the CLI trains, evaluates and samples a TCN char model."""
import pytest
import torch
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.decode.sample import generate
from rnnkit.layers.tcn import TCN
from rnnkit.models.lm import LanguageModel, LMConfig

V = 9


def tcn_lm(**kw):
    torch.manual_seed(kw.pop("seed", 0))
    return LanguageModel(LMConfig(vocab_size=V, cell="tcn", **{"hidden": 8, "layers": 2, **kw})).eval()


def ids(B=2, T=20, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("embedding", [0, 6])
def test_chunks_with_context_equal_one_forward(embedding):
    model = tcn_lm(embedding=embedding)
    assert isinstance(model.rnn, TCN) and model.rnn.receptive_field == 13
    x = ids(2, 30)
    full, context = model(x)
    assert full.shape == (2, 30, V) and context.shape == (2, 12, embedding or V)
    state, parts = None, []
    for a in range(0, 30, 7):  # chunks of 7 < R - 1 = 12 and a last one of 2
        logits, state = model(x[:, a:a + 7], state)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-6)


def test_step_by_step_equals_one_forward():
    model = tcn_lm()
    x = ids(3, 25)
    full, _ = model(x)
    logits, state = model(x[:, :4])  # a prime shorter than the receptive field
    steps = [logits]
    for t in range(4, 25):
        step_logits, state = model.step(x[:, t], state)
        assert state.shape[1] == min(t + 1, 12)
        steps.append(step_logits[:, None])
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)


def test_generate_samples_from_a_tcn():
    model = tcn_lm()
    out = list(generate(model, ids(1, 5)[0], 15, temperature=0.0))
    assert len(out) == 15 and all(0 <= t < V for t in out)


def test_tcn_lm_bad_input():
    with pytest.raises(ValueError, match="a TCN has no recurrence"):
        LanguageModel(LMConfig(vocab_size=V, cell="tcn", recurrent_dropout=0.1))
    model = tcn_lm()
    with pytest.raises(ValueError, match="a TCN language model reads unpadded streams"):
        model(ids(2, 5), lengths=torch.tensor([5, 3]))
    with pytest.raises(ValueError, match=r"expected a TCN context \(B, W, 9\) with B = 2, got \(3, 4, 9\)"):
        model(ids(2, 5), torch.zeros(3, 4, V))
    with pytest.raises(ValueError, match="expected cell in"):
        LMConfig(vocab_size=V, cell="wavenet")


def test_cli_trains_evaluates_and_generates_a_tcn_char_model(tmp_path):
    text = tmp_path / "abc.txt"
    text.write_text("abcabcabd" * 300)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "charlm", "--data", str(text), "--out", str(run), "--cell", "tcn",
                                 "--hidden", "16", "--layers", "3", "--seq-len", "20", "--batch-size", "8",
                                 "--steps", "60", "--eval-every", "30", "--lr", "0.01", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "validation after 60 steps" in result.stdout
    loss = float(result.stdout.split("loss ")[1].split()[0])
    assert loss < 0.7  # a uniform guess over 4 characters is ln 4 = 1.39 nats
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0 and f"loss {loss:.4f}" in result.stdout, result.output
    result = runner.invoke(app, ["generate", str(run), "--prime", "abca", "--length", "20", "--temperature", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("abca") and len(result.stdout.strip()) == 24
