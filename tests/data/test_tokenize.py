"""Word tokenisation, the vocabulary capped at max_words, padding and counted truncation, JSON round trip."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.tokenize import PAD, Tokenizer, word_tokens
from rnnkit.data.vocab import UNK, Vocab


@pytest.mark.parametrize("text, tokens", [
    ("It's a GREAT film!", ["it's", "a", "great", "film", "!"]),
    ("co-writer/director , 21st century 's", ["co-writer", "/", "director", ",", "21st", "century", "'s"]),
    ("  café  ", ["café"]),
    ("", []),
    (" \t ", []),
])
def test_word_tokens(text, tokens):
    assert word_tokens(text) == tokens


def test_word_tokens_can_keep_case():
    assert word_tokens("The Rock", lower=False) == ["The", "Rock"]


def test_fit_keeps_pad_unk_then_the_most_frequent_words():
    tok = Tokenizer.fit(["b b b a a c", "c c d"], max_words=5, max_len=10)
    assert tok.vocab.tokens == [PAD, UNK, "b", "c", "a"]  # d is the rarest; ties would go alphabetically
    assert len(tok) == 5 and tok.pad_id == 0 and tok.unk_id == 1


def test_encode_pads_counts_truncation_and_maps_unknown_words():
    tok = Tokenizer.fit(["good film", "bad film"], max_words=10, max_len=3)
    e = tok.encode(["good film", "bad", "good bad film awful !"])
    assert e.ids.tolist() == [[4, 2, 0], [3, 0, 0], [4, 3, 2]]  # film=2, bad=3, good=4; cut to 3 tokens
    assert e.lengths.tolist() == [2, 1, 3]
    assert e.truncated == 1 and e.longest == 5
    assert tok.encode(["awful"]).ids.tolist() == [[1]]  # <unk>


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(["a", "b", "c", "d", "!"]), min_size=1, max_size=9), min_size=1,
                      max_size=6), max_len=st.integers(1, 8))
def test_property_lengths_and_truncation(texts, max_len):
    tok = Tokenizer.fit([" ".join(t) for t in texts], max_words=4, max_len=max_len)
    e = tok.encode([" ".join(t) for t in texts])
    assert e.lengths.tolist() == [min(len(t), max_len) for t in texts]
    assert e.truncated == sum(len(t) > max_len for t in texts)
    assert e.ids.shape == (len(texts), int(e.lengths.max()))
    for row, n in zip(e.ids, e.lengths):
        assert torch.all(row[n:] == 0) and torch.all(row[:n] != 0)


def test_empty_text_is_an_error_naming_it():
    tok = Tokenizer.fit(["a b"], max_words=5, max_len=4)
    with pytest.raises(ValueError, match=r"valid\[1\]: empty text \(no word or punctuation token\): '  '"):
        tok.encode(["a", "  "], source="valid")


def test_json_round_trip():
    tok = Tokenizer.fit(["Good film", "bad film"], max_words=10, max_len=7, lower=False)
    back = Tokenizer.from_json(tok.to_json())
    assert back.vocab.tokens == tok.vocab.tokens and back.max_len == 7 and back.lower is False
    assert torch.equal(back.encode(["Good bad"]).ids, tok.encode(["Good bad"]).ids)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_words to be an int >= 3"):
        Tokenizer.fit(["a"], max_words=2, max_len=5)
    with pytest.raises(ValueError, match="max_len to be an int >= 1, got 0"):
        Tokenizer.fit(["a"], max_words=5, max_len=0)
    with pytest.raises(ValueError, match="hold no word tokens"):
        Tokenizer.fit(["   "], max_words=5, max_len=5)
    with pytest.raises(ValueError, match="a vocabulary starting with '<pad>', '<unk>'"):
        Tokenizer(Vocab(["<eos>", UNK, "a"], unk=UNK), max_len=3)
    with pytest.raises(ValueError, match="needs max_len, lower and vocab"):
        Tokenizer.from_json({"vocab": {}})
