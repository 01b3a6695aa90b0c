"""``edgecnn eval MODEL DATA``: measure a model (and optionally a second one) on labelled images.

Models are opened exactly as ``predict`` opens them (``open_model``: same ``--device``, ``--threads``,
``--crop``, labels and preprocessing). The model's task picks the evaluator from :data:`EVALUATORS`, one
module per task, each with an ``evaluate_model`` function; the dataset's layout must suit that task:
``DATA/<label>/*.jpg`` class folders for a classifier, a YOLO folder (``images/``, ``labels/``) or a COCO
``.json`` for a detector.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.eval.datasets import dataset_format, read_detection_dataset
from edgecnn.eval.detect import DetectorUnderTest, evaluate_detection
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import EvalReport
from edgecnn.model import Model, open_model
from edgecnn.tasks import DecodeOptions

# Task name -> the module that evaluates it; adding a task is one module and one line here.
EVALUATORS: dict[str, str] = {
    "classify": "edgecnn.eval.classify",
    "detect": "edgecnn.eval.detect",
}
# Detections kept for mAP: as ``yolo val`` does, nearly all of them (mAP integrates over every score
# threshold; a 0.4 cut-off would end each precision-recall curve early) and at most COCO's 100 per image.
EVAL_MIN_SCORE = 0.001
EVAL_MAX_DETECTIONS = 100
# Dataset layouts each task reads (``dataset_format``'s names), for the mismatch error.
LAYOUTS: dict[str, tuple[str, ...]] = {"classify": ("folders",), "detect": ("yolo", "coco")}


@dataclass(frozen=True)
class EvalOptions:
    """Options an evaluator may read; each reads the ones of its task."""

    top_k: int = 5  # classify: k of top-k accuracy
    images: Path | None = None  # detect: folder of the images a COCO file names
    labels_flag: bool = False  # the evaluated model's labels came from --labels


@dataclass(frozen=True)
class GateFailure:
    """Why ``--fail-under`` / ``--min-agreement`` refused the result."""

    message: str


def check_gate(
    report: EvalReport, *, fail_under: float | None = None, min_agreement: float | None = None
) -> list[GateFailure]:
    """Failures of the ``--fail-under`` (headline figure) and ``--min-agreement`` bars, both in percent."""
    failures = []
    name, value = report.headline
    if fail_under is not None and value < fail_under:
        failures.append(GateFailure(f"{name} {value:.2f}% is below --fail-under {fail_under:g}%."))
    if min_agreement is not None:
        agreement = report.agreement_pct
        if agreement is None:
            failures.append(
                GateFailure("--min-agreement needs --against OTHER.tflite (and detections to compare).")
            )
        elif agreement < min_agreement:
            failures.append(
                GateFailure(f"agreement {agreement:.2f}% is below --min-agreement {min_agreement:g}%.")
            )
    return failures


def model_task(model: Model) -> str:
    return model.task


def _check_layout(task: str, kind: str, model: Any, data: str | os.PathLike[str]) -> None:
    wanted = LAYOUTS.get(task, ())
    if kind in wanted:
        return
    if task not in EVALUATORS:
        raise UsageError(
            f"{model.path} is a {task} model: edgecnn eval measures {', '.join(EVALUATORS)} models."
        )
    expect = (
        "class folders (DATA/<label>/*.jpg)"
        if task == "classify"
        else "a YOLO folder (images/, labels/*.txt) or a COCO .json file"
    )
    found = {"folders": "class folders", "yolo": "a YOLO detection dataset", "coco": "a COCO detection file"}
    raise UsageError(f"{model.path} is a {task} model and {data} is {found[kind]}: pass {expect}.")


def evaluate(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    against: str | os.PathLike[str] | None = None,
    top_k: int = 5,
    device: str = "cpu",
    against_device: str | None = None,
    threads: int | None = None,
    labels: str | os.PathLike[str] | None = None,
    crop: str | None = None,
    images: str | os.PathLike[str] | None = None,
    probe: bool = True,
    progress: ProgressFn | None = None,
    opened: Model | None = None,
    detector: DetectorUnderTest | None = None,
    against_detector: DetectorUnderTest | None = None,
    iou: float | None = None,
    agnostic: bool = False,
) -> EvalReport:
    """Evaluate ``model`` on ``data``; with ``against``, the second model on the same decoded images.

    ``against_device`` defaults to ``device`` for a model compiled for the Edge TPU and to ``cpu``
    otherwise, so ``eval m_edgetpu.tflite DATA --device edgetpu --against m.tflite`` compares TPU and CPU.
    ``opened`` injects an opened model; ``detector``/``against_detector`` inject detectors through the
    evaluator's narrow interface (tests, callers with their own detector). ``iou``/``agnostic`` set a YOLO
    detector's NMS (None: 0.45, per class); mAP is measured after it, as Ultralytics' val does (at its 0.7).
    """
    if top_k < 1:
        raise UsageError("--top-k must be at least 1.")
    if against is not None and against_device is None and Path(against).resolve() == Path(model).resolve():
        raise UsageError(
            "--against names the evaluated model itself: pass another build (or --against-device)."
        )
    kind = dataset_format(data)
    if kind == "folders" and images is not None:
        raise UsageError("--images is for COCO .json annotations; class folders hold their own images.")
    if detector is not None:
        dataset = read_detection_dataset(data, images=images)
        return evaluate_detection(dataset, detector, against=against_detector, progress=progress)
    decode = DecodeOptions(
        top_k=top_k,
        min_score=EVAL_MIN_SCORE,
        max_detections=EVAL_MAX_DETECTIONS,
        iou=iou,
        agnostic=agnostic,
    )
    opened = opened or open_model(
        model, device=device, threads=threads, labels=labels, crop=crop, probe=probe, decode=decode
    )
    task = model_task(opened)
    _check_layout(task, kind, opened, data)
    other = None
    if against is not None:
        from edgecnn.modelfile import read_model

        other_file = read_model(against)
        other_device = against_device or (device if other_file.is_edgetpu else "cpu")
        other = open_model(
            other_file, device=other_device, threads=threads, crop=crop, probe=probe, decode=decode
        )
        if model_task(other) != task:
            raise UsageError(
                f"{opened.path} is a {task} model but --against {other.path} is a {model_task(other)} model: "
                "compare two builds of the same model."
            )
    module: Any = importlib.import_module(EVALUATORS[task])
    options = EvalOptions(
        top_k=top_k, images=Path(images) if images else None, labels_flag=labels is not None
    )
    return module.evaluate_model(data, opened, against=other, options=options, progress=progress)  # type: ignore[no-any-return]
