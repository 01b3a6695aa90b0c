"""The ``edgecnn`` command: a thin Typer layer over the library functions.

Each command lives in its own module here and calls one library function; this module composes them and
is the single place where :class:`~edgecnn.errors.EdgecnnError` becomes one line on stderr and an exit
code (``EDGECNN_DEBUG=1`` shows the traceback instead).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

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


def main(argv: list[str] | None = None) -> None:
    """Run the app; every error (ours, or Click's usage errors) leaves as one line and an exit code."""
    setup_logging()
    debug = bool(os.environ.get("EDGECNN_DEBUG"))
    try:
        # standalone_mode=False: Click raises usage errors instead of printing Typer's Rich boxes.
        code = app(args=argv, prog_name="edgecnn", standalone_mode=False)
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
    sys.exit(code if isinstance(code, int) else 0)
