"""Pretrained word vectors (GloVe / word2vec text format) into an embedding matrix."""
import gzip

import pytest
import torch

from rnnkit.data.embeddings import read_vectors, write_vectors
from rnnkit.data.vocab import Vocab

VOCAB = Vocab.words("the cat sat on the mat".split())  # <eos> <unk> the cat mat on sat


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_glove_format(tmp_path):
    path = write(tmp_path / "glove.txt", "the 1 2 3\ncat -4.5 5e-1 6\ndog 7 8 9\n")
    weights, found = read_vectors(path, VOCAB, 3)
    assert weights.shape == (len(VOCAB), 3) and weights.dtype == torch.float32
    assert found == 2
    assert torch.equal(weights[VOCAB.index["the"]], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(weights[VOCAB.index["cat"]], torch.tensor([-4.5, 0.5, 6.0]))
    others = [VOCAB.index[w] for w in ("mat", "on", "sat", "<unk>", "<eos>")]
    assert weights[others].abs().max() < 1  # small random rows for words without a vector
    assert weights[others].abs().sum() > 0


def test_word2vec_header_is_skipped(tmp_path):
    path = write(tmp_path / "w2v.txt", "3 2\nsat 0.25 -1 \nmat 2 3 \nzebra 1 1 \n")  # trailing spaces, as word2vec writes
    weights, found = read_vectors(path, VOCAB, 2)
    assert found == 2
    assert torch.equal(weights[VOCAB.index["sat"]], torch.tensor([0.25, -1.0]))
    assert torch.equal(weights[VOCAB.index["mat"]], torch.tensor([2.0, 3.0]))


def test_gzip_vectors(tmp_path):
    path = tmp_path / "v.txt.gz"
    path.write_bytes(gzip.compress(b"on 1 2\n"))
    weights, found = read_vectors(path, VOCAB, 2)
    assert found == 1 and torch.equal(weights[VOCAB.index["on"]], torch.tensor([1.0, 2.0]))


def test_wrong_dimension_names_the_line(tmp_path):
    path = write(tmp_path / "glove.txt", "the 1 2 3\ncat 1 2\n")
    with pytest.raises(ValueError) as info:
        read_vectors(path, VOCAB, 3)
    message = str(info.value)
    assert "line 2" in message and "2 numbers" in message and "expected 3" in message


def test_file_of_another_dimension_is_an_error_at_line_1(tmp_path):
    path = write(tmp_path / "glove.txt", "the 1 2 3 4\n")
    with pytest.raises(ValueError, match="line 1 has 4 numbers, expected 3"):
        read_vectors(path, VOCAB, 3)


def test_value_that_is_not_a_number_names_the_line(tmp_path):
    path = write(tmp_path / "glove.txt", "zebra 1 1\nthe 1 x\n")
    with pytest.raises(ValueError, match="line 2"):
        read_vectors(path, VOCAB, 2)


def test_no_vocabulary_word_found_is_an_error(tmp_path):
    path = write(tmp_path / "glove.txt", "zebra 1 2\nyak 3 4\n")
    with pytest.raises(ValueError, match="none of the 7 vocabulary words"):
        read_vectors(path, VOCAB, 2)


def test_write_vectors_round_trips_and_leaves_out_special_tokens(tmp_path):
    weights = torch.randn(len(VOCAB), 4)
    assert write_vectors(tmp_path / "v.txt", VOCAB, weights) == len(VOCAB) - 2  # not <eos>, <unk>
    assert "<unk>" not in (tmp_path / "v.txt").read_text()
    back, found = read_vectors(tmp_path / "v.txt", VOCAB, 4)
    assert found == len(VOCAB) - 2
    words = [VOCAB.index[w] for w in ("the", "cat", "mat", "on", "sat")]
    torch.testing.assert_close(back[words], weights[words], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"expected weights \(7, dim\)"):
        write_vectors(tmp_path / "w.txt", VOCAB, torch.zeros(3, 4))
