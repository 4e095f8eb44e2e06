"""Language modelling (char-level and word-level), lectures 001-003: train, evaluate, generate.

    text file ──read_text──> train / valid (/ test) text ──Vocab.chars or Vocab.words──> ids
      ──StreamBatches (B streams, T steps, state carried)──> LanguageModel ──sequence_loss──> Trainer
      run dir: config.json, vocab.json, model.safetensors, model.best.safetensors, trainer.pt,
               metrics.jsonl, loss.png

The metric is the loss in nats per token, also reported as bits per character/word (loss / ln 2)
and perplexity (e^loss).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import StreamBatches
from ..data.text import read_text, split_contiguous, unspace, words
from ..data.vocab import Vocab
from ..decode.sample import generate, generate_many
from ..models.ensemble import Ensemble
from ..models.lm import LanguageModel, LMConfig
from ..train import TrainConfig, Trainer, checkpoint, evaluate, seed_everything, sequence_loss
from ..train.trainer import precision_context


@dataclass
class LMTask:
    """What to read and how to cut it. ``data`` is split into train/valid by ``split`` unless
    ``valid_data`` is given."""

    data: str
    level: str = "char"  # char | word
    valid_data: str | None = None
    split: tuple[float, float] = (0.9, 0.1)
    seq_len: int = 100  # T: time steps per batch (state carried across batches)
    errors: str = "strict"  # invalid UTF-8: strict (error naming the offset) | replace
    min_freq: int = 1  # word level: drop rarer words to <unk>
    max_words: int | None = None  # word level: vocabulary cap
    pretrained: str | None = None  # word level: word2vec/GloVe text file for the embedding
    spaced: bool = False  # char level: every character is followed by a space (Mikolov's char PTB)

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise ValueError(f"LMTask: expected level 'char' or 'word', got {self.level!r}")
        if self.spaced and self.level != "char":
            raise ValueError("LMTask: spaced files are a char-level format; got spaced=True with level 'word'")
        if self.seq_len < 1:
            raise ValueError(f"LMTask: expected seq_len >= 1, got {self.seq_len}")


def tokens_of(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else words(text)


def read_corpus(path, *, errors: str = "strict", spaced: bool = False) -> str:
    """A text file as the model sees it: ``read_text``, then ``unspace`` for spaced files."""
    text = read_text(path, errors=errors)
    return unspace(text, path) if spaced else text


def prepare(task: LMTask, vocab: Vocab | None = None) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    """Vocabulary (built from the text unless given, e.g. when resuming) and the train / valid id streams."""
    text = read_corpus(task.data, errors=task.errors, spaced=task.spaced)
    if task.valid_data:
        train_text, valid_text = text, read_corpus(task.valid_data, errors=task.errors, spaced=task.spaced)
    else:
        train_text, valid_text = split_contiguous(text, task.split)
    train_tokens, valid_tokens = tokens_of(train_text, task.level), tokens_of(valid_text, task.level)
    if len(train_tokens) < 2 or len(valid_tokens) < 2:
        raise ValueError(f"{task.data}: too little text to train on ({len(train_tokens)} training and "
                         f"{len(valid_tokens)} validation tokens)")
    if vocab is not None:
        pass
    elif task.level == "char":
        vocab = Vocab.chars("".join(train_tokens) + "".join(valid_tokens))
    else:
        vocab = Vocab.words(train_tokens, min_freq=task.min_freq, max_size=task.max_words)
    return vocab, vocab.encode(train_tokens), vocab.encode(valid_tokens)


def lm_loss(logits, batch):
    return sequence_loss(logits, batch.y)


def report(loss: float, level: str) -> dict:
    unit = "char" if level == "char" else "word"
    return {"loss": loss, f"bits_per_{unit}": loss / math.log(2), "perplexity": math.exp(min(loss, 700))}


def train(task: LMTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None, eval_batches: int | None = None) -> dict:
    """Train a language model into the run directory ``out``; returns the final validation report.

    model_cfg: LMConfig fields except vocab_size (cell, hidden, layers, embedding, dropout, ...).
    """
    out = Path(out)
    saved_vocab = None
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "vocab.json", "trainer.pt"))
        saved_vocab = Vocab.from_json(checkpoint.read_json(out / "vocab.json"))
    seed_everything(cfg.seed)
    vocab, train_ids, valid_ids = prepare(task, saved_vocab)
    config = LMConfig(vocab_size=len(vocab), **model_cfg)
    model = LanguageModel(config)
    if task.pretrained:
        from ..data.embeddings import init_embedding

        if task.level != "word" or not config.embedding:
            raise ValueError("--pretrained needs a word-level model with --embedding set to the vectors' size")
        init_embedding(model.embed, task.pretrained, vocab)
    if len(train_ids) < cfg.batch_size + 1:
        raise ValueError(f"{task.data}: {len(train_ids)} training tokens are too few for --batch-size "
                         f"{cfg.batch_size} streams (each needs at least 2 tokens)")
    train_data = StreamBatches(train_ids, cfg.batch_size, task.seq_len)
    valid_data = stream_source(valid_ids, cfg.batch_size, task.seq_len)
    run_config = {"task": f"{task.level}lm", "data": asdict(task), "model": asdict(config)}
    trainer = Trainer(model, cfg, loss_fn=lm_loss, train_data=train_data, valid_data=valid_data,
                      run_dir=out, run_config=run_config, resume=resume, resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "vocab.json", vocab.to_json())
    result = trainer.fit()
    return {**report(result["loss"], task.level), "step": trainer.step}


def load(run_dir, *, best: bool = True, device="cpu") -> tuple[LanguageModel, Vocab, dict]:
    """Rebuild a trained language model from its run directory (no code is unpickled)."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("charlm", "wordlm"),
                                      need=("config.json", "vocab.json", "model.safetensors"))
    model = LanguageModel(LMConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    vocab = Vocab.from_json(checkpoint.read_json(run_dir / "vocab.json"))
    if len(vocab) != model.config.vocab_size:
        raise checkpoint.CheckpointError(f"{run_dir}: vocab.json has {len(vocab)} tokens but the model expects "
                                         f"{model.config.vocab_size}")
    return model.to(device), vocab, config


def load_runs(run_dirs, *, device="cpu") -> tuple[LanguageModel | Ensemble, Vocab, dict]:
    """One run directory, or several as an :class:`~rnnkit.models.ensemble.Ensemble` (their next-token
    distributions averaged): the model, the vocabulary and the first run's config. The runs of an ensemble
    must have the same vocabulary (the same tokens in the same order) and level (char or word)."""
    run_dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not run_dirs:
        raise ValueError("expected at least one run directory, got none")
    loaded = [load(d, device=device) for d in run_dirs]
    if len(loaded) == 1:
        return loaded[0]
    _, vocab, config = loaded[0]
    for d, (_, other_vocab, other) in zip(run_dirs[1:], loaded[1:]):
        if other["data"]["level"] != config["data"]["level"]:
            raise ValueError(f"ensemble: {run_dirs[0]} is a {config['data']['level']}-level model but {d} is "
                             f"{other['data']['level']}-level; the runs must model the same tokens")
        if other_vocab.tokens != vocab.tokens:
            unshared = len(set(other_vocab.tokens) ^ set(vocab.tokens))
            detail = (f"the same {len(vocab)} tokens in another order" if not unshared else
                      f"{len(other_vocab)} tokens against {len(vocab)}, {unshared} not in both")
            raise ValueError(f"ensemble: {d} has a different vocabulary from {run_dirs[0]} ({detail}); the runs must "
                             "share one")
    return Ensemble([model for model, _, _ in loaded]), vocab, config


def stream_source(ids: torch.Tensor, batch_size: int, seq_len: int) -> StreamBatches:
    """Evaluation streams: up to batch_size of them, each at least seq_len tokens long when possible."""
    return StreamBatches(ids, max(1, min(batch_size, (len(ids) - 1) // seq_len)), seq_len)


def evaluate_run(run_dir, *, data=None, batch_size: int | None = None, device="cpu", precision: str = "fp32") -> dict:
    """Loss (nats), bits per token and perplexity of a trained model: on the run's own validation text
    (cut as in training), or on the text file ``data``; streams and T as in training unless given.
    ``run_dir`` may be a list of run directories: their ensemble (:func:`load_runs`) is evaluated, on the
    first run's validation text.
    ``precision="bf16"`` runs the forward passes under bf16 autocast (inference in bf16)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"evaluate: expected precision 'fp32' or 'bf16', got {precision!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"evaluate: expected batch_size >= 1 (parallel streams), got {batch_size!r}")
    model, vocab, config = load_runs(run_dir, device=device)
    level, seq_len = config["data"]["level"], config["data"]["seq_len"]
    batch_size = batch_size or config["train"]["batch_size"]
    if data is None:
        task = LMTask(**{k: tuple(v) if k == "split" else v for k, v in config["data"].items()})
        _, _, ids = prepare(task, vocab)
    else:
        text = read_corpus(data, errors=config["data"]["errors"], spaced=config["data"].get("spaced", False))
        ids = vocab.encode(tokens_of(text, level))
        if len(ids) < 2:
            raise ValueError(f"{data}: too short to evaluate ({len(ids)} token)")
    result = evaluate(model, stream_source(ids, batch_size, seq_len), lm_loss, device=device, stateful=True,
                      autocast=lambda: precision_context(precision, torch.device(device).type))
    return report(result["loss"], level)


def _primed(run_dir, prime: str, device):
    model, vocab, config = load_runs(run_dir, device=device)
    level = config["data"]["level"]
    prime_tokens = list(prime) if level == "char" else prime.split()
    if not prime_tokens:  # start as after a line break
        prime_tokens = ["\n"] if level == "char" and "\n" in vocab else [vocab.tokens[vocab.eos_id or 0]]
    prime_ids = vocab.encode(prime_tokens)  # char level: unknown characters are an error listing them
    return model, vocab, level, prime_ids


def _text_pieces(vocab, level: str, ids):
    return (vocab.tokens[t] if level == "char" else ("\n" if vocab.tokens[t] == "<eos>" else " " + vocab.tokens[t])
            for t in ids)


def sample_many(run_dir, *, prime: str, length: int, samples: int, temperature: float = 1.0, top_k=None,
                top_p=None, seed: int | None = None, device="cpu", precision: str = "fp32") -> list[str]:
    """``samples`` generated texts after the priming text, made as one batch (:func:`generate_many`); each
    string is what :func:`sample` would stream for one of them."""
    model, vocab, level, prime_ids = _primed(run_dir, prime, device)
    if seed is not None:
        torch.manual_seed(seed)
    rows = generate_many(model, prime_ids, length, samples, temperature=temperature, top_k=top_k, top_p=top_p,
                         eos_id=None if level == "char" else vocab.eos_id, precision=precision)
    return ["".join(_text_pieces(vocab, level, row)) for row in rows]


def sample(run_dir, *, prime: str, length: int, temperature: float = 1.0, top_k=None, top_p=None,
           seed: int | None = None, device="cpu", precision: str = "fp32"):
    """The generated text piece by piece (an iterator) after the priming text: characters for a char
    model; " word", or a line break for <eos>, for a word model. Bad input raises here, not later."""
    model, vocab, level, prime_ids = _primed(run_dir, prime, device)
    if seed is not None:
        torch.manual_seed(seed)
    tokens = generate(model, prime_ids, length, temperature=temperature, top_k=top_k, top_p=top_p,
                      eos_id=None if level == "char" else vocab.eos_id, precision=precision)
    # checked above, before the first piece: bad input fails before anything is printed
    return _text_pieces(vocab, level, tokens)
