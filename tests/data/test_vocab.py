"""Vocab: char and word vocabularies, encode/decode, unknown tokens, the vocab.json round trip."""
import json

import pytest
import torch

from rnnkit.data.vocab import EOS, UNK, Vocab


def test_chars_are_the_sorted_distinct_characters():
    text = "hello, world\nHELLO"
    vocab = Vocab.chars(text)
    assert vocab.tokens == sorted(set(text))
    assert len(vocab) == len(set(text))
    assert vocab.level == "char" and vocab.unk is None and vocab.eos_id is None
    assert all(c in vocab for c in text) and "z" not in vocab


def test_words_specials_first_then_by_frequency_ties_alphabetical():
    tokens = "b a c a b d e e e".split() + [UNK, EOS, UNK]
    vocab = Vocab.words(tokens)
    assert set(vocab.tokens[:2]) == {UNK, EOS}
    assert vocab.tokens[2:] == ["e", "a", "b", "c", "d"]  # e x3; a, b x2 (tie: a < b); c, d x1
    assert vocab.tokens.count(UNK) == 1 and vocab.tokens.count(EOS) == 1  # input specials are not duplicated
    assert vocab.unk == UNK and vocab.level == "word"
    assert vocab.tokens[vocab.eos_id] == EOS


def test_words_min_freq_and_max_size():
    tokens = "b a c a b d e e e".split()
    assert Vocab.words(tokens, min_freq=2).tokens[2:] == ["e", "a", "b"]
    assert Vocab.words(tokens, min_freq=3).tokens[2:] == ["e"]
    capped = Vocab.words(tokens, max_size=4)  # the cap counts <unk> and <eos>
    assert len(capped) == 4 and capped.tokens[2:] == ["e", "a"]
    assert len(Vocab.words(tokens, max_size=100)) == 7
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.words(tokens, min_freq=0)


def test_char_encode_decode_round_trip():
    text = "To be, or not to be:\nthat is the question."
    vocab = Vocab.chars(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert int(ids.min()) >= 0 and int(ids.max()) < len(vocab)
    assert "".join(vocab.decode(ids)) == text
    assert "".join(vocab.decode(ids.tolist())) == text


def test_unknown_characters_are_an_error_listing_them():
    vocab = Vocab.chars("abc")
    with pytest.raises(ValueError) as info:
        vocab.encode("abxyzx")
    message = str(info.value)
    assert "'x'" in message and "'y'" in message and "'z'" in message
    assert "3 token(s)" in message  # distinct unknown characters, each listed once
    assert "'a'" not in message


def test_unknown_words_become_unk():
    vocab = Vocab.words("the cat sat on the mat".split())
    ids = vocab.encode("the dog sat".split())
    assert vocab.decode(ids) == ["the", UNK, "sat"]
    assert int(ids[1]) == vocab.index[UNK]


@pytest.mark.parametrize("vocab", [Vocab.chars("hello world\n"), Vocab.words("a b b c c c".split(), max_size=4)])
def test_json_round_trip(vocab):
    back = Vocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert back.tokens == vocab.tokens and back.unk == vocab.unk and back.level == vocab.level
    assert back.index == vocab.index


@pytest.mark.parametrize("data, expected", [
    ([1, 2, 3], "tokens"),
    ("abc", "tokens"),
    (None, "tokens"),
    ({"words": ["a"]}, "tokens"),
    ({"tokens": 5}, "tokens"),
    ({"tokens": ["a", "b", "a"]}, "duplicates"),
    ({"tokens": []}, "empty"),
    ({"tokens": ["a", "b"], "unk": "<unk>"}, "not in the vocabulary"),
])
def test_from_json_bad_structure_is_a_value_error(data, expected):
    with pytest.raises(ValueError, match=expected):
        Vocab.from_json(data)
