"""Text files: strict UTF-8 (gzip too) with errors naming the byte offset, contiguous splits, words."""
import gzip

import pytest
import torch
from hypothesis import given, settings, strategies as st

from rnnkit.data.text import read_text, split_contiguous, unspace, words
from rnnkit.data.vocab import EOS


def write(path, data: bytes):
    path.write_bytes(data)
    return path


# ----- read_text ----------------------------------------------------------------------------------

def test_reads_utf8(tmp_path):
    text = "héllo wörld ☃\nzweite Zeile\n"
    assert read_text(write(tmp_path / "a.txt", text.encode("utf-8"))) == text
    assert read_text(str(tmp_path / "a.txt")) == text  # a str path works too


def test_invalid_utf8_names_offset_and_line_and_suggests_replace(tmp_path):
    path = write(tmp_path / "bad.txt", b"abc\ndef\xff\xfeghi\n")
    with pytest.raises(ValueError) as info:
        read_text(path)
    message = str(info.value)
    assert "bad.txt" in message
    assert "byte offset 7" in message and "line 2" in message
    assert "--errors replace" in message


def test_errors_replace_gives_replacement_character(tmp_path):
    path = write(tmp_path / "bad.txt", b"abc\xffdef")
    text = read_text(path, errors="replace")
    assert text == "abc\ufffddef"


def test_unknown_errors_mode(tmp_path):
    with pytest.raises(ValueError, match="'ignore'"):
        read_text(write(tmp_path / "a.txt", b"abc"), errors="ignore")


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        read_text(write(tmp_path / "empty.txt", b""))


def test_directory_is_an_error(tmp_path):
    with pytest.raises(OSError, match="directory"):
        read_text(tmp_path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text(tmp_path / "nope.txt")


def test_reads_gzip(tmp_path):
    text = "gzip ünïcode\n" * 50
    path = write(tmp_path / "a.txt.gz", gzip.compress(text.encode("utf-8")))
    assert read_text(path) == text


def test_gzip_holding_invalid_utf8_names_the_offset_in_the_decompressed_text(tmp_path):
    path = write(tmp_path / "a.txt.gz", gzip.compress(b"ok\nok\n\xc3("))
    with pytest.raises(ValueError, match="byte offset 6 .line 3."):
        read_text(path)


def test_empty_gzip_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        read_text(write(tmp_path / "a.gz", gzip.compress(b"")))


@pytest.mark.parametrize("make", [
    lambda good: b"this is not gzip at all",
    lambda good: good[: len(good) // 2],  # truncated
], ids=["not-gzip", "truncated"])
def test_corrupt_gzip_is_a_value_error(tmp_path, make):
    good = gzip.compress(("some text " * 500).encode())
    with pytest.raises(ValueError, match="not a valid gzip file"):
        read_text(write(tmp_path / "c.txt.gz", make(good)))


def test_gzip_with_damaged_body_is_a_value_error(tmp_path):
    good = bytearray(gzip.compress(("some text " * 500).encode()))
    for i in range(20, 40):  # inside the deflate stream, header intact
        good[i] ^= 0xFF
    with pytest.raises(ValueError, match="not a valid gzip file"):
        read_text(write(tmp_path / "c.txt.gz", bytes(good)))


# ----- split_contiguous ---------------------------------------------------------------------------

def test_split_90_10():
    text = "".join(chr(65 + i % 26) for i in range(1000))
    train, valid = split_contiguous(text, (0.9, 0.1))
    assert len(train) == 900 and len(valid) == 100
    assert train == text[:900] and valid == text[900:]


def test_split_three_ways_covers_everything_without_overlap():
    seq = list(range(101))
    parts = split_contiguous(seq, (0.5, 0.25, 0.25))
    assert sum(parts, []) == seq
    assert [len(p) for p in parts] == [50, 25, 26]  # the last takes the rounding remainder


def test_split_of_a_tensor():
    ids = torch.arange(50)
    a, b = split_contiguous(ids, (0.8, 0.2))
    assert torch.equal(torch.cat([a, b]), ids) and len(a) == 40


def test_split_summing_below_one_leaves_the_rest_out():
    seq = list(range(100))
    a, b = split_contiguous(seq, (0.5, 0.3))
    assert a == seq[:50] and b == seq[50:80]


@given(n=st.integers(0, 300), f=st.floats(0.01, 0.99))
@settings(max_examples=60, deadline=None)
def test_split_is_contiguous_and_complete(n, f):
    seq = list(range(n))
    for fractions in [(f, 1 - f), (f, round(1 - f, 12)), (f / 2, f / 2, 1 - f)]:
        parts = split_contiguous(seq, fractions)
        assert len(parts) == len(fractions)
        assert sum(parts, []) == seq
        assert abs(len(parts[0]) - f * n * (1 if len(fractions) == 2 else 0.5)) <= 1


@pytest.mark.parametrize("fractions", [(), (0.9, 0.2), (0.0, 1.0), (-0.1, 1.1), (1.0, 0.0), (1.5,)])
def test_split_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_contiguous("abcdef", fractions)


# ----- words --------------------------------------------------------------------------------------

def test_words_eos_after_every_nonempty_line():
    text = " the cat  sat\n\n   \non\tthe mat\nlast line without newline"
    assert words(text) == ["the", "cat", "sat", EOS, "on", "the", "mat", EOS,
                           "last", "line", "without", "newline", EOS]


def test_words_of_blank_text_is_empty():
    assert words("\n \n\t\n") == []


# ----- unspace (Mikolov's char-level PTB) ---------------------------------------------------------

def test_unspace_keeps_every_character_including_line_breaks():
    assert unspace("a _ c a t \n t h e \n ") == "a_cat\nthe\n"
    assert unspace("a _ b") == "a_b"  # no trailing space after the last character is fine
    assert unspace("  x ") == " x"  # a space can be a symbol too


def test_unspace_names_the_offset_of_a_missing_space():
    with pytest.raises(ValueError, match=r"corpus.txt: expected a space after every character .* got 'b' at character offset 3"):
        unspace("a _b c ", "corpus.txt")


@given(st.text(min_size=1, max_size=50))
def test_unspace_inverts_spacing(text):
    assert unspace("".join(c + " " for c in text)) == text
