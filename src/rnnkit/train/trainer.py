"""The training loop: BPTT or truncated BPTT, clipping, evaluation, checkpoints that resume exactly.

One plain loop (pytorch/examples' word_language_model, nanoGPT's train.py), no callbacks::

    for epoch:                                   source.batches(epoch), the same every time
        for batch:                               sharded by rank under torchrun
            state <- carried state (stateful streams) or None, reset rows restart
            for update in tbptt.plan(T, k1, k2): forward the window from a detached state,
                                                  loss on the update's k1 steps, backward,
                                                  clip (value, then global norm), step
                step += 1: log, evaluate, checkpoint, stop on Ctrl-C / SIGTERM / non-finite loss

Everything needed to resume lives in the run directory (see ``checkpoint.py``); ``trainer.pt`` holds
the model and optimizer state together so that one atomic file write is one consistent checkpoint.
The directory is locked (``RUN_DIR/.lock``, see ``lock.py``) from the Trainer's construction, before it
writes anything there, to the end of ``fit``: a second training on the same directory is refused.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..layers.state import detach_state, map_state
from . import checkpoint, distributed, tbptt
from .evaluate import evaluate, forward, reset_rows
from .lock import RunLock
from .optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_scheduler

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


def precision_context(precision: str, device_type: str):
    """The context a forward pass runs in for ``precision``: nothing for fp32, autocast to bf16 or fp16 else."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


@dataclass
class TrainConfig:
    """How to train (every `rnnkit train` task shares these; the CLI fills them from its options)."""

    steps: int | None = None  # optimizer steps; or
    epochs: int | None = None  # passes over the training data
    batch_size: int = 32  # the global batch; tasks build their sources with it
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "none"  # none | step | cosine | plateau
    schedule_step: int = 1000  # StepLR period
    schedule_gamma: float = 0.5  # StepLR / plateau factor
    clip_norm: float | None = None  # clip the global gradient norm (lecture 004)
    clip_value: float | None = None  # clip every gradient to [-v, v] (lectures 000, 001)
    bptt: int | None = None  # k1: time steps between updates (None: full BPTT over each batch)
    bptt_window: int | None = None  # k2: time steps backpropagated (default k1)
    stateful: bool = False  # carry the state from batch to batch (stream data)
    eval_every: int = 0  # steps between evaluations; 0: after every epoch
    checkpoint_every: int = 0  # steps between checkpoints; 0: at every evaluation and at the end
    patience: int = 0  # early stopping after this many evaluations without improvement; 0: off
    keep_best: bool = True  # keep model.best.safetensors, the best validation loss so far
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + grad scaler, GPU only)
    on_nonfinite: str = "error"  # error | skip
    quiet: bool = False
    max_time: float | None = None  # stop after this many seconds of training (a time budget)

    def __post_init__(self):
        def bad(name, want):
            raise ValueError(f"TrainConfig: expected {name} {want}, got {getattr(self, name)!r}")

        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"TrainConfig: give exactly one of steps and epochs, got steps={self.steps}, "
                             f"epochs={self.epochs}")
        for name in ("steps", "epochs", "batch_size", "bptt", "bptt_window"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                bad(name, ">= 1")
        for name in ("eval_every", "checkpoint_every", "patience", "momentum", "weight_decay"):
            if getattr(self, name) < 0:
                bad(name, ">= 0")
        for name in ("clip_norm", "clip_value", "lr", "max_time"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                bad(name, "> 0")
        if self.schedule == "cosine-time" and self.max_time is None:
            raise ValueError("TrainConfig: schedule 'cosine-time' anneals over the time budget; set max_time "
                             "(--max-minutes on the command line)")
        if self.bptt_window is not None and (self.bptt is None or self.bptt_window < self.bptt):
            bad("bptt_window", f"(k2) >= bptt (k1) = {self.bptt}")
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                              ("on_nonfinite", ("error", "skip")), ("device", ("auto", "cpu", "cuda", "mps"))):
            if getattr(self, name) not in choices:
                bad(name, f"in {choices}")


class TrainingInterrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM: a checkpoint was saved; the message says how to resume.

    ``signal`` is the signal that stopped the run and ``exit_status`` the shell's status for it,
    128 + the signal number: 130 for SIGINT, 143 for SIGTERM (what the CLI exits with).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signal = signal.Signals(signum)
        self.exit_status = 128 + int(signum)


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): the same seed gives the same run on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when torch sees a GPU, else the CPU; asking for a missing device is an error."""
    if name not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: --device cuda was asked for, but torch sees no CUDA device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: --device mps was asked for, but MPS is not available")
    return torch.device(name)



def _differences(saved, now, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, saved value, new value) for every leaf where two JSON-like configs differ."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for key in sorted(set(saved) | set(now), key=str):
            name = f"{prefix}{key}"
            if key not in saved or key not in now:
                out.append((name, saved.get(key, "(none)"), now.get(key, "(none)")))
            elif saved[key] != now[key]:
                out.extend(_differences(saved[key], now[key], f"{name}."))
        return out
    return [(prefix.rstrip("."), saved, now)]

class Trainer:
    """Trains ``model`` (contract: ``preds, state = model(x, state)``) on a batch source.

    Args:
        model: an nn.Module keeping the contract (``lengths=`` is passed when batches carry lengths).
        config: a :class:`TrainConfig`.
        loss_fn: ``loss_fn(preds, batch) -> scalar`` (e.g. ``sequence_loss`` on ``batch.y``).
        train_data, valid_data: sources with ``batches(epoch)`` (see ``rnnkit.data.batching``).
        metrics_fn: ``metrics_fn(preds, batch) -> {name: float}`` for evaluation (accuracy, ...).
        run_dir: where checkpoints, metrics and plots go (None: nothing is written).
        run_config: JSON-able description of the run (task, model config, data) saved as config.json;
            on resume it must equal the saved one except for its "train" entry.
        resume: continue from ``run_dir/trainer.pt`` exactly where it stopped.
        resume_command: shown after Ctrl-C or SIGTERM (e.g. "rnnkit train charlm --out runs/x --resume").

    With a ``run_dir``, rank 0 locks it (``run_dir/.lock``) before writing anything there and keeps the
    lock until ``fit`` returns or raises (Ctrl-C included); another live training holding it is a
    :class:`~rnnkit.train.lock.LockError` naming the directory and its pid, with nothing in the directory
    changed. A Trainer dropped without ``fit`` releases the lock when it is garbage-collected.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, *, loss_fn: Callable, train_data, valid_data=None,
                 metrics_fn: Callable | None = None, run_dir=None, run_config: dict | None = None,
                 resume: bool = False, resume_command: str | None = None):
        self.cfg = config
        self.device = resolve_device(config.device)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("TrainConfig: precision fp16 needs a CUDA device; use bf16 on CPU")
        self.world = distributed.setup(self.device)
        self.raw_model = model.to(self.device)
        self.model = self.raw_model
        if self.world.size > 1:
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.raw_model, device_ids=ids)
        self.loss_fn, self.metrics_fn = loss_fn, metrics_fn
        self.train_data, self.valid_data = train_data, valid_data
        self.params = [p for p in self.raw_model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(config.optimizer, self.params, lr=config.lr, momentum=config.momentum,
                                        weight_decay=config.weight_decay)
        total = config.steps
        if total is None and config.schedule == "cosine":
            total = config.epochs * self._updates_per_epoch()
        self._started = time.perf_counter()  # reset when fit() starts; cosine-time reads the seconds since
        self.scheduler = make_scheduler(config.schedule, self.optimizer, total_steps=total,
                                        step_size=config.schedule_step, gamma=config.schedule_gamma,
                                        seconds=config.max_time, clock=lambda: time.perf_counter() - self._started)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.run_config = dict(run_config or {})
        self.resume_command = resume_command
        # progress: where the next update starts, and what it starts from
        self.step, self.epoch, self.batch_index, self.update_index = 0, 0, 0, 0
        self.carried = None  # state carried from the previous batch (stateful streams)
        self.saved_states: dict[int, object] = {}  # detached states at positions of the current batch
        self.best, self.bad_evals, self.skipped = None, 0, 0
        self.history: list[dict] = []
        self.last_eval: dict | None = None
        self._interrupted: int | None = None  # the signal (SIGINT / SIGTERM) that asked to stop
        self._tensorboard = None  # a SummaryWriter once the first record is logged, False without tensorboard
        self._lock = self._lock_run_dir(resume)
        try:
            if resume:
                self._resume()
            else:
                seed_everything(config.seed)
                self._start_run_dir()
        except BaseException:
            self._release_run_dir()
            raise

    # ----- the loop -------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train until `steps` or `epochs` are done, or early stopping; returns the last validation
        record (or the last training record when there is no validation data)."""
        if self._lock is not None:
            self._lock.acquire()  # a no-op while held; a second fit() locks again
        try:
            return self._fit()
        finally:
            self._release_run_dir()

    def _fit(self) -> dict:
        progress = self._progress()
        self._interrupted = None  # a signal caught by an earlier fit() is spent
        previous_handlers = self._install_signal_handlers()
        self._tokens, self._train_seconds, self._started = 0, 0.0, time.perf_counter()
        try:
            while not self._done():
                i = -1
                for i, batch in enumerate(self.train_data.batches(self.epoch)):
                    if i < self.batch_index:
                        continue  # resuming inside an epoch: the source replays it identically
                    self._train_batch(i, batch, progress)
                    if self._done():
                        break
                else:  # the epoch ended
                    if i < 0:
                        raise ValueError(f"Trainer: the training data yielded no batches in epoch {self.epoch}")
                    self.epoch, self.batch_index, self.carried = self.epoch + 1, 0, None
                    self._after_update(end_of_epoch=True)
            if self.valid_data is not None and (self.last_eval is None or self.last_eval["step"] != self.step):
                self._evaluate_and_track()
            self._save_checkpoint()
        finally:
            progress.close()
            self._restore_signal_handlers(previous_handlers)
            if self._tensorboard:
                self._tensorboard.flush()
        return self.last_eval or (self.history[-1] if self.history else {})

    def _train_batch(self, index: int, batch, progress) -> None:
        cfg = self.cfg
        batch = self._shard(batch).to(self.device)
        if self.update_index == 0:
            start = reset_rows(self.carried, batch.reset) if cfg.stateful else None
            self.saved_states = {0: start}
        steps = batch.x.shape[1] if batch.x.dim() > 1 else 1
        updates = tbptt.plan(steps, cfg.bptt, cfg.bptt_window)
        while self.update_index < len(updates) and not self._done():
            began = time.perf_counter()
            record = self._update(batch, updates[self.update_index])
            self._train_seconds += time.perf_counter() - began  # throughput counts training, not evaluation
            self.update_index += 1
            self.step += 1
            self._tokens += record.pop("tokens")
            record.update(step=self.step, epoch=self.epoch, tokens_per_s=self._tokens / max(self._train_seconds, 1e-9))
            self._log(record, progress)
            self._after_update(end_of_epoch=False)
        if self.update_index == len(updates):  # the batch is finished
            self.batch_index, self.update_index = index + 1, 0
            self.carried = detach_state(self.saved_states[steps]) if cfg.stateful else None
            self.saved_states = {}

    def _after_update(self, end_of_epoch: bool) -> None:
        self._maybe_evaluate(end_of_epoch)
        if self._interrupted is not None:
            raise self._interrupt()

    def _update(self, batch, update: tbptt.Update) -> dict:
        """One optimizer step over one TBPTT window of the batch."""
        cfg = self.cfg
        full = update.window_start == 0 and update.stop == (batch.x.shape[1] if batch.x.dim() > 1 else 1)
        bounds = [update.window_start, *update.cuts, update.stop]
        state = self.saved_states[update.window_start]
        state = detach_state(state)
        outputs = []
        with self._autocast():
            for a, b in zip(bounds, bounds[1:]):
                segment = batch if (full and not update.cuts) else batch.steps(a, b)
                # DDP expects one forward through the wrapper per backward: the last segment goes through it
                model = self.model if b == update.stop else self.raw_model
                preds, state = forward(model, segment, state)
                self.saved_states[b] = detach_state(state)
                if a >= update.start:
                    outputs.append(preds)
            target = batch if (full and not update.cuts) else batch.steps(update.start, update.stop)
            preds = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
            loss = self.loss_fn(preds, target)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        # the logged norm is the one before any clipping
        grad_norm = float(nn.utils.clip_grad_norm_(self.params, math.inf if cfg.clip_value else cfg.clip_norm or math.inf))
        if cfg.clip_value is not None:
            nn.utils.clip_grad_value_(self.params, cfg.clip_value)
            if cfg.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.params, cfg.clip_norm)
        loss_value = loss.detach().item()
        finite = math.isfinite(loss_value) and (math.isfinite(grad_norm) or self.scaler is not None)
        if not finite:
            self._nonfinite(loss_value, grad_norm)
        else:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.scheduler is not None and not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step()
        return {"loss": loss_value, "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"],
                "tokens": target.tokens * self.world.size}

    def _nonfinite(self, loss_value: float, grad_norm: float) -> None:
        what = f"loss {loss_value}" if not math.isfinite(loss_value) else f"gradient norm {grad_norm}"
        if self.cfg.on_nonfinite == "skip":
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            log.warning("step %d: %s, update skipped (%d so far)", self.step + 1, what, self.skipped)
            return
        where = ""
        if self.run_dir is not None and (self.run_dir / "trainer.pt").exists():
            saved = checkpoint.load_trainer_state(self.run_dir / "trainer.pt")["step"]
            where = f"; the last good checkpoint (step {saved}) is kept in {self.run_dir}"
        raise NonFiniteLossError(f"training diverged at step {self.step + 1}: {what}{where} "
                                 "(lower --lr, clip with --clip-norm, or --on-nonfinite skip)")

    # ----- evaluation, early stopping, checkpoints --------------------------------------------------

    def evaluate(self, source=None) -> dict:
        source = source or self.valid_data
        return evaluate(self.raw_model, source, self.loss_fn, metrics_fn=self.metrics_fn, device=self.device,
                        stateful=self.cfg.stateful, autocast=self._autocast)

    def _maybe_evaluate(self, end_of_epoch: bool) -> None:
        cfg = self.cfg
        already = self.last_eval is not None and self.last_eval["step"] == self.step  # e.g. resumed at an epoch end
        due_eval = self.valid_data is not None and not already and (
            (cfg.eval_every and self.step % cfg.eval_every == 0 and not end_of_epoch)
            or (not cfg.eval_every and end_of_epoch))
        if due_eval:
            self._evaluate_and_track()
        due_ckpt = (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not end_of_epoch) or (
            due_eval and not cfg.checkpoint_every)
        if due_ckpt:
            self._save_checkpoint()

    def _evaluate_and_track(self) -> dict:
        metrics = self.evaluate()
        record = {"step": self.step, "epoch": self.epoch, "split": "valid", **metrics}
        improved = self.best is None or metrics["loss"] < self.best
        if improved:
            self.best, self.bad_evals = metrics["loss"], 0
            if self.cfg.keep_best and self.run_dir is not None and self.world.is_main:
                checkpoint.save_model(self.run_dir / "model.best.safetensors", self.raw_model,
                                      {"step": str(self.step), "valid_loss": repr(metrics["loss"])})
        else:
            self.bad_evals += 1
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics["loss"])
        self._log(record, None)
        if not self.cfg.quiet and self.world.is_main:
            log.info("step %d: valid %s", self.step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        self._plot()
        self.last_eval = record
        return record

    def _done(self) -> bool:
        cfg = self.cfg
        if cfg.patience and self.bad_evals >= cfg.patience:
            return True
        if cfg.max_time is not None and time.perf_counter() - self._started >= cfg.max_time:
            return True
        if cfg.steps is not None:
            return self.step >= cfg.steps
        return self.epoch >= cfg.epochs

    def _save_checkpoint(self) -> None:
        if self.run_dir is None or not self.world.is_main:
            return
        state = {
            "format": 1,
            "step": self.step, "epoch": self.epoch, "batch_index": self.batch_index,
            "update_index": self.update_index,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "carried": _cpu(self.carried),
            "saved_states": {str(k): _cpu(v) for k, v in self.saved_states.items()} if self.update_index else {},
            "best": self.best, "bad_evals": self.bad_evals, "skipped": self.skipped, "last_eval": self.last_eval,
            "train_config": asdict(self.cfg),
        }
        checkpoint.save_trainer_state(self.run_dir / "trainer.pt", state)  # the resume point, one atomic file
        checkpoint.save_model(self.run_dir / "model.safetensors", self.raw_model, {"step": str(self.step)})

    def _lock_run_dir(self, resume: bool) -> RunLock | None:
        """Rank 0 locks the run directory before writing anything in it (None: nothing to lock)."""
        if self.run_dir is None or not self.world.is_main:
            return None
        if not resume:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        elif not self.run_dir.is_dir():
            return None  # _resume reports the missing directory
        lock = RunLock(self.run_dir).acquire()
        weakref.finalize(self, lock.release)  # a Trainer dropped without fit(); also at interpreter exit
        return lock

    def _release_run_dir(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _start_run_dir(self) -> None:
        if self.run_dir is None or not self.world.is_main:
            return
        if (self.run_dir / "trainer.pt").exists():
            raise checkpoint.CheckpointError(
                f"{self.run_dir} already holds a training run (trainer.pt); pass --resume to continue it "
                "or choose another --out")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = {**self.run_config, "train": asdict(self.cfg)}
        checkpoint.atomic_write_json(self.run_dir / "config.json", config)
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists():
            metrics.unlink()

    def _resume(self) -> None:
        if self.run_dir is None:
            raise ValueError("Trainer: resume=True needs a run_dir")
        checkpoint.check_run_dir(self.run_dir, need=("config.json", "trainer.pt"))
        saved_config = checkpoint.read_json(self.run_dir / "config.json")
        mine = {k: v for k, v in json.loads(json.dumps(self.run_config)).items() if k != "train"}  # tuples -> lists
        theirs = {k: v for k, v in saved_config.items() if k != "train"}
        if mine and mine != theirs:
            diff = _differences(theirs, mine)
            shown = "; ".join(f"{key}: saved {old!r}, now {new!r}" for key, old, new in diff[:6])
            more = f"; and {len(diff) - 6} more" if len(diff) > 6 else ""
            raise checkpoint.CheckpointError(
                f"{self.run_dir / 'config.json'} does not match this run: {shown}{more} (resume with the saved "
                "settings, or train into another --out)")
        path = self.run_dir / "trainer.pt"
        state = checkpoint.load_trainer_state(path)
        checkpoint.check_state_dict(path, state["model"], self.raw_model)
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_index, self.update_index = state["batch_index"], state["update_index"]
        self.carried = _to(state["carried"], self.device)
        self.saved_states = {int(k): _to(v, self.device) for k, v in state["saved_states"].items()}
        self.best, self.bad_evals, self.skipped = state["best"], state["bad_evals"], state["skipped"]
        self.last_eval = state.get("last_eval")
        checkpoint.set_rng_state(state["rng"])
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists() and self.world.is_main:
            checkpoint.truncate_jsonl(metrics, lambda r: r.get("step", 0) <= self.step)
            self.history = checkpoint.read_jsonl(metrics)
        if self.world.is_main:  # the train section may change (more steps, another lr): record it
            checkpoint.atomic_write_json(self.run_dir / "config.json", {**saved_config, "train": asdict(self.cfg)})
        log.info("resumed %s at step %d (epoch %d)", self.run_dir, self.step, self.epoch)

    # ----- logging, progress, plots ----------------------------------------------------------------

    def _log(self, record: dict, progress) -> None:
        self.history.append(record)
        if not self.world.is_main:
            return
        if self.run_dir is not None:
            checkpoint.append_jsonl(self.run_dir / "metrics.jsonl", record)
            if self._tensorboard is None:
                self._tensorboard = tensorboard_writer(self.run_dir / "tensorboard") or False
            if self._tensorboard:
                split = record.get("split", "train")
                for key, value in record.items():
                    if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                        self._tensorboard.add_scalar(f"{split}/{key}", value, record["step"])
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)

    def _progress(self):
        from tqdm.auto import tqdm

        cfg = self.cfg
        total = cfg.steps if cfg.steps is not None else (self._epoch_length() or 0) * cfg.epochs or None
        if cfg.max_time is not None:
            total = None  # the time budget, not the step count, decides the end

        return tqdm(total=total, initial=self.step, disable=self.cfg.quiet or not self.world.is_main,
                    unit="step", dynamic_ncols=True, leave=False)

    def _plot(self) -> None:
        if self.run_dir is None or not self.world.is_main:
            return
        from .plots import plot_curves

        plot_curves(self.history, self.run_dir / "loss.png")

    # ----- helpers ---------------------------------------------------------------------------------

    def _autocast(self):
        return precision_context(self.cfg.precision, self.device.type)

    def _shard(self, batch):
        if self.world.size == 1:
            return batch
        start, stop = distributed.shard_rows(self.world, batch.size)
        return batch.rows(start, stop)

    def _updates_per_epoch(self) -> int:
        """Optimizer steps in one epoch: every batch's TBPTT updates (for the cosine schedule's length)."""
        return sum(len(tbptt.plan(b.x.shape[1] if b.x.dim() > 1 else 1, self.cfg.bptt, self.cfg.bptt_window))
                   for b in self.train_data.batches(0))

    def _epoch_length(self) -> int | None:
        try:
            return len(self.train_data)
        except TypeError:
            return None

    # SIGINT (Ctrl-C) and SIGTERM (kill, a scheduler or container stopping the job) are handled alike:
    # the current step finishes, a checkpoint is saved and TrainingInterrupted says how to resume; a
    # second signal of either kind stops at once (KeyboardInterrupt). Python allows handlers in the main
    # thread only: a Trainer fitted in another thread leaves the process's handlers alone.
    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def _install_signal_handlers(self) -> dict:
        """Install the stop handlers; returns the previous ones for :meth:`_restore_signal_handlers`."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum, frame):
            if self._interrupted is not None:  # a second Ctrl-C / SIGTERM stops at once
                raise KeyboardInterrupt
            self._interrupted = signum

        return {signum: signal.signal(signum, on_signal) for signum in self.STOP_SIGNALS}

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for signum, handler in previous.items():
            # None: a handler not installed from Python; the default is the closest we can restore
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _interrupt(self) -> TrainingInterrupted:
        signum = self._interrupted
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        self._save_checkpoint()
        if self.run_dir is None:
            return TrainingInterrupted(f"interrupted{by} at step {self.step} (no run directory, nothing saved)", signum)
        how = self.resume_command or "resume with the same command and --resume"
        return TrainingInterrupted(f"interrupted{by} at step {self.step}; checkpoint saved in {self.run_dir}; {how}",
                                   signum)


def tensorboard_writer(path):
    """A TensorBoard SummaryWriter into path when the tensorboard package is installed (the optional
    extra ``rnnkit[tensorboard]``), else None: metrics.jsonl and loss.png are always written."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(path))


def _cpu(state):
    return map_state(lambda s: s.detach().cpu(), state)


def _to(state, device):
    return map_state(lambda s: s.to(device), state)
