"""Hierarchical attention network: the review reader on the real archive, the model's attention (sums, padding,
invariance), a tiny model overfits, the CLI round trip (train, resume, HTML view, han-attention) on a small
synthetic archive, and bad input."""
import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from rnnkit.data.reviews import read_reviews
from rnnkit.models.han import HAN, HANConfig
from rnnkit.tasks import han

from clikit import cli, one_line_error

REVIEWS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sentiment" / "movie_review_polarity" / \
    "review_polarity.tar.gz"
TINY = ["--embedding", "16", "--hidden", "8", "--attention", "8", "--batch-size", "8", "--device", "cpu", "--quiet",
        "--lr", "0.01"]


@pytest.mark.skipif(not REVIEWS.is_file(), reason=f"Pang & Lee's reviews are not at {REVIEWS}")
def test_real_archive_and_its_folds():
    reviews = read_reviews(REVIEWS)
    assert len(reviews) == 2000 and sum(r.label for r in reviews) == 1000
    assert all(sum(r.fold == k for r in reviews) == 200 for k in range(10))
    first = reviews[0]
    assert first.name == "txt_sentoken/neg/cv000_29416.txt" and first.fold == 0 and len(first.sentences) == 35
    splits = han.split_reviews(reviews, fold=3)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [1620, 180, 200]
    assert all(r.name.split("/cv")[1].startswith("3") for r in splits["test"])


def _docs(vocab=12):
    torch.manual_seed(0)
    x = torch.zeros(3, 4, 5, dtype=torch.long)
    x[0, 0, :3], x[0, 1, :5], x[0, 2, :1] = 2, 3, 4  # 3 sentences
    x[1, 0, :2] = 5  # 1 sentence
    x[2, :4, :4] = torch.randint(1, vocab, (4, 4))  # 4 full sentences
    return x


def test_attention_weights_sum_to_one_over_real_words_and_sentences():
    model = HAN(HANConfig(vocab_size=12, embedding=6, hidden=4, attention=5)).eval()
    x = _docs()
    logits, alpha_w, alpha_s = model.attend(x)
    assert logits.shape == (3, 1) and alpha_w.shape == (3, 4, 5) and alpha_s.shape == (3, 4)
    torch.testing.assert_close(alpha_s.sum(1), torch.ones(3))
    assert alpha_s[0, 3] == 0 and (alpha_s[1, 1:] == 0).all()
    real = alpha_w.sum(-1)
    torch.testing.assert_close(real[0, :3], torch.ones(3))
    assert (alpha_w[x == 0] == 0).all()
    # padding changes nothing: each document alone, cut to its own size, gives the same logit
    for b, (S, W) in enumerate([(3, 5), (1, 2), (4, 4)]):
        alone, _ = model(x[b:b + 1, :S, :W])
        torch.testing.assert_close(alone, logits[b:b + 1], atol=1e-6, rtol=1e-5)
    padded, _ = model(torch.nn.functional.pad(x, (0, 3, 0, 2)))
    torch.testing.assert_close(padded, logits, atol=1e-6, rtol=1e-5)


def test_sentence_vector_is_the_attention_weighted_sum():
    model = HAN(HANConfig(vocab_size=12, embedding=6, hidden=4, attention=5)).eval()
    x = _docs()[:1, :1, :3]  # one sentence of three words
    h, _ = model.word_encoder(model.embed(x[0]))
    u = torch.tanh(model.word_attention.proj(h[0]))  # (3, 5)
    alpha = torch.softmax(model.word_attention.score(u).squeeze(-1), 0)
    _, alpha_w, _ = model.attend(x)
    torch.testing.assert_close(alpha_w[0, 0], alpha)


def test_tiny_han_overfits():
    torch.manual_seed(0)
    model = HAN(HANConfig(vocab_size=12, embedding=8, hidden=8, attention=8))
    x = torch.randint(1, 12, (8, 3, 4))
    y = torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[0][:, 0], y.float())
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_bad_model_input():
    model = HAN(HANConfig(vocab_size=12))
    with pytest.raises(ValueError, match=r"HAN: expected documents \(B, S, W\) of integer ids, got torch.float32 \(2, 3\)"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expected ids in \[0, 12\), got values in \[1, 12\]"):
        model(torch.tensor([[[1, 12]]]))
    with pytest.raises(ValueError, match="document 1 has no word"):
        model(torch.tensor([[[1, 2]], [[0, 0]]]))
    with pytest.raises(ValueError, match="padding only after the words"):
        model(torch.tensor([[[0, 2]]]))


def _archive(path, n=12):
    words = {1: "a great wonderful film , loved it", 0: "a dull awful film , hated it"}
    with tarfile.open(path, "w:gz") as tar:
        for k in range(n):
            label = k % 2
            text = f"the story of number {k} .\n{words[label]} .\nthe end .\n"
            data = text.encode()
            info = tarfile.TarInfo(f"txt_sentoken/{'pos' if label else 'neg'}/cv{k * 80:03d}_{k}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cli_train_resume_html_and_inspect(tmp_path):
    data, out = _archive(tmp_path / "reviews.tar.gz"), tmp_path / "run"
    first = cli("train", "han", "--data", data, "--out", out, "--steps", 30, "--eval-every", 15, "--html-docs", 2, *TINY)
    assert "data: test fold 0: train" in first.stdout and "test 2 reviews (6 sentences)" in first.stdout
    page = (out / "attention_test.html").read_text()
    assert page.count("<h2>") == 2 and "rgba(220,40,40," in page and ("wonderful" in page or "awful" in page)
    report = json.loads((out / "metrics_test.json").read_text())
    assert report["accuracy"] == 1.0, first.stdout  # the two words decide it
    cli("train", "han", "--data", data, "--out", out, "--steps", 35, "--eval-every", 15, "--resume", *TINY)
    report = json.loads((out / "metrics_test.json").read_text())
    assert han.evaluate_run(out) == report  # the best weights on the same test fold: the same report
    assert han.evaluate_run(out, split="valid") == json.loads((out / "metrics_valid.json").read_text())
    shown = cli("evaluate", out).stdout
    assert shown.strip() == han.describe(report) and shown.startswith("test: accuracy 1.0000, macro F1 1.0000 on 2 "
                                                                      "reviews")
    one_line_error(cli("evaluate", out, "--data", data, ok=False), "han run is evaluated on the test fold of its "
                   "reviews; --data does not apply")
    doc = tmp_path / "doc.txt"
    doc.write_text("it was a great wonderful film .\nloved it .\n")
    result = cli("han-attention", out, doc, "--html", tmp_path / "doc.html")
    label, prob = result.stdout.splitlines()[0].split("\t")
    assert label == "positive" and float(prob) > 0.5
    assert "most attended sentence" in result.stdout and (tmp_path / "doc.html").is_file()


def test_cli_bad_input(tmp_path):
    one_line_error(cli("train", "han", "--data", tmp_path / "none.tar.gz", "--steps", 1, "--quiet", ok=False),
                   "no such file or directory", "none.tar.gz")
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b garbage")
    one_line_error(cli("train", "han", "--data", tmp_path / "bad.tar.gz", "--steps", 1, "--quiet", ok=False),
                   "not a readable tar archive")
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    one_line_error(cli("train", "han", "--data", tmp_path / "empty.tar.gz", "--steps", 1, "--quiet", ok=False),
                   "expected txt_sentoken/pos/cv###_*.txt", "found none")
    one_line_error(cli("train", "han", "--data", _archive(tmp_path / "r.tar.gz"), "--fold", 10, "--steps", 1,
                       "--quiet", ok=False), "expected fold in [0, 10), got 10")


def test_pretrained_vectors_initialise_the_embedding(tmp_path):
    data = _archive(tmp_path / "reviews.tar.gz")
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("2 16\nwonderful " + " ".join(["0.5"] * 16) + "\nawful " + " ".join(["-0.5"] * 16) + "\n")
    task = han.HANTask(str(data), pretrained=str(vectors))
    cfg = han.TrainConfig(steps=1, batch_size=8, device="cpu", quiet=True, eval_every=0, optimizer="sgd", lr=1e-9)
    han.train(task, {"embedding": 16, "hidden": 8, "attention": 8}, cfg, tmp_path / "run", html_docs=0)
    model, tokenizer, config = han.load(tmp_path / "run", best=False)
    weight = model.embed.weight.detach()
    assert config["data"]["pretrained"] == str(vectors)
    torch.testing.assert_close(weight[tokenizer.vocab.index["wonderful"]], torch.full((16,), 0.5))
    torch.testing.assert_close(weight[tokenizer.vocab.index["awful"]], torch.full((16,), -0.5))
    assert (weight[0] == 0).all()  # <pad> stays zero
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("wonderful 0.1 0.2\n")
    one_line_error(cli("train", "han", "--data", data, "--out", tmp_path / "r2", "--steps", 1, "--pretrained", wrong,
                       *TINY, ok=False), "line 1 has 2 numbers, expected 16")


def test_sentence_classifier_is_the_han_word_level_with_its_own_head():
    from rnnkit.models.han import SentenceClassifier

    torch.manual_seed(0)
    model = HAN(HANConfig(vocab_size=12, embedding=6, hidden=4, attention=5)).eval()
    clf = SentenceClassifier(model).eval()
    x = _docs()[0, :3]  # (3, 5): sentences of 3, 5 and 1 words
    logits, _ = clf(x)
    s, alpha = model.encode_sentences(x, torch.tensor([3, 5, 1]))
    torch.testing.assert_close(logits, clf.head(s))
    _, alpha_w, _ = model.attend(_docs()[:1])
    torch.testing.assert_close(alpha, alpha_w[0, :3])  # the same word level as the documents'
    torch.testing.assert_close(clf(x[1:2])[0], logits[1:2])  # padding changes nothing
    before = model.embed.weight.detach().clone()
    opt = torch.optim.SGD(clf.parameters(), lr=1.0)
    clf(x)[0].sum().backward()
    opt.step()
    assert not torch.equal(model.embed.weight, before)  # it trains the HAN's own embedding
    with pytest.raises(ValueError, match=r"expected sentences \(B, W\) of integer ids, got torch.int64 \(3, 4, 5\)"):
        clf(_docs())
    with pytest.raises(ValueError, match="sentence 1 has no word"):
        clf(torch.tensor([[1, 2], [0, 0]]))
    with pytest.raises(ValueError, match="padding only after the words"):
        clf(torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match=r"expected lengths equal to the words before the padding, got \[1\] for "
                                         r"\[2\]"):
        clf(torch.tensor([[1, 2]]), lengths=torch.tensor([1]))


def _rt(directory, pos, neg):
    directory.mkdir()
    (directory / "rt-polarity.pos").write_bytes("".join(s + "\n" for s in pos).encode("cp1252"))
    (directory / "rt-polarity.neg").write_bytes("".join(s + "\n" for s in neg).encode("cp1252"))
    return directory


def test_leave_out_overlap_with_held_out_reviews():
    from rnnkit.data.reviews import Review
    from rnnkit.data.sentiment import LabelledTexts

    held = [Review("r", 1, 0, ["one two three four five six seven eight nine .", "short one ."])]
    texts = ["x one two three four five six seven eight y",  # 8 words in a row: out
             "x one two three four five six seven y",  # 7: kept
             "Short, one!",  # a held-out sentence (case and punctuation aside): out
             "short one two"]  # not a held-out sentence, under 8 words: kept
    kept, dropped = han.leave_out_overlap(LabelledTexts(texts, [1, 0, 1, 0], ["negative", "positive"]), held)
    assert kept.texts == [texts[1], texts[3]] and kept.labels == [0, 0] and dropped == ["text 0", "text 2"]


def test_pretrain_reads_rt_sst_and_tsv_and_refuses_other_labels(tmp_path):
    rt = han.read_pretrain_sentences(_rt(tmp_path / "rt", ["good ."], ["bad .", "worse ."]))
    assert rt.texts == ["bad .", "worse .", "good ."] and rt.labels == [0, 0, 1]
    sst = tmp_path / "sst"
    sst.mkdir()
    (sst / "train.txt").write_text("(3 (2 a) (4 (4 fine) (2 film)))\n(1 (2 a) (0 dull))\n")
    (sst / "dev.txt").write_text("(4 (4 fine) (2 film))\n")  # seen in train: kept once
    (sst / "test.txt").write_text("(2 (2 so) (2 so))\n")  # neutral: dropped
    phrases = han.read_pretrain_sentences(sst)
    assert sorted(zip(phrases.texts, phrases.labels)) == [("a dull", 0), ("a fine film", 1), ("dull", 0),
                                                          ("fine", 1), ("fine film", 1)]
    (tmp_path / "s.tsv").write_text("fine film\t1\nbad film\t0\n")
    assert han.read_pretrain_sentences(tmp_path / "s.tsv").labels == [1, 0]
    (tmp_path / "three.tsv").write_text("a\tgood\nb\tbad\n")
    with pytest.raises(ValueError, match="expected the labels of sentence polarity, one of negative/positive or "
                                         "neg/pos or 0/1, got bad/good"):
        han.read_pretrain_sentences(tmp_path / "three.tsv")


def test_pretraining_sets_the_word_level_before_the_documents(tmp_path):
    from safetensors.torch import load_file

    data = _archive(tmp_path / "reviews.tar.gz")
    pos = [f"a superb {w} film ." for w in ("fine", "rich", "bold", "warm", "wise", "deft", "keen", "true")]
    neg = [f"a dreadful {w} film ." for w in ("limp", "dull", "flat", "drab", "inert", "stale", "inept", "lame")]
    neg += ["the end .", "so : the story of number 0 . a dull awful film , sadly"]  # held out: left out
    task = han.HANTask(str(data), pretrain=str(_rt(tmp_path / "rt", pos, neg)), pretrain_epochs=3)
    cfg = han.TrainConfig(steps=1, batch_size=4, device="cpu", quiet=True, eval_every=0, optimizer="sgd", lr=1e-9)
    result = han.train(task, {"embedding": 16, "hidden": 8, "attention": 8}, cfg, tmp_path / "run", html_docs=0)
    pre = result["pretrain"]
    assert pre["left_out"] == 2 and pre["sentences"] == {"train": 14, "valid": 2} and pre["step"] == 12
    assert json.loads((tmp_path / "run" / "pretrain" / "metrics_valid.json").read_text())["examples"] == 2
    model, tokenizer, _ = han.load(tmp_path / "run", best=False)
    assert "superb" in tokenizer.vocab and "dreadful" in tokenizer.vocab  # words of the pretraining sentences
    best = load_file(tmp_path / "run" / "pretrain" / "model.best.safetensors")
    for name, weight in model.state_dict().items():
        if name.startswith(("embed.", "word_encoder.", "word_attention.")):  # the word level starts from it
            torch.testing.assert_close(weight, best["han." + name], atol=1e-6, rtol=0)
    one_line_error(cli("train", "han", "--data", data, "--out", tmp_path / "r2", "--steps", 1, "--pretrain-epochs", 2,
                       *TINY, ok=False), "--pretrain-epochs applies to --pretrain, which is not given",
                   "got --pretrain-epochs 2")
    shown = cli("train", "han", "--data", data, "--out", tmp_path / "r3", "--steps", 2, "--pretrain", tmp_path / "rt",
                "--pretrain-epochs", 1, "--html-docs", 0, *TINY).stdout
    assert "pretraining of the word level: 14 sentences (2 left out for overlapping a held-out review)" in shown
    pretrain_log = (tmp_path / "r3" / "pretrain" / "metrics.jsonl").read_text()
    resumed = cli("train", "han", "--data", data, "--out", tmp_path / "r3", "--steps", 4, "--pretrain", tmp_path / "rt",
                  "--pretrain-epochs", 1, "--html-docs", 0, "--resume", *TINY).stdout
    assert "pretraining of the word level" not in resumed  # its weights are in the checkpoint: not trained again
    assert (tmp_path / "r3" / "pretrain" / "metrics.jsonl").read_text() == pretrain_log
    assert json.loads((tmp_path / "r3" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
