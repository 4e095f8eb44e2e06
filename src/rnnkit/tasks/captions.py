r"""Image captioning (lectures 003 and 004: Show and Tell, Show, Attend and Tell): train, score (BLEU, exact
match), caption an image, draw the attention of every word over the image.

    generated scenes (rnnkit.data.scenes, seeded) or a folder of images + captions file
      ──split (three seeded draws; a folder: a fixed seeded 80/10/10 by image)──> CaptionedImages
      ──Processing (space tokens for scenes; sacrebleu 13a, lower-cased, for a folder)──> vocab.json
      ──CaptionBatches (x: pixels and decoder input packed, y: the caption then <eos>)──> Captioner
      ──cross-entropy (+ λ Σ_i (1 − Σ_t α_ti)² with soft attention)──> Trainer (keeps the best on validation)
      ──best model, greedy or beam search on the test images──> BLEU (sacrebleu), exact match

    run dir: config.json, vocab.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl,
             loss.png, metrics_test.json, test_captions.tsv, test_image.png (the first test image) and, with
             attention, attention.png (its caption's attention maps, one per word)

Exact match: the caption equals one of the image's references token for token (after lower-casing and
tokenising). BLEU is sacrebleu's corpus BLEU of the processed captions against every reference of each image.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .._checks import check_positive_int
from ..data.batching import Batch, epoch_order
from ..data.pairs import BOS_ID, EOS_ID, PAD_ID, Processing, build_vocab, check_pair_vocab
from ..data.scenes import CaptionedImages, load_image, read_image_folder, save_image, scene_splits
from ..data.vocab import Vocab
from ..decode.beam import beam_search, decode
from ..models.captioner import ATTENTIONS, Captioner, CaptionerConfig, CaptionOutput, doubly_stochastic_penalty, pack
from ..models.sizing import count_parameters
from ..train import TrainConfig, Trainer, checkpoint, seed_everything, sequence_loss

SPLIT_SEED = 0  # the split of a folder never changes with --seed
EVAL_BATCH = 256
SCENE_PROCESSING = Processing(tokenizer="space", lower=True)
FOLDER_PROCESSING = Processing(tokenizer="13a", lower=True)

# the model `rnnkit train captions` builds unless told otherwise
DEFAULT_MODEL = {"channels": (32, 64, 64), "pools": 2, "embedding": 64, "hidden": 256, "attention": "soft"}


@dataclass
class CaptionsTask:
    """Where the images come from and how the loss is made.

    data: None for generated scenes (``train_size``, ``valid_size``, ``test_size`` scenes of ``image_size``
    pixels with up to ``max_shapes`` shapes, from ``data_seed``), or a folder of images with a captions file
    (``captions``, default FOLDER/captions.txt), resized to ``image_size`` and split 80/10/10 by image.
    doubly_stochastic: λ of the soft-attention regulariser λ Σ_i (1 − Σ_t α_ti)² (Xu et al. eq. 14; summed over
    the L regions, averaged over the batch). A caption of T < L steps cannot cover every region once, so the
    term never reaches 0; the default 0.01 keeps it a nudge beside the cross-entropy (``metrics.jsonl`` logs
    the cross-entropy alone as ``cross_entropy``).
    """

    data: str | None = None
    captions: str | None = None
    image_size: int = 32
    train_size: int = 20_000
    valid_size: int = 500
    test_size: int = 1_000
    max_shapes: int = 3
    data_seed: int = 0
    doubly_stochastic: float = 0.01

    def __post_init__(self):
        for name in ("train_size", "valid_size", "test_size", "image_size"):
            check_positive_int("CaptionsTask", name, getattr(self, name))
        if not 1 <= self.max_shapes <= 3:
            raise ValueError(f"CaptionsTask: expected max_shapes in 1..3, got {self.max_shapes!r}")
        if not self.doubly_stochastic >= 0:
            raise ValueError(f"CaptionsTask: expected doubly_stochastic (lambda) >= 0, got {self.doubly_stochastic!r}")
        if self.captions is not None and self.data is None:
            raise ValueError("CaptionsTask: a captions file goes with an image folder (--data DIR); the generated "
                             f"scenes have their own captions (got captions={self.captions!r})")

    @property
    def processing(self) -> Processing:
        return SCENE_PROCESSING if self.data is None else FOLDER_PROCESSING

    @property
    def title(self) -> str:
        if self.data is None:
            return (f"generated scenes ({self.image_size}x{self.image_size}, 1-{self.max_shapes} shapes, seed "
                    f"{self.data_seed})")
        return f"images in {self.data} ({self.image_size}x{self.image_size})"


def read_splits(task: CaptionsTask) -> dict[str, CaptionedImages]:
    if task.data is None:
        return scene_splits(task.train_size, task.valid_size, task.test_size, size=task.image_size,
                            seed=task.data_seed, max_shapes=task.max_shapes)
    data = read_image_folder(task.data, task.image_size, captions=task.captions)
    n = len(data)
    if n < 3:
        raise ValueError(f"captions: {n} captioned image(s) in {task.data} are too few to split into train, valid "
                         "and test")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_valid = n_test = max(1, round(0.1 * n))
    return {"train": data.subset(sorted(order[: n - n_valid - n_test])),
            "valid": data.subset(sorted(order[n - n_valid - n_test: n - n_test])),
            "test": data.subset(sorted(order[n - n_test:]))}


# ----- batches --------------------------------------------------------------------------------------------

class CaptionBatch(Batch):
    """x (B, 3·S·S + T) = pack(images, decoder input), y (B, T) the caption then <eos>, padded; ``tokens``
    counts the target tokens (what the loss averages over)."""

    @property
    def tokens(self) -> int:
        return int((self.y != PAD_ID).sum())


class CaptionBatches:
    """(image, caption) pairs in batches, reshuffled every epoch from (seed, epoch): every reference caption
    of an image is one training pair. ``shuffle=False`` keeps the order (evaluation)."""

    def __init__(self, data: CaptionedImages, vocab: Vocab, processing: Processing, batch_size: int, *,
                 shuffle: bool = True, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"CaptionBatches: expected batch_size >= 1, got {batch_size}")
        pairs = [(i, vocab.encode(processing.tokens(c)).tolist()) for i, caps in enumerate(data.captions) for c in caps]
        pairs = [(i, ids) for i, ids in pairs if ids]
        if not pairs:
            raise ValueError("CaptionBatches: expected at least one non-empty caption, got none")
        T = max(len(ids) for _, ids in pairs) + 1
        self.image_index = torch.tensor([i for i, _ in pairs])
        self.tgt_in = torch.full((len(pairs), T), PAD_ID, dtype=torch.int64)
        self.tgt_out = torch.full((len(pairs), T), PAD_ID, dtype=torch.int64)
        for row, (_, ids) in enumerate(pairs):
            self.tgt_in[row, : len(ids) + 1] = torch.tensor([BOS_ID] + ids)
            self.tgt_out[row, : len(ids) + 1] = torch.tensor(ids + [EOS_ID])
        self.images = torch.from_numpy(data.images)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed

    def __len__(self) -> int:
        return -(-len(self.image_index) // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[CaptionBatch]:
        n = len(self.image_index)
        order = epoch_order(n, epoch, seed=self.seed, shuffle=self.shuffle)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            T = int((self.tgt_out[idx] != PAD_ID).sum(dim=1).max())
            images = self.images[self.image_index[idx]]
            yield CaptionBatch(pack(images, self.tgt_in[idx, :T]), self.tgt_out[idx, :T])


def loss_fn(weight: float):
    """Cross-entropy of the caption words and <eos>, plus λ Σ_i (1 − Σ_t α_ti)² for soft attention."""
    def loss(out: CaptionOutput, batch) -> torch.Tensor:
        value = sequence_loss(out.logits, batch.y, ignore_index=PAD_ID)
        if out.weights is not None and weight > 0:
            value = value + weight * doubly_stochastic_penalty(out.weights.float(), batch.y != PAD_ID)
        return value

    return loss


def metrics(out: CaptionOutput, batch) -> dict[str, float]:
    valid = batch.y != PAD_ID
    return {"accuracy": float((out.logits.argmax(dim=-1) == batch.y)[valid].float().mean()),
            "cross_entropy": float(sequence_loss(out.logits, batch.y, ignore_index=PAD_ID))}


# ----- training -------------------------------------------------------------------------------------------

def model_config(vocab: Vocab, task: CaptionsTask, model_cfg: dict) -> CaptionerConfig:
    return CaptionerConfig(vocab_size=len(vocab), pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                           image_size=task.image_size, **model_cfg)


def train(task: CaptionsTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None, beam: int = 1) -> dict:
    """Train a Captioner into the run directory ``out``; score the best weights on the test images (greedy, or
    beam search with ``beam`` > 1 and greedy beside it under "greedy"). model_cfg: CaptionerConfig fields except
    vocabulary, ids and image size. Returns {"task", "data", "vocabulary", "parameters", "step", "seconds",
    "valid", "test" (see :func:`score_test_set`)}."""
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("captions: every caption is one sequence, trained whole; --bptt does not apply")
    out = Path(out)
    if model_cfg.get("attention", "soft") != "soft" and task.doubly_stochastic not in (0, 0.01):
        raise ValueError("captions: --doubly-stochastic weighs soft attention's regulariser; hard attention draws "
                         "one-hot weights and none has no weights (drop the option)")
    splits = read_splits(task)
    processing = task.processing
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "vocab.json", "trainer.pt"))
        vocab = check_pair_vocab(Vocab.from_json(checkpoint.read_json(out / "vocab.json")), "vocab.json")
    else:
        vocab = build_vocab(processing.tokens(c) for caps in splits["train"].captions for c in caps)
    seed_everything(cfg.seed)
    config = model_config(vocab, task, model_cfg)
    model = Captioner(config)
    train_data = CaptionBatches(splits["train"], vocab, processing, cfg.batch_size, shuffle=True, seed=cfg.seed)
    valid_data = CaptionBatches(splits["valid"], vocab, processing, max(cfg.batch_size, EVAL_BATCH), shuffle=False)
    longest = int(train_data.tgt_out.shape[1])
    run_config = {"task": "captions", "data": asdict(task), "model": asdict(config), "max_caption_len": longest}
    weight = task.doubly_stochastic if config.attention == "soft" else 0.0
    trainer = Trainer(model, cfg, loss_fn=loss_fn(weight), metrics_fn=metrics, train_data=train_data,
                      valid_data=valid_data, run_dir=out, run_config=run_config, resume=resume,
                      resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "vocab.json", vocab.to_json())
    began = time.perf_counter()
    valid = trainer.fit()
    seconds = time.perf_counter() - began
    if not trainer.world.is_main:
        return {}
    best = out / "model.best.safetensors"
    if best.exists():
        checkpoint.load_model(best, trainer.raw_model)
    model = trainer.raw_model.eval()
    test = score_test_set(model, vocab, processing, splits["test"], beam=beam, max_len=longest + 5,
                       device=trainer.device)
    hypotheses = test.pop("hypotheses")
    lines = ["image\treference\tcaption"] + [f"{n}\t{' | '.join(refs)}\t{h}" for n, refs, h in
                                             zip(splits["test"].names, splits["test"].captions, hypotheses)]
    checkpoint.atomic_write_bytes(out / "test_captions.tsv", ("\n".join(lines) + "\n").encode("utf-8"))
    checkpoint.atomic_write_json(out / "metrics_test.json", test)
    first = splits["test"].images[0]
    save_image(first, out / "test_image.png")
    if config.attention != "none":
        draw_attention(model, vocab, first, hypotheses[0].split(), out / "attention.png", device=trainer.device)
    return {"task": task.title, "data": {name: len(d) for name, d in splits.items()}, "vocabulary": len(vocab),
            "parameters": count_parameters(model), "step": trainer.step, "seconds": round(seconds, 1),
            "valid": valid, "test": test, "first_test_caption": hypotheses[0]}


# ----- decoding and scoring -------------------------------------------------------------------------------

@torch.no_grad()
def caption_images(model: Captioner, vocab: Vocab, images: np.ndarray, *, beam: int = 1, max_len: int = 30,
                   length_penalty: float = 1.0, device="cpu") -> list[list[str]]:
    """The caption tokens of every (3, S, S) uint8 image, greedy (beam 1) or by beam search."""
    S = model.config.image_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, S, S):
        raise ValueError(f"captions: expected images (N, 3, {S}, {S}), got {images.shape}")
    model.eval()
    result = []
    for start in range(0, len(images), EVAL_BATCH):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + EVAL_BATCH])).to(device)
        state = model.encode(chunk)
        common = dict(batch_size=len(chunk), bos_id=BOS_ID, eos_id=EOS_ID, max_len=max_len,
                      length_penalty=length_penalty)
        hyps = beam_search(model, state, beam_size=beam, **common) if beam > 1 else decode(model, state, **common)
        result += [vocab.decode(h.tokens) for h in hyps]
    return result


def score(model, vocab: Vocab, processing: Processing, data: CaptionedImages, *, beam: int = 1, max_len: int = 30,
          device="cpu") -> dict:
    """Caption the images and compare with their references: corpus BLEU (sacrebleu, every reference of an image)
    and exact match (the caption equals one reference); "hypotheses" holds the captions."""
    import sacrebleu

    hyps = [processing.join(t) for t in caption_images(model, vocab, data.images, beam=beam, max_len=max_len,
                                                       device=device)]
    refs = [[processing.join(processing.tokens(c)) for c in caps] for caps in data.captions]
    most = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else r[0] for r in refs] for k in range(most)]  # a repeated reference adds nothing
    return {"images": len(data), "decoding": f"beam {beam}" if beam > 1 else "greedy",
            "bleu": sacrebleu.corpus_bleu(hyps, streams).score,
            "exact_match": sum(h in r for h, r in zip(hyps, refs)) / len(data), "hypotheses": hyps}


def score_test_set(model, vocab: Vocab, processing: Processing, data: CaptionedImages, *, beam: int = 1,
                max_len: int = 30, device="cpu") -> dict:
    """The run's test report, :func:`score` with ``beam``; a beam search (beam > 1) has greedy decoding's BLEU and
    exact match beside it under "greedy". "hypotheses" holds the captions of ``beam``."""
    report = score(model, vocab, processing, data, beam=beam, max_len=max_len, device=device)
    if beam > 1:
        greedy = score(model, vocab, processing, data, beam=1, max_len=max_len, device=device)
        report["greedy"] = {"bleu": greedy["bleu"], "exact_match": greedy["exact_match"]}
    return report


# ----- a trained run --------------------------------------------------------------------------------------

def load(run_dir, *, best: bool = True, device="cpu") -> tuple[Captioner, Vocab, dict]:
    """(model, vocabulary, config) of a trained captions run; no code is unpickled."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("captions",),
                                                 need=("config.json", "vocab.json", "model.safetensors"))
    model = Captioner(CaptionerConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    vocab = check_pair_vocab(Vocab.from_json(checkpoint.read_json(run_dir / "vocab.json")), "vocab.json")
    if len(vocab) != model.config.vocab_size:
        raise checkpoint.CheckpointError(f"{run_dir}: vocab.json has {len(vocab)} tokens but the model expects "
                                         f"{model.config.vocab_size}")
    return model.to(device).eval(), vocab, config


def tested_beam(run_dir) -> int:
    """The beam width of a run's test report (its "decoding": "greedy" or "beam K"), 1 when the run has none yet."""
    path = Path(run_dir) / "metrics_test.json"
    decoding = str(checkpoint.read_json(path).get("decoding", "greedy")) if path.is_file() else "greedy"
    return int(decoding.split()[1]) if decoding.startswith("beam ") else 1


def evaluate_run(run_dir, *, beam: int | None = None, device="cpu") -> dict:
    """The test report of a run's best weights on the test images it was made with (the same generated scenes, or
    the same split of its image folder): BLEU and exact match, with ``beam`` (default: the beam of the run's own
    test report), and greedy beside a beam search. Equal to the run's metrics_test.json."""
    model, vocab, config = load(run_dir, device=device)
    task = CaptionsTask(**config["data"])
    beam = tested_beam(run_dir) if beam is None else check_positive_int("captions", "beam", beam)
    test = read_splits(task)["test"]
    report = score_test_set(model, vocab, task.processing, test, beam=beam,
                         max_len=int(config.get("max_caption_len", 30)) + 5, device=device)
    report.pop("hypotheses")
    return report


def caption(run_dir, images: list, *, beam: int = 5, length_penalty: float = 1.0, max_len: int | None = None,
            plot_attention=None, device="cpu") -> dict:
    """Caption image files with a trained run: {"captions": [...], "plot": the PNG or None}. Each image is
    converted to RGB and resized to the run's image size. ``plot_attention``: a PNG of the (single) image's
    attention, one panel per word."""
    model, vocab, config = load(run_dir, device=device)
    if not images:
        raise ValueError("caption: expected at least one image file, got none")
    if plot_attention is not None:
        if model.attention is None:
            raise ValueError(f"--plot-attention: the run in {run_dir} has no attention (--attention none)")
        if len(images) != 1:
            raise ValueError(f"--plot-attention draws the attention of one image, got {len(images)} images")
    pixels = np.stack([load_image(p, model.config.image_size) for p in images])
    limit = max_len or int(config.get("max_caption_len", 30)) + 5
    tokens = caption_images(model, vocab, pixels, beam=beam, max_len=limit, length_penalty=length_penalty,
                            device=device)
    processing = Processing(**{"tokenizer": "space", "lower": True} if config["data"].get("data") is None
                            else {"tokenizer": "13a", "lower": True})
    plot = None
    if plot_attention is not None:
        plot = draw_attention(model, vocab, pixels[0], tokens[0], plot_attention, device=device)
    return {"captions": [processing.join(t) for t in tokens], "plot": plot}


@torch.no_grad()
def attention_weights(model: Captioner, vocab: Vocab, image: np.ndarray, tokens: list[str], device="cpu"
                      ) -> torch.Tensor:
    """(T + 1, h, w): the attention of the steps that produce tokens + <eos> over the image's regions (the
    decoded caption fed back; in evaluation mode this repeats the decoding's own steps)."""
    tgt_in = torch.cat([torch.tensor([BOS_ID]), vocab.encode(tokens)])[None].to(device)
    model.eval()
    out = model.teacher_forced(torch.from_numpy(np.ascontiguousarray(image))[None].to(device), tgt_in)
    g = model.config.grid
    return out.weights[0].float().cpu().view(-1, g, g)


def draw_attention(model, vocab, image: np.ndarray, tokens: list[str], path, device="cpu") -> Path:
    weights = attention_weights(model, vocab, image, tokens, device)
    return plot_image_attention(image, weights, tokens + ["<eos>"], path)


def plot_image_attention(image: np.ndarray, weights, words: list[str], path, *, title: str = "") -> Path:
    """Write one panel per word -- the image, and over it that word's attention α_t upsampled from the h × w
    regions to the image (brighter: more weight) -- after a panel of the image alone. image (3, S, S) uint8;
    weights (T, h, w) for T words."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = np.asarray(weights.detach().cpu().float() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 3 or w.shape[0] != len(words):
        raise ValueError(f"plot_image_attention: expected weights (T, h, w) with T = {len(words)} words, got "
                         f"{w.shape}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"plot_image_attention: expected an image (3, S, S), got {image.shape}")
    picture = image.transpose(1, 2, 0)
    S = picture.shape[0]
    panels = len(words) + 1
    cols = min(panels, 6)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(picture, interpolation="nearest")
    axes.flat[0].set_title("image", fontsize=9)
    for k, word in enumerate(words, start=1):
        ax = axes.flat[k]
        ax.imshow(picture, interpolation="nearest")
        ax.imshow(w[k - 1], cmap="gray", alpha=0.6, extent=(-0.5, S - 0.5, S - 0.5, -0.5), interpolation="bilinear",
                  vmin=0.0, vmax=max(1e-9, float(w[k - 1].max())))
        ax.set_title(f"{word} ({w[k - 1].max():.2f})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return checkpoint.atomic_write_bytes(path, buffer.getvalue())


def describe(report: dict) -> str:
    """One line from the report of :func:`train` or the test report of :func:`evaluate_run`: ``test (beam 5, 1,000
    images): exact match 0.9570, BLEU 97.12; greedy: exact match 0.9480, BLEU 96.80``."""
    test = report["test"] if "test" in report else report
    line = (f"test ({test['decoding']}, {test['images']:,} images): exact match {test['exact_match']:.4f}, "
            f"BLEU {test['bleu']:.2f}")
    if "greedy" in test:
        line += f"; greedy: exact match {test['greedy']['exact_match']:.4f}, BLEU {test['greedy']['bleu']:.2f}"
    return line


__all__ = ["ATTENTIONS", "CaptionBatches", "CaptionsTask", "DEFAULT_MODEL", "caption", "caption_images", "describe",
           "evaluate_run", "load", "plot_image_attention", "score", "score_test_set", "train"]
