"""Long-range memory tasks (lectures 002, 003; Bai, Kolter & Koltun 2018): the adding problem, copy memory and
the noisy 1-2-3 pattern, generated on the fly, trained through the Trainer into a run directory.

    seed ──GeneratedBatches (fresh batches every epoch)──> SequenceModel (ENCODERS: rnn, gru, lstm, tcn, ...)
      ──loss: MSE (adding, pattern) or cross-entropy per step (copy)──> Trainer ──> run directory
    seed ──generate(stream VALID / TEST)──> fixed validation set (keep-best, early stopping) and test set

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             test.json (the test report of the best weights)

Each task has a trivial baseline (``rnnkit.data.synthetic.baseline``): a model that has learned nothing
about memory scores it, so a result is only worth its distance below it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch.nn.functional as F

from ..data import TensorBatches, synthetic
from ..data.synthetic import COPY_MEMORY, GeneratedBatches, baseline, baseline_loss, generate
from ..models.sequence_tasks import SequenceModel, SequenceModelConfig
from ..models.sizing import count_parameters, hidden_for_parameters
from ..train import TrainConfig, Trainer, checkpoint, evaluate, seed_everything, sequence_loss

DEFAULT_LENGTH = {"adding": 600, "copy": 1000, "pattern": 30}
TITLES = {"adding": "adding problem", "copy": "copy memory", "pattern": "noisy 1-2-3 pattern"}
LOSS_NAMES = {"adding": "MSE", "copy": "cross-entropy per step", "pattern": "MSE"}
READOUT = {"adding": "last", "copy": "all", "pattern": "all"}
DEFAULT_MODEL = {"adding": "gru", "copy": "tcn", "pattern": "gru"}  # adding, copy: solved by it in Bai et al.'s table
BUDGETS = {"adding": 70_000, "copy": 16_000, "pattern": 2_000}  # parameters: Bai et al.'s table; pattern: small
TCN_SHAPE = {"adding": (8, 7), "copy": (8, 8), "pattern": (3, 3)}  # (levels, kernel size): Bai et al.'s code
EVAL_BATCH = 200  # sequences per evaluation batch (memory, not statistics: the whole set is averaged)


@dataclass
class MemoryTask:
    """Which task and how much data. ``length`` is T: the steps of an adding/pattern sequence, or the blank
    length of copy memory (sequences of T + 20 steps)."""

    task: str  # adding | copy | pattern
    length: int
    batches_per_epoch: int = 100  # fresh training batches per epoch (validation after each by default)
    valid_size: int = 1000
    test_size: int = 1000

    def __post_init__(self):
        synthetic.check_task("MemoryTask", self.task)
        for name in ("length", "batches_per_epoch", "valid_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MemoryTask: expected {name} >= 1, got {value!r}")
        if self.task == "adding" and self.length < 2:
            raise ValueError(f"MemoryTask: the adding problem needs length >= 2 (two marked steps), got {self.length}")


def loss_fn(task: str):
    """The task's training loss ``loss(preds, batch)``."""
    if task == "copy":
        return lambda logits, batch: sequence_loss(logits, batch.y)  # mean cross-entropy over every step
    return lambda preds, batch: F.mse_loss(preds, batch.y)


def copy_metrics(logits, batch) -> dict:
    """Accuracy on the 10 recalled symbols (the only steps that need memory)."""
    recalled = logits[:, -COPY_MEMORY:].argmax(dim=-1)
    return {"recall_accuracy": float((recalled == batch.y[:, -COPY_MEMORY:]).float().mean())}


def fixed_set(task: MemoryTask, size: int, seed: int, stream: int) -> TensorBatches:
    x, y = generate(task.task, size, task.length, seed=seed, stream=stream)
    return TensorBatches(x, y, min(EVAL_BATCH, size), shuffle=False)


def baseline_on_test_set(task: MemoryTask, seed: int) -> dict:
    """The trivial predictor on the test set, and its expected value: {"name", "loss", "expected"}."""
    name, expected = baseline(task.task, task.length)
    x, y = generate(task.task, task.test_size, task.length, seed=seed, stream=synthetic.TEST)
    return {"name": name, "loss": baseline_loss(task.task, x, y), "expected": expected}


def model_config(task: MemoryTask, model_cfg: dict) -> SequenceModelConfig:
    """model_cfg: SequenceModelConfig fields except the task's sizes and readout (model, hidden, layers, ...)."""
    return SequenceModelConfig(input_size=synthetic.input_size(task.task), output_size=synthetic.output_size(task.task),
                               readout=READOUT[task.task], **model_cfg)


def sized_model(task: str, model: str, *, hidden: int | None = None, params: int | None = None,
                layers: int | None = None, kernel_size: int | None = None, dropout: float = 0.0) -> dict:
    """The model fields (``model_cfg`` of :func:`train`) with the defaults filled in: 1 recurrent layer, or
    Bai et al.'s TCN levels and kernel size for the task; ``hidden`` sized so that the model has about
    ``params`` parameters (default: the task's budget in ``BUDGETS``) unless it is given."""
    synthetic.check_task("sized_model", task)
    if hidden is not None and params is not None:
        raise ValueError(f"{task}: give --hidden or --params, not both (got hidden={hidden}, params={params})")
    levels, kernel = TCN_SHAPE[task]
    if model == "tcn":
        layers, kernel_size = layers or levels, kernel_size or kernel
    else:
        layers = layers or 1
    fields = {"model": model, "hidden": hidden or 1, "layers": layers, "kernel_size": kernel_size, "dropout": dropout}
    if hidden is None:
        config = SequenceModelConfig(input_size=synthetic.input_size(task), output_size=synthetic.output_size(task),
                                     readout=READOUT[task], **fields)
        fields["hidden"] = hidden_for_parameters(lambda h: SequenceModel(replace(config, hidden=h)),
                                                 params or BUDGETS[task])
    return fields


def check_train_config(task: MemoryTask, model: SequenceModelConfig, cfg: TrainConfig) -> None:
    if cfg.stateful:
        raise ValueError(f"{task.task}: examples are independent sequences; expected stateful=False")
    if cfg.bptt is not None and task.task == "adding":
        raise ValueError("adding: truncated BPTT (--bptt) needs a target at every step; the adding problem has one "
                         "per sequence")
    if cfg.bptt is not None and model.model == "tcn":
        raise ValueError("tcn: truncated BPTT (--bptt) needs a state to carry between windows; a TCN has none")


def train(task: MemoryTask, model_cfg: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train into the run directory ``out``; returns the test report of the best weights (see :func:`report`)."""
    out = Path(out)
    config = model_config(task, model_cfg)
    check_train_config(task, config, cfg)
    seed_everything(cfg.seed)
    model = SequenceModel(config)
    train_data = GeneratedBatches(task.task, task.length, cfg.batch_size, task.batches_per_epoch, seed=cfg.seed)
    valid_data = fixed_set(task, task.valid_size, cfg.seed, synthetic.VALID)
    run_config = {"task": task.task, "data": asdict(task), "model": asdict(config)}
    trainer = Trainer(model, cfg, loss_fn=loss_fn(task.task), train_data=train_data, valid_data=valid_data,
                      metrics_fn=copy_metrics if task.task == "copy" else None, run_dir=out,
                      run_config=run_config, resume=resume, resume_command=resume_command)
    began = time.perf_counter()
    trainer.fit()
    if not trainer.world.is_main:
        return {}
    result = {**evaluate_run(out, device=trainer.device), "step": trainer.step,
              "seconds": round(time.perf_counter() - began, 1)}
    checkpoint.atomic_write_json(out / "test.json", result)
    return result


def is_run(run_dir) -> bool:
    """Whether run_dir holds an adding, copy or pattern run."""
    return checkpoint.run_task(run_dir) in synthetic.TASKS


def load(run_dir, *, best: bool = True, device="cpu") -> tuple[SequenceModel, MemoryTask, dict]:
    """Rebuild a trained memory-task model from its run directory (no code is unpickled)."""
    run_dir, config = checkpoint.read_run_config(run_dir, synthetic.TASKS)
    model = SequenceModel(SequenceModelConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    return model.to(device), MemoryTask(**config["data"]), config


def evaluate_run(run_dir, *, device="cpu") -> dict:
    """The test report of a run's best weights on its own test set (seeded, never seen in training):
    {"task", "length", "model", "parameters", "loss", "baseline", "baseline_name", ...}."""
    model, task, config = load(run_dir, device=device)
    seed = config["train"]["seed"]
    test = fixed_set(task, task.test_size, seed, synthetic.TEST)
    metrics = evaluate(model, test, loss_fn(task.task), metrics_fn=copy_metrics if task.task == "copy" else None,
                       device=device)
    base = baseline_on_test_set(task, seed)
    return {"task": task.task, "length": task.length, "model": model.config.model,
            "parameters": count_parameters(model), "test_size": task.test_size, **metrics,
            "baseline": base["loss"], "baseline_name": base["name"]}


def describe(report: dict) -> str:
    """One line: ``test MSE 0.000412 (baseline 'predict 1': 0.1663; 404x lower)``."""
    loss, base = report["loss"], report["baseline"]
    if loss <= 0:
        ratio = "exact"
    elif loss <= base:
        ratio = f"{base / loss:,.3g}x lower" if base / loss < 1000 else f"{base / loss:,.0f}x lower"
    else:
        ratio = f"{loss / base:.3g}x higher"
    line = (f"test {LOSS_NAMES[report['task']]} {loss:.4g} on {report['test_size']:,} sequences "
            f"(baseline, {report['baseline_name']}: {base:.4g}; {ratio})")
    if "recall_accuracy" in report:
        line += f"; recall accuracy {report['recall_accuracy']:.2%}"
    return line

