"""Polyphonic music (Boulanger-Lewandowski et al. 2012; Bai et al. 2018's table): `rnnkit train music`,
`rnnkit sample-music`.

    JSB_Chorales.mat / jsb-chorales-quarter.json (data/music.py) ──rolls (T, 88)──> x = roll[:-1],
      y = roll[1:] (Bai et al.'s code: predict each frame from the ones before it), padded, lengths T - 1
      ──MusicModel (lstm | gru | tcn ...)──> logits (B, T, 88) ──frame NLL (sum over keys, mean over
      frames)──> Trainer ──best model on validation NLL──> valid and test NLL (nats per frame)

    rnnkit sample-music RUN_DIR out.mid: the first frame of a training piece (chosen by --seed) as the
    prime, then --length frames drawn one by one from the model's 88 Bernoullis, written as MIDI.

    run dir: config.json, model.safetensors, model.best.safetensors, trainer.pt, metrics.jsonl, loss.png,
             metrics_test.json, primes.json (the first frame of every training piece, as MIDI pitches)

Reference numbers (Bai et al. 2018, table 1, JSB Chorales test NLL): LSTM 8.45, GRU 8.43, TCN 8.10.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data import Batch, TensorBatches
from ..data.music import LOWEST, pitches_to_roll, read_piano_rolls, write_midi
from ..models.music import MusicModel, MusicModelConfig, frame_nll
from ..train import TrainConfig, Trainer, checkpoint, evaluate, seed_everything
from .classify import load_best


@dataclass
class MusicTask:
    data: str  # a B-L piano-roll .mat or .json file


def pad_rolls(rolls: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rolls (T_n, 88) -> x (N, T_max - 1, 88) = frames 0..T-2, y = frames 1..T-1 (zeros after each piece),
    lengths (N,) = T_n - 1."""
    lengths = torch.tensor([len(r) - 1 for r in rolls], dtype=torch.int64)
    x = torch.zeros(len(rolls), int(lengths.max()), rolls[0].shape[1])
    y = torch.zeros_like(x)
    for n, r in enumerate(rolls):
        x[n, : len(r) - 1] = torch.from_numpy(r[:-1])
        y[n, : len(r) - 1] = torch.from_numpy(r[1:])
    return x, y, lengths


class RollBatches(TensorBatches):
    """Padded pieces in batches, x and y cut to the batch's longest piece; a batch weighs its valid frames."""

    def batches(self, epoch: int = 0):
        for batch in super().batches(epoch):
            T = int(batch.lengths.max())
            yield replace(batch, x=batch.x[:, :T], y=batch.y[:, :T])


def music_loss(logits, batch: Batch):
    return frame_nll(logits, batch.y, batch.lengths)


def train(task: MusicTask, model_options: dict, cfg: TrainConfig, out, *, resume: bool = False,
          resume_command: str | None = None) -> dict:
    """Train a next-frame model into ``out``. model_options: MusicModelConfig's fields (model, hidden, layers,
    dropout, kernel_size). Returns {"data": pieces and frames per split, "valid": NLL, "test": NLL, "step",
    "best_step"}."""
    if cfg.bptt is not None or cfg.stateful:
        raise ValueError("music: every piece is trained whole; truncated BPTT (--bptt) does not apply")
    out = Path(out)
    seed_everything(cfg.seed)
    splits = read_piano_rolls(task.data)
    config = MusicModelConfig(**model_options)
    model = MusicModel(config)
    tensors = {name: pad_rolls(r.rolls) for name, r in splits.items()}
    run_config = {"task": "music", "data": asdict(task), "model": asdict(config)}
    x, y, lengths = tensors["train"]
    vx, vy, vlengths = tensors["valid"]
    trainer = Trainer(model, cfg, loss_fn=music_loss,
                      train_data=RollBatches(x, y, cfg.batch_size, lengths=lengths, shuffle=True, seed=cfg.seed),
                      valid_data=RollBatches(vx, vy, 64, lengths=vlengths, shuffle=False), run_dir=out,
                      run_config=run_config, resume=resume, resume_command=resume_command)
    if not resume and trainer.world.is_main:
        primes = [np.flatnonzero(r[0]).tolist() for r in splits["train"].rolls]
        checkpoint.atomic_write_json(out / "primes.json", {"lowest": LOWEST, "pitches": [
            [p + LOWEST for p in prime] for prime in primes]})
    trainer.fit()
    best_step = load_best(trainer)
    result = {"data": {name: {"pieces": len(r), "frames": int(tensors[name][2].sum())} for name, r in splits.items()},
              "step": trainer.step, "best_step": best_step}
    if trainer.world.is_main:
        for name in ("valid", "test"):
            result[name] = split_nll(trainer.raw_model, *tensors[name], device=trainer.device)
        checkpoint.atomic_write_json(out / "metrics_test.json", {"valid_nll": result["valid"],
                                                                 "test_nll": result["test"], "step": best_step})
    return result


def split_nll(model, x, y, lengths, *, device="cpu") -> float:
    """The frame-level NLL (nats per frame, summed over the 88 keys) of padded pieces."""
    return float(evaluate(model, RollBatches(x, y, 64, lengths=lengths, shuffle=False), music_loss,
                          device=device)["loss"])


def load(run_dir, *, best: bool = True, device="cpu"):
    """(model, config) of a trained music run."""
    run_dir, config = checkpoint.read_run_config(run_dir, ("music",))
    model = MusicModel(MusicModelConfig(**config["model"]))
    checkpoint.load_run_weights(run_dir, model, best=best)
    return model.to(device).eval(), config


def evaluate_run(run_dir, *, data=None, split: str = "test", device="cpu") -> dict:
    """The frame NLL of a run's best weights on ``split`` ("valid" or "test") of its data file (or of ``data``,
    another B-L file): {"data", "split", "pieces", "frames", "nll"}; "nll" equals the run's metrics_test.json
    ``<split>_nll``."""
    if split not in ("valid", "test"):
        raise ValueError(f"music: expected split 'valid' or 'test', got {split!r}")
    model, config = load(run_dir, device=device)
    path = str(data or config["data"]["data"])
    rolls = read_piano_rolls(path)[split].rolls
    x, y, lengths = pad_rolls(rolls)
    return {"data": path, "split": split, "pieces": len(rolls), "frames": int(lengths.sum()),
            "nll": split_nll(model, x, y, lengths, device=device)}


def describe(report: dict) -> str:
    """One line: ``test NLL 8.4512 nats per frame (sum over 88 keys) on 77 pieces (3,234 predicted frames) of ...``."""
    return (f"{report['split']} NLL {report['nll']:.4f} nats per frame (sum over 88 keys) on {report['pieces']:,} "
            f"pieces ({report['frames']:,} predicted frames) of {report['data']}")


def sample(run_dir, out, *, length: int = 64, seed: int | None = None, bpm: float = 120.0, frames_per_beat: int = 1,
           device="cpu") -> dict:
    """Write a new piece to ``out`` (MIDI): a training piece's first frame, then ``length`` sampled frames.
    Returns {"path", "frames", "notes_per_frame", "prime_index"}."""
    model, _ = load(run_dir, device=device)
    run_dir = Path(run_dir)
    checkpoint.check_run_dir(run_dir, need=("primes.json",))
    primes = checkpoint.read_json(run_dir / "primes.json")["pitches"]
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    index = int(torch.randint(0, len(primes), (), generator=torch.Generator().manual_seed(
        generator.initial_seed())))
    prime = torch.from_numpy(pitches_to_roll([primes[index], primes[index]], where="primes.json")[:1])
    roll = model.sample(prime, length, generator=generator).numpy()
    path = write_midi(roll, out, bpm=bpm, frames_per_beat=frames_per_beat)
    return {"path": str(path), "frames": len(roll), "notes_per_frame": float(roll.sum(1).mean()),
            "prime_index": index, "roll": roll}
