"""Sentence translation with an encoder-decoder (lectures 000, 001, 004): train, score (BLEU, chrF, exact match),
translate, draw the attention.

    pairs file / Multi30k ──read──> Pairs ──Processing (tokenizer, lower-casing)──> tokens
      ──max_len filter (dropped pairs counted)──> fixed seeded split (tab-separated files) or Multi30k's own
      ──build_vocab (training pairs)──> src_vocab.json, tgt_vocab.json ──encode──> PairBatches
      ──Seq2Seq, cross-entropy on the target tokens (teacher forcing)──> Trainer (keeps the best on validation)
      ──best model, greedy or beam search on the test pairs──> BLEU, chrF, exact match, BLEU by source length

    run dir: config.json, src_vocab.json, tgt_vocab.json, model.safetensors, model.best.safetensors,
             trainer.pt, metrics.jsonl, loss.png, metrics_test.json, test_translations.tsv

BLEU and chrF are sacrebleu's corpus scores of the processed sentences (lower-cased and tokenised as in
training: the scores compare like with like, but are not the detokenised, cased WMT numbers). The dates task
(``rnnkit.tasks.dates``) trains through :func:`fit` as well.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data.pairs import (BOS_ID, EOS_ID, PAD_ID, PairBatches, Pairs, Processing, TokenPairs, build_vocab,
                          check_pair_vocab, encode_pairs, encode_sources, read_multi30k, read_pairs, tokenize_pairs)
from ..data.vocab import Vocab
from ..decode.beam import beam_search, decode
from ..models.seq2seq import Seq2Seq, Seq2SeqConfig
from ..train import TrainConfig, Trainer, checkpoint, seed_everything, sequence_loss

log = logging.getLogger(__name__)

SPLIT_SEED = 0  # the split of a pairs file never changes with --seed
BUCKETS = (5, 10, 15, 20, 30)  # source-length buckets for BLEU: 1-5, 6-10, 11-15, 16-20, 21-30, 31+ tokens
TASKS = ("seq2seq", "dates")


@dataclass
class TranslationTask:
    """Where the pairs are and how to cut them.

    data: a tab-separated pairs file (.gz, or a .zip holding one, as ManyThings' fra-eng.zip), split into
    train/valid/test by ``split`` with a fixed seed; or a Multi30k directory with ``langs`` ("en-de"), whose
    own train/val/test_2016_flickr files are the splits.
    """

    data: str
    source_column: int = 0
    target_column: int = 1
    langs: str | None = None
    tokenizer: str = "13a"
    lower: bool = True
    max_len: int | None = 50  # pairs with a side longer than this many tokens are dropped (and counted)
    min_freq: int = 1
    max_vocab: int | None = None
    shared_vocab: bool = False
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def __post_init__(self):
        Processing(self.tokenizer, self.lower)  # checks the tokenizer
        if len(self.split) != 3 or any(f <= 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"TranslationTask: expected split = three fractions > 0 summing to 1 (train, valid, "
                             f"test), got {self.split}")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"TranslationTask: expected max_len >= 1 (or None), got {self.max_len}")
        if self.langs is not None and (self.langs.count("-") != 1 or "" in self.langs.split("-")):
            raise ValueError(f"TranslationTask: expected langs as SRC-TGT (e.g. en-de), got {self.langs!r}")

    @property
    def processing(self) -> Processing:
        return Processing(self.tokenizer, self.lower)


def read_splits(task: TranslationTask) -> dict[str, Pairs]:
    """{"train", "valid", "test"} pairs of the task's data."""
    path = Path(task.data)
    if path.is_dir():
        if task.langs is None:
            raise ValueError(f"{path} is a directory: a Multi30k directory needs --langs SRC-TGT (e.g. en-de)")
        if (task.source_column, task.target_column) != (0, 1):
            raise ValueError("seq2seq: --source-column/--target-column apply to tab-separated files; a Multi30k "
                             "directory takes --langs SRC-TGT")
        return read_multi30k(path, *task.langs.split("-"))
    if task.langs is not None:
        raise ValueError(f"seq2seq: --langs applies to a Multi30k directory; {path} is a file (use "
                         "--source-column/--target-column)")
    return split_pairs(read_pairs(path, source_column=task.source_column, target_column=task.target_column),
                       task.split)


def split_pairs(pairs: Pairs, fractions: tuple[float, float, float]) -> dict[str, Pairs]:
    """A fixed seeded shuffle cut into train/valid/test; each split gets at least one pair."""
    n = len(pairs)
    if n < 3:
        raise ValueError(f"seq2seq: {n} pair(s) are too few to split into train, valid and test")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_valid, n_test = max(1, round(n * fractions[1])), max(1, round(n * fractions[2]))
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"seq2seq: {n} pairs leave no training pairs with split {fractions}")
    return {"train": pairs.subset(sorted(order[:n_train])),
            "valid": pairs.subset(sorted(order[n_train:n_train + n_valid])),
            "test": pairs.subset(sorted(order[n_train + n_valid:]))}


def filter_splits(splits: dict[str, Pairs], processing: Processing, max_len: int | None, *,
                  keep_test: bool) -> tuple[dict[str, TokenPairs], dict[str, int]]:
    """Tokenised splits and how many pairs each lost to max_len (the test split is kept whole if keep_test)."""
    tokens, dropped = {}, {}
    for name, pairs in splits.items():
        limit = None if (keep_test and name == "test") else max_len
        tokens[name], dropped[name] = tokenize_pairs(pairs, processing, max_len=limit)
        if len(tokens[name]) == 0:
            raise ValueError(f"seq2seq: no {name} pair is at most --max-len {max_len} tokens long "
                             f"({dropped[name]} dropped)")
    return tokens, dropped


# ----- training ------------------------------------------------------------------------------------------

def pair_loss(logits, batch):
    """Cross-entropy over the target tokens: -log p(y_t | y_<t, x), <eos> included, padding ignored."""
    return sequence_loss(logits, batch.y, ignore_index=PAD_ID)


def pair_metrics(logits, batch) -> dict[str, float]:
    """Accuracy of the next target token under teacher forcing."""
    valid = batch.y != PAD_ID
    return {"accuracy": float((logits.argmax(dim=-1) == batch.y)[valid].float().mean())}


def fit(tokens: dict[str, TokenPairs], processing: Processing, model_cfg: dict, cfg: TrainConfig, out, *,
        run_config: dict, shared_vocab: bool = False, min_freq: int = 1, max_vocab: int | None = None,
        resume: bool = False, resume_command: str | None = None, beam: int = 1, length_penalty: float = 1.0) -> dict:
    """Train a Seq2Seq on tokenised {"train", "valid", "test"} pairs into ``out``; score the best model on the
    test pairs. model_cfg: Seq2SeqConfig fields except the vocabulary sizes and special ids."""
    out = Path(out)
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("seq2seq: every pair is one sequence, trained whole; --bptt does not apply")
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "src_vocab.json", "tgt_vocab.json", "trainer.pt"))
        src_vocab = check_pair_vocab(Vocab.from_json(checkpoint.read_json(out / "src_vocab.json")), "src_vocab.json")
        tgt_vocab = check_pair_vocab(Vocab.from_json(checkpoint.read_json(out / "tgt_vocab.json")), "tgt_vocab.json")
    else:
        train = tokens["train"]
        if shared_vocab:
            src_vocab = tgt_vocab = build_vocab(train.sources + train.targets, min_freq=min_freq, max_size=max_vocab)
        else:
            src_vocab = build_vocab(train.sources, min_freq=min_freq, max_size=max_vocab)
            tgt_vocab = build_vocab(train.targets, min_freq=min_freq, max_size=max_vocab)
    seed_everything(cfg.seed)
    config = Seq2SeqConfig(src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab), pad_id=PAD_ID, bos_id=BOS_ID,
                           eos_id=EOS_ID, shared_embeddings=shared_vocab, **model_cfg)
    model = Seq2Seq(config)
    encoded = {name: encode_pairs(src_vocab, tgt_vocab, t) for name, t in tokens.items()}
    train_data = PairBatches(encoded["train"], cfg.batch_size, shuffle=True, seed=cfg.seed)
    valid_data = PairBatches(encoded["valid"], max(cfg.batch_size, 128), shuffle=False)
    longest = max(len(s) for s in tokens["train"].sources)  # rnnkit translate warns beyond it
    run_config = {**run_config, "processing": asdict(processing), "model": asdict(config), "max_source_len": longest}
    trainer = Trainer(model, cfg, loss_fn=pair_loss, metrics_fn=pair_metrics, train_data=train_data,
                      valid_data=valid_data, run_dir=out, run_config=run_config, resume=resume,
                      resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "src_vocab.json", src_vocab.to_json())
        checkpoint.atomic_write_json(out / "tgt_vocab.json", tgt_vocab.to_json())
    valid = trainer.fit()
    best = out / "model.best.safetensors"
    if best.exists():
        checkpoint.load_model(best, trainer.raw_model)
    report = {"step": trainer.step, "valid": valid, "data": {name: len(t) for name, t in tokens.items()},
              "vocabulary": {"source": len(src_vocab), "target": len(tgt_vocab)},
              "parameters": sum(p.numel() for p in model.parameters())}
    if trainer.world.is_main:
        test = score(trainer.raw_model, src_vocab, tgt_vocab, processing, tokens["test"], beam=beam,
                     length_penalty=length_penalty, device=trainer.device)
        write_translations(out / "test_translations.tsv", tokens["test"], test.pop("hypotheses"), processing)
        checkpoint.atomic_write_json(out / "metrics_test.json", test)
        report["test"] = test
    return report


def train(task: TranslationTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None, beam: int = 1, length_penalty: float = 1.0) -> dict:
    """Train on the task's pairs into the run directory ``out``; returns the report (data sizes, pairs dropped by
    max_len per split, validation loss, test BLEU / chrF / exact match with ``beam``)."""
    splits = read_splits(task)
    multi30k = Path(task.data).is_dir()
    tokens, dropped = filter_splits(splits, task.processing, task.max_len, keep_test=multi30k)
    if any(dropped.values()):
        log.info("--max-len %s: dropped %s pairs", task.max_len, dropped)
    report = fit(tokens, task.processing, model_cfg, cfg, out, run_config={"task": "seq2seq", "data": asdict(task)},
                 shared_vocab=task.shared_vocab, min_freq=task.min_freq, max_vocab=task.max_vocab, resume=resume,
                 resume_command=resume_command, beam=beam, length_penalty=length_penalty)
    return {**report, "dropped": dropped, "read": {name: len(p) for name, p in splits.items()}}


def write_translations(path: Path, pairs: TokenPairs, hypotheses: list[list[str]], processing: Processing) -> None:
    lines = ["source\treference\ttranslation"] + [
        "\t".join(processing.join(t) for t in (s, r, h)) for s, r, h in zip(pairs.sources, pairs.targets, hypotheses)]
    checkpoint.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


# ----- decoding and scoring -----------------------------------------------------------------------------

@torch.no_grad()
def translate_tokens(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, sources: list[list[str]], *, beam: int = 1,
                     length_penalty: float = 1.0, max_len: int | None = None, batch_size: int = 64,
                     device="cpu") -> list[list[str]]:
    """Target tokens for every tokenised source (in order; an empty source gives an empty translation).
    Batches hold sources of similar length; max_len defaults to 2 x the batch's longest source + 10 tokens."""
    result: list[list[str]] = [[] for _ in sources]
    order = sorted((i for i, s in enumerate(sources) if s), key=lambda i: len(sources[i]))
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        src, lengths = encode_sources(src_vocab, [sources[i] for i in rows])
        state = model.encode(src.to(device), lengths)
        limit = max_len or 2 * int(lengths.max()) + 10
        common = dict(batch_size=len(rows), bos_id=BOS_ID, eos_id=EOS_ID, max_len=limit, length_penalty=length_penalty)
        if beam > 1:
            hyps = beam_search(model, state, beam_size=beam, **common)
        else:
            hyps = decode(model, state, **common)
        for i, h in zip(rows, hyps):
            result[i] = tgt_vocab.decode(h.tokens)
    return result


def bucket_name(length: int) -> str:
    low = 1
    for edge in BUCKETS:
        if length <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}+"


def score(model, src_vocab, tgt_vocab, processing: Processing, pairs: TokenPairs, *, beam: int = 1,
          length_penalty: float = 1.0, device="cpu") -> dict:
    """Translate the pairs' sources and score against their targets: corpus BLEU and chrF (sacrebleu), exact
    match, BLEU by source length (tokens); "hypotheses" holds the translations' tokens."""
    import sacrebleu

    hypotheses = translate_tokens(model, src_vocab, tgt_vocab, pairs.sources, beam=beam,
                                  length_penalty=length_penalty, device=device)
    hyp_text = [processing.join(h) for h in hypotheses]
    ref_text = [processing.join(t) for t in pairs.targets]
    buckets: dict[str, list[int]] = {}
    for i, s in enumerate(pairs.sources):
        buckets.setdefault(bucket_name(len(s)), []).append(i)
    by_length = [{"source_tokens": name, "pairs": len(idx),
                  "bleu": sacrebleu.corpus_bleu([hyp_text[i] for i in idx], [[ref_text[i] for i in idx]]).score}
                 for name, idx in sorted(buckets.items(), key=lambda kv: int(kv[0].split("-")[0].rstrip("+")))]
    return {"pairs": len(pairs), "decoding": f"beam {beam}" if beam > 1 else "greedy",
            "bleu": sacrebleu.corpus_bleu(hyp_text, [ref_text]).score,
            "chrf": sacrebleu.corpus_chrf(hyp_text, [ref_text]).score,
            "exact_match": sum(h == r for h, r in zip(hyp_text, ref_text)) / len(pairs),
            "bleu_by_source_length": by_length, "hypotheses": hypotheses}


# ----- a trained run -------------------------------------------------------------------------------------

def load(run_dir, *, best: bool = True, device="cpu") -> tuple[Seq2Seq, Vocab, Vocab, dict]:
    """Rebuild a trained seq2seq or dates model from its run directory (no code is unpickled)."""
    run_dir, config = checkpoint.read_run_config(run_dir, TASKS,
                                      need=("config.json", "src_vocab.json", "tgt_vocab.json", "model.safetensors"))
    model = Seq2Seq(Seq2SeqConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    src_vocab = check_pair_vocab(Vocab.from_json(checkpoint.read_json(run_dir / "src_vocab.json")), "src_vocab.json")
    tgt_vocab = check_pair_vocab(Vocab.from_json(checkpoint.read_json(run_dir / "tgt_vocab.json")), "tgt_vocab.json")
    for name, vocab, size in (("src_vocab.json", src_vocab, model.config.src_vocab_size),
                              ("tgt_vocab.json", tgt_vocab, model.config.tgt_vocab_size)):
        if len(vocab) != size:
            raise checkpoint.CheckpointError(f"{run_dir}: {name} has {len(vocab)} tokens but the model expects {size}")
    return model.to(device).eval(), src_vocab, tgt_vocab, config


def translate(run_dir, sentences: list[str], *, beam: int = 5, length_penalty: float = 1.0, max_len: int | None = None,
              plot_attention=None, device="cpu") -> dict:
    """Translate sentences with a trained run.

    Returns {"translations": [...] one per sentence, "too_long": how many sources are longer than the
    longest training source (translated anyway), "max_source_len", "unknown": the source tokens not in the
    vocabulary (read as <unk>), "plot": the heatmap's path or None}. An empty sentence translates to "".
    ``plot_attention``: a PNG path for the attention of the (single) sentence.
    """
    model, src_vocab, tgt_vocab, config = load(run_dir, device=device)
    processing = Processing(**config["processing"])
    sources = [processing.tokens(s) for s in sentences]
    if plot_attention is not None:
        if model.attention is None:
            raise ValueError(f"--plot-attention: the run in {run_dir} has no attention (--attention none)")
        if len(sentences) != 1 or not sources[0]:
            raise ValueError(f"--plot-attention draws the attention of one non-empty sentence, got "
                             f"{sum(bool(s) for s in sources)} non-empty of {len(sentences)}")
    targets = translate_tokens(model, src_vocab, tgt_vocab, sources, beam=beam, length_penalty=length_penalty,
                               max_len=max_len, device=device)
    longest = config["max_source_len"]
    unknown = sorted({t for s in sources for t in s if t not in src_vocab})
    plot = None
    if plot_attention is not None:
        plot = draw_attention(model, src_vocab, tgt_vocab, sources[0], targets[0], plot_attention, processing, device)
    return {"translations": [processing.join(t) for t in targets], "too_long": sum(len(s) > longest for s in sources),
            "max_source_len": longest, "unknown": unknown, "plot": plot}


@torch.no_grad()
def attention_weights(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, source: list[str], target: list[str],
                      device="cpu") -> torch.Tensor:
    """(T + 1, S + 1) weights of the decoder steps that produce target + <eos> over source + <eos>: the
    decoded target fed back (teacher forcing in evaluation mode repeats the decoding's own steps)."""
    src, lengths = encode_sources(src_vocab, [source])
    tgt_in = torch.cat([torch.tensor([BOS_ID]), tgt_vocab.encode(target)])[None]
    model.eval()
    _, weights = model.teacher_forced(src.to(device), lengths, tgt_in.to(device))
    return weights[0].cpu()


def draw_attention(model, src_vocab, tgt_vocab, source, target, path, processing: Processing, device="cpu") -> Path:
    from ..attention.plot import plot_attention

    weights = attention_weights(model, src_vocab, tgt_vocab, source, target, device)
    shown = [("␣" if t == " " else t) if t in src_vocab else f"{t} (<unk>)" for t in source]  # ␣: a space (char level)
    return plot_attention(weights, shown + ["<eos>"], [("␣" if t == " " else t) for t in target] + ["<eos>"], path,
                          title=f"{processing.join(source)} -> {processing.join(target)}")
