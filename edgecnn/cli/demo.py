"""``edgecnn demo``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json


@app.command("demo")
def demo_command(
    out: Path = typer.Option(
        Path("runs/demo"),
        "--output",
        "-o",
        file_okay=False,
        help="Folder for everything the demo writes; a previous demo's folder is replaced, any other "
        "non-empty folder is refused.",
    ),
    old_out: Path | None = typer.Option(None, "--out", hidden=True, file_okay=False),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, max=1000, help="Training epochs (default 15, with early stopping)."
    ),
    seconds: float = typer.Option(
        5.0, "--seconds", min=0.5, max=600, help="How long `edgecnn run` classifies the demo video."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Tiny training and short bench: checks the pipeline works, figures are not useful.",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the figures as JSON (progress goes to stderr)."
    ),
) -> None:
    """Train, convert, check, bench and run the seed CNN on the bundled digits, offline, then print one table.

    Last, a counting step: a bundled shapes detector tracks generated shapes crossing a line and counts them.

    Example: edgecnn demo -o runs/demo
    (then: edgecnn run runs/demo/model_int8.tflite --camera 0 --serve 127.0.0.1:8080)
    """
    from edgecnn.cli._app import deprecated_alias
    from edgecnn.demo import demo, format_report

    out = deprecated_alias(out, old_out, new="--output", old_name="--out", default=Path("runs/demo"))

    # With --json, stdout carries only the JSON document: progress (and Keras') goes to stderr.
    sink = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with sink:
        report = demo(output=out, epochs=epochs, seconds=seconds, quick=quick)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report))
