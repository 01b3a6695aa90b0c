"""``edgecnn inspect MODEL``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json, model_option, pick_model


@app.command("inspect")
def inspect_command(
    model: Path | None = typer.Argument(
        None, metavar="MODEL", help="Path to a .tflite model.", show_default=False
    ),
    model_opt: Path | None = model_option(),
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
    from edgecnn.inspect.contents import format_report, inspect_model

    report = inspect_model(pick_model(model, model_opt), target=target.lower() if target else None)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report))
