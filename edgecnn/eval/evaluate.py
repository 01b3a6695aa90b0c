"""``edgecnn eval MODEL DATA``: measure a model (and optionally a second one) on labelled images.

Models are opened exactly as ``predict`` opens them (``open_model``: same ``--device``, ``--threads``,
``--crop``, labels and preprocessing). The model's task module provides the evaluator
(:func:`edgecnn.tasks.task_evaluator`: ``evaluator()`` of :class:`edgecnn.tasks.TaskModule`), which says
which dataset layouts it reads (class folders for a classifier; a YOLO folder or a COCO ``.json`` for a
detector) and which decode options it fixes (a detector's mAP keeps nearly every detection). This module
knows no task by name: a task whose module has no evaluator is refused with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.eval.datasets import LAYOUT_NAMES, dataset_format, read_detection_dataset
from edgecnn.eval.detect import DetectorUnderTest, evaluate_detection
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import EvalReport
from edgecnn.model import Model, open_model
from edgecnn.tasks import DecodeOptions, Evaluator, choose_task, task_evaluator

# k of top-k accuracy (--accuracy-k): not a task option (classify's --top-k is classes per result).
DEFAULT_ACCURACY_K = 5


@dataclass(frozen=True)
class EvalOptions:
    """Options an evaluator may read; each reads the ones of its task."""

    accuracy_k: int = DEFAULT_ACCURACY_K  # classify: k of top-k accuracy
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


def _check_layout(evaluator: Evaluator, task: str, kind: str, where: object, data: object) -> None:
    """The dataset's layout must be one the task's evaluator reads."""
    if kind not in evaluator.LAYOUTS:
        raise UsageError(
            f"{where} is a {task} model and {data} is {LAYOUT_NAMES[kind]}: pass {evaluator.EXPECTS}."
        )


def _task_of(model: str | os.PathLike[str], opened: Model | None) -> str:
    """The model's task, read from the file before any interpreter opens (its evaluator fixes decode
    options); a model no task decodes is the one :func:`edgecnn.tasks.unsupported_message` line."""
    if opened is not None:
        return opened.task
    from edgecnn.metadata import read_metadata
    from edgecnn.modelfile import read_model

    model_file = read_model(model)
    return choose_task(model_file, read_metadata(model_file))


def evaluate(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    against: str | os.PathLike[str] | None = None,
    accuracy_k: int = DEFAULT_ACCURACY_K,
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
    if accuracy_k < 1:
        raise UsageError(f"--accuracy-k must be at least 1, got {accuracy_k}.")
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
    task = _task_of(model, opened)
    where = opened.path if opened is not None else model
    evaluator = task_evaluator(task, where)
    decode = DecodeOptions(**{"iou": iou, "agnostic": agnostic, **evaluator.DECODE})
    opened = opened or open_model(
        model, device=device, threads=threads, labels=labels, crop=crop, probe=probe, decode=decode
    )
    _check_layout(evaluator, task, kind, opened.path or where, data)  # the model's own errors come first
    other = None
    if against is not None:
        from edgecnn.modelfile import read_model

        other_file = read_model(against)
        other_device = against_device or (device if other_file.is_edgetpu else "cpu")
        other = open_model(
            other_file, device=other_device, threads=threads, crop=crop, probe=probe, decode=decode
        )
        if other.task != task:
            raise UsageError(
                f"{opened.path} is a {task} model but --against {other.path} is a {other.task} model: "
                "compare two builds of the same model."
            )
    options = EvalOptions(
        accuracy_k=accuracy_k, images=Path(images) if images else None, labels_flag=labels is not None
    )
    return evaluator.evaluate_model(data, opened, against=other, options=options, progress=progress)
