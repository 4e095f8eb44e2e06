"""The ``rnnkit`` command line (also ``python -m rnnkit``): thin wrappers over the library.

Every command shares one failure contract, implemented once in :class:`_Group`: an exception raised by the
library ends the command with exit status 1 and one line ``rnnkit: error: <message>`` on stderr; with
``--debug`` (accepted anywhere on the command line, before a ``--``) the full traceback is printed
instead. Usage errors (unknown option, missing argument) keep click's own message and exit status 2.
"""
from __future__ import annotations

import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .tasks import lm
from .data.download import DATASETS, download
from .train import TrainConfig, TrainingInterrupted, checkpoint
from .tasks.series import DemoConfig, SERIES, resolve_device, run_demo
from .layers import KINDS

DEBUG_FLAG = "--debug"


class _Group(typer.core.TyperGroup):
    """The root group: turns library exceptions into one-line errors (tracebacks with ``--debug``)."""

    def main(self, args=None, **kwargs):
        # `rnnkit demo --debug` should work as well as `rnnkit --debug demo`: the option belongs to the root,
        # so move it there (only before `--`, after which everything is a positional argument).
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        if DEBUG_FLAG in args[:end]:
            args = [DEBUG_FLAG] + [a for a in args[:end] if a != DEBUG_FLAG] + args[end:]
        return super().main(args, **kwargs)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, BrokenPipeError):  # typer's own ways out; EPIPE is handled by typer
            raise
        except Exception as exc:
            if getattr(exc, "exit_code", None) is not None:  # click's errors (usage: exit 2) report themselves
                raise
            if isinstance(exc, TrainingInterrupted):  # Ctrl-C during training: saved, say how to resume
                typer.echo(f"\nrnnkit: {_one_line(exc)}", err=True)
                raise typer.Exit(130) from None
            if ctx.params.get("debug"):
                traceback.print_exc(file=sys.stderr)
            else:
                typer.echo(f"rnnkit: error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from None


def _one_line(exc: BaseException) -> str:
    """The message on one line; the exception's type too when it is not an ordinary input error."""
    message = " ".join(str(exc).split())
    if isinstance(exc, (ValueError, TypeError, OSError)) and message:
        return message
    name = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{name} (run with {DEBUG_FLAG} for the traceback)"


app = typer.Typer(
    cls=_Group,
    name="rnnkit",
    help="Recurrent sequence models from the lectures, correct and fast, on PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help and error messages
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"rnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, DEBUG_FLAG, help="Show the full traceback when a command fails."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """Recurrent sequence models from the lectures, correct and fast, on PyTorch."""


demo_app = typer.Typer(help="Runnable demonstrations.", invoke_without_command=True)
app.add_typer(demo_app, name="demo")


@demo_app.callback()
def demo(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, help="Train on this UTF-8 text file instead of the built-in corpus."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/demo-<time>)."),
    minutes: float = typer.Option(2.0, help="Training time budget in minutes."),
    seed: int = typer.Option(0, help="Seed for the weights, the batches and the sample."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """The main job: train a 2x256 char LSTM for about two minutes on Python's own standard-library
    source (no download), then print a sample. `rnnkit demo series` runs lecture 000's time-series demo."""
    if ctx.invoked_subcommand is not None:
        return
    from .tasks import demo as char_demo

    out = out or _default_out("demo")
    typer.echo(f"training a char LSTM (2 x 256) on {data or 'Python standard-library source'} "
               f"for {minutes:g} min; run directory {out}")
    report = char_demo.run(out, data=str(data) if data else None, minutes=minutes, seed=seed, device=device,
                           quiet=quiet)
    typer.echo(_lm_report(report))
    typer.echo(f"loss curve: {out / 'loss.png'}")
    typer.echo("sample (temperature 0.8):\n")
    _stream(lm.sample(out, prime="def ", length=600, temperature=0.8, seed=seed), "def ")
    typer.echo(f"\n\nmore: rnnkit generate {out} --prime 'class ' --temperature 0.8 --length 1000")


@demo_app.command("series")
def demo_series(
    steps: int = typer.Option(DemoConfig.steps, help="Optimizer steps, each on a batch of 50 windows."),
    cell: str = typer.Option(DemoConfig.cell, help=f"Recurrent cell: {', '.join(KINDS)}."),
    hidden: int = typer.Option(DemoConfig.hidden_size, help="Recurrent units."),
    seed: int = typer.Option(DemoConfig.seed, help="Seed for the weights and the data."),
    device: str = typer.Option(DemoConfig.device, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the results, no header or progress."),
):
    """Lecture 000's time-series RNN: train it, test it against a naive forecast, generate a series (~30 s)."""
    config = DemoConfig(cell=cell, hidden_size=hidden, steps=steps, seed=seed, device=device,
                        log_every=_report_every(steps))
    if not quiet:
        units = "ReLU Elman RNN" if cell == "rnn" else f"{cell!r} RNN"
        where = resolve_device(device)
        typer.echo(f"lecture 000 time series: y(t) = {SERIES}, windows of {config.n_steps} steps, "
                   f"target = the window one step ahead")
        typer.echo(f"model: {units} with {hidden} units -> linear -> 1; Adam lr {config.lr}, "
                   f"batch {config.batch_size}, {steps} steps, seed {seed}, on {where}")

    def report(step: int, mse: float):
        typer.echo(f"step {step:>{len(str(steps))}}  train MSE {mse:.4f}")

    r = run_demo(config, on_log=None if quiet else report)
    first, last = r.history[0][1], r.history[-1][1]
    typer.echo(f"train MSE {first:.4g} -> {last:.4g} in {r.config.steps} steps "
               f"({r.train_seconds:.1f} s on {r.device}, {r.num_params:,} parameters)")
    typer.echo(f"test MSE on {r.config.test_windows} new windows: {r.test_mse:.4g} over all {r.config.n_steps} "
               f"predictions, {r.test_mse_last:.4g} for the one after the whole window")
    typer.echo(f"naive 'next value = last value' baseline: {r.baseline_mse:.4g} and {r.baseline_mse_last:.4g} "
               f"({_times(r.baseline_mse / r.test_mse)} and {_times(r.baseline_mse_last / r.test_mse_last)} the model's)")
    k = 10
    typer.echo(f"generated after the t={r.instance_t0} window by feeding predictions back (first {k}):")
    typer.echo("  model " + " ".join(f"{v:6.2f}" for v in r.instance_generated[:k]))
    typer.echo("  truth " + " ".join(f"{v:6.2f}" for v in r.instance_truth[:k]))
    every = max(1, len(r.zeros_generated) // k)
    typer.echo(f"generated from a window of zeros ({len(r.zeros_generated)} values, every {every}th):")
    typer.echo("  model " + " ".join(f"{v:6.2f}" for v in r.zeros_generated[::every][:k]))


# ----- rnnkit train TASK ----------------------------------------------------------------------------------
#
# Every task shares the options of TrainConfig plus --data/--out/--resume; each adds its own. A command is
# built from the two lists of parameters (typer reads the function's signature), so the shared options are
# written once.

train_app = typer.Typer(help="Train a model: rnnkit train TASK --data FILE [options].", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _option(name: str, default, annotation, help: str, *flags: str) -> inspect.Parameter:
    if annotation is bool and not flags:
        flags = ("--" + name.replace("_", "-"),)  # a plain switch, no --no-X twin
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, typer.Option(*flags, help=help)])


COMMON_OPTIONS = [
    _option("data", None, Optional[Path], "Training text (UTF-8; .gz accepted)."),
    _option("out", None, Optional[Path], "Run directory (default runs/TASK-<time>)."),
    _option("resume", False, bool, "Continue the run in --out exactly where it stopped."),
    _option("steps", None, Optional[int], "Optimizer steps (default 2000 unless --epochs)."),
    _option("epochs", None, Optional[int], "Passes over the training data instead of --steps."),
    _option("batch_size", 32, int, "Sequences per batch (the global batch under torchrun)."),
    _option("lr", 2e-3, float, "Learning rate."),
    _option("optimizer", "adam", str, "sgd, adam, adamw, rmsprop or adagrad."),
    _option("momentum", 0.0, float, "Momentum for sgd and rmsprop."),
    _option("weight_decay", 0.0, float, "Weight decay."),
    _option("schedule", "none", str, "Learning-rate schedule: none, step, cosine or plateau."),
    _option("clip_norm", 5.0, Optional[float], "Clip the global gradient norm (0: off)."),
    _option("clip_value", None, Optional[float], "Clip every gradient to [-v, v]."),
    _option("bptt", None, Optional[int], "Truncated BPTT: k1, time steps between updates."),
    _option("bptt_window", None, Optional[int], "Truncated BPTT: k2, time steps backpropagated (>= k1)."),
    _option("eval_every", 200, int, "Steps between validations (0: every epoch)."),
    _option("checkpoint_every", 0, int, "Steps between checkpoints (0: at each validation)."),
    _option("patience", 0, int, "Early stopping after this many validations without progress (0: off)."),
    _option("max_minutes", None, Optional[float], "Stop after this much training time."),
    _option("seed", 0, int, "Seed: the same seed gives the same run on CPU."),
    _option("device", "auto", str, "auto, cpu, cuda or mps."),
    _option("precision", "fp32", str, "fp32, bf16 (autocast) or fp16 (GPU)."),
    _option("on_nonfinite", "error", str, "A NaN/inf loss: error (stop, keep the last checkpoint) or skip."),
    _option("quiet", False, bool, "No progress bar."),
]

LM_OPTIONS = [
    _option("valid_data", None, Optional[Path], "Validation text (default: the last --split of --data)."),
    _option("split", 0.9, float, "Fraction of --data used for training when there is no --valid-data."),
    _option("cell", "lstm", str, f"Recurrent cell: {', '.join(KINDS)}."),
    _option("layers", 2, int, "Recurrent layers."),
    _option("hidden", 256, int, "Hidden units per layer."),
    _option("embedding", 0, int, "Embedding size (0: one-hot inputs, as lecture 001)."),
    _option("dropout", 0.0, float, "Dropout between layers and before the output."),
    _option("recurrent_dropout", 0.0, float, "Variational dropout on h(t-1) inside the recurrence."),
    _option("tie_weights", False, bool, "Share the embedding with the output layer (embedding == hidden)."),
    _option("seq_len", 100, int, "Time steps per batch; the state carries over to the next batch."),
    _option("errors", "strict", str, "Invalid UTF-8: strict (error naming the byte offset) or replace."),
]

CHAR_OPTIONS = [
    _option("spaced", False, bool, "Every character is followed by a space, as in Mikolov's char-level PTB."),
]

WORD_OPTIONS = [
    _option("min_freq", 1, int, "Words seen fewer times become <unk>."),
    _option("max_words", None, Optional[int], "Vocabulary cap (most frequent words)."),
    _option("pretrained", None, Optional[Path], "word2vec/GloVe text file for the embedding (size --embedding)."),
]


def _train_config(o: dict) -> TrainConfig:
    steps = o["steps"] if o["steps"] is not None or o["epochs"] is not None else 2000
    return TrainConfig(
        steps=steps, epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"], optimizer=o["optimizer"],
        momentum=o["momentum"], weight_decay=o["weight_decay"], schedule=o["schedule"],
        clip_norm=o["clip_norm"] or None, clip_value=o["clip_value"], bptt=o["bptt"], bptt_window=o["bptt_window"],
        eval_every=o["eval_every"], checkpoint_every=o["checkpoint_every"], patience=o["patience"],
        max_time=None if o["max_minutes"] is None else o["max_minutes"] * 60, seed=o["seed"], device=o["device"],
        precision=o["precision"], on_nonfinite=o["on_nonfinite"], quiet=o["quiet"], stateful=True)


def _run_lm(level: str, o: dict) -> None:
    if o["data"] is None:
        raise ValueError(f"train {level}lm: --data FILE is required")
    out = o["out"] or _default_out(f"{level}lm")
    if o["resume"] and o["out"] is None:
        raise ValueError("--resume needs --out RUN_DIR")
    # absolute paths in config.json: evaluate/resume work from any directory
    task = lm.LMTask(data=str(o["data"].resolve()), level=level,
                     valid_data=o["valid_data"] and str(o["valid_data"].resolve()),
                     split=(o["split"], round(1 - o["split"], 12)), seq_len=o["seq_len"], errors=o["errors"],
                     min_freq=o.get("min_freq", 1), max_words=o.get("max_words"),
                     pretrained=o.get("pretrained") and str(o["pretrained"].resolve()), spaced=o.get("spaced", False))
    model = {k: o[k] for k in ("cell", "layers", "hidden", "embedding", "dropout", "recurrent_dropout", "tie_weights")}
    command = " ".join(["rnnkit", "train", f"{level}lm", "--data", str(o["data"]), "--out", str(out), "--resume"])
    if not o["quiet"]:
        typer.echo(f"run directory: {out}")
    report = lm.train(task, model, _train_config(o), out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
        typer.echo(_lm_report(report))


def _train_command(name: str, help: str, options: list[inspect.Parameter], run):
    def command(**kwargs):
        run(kwargs)

    command.__signature__ = inspect.Signature(COMMON_OPTIONS + options)
    command.__doc__ = help
    train_app.command(name)(command)


_train_command("charlm", "Character-level language model (char-rnn, lectures 001-003).", LM_OPTIONS + CHAR_OPTIONS,
               lambda o: _run_lm("char", o))
_train_command("wordlm", "Word-level language model (PTB style: <unk>, <eos>).", LM_OPTIONS + WORD_OPTIONS,
               lambda o: _run_lm("word", o))


# ----- using a trained run ------------------------------------------------------------------------------


@app.command()
def generate(
    run_dir: Path = typer.Argument(..., help="A charlm/wordlm run directory."),
    prime: str = typer.Option("", help="Text to start from (characters must be in the vocabulary)."),
    length: int = typer.Option(500, help="Tokens to generate (stops early at <eos> for word models)."),
    temperature: float = typer.Option(1.0, help="Softmax temperature; 0 = greedy."),
    top_k: Optional[int] = typer.Option(None, help="Sample among the k most likely tokens."),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling: the smallest set reaching probability p."),
    seed: Optional[int] = typer.Option(None, help="Seed for a repeatable sample."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Sample text from a trained language model, streaming tokens as they are produced."""
    tokens = lm.sample(run_dir, prime=prime, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                       seed=seed, device=device)
    _stream(tokens, prime)
    typer.echo("")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A trained run directory."),
    data: Optional[Path] = typer.Option(None, help="Text to evaluate on (default: the run's validation text)."),
    batch_size: Optional[int] = typer.Option(None, help="Parallel streams (default: the training batch size)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Loss (nats), bits per character/word and perplexity of a trained language model."""
    typer.echo(_lm_report(lm.evaluate_run(run_dir, data=data, batch_size=batch_size, device=device)))


data_app = typer.Typer(help="Data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("download")
def data_download(name: str = typer.Argument(..., help=f"One of: {', '.join(DATASETS)}.")):
    """Download a public data set (sha256-checked) into ~/.cache/rnnkit and print its path."""
    typer.echo(str(download(name)))


def _default_out(task: str) -> Path:
    return Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"


def _lm_report(report: dict) -> str:
    bits = next(k for k in report if k.startswith("bits_per_"))
    step = f" after {report['step']} steps" if "step" in report else ""
    return (f"validation{step}: loss {report['loss']:.4f} nats, {report[bits]:.4f} {bits.replace('_', ' ')}, "
            f"perplexity {report['perplexity']:.2f}")


def _stream(pieces, prime: str) -> None:
    """Print the prime, then each generated piece as soon as it exists."""
    sys.stdout.write(prime)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()


def _report_every(steps: int) -> int:
    """About 15 progress lines at round step numbers: the largest 1, 2 or 5 x 10^k <= steps / 15."""
    target, every = max(1, steps // 15), 1
    while every * 10 <= target:
        every *= 10
    return max(m * every for m in (1, 2, 5) if m * every <= target)


def _times(ratio: float) -> str:
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:,.0f}x"


def main():
    """The ``rnnkit`` console script."""
    app(prog_name="rnnkit")
