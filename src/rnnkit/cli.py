"""The ``rnnkit`` command line (also ``python -m rnnkit``): thin wrappers over the library.

Every command shares one failure contract, implemented once in :class:`_Group`: an exception raised by the
library ends the command with exit status 1 and one line ``rnnkit: error: <message>`` on stderr; with
``--debug`` (accepted anywhere on the command line, before a ``--``) the full traceback is printed
instead. Usage errors (unknown option, missing argument) keep click's own message and exit status 2.
"""
from __future__ import annotations

import sys
import traceback

import typer

from . import __version__
from .demo import DemoConfig, SERIES, resolve_device, run_demo
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


@app.command()
def demo(
    steps: int = typer.Option(DemoConfig.steps, help="Optimizer steps, each on a batch of 50 windows."),
    cell: str = typer.Option(DemoConfig.cell, help=f"Recurrent cell: {', '.join(KINDS)}."),
    hidden: int = typer.Option(DemoConfig.hidden_size, help="Recurrent units."),
    seed: int = typer.Option(DemoConfig.seed, help="Seed for the weights and the data."),
    device: str = typer.Option(DemoConfig.device, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the results, no header or progress."),
):
    """Lecture 000's time-series RNN: train it, test it against a naive forecast, generate a series."""
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
