"""``edgecnn eval MODEL DATA``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgecnn.cli._app import _default, app, deprecated_alias, echo_json, model_option, pick_model, run_flag


@app.command("eval")
def eval_command(
    model: Path | None = typer.Argument(None, help="Path to a .tflite model.", show_default=False),
    data: Path | None = typer.Argument(
        None,
        show_default=False,
        help="Labelled images: DATA/<label>/*.jpg (classification), a YOLO folder (images/, labels/) or a COCO "
        ".json (detection), a COCO-keypoints .json (pose), a folder with masks/ and images/ (segmentation).",
    ),
    against: Path | None = typer.Option(
        None, "--against", help="A second model (e.g. the float build) to compare on the same images."
    ),
    against_device: str | None = typer.Option(
        None,
        "--against-device",
        help="Device for --against (default: --device for an Edge TPU model, else cpu).",
    ),
    accuracy_k: int = typer.Option(
        5, "--accuracy-k", min=1, max=1000, help="Classifiers: k of top-k accuracy (default 5)."
    ),
    old_top_k: int | None = typer.Option(
        None, "--top-k", "-k", min=1, max=1000, hidden=True, help="The old spelling of --accuracy-k."
    ),
    threads: int | None = run_flag("threads"),
    device: str | None = run_flag("device"),
    labels: Path | None = run_flag("labels"),
    crop: str | None = run_flag("crop"),
    iou: float | None = run_flag("iou"),
    agnostic: bool | None = run_flag("agnostic"),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Folder of the images a COCO .json names (default: beside it, or images/ beside it), or of the "
        "images DATA/masks/ labels (default: DATA/images).",
    ),
    fail_under: float | None = typer.Option(
        None,
        "--fail-under",
        min=0,
        max=100,
        help="Exit with status 1 when the headline figure (top-1 accuracy, mAP@0.5:0.95, OKS AP, mean IoU) "
        "is below this percentage (for CI).",
    ),
    min_agreement: float | None = typer.Option(
        None,
        "--min-agreement",
        min=0,
        max=100,
        help="With --against: exit with status 1 when the models agree on fewer than this percentage.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the JSON report to this file."
    ),
    no_probe: bool = typer.Option(
        False,
        "--no-probe",
        help="Skip the child-process check that libedgetpu loads without crashing (edgetpu/auto only).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    model_opt: Path | None = model_option(),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Measure a model on labelled images: accuracy (top-1, top-k, per class, confusion), mAP, OKS AP
    (pose) or mean IoU and pixel accuracy (segmentation).

    Example: edgecnn eval model_int8.tflite photos/ --against model_float32.tflite --fail-under 90
    """
    from rich.console import Console

    from edgecnn.atomic import check_output, write_atomic
    from edgecnn.errors import EdgecnnError, UsageError
    from edgecnn.eval.evaluate import check_gate, evaluate
    from edgecnn.eval.progress import progress_bar

    if model_opt is not None and data is None:  # with -m, the one argument is DATA
        model, data = None, model
    chosen = pick_model(model, model_opt)
    if data is None:
        raise UsageError("No DATA: pass a folder of labelled images or a COCO .json after the model.")
    if output is not None:  # a directory or a socket fails now, not after the whole evaluation
        check_output(output, what="eval report")
    with progress_bar(f"eval {data.name}", enabled=not quiet) as progress:
        report = evaluate(
            chosen,
            data,
            against=against,
            against_device=against_device,
            accuracy_k=deprecated_alias(
                accuracy_k, old_top_k, new="--accuracy-k", old_name="--top-k", default=5
            ),
            threads=threads,
            device=device or "cpu",
            labels=labels,
            crop=crop,
            images=images,
            probe=not no_probe,
            progress=progress,
            iou=iou,
            agnostic=bool(agnostic),
        )
    if output is not None:
        write_atomic(
            output,
            (json.dumps(report.to_dict(), indent=2, default=_default) + "\n").encode(),
            what="eval report",
        )
    if json_out:
        echo_json(report.to_dict())
    else:
        console = Console()
        for table in report.tables():
            console.print(table)
    failures = check_gate(report, fail_under=fail_under, min_agreement=min_agreement)
    if failures:
        raise EdgecnnError(" ".join(f.message for f in failures))
