"""``edgecnn inspect MODEL``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json


@app.command("inspect")
def inspect_command(
    model: Path = typer.Argument(..., help="Path to a .tflite model."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a model's tensors, operators, labels and edgecnn metadata.

    Example: edgecnn inspect model_int8.tflite --json
    """
    from edgecnn.inspection import format_report, inspect_model

    report = inspect_model(model)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report))
