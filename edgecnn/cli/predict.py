"""``edgecnn predict MODEL IMAGE...``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json, model_option, pick_model, run_flag


@app.command("predict")
def predict_command(
    model: Path | None = typer.Argument(
        None, metavar="MODEL", help="Path to a .tflite model.", show_default=False
    ),
    images: list[Path] | None = typer.Argument(
        None,
        metavar="IMAGE|DIR",
        show_default=False,
        help="Image files (jpg, png, bmp, ...) or folders of them (read in name order).",
    ),
    top_k: int | None = run_flag("top_k"),
    threads: int | None = run_flag("threads"),
    device: str | None = run_flag("device"),
    labels: Path | None = run_flag("labels"),
    crop: str | None = run_flag("crop"),
    no_probe: bool = typer.Option(
        False,
        "--no-probe",
        help="Skip the child-process check that libedgetpu loads without crashing (edgetpu/auto only).",
    ),
    model_opt: Path | None = model_option(),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    object_threshold: float | None = run_flag("object_threshold"),
    min_score: float | None = run_flag("min_score"),
    max_detections: int | None = run_flag("max_detections"),
    classes: str | None = run_flag("classes"),
    iou: float | None = run_flag("iou"),
    agnostic: bool | None = run_flag("agnostic"),
    save: Path | None = typer.Option(
        None,
        "--save",
        metavar="DIR",
        file_okay=False,
        help="Write each image with its result drawn on it into DIR (created if missing), under its own name.",
    ),
) -> None:
    """Classify images (top-k labels and scores), detect objects (label, score, box in pixels), estimate
    poses (keypoints in pixels) or segment them (share of the image per class; masks as RLE in --json).

    The task comes from the model.

    Example: edgecnn predict mobilenet_v1_0.25_128_quant.tflite cat.bmp --top-k 3

    Example: edgecnn predict runs/digits/model_int8.tflite runs/digits/samples

    Example (a detector): edgecnn predict ssd_mobilenet_v2_coco_quant_postprocess.tflite street.jpg --classes person,car

    Example (annotated images): edgecnn predict movenet_single_pose_lightning_ptq.tflite squat.bmp --save out/

    --object-threshold is the score a detector keeps an object at; --min-score leaves out the images whose
    result scores less (as `edgecnn run` leaves out results).
    """
    from edgecnn.cli._app import task_options
    from edgecnn.predict.files import check_argument_order, format_report, predict

    paths: list[Path] = list(images or [])
    if model_opt is not None and model is not None:  # with -m, every argument is an image
        paths.insert(0, model)
        model = None
    if not paths:
        if model is not None:  # `edgecnn predict cat.jpg`: say the model is missing, not the images
            check_argument_order(model, [])
        raise typer.BadParameter("give at least one image file or folder", param_hint="'IMAGE|DIR...'")
    report = predict(
        pick_model(model, model_opt),
        list(paths),
        decode=task_options(
            top_k=top_k,
            object_threshold=object_threshold,
            max_detections=max_detections,
            classes=classes,
            iou=iou,
            agnostic=agnostic,
        ),
        min_score=min_score,
        threads=threads,
        device=device or "cpu",
        labels=labels,
        crop=crop,
        probe=not no_probe,
        save=save,
    )
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report))
