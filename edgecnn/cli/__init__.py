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

from edgecnn.cli._app import app
from edgecnn.errors import EdgecnnError

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


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    try:
        app(args=argv, prog_name="edgecnn")
    except EdgecnnError as exc:
        if os.environ.get("EDGECNN_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        typer.echo(f"edgecnn: error: {message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("edgecnn: interrupted", err=True)
        sys.exit(130)
