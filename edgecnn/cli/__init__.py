"""The ``edgecnn`` command: a thin Typer layer over the library functions.

Each command lives in its own module here and calls one library function; this module composes them and
is the single place where :class:`~edgecnn.errors.EdgecnnError` becomes one line on stderr and an exit
code (``EDGECNN_DEBUG=1`` shows the traceback instead).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from typing import Any, NoReturn

import typer

try:  # typer >= 0.23 vendors Click as typer._click; older releases depend on Click itself
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click  # type: ignore[no-redef]

from edgecnn.cli._app import app, reflow_help
from edgecnn.errors import EdgecnnError, one_line

# One module per command (or command group); each registers itself on ``app`` when imported.
COMMAND_MODULES = (
    "inspect",
    "predict",
    "eval",
    "bench",
    "devices",
    "service",
    "run",
    "train",
    "convert",
    "fleet",
    "demo",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"edgecnn.cli.{_name}")
reflow_help(app)  # paragraphs on one line: the terminal wraps them, not the source's margin


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "warning" if record.levelno == logging.WARNING else record.levelname.lower()
        return (
            f"edgecnn: {level}: {record.getMessage()}"
            if record.levelno >= logging.WARNING
            else record.getMessage()
        )


def setup_logging() -> None:
    logger = logging.getLogger("edgecnn")
    if not any(getattr(h, "_edgecnn", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        handler._edgecnn = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if os.environ.get("EDGECNN_DEBUG") else logging.INFO)
    logger.propagate = False


def usage_line(exc: click.UsageError) -> str:
    """One line for a Click/Typer usage error: what is wrong, and where the help is.

    Click's own text ("Invalid value for '--threads': 0 is not in the range 1<=x<=64.") already names the
    option and the problem; the hint names the command whose ``--help`` explains it.
    """
    message = one_line(exc.format_message()) or "invalid usage"
    path = exc.ctx.command_path if exc.ctx is not None else "edgecnn"
    return f"edgecnn: error: {message} (see '{path} --help')"


# Exit status when standard output's reader went away (`edgecnn predict ... | head -1`): what a shell
# reports for a process killed by SIGPIPE, so `set -o pipefail` scripts see the usual value.
EXIT_BROKEN_PIPE = 128 + 13
# Exit status when standard output cannot be written (`> /dev/full`): an unwritable output, like -o's.
EXIT_STDOUT_FAILED = 4


def _discard(stream: object) -> None:
    """Point ``stream``'s descriptor at /dev/null, so the interpreter's final flush of what is still
    buffered succeeds silently (the recipe in the docs of Python's signal module, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # type: ignore[attr-defined]
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


class _CheckedStream:
    """``sys.stdout`` as the commands see it, remembering the first write or flush that failed, so the
    error mapping knows an ``OSError`` came from standard output and not from some file a command read."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return int(self.stream.write(text))
        except OSError as exc:
            self.failure = self.failure or exc
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self.failure = self.failure or exc
            raise

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer, ...
        return getattr(self.stream, name)


def _end_on_stdout_failure(stdout: _CheckedStream) -> NoReturn:
    """One line (none for a closed pipe) and the exit status for a standard output that cannot be written."""
    exc = stdout.failure
    assert exc is not None
    _discard(stdout.stream)
    sys.stdout = stdout.stream  # Click may have wrapped it (PacifyFlushWrapper): not needed any more
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        sys.exit(EXIT_BROKEN_PIPE)
    reason = exc.strerror or one_line(exc)
    typer.echo(f"edgecnn: error: cannot write to standard output: {reason}", err=True)
    sys.exit(EXIT_STDOUT_FAILED)


def main(argv: list[str] | None = None) -> None:
    """Run the app; every error (ours, or Click's usage errors) leaves as one line and an exit code.

    Standard output failing (a full disk behind ``> file``, ``/dev/full``, a closed pipe) is handled here
    too, once for every command: one line ``cannot write to standard output`` (nothing for a closed pipe,
    exit 141, like a process SIGPIPE ended) instead of a traceback.
    """
    setup_logging()
    stdout = _CheckedStream(sys.stdout)
    sys.stdout = stdout  # type: ignore[assignment]
    try:
        _run(argv, stdout)
    finally:
        if sys.stdout is stdout:  # type: ignore[comparison-overlap]
            sys.stdout = stdout.stream


def _run(argv: list[str] | None, stdout: _CheckedStream) -> NoReturn:
    debug = bool(os.environ.get("EDGECNN_DEBUG"))
    try:
        # standalone_mode=False: Click raises usage errors instead of printing Typer's Rich boxes.
        code = app(args=argv, prog_name="edgecnn", standalone_mode=False)
        stdout.flush()  # what is still buffered fails here, not in the interpreter's exit
    except click.NoArgsIsHelpError as exc:  # `edgecnn bench`: the help (Rich printed it already), exit 2
        if exc.format_message().strip():
            typer.echo(exc.format_message(), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        if debug:
            raise
        typer.echo(usage_line(exc), err=True)
        sys.exit(2)
    except click.ClickException as exc:  # e.g. click.FileError
        if debug:
            raise
        typer.echo(f"edgecnn: error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except EdgecnnError as exc:
        if debug:
            raise
        message = one_line(exc)
        typer.echo(f"edgecnn: error: {message}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("edgecnn: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        if stdout.failure is not None:  # Click turned EPIPE into exit 1 behind PacifyFlushWrapper
            _end_on_stdout_failure(stdout)
        raise
    except OSError:
        if stdout.failure is None or debug:
            raise
        _end_on_stdout_failure(stdout)
    sys.exit(code if isinstance(code, int) else 0)
