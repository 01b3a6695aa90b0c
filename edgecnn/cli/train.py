"""``edgecnn train``."""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json


class Architecture(str, Enum):
    seed = "seed"
    mobile = "mobile"


class Colour(str, Enum):
    gray = "gray"
    rgb = "rgb"


@app.command("train")
def train_command(
    dataset: str = typer.Option(
        "digits",
        "--dataset",
        "-d",
        help="digits (offline, bundled with scikit-learn), mnist, fashion_mnist, cifar10 (Keras cache), "
        "or an image folder DIR/<class>/*.jpg|png.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Run directory to write (default: runs/<dataset name>)."
    ),
    architecture: Architecture = typer.Option(
        Architecture.seed,
        "--arch",
        case_sensitive=False,
        help="seed: the classic conv-pool-conv-pool-dense net; mobile: depthwise-separable net for RGB photos.",
    ),
    epochs: int = typer.Option(40, "--epochs", min=1, max=10_000, help="Maximum epochs."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, max=8192, help="Images per training step."),
    learning_rate: float = typer.Option(
        1e-3, "--learning-rate", min=1e-7, max=1.0, help="Adam learning rate."
    ),
    validation_split: float = typer.Option(
        0.1, "--validation-split", min=0.0, max=0.89, help="Fraction of training images kept for validation."
    ),
    test_split: float = typer.Option(
        0.2,
        "--test-split",
        min=0.01,
        max=0.89,
        help="Held-out test fraction (digits and image folders; the others have an official test set).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="Random seed: same seed, same run."),
    augment: bool = typer.Option(
        True,
        "--augment/--no-augment",
        help="Random shifts, rotations and zooms while training (not in the model).",
    ),
    early_stopping: bool = typer.Option(
        True, "--early-stopping/--no-early-stopping", help="Stop when validation loss stops improving."
    ),
    patience: int = typer.Option(
        8, "--patience", min=1, max=1000, help="Epochs without improvement before stopping."
    ),
    input_size: int | None = typer.Option(
        None,
        "--input-size",
        min=8,
        max=1024,
        help="Square input size in pixels (default: 28/32 for built-in sets and folders with seed, 96 with mobile).",
    ),
    colour: Colour | None = typer.Option(
        None, "--colour", case_sensitive=False, help="gray or rgb (default: the dataset's; rgb for folders)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=10, help="Use at most this many training images (quick experiments)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the result as JSON (Keras progress goes to stderr)."
    ),
) -> None:
    """Train a small CNN and write model.keras, labels.txt, metrics.json and curves.png.

    Example: edgecnn train --dataset digits -o runs/digits
    (then: edgecnn convert runs/digits/model.keras -o runs/digits/model_int8.tflite)
    """
    from edgecnn.train import format_report, train

    out = output or Path("runs") / (Path(dataset).name or "dataset")
    # With --json, stdout carries only the JSON document: Keras' progress lines go to stderr.
    sink = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with sink:
        report = train(
            output=out,
            dataset=dataset,
            architecture=architecture.value,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_split=validation_split,
            test_split=test_split,
            seed=seed,
            augment=augment,
            early_stopping=early_stopping,
            patience=patience,
            input_size=input_size,
            colour=colour.value if colour else None,
            limit=limit,
            verbose="auto",
        )
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report))
