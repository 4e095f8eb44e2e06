"""Sequence classification (many-to-one): sentiment of sentences, and the machinery every classification
task shares (sequential MNIST uses it too).

    SST trees / RT polarity / text<TAB>label ──sentiment.py──> texts + labels (train, valid, test)
      ──Tokenizer.fit(train, --max-words), encode (--max-len: longer texts cut and counted)──> ids, lengths
      ──PaddedBatches──> SequenceClassifier (embedding -> encoder -> pooling -> dense)
                         or ConvTextClassifier (lecture 003's 1D ConvNet)
      ──binary or softmax cross-entropy──> Trainer (keeps the best model on validation loss)
      ──best model on valid and test──> accuracy, precision / recall / F1, confusion matrix

    run dir: config.json, tokenizer.json, model.safetensors, model.best.safetensors, trainer.pt,
             metrics.jsonl, loss.png, metrics_valid.json, metrics_test.json, confusion_valid.png,
             confusion_test.png

Lecture 003's sentiment model is ``Embedding(max_words, 32) -> LSTM(32) -> Dense(1, sigmoid)`` trained with
rmsprop on binary cross-entropy: ``--model lstm --embedding 32 --hidden 32 --optimizer rmsprop``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from .._modes import eval_mode
from ..data import Batch, TensorBatches
from ..data.sentiment import LabelledTexts, detect_format, kfold, read_rt, read_sst, read_sst_phrases, read_tsv
from ..data.tokenize import Tokenizer
from ..layers import ENCODERS
from ..models.classifier import ClassifierConfig, SequenceClassifier, class_scores, predictions, probabilities
from ..models.conv_text import ConvTextClassifier, ConvTextConfig
from ..train import TrainConfig, Trainer, checkpoint, seed_everything
from ..train.losses import binary_classification_loss, classification_loss
from ..train.metrics import classification_report, confusion_matrix, format_report, plot_confusion, top_k_accuracy

log = logging.getLogger(__name__)

MODELS = (*ENCODERS, "conv")  # the --model choices: every sequence encoder, and lecture 003's 1D ConvNet
SPLIT_SEED = 0  # the seeded splits (RT folds, validation carved from training data) never change with --seed


# ----- shared by every classification task -------------------------------------------------------------

def build_model(spec: dict):
    """The model a run's config.json describes: {"type": "sequence" | "conv", "config": {...}}."""
    kind, fields = spec.get("type"), spec.get("config", {})
    if kind == "sequence":
        return SequenceClassifier(ClassifierConfig(**fields))
    if kind == "conv":
        return ConvTextClassifier(ConvTextConfig(**fields))
    raise ValueError(f"classify: expected model type 'sequence' or 'conv', got {kind!r}")


def model_spec(model: str, num_classes: int, *, vocab_size: int = 0, input_size: int = 0, embedding: int = 128,
               hidden: int = 128, layers: int = 1, bidirectional: bool = False, pooling: str = "last",
               dropout: float = 0.0, recurrent_dropout: float = 0.0, kernel_size: int | None = None) -> dict:
    """The config.json entry for --model MODEL and its options. ``conv`` reads --hidden as its channels and
    --kernel-size (default 7, the slide's); it has no layers, directions, pooling or recurrence to set."""
    if model not in MODELS:
        raise ValueError(f"classify: expected --model in {', '.join(MODELS)}, got {model!r}")
    if kernel_size is not None and model not in ("tcn", "conv"):
        raise ValueError(f"classify: --kernel-size applies to --model tcn and conv, not {model!r}")
    if model == "conv":
        if vocab_size < 1:
            raise ValueError("classify: --model conv is the 1D ConvNet for text (token ids); use a sequence "
                             "encoder for dense inputs")
        given = {"layers": layers != 1, "bidirectional": bidirectional, "pooling": pooling != "last",
                 "recurrent_dropout": recurrent_dropout != 0}
        if any(given.values()):
            raise ValueError(f"classify: --model conv has fixed layers (conv, pool, conv, global max pool); "
                             f"it takes no --{', --'.join(k.replace('_', '-') for k, v in given.items() if v)}")
        config = ConvTextConfig(num_classes=num_classes, vocab_size=vocab_size, embedding=embedding, channels=hidden,
                                kernel_size=kernel_size or 7, dropout=dropout, pad_id=Tokenizer.pad_id)
        return {"type": "conv", "config": asdict(config)}
    config = ClassifierConfig(num_classes=num_classes, vocab_size=vocab_size, input_size=input_size,
                              embedding=embedding, pad_id=Tokenizer.pad_id, model=model, hidden=hidden, layers=layers,
                              bidirectional=bidirectional, pooling=pooling, dropout=dropout,
                              recurrent_dropout=recurrent_dropout, kernel_size=kernel_size or 3)
    return {"type": "sequence", "config": asdict(config)}


def classifier_loss(logits: Tensor, batch: Batch) -> Tensor:
    """Binary cross-entropy on a (B, 1) logit (lecture 003), softmax cross-entropy on (B, C) (lecture 000)."""
    if logits.shape[1] == 1:
        return binary_classification_loss(logits, batch.y)
    return classification_loss(logits, batch.y)


def classifier_metrics(logits: Tensor, batch: Batch) -> dict[str, float]:
    """Accuracy, lecture 000's ``reduce_mean(in_top_k(logits, y, 1))``."""
    return {"accuracy": top_k_accuracy(class_scores(logits.float()), batch.y, 1)}


class PaddedBatches(TensorBatches):
    """TensorBatches of padded sequences, each batch cut to its own longest sequence: the data is padded to
    the longest text of the whole set, and no step that is padding for every row of a batch is computed."""

    def batches(self, epoch: int = 0):
        for batch in super().batches(epoch):
            if batch.lengths is not None:
                batch = replace(batch, x=batch.x[:, : int(batch.lengths.max())])
            yield batch


class ExampleBatches(PaddedBatches):
    """PaddedBatches for evaluation, averaged per example: ``evaluate`` weighs each batch by
    ``batch.tokens``, which for a padded batch is its number of valid steps; a classifier's loss and
    accuracy are per sequence, so these batches count their sequences instead."""

    def batches(self, epoch: int = 0):
        for batch in super().batches(epoch):
            yield ExampleBatch(batch.x, batch.y, batch.lengths)


@dataclass
class ExampleBatch(Batch):
    """A Batch whose weight in ``evaluate`` is its number of examples (see ExampleBatches)."""

    @property
    def tokens(self) -> int:
        return self.x.shape[0]


@torch.no_grad()
def predict_logits(model, x: Tensor, lengths: Tensor | None = None, *, batch_size: int = 256, device="cpu") -> Tensor:
    """Logits of every example, in order, in batches (evaluation mode); returned on the CPU."""
    out = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            lb = None if lengths is None else lengths[i:i + batch_size]
            if lb is not None:
                xb = xb[:, : int(lb.max())]  # no step is padding for every sequence of the batch
            logits, _ = model(xb, None, lengths=lb)
            out.append(logits.float().cpu())
    return torch.cat(out)


def report_split(model, x: Tensor, y: Tensor, lengths: Tensor | None, label_names: list[str], *, split: str,
                 out: Path | None, device="cpu", batch_size: int = 256) -> dict:
    """Accuracy, top-k accuracy, precision / recall / F1 and the confusion matrix of ``split``; written to
    ``out/metrics_<split>.json`` and ``out/confusion_<split>.png`` when out is given."""
    logits = predict_logits(model, x, lengths, batch_size=batch_size, device=device)
    cm = confusion_matrix(y, predictions(logits), len(label_names))
    report = {"split": split, **classification_report(cm, label_names)}
    if len(label_names) > 2:
        report["top_3_accuracy"] = top_k_accuracy(class_scores(logits), y, 3)
    if out is not None:
        checkpoint.atomic_write_json(out / f"metrics_{split}.json", report)
        plot_confusion(cm, label_names, out / f"confusion_{split}.png", title=f"{split}: accuracy "
                       f"{report['accuracy']:.4f} on {report['examples']} examples")
    return report


def make_trainer(model, *, train: tuple, valid: tuple, cfg: TrainConfig, out: Path, run_config: dict,
                 resume: bool, resume_command: str | None) -> Trainer:
    """A Trainer for ``model`` on (x, y, lengths) triples: shuffled training batches, validation averaged per
    example, the best model on validation loss kept (``model.best.safetensors``)."""
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("classify: truncated BPTT and stateful streams do not apply to a many-to-one classifier "
                         "(the loss is at the end of each sequence); drop --bptt")
    x, y, lengths = train
    train_data = PaddedBatches(x, y, cfg.batch_size, lengths=lengths, shuffle=True, seed=cfg.seed)
    vx, vy, vlengths = valid
    valid_data = ExampleBatches(vx, vy, max(cfg.batch_size, 256), lengths=vlengths, shuffle=False)
    return Trainer(model, cfg, loss_fn=classifier_loss, metrics_fn=classifier_metrics, train_data=train_data,
                   valid_data=valid_data, run_dir=out, run_config=run_config, resume=resume,
                   resume_command=resume_command)


def describe_split(report: dict, unit: str) -> str:
    """A report of :func:`report_split` as one line (``test: accuracy 0.8250, macro F1 0.8250 on 200 reviews``)
    and a table per class."""
    return (f"{report['split']}: accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} on "
            f"{report['examples']:,} {unit}\n{format_report(report)}")


def report_splits(trainer: Trainer, splits: dict, label_names: list[str], out, **options) -> dict:
    """:func:`report_split` of the trained model on the "valid" and "test" splits present in ``splits``
    ({name: (x, y, lengths or None)}), on rank 0 only (other ranks: {})."""
    if not trainer.world.is_main:
        return {}
    return {name: report_split(trainer.raw_model, *splits[name], label_names, split=name, out=out,
                               device=trainer.device, **options) for name in ("valid", "test") if name in splits}


def load_best(trainer: Trainer) -> int | None:
    """Put the best weights on validation (if any were kept) into the trained model, for the final reports;
    returns the step they are from (None: none kept, the model stays as trained)."""
    best = trainer.run_dir / "model.best.safetensors" if trainer.run_dir is not None else None
    if best is None or not best.exists():
        return None
    checkpoint.load_model(best, trainer.raw_model)
    return int(checkpoint.read_model_metadata(best)["step"])


# ----- text classification --------------------------------------------------------------------------------

@dataclass
class ClassifyTask:
    """Where the labelled texts are and how to cut them into ids.

    data: an SST directory (train/dev/test trees), an RT polarity directory (rt-polarity.pos/.neg) or a
    text<TAB>label file; valid_data / test_data: more text<TAB>label files (TSV only).
    """

    data: str
    valid_data: str | None = None
    test_data: str | None = None
    labels: list[str] | None = None  # TSV: the classes, in id order (default: the training file's, sorted)
    fine_grained: bool = False  # SST: five classes (SST-5) instead of SST-2
    phrases: bool = False  # SST: train on every labelled phrase of the training trees, not only sentences
    fold: int = 0  # RT polarity: the test fold of 10-fold cross-validation (fold 0 = the fixed 90/10 split)
    valid_fraction: float = 0.1  # held out of the training data when there is no validation set
    max_words: int = 20_000  # vocabulary size, <pad> and <unk> included
    max_len: int = 100  # tokens per text; longer texts are cut (and counted)

    def __post_init__(self):
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"ClassifyTask: expected valid_fraction in (0, 1), got {self.valid_fraction}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"ClassifyTask: expected distinct labels, got {self.labels}")


RT_FOLDS = 10


def read_splits(task: ClassifyTask) -> dict[str, LabelledTexts]:
    """{"train", "valid"[, "test"]} labelled texts for the task's data."""
    fmt = detect_format(task.data)
    only_tsv = {"valid_data": task.valid_data, "test_data": task.test_data, "labels": task.labels}
    for name, value in only_tsv.items():
        if fmt != "tsv" and value is not None:
            raise ValueError(f"classify: --{name.replace('_', '-')} applies to text<TAB>label files; "
                             f"{task.data} is an {fmt.upper()} directory with its own splits and labels")
    if fmt != "sst" and (task.fine_grained or task.phrases):
        raise ValueError(f"classify: --fine-grained and --phrases apply to SST; {task.data} is {fmt.upper()}")
    if fmt != "rt" and task.fold:
        raise ValueError(f"classify: --fold applies to RT polarity's 10-fold cross-validation; {task.data} is "
                         f"{fmt.upper()}")
    if fmt == "sst":
        splits = read_sst(task.data, binary=not task.fine_grained)
        if task.phrases:
            splits["train"] = read_sst_phrases(Path(task.data) / "train.txt", binary=not task.fine_grained)
        return splits
    if fmt == "rt":
        if not 0 <= task.fold < RT_FOLDS:
            raise ValueError(f"classify: expected --fold in [0, {RT_FOLDS}), got {task.fold}")
        data = read_rt(task.data)
        train_index, test_index = kfold(len(data), task.fold, RT_FOLDS, seed=SPLIT_SEED)
        train = data.subset(train_index)
        return {**_hold_out(train, task.valid_fraction), "test": data.subset(test_index)}
    train = read_tsv(task.data, label_names=task.labels)
    names = train.label_names
    splits = {"train": train} if task.valid_data else _hold_out(train, task.valid_fraction)
    if task.valid_data:
        splits["valid"] = read_tsv(task.valid_data, label_names=names)
    if task.test_data:
        splits["test"] = read_tsv(task.test_data, label_names=names)
    return splits


def _hold_out(data: LabelledTexts, fraction: float) -> dict[str, LabelledTexts]:
    """A seeded random `fraction` of data as validation, the rest for training."""
    n_valid = max(1, round(len(data) * fraction))
    if n_valid >= len(data):
        raise ValueError(f"classify: {len(data)} labelled texts are too few to hold out {fraction:.0%} for "
                         "validation; give --valid-data")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SPLIT_SEED))
    return {"train": data.subset(order[n_valid:].sort().values), "valid": data.subset(order[:n_valid].sort().values)}


def encode_splits(tokenizer: Tokenizer, splits: dict[str, LabelledTexts], *, limit: str = "--max-len"
                  ) -> dict[str, dict]:
    """{split: {"x", "y", "lengths", "truncated", "longest"}}; an empty text is an error naming its file and line,
    and texts cut to the tokenizer's max_len are counted in a warning naming ``limit``, the option that set it."""
    encoded = {}
    for name, data in splits.items():
        for i, text in enumerate(data.texts):
            if not tokenizer.tokens(text):
                raise ValueError(f"{data.where[i]}: empty text (no word or punctuation token): {text!r}")
        e = tokenizer.encode(data.texts, source=f"{name} split")
        if e.truncated:
            log.warning("%s %d: cut %d of %d %s texts to their first %d tokens (the longest has %d)", limit,
                        tokenizer.max_len, e.truncated, len(data), name, tokenizer.max_len, e.longest)
        encoded[name] = {"x": e.ids, "y": torch.tensor(data.labels, dtype=torch.int64), "lengths": e.lengths,
                         "truncated": e.truncated, "longest": e.longest}
    return encoded


def train(task: ClassifyTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train a text classifier into the run directory ``out``.

    model_options: ``model`` (one of MODELS) and the keyword arguments of :func:`model_spec` but the sizes
    the data decides (num_classes, vocab_size). Returns {"data": sizes and truncation counts per split,
    "valid": report, "test": report or None, "step": steps trained, "best_step": the step of the reported
    model (the lowest validation loss)}; texts cut to max_len are logged as warnings, never silently.
    """
    out = Path(out)
    seed_everything(cfg.seed)
    splits = read_splits(task)
    label_names = splits["train"].label_names
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "tokenizer.json", "trainer.pt"))
        tokenizer = Tokenizer.from_json(checkpoint.read_json(out / "tokenizer.json"))
    else:
        tokenizer = Tokenizer.fit(splits["train"].texts, max_words=task.max_words, max_len=task.max_len)
    encoded = encode_splits(tokenizer, splits)
    spec = model_spec(num_classes=len(label_names), vocab_size=len(tokenizer), **model_options)
    model = build_model(spec)
    run_config = {"task": "classify", "data": asdict(task), "labels": label_names, "model": spec}
    data_summary = {name: {"examples": len(splits[name]), "tokens": int(e["lengths"].sum()),
                           "truncated": e["truncated"], "longest": e["longest"], "classes": splits[name].counts()}
                    for name, e in encoded.items()}
    e_train, e_valid = encoded["train"], encoded["valid"]
    trainer = make_trainer(model, train=(e_train["x"], e_train["y"], e_train["lengths"]),
                           valid=(e_valid["x"], e_valid["y"], e_valid["lengths"]), cfg=cfg, out=out,
                           run_config=run_config, resume=resume, resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "tokenizer.json", tokenizer.to_json())
    trainer.fit()
    best_step = load_best(trainer)
    reports = report_splits(trainer, {name: (e["x"], e["y"], e["lengths"]) for name, e in encoded.items()},
                            label_names, out)
    return {"data": data_summary, "valid": reports.get("valid"), "test": reports.get("test"), "step": trainer.step,
            "best_step": best_step, "vocabulary": len(tokenizer), "max_len": tokenizer.max_len}


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, tokenizer, config) of a trained text classifier; no code is unpickled."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("classify",),
                                      need=("config.json", "tokenizer.json", "model.safetensors"))
    model = build_model(config["model"])
    checkpoint.load_run_weights(run_dir, model, best=best)
    tokenizer = Tokenizer.from_json(checkpoint.read_json(run_dir / "tokenizer.json"))
    vocab_size = config["model"]["config"]["vocab_size"]
    if len(tokenizer) != vocab_size:
        raise checkpoint.CheckpointError(f"{run_dir}: tokenizer.json has {len(tokenizer)} words but the model "
                                         f"expects {vocab_size}")
    return model.to(device).eval(), tokenizer, config


def predict(run_dir, texts: list[str], *, device="cpu", where: list[str] | None = None) -> dict:
    """{"predictions": [{"label", "probability", "probabilities"}, ...] one per text, "truncated": how many
    texts were longer than the run's max_len (cut to it, as in training), "max_len"}. A text without any
    token is an error naming it by ``where[i]`` (default "text i")."""
    model, tokenizer, config = load(run_dir, device=device)
    names = config["labels"]
    if not texts:
        raise ValueError("classify: no texts to classify")
    where = where or [f"text {i}" for i in range(len(texts))]
    for i, text in enumerate(texts):
        if not tokenizer.tokens(text):
            raise ValueError(f"{where[i]}: empty text (no word or punctuation token): {text!r}")
    encoded = tokenizer.encode(list(texts))
    probs = probabilities(predict_logits(model, encoded.ids, encoded.lengths, device=device))  # (N, C)
    p, ids = probs.max(dim=1)
    results = [{"label": names[int(i)], "probability": float(q), "probabilities": dict(zip(names, row.tolist()))}
               for i, q, row in zip(ids, p, probs)]
    return {"predictions": results, "truncated": encoded.truncated, "max_len": tokenizer.max_len}
