"""``edgecnn convert MODEL.keras``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json


class QuantizeChoice(str, Enum):
    int8 = "int8"
    float16 = "float16"
    dynamic = "dynamic"
    float32 = "float32"


class IOChoice(str, Enum):
    int8 = "int8"
    uint8 = "uint8"
    float32 = "float32"


@app.command("convert")
def convert_command(
    model: Path = typer.Argument(
        ...,
        help="Keras model (.keras), e.g. runs/digits/model.keras; or, with --edgetpu, a full-integer .tflite "
        "from any tool (e.g. Ultralytics' best_full_integer_quant.tflite) to compile for the Edge TPU.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Output .tflite (default: MODEL_<quantize>.tflite beside the model)."
    ),
    quantize: QuantizeChoice = typer.Option(
        QuantizeChoice.int8,
        "--quantize",
        case_sensitive=False,
        help="int8 (full integer, for CPUs and the Edge TPU), float16, dynamic (int8 weights) or float32.",
    ),
    io: IOChoice | None = typer.Option(
        None,
        "--io",
        case_sensitive=False,
        help="Input/output tensor type of an int8 model: int8 (default), uint8 or float32.",
    ),
    calibration: str | None = typer.Option(
        None,
        "--calibration",
        "-c",
        help="Calibration images: a dataset (digits, mnist, fashion_mnist, cifar10), DIR/<class>/*.jpg or a folder "
        "of images (default: the training run's dataset, from metrics.json).",
    ),
    calibration_samples: int = typer.Option(
        300, "--calibration-samples", min=1, max=100_000, help="Images in the representative dataset."
    ),
    verification_samples: int = typer.Option(
        1000, "--verification-samples", min=1, max=1_000_000, help="Held-out images to verify on (at most)."
    ),
    min_agreement: float | None = typer.Option(
        None,
        "--min-agreement",
        min=0.0,
        max=100.0,
        help="Fail (exit 10, nothing written) if float and converted models agree on fewer than this percentage of held-out images.",
    ),
    edgetpu: bool = typer.Option(
        False, "--edgetpu", help="Also check and compile for the Edge TPU (needs edgetpu_compiler on PATH)."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels file, one per line (default: labels.txt from the training run)."
    ),
    mean: float | None = typer.Option(
        None, "--mean", help="Normalization mean (default: the run's, else 0)."
    ),
    std: float | None = typer.Option(None, "--std", help="Normalization std (default: the run's, else 255)."),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Where to write the JSON report (default: conversion_report.json beside OUTPUT).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="Seed for picking calibration images."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    cut_head: bool = typer.Option(
        False,
        "--cut-head",
        help="With a YOLOv8/YOLO11 or YOLOv5 .tflite and --edgetpu: cut the graph at the per-scale head outputs so the "
        "Edge TPU maps it whole; edgecnn decodes the heads on the CPU (writes MODEL_heads.tflite too, also without edgetpu_compiler).",
    ),
) -> None:
    """Convert a Keras model to TFLite (int8 by default), verify it on held-out images, embed metadata.

    Example: edgecnn convert runs/digits/model.keras -o runs/digits/model_int8.tflite --min-agreement 99

    A .tflite with --edgetpu is checked and compiled as it is (-o names the compiled model, default
    MODEL_edgetpu.tflite): edgecnn convert best_full_integer_quant.tflite --edgetpu
    """
    from edgecnn.converters.tflite_edgetpu import (
        CompilerMissing,
        compile_tflite,
        format_tflite_report,
        is_tflite_path,
    )

    if is_tflite_path(model):
        _tflite_options_unused(
            edgetpu=edgetpu,
            quantize=quantize is not QuantizeChoice.int8,
            io=io is not None,
            calibration=calibration is not None,
            min_agreement=min_agreement is not None,
            labels=labels is not None,
            mean=mean is not None or std is not None,
        )
        try:
            compiled = compile_tflite(model, output=output, report=report, cut_head=cut_head)
        except CompilerMissing as exc:  # the cut model was written: its report, then the error line
            if json_out:
                echo_json(exc.result.to_dict())
            else:
                typer.echo(format_tflite_report(exc.result))
            raise
        if json_out:
            echo_json(compiled.to_dict())
        else:
            typer.echo(format_tflite_report(compiled))
        return
    if cut_head:
        from edgecnn.errors import UsageError

        raise UsageError(
            "--cut-head applies to a YOLOv8/YOLO11 or YOLOv5 .tflite with --edgetpu, not to a Keras model."
        )
    from edgecnn.converters.pipeline import convert, format_report

    result = convert(
        model,
        output=output,
        quantize=quantize.value,
        io=io.value if io else None,
        calibration=calibration,
        calibration_samples=calibration_samples,
        verification_samples=verification_samples,
        min_agreement=min_agreement,
        edgetpu=edgetpu,
        labels=labels,
        mean=mean,
        std=std,
        report=report,
        seed=seed,
    )
    if json_out:
        echo_json(result.to_dict())
    else:
        typer.echo(format_report(result))


def _tflite_options_unused(*, edgetpu: bool, **given: bool) -> None:
    """A TFLite input is compiled, not converted: the conversion options would silently do nothing."""
    from edgecnn.errors import UsageError

    if not edgetpu:
        raise UsageError(
            "A .tflite model is already converted: add --edgetpu to compile it for the Edge TPU, or pass the "
            "Keras model (.keras) to convert."
        )
    flags = {
        "quantize": "--quantize",
        "io": "--io",
        "calibration": "--calibration",
        "min_agreement": "--min-agreement",
        "labels": "--labels",
        "mean": "--mean/--std",
    }
    used = [flags[k] for k, v in given.items() if v]
    if used:
        raise UsageError(
            f"{', '.join(used)}: for a Keras model only: a .tflite is compiled as it is "
            "(re-export it from the tool that made it to change its quantization or labels)."
        )
