"""Classification metrics against fixed answers, TensorFlow's in_top_k rules and scikit-learn."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from rnnkit.train.metrics import (accuracy, classification_report, confusion_matrix, format_confusion, format_report,
                                  in_top_k, plot_confusion, top_k_accuracy)


def test_accuracy():
    assert accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    with pytest.raises(ValueError, match=r"same shape \(N,\) with N >= 1, got \(2,\) and \(3,\)"):
        accuracy(torch.tensor([0, 1]), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="integer class ids, got dtype torch.float32"):
        accuracy(torch.tensor([0.0]), torch.tensor([0]))


def test_in_top_k_like_tensorflow():
    logits = torch.tensor([[0.1, 0.7, 0.2],
                           [0.5, 0.5, 0.0],   # tie at the top: both classes are "in the top 1"
                           [0.3, 0.2, 0.5],
                           [float("nan"), 1.0, 0.0]])
    labels = torch.tensor([1, 0, 0, 0])
    assert in_top_k(logits, labels, 1).tolist() == [True, True, False, False]
    assert in_top_k(logits, labels, 2).tolist() == [True, True, True, False]  # a non-finite label score: False
    assert top_k_accuracy(logits[:3], labels[:3], 1) == pytest.approx(2 / 3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), c=st.integers(2, 8), k=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_top_k_matches_topk_when_scores_are_distinct(n, c, k, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g)  # distinct almost surely
    labels = torch.randint(0, c, (n,), generator=g)
    expected = (logits.topk(min(k, c), dim=1).indices == labels[:, None]).any(1)
    assert torch.equal(in_top_k(logits, labels, k), expected)


def test_in_top_k_errors():
    with pytest.raises(ValueError, match=r"labels in \[0, 3\), got labels\[1\] = 3"):
        in_top_k(torch.zeros(2, 3), torch.tensor([0, 3]), 1)
    with pytest.raises(ValueError, match="k to be an int >= 1, got 0"):
        in_top_k(torch.zeros(2, 3), torch.tensor([0, 1]), 0)


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with pytest.raises(ValueError, match=r"predictions in \[0, 3\), got predictions\[0\] = 5"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), 3)


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.integers(0, 3), min_size=1, max_size=40), seed=st.integers(0, 1000))
def test_report_matches_scikit_learn(labels, seed):
    y = np.array(labels)
    p = np.random.default_rng(seed).integers(0, 4, len(y))
    cm = confusion_matrix(torch.from_numpy(y), torch.from_numpy(p), 4)
    assert cm.tolist() == skm.confusion_matrix(y, p, labels=range(4)).tolist()
    report = classification_report(cm, ["a", "b", "c", "d"])
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, p, labels=range(4), zero_division=0)
    for c, row in enumerate(report["per_class"]):
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["support"] == support[c]
    assert report["macro_f1"] == pytest.approx(f1.mean())
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, p))


def test_report_text_and_errors():
    cm = torch.tensor([[5, 1], [2, 2]])
    report = classification_report(cm, ["negative", "positive"])
    text = format_report(report)
    assert "negative" in text and "accuracy 0.7000 (7 of 10)" in text
    assert report["per_class"][0]["precision"] == pytest.approx(5 / 7)
    matrix = format_confusion(cm, ["negative", "positive"]).splitlines()
    assert matrix[0].split() == ["true/pred", "negative", "positive"]
    assert matrix[2].split() == ["positive", "2", "2"]
    with pytest.raises(ValueError, match="expected 2 class names, got 3"):
        classification_report(cm, ["a", "b", "c"])
    with pytest.raises(ValueError, match="empty"):
        classification_report(torch.zeros(2, 2, dtype=torch.long))


def test_plot_confusion_writes_a_png(tmp_path):
    path = plot_confusion(torch.tensor([[3, 1], [0, 4]]), ["neg", "pos"], tmp_path / "cm.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temporary file left
