"""The ``rnnkit`` command line (also ``python -m rnnkit``): thin wrappers over the library.

Every command shares one failure contract, implemented once in :class:`_Group`: an exception raised by the
library ends the command with exit status 1 and one line ``rnnkit: error: <message>`` on stderr; with
``--debug`` (accepted anywhere on the command line, before a ``--``) the full traceback is printed
instead. Usage errors (unknown option, missing argument) keep click's own message and exit status 2.
"""
from __future__ import annotations

import dataclasses
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
from .tasks import classify as classify_task, seqmnist
from .data.download import DATASETS, download
from .train import TrainConfig, TrainingInterrupted, checkpoint
from .tasks.series import DemoConfig, SERIES, resolve_device, run_demo
from .layers import ENCODERS, KINDS

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
            if isinstance(exc, TrainingInterrupted):  # Ctrl-C or SIGTERM during training: saved, say how to resume
                typer.echo(f"\nrnnkit: {' '.join(str(exc).split())}", err=True)
                raise typer.Exit(getattr(exc, "exit_status", 130)) from None  # 130 SIGINT, 143 SIGTERM
            if ctx.params.get("debug"):
                traceback.print_exc(file=sys.stderr)
            else:
                typer.echo(f"rnnkit: error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from None


def _one_line(exc: BaseException) -> str:
    """The message on one line; the exception's type too when it is not an ordinary input error."""
    message = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:  # "[Errno 13] Permission denied: 'x'" -> "x: Permission denied"
        named = exc.filename is not None and str(exc.filename) not in exc.strerror
        message = " ".join((f"{exc.filename}: {exc.strerror}" if named else exc.strerror).split())
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
    _option("schedule", "none", str, "Learning-rate schedule: none, step, cosine (to 0 over the steps), "
            "cosine-time (to 0 over --max-minutes) or plateau."),
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
    _option("cell", "lstm", str, f"Recurrent cell: {', '.join(KINDS)}; or tcn (Bai et al.'s TCN, --hidden channels, "
            "--layers blocks)."),
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


# ----- classification: rnnkit train classify / seqmnist, rnnkit classify ---------------------------------

CLASSIFIER_OPTIONS = [
    _option("hidden", 128, int, "Units per direction (RNN) or channels (TCN, conv)."),
    _option("layers", 1, int, "Recurrent layers (TCN: residual blocks)."),
    _option("bidirectional", False, bool, "Read each sequence both ways (recurrent models)."),
    _option("pooling", "last", str, "Sequence -> vector: last (the final state), mean, max or attention."),
    _option("dropout", 0.0, float, "Dropout between layers and before the dense layer."),
    _option("recurrent_dropout", 0.0, float, "Variational dropout on h(t-1) inside the recurrence."),
    _option("kernel_size", None, Optional[int], "Convolution width: TCN (default 3), conv (default 7)."),
]

CLASSIFY_OPTIONS = [
    _option("model", "lstm", str, f"Sequence model: {', '.join(classify_task.MODELS)} (conv: lecture 003's 1D ConvNet)."),
    _option("embedding", 128, int, "Word embedding size."),
    _option("max_words", 20_000, int, "Vocabulary size (most frequent training words, <pad> and <unk> included)."),
    _option("max_len", 100, int, "Tokens per text; longer texts are cut to it, and counted."),
    _option("valid_data", None, Optional[Path], "text<TAB>label validation file (default: 10% of --data)."),
    _option("test_data", None, Optional[Path], "text<TAB>label test file."),
    _option("labels", None, Optional[str], "text<TAB>label files: the classes in id order, comma-separated."),
    _option("fine_grained", False, bool, "SST: five classes (SST-5) instead of SST-2."),
    _option("phrases", False, bool, "SST: train on every labelled phrase of the training trees."),
    _option("fold", 0, int, "RT polarity: the test fold of 10-fold cross-validation (0: the fixed 90/10 split)."),
]

SEQMNIST_OPTIONS = [
    _option("model", "lstm", str, f"Sequence model: {', '.join(ENCODERS)}."),
    _option("mode", "row", str, "row (28 steps of 28), pixel (784 x 1) or permuted (pixels in a fixed order)."),
    _option("permutation_seed", 0, int, "permuted: the seed of the fixed pixel order."),
]


def _classifier_options(o: dict) -> dict:
    return {k: o[k] for k in ("model", "hidden", "layers", "bidirectional", "pooling", "dropout", "recurrent_dropout",
                              "kernel_size")}


def _whole_sequence_run(task: str, o: dict, unit: str | None = None) -> tuple[Path, TrainConfig, str]:
    """The run directory, the training config (no carried state) and the resume command of a task whose
    examples are whole sequences (classifiers, seq2seq); with ``unit`` ("pair"), --bptt is an error."""
    if o["resume"] and o["out"] is None:
        raise ValueError("--resume needs --out RUN_DIR")
    if unit and (o["bptt"] or o["bptt_window"]):
        raise ValueError(f"train {task}: every {unit} is one sequence, trained whole; --bptt does not apply")
    out = o["out"] or _default_out(task)
    command = " ".join(["rnnkit", "train", task, *(["--data", str(o["data"])] if o["data"] else []), "--out",
                        str(out), "--resume"])
    if not o["quiet"]:
        typer.echo(f"run directory: {out}")
    return out, dataclasses.replace(_train_config(o), stateful=False), command


def _run_classify(o: dict) -> None:
    if o["data"] is None:
        raise ValueError("train classify: --data is required (an SST or RT polarity directory, or a text<TAB>label file)")
    labels = None if o["labels"] is None else [name.strip() for name in o["labels"].split(",")]
    resolved = {k: o[k] and str(o[k].resolve()) for k in ("data", "valid_data", "test_data")}
    task = classify_task.ClassifyTask(**resolved, labels=labels, fine_grained=o["fine_grained"],
                                      phrases=o["phrases"], fold=o["fold"], max_words=o["max_words"],
                                      max_len=o["max_len"])
    out, cfg, command = _whole_sequence_run("classify", o)
    result = classify_task.train(task, {**_classifier_options(o), "embedding": o["embedding"]}, cfg, out,
                                 resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    data = result["data"]
    typer.echo("data: " + ", ".join(f"{name} {d['examples']:,}" for name, d in data.items())
               + f" texts; vocabulary {result['vocabulary']:,} words")
    _classifier_reports(result, out)


def _run_seqmnist(o: dict) -> None:
    task = seqmnist.SeqMNISTTask(data=o["data"] and str(o["data"].resolve()), mode=o["mode"],
                                 permutation_seed=o["permutation_seed"])
    out, cfg, command = _whole_sequence_run("seqmnist", o)
    result = seqmnist.train(task, _classifier_options(o), cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    d, source = result["data"]["train"], "MNIST" if o["data"] else "scikit-learn's 8x8 digits"
    typer.echo(f"data: {source}, {o['mode']} mode: sequences of "
               f"{d['steps']} steps x {d['features']} features; "
               + ", ".join(f"{name} {s['examples']:,}" for name, s in result["data"].items()))
    _classifier_reports(result, out)


def _classifier_reports(result: dict, out: Path) -> None:
    from .train.metrics import format_confusion, format_report

    best = f"step {result['best_step']} of {result['step']}" if result["best_step"] else f"step {result['step']}"
    typer.echo(f"the model with the lowest validation loss ({best}):")
    for name in ("valid", "test"):
        report = result[name]
        if report is None:
            continue
        top3 = f", top-3 accuracy {report['top_3_accuracy']:.4f}" if "top_3_accuracy" in report else ""
        typer.echo(f"  {name}: accuracy {report['accuracy']:.4f}{top3}, macro F1 {report['macro_f1']:.4f}")
    final = result["test"] or result["valid"]
    names = [r["class"] for r in final["per_class"]]
    typer.echo(f"\n{final['split']} set:\n{format_report(final)}\n\nconfusion matrix (rows: true, columns: "
               f"predicted):\n{format_confusion(final['confusion_matrix'], names)}")
    typer.echo(f"\nconfusion matrix: {out / ('confusion_' + final['split'] + '.png')}")


_train_command("classify", "Sentiment / text classification (lectures 002-004). --data: an SST directory "
               "(train.txt, dev.txt, test.txt trees), an RT polarity directory (rt-polarity.pos, .neg) or a "
               "text<TAB>label file.", CLASSIFIER_OPTIONS + CLASSIFY_OPTIONS, _run_classify)
_train_command("seqmnist", "Sequential MNIST: row (28 x 28), pixel (784 x 1) or permuted pixel (lecture 000). "
               "--data DIR: MNIST's IDX files (raw or .gz); without it, scikit-learn's bundled 8x8 digits.",
               CLASSIFIER_OPTIONS + SEQMNIST_OPTIONS, _run_seqmnist)


@app.command("classify")
def classify_text(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train classify` run directory."),
    text: str = typer.Argument(..., help="The text to classify, or - to classify each line of standard input."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Print the predicted label and its probability (tab-separated), one line per text."""
    if text == "-":
        texts = sys.stdin.read().splitlines()
        where = [f"stdin line {n}" for n in range(1, len(texts) + 1)]
    else:
        texts, where = [text], ["the text argument"]
    result = classify_task.predict(run_dir, texts, device=device, where=where)
    if result["truncated"]:
        max_len = result["max_len"]
        typer.echo(f"rnnkit: warning: {result['truncated']} text(s) longer than the run's --max-len {max_len} "
                   f"tokens were cut to their first {max_len} tokens", err=True)
    for r in result["predictions"]:
        typer.echo(f"{r['label']}\t{r['probability']:.4f}")


def _memory_options(task: str) -> list[inspect.Parameter]:
    """The generated long-range tasks' own options (adding, copy, pattern); defaults per task."""
    from .layers import ENCODERS
    from .tasks import memory

    levels, kernel = memory.TCN_SHAPE[task]
    what = "blank steps between the symbols and their recall (sequences of T + 20)" if task == "copy" else "time steps"
    return [
        _option("length", memory.DEFAULT_LENGTH[task], int, f"T: {what}."),
        _option("model", memory.DEFAULT_MODEL[task], str, f"Sequence encoder: {', '.join(ENCODERS)}."),
        _option("hidden", None, Optional[int], "RNN units or TCN channels (default: sized to --params)."),
        _option("params", None, Optional[int], f"Parameter budget that sizes --hidden (default "
                f"{memory.BUDGETS[task]:,}, as Bai et al.'s table)."),
        _option("layers", None, Optional[int], f"RNN layers (default 1) or TCN residual blocks (default {levels})."),
        _option("kernel_size", None, Optional[int], f"TCN filter size (default {kernel}); TCN only."),
        _option("dropout", 0.0, float, "Dropout before the output layer, inside TCN blocks and between RNN layers."),
        _option("batches_per_epoch", 100, int, "Fresh training batches generated per epoch."),
        _option("valid_size", 1000, int, "Validation sequences (keep-best, early stopping)."),
        _option("test_size", 1000, int, "Test sequences (the reported loss), never seen in training."),
    ]


def _run_memory(task: str, o: dict) -> None:
    from dataclasses import replace

    from .tasks import memory

    if o["data"] is not None:
        raise ValueError(f"train {task}: the data is generated from --seed; --data is not used (got {o['data']})")
    if o["resume"] and o["out"] is None:
        raise ValueError("--resume needs --out RUN_DIR")
    out = o["out"] or _default_out(task)
    spec = memory.MemoryTask(task, o["length"], batches_per_epoch=o["batches_per_epoch"],
                             valid_size=o["valid_size"], test_size=o["test_size"])
    model = memory.sized_model(task, o["model"], hidden=o["hidden"], params=o["params"], layers=o["layers"],
                               kernel_size=o["kernel_size"], dropout=o["dropout"])
    cfg = replace(_train_config(o), stateful=False)
    base = memory.baseline_on_test_set(spec, o["seed"])
    typer.echo(f"{memory.TITLES[task]}, T = {spec.length}: trivial baseline ({base['name']}) "
               f"{memory.LOSS_NAMES[task]} {base['loss']:.4g} on the {spec.test_size:,} test sequences "
               f"(expected {base['expected']:.4g})")
    command = f"rnnkit train {task} --out {out} --resume"
    report = memory.train(spec, model, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") == "0":
        kind = f"TCN, {model['layers']} blocks x {model['hidden']} channels, kernel {model['kernel_size']}" \
            if model["model"] == "tcn" else f"{model['model']}, {model['layers']} x {model['hidden']} units"
        typer.echo(f"model: {kind}, {report['parameters']:,} parameters; {report['step']} steps in "
                   f"{report['seconds']:.0f} s; run directory {out}")
        typer.echo(memory.describe(report))


for _task, _help in (("adding", "Adding problem (Bai et al. 2018): sum the two marked numbers of T steps."),
                     ("copy", "Copy memory (Bai et al. 2018): recall 10 symbols after T blanks."),
                     ("pattern", "Lecture 002's noisy 1-2-3 pattern: predict the next value.")):
    _train_command(_task, _help, _memory_options(_task), lambda o, task=_task: _run_memory(task, o))


# ----- bAbI question answering: rnnkit train babi, rnnkit answer (lecture 004) ---------------------------------

BABI_OPTIONS = [
    _option("task", 1, int, "bAbI task, 1..20."),
    _option("ten_k", False, bool, "Train on the 10k set (en-10k/) instead of the 1k set (en/)."),
    _option("train_size", None, Optional[int], "Use only the first N training questions."),
    _option("max_facts", None, Optional[int], "Keep the most recent N facts of longer stories (counted, warned)."),
    _option("variant", "dmn+", str, "dmn+ (Xiong et al. 2016) or dmn (Kumar et al. 2016): the defaults of "
            "--sentence, --fusion, --gate, --update and --tied."),
    _option("sentence", None, Optional[str], "Sentence encoding: pe (positional encoding) or gru (one GRU over the "
            "story's words)."),
    _option("fusion", None, Optional[bool], "Input fusion layer: a bidirectional GRU across the facts.",
            "--fusion/--no-fusion"),
    _option("gate", None, Optional[str], "Attention gates over the facts: softmax or sigmoid."),
    _option("update", None, Optional[str], "Memory update: relu (a ReLU layer) or gru."),
    _option("tied", None, Optional[bool], "One memory update for all passes (--untied: one per pass).",
            "--tied/--untied"),
    _option("passes", 3, int, "Episodic memory passes T."),
    _option("hidden", 80, int, "Hidden units H, also the word embedding size."),
    _option("dropout", 0.1, float, "Dropout on the facts and before the answer layer."),
    _option("answer", "auto", str, "Answer module: softmax (one word), gru (a decoder, for tasks 8 and 19's "
            "several words) or auto."),
    _option("supervise_gates", False, bool, "Add the gates' cross-entropy against the supporting facts to the loss."),
    _option("gate_weight", 1.0, float, "Weight of the gate loss (--supervise-gates)."),
]


def _run_babi(o: dict) -> None:
    from .tasks import babi

    if o["data"] is None:
        raise ValueError("train babi: --data DIR is required: the bAbI directory tasks_1-20_v1-2 (holding en/ and "
                         "en-10k/)")
    task = babi.BabiTask(data=str(o["data"].resolve()), task=o["task"], ten_k=o["ten_k"], train_size=o["train_size"],
                         max_facts=o["max_facts"], supervise_gates=o["supervise_gates"], gate_weight=o["gate_weight"])
    model = {k: o[k] for k in ("variant", "answer", "sentence", "fusion", "gate", "update", "tied", "passes", "hidden",
                               "dropout")}
    out, cfg, _ = _whole_sequence_run("babi", o, "question")
    command = (f"rnnkit train babi --data {o['data']} --task {o['task']}{' --ten-k' if o['ten_k'] else ''} "
               f"--out {out} --resume")
    report = babi.train(task, model, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    data, test = report["data"], report["test"]
    typer.echo(f"{report['task']}: {data['train']:,} train, {data['valid']:,} valid, {data['test']:,} test questions; "
               f"vocabulary {report['vocabulary']} words")
    typer.echo(f"model: {report['model']}, {report['parameters']:,} parameters")
    best = f"step {report['best_step']} of {report['step']}" if report["best_step"] else f"step {report['step']}"
    typer.echo(f"test accuracy {test['accuracy']:.2%} (error {test['error']:.2f} %) on {test['questions']:,} "
               f"questions, the weights with the lowest validation loss ({best}); {report['seconds']:.0f} s of training")
    typer.echo(f"gates of the first test question: {Path(out) / 'gates.png'}")


_train_command("babi", "bAbI question answering with a Dynamic Memory Network (lecture 004: DMN+, DMN). --data: the "
               "bAbI directory tasks_1-20_v1-2 (holding en/ and en-10k/).", BABI_OPTIONS, _run_babi)


@app.command("answer")
def answer_command(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train babi` run directory."),
    source: str = typer.Argument("-", help="A story and its questions in bAbI format ('ID fact' lines, then 'ID "
                                 "question?', optionally with <TAB>answer), or - for standard input."),
    plot: Optional[Path] = typer.Option(None, help="Write the gates of every pass over the facts to this PNG "
                                        "(NAME-1.png, NAME-2.png, ... for several questions)."),
    top: int = typer.Option(5, help="At most this many attended facts per question."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Answer the questions about a story; print each answer and the facts the last pass attended to."""
    from .tasks import babi

    if top < 1:
        raise ValueError(f"--top: expected >= 1, got {top}")
    if source == "-":
        text, where = sys.stdin.read(), "<stdin>"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"answer: expected a bAbI-format file or -, got {source!r} (no such file)")
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text (byte offset {e.start})") from None
    results = babi.answer(run_dir, text, source=where, device=device, top=top, plot=plot)
    for r in results:
        verdict = "" if r["expected"] is None else \
            f"  (expected {r['expected']}: {'right' if r['correct'] else 'wrong'})"
        typer.echo(f"{r['question']} -> {r['answer']}{verdict}")
        passes = len(r["gates"])
        typer.echo(f"  attended in pass {passes} of {passes}:")
        for label, gate in r["attended"]:
            typer.echo(f"    {gate:.2f}  {label}")
        if r["plot"] is not None:
            typer.echo(f"  gates: {r['plot']}")


# ----- Neural Turing Machine and Adaptive Computation Time: rnnkit train ntm / act (lecture 003) ---------------

def _ntm_options() -> list[inspect.Parameter]:
    """`rnnkit train ntm`: copy and repeat copy with a Neural Turing Machine or the LSTM baseline."""
    from .memory.ntm import CONTROLLERS, MEMORY_INITS

    return [
        _option("task", "copy", str, "copy or repeat-copy (Graves et al. 2014, sections 4.1 and 4.2)."),
        _option("model", "ntm", str, "ntm, or lstm: the baseline (Graves et al.'s 3 x 256 LSTM) trained the same way."),
        _option("controller", "lstm", str, f"NTM controller: {', '.join(CONTROLLERS)}."),
        _option("hidden", None, Optional[int], "Controller units (default 100), or LSTM baseline units (default 256)."),
        _option("layers", None, Optional[int], "LSTM baseline layers (default 3)."),
        _option("memory_size", 128, int, "N, memory locations."),
        _option("memory_width", 20, int, "M, numbers per location."),
        _option("read_heads", 1, int, "Read heads."),
        _option("write_heads", 1, int, "Write heads."),
        _option("shift_range", 1, int, "S: a head moves its focus by -S..S locations per step (0: content only)."),
        _option("memory_init", "fixed", str, f"The constant initial memory (1e-6): {' or '.join(MEMORY_INITS)}."),
        _option("width", 8, int, "Bits per vector."),
        _option("min_length", 1, int, "Fewest vectors per training sequence."),
        _option("max_length", None, Optional[int], "Most vectors per training sequence (default 20 for copy, 10 for "
                "repeat-copy)."),
        _option("min_repeats", 1, int, "repeat-copy: fewest repeats."),
        _option("max_repeats", 10, int, "repeat-copy: most repeats."),
        _option("batches_per_epoch", 100, int, "Fresh training batches generated per epoch."),
        _option("valid_size", 500, int, "Validation sequences (keep-best, early stopping)."),
        _option("test_size", 1000, int, "Test sequences (the reported bit error), never seen in training."),
    ]


def _refuse_unused(o: dict, defaults: dict, why: str) -> None:
    """An option changed from its default that the chosen setting does not use is an error, not ignored."""
    for name, default in defaults.items():
        if o[name] != default:
            raise ValueError(f"--{name.replace('_', '-')} {why} (got --{name.replace('_', '-')} {o[name]})")


def _generated_run(name: str, o: dict, extra: str) -> tuple[Path, TrainConfig, str]:
    if o["data"] is not None:
        raise ValueError(f"train {name}: the data are generated from --seed; --data is not used (got {o['data']})")
    out, cfg, _ = _whole_sequence_run(name, o, "sequence")
    return out, cfg, f"rnnkit train {name} {extra} --out {out} --resume"


def _run_ntm(o: dict) -> None:
    from .tasks import ntm

    low, high = ntm.DEFAULT_LENGTHS.get(o["task"], ntm.DEFAULT_LENGTHS["copy"])
    if o["task"] != "repeat-copy":
        _refuse_unused(o, {"min_repeats": 1, "max_repeats": 10}, "applies to --task repeat-copy")
    task = ntm.NTMTask(o["task"], width=o["width"], min_length=o["min_length"], max_length=o["max_length"] or high,
                       min_repeats=o["min_repeats"], max_repeats=o["max_repeats"],
                       batches_per_epoch=o["batches_per_epoch"], valid_size=o["valid_size"], test_size=o["test_size"])
    if o["model"] == "lstm":
        _refuse_unused(o, {"controller": "lstm", "memory_size": 128, "memory_width": 20, "read_heads": 1,
                           "write_heads": 1, "shift_range": 1, "memory_init": "fixed"}, "applies to --model ntm")
        model = {"model": "lstm", **{k: o[k] for k in ("hidden", "layers") if o[k] is not None}}
    else:
        _refuse_unused(o, {"layers": None}, "applies to --model lstm (the NTM has one controller)")
        model = {"model": o["model"], **{k: o[k] for k in ("controller", "memory_size", "memory_width", "read_heads",
                                                            "write_heads", "shift_range", "memory_init")}}
        if o["hidden"] is not None:
            model["controller_size"] = o["hidden"]
    kind, config = ntm.model_config(task, model)  # checked now, before anything is written
    out, cfg, command = _generated_run("ntm", o, f"--task {task.task}")
    if kind == "ntm":
        what = (f"NTM ({config.controller} controller, {config.controller_size} units; memory {config.memory_size} x "
                f"{config.memory_width}; {config.read_heads} read / {config.write_heads} write heads)")
    else:
        what = f"LSTM baseline ({config.layers} x {config.hidden})"
    typer.echo(f"{task.describe()}: {what}")
    report = ntm.train(task, model, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    typer.echo(f"{report['parameters']:,} parameters; {report['step']} steps in {report['seconds']:.0f} s; run "
               f"directory {out}")
    typer.echo(ntm.describe(report))
    typer.echo("bit error rate by length: " + ", ".join(f"{L}: {r['bit_error_rate']:.1%}"
                                                        for L, r in report["by_length"].items()))
    if kind == "ntm":
        typer.echo(f"heads and memory on one test sequence: {Path(out) / 'ntm_trace.png'}")


ACT_OPTIONS = [
    _option("task", "parity", str, "parity (Graves 2016, section 3.1)."),
    _option("cell", "rnn", str, f"The cell that ponders: {', '.join(KINDS)}."),
    _option("hidden", 128, int, "Units of the cell."),
    _option("size", 64, int, "Entries per parity vector (D)."),
    _option("time_penalty", 1e-3, float, "tau, the weight of the ponder cost N + R in the loss."),
    _option("epsilon", 0.01, float, "Halt once the halting probabilities add up to 1 - epsilon."),
    _option("max_steps", 100, int, "Most ponder steps per input (1: no ACT, the plain recurrent network)."),
    _option("halting_bias", 1.0, float, "Initial bias of the halting unit."),
    _option("batches_per_epoch", 100, int, "Fresh training batches generated per epoch."),
    _option("valid_size", 1000, int, "Validation vectors (keep-best, early stopping)."),
    _option("test_size", 2000, int, "Test vectors (the reported accuracy), never seen in training."),
]


def _run_act(o: dict) -> None:
    from .memory.act import ACTConfig
    from .tasks import act

    task = act.ACTTask(o["task"], size=o["size"], time_penalty=o["time_penalty"],
                       batches_per_epoch=o["batches_per_epoch"], valid_size=o["valid_size"], test_size=o["test_size"])
    model = {"cell": o["cell"], "hidden_size": o["hidden"], "epsilon": o["epsilon"], "max_steps": o["max_steps"],
             "halting_bias": o["halting_bias"]}
    config = ACTConfig(input_size=task.size, output_size=1, **model)  # checked now, before anything is written
    out, cfg, command = _generated_run("act", o, f"--task {task.task}")
    typer.echo(f"ACT parity, vectors of {task.size} entries: {config.cell} cell of {config.hidden_size} units, at most "
               f"{config.max_steps} ponder steps, tau {task.time_penalty:g}")
    report = act.train(task, model, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    typer.echo(f"{report['parameters']:,} parameters; {report['step']} steps in {report['seconds']:.0f} s; run "
               f"directory {out}")
    typer.echo(act.describe(report))
    typer.echo("by non-zero entries (accuracy, ponder steps): " + ", ".join(
        f"{k}: {r['accuracy']:.0%} {r['ponder_steps']:.2f}" for k, r in report["by_nonzeros"].items()))
    typer.echo(f"ponder steps per input: {Path(out) / 'ponder.png'}")


_train_command("ntm", "Neural Turing Machine (Graves, Wayne & Danihelka 2014; lecture 003) on copy or repeat-copy, "
               "generated and seeded; --model lstm trains the LSTM baseline the same way.", _ntm_options(), _run_ntm)
_train_command("act", "Adaptive Computation Time (Graves 2016; lecture 003) on the parity task, generated and seeded.",
               ACT_OPTIONS, _run_act)


def _forecast_options() -> list[inspect.Parameter]:
    """`rnnkit train forecast`: lecture 003's temperature forecasting (and lecture 000's seq2seq series)."""
    from .models.forecast import MODELS

    return [
        _option("target", None, Optional[str], "Column to forecast (required; always an input too)."),
        _option("features", None, Optional[str], "Input columns, comma-separated (default: all but --time)."),
        _option("time", None, Optional[str], "Time column, or year,month,day,hour part columns."),
        _option("time_format", None, Optional[str], "strptime format of the time column (default: ISO 8601 "
                "or the Jena archive's 01.01.2009 00:10:00)."),
        _option("categorical", None, Optional[str], "Text columns to one-hot encode, comma-separated."),
        _option("fill", None, Optional[str], "Missing values: ffill, interpolate or drop (default: an error)."),
        _option("calendar", None, Optional[str], "Calendar features from --time: hour,dow,doy (sin/cos)."),
        _option("normalise", "standard", str, "standard (mean/std) or minmax, fitted on the training rows."),
        _option("split", "0.6,0.2,0.2", str, "Train/valid/test fractions, or the rows where valid and test start."),
        _option("lookback", 120, int, "Rows of history in each window."),
        _option("step", 1, int, "Rows between the observations of a window."),
        _option("delay", 24, int, "The target is this many rows after the window's present row."),
        _option("season", 24, int, "Rows per season for the seasonal-naive baseline (<= --lookback)."),
        _option("loss", "mae", str, "mae (lecture 003) or mse (lecture 000)."),
        _option("model", "gru", str, f"{', '.join(MODELS)}."),
        _option("hidden", 32, int, "Recurrent units per direction (TCN channels)."),
        _option("layers", 1, int, "Recurrent layers (TCN blocks)."),
        _option("bidirectional", False, bool, "Read each window both ways (lecture 003)."),
        _option("dropout", 0.0, float, "Dropout between recurrent layers (TCN: inside blocks)."),
        _option("input_dropout", 0.0, float, "Keras's dropout: on each recurrent layer's inputs."),
        _option("recurrent_dropout", 0.0, float, "Keras's recurrent_dropout: on h(t-1) inside the recurrence."),
        _option("kernel_size", 5, int, "Convolution kernel (cnn, cnn-KIND, tcn)."),
        _option("channels", 32, int, "Convolution channels (cnn, cnn-KIND)."),
        _option("pool", 3, int, "Max-pooling between the two convolutions (cnn, cnn-KIND)."),
        _option("dense", 32, int, "Hidden units of the dense model."),
        _option("seq2seq", False, bool, "Lecture 000: predict the next value at every step of the window."),
        _option("predict_change", False, bool, "Predict the change from the last observed target value."),
    ]


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def _run_forecast(o: dict) -> None:
    from dataclasses import replace

    from .data.series_csv import parse_split
    from .tasks import forecast

    if o["data"] is None or o["target"] is None:
        raise ValueError("train forecast: --data CSV (or --data synthetic) and --target COLUMN are required")
    if o["bptt"] or o["bptt_window"]:
        raise ValueError("train forecast: every window is one sequence, trained whole; --bptt does not apply")
    if o["resume"] and o["out"] is None:
        raise ValueError("--resume needs --out RUN_DIR")
    out = o["out"] or _default_out("forecast")
    data = str(o["data"]) if str(o["data"]) == forecast.SYNTHETIC else str(o["data"].resolve())
    task = forecast.ForecastTask(
        data=data, target=o["target"], features=_names(o["features"]) or None, time=_names(o["time"]),
        time_format=o["time_format"], categorical=_names(o["categorical"]), fill=o["fill"],
        calendar=_names(o["calendar"]), normalise=o["normalise"], split=parse_split(o["split"]),
        lookback=o["lookback"], step=o["step"], delay=o["delay"], season=o["season"], loss=o["loss"])
    model = {k: o[k] for k in ("model", "hidden", "layers", "bidirectional", "dropout", "input_dropout",
                               "recurrent_dropout", "kernel_size", "channels", "pool", "dense", "seq2seq")}
    model["residual"] = o["predict_change"]
    command = f"rnnkit train forecast --data {o['data']} --target {o['target']} --out {out} --resume"
    if not o["quiet"]:
        typer.echo(f"run directory: {out}")
    report = forecast.train(task, model, replace(_train_config(o), stateful=False), out, resume=o["resume"],
                            resume_command=command)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(forecast.report_table(report))
        typer.echo(f"predictions: {Path(out) / 'test_predictions.csv'}; plot: {Path(out) / 'test_forecast.png'}")


_train_command("forecast", "Time-series forecasting: lecture 003's Jena workflow, with naive baselines beside.",
               _forecast_options(), _run_forecast)


# ----- sequence to sequence: rnnkit train seq2seq / dates, rnnkit translate ------------------------------

def _seq2seq_model_options(defaults: dict) -> list[inspect.Parameter]:
    """The encoder-decoder's options (rnnkit.models.seq2seq), with the task's defaults."""
    from .models.seq2seq import ATTENTIONS, BRIDGES, SAMPLING_SCHEDULES

    return [
        _option("attention", defaults["attention"], str, f"{', '.join(ATTENTIONS)}."),
        _option("cell", defaults["cell"], str, f"Encoder and decoder cell: {', '.join(KINDS)}."),
        _option("embedding", defaults["embedding"], int, "Embedding size."),
        _option("hidden", defaults["hidden"], int, "Decoder state and annotation size (a bidirectional encoder runs "
                "half of it per direction)."),
        _option("layers", defaults["layers"], int, "Encoder and decoder layers."),
        _option("unidirectional", False, bool, "Read the source one way only (default: both ways, Bahdanau's "
                "annotations)."),
        _option("reverse_source", False, bool, "Read the source backwards (Sutskever et al. 2014)."),
        _option("bridge", "learned", str, f"Decoder initial state from the encoder's final one: {', '.join(BRIDGES)}."),
        _option("no_input_feeding", False, bool, "Luong-style attention without feeding h~(t-1) back in."),
        _option("window", 5, int, "D, the half-width of the local-m / local-p window."),
        _option("attention_size", 0, int, "Hidden size of the bahdanau / luong-concat score and local-p's W_p "
                "(0: --hidden)."),
        _option("dropout", 0.0, float, "Dropout on the embeddings, between layers and before the output layer."),
        _option("scheduled_sampling", "none", str, f"Feed the model's own samples in training: "
                f"{', '.join(SAMPLING_SCHEDULES)}."),
        _option("sampling_k", 1000.0, float, "K of the schedule: linear 1 - step/K, exponential K^step, "
                "inverse-sigmoid K/(K + exp(step/K))."),
        _option("beam", 1, int, "Beam width for the final test translations (1: greedy)."),
    ]


def _seq2seq_model(o: dict) -> dict:
    """Seq2SeqConfig fields from the options; an option that does not apply to the chosen attention is an error."""
    attention = o["attention"]
    if o["window"] != 5 and attention not in ("local-m", "local-p"):
        raise ValueError(f"--window applies to local-m and local-p attention, got --attention {attention}")
    if o["attention_size"] and attention not in ("bahdanau", "luong-concat", "local-p"):
        raise ValueError(f"--attention-size applies to bahdanau, luong-concat and local-p attention, "
                         f"got --attention {attention}")
    if o["sampling_k"] != 1000.0 and o["scheduled_sampling"] == "none":
        raise ValueError("--sampling-k sets the --scheduled-sampling schedule; give one (linear, exponential, "
                         "inverse-sigmoid)")
    from .models.seq2seq import Seq2SeqConfig

    model = {"attention": attention, "cell": o["cell"], "embedding": o["embedding"], "hidden": o["hidden"],
             "layers": o["layers"], "bidirectional": not o["unidirectional"], "reverse_source": o["reverse_source"],
             "bridge": o["bridge"], "input_feeding": False if o["no_input_feeding"] else None, "window": o["window"],
             "attention_size": o["attention_size"], "dropout": o["dropout"],
             "scheduled_sampling": o["scheduled_sampling"], "sampling_k": o["sampling_k"]}
    Seq2SeqConfig(src_vocab_size=1, tgt_vocab_size=1, **model)  # checked now, before any data is read
    return model


SEQ2SEQ_OPTIONS = [
    _option("source_column", 0, int, "Tab-separated files: the source column (0 = the first)."),
    _option("target_column", 1, int, "Tab-separated files: the target column."),
    _option("langs", None, Optional[str], "A Multi30k directory: SRC-TGT languages, e.g. en-de."),
    _option("tokenizer", "13a", str, "13a (sacrebleu's), space or char."),
    _option("keep_case", False, bool, "Do not lower-case the sentences."),
    _option("max_len", 50, int, "Drop the pairs with a side longer than this many tokens (they are counted)."),
    _option("min_freq", 1, int, "Tokens seen fewer times in training become <unk>."),
    _option("max_vocab", None, Optional[int], "Vocabulary cap per side (most frequent tokens, specials included)."),
    _option("shared_vocab", False, bool, "One vocabulary and embedding for both sides."),
    _option("split", "0.8,0.1,0.1", str, "Train/valid/test fractions of a pairs file (a fixed seeded shuffle)."),
]

DATES_OPTIONS = [
    _option("train_size", 20_000, int, "Generated training dates."),
    _option("valid_size", 1_000, int, "Generated validation dates."),
    _option("test_size", 2_000, int, "Generated test dates (no source string seen in training)."),
    _option("data_seed", 0, int, "Seed of the generated dates (--seed seeds the training)."),
]


def _dates_defaults() -> dict:
    from .tasks.dates import DEFAULT_MODEL

    return DEFAULT_MODEL


def _run_seq2seq(o: dict) -> None:
    from .tasks import seq2seq

    if o["data"] is None:
        raise ValueError("train seq2seq: --data is required (a source<TAB>target file, .gz or .zip, or a Multi30k "
                         "directory with --langs)")
    try:
        split = tuple(float(f) for f in o["split"].split(","))
    except ValueError:
        raise ValueError(f"--split: expected three comma-separated fractions like 0.8,0.1,0.1, got {o['split']!r}")
    task = seq2seq.TranslationTask(
        data=str(o["data"].resolve()), source_column=o["source_column"], target_column=o["target_column"],
        langs=o["langs"], tokenizer=o["tokenizer"], lower=not o["keep_case"], max_len=o["max_len"],
        min_freq=o["min_freq"], max_vocab=o["max_vocab"], shared_vocab=o["shared_vocab"], split=split)
    model = _seq2seq_model(o)
    out, cfg, command = _whole_sequence_run("seq2seq", o, "pair")
    report = seq2seq.train(task, model, cfg, out, resume=o["resume"], resume_command=command, beam=o["beam"])
    if os.environ.get("RANK", "0") == "0":
        dropped = report["dropped"]
        if any(dropped.values()):
            typer.echo(f"--max-len {o['max_len']}: dropped " + ", ".join(
                f"{dropped[n]:,} of {report['read'][n]:,} {n}" for n in dropped if dropped[n]) + " pairs")
        _seq2seq_report(report, out)


def _run_dates(o: dict) -> None:
    from .tasks import dates

    if o["data"] is not None:
        raise ValueError(f"train dates: the dates are generated from --data-seed; --data is not used "
                         f"(got {o['data']})")
    task = dates.DatesTask(train_size=o["train_size"], valid_size=o["valid_size"], test_size=o["test_size"],
                           data_seed=o["data_seed"])
    out, cfg, command = _whole_sequence_run("dates", o, "pair")
    report = dates.train(task, _seq2seq_model(o), cfg, out, resume=o["resume"], resume_command=command,
                         beam=o["beam"])
    if os.environ.get("RANK", "0") == "0":
        _seq2seq_report(report, out)


def _seq2seq_report(report: dict, out: Path) -> None:
    data, vocab, valid = report["data"], report["vocabulary"], report["valid"]
    typer.echo("data: " + ", ".join(f"{name} {n:,}" for name, n in data.items()) + " pairs; vocabulary "
               f"{vocab['source']:,} source, {vocab['target']:,} target tokens; {report['parameters']:,} parameters")
    typer.echo(f"validation after {report['step']} steps: loss {valid['loss']:.4f}, next-token accuracy "
               f"{valid['accuracy']:.4f}")
    test = report.get("test")
    if test is None:
        return
    typer.echo(f"test ({test['decoding']}, {test['pairs']:,} pairs): exact match {test['exact_match']:.4f}, "
               f"BLEU {test['bleu']:.2f}, chrF {test['chrf']:.2f}")
    typer.echo("BLEU by source length (tokens): " + ", ".join(
        f"{b['source_tokens']}: {b['bleu']:.2f} ({b['pairs']:,})" for b in test["bleu_by_source_length"]))
    typer.echo(f"translations: {out / 'test_translations.tsv'}")


_train_command("seq2seq", "Translation with an encoder-decoder and attention (lectures 000, 001, 004). --data: a "
               "source<TAB>target file (.gz, or a .zip holding one, as ManyThings' fra-eng.zip) or a Multi30k "
               "directory with --langs.", _seq2seq_model_options({"attention": "bahdanau", "cell": "lstm",
                                                                  "embedding": 128, "hidden": 256, "layers": 1})
               + SEQ2SEQ_OPTIONS, _run_seq2seq)
_train_command("dates", "Date normalisation: human-written dates -> YYYY-MM-DD, generated and seeded; exact match on "
               "held-out dates.", _seq2seq_model_options(_dates_defaults()) + DATES_OPTIONS, _run_dates)


# ----- image captioning and visual question answering: rnnkit train captions / vqa, rnnkit caption -------------

def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--{what}: expected comma-separated ints like 32,64,64, got {text!r}") from None
    return values


SCENE_OPTIONS = [
    _option("image_size", 32, int, "Image side in pixels (scenes are drawn at it; a folder's images are resized to it)."),
    _option("train_size", 20_000, int, "Generated scenes for training."),
    _option("valid_size", 500, int, "Generated scenes for validation (keep-best)."),
    _option("test_size", 1_000, int, "Generated scenes for the test report, never trained on."),
    _option("data_seed", 0, int, "Seed of the generated scenes (--seed seeds the training)."),
    _option("channels", "32,64,64", str, "CNN: output channels of each 3x3 convolution, comma-separated."),
    _option("pools", 2, int, "CNN: the first N convolutions are followed by 2x2 max-pooling (map: size / 2^N)."),
]

CAPTION_OPTIONS = [
    _option("attention", "soft", str, "none (Show and Tell), soft or hard (Show, Attend and Tell)."),
    _option("image", "state", str, "attention none: the image as the initial state or as the first input."),
    _option("embedding", 64, int, "Word embedding size."),
    _option("hidden", 256, int, "LSTM units."),
    _option("attention_size", 0, int, "Hidden size of the additive attention score (0: --hidden)."),
    _option("gate", True, bool, "Xu et al.'s gate beta_t on the context.", "--gate/--no-gate"),
    _option("dropout", 0.0, float, "Dropout on embeddings and before the output layer."),
    _option("doubly_stochastic", 0.01, float, "lambda of soft attention's lambda * sum_i (1 - sum_t alpha_ti)^2."),
    _option("max_shapes", 3, int, "Generated scenes: at most this many shapes (1-3)."),
    _option("captions", None, Optional[Path], "--data DIR: the captions file (default DIR/captions.txt)."),
    _option("beam", 1, int, "Beam width for the test captions (1: greedy)."),
]

VQA_OPTIONS = [
    _option("hidden", 64, int, "H: facts, question and memory size."),
    _option("passes", 3, int, "Episodic memory passes T."),
    _option("dropout", 0.1, float, "Dropout on the facts and before the answer layer."),
]


def _run_captions(o: dict) -> None:
    from .tasks import captions

    task = captions.CaptionsTask(
        data=o["data"] and str(o["data"].resolve()), captions=o["captions"] and str(o["captions"].resolve()),
        image_size=o["image_size"], train_size=o["train_size"], valid_size=o["valid_size"], test_size=o["test_size"],
        max_shapes=o["max_shapes"], data_seed=o["data_seed"], doubly_stochastic=o["doubly_stochastic"])
    if o["data"] is not None:
        _refuse_unused(o, {"train_size": 20_000, "valid_size": 500, "test_size": 1_000, "max_shapes": 3,
                           "data_seed": 0}, "applies to the generated scenes (without --data)")
    model = {"channels": _ints(o["channels"], "channels"), "pools": o["pools"], "embedding": o["embedding"],
             "hidden": o["hidden"], "attention": o["attention"], "attention_size": o["attention_size"],
             "image": o["image"], "gate": o["gate"], "dropout": o["dropout"]}
    from .models.captioner import CaptionerConfig

    CaptionerConfig(vocab_size=4, image_size=task.image_size, **model)  # checked now, before anything is written
    out, cfg, command = _whole_sequence_run("captions", o, "caption")
    report = captions.train(task, model, cfg, out, resume=o["resume"], resume_command=command, beam=o["beam"])
    if os.environ.get("RANK", "0") != "0":
        return
    data, valid = report["data"], report["valid"]
    typer.echo(f"{report['task']}: train {data['train']:,}, valid {data['valid']:,}, test {data['test']:,} images; "
               f"vocabulary {report['vocabulary']} words; {report['parameters']:,} parameters; attention "
               f"{o['attention']}")
    typer.echo(f"validation after {report['step']} steps: loss {valid['loss']:.4f}, cross-entropy "
               f"{valid['cross_entropy']:.4f}, next-word accuracy {valid['accuracy']:.4f}; {report['seconds']:.0f} s")
    typer.echo(captions.describe(report))
    typer.echo(f"first test image {Path(out) / 'test_image.png'}: {report['first_test_caption']}")
    if o["attention"] != "none":
        typer.echo(f"its attention, word by word: {Path(out) / 'attention.png'}")
    typer.echo(f"captions: {Path(out) / 'test_captions.tsv'}")


def _run_vqa(o: dict) -> None:
    from .tasks import vqa

    if o["data"] is not None:
        raise ValueError(f"train vqa: the scenes and questions are generated from --data-seed; --data is not used "
                         f"(got {o['data']})")
    task = vqa.VQATask(image_size=o["image_size"], train_size=o["train_size"], valid_size=o["valid_size"],
                       test_size=o["test_size"], data_seed=o["data_seed"])
    model = {"channels": _ints(o["channels"], "channels"), "pools": o["pools"], "hidden": o["hidden"],
             "passes": o["passes"], "dropout": o["dropout"]}
    from .models.vqa import VQAConfig

    VQAConfig(vocab_size=4, answer_size=4, image_size=task.image_size, **model)  # checked before anything is written
    out, cfg, command = _whole_sequence_run("vqa", o, "question")
    report = vqa.train(task, model, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    data = report["data"]
    typer.echo(f"scene questions: train {data['train']:,}, valid {data['valid']:,}, test {data['test']:,}; DMN+ over "
               f"CNN facts in snake order (H {o['hidden']}, {o['passes']} passes); {report['parameters']:,} "
               f"parameters; {report['step']} steps in {report['seconds']:.0f} s")
    typer.echo(vqa.describe(report))
    typer.echo(f"gates of the first test question: {Path(out) / 'gates.png'}")


_train_command("captions", "Image captioning: a CNN from scratch and an LSTM decoder, with soft or hard attention over "
               "the feature map (Show and Tell; Show, Attend and Tell). Generated captioned scenes, or --data: a "
               "folder of images with a captions file.", SCENE_OPTIONS + CAPTION_OPTIONS, _run_captions)
_train_command("vqa", "Visual question answering on generated scenes with DMN+ (lecture 004): CNN facts in snake "
               "order, episodic memory, one-word answers.", SCENE_OPTIONS + VQA_OPTIONS, _run_vqa)


@app.command("caption")
def caption_command(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train captions` run directory."),
    images: list[Path] = typer.Argument(..., help="Image files (any format PIL reads; resized to the run's size)."),
    beam: int = typer.Option(5, help="Beam width (1: greedy)."),
    length_penalty: float = typer.Option(1.0, help="Beam score = log p / length^alpha; alpha 0: raw log p."),
    max_len: Optional[int] = typer.Option(None, help="Most words per caption (default: the longest training one + 5)."),
    plot_attention: Optional[Path] = typer.Option(None, help="Write the image's attention, word by word, to this PNG."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Print one caption per image."""
    from .tasks import captions

    result = captions.caption(run_dir, list(images), beam=beam, length_penalty=length_penalty, max_len=max_len,
                              plot_attention=plot_attention, device=device)
    for text in result["captions"]:
        typer.echo(text)
    if result["plot"] is not None:
        typer.echo(f"attention: {result['plot']}", err=True)


# ----- using a trained run ------------------------------------------------------------------------------


def _lm_runs(run_dirs: list[Path], command: str) -> Path | list[Path]:
    """One run directory as it is; several must all be language-model runs (an ensemble)."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    tasks = {str(d): checkpoint.run_task(d) for d in run_dirs}
    others = {d: t for d, t in tasks.items() if t not in ("charlm", "wordlm")}
    if others:
        raise ValueError(f"{command}: several run directories make an ensemble of language models (charlm, wordlm); "
                         "got " + ", ".join(f"{d} ({t or 'no readable config.json'})" for d, t in others.items()))
    return run_dirs


@app.command()
def generate(
    run_dirs: list[Path] = typer.Argument(..., help="A charlm/wordlm run directory; several: sample from their "
                                          "ensemble (next-token distributions averaged)."),
    prime: str = typer.Option("", help="Text to start from (characters must be in the vocabulary)."),
    length: int = typer.Option(500, help="Tokens to generate (stops early at <eos> for word models)."),
    temperature: float = typer.Option(1.0, help="Softmax temperature; 0 = greedy."),
    top_k: Optional[int] = typer.Option(None, help="Sample among the k most likely tokens."),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling: the smallest set reaching probability p."),
    seed: Optional[int] = typer.Option(None, help="Seed for a repeatable sample."),
    samples: int = typer.Option(1, help="Samples to make at once, as one batch (> 1: each printed when all are "
                                "done, after a line '=== sample K/N ===')."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    precision: str = typer.Option("fp32", help="fp32; bf16: the recurrent products with bf16 weights (faster on "
                                  "CPUs with AVX-512 BF16 or AMX); int8: with int8 weights, per-row scales (CPU, "
                                  "fbgemm). LSTM, peephole and Elman models."),
):
    """Sample text from a trained language model (or an ensemble of several), streaming tokens as they are
    produced."""
    run_dir = _lm_runs(run_dirs, "generate")
    if samples != 1:
        texts = lm.sample_many(run_dir, prime=prime, length=length, samples=samples, temperature=temperature,
                               top_k=top_k, top_p=top_p, seed=seed, device=device, precision=precision)
        for k, text in enumerate(texts, 1):
            typer.echo(f"=== sample {k}/{len(texts)} ===\n{prime}{text}")
        return
    tokens = lm.sample(run_dir, prime=prime, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                       seed=seed, device=device, precision=precision)
    _stream(tokens, prime)
    typer.echo("")


@app.command()
def evaluate(
    run_dirs: list[Path] = typer.Argument(..., help="A trained run directory; several language-model runs: "
                                          "evaluate their ensemble (next-token distributions averaged)."),
    data: Optional[Path] = typer.Option(None, help="Text to evaluate on (default: the run's validation text); for a "
                                        "music run, another piano-roll file whose test split to score."),
    batch_size: Optional[int] = typer.Option(None, help="Parallel streams (default: the training batch size)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    precision: str = typer.Option("fp32", help="Language models: fp32, or bf16 (inference under autocast, as "
                                  "training's validation runs with --precision bf16)."),
):
    """Loss (nats), bits per character/word and perplexity of a trained language model; the test report
    of an adding / copy / pattern, ntm, act, babi, captions, vqa, mdlstm, han or music run (on the test set the
    run was made with, from its best weights)."""
    from .tasks import act, babi, captions, han, mdlstm, memory, music, ntm, vqa

    run_dir = _lm_runs(run_dirs, "evaluate")  # a path, or a list of language-model runs
    task = checkpoint.run_task(run_dirs[0])
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"evaluate: expected --precision fp32 or bf16, got {precision!r}")
    if precision != "fp32" and task not in ("charlm", "wordlm"):
        raise ValueError(f"{run_dir}: --precision bf16 applies to language-model runs (charlm, wordlm), not {task}")
    held_out = {"captions": "the test images it was made with", "vqa": "its own generated test questions",
                "mdlstm": "its own test split (digits or generated scenes)", "han": "the test fold of its reviews",
                "music": "the test split of its piano-roll file (or of --data, another one)"}
    if task in held_out:
        unused = [name for name, value in (("--data", None if task == "music" else data), ("--batch-size", batch_size))
                  if value is not None]
        if unused:
            raise ValueError(f"{run_dir}: this {task} run is evaluated on {held_out[task]}; {' and '.join(unused)} "
                             f"{'does' if len(unused) == 1 else 'do'} not apply")
        module = {"captions": captions, "vqa": vqa, "mdlstm": mdlstm, "han": han, "music": music}[task]
        extra = {"data": data} if task == "music" else {}
        typer.echo(module.describe(module.evaluate_run(run_dir, device=device, **extra)))
        return
    if task in ("ntm", "act", "babi") or memory.is_run(run_dirs[0]):
        if data is not None or batch_size is not None:
            held_out = "its bAbI task's test file" if task == "babi" else "its own generated test set"
            raise ValueError(f"{run_dir}: this {task} run is evaluated on {held_out}; --data and --batch-size do "
                             "not apply")
        if task == "babi":
            test = babi.evaluate_run(run_dir, device=device)
            typer.echo(f"test accuracy {test['accuracy']:.2%} (error {test['error']:.2f} %) on "
                       f"{test['questions']:,} questions")
        else:
            module = {"ntm": ntm, "act": act}.get(task, memory)
            typer.echo(module.describe(module.evaluate_run(run_dir, device=device)))
        return
    typer.echo(_lm_report(lm.evaluate_run(run_dir, data=data, batch_size=batch_size, device=device,
                                          precision=precision)))


@app.command("forecast")
def forecast_command(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train forecast` run directory."),
    data: Optional[Path] = typer.Option(None, help="CSV with the run's columns (default: the run's test split)."),
    out: Optional[Path] = typer.Option(None, help="Where predictions.csv, forecast.png, report.json go "
                                       "(default RUN_DIR/forecast)."),
    rollout: int = typer.Option(0, help="Also generate this many steps by feeding predictions back (lecture 000)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Forecast with a trained run: MAE/RMSE beside the naive baselines, a predictions CSV and a plot."""
    from .tasks import forecast

    report = forecast.forecast_run(run_dir, data=data, out=out, rollout=rollout, device=device)
    where = out or Path(run_dir) / "forecast"
    typer.echo(forecast.report_table(report))
    typer.echo(f"predictions: {where / 'predictions.csv'}; plot: {where / 'forecast.png'}"
               + (f"; roll-out: {where / 'rollout.csv'}, {where / 'rollout.png'}" if rollout else ""))


@app.command("translate")
def translate_command(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train seq2seq` or `rnnkit train dates` run directory."),
    text: str = typer.Argument(..., help="The sentence to translate, or - to translate each line of standard input."),
    beam: int = typer.Option(5, help="Beam width (1: greedy)."),
    length_penalty: float = typer.Option(1.0, help="Beam score = log p / length^alpha; alpha 0: raw log p."),
    max_len: Optional[int] = typer.Option(None, help="Most tokens per translation (default 2 x source + 10)."),
    plot_attention: Optional[Path] = typer.Option(None, help="Write the attention heatmap of the sentence to this PNG."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Print one translation per input sentence (an empty line for an empty sentence)."""
    from .tasks import seq2seq

    sentences = sys.stdin.read().splitlines() if text == "-" else [text]
    result = seq2seq.translate(run_dir, sentences, beam=beam, length_penalty=length_penalty, max_len=max_len,
                               plot_attention=plot_attention, device=device)
    if result["too_long"]:
        typer.echo(f"rnnkit: warning: {result['too_long']} sentence(s) longer than the longest training source "
                   f"({result['max_source_len']} tokens); translated anyway", err=True)
    if result["unknown"]:
        shown = ", ".join(repr(t) for t in result["unknown"][:10]) + (" ..." if len(result["unknown"]) > 10 else "")
        typer.echo(f"rnnkit: warning: {len(result['unknown'])} source token(s) not in the training vocabulary, read "
                   f"as <unk>: {shown}", err=True)
    for translation in result["translations"]:
        typer.echo(translation)
    if result["plot"] is not None:
        typer.echo(f"attention: {result['plot']}", err=True)


@app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="A trained run directory (charlm, wordlm, classify, seqmnist, adding, "
                                   "copy, pattern, forecast, ntm, seq2seq, dates, act, babi, captions, vqa, mdlstm, han, music)."),
    format: str = typer.Option("onnx", "--format", help="torchscript or onnx (onnx is checked with onnxruntime: "
                               "pip install 'rnnkit[onnx]')."),
    out: Optional[Path] = typer.Option(None, help="Directory for the graph and its FORMAT.json sidecar (default RUN_DIR/export)."),
):
    """Export a run's model as a TorchScript or ONNX graph of plain tensors that takes any batch size and
    sequence length (documents of any size, MDLSTM images of any size), checked against the model on a padded
    batch of mixed lengths."""
    from .export import export_run

    result = export_run(run_dir, format, out)
    where = Path(result["out"])

    def ports(items):
        return ", ".join(f"{p['name']} ({', '.join(map(str, p['shape']))}{',' if len(p['shape']) == 1 else ''}) "
                         f"{p['dtype']}" for p in items)

    for graph in result["graphs"]:
        typer.echo(f"{where / graph['file']} ({graph['bytes'] / 1024:,.0f} kB): {ports(graph['inputs'])} -> "
                   f"{ports(graph['outputs'])}")
        check = graph["check"]
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in check["input_shapes"].items())
        if "skipped" in check:
            typer.echo(f"  not checked: {check['skipped']}")
        else:
            typer.echo(f"  checked against the eager model on {shapes}: max |difference| {check['max_abs_diff']:.1e}")
    typer.echo(f"{where / result['sidecar']}: inputs, outputs, exporter ({result['exporter']})"
               + (f"; copied {', '.join(result['files'])}" if result["files"] else ""))


@app.command("bench")
def bench_command(
    quick: bool = typer.Option(False, "--quick", help="One small shape (B=16, T=50, H=128), short rounds, one "
                                                      "thread unless --threads: under a minute on 2 cores."),
    threads: Optional[int] = typer.Option(None, help="torch.set_num_threads(N) for every row and the GEMM peak "
                                                     "(default: torch's own; 1 with --quick)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the report to this file."),
    kinds: Optional[str] = typer.Option(None, help=f"Comma-separated subset of the cell kinds (default all: "
                                                   f"{','.join(KINDS)})."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Toy shapes, one round: for the tests."),
):
    """Training throughput of every cell kind vs torch's kernels, a Python loop, NumPy and Keras; BPTT memory vs T.

    The report (Markdown) goes to stdout, progress to stderr.
    """
    from .bench import BenchConfig, run_bench

    overrides = {"device": device} if threads is None else {"device": device, "threads": threads}
    if kinds is not None:
        overrides["kinds"] = tuple(k.strip() for k in kinds.split(",") if k.strip())
    config = BenchConfig.preset("tiny" if tiny else "quick" if quick else "full", **overrides).check()
    if markdown is not None and not markdown.parent.is_dir():
        raise ValueError(f"rnnkit bench: --markdown {markdown}: folder {markdown.parent} does not exist")
    text = run_bench(config, log=lambda message: typer.echo(message, err=True))
    typer.echo(text, nl=False)
    if markdown is not None:
        markdown.write_text(text, encoding="utf-8")


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


# ----- MDLSTM, hierarchical attention, polyphonic music: rnnkit train mdlstm / han / music (issue 10) ------

MDLSTM_OPTIONS = [
    _option("patch", 2, int, "Pixels per side of the blocks each position reads (image sides must divide by it)."),
    _option("hidden", 32, int, "MDLSTM units per direction."),
    _option("layers", 1, int, "MDLSTM layers."),
    _option("directions", 4, int, "Scan directions: 4 (every corner), 2 (top-left, bottom-right) or 1."),
    _option("dropout", 0.0, float, "Dropout between layers and before the dense layer."),
    _option("segment", False, bool, "Per-pixel segmentation of generated scenes (background, circle, square, "
            "triangle) instead of digit classification."),
    _option("image_size", 32, int, "--segment: scene side in pixels (a multiple of --patch)."),
    _option("train_size", 20_000, int, "--segment: generated scenes for training."),
    _option("valid_size", 500, int, "--segment: generated scenes for validation (keep-best)."),
    _option("test_size", 1_000, int, "--segment: generated scenes for the test report, never trained on."),
    _option("max_shapes", 3, int, "--segment: at most this many shapes per scene (1-3)."),
    _option("data_seed", 0, int, "--segment: seed of the generated scenes (--seed seeds the training)."),
]


def _run_mdlstm(o: dict) -> None:
    from .tasks import mdlstm

    options = {k: o[k] for k in ("patch", "hidden", "layers", "directions", "dropout")}
    if o["segment"]:
        _run_mdlstm_segment(o, options)
        return
    scene_defaults = {f.name: f.default for f in dataclasses.fields(mdlstm.SegmentTask)}
    _refuse_unused(o, scene_defaults, "applies to --segment (the generated scenes)")
    task = mdlstm.MDLSTMTask(data=o["data"] and str(o["data"].resolve()))
    out, cfg, command = _whole_sequence_run("mdlstm", o, unit="image")
    result = mdlstm.train(task, options, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    H, W = result["data"]["train"]["image_size"]
    gh, gw = result["grid"]
    source = "MNIST" if o["data"] else "scikit-learn's 8x8 digits"
    typer.echo(f"data: {source}, {H}x{W} images as a {gh}x{gw} "
               f"grid of {o['patch']}x{o['patch']} patches; "
               + ", ".join(f"{name} {s['examples']:,}" for name, s in result["data"].items()))
    _classifier_reports(result, out)


def _run_mdlstm_segment(o: dict, options: dict) -> None:
    from .tasks import mdlstm

    if o["data"] is not None:
        raise ValueError(f"train mdlstm --segment: the scenes are generated from --data-seed; --data is not used "
                         f"(got {o['data']})")
    task = mdlstm.SegmentTask(**{f.name: o[f.name] for f in dataclasses.fields(mdlstm.SegmentTask)})
    mdlstm.segment_config(task, options)  # checked before anything is written
    out, cfg, _ = _whole_sequence_run("mdlstm", o, unit="image")
    command = f"rnnkit train mdlstm --segment --out {out} --resume"
    result = mdlstm.train_segment(task, options, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    data, (gh, gw), speed = result["data"], result["grid"], result["speed"]
    typer.echo(f"data: {result['task']} as a {gh}x{gw} grid of {o['patch']}x{o['patch']} patches; train "
               f"{data['train']:,}, valid {data['valid']:,}, test {data['test']:,} scenes; {result['parameters']:,} "
               "parameters")
    best = f"step {result['best_step']} of {result['step']}" if result["best_step"] else f"step {result['step']}"
    valid = result["valid"]
    typer.echo(f"the model with the lowest validation loss ({best}): valid pixel accuracy "
               f"{valid['pixel_accuracy']:.2%}, mean IoU {valid['mean_iou']:.4f}")
    typer.echo(mdlstm.describe(result["test"]))
    if speed["train_images_per_s"] is not None:
        typer.echo(f"speed: training {speed['train_images_per_s']:,.1f} images/s ({speed['train_pixels_per_s']:,.0f} "
                   f"pixels/s), test inference {speed['test_images_per_s']:,.1f} images/s, on {speed['device']} with "
                   f"{speed['threads']} thread(s); {result['seconds']:.0f} s in all")
    typer.echo(f"image, true and predicted labels of {min(mdlstm.PLOTTED, data['test'])} test scenes: "
               f"{Path(out) / 'segmentation_test.png'}")


HAN_OPTIONS = [
    _option("fold", 0, int, "Test fold of Pang & Lee's 10-fold CV by cv tag: reviews cvK00-cvK99 (K = 0..9)."),
    _option("embedding", 100, int, "Word embedding size."),
    _option("hidden", 50, int, "GRU units per direction (word and sentence encoders)."),
    _option("attention", 100, int, "Size of the attention projections u_it, u_i."),
    _option("dropout", 0.0, float, "Dropout on the embeddings and before the dense layer."),
    _option("max_words", 30_000, int, "Vocabulary size (<pad> and <unk> included)."),
    _option("max_sentences", 80, int, "Sentences per review; later ones are cut (and counted)."),
    _option("max_sentence_len", 60, int, "Tokens per sentence; longer sentences are cut (and counted)."),
    _option("html_docs", 20, int, "Test reviews written to attention_test.html (0: none)."),
    _option("pretrained", None, Optional[Path], "word2vec/GloVe text file: initial word vectors (size --embedding)."),
    _option("pretrain", None, Optional[Path], "Labelled sentences to pretrain the word level on first: an SST "
            "directory (its non-neutral phrases), an RT polarity directory, or a text<TAB>label file with labels "
            "negative/positive, neg/pos or 0/1; any sharing 8 words in a row with a validation or test review are "
            "left out."),
    _option("pretrain_epochs", 3, int, "--pretrain: passes over the sentences (3: the measured SST recipe)."),
]


def _run_han(o: dict) -> None:
    from .tasks import han

    if o["data"] is None:
        raise ValueError("train han: --data is required (review_polarity.tar.gz, Pang & Lee's movie reviews)")
    if o["pretrain"] is None:
        _refuse_unused(o, {"pretrain_epochs": han.HANTask.pretrain_epochs}, "applies to --pretrain, which is not given")
    task = han.HANTask(data=str(o["data"].resolve()), fold=o["fold"], max_words=o["max_words"],
                       max_sentences=o["max_sentences"], max_sentence_len=o["max_sentence_len"],
                       pretrained=o["pretrained"] and str(o["pretrained"].resolve()),
                       pretrain=o["pretrain"] and str(o["pretrain"].resolve()), pretrain_epochs=o["pretrain_epochs"])
    out, cfg, command = _whole_sequence_run("han", o, unit="document")
    options = {k: o[k] for k in ("embedding", "hidden", "attention", "dropout")}
    result = han.train(task, options, cfg, out, resume=o["resume"], resume_command=command, html_docs=o["html_docs"])
    if os.environ.get("RANK", "0") != "0":
        return
    typer.echo(f"data: test fold {o['fold']}: " + ", ".join(
        f"{name} {d['documents']:,} reviews ({d['sentences']:,} sentences)" for name, d in result["data"].items())
        + f"; vocabulary {result['vocabulary']:,} words")
    if result["pretrain"]:
        pre = result["pretrain"]
        typer.echo(f"pretraining of the word level: {pre['sentences']['train']:,} sentences ({pre['left_out']} left "
                   f"out for overlapping a held-out review), {pre['step']} steps; held-out sentence accuracy "
                   f"{pre['valid']['accuracy']:.4f} on {pre['sentences']['valid']:,}")
    _classifier_reports(result, out)
    if result["html"]:
        typer.echo(f"attention of {o['html_docs']} test reviews: {result['html']}")


@app.command("han-attention")
def han_attention_command(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train han` run directory."),
    document: str = typer.Argument(..., help="A text file, one sentence per line, or - for standard input."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write the attention view to this HTML file."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Classify one document with a HAN run: the label, its probability and the most attended sentence."""
    from .tasks import han

    if document == "-":
        text, where = sys.stdin.read(), "stdin"
    else:
        path = Path(document)
        if not path.is_file():
            raise FileNotFoundError(f"han-attention: no such file {path}")
        text, where = path.read_text(encoding="utf-8"), str(path)
    result = han.predict_document(run_dir, text.split("\n"), device=device, where=where)
    typer.echo(f"{result['label']}\t{result['probability']:.4f}")
    weight, tokens = max(result["sentences"], key=lambda s: s[0])
    typer.echo(f"most attended sentence ({weight:.3f}): {' '.join(t for t, _ in tokens)}")
    if html_out is not None:
        html_out.write_text(han.attention_html([{**result, "title": where}]), encoding="utf-8")
        typer.echo(f"attention view: {html_out}")


MUSIC_OPTIONS = [
    _option("model", "lstm", str, f"Sequence model: {', '.join(ENCODERS)} (Bai et al. compare lstm, gru, tcn)."),
    _option("hidden", 150, int, "Units (RNN) or channels (TCN)."),
    _option("layers", 1, int, "Recurrent layers (TCN: residual blocks)."),
    _option("dropout", 0.0, float, "Dropout between layers and before the output layer."),
    _option("kernel_size", 3, int, "TCN convolution width."),
]


def _run_music(o: dict) -> None:
    from .tasks import music

    if o["data"] is None:
        raise ValueError("train music: --data is required (a piano-roll .mat or .json file, e.g. JSB_Chorales.mat)")
    task = music.MusicTask(data=str(o["data"].resolve()))
    out, cfg, command = _whole_sequence_run("music", o, unit="piece")
    options = {k: o[k] for k in ("model", "hidden", "layers", "dropout", "kernel_size")}
    result = music.train(task, options, cfg, out, resume=o["resume"], resume_command=command)
    if os.environ.get("RANK", "0") != "0":
        return
    typer.echo("data: " + ", ".join(f"{name} {d['pieces']} pieces ({d['frames']:,} predicted frames)"
                                    for name, d in result["data"].items()))
    best = f"step {result['best_step']} of {result['step']}" if result["best_step"] else f"step {result['step']}"
    typer.echo(f"the model with the lowest validation NLL ({best}): valid NLL {result['valid']:.4f}, "
               f"test NLL {result['test']:.4f} nats per frame (sum over 88 keys)")


@app.command("sample-music")
def sample_music_command(
    run_dir: Path = typer.Argument(..., help="A `rnnkit train music` run directory."),
    out: Path = typer.Argument(..., help="The MIDI file to write."),
    length: int = typer.Option(64, help="Frames to sample after the one-frame prime."),
    seed: Optional[int] = typer.Option(None, help="Seed for a repeatable piece (also picks the prime)."),
    bpm: float = typer.Option(120.0, help="Tempo, quarter notes per minute."),
    frames_per_beat: int = typer.Option(1, help="Frames per quarter note (1 for the B-L JSB Chorales)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Sample a new piece frame by frame from a music run and write it as a MIDI file."""
    from .tasks import music

    result = music.sample(run_dir, out, length=length, seed=seed, bpm=bpm, frames_per_beat=frames_per_beat,
                          device=device)
    typer.echo(f"{result['path']}: {result['frames']} frames (prime: the first frame of training piece "
               f"{result['prime_index']}), {result['notes_per_frame']:.2f} notes per frame")


_train_command("mdlstm", "MNIST with a 4-direction multi-dimensional LSTM (Graves et al. 2007, lecture 004). --data DIR: "
               "MNIST's IDX files; without it, scikit-learn's bundled 8x8 digits. --segment: label every pixel of "
               "generated scenes instead (pixel accuracy, mean IoU).", MDLSTM_OPTIONS, _run_mdlstm)
_train_command("han", "Hierarchical attention network (Yang et al. 2016) on Pang & Lee's movie reviews. --data: "
               "review_polarity.tar.gz.", HAN_OPTIONS, _run_han)
_train_command("music", "Polyphonic music next-frame model (Boulanger-Lewandowski 2012; Bai et al. 2018): frame NLL. "
               "--data: a piano-roll .mat or .json file.", MUSIC_OPTIONS, _run_music)


def main():
    """The ``rnnkit`` console script."""
    app(prog_name="rnnkit")
