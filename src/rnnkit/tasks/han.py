"""Document classification with a hierarchical attention network (Yang et al. 2016): `rnnkit train han`.

    review_polarity.tar.gz (data/reviews.py: 2,000 reviews, one sentence per line, read from the archive)
      ──fold K of Pang & Lee's 10-fold CV by cv tag: test = cv{K}00..cv{K}99 (200 reviews); validation = a
        seeded 10% of the other 1,800 (seed 0, whatever --seed)──> train 1,620 / valid 180 / test 200
      ──Tokenizer.fit(training sentences [+ pretraining sentences], --max-words); each review -> (S, W) ids,
        at most --max-sentences sentences of at most --max-sentence-len tokens (longer ones cut, counted)──> (N, S, W)
      [--pretrain SENTENCES: labelled sentences (RT polarity, SST or text<TAB>label) less any sharing 8 words in a
        row with a validation or test review ──the HAN's word level + an output layer of its own, --pretrain-epochs
        (best on a seeded 10 % of them)──> the HAN's embedding, word GRU and word attention start from these]
      ──HAN (word bi-GRU + attention -> sentence bi-GRU + attention -> dense)──> binary cross-entropy
      ──best model on validation loss──> accuracy, F1, confusion matrix; attention_test.html: test reviews
        with every word shaded by its weight and every sentence by its own

    run dir: config.json, tokenizer.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl,
             loss.png, metrics_valid.json, metrics_test.json, confusion_*.png, attention_test.html;
             pretrain/: the sentence pretraining's own run (its metrics_valid.json: held-out sentence accuracy)
"""
from __future__ import annotations

import dataclasses
import html
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data.reviews import FOLDS, LABELS, Review, read_reviews
from ..data.embeddings import init_embedding
from ..data.sentiment import SST_FILES, LabelledTexts, detect_format, kfold, read_rt, read_sst_phrases, read_tsv
from ..data.tokenize import Tokenizer
from ..models.classifier import probabilities
from ..models.han import HAN, HANConfig, SentenceClassifier
from ..train import TrainConfig, checkpoint, seed_everything
from .classify import (SPLIT_SEED, describe_split, encode_splits, load_best, make_trainer, report_split,
                       report_splits)

log = logging.getLogger(__name__)

EVAL_BATCH = 32  # documents per batch of the valid and test reports (training's and evaluate_run's)
OVERLAP_WORDS = 8  # a pretraining sentence sharing this many words in a row with a held-out review is left out
# the label names a pretraining file may use for (negative, positive)
PRETRAIN_LABELS = (("negative", "positive"), ("neg", "pos"), ("0", "1"))


@dataclass
class HANTask:
    data: str  # review_polarity.tar.gz, or a directory holding txt_sentoken/
    fold: int = 0  # the test fold, 0..9 (cv tags K00..K99)
    valid_fraction: float = 0.1  # of the other nine folds, seeded
    max_words: int = 30_000  # vocabulary, <pad> and <unk> included
    max_sentences: int = 80  # per document; later sentences are cut (and counted)
    max_sentence_len: int = 60  # tokens per sentence; later tokens are cut (and counted)
    pretrained: str | None = None  # word2vec/GloVe text file: initial word vectors (size: the model's embedding)
    pretrain: str | None = None  # labelled sentences (RT polarity dir, SST dir, text<TAB>label file) for the word level
    pretrain_epochs: int = 3  # passes over them before the documents (the measured SST recipe used 3)

    def __post_init__(self):
        if not 0 <= self.fold < FOLDS:
            raise ValueError(f"HANTask: expected fold in [0, {FOLDS}), got {self.fold}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"HANTask: expected valid_fraction in (0, 1), got {self.valid_fraction}")
        for name in ("max_sentences", "max_sentence_len", "pretrain_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"HANTask: expected {name} >= 1, got {getattr(self, name)}")


def split_reviews(reviews: list[Review], fold: int, valid_fraction: float = 0.1) -> dict[str, list[Review]]:
    """{"train", "valid", "test"}: test is cv-tag fold ``fold``; valid a seeded fraction of the rest."""
    test = [r for r in reviews if r.fold == fold]
    rest = [r for r in reviews if r.fold != fold]
    if not test or len(rest) < 2:
        raise ValueError(f"han: fold {fold} leaves {len(test)} test and {len(rest)} other reviews; expected both")
    order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_valid = max(1, round(len(rest) * valid_fraction))
    valid_ids = set(order[:n_valid])
    return {"train": [r for i, r in enumerate(rest) if i not in valid_ids],
            "valid": [r for i, r in enumerate(rest) if i in valid_ids], "test": test}


def document_tokens(tokenizer: Tokenizer, sentences: list[str], max_sentences: int, max_len: int
                    ) -> tuple[list[list[str]], int, int]:
    """The tokens of each kept sentence, and how many sentences / sentence tails were cut."""
    kept = [t for t in (tokenizer.tokens(s) for s in sentences) if t]
    cut_sentences = max(0, len(kept) - max_sentences)
    kept = kept[:max_sentences]
    cut_words = sum(len(t) > max_len for t in kept)
    return [t[:max_len] for t in kept], cut_sentences, cut_words


def encode_documents(tokenizer: Tokenizer, docs: list[list[str]], max_sentences: int, max_len: int,
                     *, where: list[str] | None = None) -> tuple[torch.Tensor, list[list[list[str]]], dict]:
    """ids (N, S, W) int64 padded with 0, the tokens behind them, and the cut counts."""
    tokens, cuts = [], {"documents_cut": 0, "sentences_cut": 0, "sentences_shortened": 0}
    for n, sentences in enumerate(docs):
        toks, cs, cw = document_tokens(tokenizer, sentences, max_sentences, max_len)
        if not toks:
            raise ValueError(f"{where[n] if where else f'document {n}'}: no word or punctuation token")
        tokens.append(toks)
        cuts["documents_cut"] += cs > 0
        cuts["sentences_cut"] += cs
        cuts["sentences_shortened"] += cw
    S = max(len(t) for t in tokens)
    W = max(len(s) for t in tokens for s in t)
    ids = torch.zeros(len(tokens), S, W, dtype=torch.int64)
    for n, doc in enumerate(tokens):
        for i, sent in enumerate(doc):
            ids[n, i, : len(sent)] = tokenizer.vocab.encode(sent)
    return ids, tokens, cuts


def read_pretrain_sentences(path) -> LabelledTexts:
    """Labelled sentences for the word level's pretraining, negative (0) and positive (1): an RT polarity
    directory, an SST directory (SST-2: every distinct non-neutral phrase of train, dev and test, the sentences
    included: about 107,000, Socher et al.'s phrase-level labels) or a ``text<TAB>label`` file whose two labels
    are negative/positive, neg/pos or 0/1."""
    kind = detect_format(path)
    if kind == "rt":
        data = read_rt(path)
    elif kind == "sst":
        data = read_sst_phrases(*(Path(path) / name for name in SST_FILES.values()))
    else:
        data = read_tsv(path)
    names = tuple(n.lower() for n in data.label_names)
    if names not in PRETRAIN_LABELS:
        raise ValueError(f"{path}: expected the labels of sentence polarity, one of "
                         f"{' or '.join('/'.join(p) for p in PRETRAIN_LABELS)}, got {'/'.join(data.label_names)}")
    return data


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z0-9]+", text.lower()))


def leave_out_overlap(sentences: LabelledTexts, reviews: list[Review], n: int = OVERLAP_WORDS
                      ) -> tuple[LabelledTexts, list[str]]:
    """The sentences that share no n words in a row (lower-cased letters and digits) with any of ``reviews``
    and, if shorter than n words, are not one of their sentences; and where the others came from. Pretraining
    on a sentence quoted from a held-out review would leak its label."""
    held, grams = set(), set()
    for r in reviews:
        words = _words(" ".join(r.sentences))
        grams.update(words[i:i + n] for i in range(len(words) - n + 1))
        held.update(_words(sentence) for sentence in r.sentences)
    keep, dropped = [], []
    for i, text in enumerate(sentences.texts):
        words = _words(text)
        if words in held or any(words[j:j + n] in grams for j in range(len(words) - n + 1)):
            dropped.append(sentences.where[i])
        else:
            keep.append(i)
    return sentences.subset(keep), dropped


def pretrain_word_level(model: HAN, tokenizer: Tokenizer, sentences: LabelledTexts, task: HANTask,
                        cfg: TrainConfig, out: Path) -> dict:
    """Train the HAN's embedding, word encoder and word attention on labelled sentences through a
    :class:`SentenceClassifier` (its own output layer, dropped afterwards), in its own run directory ``out``;
    a seeded 10 % of the sentences is held out and the best weights on it are kept in the HAN. Returns
    {"sentences", "valid", "step", "best_step"}: how many trained on and held out, the held-out report."""
    if len(sentences) < 10:
        raise ValueError(f"han --pretrain: expected at least 10 sentences, got {len(sentences)}")
    e = encode_splits(tokenizer, {"pretraining": sentences}, limit="--max-sentence-len")["pretraining"]
    x, y = e["x"], e["y"]  # (N, W) padded ids, (N,)
    train_idx, valid_idx = kfold(len(y), 0, 10, seed=SPLIT_SEED)
    classifier = SentenceClassifier(model)
    pre_cfg = dataclasses.replace(cfg, epochs=task.pretrain_epochs, steps=None, max_time=None, patience=0,
                                  schedule="none", eval_every=0, checkpoint_every=0)
    trainer = make_trainer(classifier, train=(x[train_idx], y[train_idx], None),
                           valid=(x[valid_idx], y[valid_idx], None), cfg=pre_cfg, out=out,
                           run_config={"task": "han-pretrain", "data": task.pretrain, "labels": LABELS},
                           resume=False, resume_command=None)
    trainer.fit()
    best_step = load_best(trainer)
    report = report_split(trainer.raw_model, x[valid_idx], y[valid_idx], None, LABELS, split="valid", out=out,
                          device=trainer.device) if trainer.world.is_main else None
    log.info("han --pretrain: %d sentences, held-out accuracy %s", len(y), report and report["accuracy"])
    return {"sentences": {"train": len(train_idx), "valid": len(valid_idx)}, "valid": report,
            "step": trainer.step, "best_step": best_step}


def train(task: HANTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None, html_docs: int = 20) -> dict:
    """Train a HAN on the movie reviews into ``out``. model_options: HANConfig's embedding, hidden, attention,
    dropout, cell. Returns {"data", "valid", "test", "step", "best_step", "vocabulary", "html"}."""
    out = Path(out)
    seed_everything(cfg.seed)
    splits = split_reviews(read_reviews(task.data), task.fold, task.valid_fraction)
    pretrain, dropped = None, []
    if task.pretrain and not resume:  # on resume the pretrained weights are in the checkpoint
        pretrain, dropped = leave_out_overlap(read_pretrain_sentences(task.pretrain), splits["valid"] + splits["test"])
        if dropped:
            log.warning("han --pretrain: left out %d sentence(s) sharing %d words in a row with a validation or test "
                        "review (first: %s)", len(dropped), OVERLAP_WORDS, dropped[0])
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "tokenizer.json", "trainer.pt"))
        tokenizer = Tokenizer.from_json(checkpoint.read_json(out / "tokenizer.json"))
    else:
        texts = [s for r in splits["train"] for s in r.sentences] + (pretrain.texts if pretrain else [])
        tokenizer = Tokenizer.fit(texts, max_words=task.max_words, max_len=task.max_sentence_len)
    encoded = {}
    for name, reviews in splits.items():
        ids, tokens, cuts = encode_documents(tokenizer, [r.sentences for r in reviews], task.max_sentences,
                                             task.max_sentence_len, where=[r.name for r in reviews])
        if cuts["documents_cut"] or cuts["sentences_shortened"]:
            log.warning("%s: cut %d sentences of %d reviews beyond --max-sentences %d, and %d sentences to "
                        "--max-sentence-len %d tokens", name, cuts["sentences_cut"], cuts["documents_cut"],
                        task.max_sentences, cuts["sentences_shortened"], task.max_sentence_len)
        encoded[name] = {"x": ids, "y": torch.tensor([r.label for r in reviews]), "tokens": tokens, **cuts}
    config = HANConfig(vocab_size=len(tokenizer), num_classes=len(LABELS), pad_id=Tokenizer.pad_id, **model_options)
    model = HAN(config)
    if task.pretrained and not resume:  # on resume the trained weights come from the checkpoint
        init_embedding(model.embed, task.pretrained, tokenizer.vocab)
    pretrained_words = None
    if pretrain is not None:
        pretrained_words = pretrain_word_level(model, tokenizer, pretrain, task, cfg, out / "pretrain")
        pretrained_words["left_out"] = len(dropped)
    run_config = {"task": "han", "data": asdict(task), "labels": LABELS, "model": asdict(config)}
    e_train, e_valid = encoded["train"], encoded["valid"]
    trainer = make_trainer(model, train=(e_train["x"], e_train["y"], None), valid=(e_valid["x"], e_valid["y"], None),
                           cfg=cfg, out=out, run_config=run_config, resume=resume, resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "tokenizer.json", tokenizer.to_json())
    trainer.fit()
    best_step = load_best(trainer)
    reports = report_splits(trainer, {name: (e["x"], e["y"], None) for name, e in encoded.items()}, LABELS, out,
                            batch_size=EVAL_BATCH)
    page = None
    if trainer.world.is_main and html_docs > 0:
        test = splits["test"]
        picks = _balanced(test, html_docs)
        e = encoded["test"]
        docs = inspect(trainer.raw_model, e["x"][picks], [e["tokens"][i] for i in picks], device=trainer.device)
        for d, i in zip(docs, picks):
            d["title"], d["true"] = test[i].name, LABELS[test[i].label]
        page = out / "attention_test.html"
        checkpoint.atomic_write_bytes(page, attention_html(docs, title=f"HAN attention, test fold {task.fold}")
                                      .encode("utf-8"))
    data = {name: {"documents": len(splits[name]), "sentences": int((e["x"][:, :, 0] != 0).sum()),
                   "classes": {lab: int((e["y"] == k).sum()) for k, lab in enumerate(LABELS)},
                   "sentences_cut": e["sentences_cut"], "sentences_shortened": e["sentences_shortened"]}
            for name, e in encoded.items()}
    return {"data": data, "valid": reports.get("valid"), "test": reports.get("test"), "step": trainer.step,
            "best_step": best_step, "vocabulary": len(tokenizer), "html": page and str(page),
            "pretrain": pretrained_words}


def _balanced(reviews: list[Review], n: int) -> list[int]:
    """Up to n indices, alternating negative and positive reviews."""
    by_label = [[i for i, r in enumerate(reviews) if r.label == k] for k in range(len(LABELS))]
    picks = [i for pair in zip(*by_label) for i in pair]
    return sorted(picks[:n])


@torch.no_grad()
def inspect(model: HAN, ids: torch.Tensor, tokens: list[list[list[str]]], *, device="cpu",
            batch_size: int = 32) -> list[dict]:
    """Per document: {"label", "probability", "sentences": [(sentence weight, [(token, word weight)...])]}."""
    model.eval()
    names = [LABELS[k] if model.config.num_classes == 2 else str(k) for k in range(model.config.num_classes)]
    docs = []
    for start in range(0, len(ids), batch_size):
        logits, alpha_w, alpha_s = model.attend(ids[start:start + batch_size].to(device))
        probs = probabilities(logits.float().cpu())
        for b in range(len(logits)):
            doc_tokens = tokens[start + b]
            p, k = probs[b].max(0)
            docs.append({"label": names[int(k)], "probability": float(p), "sentences": [
                (float(alpha_s[b, i]), [(tok, float(alpha_w[b, i, t])) for t, tok in enumerate(sent)])
                for i, sent in enumerate(doc_tokens)]})
    return docs


def attention_html(docs: list[dict], *, title: str = "HAN attention") -> str:
    """A self-contained HTML page: a bar per sentence shaded by its weight (blue), each word shaded by
    sqrt(sentence weight) * word weight (red), Yang et al.'s figure 5 normalisation, scaled to the document's
    largest value."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}.s{margin:1px 0;padding:1px 4px;"
             "border-left:1.2em solid}.w{padding:0 1px}h2{font-size:1em;margin-top:2em}</style>",
             f"<h1>{html.escape(title)}</h1><p>Sentence bars: sentence attention (blue). Words: "
             "sqrt(sentence weight) &times; word weight (red), relative to the document's largest.</p>"]
    for d in docs:
        head = f"predicted {d['label']} ({d['probability']:.3f})"
        if "true" in d:
            head += f", true {d['true']}"
        parts.append(f"<h2>{html.escape(d.get('title', 'document'))}: {html.escape(head)}</h2>")
        s_max = max(w for w, _ in d["sentences"]) or 1.0
        w_max = max((w ** 0.5) * a for w, sent in d["sentences"] for _, a in sent) or 1.0
        for w, sent in d["sentences"]:
            words = " ".join(f"<span class='w' style='background:rgba(220,40,40,{(w ** 0.5) * a / w_max:.3f})' "
                             f"title='{a:.3f}'>{html.escape(tok)}</span>" for tok, a in sent)
            parts.append(f"<div class='s' style='border-color:rgba(40,80,220,{w / s_max:.3f})' "
                         f"title='sentence {w:.3f}'>{words}</div>")
    return "\n".join(parts) + "\n"


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, tokenizer, config) of a trained HAN run."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("han",),
                                                 need=("config.json", "tokenizer.json", "model.safetensors"))
    model = HAN(HANConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    tokenizer = Tokenizer.from_json(checkpoint.read_json(run_dir / "tokenizer.json"))
    if len(tokenizer) != model.config.vocab_size:
        raise checkpoint.CheckpointError(f"{run_dir}: tokenizer.json has {len(tokenizer)} words but the model "
                                         f"expects {model.config.vocab_size}")
    return model.to(device).eval(), tokenizer, config


def predict_document(run_dir, sentences: list[str], *, device="cpu", where: str = "the document") -> dict:
    """{"label", "probability", "sentences": [(weight, [(token, weight)...])]} for one document given as its
    sentences (one per line), encoded with the run's tokenizer and limits."""
    model, tokenizer, config = load(run_dir, device=device)
    data = config["data"]
    ids, tokens, _ = encode_documents(tokenizer, [sentences], data["max_sentences"], data["max_sentence_len"],
                                      where=[where])
    return inspect(model, ids, tokens, device=device)[0]


def evaluate_run(run_dir, *, split: str = "test", device="cpu") -> dict:
    """The report of a run's best weights on the "valid" or "test" split it was made with (the test fold of its
    review archive; the validation reviews carved from the other folds), encoded with the run's tokenizer and
    limits: accuracy, precision / recall / F1, confusion matrix; equal to the run's metrics_<split>.json."""
    if split not in ("valid", "test"):
        raise ValueError(f"han: expected split 'valid' or 'test', got {split!r}")
    model, tokenizer, config = load(run_dir, device=device)
    task = HANTask(**config["data"])
    reviews = split_reviews(read_reviews(task.data), task.fold, task.valid_fraction)[split]
    ids, _, _ = encode_documents(tokenizer, [r.sentences for r in reviews], task.max_sentences,
                                 task.max_sentence_len, where=[r.name for r in reviews])
    labels = torch.tensor([r.label for r in reviews])
    return report_split(model, ids, labels, None, config.get("labels", LABELS), split=split, out=None, device=device,
                        batch_size=EVAL_BATCH)


def describe(report: dict) -> str:
    """A report of :func:`evaluate_run` as a line and a table per class."""
    return describe_split(report, "reviews")
