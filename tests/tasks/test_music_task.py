"""Polyphonic music: the frame NLL against a hand loop, a tiny model overfits, sampling, and the CLI round trip
`rnnkit train music` (resume included) and `rnnkit sample-music`, with one-line errors for bad files."""
import json
import math

import numpy as np
import pytest
import scipy.io
import torch

from rnnkit.data.music import read_midi
from rnnkit.models.music import MusicModel, MusicModelConfig, frame_nll
from rnnkit.tasks import music

from clikit import cli, one_line_error

TINY = ["--hidden", "16", "--batch-size", "4", "--device", "cpu", "--quiet", "--lr", "0.01"]


def test_frame_nll_equals_a_hand_loop():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 88, dtype=torch.float64)
    y = (torch.rand(2, 4, 88) < 0.2).double()
    lengths = torch.tensor([4, 2])
    total, frames = 0.0, 0
    for b in range(2):
        for t in range(int(lengths[b])):
            for k in range(88):
                p = 1 / (1 + math.exp(-float(logits[b, t, k])))
                total -= math.log(p) if y[b, t, k] else math.log(1 - p)
            frames += 1
    assert float(frame_nll(logits, y, lengths)) == pytest.approx(total / frames, rel=1e-6)
    # all-0.5 predictions: 88 log 2 per frame
    assert float(frame_nll(torch.zeros(1, 3, 88), torch.ones(1, 3, 88))) == pytest.approx(88 * math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match=r"expected logits and targets of one shape, got \(1, 3, 88\) and \(1, 2, 88\)"):
        frame_nll(torch.zeros(1, 3, 88), torch.zeros(1, 2, 88))


@pytest.mark.parametrize("kind", ["lstm", "gru", "tcn"])
def test_tiny_model_overfits_and_samples(kind):
    torch.manual_seed(0)
    model = MusicModel(MusicModelConfig(model=kind, hidden=32))
    roll = torch.zeros(1, 13, 88)
    for t in range(13):  # a repeating three-chord pattern
        roll[0, t, [39, 43, 46] if t % 3 == 0 else ([41, 45] if t % 3 == 1 else [36])] = 1
    x, y = roll[:, :-1], roll[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        loss = frame_nll(model(x)[0], y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5, loss.item()  # from 61 nats (88 log 2) at the start
    assert torch.equal((model(x)[0] > 0).float(), y)  # the most likely next frame is the true one
    out = model.sample(roll[0, :1], 6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (7, 88) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out[1:4] == roll[0, 1:4]).float().mean() > 0.97  # sampled keys mostly follow the pattern
    logits, state = model(x, lengths=torch.tensor([12]))
    assert logits.shape == (1, 12, 88) and (state == () if kind == "tcn" else state != ())
    with pytest.raises(ValueError, match=r"MusicModel: expected frames \(B, T, 88\) floats, got torch.float32 \(1, 12, 87\)"):
        model(torch.zeros(1, 12, 87))


def _write_mat(path, n=(6, 3, 3), T=12):
    rng = np.random.default_rng(0)
    data = {}
    for key, count in zip(("traindata", "validdata", "testdata"), n):
        cell = np.empty((1, count), dtype=object)
        for k in range(count):
            cell[0, k] = (rng.random((T + k, 88)) < 0.05).astype(np.uint8)
        data[key] = cell
    scipy.io.savemat(path, data)
    return path


def test_cli_train_resume_and_sample(tmp_path):
    data, out = _write_mat(tmp_path / "tiny.mat"), tmp_path / "run"
    first = cli("train", "music", "--data", data, "--out", out, "--steps", 6, "--eval-every", 3, *TINY)
    assert "data: train 6 pieces (81 predicted frames), valid 3 pieces" in first.stdout
    assert "test NLL" in first.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "music" and config["model"]["model"] == "lstm"
    resumed = cli("train", "music", "--data", data, "--out", out, "--steps", 10, "--eval-every", 3, "--resume", *TINY)
    assert "of 10)" in resumed.stdout or "step 10" in resumed.stdout
    saved = json.loads((out / "metrics_test.json").read_text())
    again = music.evaluate_run(out)  # the best weights on the same test pieces: the same number
    assert again["nll"] == saved["test_nll"] and (again["pieces"], again["split"]) == (3, "test")
    assert music.evaluate_run(out, split="valid")["nll"] == saved["valid_nll"]
    assert cli("evaluate", out).stdout.strip() == music.describe(again)
    other = cli("evaluate", out, "--data", _write_mat(tmp_path / "other.mat", n=(2, 2, 4))).stdout
    assert "test NLL" in other and "on 4 pieces" in other and "other.mat" in other
    one_line_error(cli("evaluate", out, "--batch-size", 4, ok=False), "music run is evaluated on",
                   "--batch-size does not apply")
    result = cli("sample-music", out, tmp_path / "new.mid", "--length", 8, "--seed", 3)
    assert "new.mid: 9 frames" in result.stdout
    again = cli("sample-music", out, tmp_path / "again.mid", "--length", 8, "--seed", 3)
    assert (tmp_path / "new.mid").read_bytes() == (tmp_path / "again.mid").read_bytes()  # --seed repeats
    assert read_midi(tmp_path / "new.mid").shape[1] == 88
    tcn = cli("train", "music", "--data", data, "--out", tmp_path / "tcn", "--model", "tcn", "--steps", 2, *TINY)
    assert "test NLL" in tcn.stdout


def test_cli_bad_input(tmp_path):
    one_line_error(cli("train", "music", "--data", tmp_path / "none.mat", "--steps", 1, "--quiet", ok=False),
                   "no such file", "none.mat")
    (tmp_path / "bad.mat").write_bytes(b"\x00" * 200)
    one_line_error(cli("train", "music", "--data", tmp_path / "bad.mat", "--steps", 1, "--quiet", ok=False),
                   "not a readable MATLAB .mat file")
    scipy.io.savemat(tmp_path / "keys.mat", {"train": np.zeros((3, 88))})
    one_line_error(cli("train", "music", "--data", tmp_path / "keys.mat", "--steps", 1, "--quiet", ok=False),
                   "expected keys traindata, validdata, testdata", "found train")
    one_line_error(cli("train", "music", "--data", _write_mat(tmp_path / "ok.mat"), "--model", "bogus", "--steps", 1,
                       "--quiet", ok=False), "expected model in", "'bogus'")
    one_line_error(cli("train", "music", "--data", tmp_path / "ok.mat", "--bptt", 5, "--steps", 1, "--quiet", ok=False),
                   "--bptt does not apply")
    one_line_error(cli("sample-music", tmp_path, tmp_path / "x.mid", ok=False), "config.json")
