"""Adaptive Computation Time on the parity task (Graves 2016, section 3.1; lecture 003), generated and seeded,
trained through the Trainer into a run directory.

    seed ──SeededBatches (fresh every epoch)──> x (B, 1, D) ──ACTModel (a cell that ponders)──> logit, N(t), R(t)
      ──binary cross-entropy + τ · ponder cost ρ = N + R──> Trainer ──> run directory
    seed ──VALID / TEST streams──> fixed sets (keep-best; the test report, by number of non-zero entries)

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             test.json (the test report of the best weights), ponder.png (ponder steps per input)

Each parity example is a single input vector (a sequence of one step, as in Graves 2016): its difficulty is the
number of non-zero entries k, and the report gives accuracy and mean ponder steps per range of k. ``max_steps = 1``
is the network without ACT (one step per input, Graves's baseline). Guessing is right half the time.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .._modes import eval_mode
from ..data.algorithmic import TEST, VALID, SeededBatches, parity_vectors, seeded_generator
from ..data.batching import Batch, TensorBatches
from ..memory.act import ACTConfig, ACTModel
from ..models.sizing import count_parameters
from ..train import TrainConfig, Trainer, checkpoint, seed_everything

TASKS = ("parity",)
EVAL_BATCH = 500
BINS = 8  # the report groups the inputs into this many ranges of non-zero entries


@dataclass
class ACTTask:
    """Parity vectors of ``size`` entries; the loss adds ``time_penalty`` (τ) times the ponder cost."""

    task: str = "parity"
    size: int = 64  # D, entries per input vector (Graves: 64)
    time_penalty: float = 1e-3  # τ (Graves sweeps a grid of values on parity)
    batches_per_epoch: int = 100
    valid_size: int = 1000
    test_size: int = 2000

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"ACTTask: expected task in {TASKS}, got {self.task!r}")
        for name in ("size", "batches_per_epoch", "valid_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ACTTask: expected {name} >= 1, got {value!r}")
        tau = self.time_penalty
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (tau >= 0 and math.isfinite(tau)):
            raise ValueError(f"ACTTask: expected time_penalty >= 0 (τ), got {tau!r}")


def loss_fn(task: ACTTask):
    """Binary cross-entropy per input + τ ρ per input (both averaged over the inputs of the batch)."""

    def loss(out, batch):
        return F.binary_cross_entropy_with_logits(out.logits, batch.y) + task.time_penalty * out.halting.cost.mean()

    return loss


def metrics(out, batch) -> dict:
    return {"accuracy": float(((out.logits > 0).to(batch.y.dtype) == batch.y).float().mean()),
            "ponder_steps": float(out.halting.steps.mean()), "ponder_cost": float(out.halting.cost.mean())}


def training_batches(task: ACTTask, batch_size: int, seed: int) -> SeededBatches:
    return SeededBatches(lambda g: Batch(*parity_vectors(batch_size, task.size, g)), task.batches_per_epoch, seed=seed)


def fixed_set(task: ACTTask, size: int, seed: int, stream: int) -> TensorBatches:
    x, y = parity_vectors(size, task.size, seeded_generator(seed, stream))
    return TensorBatches(x, y, min(EVAL_BATCH, size), shuffle=False)


def check_train_config(cfg: TrainConfig) -> None:
    if cfg.stateful:
        raise ValueError("act tasks: examples are independent; expected stateful=False")
    if cfg.bptt is not None:
        raise ValueError("act tasks: every example is one input, trained whole; truncated BPTT (--bptt) does not "
                         "apply")


def model_config(task: ACTTask, model_cfg: dict) -> ACTConfig:
    """model_cfg: ACTConfig fields except the sizes (cell, hidden_size, epsilon, max_steps, halting_bias)."""
    return ACTConfig(input_size=task.size, output_size=1, **model_cfg)


def train(task: ACTTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train into the run directory ``out``; returns the test report of the best weights (see :func:`evaluate_run`)."""
    out = Path(out)
    config = model_config(task, model_cfg)
    check_train_config(cfg)
    seed_everything(cfg.seed)
    model = ACTModel(config)
    run_config = {"task": "act", "data": asdict(task), "model": asdict(config)}
    trainer = Trainer(model, cfg, loss_fn=loss_fn(task), train_data=training_batches(task, cfg.batch_size, cfg.seed),
                      valid_data=fixed_set(task, task.valid_size, cfg.seed, VALID), metrics_fn=metrics, run_dir=out,
                      run_config=run_config, resume=resume, resume_command=resume_command)
    began = time.perf_counter()
    trainer.fit()
    if not trainer.world.is_main:
        return {}
    result = {**evaluate_run(out, device=trainer.device, plot=out / "ponder.png"), "step": trainer.step,
              "seconds": round(time.perf_counter() - began, 1)}
    checkpoint.atomic_write_json(out / "test.json", result)
    return result


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, task, config) of an act run directory (no code is unpickled)."""
    run_dir, config = checkpoint.read_run_config(run_dir, ["act"])
    model = ACTModel(ACTConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    return model.to(device), ACTTask(**config["data"]), config


@torch.no_grad()
def predict(model: ACTModel, x, *, device="cpu", batch_size: int = EVAL_BATCH):
    """Logits, ponder steps and ponder costs, each (n,), of parity inputs x (n, 1, D)."""
    logits, steps, cost = [], [], []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            out, _ = model(x[i:i + batch_size].to(device))
            logits.append(out.logits.flatten().cpu())
            steps.append(out.halting.steps.flatten().cpu())
            cost.append(out.halting.cost.flatten().cpu())
    return torch.cat(logits), torch.cat(steps), torch.cat(cost)


def evaluate_run(run_dir, *, device="cpu", plot=None) -> dict:
    """The test report of a run's best weights on its own test set: accuracy, loss, mean ponder steps and cost,
    and per range of non-zero entries ("by_nonzeros"); ``plot``: also draw ponder.png there."""
    model, task, config = load(run_dir, device=device)
    x, y = parity_vectors(task.test_size, task.size, seeded_generator(config["train"]["seed"], TEST))
    logits, steps, cost = predict(model, x, device=device)
    y = y.flatten()
    correct = (logits > 0).float() == y
    nonzeros = (x != 0).sum(dim=(1, 2))
    width = math.ceil(task.size / BINS)
    by = {}
    for low in range(1, task.size + 1, width):
        high = min(task.size, low + width - 1)
        rows = (nonzeros >= low) & (nonzeros <= high)
        if rows.any():
            by[f"{low}-{high}"] = {"inputs": int(rows.sum()), "accuracy": float(correct[rows].float().mean()),
                                   "ponder_steps": float(steps[rows].mean())}
    if plot is not None:
        from ..memory.plot import plot_ponder

        plot_ponder(steps, nonzeros, plot, correct=correct,
                    title=f"ACT parity, D = {task.size}, τ = {task.time_penalty:g}: ponder steps per input")
    bce = float(F.binary_cross_entropy_with_logits(logits, y))
    return {"task": task.task, "size": task.size, "cell": model.config.cell, "parameters": count_parameters(model),
            "test_size": task.test_size, "accuracy": float(correct.float().mean()), "loss": bce,
            "ponder_steps": float(steps.mean()), "ponder_cost": float(cost.mean()), "time_penalty": task.time_penalty,
            "max_steps": model.config.max_steps, "by_nonzeros": by}


def describe(report: dict) -> str:
    """One line: ``test: accuracy 99.10% on 2,000 parity vectors of 64 entries, 3.12 ponder steps per input ...``."""
    return (f"test: accuracy {report['accuracy']:.2%} on {report['test_size']:,} parity vectors of {report['size']} "
            f"entries (chance: 50%), {report['ponder_steps']:.3g} ponder steps per input (at most "
            f"{report['max_steps']}), ponder cost {report['ponder_cost']:.3g}, cross-entropy {report['loss']:.4f}")
