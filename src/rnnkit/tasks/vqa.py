"""Visual question answering on generated scenes with DMN+ (lecture 004; ``rnnkit.models.vqa``).

    scene_splits (rnnkit.data.scenes, seeded) ──one question per scene, types drawn evenly──> SceneQuestions
      ──question vocabulary (vocab.json), answer vocabulary (answers.json)──> VQABatches (x: pixels + question
      packed, y: the answer id) ──VisualDMN, cross-entropy──> Trainer (keeps the best on validation)
      ──best model on the test scenes──> accuracy, overall and per question type; gates.png

    run dir: config.json, vocab.json, answers.json, model.safetensors, model.best.safetensors, trainer.pt,
             metrics.jsonl, loss.png, test.json, gates.png (the last pass's gates of the first test question
             over the image regions, beside the image)

Questions: "what colour is the circle ?", "what colour is the shape left of the square ?", "what size is the
triangle ?", "how many squares are there ?" (``rnnkit.data.scenes.scene_questions``); the answer is one word.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch

from .._checks import check_positive_int
from ..data.batching import Batch, epoch_order
from ..data.scenes import COLOURS, NUMBERS, QUESTION_TYPES, SIZES, SceneQuestions, question_splits
from ..data.vocab import Vocab
from ..models.captioner import pack
from ..models.sizing import count_parameters
from ..models.vqa import VisualDMN, VQAConfig, snake_order
from ..train import TrainConfig, Trainer, checkpoint, seed_everything

PAD, UNK = "<pad>", "<unk>"
ANSWERS = sorted(COLOURS) + sorted(SIZES) + list(NUMBERS)
EVAL_BATCH = 256
DEFAULT_MODEL = {"channels": (32, 64, 64), "pools": 2, "hidden": 64, "passes": 3}


@dataclass
class VQATask:
    image_size: int = 32
    train_size: int = 20_000
    valid_size: int = 500
    test_size: int = 1_000
    data_seed: int = 0

    def __post_init__(self):
        for name in ("train_size", "valid_size", "test_size", "image_size"):
            check_positive_int("VQATask", name, getattr(self, name))


def question_vocab(data: SceneQuestions) -> Vocab:
    words = sorted({w for q in data.questions for w in q.split()})
    return Vocab([PAD, UNK] + words, unk=UNK, level="word")


class VQABatch(Batch):
    @property
    def tokens(self) -> int:
        return int(self.y.shape[0])


class VQABatches:
    """(image, question) -> answer id, reshuffled every epoch from (seed, epoch)."""

    def __init__(self, data: SceneQuestions, vocab: Vocab, batch_size: int, *, shuffle: bool = True, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"VQABatches: expected batch_size >= 1, got {batch_size}")
        unknown = sorted({a for a in data.answers if a not in ANSWERS})
        if unknown:
            raise ValueError(f"VQABatches: answers {unknown} are not in the answer vocabulary {ANSWERS}")
        ids = [vocab.encode(q.split()) for q in data.questions]
        self.questions = torch.zeros(len(ids), max(len(i) for i in ids), dtype=torch.int64)
        for row, i in enumerate(ids):
            self.questions[row, : len(i)] = i
        self.answers = torch.tensor([ANSWERS.index(a) for a in data.answers])
        self.images = torch.from_numpy(data.images)[torch.tensor(data.image)]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed

    def __len__(self) -> int:
        return -(-len(self.answers) // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[VQABatch]:
        n = len(self.answers)
        order = epoch_order(n, epoch, seed=self.seed, shuffle=self.shuffle)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield VQABatch(pack(self.images[idx], self.questions[idx]), self.answers[idx])


def loss_fn(out, batch) -> torch.Tensor:
    return VisualDMN.loss(out, batch.y)


def metrics(out, batch) -> dict[str, float]:
    return {"accuracy": float((out[0].argmax(dim=-1) == batch.y).float().mean())}


def train(task: VQATask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train a VisualDMN on generated scene questions into ``out``; test accuracy overall and per question type."""
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("vqa: every question is one example read whole; --bptt does not apply")
    out = Path(out)
    splits = question_splits(task.train_size, task.valid_size, task.test_size, size=task.image_size,
                             seed=task.data_seed)
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "vocab.json", "trainer.pt"))
        vocab = Vocab.from_json(checkpoint.read_json(out / "vocab.json"))
    else:
        vocab = question_vocab(splits["train"])
    seed_everything(cfg.seed)
    config = VQAConfig(vocab_size=len(vocab), answer_size=len(ANSWERS), image_size=task.image_size, **model_cfg)
    model = VisualDMN(config)
    train_data = VQABatches(splits["train"], vocab, cfg.batch_size, shuffle=True, seed=cfg.seed)
    valid_data = VQABatches(splits["valid"], vocab, max(cfg.batch_size, EVAL_BATCH), shuffle=False)
    run_config = {"task": "vqa", "data": asdict(task), "model": asdict(config)}
    trainer = Trainer(model, cfg, loss_fn=loss_fn, metrics_fn=metrics, train_data=train_data, valid_data=valid_data,
                      run_dir=out, run_config=run_config, resume=resume, resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "vocab.json", vocab.to_json())
        checkpoint.atomic_write_json(out / "answers.json", ANSWERS)
    began = time.perf_counter()
    valid = trainer.fit()
    seconds = time.perf_counter() - began
    if not trainer.world.is_main:
        return {}
    best = out / "model.best.safetensors"
    if best.exists():
        checkpoint.load_model(best, trainer.raw_model)
    model = trainer.raw_model.eval()
    test = evaluate(model, splits["test"], vocab, device=trainer.device)
    checkpoint.atomic_write_json(out / "test.json", test)
    plot_gates(model, splits["test"], vocab, out / "gates.png", device=trainer.device)
    return {"data": {name: len(d) for name, d in splits.items()}, "vocabulary": len(vocab),
            "parameters": count_parameters(model), "step": trainer.step, "seconds": round(seconds, 1),
            "valid": valid, "test": test}


@torch.no_grad()
def predict(model: VisualDMN, data: SceneQuestions, vocab: Vocab, device="cpu") -> tuple[list[str], torch.Tensor]:
    """The answer word of every question, and the gates (N, T, L) of every pass over the facts."""
    source = VQABatches(data, vocab, EVAL_BATCH, shuffle=False)
    model.eval()
    answers, gates = [], []
    for batch in source.batches():
        (logits, g), _ = model(batch.x.to(device))
        answers += [ANSWERS[i] for i in logits.argmax(dim=-1).tolist()]
        gates.append(g.cpu())
    return answers, torch.cat(gates)


def evaluate(model, data: SceneQuestions, vocab: Vocab, device="cpu") -> dict:
    """{"questions", "accuracy", "by_type": {type: {"questions", "accuracy"}}}."""
    answers, _ = predict(model, data, vocab, device)
    right = [a == b for a, b in zip(answers, data.answers)]
    by_type = {}
    for kind in QUESTION_TYPES:
        picked = [r for r, t in zip(right, data.types) if t == kind]
        if picked:
            by_type[kind] = {"questions": len(picked), "accuracy": sum(picked) / len(picked)}
    return {"questions": len(right), "accuracy": sum(right) / len(right), "by_type": by_type}


def load(run_dir, *, best: bool = True, device="cpu") -> tuple[VisualDMN, Vocab, dict]:
    """(model, question vocabulary, config) of a trained vqa run; no code is unpickled."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("vqa",),
                                                 need=("config.json", "vocab.json", "model.safetensors"))
    model = VisualDMN(VQAConfig(**{"feature_norm": False, **config["model"]}))  # runs from before the norm had none
    checkpoint.load_run_weights(run_dir, model, best=best)
    vocab = Vocab.from_json(checkpoint.read_json(run_dir / "vocab.json"))
    if len(vocab) != model.config.vocab_size:
        raise checkpoint.CheckpointError(f"{run_dir}: vocab.json has {len(vocab)} words but the model expects "
                                         f"{model.config.vocab_size}")
    if (run_dir / "answers.json").is_file() and checkpoint.read_json(run_dir / "answers.json") != ANSWERS:
        raise checkpoint.CheckpointError(f"{run_dir}: answers.json does not list this version's answers {ANSWERS}")
    return model.to(device).eval(), vocab, config


def evaluate_run(run_dir, *, device="cpu") -> dict:
    """The test report of a run's best weights on the generated test questions it was made with (the same
    scenes and questions, from its data seed): equal to the run's test.json."""
    model, vocab, config = load(run_dir, device=device)
    task = VQATask(**config["data"])
    splits = question_splits(task.train_size, task.valid_size, task.test_size, size=task.image_size,
                             seed=task.data_seed)  # the test questions' draw follows the other splits'
    return evaluate(model, splits["test"], vocab, device=device)


def plot_gates(model, data: SceneQuestions, vocab: Vocab, path, device="cpu") -> Path:
    """The first question's image beside its last-pass gates, put back from snake order onto the h × w grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = SceneQuestions(data.images, data.image[:1], data.types[:1], data.questions[:1], data.answers[:1])
    answers, gates = predict(model, first, vocab, device)
    g = model.config.grid
    grid = torch.zeros(g * g)
    grid[snake_order(g, g)] = gates[0, -1]  # fact k is region snake_order[k]
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    axes[0].imshow(data.images[data.image[0]].transpose(1, 2, 0), interpolation="nearest")
    axes[1].imshow(grid.view(g, g).numpy(), cmap="viridis")
    for ax in axes:
        ax.axis("off")
    axes[1].set_title("gates, last pass", fontsize=9)
    fig.suptitle(f"{data.questions[0]} -> {answers[0]} (expected {data.answers[0]})", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return checkpoint.atomic_write_bytes(path, buffer.getvalue())


def describe(report: dict) -> str:
    """One line from the report of :func:`train` or the test report of :func:`evaluate_run`."""
    test = report["test"] if "test" in report else report
    return (f"test accuracy {test['accuracy']:.2%} on {test['questions']:,} questions; by type: " + ", ".join(
        f"{k} {test['by_type'][k]['accuracy']:.1%} ({test['by_type'][k]['questions']})"
        for k in QUESTION_TYPES if k in test["by_type"]))  # in QUESTION_TYPES order, however the JSON was sorted

