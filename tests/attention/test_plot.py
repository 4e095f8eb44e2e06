"""The attention heatmap PNG."""
import pytest
import torch

from rnnkit.attention.plot import plot_attention


def test_writes_a_png(tmp_path):
    path = plot_attention(torch.rand(3, 4), ["a", "b", "c", "<eos>"], ["x", "y", "<eos>"], tmp_path / "a.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shape_must_match_the_tokens(tmp_path):
    with pytest.raises(ValueError, match=r"expected weights \(T, S\) = \(2, 4\)"):
        plot_attention(torch.rand(3, 4), ["a", "b", "c", "d"], ["x", "y"], tmp_path / "a.png")
