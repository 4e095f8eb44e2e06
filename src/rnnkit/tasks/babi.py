"""bAbI question answering with a Dynamic Memory Network (lecture 004; DMN+ of Xiong et al. 2016, DMN of Kumar
et al. 2016), trained through the Trainer into a run directory.

    tasks_1-20_v1-2/en[-10k]/qa{N}_*_{train,test}.txt[.gz] ──rnnkit.data.babi──> questions with their stories
      ──train file's vocabulary (vocab.json)──> BabiBatches (x: facts, question, decoder input; y: answer)
      ──DMN (rnnkit.models.dmn)──> answer cross-entropy (+ gate cross-entropy with --supervise-gates)
      ──Trainer (keeps the best validation loss)──> greedy answers on the test file ──> accuracy, gates.png

    run dir: config.json, vocab.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl,
             loss.png, test.json (the best weights' test report), gates.png (the gates of the first test
             question, one column per pass)

Accuracy is exact match: every answer word (and, for the decoder, the final <eos>) right. A task is "passed"
at >= 95 % test accuracy (Weston et al. 2015). ``answer(run_dir, text)`` answers questions about a story given
in the bAbI format and says which facts the last pass attended to.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data.babi import (EOS_ID, PAD_ID, QA, TASK_NAMES, BabiBatches, EncodedQA, build_vocab, check_task, collate,
                         encode, load_task, parse)
from ..data.vocab import Vocab
from ..models.dmn import ANSWERS, DMN, VARIANTS, DMNConfig, DMNOutput
from ..models.sizing import count_parameters
from ..train import TrainConfig, Trainer, checkpoint, seed_everything

PASS_MARK = 0.95  # a bAbI task is passed at >= 95 % test accuracy
EVAL_BATCH = 256


@dataclass
class BabiTask:
    """Which bAbI task, and how to train on it.

    data: the bAbI directory (tasks_1-20_v1-2/, holding en/ and en-10k/); task: 1..20; ten_k: the 10k training
    set instead of 1k; train_size: use only the first N training questions (a quick run; validation stays the
    last 10 % of the file); max_facts: keep the most recent N facts of longer stories (counted and warned);
    supervise_gates / gate_weight: add gate_weight x the gates' cross-entropy against the supporting facts.
    """

    data: str
    task: int = 1
    ten_k: bool = False
    train_size: int | None = None
    max_facts: int | None = None
    supervise_gates: bool = False
    gate_weight: float = 1.0

    def __post_init__(self):
        check_task(self.task)
        for name in ("train_size", "max_facts"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"babi: expected {name.replace('_', '-')} >= 1, got {value!r}")
        if not self.gate_weight > 0:
            raise ValueError(f"babi: expected gate_weight > 0, got {self.gate_weight!r}")
        if self.gate_weight != 1.0 and not self.supervise_gates:
            raise ValueError(f"babi: --gate-weight {self.gate_weight} weighs the gate loss of --supervise-gates; "
                             "give --supervise-gates too")

    @property
    def title(self) -> str:
        return f"bAbI task {self.task} ({TASK_NAMES[self.task]}), {'10k' if self.ten_k else '1k'}"


def model_config(vocab: Vocab, train: list[QA], *, variant: str = "dmn+", answer: str = "auto", **fields
                 ) -> DMNConfig:
    """The DMNConfig for a task: ``variant`` (dmn+ or dmn) sets sentence, fusion, gate, update and tied, which
    ``fields`` may override one by one (None: the variant's); ``answer`` auto is the GRU decoder when some
    training answer has several words (tasks 8, 19), else the softmax; the decoder may emit as many words
    as the longest training answer."""
    if variant not in VARIANTS:
        raise ValueError(f"babi: expected --variant in {', '.join(VARIANTS)}, got {variant!r}")
    if answer not in ("auto", *ANSWERS):
        raise ValueError(f"babi: expected --answer in auto, {', '.join(ANSWERS)}, got {answer!r}")
    longest = max(len(qa.answer) for qa in train)
    if answer == "auto":
        answer = "gru" if longest > 1 else "softmax"
    chosen = {**VARIANTS[variant], **{k: v for k, v in fields.items() if v is not None}}
    return DMNConfig(vocab_size=len(vocab), answer=answer, max_answer_len=longest, pad_id=PAD_ID, eos_id=EOS_ID,
                     **chosen)


def describe_model(config: DMNConfig) -> str:
    """``DMN+ (positional encoding + fusion, softmax gates, 3 passes, untied ReLU update, H 80, softmax answer)``."""
    name = "DMN+" if config.sentence == "pe" and config.fusion and config.update == "relu" else "DMN"
    sentence = "positional encoding" if config.sentence == "pe" else "story GRU"
    update = f"{'tied' if config.tied else 'untied'} {'ReLU' if config.update == 'relu' else 'GRU'} update"
    answer = "softmax answer" if config.answer == "softmax" else f"GRU decoder (<= {config.max_answer_len} words)"
    return (f"{name} ({sentence}{' + fusion' if config.fusion else ''}, {config.gate} gates, {config.passes} "
            f"passes, {update}, H {config.hidden}, {answer})")


# ----- loss and metrics -----------------------------------------------------------------------------------

def loss_fn(model: DMN, task: BabiTask):
    """The training loss ``loss(out, batch)``: answer cross-entropy, plus the weighted gate loss when supervised."""
    def loss(out: DMNOutput, batch) -> torch.Tensor:
        value = model.answer_loss(out.logits, batch.y)
        if task.supervise_gates:
            value = value + task.gate_weight * model.gate_loss(out, batch.supporting)
        return value

    return loss


def exact_match(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every answer step's best word (<pad> excluded, as in ``DMN.predict``) right, padding ignored. With
    teacher forcing this equals greedy decoding's exact match: both follow the gold prefix until the first wrong
    word."""
    best = logits.index_fill(-1, torch.tensor([PAD_ID], device=logits.device), float("-inf")).argmax(dim=-1)
    return ((best == y) | (y == PAD_ID)).all(dim=1)


def metrics(out: DMNOutput, batch) -> dict[str, float]:
    return {"accuracy": float(exact_match(out.logits, batch.y).float().mean())}


# ----- training -------------------------------------------------------------------------------------------

def read_splits(task: BabiTask) -> dict[str, list[QA]]:
    splits = load_task(task.data, task.task, ten_k=task.ten_k)
    if task.train_size is not None:
        if task.train_size > len(splits["train"]):
            raise ValueError(f"babi: --train-size {task.train_size} is more than the {len(splits['train'])} training "
                             f"questions of {task.title}")
        splits["train"] = splits["train"][: task.train_size]
    return splits


def encode_splits(splits: dict[str, list[QA]], vocab: Vocab, task: BabiTask) -> dict[str, EncodedQA]:
    return {name: encode(questions, vocab, max_facts=task.max_facts, source=f"{task.title} {name}")
            for name, questions in splits.items()}


def batches(encoded: EncodedQA, questions: list[QA], batch_size: int, config: DMNConfig, *, shuffle: bool,
            seed: int = 0) -> BabiBatches:
    return BabiBatches(encoded, batch_size, decoder=config.answer == "gru", shuffle=shuffle, seed=seed,
                       where=[qa.where for qa in questions])


def train(task: BabiTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train a DMN on one bAbI task into the run directory ``out``.

    model_options: ``variant``, ``answer`` and DMNConfig fields (hidden, passes, sentence, fusion, gate, update,
    tied, dropout; None keeps the variant's). Returns {"task", "data": questions per split, "vocabulary",
    "model", "parameters", "step", "best_step", "seconds", "test": test report (see :func:`evaluate_split`)}.
    """
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("babi: every question is one example read whole; truncated BPTT and carried state do not "
                         "apply (drop --bptt)")
    out = Path(out)
    seed_everything(cfg.seed)
    splits = read_splits(task)
    if resume:
        checkpoint.check_run_dir(out, need=("config.json", "vocab.json", "trainer.pt"))
        vocab = Vocab.from_json(checkpoint.read_json(out / "vocab.json"))
    else:
        vocab = build_vocab(splits["train"] + splits["valid"])  # the whole training file, never the test file
    config = model_config(vocab, splits["train"], **model_options)
    encoded = encode_splits(splits, vocab, task)
    model = DMN(config)
    train_data = batches(encoded["train"], splits["train"], cfg.batch_size, config, shuffle=True, seed=cfg.seed)
    valid_data = batches(encoded["valid"], splits["valid"], max(cfg.batch_size, EVAL_BATCH), config, shuffle=False)
    run_config = {"task": "babi", "data": asdict(task), "model": asdict(config)}
    trainer = Trainer(model, cfg, loss_fn=loss_fn(model, task), metrics_fn=metrics, train_data=train_data,
                      valid_data=valid_data, run_dir=out, run_config=run_config, resume=resume,
                      resume_command=resume_command)
    if not resume and trainer.world.is_main:
        checkpoint.atomic_write_json(out / "vocab.json", vocab.to_json())
    began = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - began
    if not trainer.world.is_main:
        return {}
    best = out / "model.best.safetensors"
    best_step = None
    if best.exists():
        checkpoint.load_model(best, trainer.raw_model)
        best_step = int(checkpoint.read_model_metadata(best)["step"])
    model = trainer.raw_model.eval()
    test = evaluate_split(model, encoded["test"], device=trainer.device)
    checkpoint.atomic_write_json(out / "test.json", test)
    first = splits["test"][0]
    words, gates = answer_questions(model, vocab, [first], max_facts=task.max_facts, device=trainer.device)
    plot_gates(gates[0], fact_labels(first, task.max_facts), out / "gates.png",
               title=f"{first.texts[-1]} -> {','.join(words[0])} (expected {','.join(first.answer)})")
    return {"task": task.title, "data": {name: len(q) for name, q in splits.items()}, "vocabulary": len(vocab),
            "model": describe_model(config), "parameters": count_parameters(model), "step": trainer.step,
            "best_step": best_step, "seconds": round(seconds, 1), "test": test}


@torch.no_grad()
def evaluate_split(model: DMN, data: EncodedQA, *, device="cpu") -> dict:
    """Greedy answers on every question: {"questions", "correct", "accuracy", "error"} (error in %)."""
    model.eval()
    correct = 0
    for start in range(0, len(data), EVAL_BATCH):
        rows = list(range(start, min(start + EVAL_BATCH, len(data))))
        x = collate(data, rows, decoder=False).x.to(device)
        ids, _ = model.predict(x[:, :-2], x[:, -2])
        for row, i in enumerate(rows):
            correct += [t for t in ids[row].tolist() if t != PAD_ID] == data.answer[i].tolist()
    n = len(data)
    return {"questions": n, "correct": correct, "accuracy": correct / n, "error": round(100 * (1 - correct / n), 2)}


# ----- using a trained run --------------------------------------------------------------------------------

def load(run_dir, *, best: bool = True, device="cpu") -> tuple[DMN, Vocab, dict]:
    """(model, vocabulary, config) of a trained bAbI run; no code is unpickled."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("babi",),
                                                 need=("config.json", "vocab.json", "model.safetensors"))
    model = DMN(DMNConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    vocab = Vocab.from_json(checkpoint.read_json(run_dir / "vocab.json"))
    if len(vocab) != model.config.vocab_size:
        raise checkpoint.CheckpointError(f"{run_dir}: vocab.json has {len(vocab)} words but the model expects "
                                         f"{model.config.vocab_size}")
    return model.to(device).eval(), vocab, config


def evaluate_run(run_dir, *, device="cpu") -> dict:
    """The test report of a run's best weights on its task's test file."""
    model, vocab, config = load(run_dir, device=device)
    task = BabiTask(**config["data"])
    test = read_splits(task)["test"]
    return evaluate_split(model, encode(test, vocab, max_facts=task.max_facts, source=f"{task.title} test"),
                          device=device)


def answer_questions(model: DMN, vocab: Vocab, questions: list[QA], *, max_facts: int | None = None,
                     device="cpu", source: str = "input") -> tuple[list[list[str]], list[torch.Tensor]]:
    """Greedy answers (lists of words) and each question's gates (T, F_i) over its (kept) facts."""
    encoded = encode(questions, vocab, max_facts=max_facts, source=source)
    batch = collate(encoded, list(range(len(questions))), decoder=False)
    x = batch.x.to(device)
    ids, out = model.predict(x[:, :-2], x[:, -2])
    answers = [vocab.decode(t for t in row.tolist() if t != PAD_ID) for row in ids]
    gates = [out.gates[i, :, : encoded.facts[i].shape[0]].cpu() for i in range(len(questions))]
    return answers, gates


def fact_labels(qa: QA, max_facts: int | None = None) -> list[str]:
    """``"4 Daniel went back to the hallway."`` (line ID and text) for each fact the model reads (the kept ones
    under max_facts)."""
    keep = len(qa.facts) if max_facts is None else min(max_facts, len(qa.facts))
    return [f"{i} {text}" for i, text in zip(qa.fact_ids[-keep:], qa.texts[:-1][-keep:])]


def answer(run_dir, text: str, *, source: str = "<input>", device="cpu", top: int = 5, min_gate: float = 0.1,
           plot: str | Path | None = None) -> list[dict]:
    """Answer every question of ``text`` (bAbI format: numbered facts, questions ending with "?" or with a TAB;
    an answer after the TAB is compared). One dict per question: {"question", "answer", "expected" (None when not
    given), "correct" (None likewise), "attended": [(fact label, gate)] of the last pass -- the facts with a gate
    >= min_gate, highest first, at least one and at most ``top`` -- "gates": (T, F) per pass and fact,
    "facts": the fact labels, "where", "plot": the PNG written or None}. With ``plot``, the gates of each
    question are drawn per pass (plot itself for one question, plot-1.png, plot-2.png, ... for several)."""
    model, vocab, config = load(run_dir, device=device)
    questions = parse(text.splitlines(), source, need_answers=False)
    if not questions:
        raise ValueError(f"{source}: no question found (expected bAbI lines: 'ID fact' lines, then 'ID question?' "
                         "or 'ID question<TAB>answer<TAB>supporting IDs')")
    max_facts = config["data"].get("max_facts")
    answers, gates = answer_questions(model, vocab, questions, max_facts=max_facts, device=device, source=source)
    results = []
    for n, (qa, words, g) in enumerate(zip(questions, answers, gates), start=1):
        labels = fact_labels(qa, max_facts)
        last = g[-1]
        order = sorted(range(len(labels)), key=lambda i: -float(last[i]))
        attended = [(labels[i], float(last[i])) for i in order[:top] if float(last[i]) >= min_gate] or \
            [(labels[order[0]], float(last[order[0]]))]
        path = None
        if plot is not None:
            plot = Path(plot)
            path = plot if len(questions) == 1 else plot.with_name(f"{plot.stem}-{n}{plot.suffix or '.png'}")
            plot_gates(g, labels, path, title=f"{qa.texts[-1]} -> {','.join(words) or '?'}")
        expected = qa.answer or None
        results.append({"question": qa.texts[-1], "answer": ",".join(words), "where": qa.where,
                        "expected": None if expected is None else ",".join(expected),
                        "correct": None if expected is None else words == expected,
                        "attended": attended, "gates": g.tolist(), "facts": labels, "plot": path})
    return results


def plot_gates(gates, labels: list[str], path, *, title: str = "") -> Path:
    """Write the gates g_i^t of one question as a PNG: a row per fact, a column per pass, the value in each cell
    (matplotlib, Agg). gates (T, F) for F facts labelled ``labels``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    g = np.asarray(gates.detach().cpu().float() if hasattr(gates, "detach") else gates, dtype=float)
    if g.ndim != 2 or g.shape[1] != len(labels):
        raise ValueError(f"plot_gates: expected gates (T, F) with F = {len(labels)} facts, got shape {g.shape}")
    T, F_ = g.shape
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * T + 0.09 * max(len(s) for s in labels) + 1.5),
                                    max(2.5, 0.32 * F_ + 1.2)))
    image = ax.imshow(g.T, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for t in range(T):
        for i in range(F_):
            ax.text(t, i, f"{g[t, i]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if g[t, i] > 0.6 else "white")
    ax.set_xticks(range(T), labels=[f"pass {t + 1}" for t in range(T)])
    ax.set_yticks(range(F_), labels=labels, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="gate g")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return checkpoint.atomic_write_bytes(path, buffer.getvalue())
