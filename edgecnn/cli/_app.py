"""The Typer application object and small helpers shared by command modules."""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any

import typer

from edgecnn import __version__

app = typer.Typer(
    name="edgecnn",
    help="Train, convert, run and measure small CNN image classifiers on Raspberry Pi and Coral Edge TPU.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """edgecnn: from a Keras CNN to a camera-fed classifier on a Raspberry Pi or a Coral."""


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def echo_json(data: Any) -> None:
    """Print ``data`` (dataclasses, paths, numpy values allowed) as one JSON document."""
    typer.echo(json.dumps(data, indent=2, default=_default))


# Reused option declarations: paths that must exist, as the style guide asks.
def model_argument(help_text: str = "Path to a .tflite model.") -> Any:
    return typer.Argument(..., exists=True, dir_okay=False, resolve_path=True, help=help_text)
