"""Helpers the task tests share: run the CLI in-process, check a one-line error."""
from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()


def cli(*args, ok=True, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def one_line_error(result, *expected):
    """Exit status 1, no traceback, one line on stderr naming every expected text; returns that line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
