"""bAbI reader: the real task files (1k, 10k gzipped, the missing 10k file of task 3), malformed lines named by file
and line, empty stories, answers with several words, the vocabulary (<unk> with one warning), encoding with
max_facts, and padded batches."""
import gzip
import logging
from pathlib import Path

import pytest
import torch

from rnnkit.data.babi import (EOS_ID, PAD_ID, TASK_NAMES, UNK_ID, BabiBatch, BabiBatches, build_vocab, collate, encode,
                              find_root, load_task, parse, read_file, task_file, tokenize)
from rnnkit.data.vocab import Vocab

BABI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "babi" / "tasks_1-20_v1-2"

STORY = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel? \thallway\t4
1 Sandra travelled to the office.
2 Where is Sandra? \toffice\t1
"""


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()}")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tokenize_lower_cases_and_splits_punctuation():
    assert tokenize("Where is Mary?") == ["where", "is", "mary", "?"]
    assert tokenize("The kitchen is north of the office.") == ["the", "kitchen", "is", "north", "of", "the", "office",
                                                               "."]


def test_a_question_sees_the_facts_of_its_story_so_far():
    qs = parse(STORY.splitlines(), "s.txt")
    assert len(qs) == 3
    first, second, third = qs
    assert first.facts == [tokenize("Mary moved to the bathroom."), tokenize("John went to the hallway.")]
    assert first.question == ["where", "is", "mary", "?"] and first.answer == ["bathroom"] and first.supporting == [0]
    assert second.facts[-1] == tokenize("Daniel went back to the hallway.") and len(second.facts) == 3
    assert second.supporting == [2] and second.fact_ids == [1, 2, 4]  # the question line 3 is not a fact
    assert third.facts == [tokenize("Sandra travelled to the office.")]  # IDs restarted: a new story
    assert third.where == "s.txt, line 7" and third.texts == ["Sandra travelled to the office.", "Where is Sandra?"]


def test_real_1k_task_splits_and_first_question():
    splits = load_task(need(BABI), 1)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [900, 100, 1000]
    qa = splits["train"][0]
    assert qa.facts == [["mary", "moved", "to", "the", "bathroom", "."], ["john", "went", "to", "the", "hallway", "."]]
    assert qa.question == ["where", "is", "mary", "?"] and qa.answer == ["bathroom"] and qa.supporting == [0]
    assert splits["valid"][-1].where.endswith("qa1_single-supporting-fact_train.txt, line 3000")


def test_every_1k_test_file_parses_with_valid_supporting_facts():
    root = need(BABI)
    for task in TASK_NAMES:
        questions = read_file(task_file(root, task, "test"))
        assert len(questions) == 1000, task
        assert all(qa.supporting and max(qa.supporting) < len(qa.facts) for qa in questions), task


def test_multi_word_answers_of_tasks_8_and_19():
    root = need(BABI)
    paths = read_file(task_file(root, 19, "test"))
    assert {len(qa.answer) for qa in paths} == {2} and all(set(qa.answer) <= set("nsew") for qa in paths)
    lists = read_file(task_file(root, 8, "train"))
    assert max(len(qa.answer) for qa in lists) >= 2 and ["nothing"] in [qa.answer for qa in lists]


def test_10k_files_are_gzipped_and_extend_the_1k_files():
    root = need(BABI)
    ten = load_task(root, 1, ten_k=True)
    assert [len(ten[s]) for s in ("train", "valid", "test")] == [9000, 1000, 1000]
    assert task_file(root, 1, "train", ten_k=True).suffix == ".gz"
    one = read_file(task_file(root, 1, "train"))
    assert [q.answer for q in ten["train"][:1000]] == [q.answer for q in one]  # the 1k file is a prefix


def test_the_missing_10k_training_file_of_task_3_is_a_clear_error():
    root = need(BABI)
    with pytest.raises(FileNotFoundError, match=r"qa3_three-supporting-facts_train\.txt.*missing.*Use the 1k set"):
        load_task(root, 3, ten_k=True)
    assert len(load_task(root, 3)["train"]) == 900  # the 1k set has it


def test_find_root_accepts_the_set_directory_and_its_parent(tmp_path):
    (tmp_path / "tasks_1-20_v1-2" / "en").mkdir(parents=True)
    assert find_root(tmp_path) == tmp_path / "tasks_1-20_v1-2"
    assert find_root(tmp_path / "tasks_1-20_v1-2" / "en") == tmp_path / "tasks_1-20_v1-2"
    with pytest.raises(FileNotFoundError, match="expected a directory holding en/"):
        find_root(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"qa1_single-supporting-fact_train\.txt\[\.gz\] is missing"):
        task_file(tmp_path, 1, "train")
    for bad in (0, 21, "1", True):
        with pytest.raises(ValueError, match="expected a task number in 1..20"):
            task_file(tmp_path, bad, "train")


@pytest.mark.parametrize("text, message", [
    ("Mary moved.\n", "line 1: expected 'ID text' with a line ID >= 1, got 'Mary moved.'"),
    ("0 Mary moved.\n", "line 1: expected 'ID text' with a line ID >= 1"),
    ("² Mary moved.\n", "line 1: expected 'ID text' with a line ID >= 1"),
    ("1 Mary moved.\n3 John went.\n", "line 2: expected line ID 2 (the next in the story) or 1 (a new story), got 3"),
    ("1 Mary moved.\n2 Where is Mary?\tbathroom\n", "line 2: expected 'ID question<TAB>answer<TAB>supporting fact IDs' "
                                                   "(3 tab-separated fields), got 2"),
    ("1 Mary moved.\n2 Where is Mary?\tbathroom\tone\n", "line 2: expected supporting fact IDs (numbers), got 'one'"),
    ("1 Mary moved.\n2 Where is Mary?\tbathroom\t2\n", "line 2: supporting fact ID 2 is not a fact before this"),
    ("1 Mary moved.\n2 Where?\tx\t1\n3 Where is Mary?\tbathroom\t2\n", "line 3: supporting fact ID 2 is not a fact"),
    ("1 Mary moved.\n2 Where is Mary?\t \t1\n", "line 2: empty answer"),
    ("1 Mary moved.\n2 Where is Mary?\tn,,w\t1\n", "line 2: expected comma-separated answer words, got 'n,,w'"),
    ("1 .\n", None),  # punctuation is a token: a fact of one token is fine
    ("1 \n", "line 1: empty fact (no word after the ID 1)"),
    ("1 Mary moved.\n2 ?!\tx\t1\n", None),
    ("1 Where is Mary?\tbathroom\t\n", "line 1: the question 'where is mary ?' has an empty story"),
    ("1 Mary moved.\n2 Where is Mary?\tbathroom\t1\n1 Where is John?\thallway\t\n", "line 3: the question 'where is "
                                                                                   "john ?' has an empty story"),
    ("", "holds no questions"),
    ("1 Mary moved.\n", "holds no questions"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "qa.txt", text)
    if message is None:
        read_file(path) if "?" in text else parse(text.splitlines(), str(path))
        return
    with pytest.raises(ValueError) as error:
        read_file(path)
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)


def test_empty_fact_and_bad_encodings(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: empty fact \(no word after the ID 2\)"):
        parse(["1 Mary moved.", "2 ", "3 Where?\tx\t1"], "f")
    raw = tmp_path / "latin1.txt"
    raw.write_bytes("1 Zoë moved.\n2 Where is Zoë?\tkitchen\t1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt: not UTF-8 text \(byte offset 4\)"):
        read_file(raw)
    broken = tmp_path / "qa.txt.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"qa.txt.gz: not a readable gzip file"):
        read_file(broken)
    with pytest.raises(FileNotFoundError, match="bAbI file .*nothing.txt not found"):
        read_file(tmp_path / "nothing.txt")
    good = tmp_path / "good.txt.gz"
    good.write_bytes(gzip.compress(STORY.encode()))
    assert len(read_file(good)) == 3


def test_questions_without_answers_for_rnnkit_answer():
    qs = parse(["1 Mary moved to the bathroom.", "2 Where is Mary?", "3 John went to the kitchen.",
                "4 Where is John?\tkitchen"], "stdin", need_answers=False)
    assert [q.answer for q in qs] == [[], ["kitchen"]] and [len(q.facts) for q in qs] == [1, 2]
    with pytest.raises(ValueError, match=r"stdin, line 2: expected .* \(3 tab-separated fields\), got 2"):
        parse(["1 Mary moved to the bathroom.", "2 Where is Mary?\tbathroom"], "stdin")
    assert parse(["1 Mary moved to the bathroom.", "", "2 Where is Mary?"], "s", need_answers=False)[0].facts


def test_vocabulary_and_unknown_words_warn_once(caplog):
    qs = parse(STORY.splitlines(), "s")
    vocab = build_vocab(qs)
    assert vocab.tokens[:3] == ["<pad>", "<unk>", "<eos>"] and vocab.tokens[3:] == sorted(vocab.tokens[3:])
    assert "bathroom" in vocab and "?" in vocab
    new = parse(["1 Mary flew to the moon.", "2 Where is Mary?\tmoon\t1", "1 Mary flew away.",
                 "2 Where is Mary?\tmoon\t1"], "new.txt")
    with caplog.at_level(logging.WARNING, logger="rnnkit.data.babi"):
        encoded = encode(new, vocab, source="new.txt")
    assert len(caplog.records) == 1, caplog.records
    message = caplog.records[0].getMessage()
    assert "new.txt: 3 word(s) outside the" in message and "'moon' (3x)" in message and "<unk>" in message
    assert encoded.unknown == {"flew": 2, "moon": 3, "away": 1}
    assert encoded.facts[0][0].tolist() == [vocab.index["mary"], UNK_ID, vocab.index["to"], vocab.index["the"],
                                            UNK_ID, vocab.index["."]]
    assert encoded.answer[0].tolist() == [UNK_ID]
    with pytest.raises(ValueError, match="expected a vocabulary starting with"):
        encode(new, Vocab.words(["a"]))


def test_max_facts_keeps_the_latest_facts_and_counts_the_cut_stories(caplog):
    qs = parse(STORY.splitlines(), "s")
    vocab = build_vocab(qs)
    with caplog.at_level(logging.WARNING, logger="rnnkit.data.babi"):
        encoded = encode(qs, vocab, max_facts=2, source="s")
    assert [f.shape[0] for f in encoded.facts] == [2, 2, 1] and encoded.cut == 1
    assert encoded.supporting[1].tolist() == [1]  # fact index 2 of 3 -> 1 of the last 2
    assert "kept the last 2 facts of 1 of 3 stories" in caplog.text
    cut = encode(parse(["1 A b.", "2 C d.", "3 E f.", "4 Q?\tx\t1"], "t"), vocab, max_facts=1)
    assert cut.supporting[0].tolist() == []  # its supporting fact was cut: no gate supervision for it
    with pytest.raises(ValueError, match="expected max_facts >= 1"):
        encode(qs, vocab, max_facts=0)


def test_batches_pad_facts_words_and_answers():
    qs = parse(STORY.splitlines(), "s") + parse(["1 The path is n.", "2 How do you go?\tn,w\t1"], "p")
    vocab = build_vocab(qs)
    data = encode(qs, vocab)
    batch = collate(data, [0, 2, 3], decoder=True)
    assert isinstance(batch, BabiBatch) and batch.tokens == 3
    B, rows, W = batch.x.shape
    assert (B, rows) == (3, 2 + 2) and W == 6  # 2 facts at most; the longest sentence has 6 tokens
    assert batch.x[1, 1].tolist() == [0] * W  # the one-fact story's padding fact
    assert batch.x[1, 0, :6].tolist() == data.facts[2][0].tolist()
    assert batch.x[0, 2, :4].tolist() == data.question[0].tolist()  # question row
    ids = [vocab.index[w] for w in ("n", "w")]
    assert batch.x[2, 3, :3].tolist() == [EOS_ID, *ids]  # decoder input: <eos> (start), then the answer
    assert batch.y.tolist()[2] == [*ids, EOS_ID] and batch.y.tolist()[0] == [vocab.index["bathroom"], EOS_ID, PAD_ID]
    assert batch.supporting.tolist() == [[0], [0], [0]]
    one_word = collate(data, [0, 1], decoder=False)
    assert one_word.y.shape == (2, 1) and (one_word.x[:, -1] == 0).all()
    with pytest.raises(ValueError, match=r"p, line 2: a one-word \(softmax\) answer module cannot give the 2-word"):
        BabiBatches(data, 2, decoder=False, where=[q.where for q in qs])


def test_batch_source_is_deterministic_per_epoch_and_covers_every_question():
    qs = parse(STORY.splitlines() * 1, "s") * 5
    data = encode(qs, build_vocab(qs))
    source = BabiBatches(data, 4, decoder=False, seed=3)
    assert len(source) == 4
    first = [b.y.tolist() for b in source.batches(0)]
    assert first == [b.y.tolist() for b in source.batches(0)]
    assert sum(b.x.shape[0] for b in source.batches(1)) == 15
    moved = next(iter(source.batches(0))).to("cpu")
    assert moved.supporting is not None and moved.rows(0, 2).supporting.shape[0] == 2
    with pytest.raises(ValueError, match="expected batch_size >= 1"):
        BabiBatches(data, 0, decoder=False)
    assert torch.equal(next(iter(BabiBatches(data, 4, decoder=False, shuffle=False).batches(0))).x,
                       collate(data, [0, 1, 2, 3], decoder=False).x)
