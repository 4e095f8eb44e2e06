"""Neural Turing Machine tasks (Graves, Wayne & Danihelka 2014; lecture 003): copy and repeat copy, generated and
seeded, trained through the Trainer into a run directory -- and the LSTM baseline trained the same way.

    seed ──SeededBatches (one length L per batch, fresh every epoch)──> NTM or LSTM ──logits (B, T, O)
      ──binary cross-entropy on the scored steps (the mask travels as Batch.weights)──> Trainer ──> run directory
    seed ──VALID / TEST streams──> fixed sets, one random length per sequence (keep-best; the test report)

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             test.json (the test report of the best weights), ntm_trace.png (an NTM's heads on one test sequence)

**Bit error.** A network's output bit is its logit > 0 (probability > 1/2); the bit error of a sequence is the
number of scored bits that differ from the target (Graves et al. report it per sequence). The report gives it
per sequence and as a rate (wrong bits / scored bits), overall and per input length L. The trivial baseline is a
network without memory: probability 1/2 for every bit (loss ln 2 nats per bit), which as bits is "predict 0",
wrong on every 1 of the target (about half of them).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .._modes import eval_mode
from ..data.algorithmic import (NTM_TASKS, TEST, VALID, FixedBatches, SeededBatches, Sequences, copy_sequences,
                                draw_integers, repeat_copy_sequences, seeded_generator)
from ..memory.ntm import NTM, NTMConfig
from ..models.sequence_tasks import SequenceModel, SequenceModelConfig
from ..models.sizing import count_parameters
from ..train import TrainConfig, Trainer, checkpoint, seed_everything

MODELS = ("ntm", "lstm")
DEFAULT_LENGTHS = {"copy": (1, 20), "repeat-copy": (1, 10)}  # Graves et al. 4.1, 4.2
LSTM_BASELINE = {"hidden": 256, "layers": 3}  # Graves et al.'s LSTM baseline: 3 layers of 256 cells
EVAL_BATCH = 100  # sequences per evaluation batch
LENGTH_SET = 1  # generator epoch of the fixed-length sets (evaluate_lengths), apart from the test set's 0


@dataclass
class NTMTask:
    """Which task and how much data. Sequences have L random vectors of ``width`` bits, L uniform on
    min_length..max_length; repeat copy repeats them R times, R uniform on min_repeats..max_repeats."""

    task: str = "copy"  # copy | repeat-copy
    width: int = 8
    min_length: int = 1
    max_length: int = 20
    min_repeats: int = 1
    max_repeats: int = 10
    batches_per_epoch: int = 100  # fresh training batches per epoch (validation after each by default)
    valid_size: int = 500
    test_size: int = 1000

    def __post_init__(self):
        if self.task not in NTM_TASKS:
            raise ValueError(f"NTMTask: expected task in {NTM_TASKS}, got {self.task!r}")
        for name in ("width", "min_length", "max_length", "min_repeats", "max_repeats", "batches_per_epoch",
                     "valid_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"NTMTask: expected {name} >= 1, got {value!r}")
        for low, high in (("min_length", "max_length"), ("min_repeats", "max_repeats")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"NTMTask: expected {low} <= {high}, got {getattr(self, low)} > "
                                 f"{getattr(self, high)}")

    @property
    def input_size(self) -> int:
        return self.width + (1 if self.task == "copy" else 2)  # bits + delimiter (+ number of repeats)

    @property
    def output_size(self) -> int:
        return self.width + (0 if self.task == "copy" else 1)  # bits (+ end marker)

    def sequences(self, lengths, generator: torch.Generator, repeats=None) -> Sequences:
        """Sequences with these input lengths (n,); repeat copy draws the repeats unless they are given."""
        if self.task == "copy":
            return copy_sequences(lengths, self.width, generator)
        if repeats is None:
            repeats = draw_integers(len(lengths), self.min_repeats, self.max_repeats, generator)
        return repeat_copy_sequences(lengths, repeats, self.width, generator,
                                     repeat_range=(self.min_repeats, self.max_repeats))

    def describe(self) -> str:
        what = f"{self.task}, vectors of {self.width} bits, lengths {self.min_length}-{self.max_length}"
        return what + (f", repeats {self.min_repeats}-{self.max_repeats}" if self.task == "repeat-copy" else "")


# ----- data -----------------------------------------------------------------------------------------------------

def training_batches(task: NTMTask, batch_size: int, seed: int) -> SeededBatches:
    """Fresh batches; every sequence of a batch has the same length L (and R), drawn per batch, so no step is
    padding. Over many batches the lengths follow the task's distribution."""

    def make(generator):
        L = draw_integers(1, task.min_length, task.max_length, generator).expand(batch_size)
        R = None if task.task == "copy" else \
            draw_integers(1, task.min_repeats, task.max_repeats, generator).expand(batch_size)
        return task.sequences(L, generator, R).batch()

    return SeededBatches(make, task.batches_per_epoch, seed=seed)


def fixed_set(task: NTMTask, size: int, seed: int, stream: int) -> FixedBatches:
    """A fixed set (VALID or TEST stream) with one random length per sequence."""
    generator = seeded_generator(seed, stream)
    lengths = draw_integers(size, task.min_length, task.max_length, generator)
    return FixedBatches(task.sequences(lengths, generator), EVAL_BATCH)


def length_set(task: NTMTask, length: int, size: int, seed: int) -> FixedBatches:
    """``size`` test sequences of exactly ``length`` input vectors (generalisation beyond the training lengths)."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length_set: expected length >= 1, got {length!r}")
    generator = seeded_generator(seed, TEST, LENGTH_SET, length)
    return FixedBatches(task.sequences(torch.full((size,), length), generator), EVAL_BATCH)


# ----- loss and metrics -----------------------------------------------------------------------------------------

def bit_loss(logits, batch):
    """Binary cross-entropy (nats) per scored bit: the mask (B, T) is batch.weights."""
    weight = batch.weights.unsqueeze(-1).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, batch.y, weight=weight, reduction="sum") / weight.sum()


def _wrong_bits(logits, batch):
    """Per sequence: wrong scored bits (B,) and scored bits (B,)."""
    scored = batch.weights.unsqueeze(-1).expand_as(logits)
    wrong = ((logits > 0).to(batch.y.dtype) != batch.y).to(scored.dtype) * scored
    return wrong.sum(dim=(1, 2)), scored.sum(dim=(1, 2))


def bit_metrics(logits, batch) -> dict:
    """Validation metrics of one batch: the bit error rate and the wrong bits per sequence."""
    wrong, scored = _wrong_bits(logits, batch)
    return {"bit_error_rate": float(wrong.sum() / scored.sum()), "bit_errors": float(wrong.mean())}


@torch.no_grad()
def score(model, source, width: int, *, device="cpu") -> dict:
    """Exact totals over a fixed set: {"sequences", "loss" (nats per scored bit), "bit_error_rate", "bit_errors"
    (per sequence), "baseline_bit_error_rate" (predict 0), "by_length": {L: {...}}}."""
    totals: dict[int, list[float]] = {}  # L -> [sequences, wrong bits, scored bits, target ones, loss sum]
    with eval_mode(model):
        for batch in source.batches():
            batch = batch.to(device)
            logits, _ = model(batch.x, None, lengths=batch.lengths)
            wrong, scored = _wrong_bits(logits, batch)
            weight = batch.weights.unsqueeze(-1).expand_as(logits)
            loss = (F.binary_cross_entropy_with_logits(logits, batch.y, reduction="none") * weight).sum(dim=(1, 2))
            ones = (batch.y * weight).sum(dim=(1, 2))
            L = batch.x[:, :, width].argmax(dim=1)  # the delimiter's step = the input length
            for row in range(batch.size):
                t = totals.setdefault(int(L[row]), [0, 0.0, 0.0, 0.0, 0.0])
                for i, v in enumerate((1, wrong[row], scored[row], ones[row], loss[row])):
                    t[i] += float(v)

    def summary(n, wrong, scored, ones, loss):
        return {"sequences": int(n), "loss": loss / scored, "bit_error_rate": wrong / scored, "bit_errors": wrong / n,
                "baseline_bit_error_rate": ones / scored}

    report = summary(*[sum(t[i] for t in totals.values()) for i in range(5)])
    report["by_length"] = {str(L): summary(*totals[L]) for L in sorted(totals)}
    return report


# ----- models ---------------------------------------------------------------------------------------------------

def model_config(task: NTMTask, model_cfg: dict):
    """("ntm", NTMConfig) or ("lstm", SequenceModelConfig) from model_cfg = {"model": "ntm", NTMConfig fields
    except the sizes} or {"model": "lstm", "hidden": H, "layers": L}."""
    fields = dict(model_cfg)
    kind = fields.pop("model", "ntm")
    if kind == "ntm":
        return kind, NTMConfig(input_size=task.input_size, output_size=task.output_size, **fields)
    if kind == "lstm":
        fields = {**LSTM_BASELINE, **fields}
        unknown = sorted(set(fields) - set(LSTM_BASELINE))
        if unknown:
            raise ValueError(f"ntm tasks: {', '.join(unknown)} apply to --model ntm, got --model lstm")
        return kind, SequenceModelConfig(input_size=task.input_size, output_size=task.output_size, model="lstm",
                                         readout="all", **fields)
    raise ValueError(f"ntm tasks: expected model in {MODELS}, got {kind!r}")


def build(kind: str, config):
    return NTM(config) if kind == "ntm" else SequenceModel(config)


def check_train_config(cfg: TrainConfig) -> None:
    if cfg.stateful:
        raise ValueError("ntm tasks: examples are independent sequences; expected stateful=False")
    if cfg.bptt is not None:
        raise ValueError("ntm tasks: every sequence is one example, trained whole; truncated BPTT (--bptt) does not "
                         "apply")


# ----- training and the run directory ---------------------------------------------------------------------------

def train(task: NTMTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train into the run directory ``out``; returns the test report of the best weights (see :func:`evaluate_run`)."""
    out = Path(out)
    kind, config = model_config(task, model_cfg)
    check_train_config(cfg)
    seed_everything(cfg.seed)
    model = build(kind, config)
    run_config = {"task": "ntm", "data": asdict(task), "model": {"kind": kind, "config": asdict(config)}}
    trainer = Trainer(model, cfg, loss_fn=bit_loss, train_data=training_batches(task, cfg.batch_size, cfg.seed),
                      valid_data=fixed_set(task, task.valid_size, cfg.seed, VALID), metrics_fn=bit_metrics,
                      run_dir=out, run_config=run_config, resume=resume, resume_command=resume_command)
    began = time.perf_counter()
    trainer.fit()
    if not trainer.world.is_main:
        return {}
    result = {**evaluate_run(out, device=trainer.device), "step": trainer.step,
              "seconds": round(time.perf_counter() - began, 1)}
    checkpoint.atomic_write_json(out / "test.json", result)
    if kind == "ntm":
        plot_trace(out, device=trainer.device)
    return result


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, task, config) of an ntm run directory (no code is unpickled)."""
    run_dir, config = checkpoint.read_run_config(run_dir, ["ntm"])
    kind, fields = config["model"]["kind"], config["model"]["config"]
    model = build(kind, NTMConfig(**fields) if kind == "ntm" else SequenceModelConfig(**fields))
    checkpoint.load_run_weights(run_dir, model, best=best)
    return model.to(device), NTMTask(**config["data"]), config


def evaluate_run(run_dir, *, device="cpu") -> dict:
    """The test report of a run's best weights on its own test set (seeded, never seen in training)."""
    model, task, config = load(run_dir, device=device)
    test = fixed_set(task, task.test_size, config["train"]["seed"], TEST)
    return {"task": task.task, "model": config["model"]["kind"], "parameters": count_parameters(model),
            "lengths": [task.min_length, task.max_length], "test_size": task.test_size,
            **score(model, test, task.width, device=device)}


def evaluate_lengths(run_dir, lengths, *, size: int = 200, device="cpu") -> dict:
    """Bit error of a run's best weights on ``size`` test sequences of each input length: {L: score(...)}."""
    model, task, config = load(run_dir, device=device)
    seed = config["train"]["seed"]
    return {L: score(model, length_set(task, L, size, seed), task.width, device=device) for L in lengths}


def plot_trace(run_dir, *, path=None, length: int | None = None, device="cpu") -> Path:
    """Draw the NTM's heads on one test sequence of ``length`` input vectors (default the longest trained)."""
    from ..memory.plot import plot_ntm_trace

    model, task, config = load(run_dir, device=device)
    if not isinstance(model, NTM):
        raise ValueError(f"{run_dir}: an LSTM run has no memory heads to draw")
    L = length or task.max_length
    generator = seeded_generator(config["train"]["seed"], TEST, LENGTH_SET + 1, L)
    seq = task.sequences(torch.tensor([L]), generator)
    trace = model.trace(seq.x.to(device))
    T = int(seq.lengths[0])
    probs = torch.sigmoid(trace["logits"][0, :T]) * seq.mask[0, :T, None].to(device)
    title = f"NTM {task.task}, L = {L}"
    if task.task == "repeat-copy":
        title += f", R = {int(seq.lengths[0] - L - 2) // L}"  # T = L·R + L + 2
    return plot_ntm_trace(seq.x[0, :T], seq.y[0, :T] * seq.mask[0, :T, None], probs, trace["read_weights"][0, :T],
                          trace["write_weights"][0, :T], trace["memory"][0, T - 1],
                          path or Path(run_dir) / "ntm_trace.png", title=title)


def describe(report: dict) -> str:
    """One line: ``test: bit error rate 0.12% (0.19 wrong bits per sequence), 0.0042 nats per bit, on 1,000 ...``."""
    low, high = report["lengths"]
    return (f"test: bit error rate {report['bit_error_rate']:.2%} ({report['bit_errors']:.3g} wrong bits per "
            f"sequence), {report['loss']:.4g} nats per bit, on {report['sequences']:,} sequences of lengths "
            f"{low}-{high} (no-memory baseline: {report['baseline_bit_error_rate']:.1%}, ln 2 = {math.log(2):.4f} "
            "nats per bit)")
