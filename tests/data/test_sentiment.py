"""Sentiment readers: SST trees (SST-2, SST-5, phrases), RT polarity (cp1252, 10 folds), text<TAB>label files,
format detection, and errors naming the file and line. The shared data's standard split sizes when present."""
from pathlib import Path

import pytest
import torch

from rnnkit.data.sentiment import (SST2_LABELS, SST5_LABELS, detect_format, kfold, parse_tree, read_rt, read_sst,
                                   read_sst_file, read_sst_phrases, read_tsv)

SENTIMENT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sentiment"

TREES = """(3 (2 It) (4 (2 's) (4 great)))
(1 (2 A) (1 (1 dull) (2 (2 -LRB-) (2 film) (2 -RRB-))))
(2 (2 It) (2 exists))
(0 (0 Awful) (2 co-writer\\/director))
"""


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()}")
    return path


def test_parse_tree_words_and_nodes():
    words, nodes = parse_tree("(3 (2 It) (4 (2 's) (4 great)))")
    assert words == ["It", "'s", "great"]
    assert nodes[-1] == (3, 0, 3)  # the root last
    assert (4, 1, 3) in nodes and (2, 0, 1) in nodes
    assert parse_tree("(2 (2 -LRB-) (2 a) (2 -RRB-) (2 ``) (2 b\\/c) (2 ''))")[0] == ["(", "a", ")", '"', "b/c", '"']


@pytest.mark.parametrize("line, message", [
    ("(3 (2 It) (4 great)", r"1 '\(' not closed"),
    ("(3 (2 It)) (4 x))", "a second one"),
    ("(3 (2 It)))", r"'\)' without '\('"),
    ("(7 (2 It))", "expected a sentiment label 0-4 after '\\(', got '7'"),
    ("It (2 x)", "expected '\\(' to open a tree, got 'It'"),
    ("(2 (2 ) )", "no words"),
])
def test_malformed_trees(line, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_tree(line, "f.txt:9")
    assert str(info.value).startswith("f.txt:9: ")


def test_sst2_drops_neutral_and_sst5_keeps_all(tmp_path):
    (tmp_path / "t.txt").write_text(TREES)
    sst2 = read_sst_file(tmp_path / "t.txt")
    assert sst2.texts == ["It 's great", "A dull ( film )", "Awful co-writer/director"]
    assert sst2.labels == [1, 0, 0] and sst2.label_names == SST2_LABELS
    assert sst2.where[2] == f"{tmp_path / 't.txt'}:4"
    sst5 = read_sst_file(tmp_path / "t.txt", binary=False)
    assert sst5.labels == [3, 1, 2, 0] and sst5.label_names == SST5_LABELS


def test_phrases_are_every_distinct_labelled_node(tmp_path):
    (tmp_path / "t.txt").write_text(TREES)
    phrases = read_sst_phrases(tmp_path / "t.txt")
    by_text = dict(zip(phrases.texts, phrases.labels))
    assert by_text["It 's great"] == 1 and by_text["great"] == 1 and by_text["dull"] == 0
    assert "It" not in by_text  # neutral
    assert len(phrases.texts) == len(set(phrases.texts))
    assert len(read_sst_phrases(tmp_path / "t.txt", binary=False)) > len(phrases)


def test_a_bad_tree_names_its_file_and_line(tmp_path):
    (tmp_path / "t.txt").write_text(TREES + "(5 (2 x))\n")
    with pytest.raises(ValueError, match=r"t.txt:5: expected a sentiment label 0-4"):
        read_sst_file(tmp_path / "t.txt")


def test_rt_reads_cp1252_and_needs_both_files(tmp_path):
    (tmp_path / "rt-polarity.pos").write_bytes("a touching film \xe9 la fran\xe7aise\nfun\n".encode("cp1252"))
    (tmp_path / "rt-polarity.neg").write_bytes(b"dull\n")
    data = read_rt(tmp_path)
    assert data.texts == ["dull", "a touching film é la française", "fun"]
    assert data.labels == [0, 1, 1] and data.label_names == ["negative", "positive"]
    (tmp_path / "rt-polarity.neg").write_bytes(b"dull\n\nbad\n")
    with pytest.raises(ValueError, match=r"rt-polarity.neg:2: empty text"):
        read_rt(tmp_path)
    (tmp_path / "rt-polarity.neg").unlink()
    with pytest.raises(FileNotFoundError, match="rt-polarity.neg: no such file"):
        read_rt(tmp_path)


def test_kfold_partitions_every_example_once():
    tests = [kfold(23, k, 10, seed=0)[1] for k in range(10)]
    assert sorted(torch.cat(tests).tolist()) == list(range(23))
    train, test = kfold(23, 3, 10, seed=0)
    assert set(train.tolist()).isdisjoint(test.tolist()) and len(train) + len(test) == 23
    assert torch.equal(kfold(23, 3, 10, seed=0)[1], test)  # seeded
    with pytest.raises(ValueError, match=r"fold in \[0, 10\), got 10"):
        kfold(23, 10)


def test_tsv_labels_sorted_or_given(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("Loved it\t1\nCrust is not good.\t0\r\nmeh\t1\n")
    data = read_tsv(path)
    assert data.label_names == ["0", "1"] and data.labels == [1, 0, 1]
    assert data.texts[1] == "Crust is not good."
    data = read_tsv(path, label_names=["1", "0"])
    assert data.labels == [0, 1, 0]


@pytest.mark.parametrize("content, message", [
    ("good\tpos\nbad\tneutral\n", r"d.tsv:2: unknown label 'neutral'; expected one of 'neg', 'pos'"),
    ("good\tpos\n\tneg\n", r"d.tsv:2: empty text \(label 'neg'\)"),
    ("good\tpos\nbad neg\n", r"d.tsv:2: expected 'text<TAB>label', got no tab in 'bad neg'"),
    ("good\tpos\n\nbad\tneg\n", r"d.tsv:2: expected 'text<TAB>label'"),
    ("good\tpos\nbad\t\n", r"d.tsv:2: empty label after the tab"),
])
def test_tsv_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "d.tsv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_tsv(path, label_names=["neg", "pos"])


def test_tsv_needs_two_classes(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("a\tx\nb\tx\n")
    with pytest.raises(ValueError, match="at least 2 classes, got only label 'x'"):
        read_tsv(path)


def test_detect_format(tmp_path):
    (tmp_path / "f.tsv").write_text("a\t1\n")
    assert detect_format(tmp_path / "f.tsv") == "tsv"
    sst = tmp_path / "sst"
    sst.mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (sst / name).write_text(TREES)
    assert detect_format(sst) == "sst"
    rt = tmp_path / "rt"
    rt.mkdir()
    (rt / "rt-polarity.pos").write_text("a\n")
    (rt / "rt-polarity.neg").write_text("b\n")
    assert detect_format(rt) == "rt"
    with pytest.raises(ValueError, match="expected an SST directory .* got a directory holding f.tsv, rt, sst"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "nope")


def test_shared_sst_standard_splits():
    sst = read_sst(need(SENTIMENT / "sst"))
    assert {k: len(v) for k, v in sst.items()} == {"train": 6920, "valid": 872, "test": 1821}
    sst5 = read_sst(SENTIMENT / "sst", binary=False)
    assert {k: len(v) for k, v in sst5.items()} == {"train": 8544, "valid": 1101, "test": 2210}
    assert sst["test"].counts() == {"negative": 912, "positive": 909}


def test_shared_rt_polarity():
    data = read_rt(need(SENTIMENT / "rt_polarity"))
    assert data.counts() == {"negative": 5331, "positive": 5331}
    assert data.texts[5331] == ("the rock is destined to be the 21st century's new \" conan \" and that he's going "
                                "to make a splash even greater than arnold schwarzenegger , jean-claud van damme or "
                                "steven segal .")


def test_shared_uci_sentences_read_as_tsv():
    data = read_tsv(need(SENTIMENT / "uci_sentiment_labelled_sentences" / "yelp_labelled.txt"))
    assert len(data) == 1000 and data.counts() == {"0": 500, "1": 500}


def test_shared_sst2_phrases():
    phrases = read_sst_phrases(need(SENTIMENT / "sst") / "train.txt")
    assert len(phrases) == 77_616 and phrases.counts() == {"negative": 34_944, "positive": 42_672}
