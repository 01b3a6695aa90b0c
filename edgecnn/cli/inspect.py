"""``edgecnn inspect MODEL``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json


@app.command("inspect")
def inspect_command(
    model: Path = typer.Argument(..., help="Path to a .tflite model."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    target: str | None = typer.Option(
        None,
        "--target",
        help="edgetpu: also check Edge TPU compatibility (ops, versions, int8, static shapes).",
    ),
) -> None:
    """Show a model's tensors, operators, labels and edgecnn metadata.

    Example: edgecnn inspect model_int8.tflite --json
    (or: edgecnn inspect model_int8.tflite --target edgetpu)
    """
    from edgecnn.inspection import format_report, inspect_model

    report = inspect_model(model, target=target.lower() if target else None)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report))
