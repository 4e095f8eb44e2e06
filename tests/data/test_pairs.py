"""Pairs files: tab-separated (.gz, .zip), Multi30k's parallel files; errors with file and line; tokenisers;
the max-length filter counts what it drops; vocabularies; encoding and batches."""
import gzip
import zipfile
from pathlib import Path

import pytest
import torch

from rnnkit.data.pairs import (BOS_ID, EOS_ID, PAD_ID, SPECIALS, PairBatches, Pairs, Processing, build_vocab,
                               encode_pairs, read_multi30k, read_pairs, read_parallel, tokenize_pairs)

TRANSLATION = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "translation"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()}")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_tab_separated_pairs_and_columns(tmp_path):
    path = write(tmp_path / "p.tsv", "Go.\tVa !\tCC-BY\nHi.\tSalut !\tCC-BY\n")
    pairs = read_pairs(path)
    assert pairs.sources == ["Go.", "Hi."] and pairs.targets == ["Va !", "Salut !"]
    assert pairs.where[1] == f"{path}, line 2"
    swapped = read_pairs(path, source_column=1, target_column=0)
    assert swapped.sources == ["Va !", "Salut !"]


def test_gz_and_zip(tmp_path):
    gz = tmp_path / "p.tsv.gz"
    gz.write_bytes(gzip.compress("a b\tc d\n".encode()))
    assert read_pairs(gz).targets == ["c d"]
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("_about.txt", "attribution")
        z.writestr("fra.txt", "Run!\tCours\u202f!\n")
    assert read_pairs(archive).targets == ["Cours\u202f!"]
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as z:
        z.writestr("a.txt", "x\ty\n")
        z.writestr("b.txt", "x\ty\n")
    with pytest.raises(ValueError, match="expected one .txt/.tsv member"):
        read_pairs(tmp_path / "two.zip")


@pytest.mark.parametrize("text, message", [
    ("a\tb\nno tab here\nc\td\n", "line 2: expected 2 tab-separated columns like line 1, got 1"),
    ("only one column\n", "line 1: expected at least 2 tab-separated columns (source<TAB>target), got 1"),
    ("a\tb\n\tb\n", "line 2: empty source (column 1)"),
    ("a\tb\nc\t  \n", "line 2: empty target (column 2)"),
    ("a\tb\n\n", "line 2: expected 2 tab-separated columns like line 1, got 1"),
    ("", "holds no pairs"),
])
def test_malformed_files_name_the_line(tmp_path, text, message):
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(ValueError) as e:
        read_pairs(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"a\tb\nc\t\xff\xfe\n")
    with pytest.raises(ValueError, match=r"invalid UTF-8 at byte offset 6 \(line 2\)"):
        read_pairs(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_pairs(tmp_path / "nope.tsv")
    with pytest.raises(IsADirectoryError, match="needs --langs"):
        read_pairs(tmp_path)


def test_parallel_files(tmp_path):
    src, tgt = write(tmp_path / "train.en", "a dog\na cat\n"), write(tmp_path / "train.de", "ein Hund\neine Katze\n")
    pairs = read_parallel(src, tgt)
    assert pairs.targets == ["ein Hund", "eine Katze"]
    write(tmp_path / "short.de", "ein Hund\n")
    with pytest.raises(ValueError, match="has 2 lines but .* has 1"):
        read_parallel(src, tmp_path / "short.de")
    write(tmp_path / "empty.de", "ein Hund\n \n")
    with pytest.raises(ValueError, match="empty.de, line 2: empty sentence"):
        read_parallel(src, tmp_path / "empty.de")


def test_tokenisers():
    assert Processing("13a").tokens("Cours\u202f! I'm  FINE, thanks.") == ["cours", "!", "i'm", "fine", ",", "thanks", "."]
    assert Processing("space", lower=False).tokens("Hello,  World\u202f!") == ["Hello,", "World", "!"]
    assert Processing("char", lower=False).tokens("5 Mar\u202f2021") == list("5 Mar 2021")
    assert Processing("char").join(list("ab c")) == "ab c" and Processing("13a").join(["a", "."]) == "a ."
    with pytest.raises(ValueError, match="expected tokenizer in"):
        Processing("bpe")


def test_max_len_drops_and_counts():
    pairs = Pairs(["a b c", "a", "x y"], ["b", "a b c d", "z"], ["l1", "l2", "l3"])
    kept, dropped = tokenize_pairs(pairs, Processing("space"), max_len=3)
    assert dropped == 1 and kept.sources == [["a", "b", "c"], ["x", "y"]] and kept.where == ["l1", "l3"]
    with pytest.raises(ValueError, match="l2: the source has no tokens"):
        tokenize_pairs(Pairs(["a", " \u202f "], ["b", "c"], ["l1", "l2"]), Processing("space"))


def test_vocabulary():
    vocab = build_vocab([["b", "a", "b"], ["c", "b", "a"], ["<pad>"]], min_freq=2)
    assert vocab.tokens == SPECIALS + ["b", "a"] and vocab.unk == "<unk>"
    assert build_vocab([["b", "a", "b", "c"]], max_size=5).tokens == SPECIALS + ["b"]
    with pytest.raises(ValueError, match="max_size > 4"):
        build_vocab([["a"]], max_size=4)


def test_encoding_and_batches():
    pairs, _ = tokenize_pairs(Pairs(["a b", "c", "a c b a"], ["x", "y z", "z"], []), Processing("space"))
    src_vocab, tgt_vocab = build_vocab(pairs.sources), build_vocab(pairs.targets)
    enc = encode_pairs(src_vocab, tgt_vocab, pairs)
    a, b = src_vocab.index["a"], src_vocab.index["b"]
    assert enc.src[0].tolist() == [a, b, EOS_ID, PAD_ID, PAD_ID] and enc.src_lengths.tolist() == [3, 2, 5]
    y, z = tgt_vocab.index["y"], tgt_vocab.index["z"]
    assert enc.tgt_in[1].tolist() == [BOS_ID, y, z] and enc.tgt_out[1].tolist() == [y, z, EOS_ID]
    assert enc.tgt_out[0].tolist() == [tgt_vocab.index["x"], EOS_ID, PAD_ID]
    source = PairBatches(enc, 2, seed=3)
    assert len(source) == 2
    first = [b.x for b in source.batches(0)]
    assert all(torch.equal(u, v) for u, v in zip(first, [b.x for b in source.batches(0)]))  # the same epoch again
    ordered = list(PairBatches(enc, 2, shuffle=False).batches(0))
    batch = ordered[0]
    assert batch.x.shape == (2, 2, 3) and batch.y.shape == (2, 3)  # trimmed to this batch's longest
    assert torch.equal(batch.x[:, 0], enc.src[:2, :3]) and torch.equal(batch.x[:, 1], enc.tgt_in[:2])
    assert batch.tokens == 2 + 3  # target tokens, <eos> included
    assert ordered[1].x.shape == (1, 2, 5)


def test_multi30k_standard_split():
    directory = need(TRANSLATION / "multi30k")
    splits = read_multi30k(directory, "en", "de")
    assert {k: len(v) for k, v in splits.items()} == {"train": 29_000, "valid": 1_014, "test": 1_000}
    assert splits["train"].sources[0].startswith("Two young, White males are outside")
    with pytest.raises(FileNotFoundError, match="language 'xx'"):
        read_multi30k(directory, "en", "xx")


def test_manythings_fra_eng_zip():
    pairs = read_pairs(need(TRANSLATION / "manythings_fra_eng" / "fra-eng.zip"))
    assert len(pairs) == 142_787
    assert (pairs.sources[0], pairs.targets[0]) == ("Go.", "Va !")
    assert Processing("13a").tokens(pairs.targets[1]) == ["cours", "!"]  # U+202F before "!" is a space
