"""The detection evaluator: COCO mAP@0.5 and mAP@0.5:0.95 (and per-class AP) computed by pycocotools.

The evaluator sees a detector only through :class:`DetectorUnderTest`: a function from a BGR frame to
:class:`DetectedObject` items (class id, label, score, box x1, y1, x2, y2 in pixels of that frame), so it
works for every decoder and backend the task seam has. Matching, interpolated precision and the averaging
over IoU thresholds are pycocotools' (the reference implementation behind every published COCO figure);
this module only converts to and from its format.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgecnn.errors import InputError, RuntimeMissing
from edgecnn.eval.classfolders import label_hint
from edgecnn.eval.groundtruth import DetectionDataset, GroundTruthBox
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import ReportMixin
from edgecnn.images import read_image

if TYPE_CHECKING:
    from edgecnn.model import Model

# Scored against as ground truth when comparing two detectors: the other model's confident detections.
AGREEMENT_MIN_SCORE = 0.5

# The Evaluator protocol (edgecnn.tasks.Evaluator), reached through edgecnn.tasks.detect.evaluator().
LAYOUTS = ("yolo", "coco")
EXPECTS = "a YOLO folder (images/, labels/*.txt) or a COCO .json file"
# Detections kept for mAP: as ``yolo val`` does, nearly all of them (mAP integrates over every score
# threshold; the 0.4 --object-threshold would end each precision-recall curve early) and at most COCO's
# 100 per image. Fixed: eval takes no --object-threshold or --max-detections.
DECODE: dict[str, Any] = {"object_threshold": 0.001, "max_detections": 100}


class DetectedObject(Protocol):
    """What the evaluator reads of one detected object (the detect task's ``Object`` has these fields)."""

    @property
    def id(self) -> int: ...  # the model's class id

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def box(self) -> tuple[float, float, float, float]: ...  # x1, y1, x2, y2 in pixels of the frame given


@dataclass(frozen=True)
class Detection:
    """A plain :class:`DetectedObject`, for callers that bring their own detector."""

    id: int
    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class DetectorUnderTest:
    """What the evaluator needs from a detector: a name to report and a frame -> detections function.

    ``detect`` should keep low-scoring detections (a minimum score around 0.001, as ``yolo val`` uses):
    mAP integrates precision over every recall level, and a 0.4 cut-off throws away the tail of the curve.
    """

    model: str
    device: str
    runtime: str
    labels: list[str] | None
    detect: Callable[[np.ndarray], Sequence[DetectedObject]]


@dataclass(frozen=True)
class ClassAP:
    label: str
    objects: int
    ap50_pct: float | None  # None: no object of this class in the data, so AP is undefined
    ap50_95_pct: float | None


@dataclass(frozen=True)
class MapFigures:
    map50_pct: float
    map50_95_pct: float
    per_class: list[ClassAP]


@dataclass(frozen=True)
class DetectionScore:
    model: str
    device: str
    runtime: str
    images: int
    objects: int
    matched_by: str  # "label" or "class id"
    map50_pct: float
    map50_95_pct: float
    per_class: list[ClassAP]
    median_inference_ms: float


@dataclass(frozen=True)
class DetectionComparison:
    agreement_pct: (
        float | None
    )  # mAP@0.5 of the evaluated model with the other's detections (score >= 0.5) as truth
    map50_difference_pts: float
    map50_95_difference_pts: float


@dataclass(frozen=True)
class DetectionReport(ReportMixin):
    task: str
    data: str
    format: str
    model: DetectionScore
    against: DetectionScore | None
    comparison: DetectionComparison | None

    @property
    def headline(self) -> tuple[str, float]:
        """The figure ``--fail-under`` gates on: mAP@0.5:0.95 of the evaluated model, COCO's primary metric
        (pycocotools' ``stats[0]``), which also catches boxes that int8 quantization made sloppy."""
        return "mAP@0.5:0.95", self.model.map50_95_pct

    def tables(self) -> list[Any]:
        """Rich tables for a terminal: summary and per-class AP."""
        from edgecnn.eval.tables import detection_tables

        return detection_tables(self)  # type: ignore[return-value]


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise RuntimeMissing("Detection mAP needs pycocotools: pip install 'edgecnn[eval]'.") from exc
    return COCO, COCOeval


def _pct(value: float) -> float:
    return round(100.0 * float(value), 4)


def coco_map(
    truth: Sequence[Sequence[GroundTruthBox]],
    sizes: Sequence[tuple[int, int]],
    detections: Sequence[Sequence[tuple[int, float, tuple[float, float, float, float]]]],
    names: dict[int, str],
) -> MapFigures:
    """mAP over images given per-image truth boxes and (category id, score, x1y1x2y2) detections.

    Categories are ``names``' ids; detections of other ids are not scored (COCOeval ignores them).
    """
    COCO, COCOeval = _pycocotools()
    images = [{"id": i + 1, "width": w, "height": h} for i, (w, h) in enumerate(sizes)]
    annotations: list[dict[str, Any]] = []
    for i, boxes in enumerate(truth):
        for b in boxes:
            w, h = b.x2 - b.x1, b.y2 - b.y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": b.class_id,
                    "bbox": [b.x1, b.y1, w, h],
                    "area": w * h,
                    "iscrowd": int(b.crowd),
                }
            )
    counts = {c: 0 for c in names}
    for a in annotations:
        if not a["iscrowd"]:
            counts[a["category_id"]] += 1
    results = [
        {"image_id": i + 1, "category_id": c, "score": float(s), "bbox": [x1, y1, x2 - x1, y2 - y1]}
        for i, dets in enumerate(detections)
        for c, s, (x1, y1, x2, y2) in dets
        if c in names
    ]
    empty = [
        ClassAP(names[c], counts[c], 0.0 if counts[c] else None, 0.0 if counts[c] else None)
        for c in sorted(names)
    ]
    if not results:
        return MapFigures(0.0, 0.0, empty)
    # pycocotools prints its progress on stdout; the report is ours to print.
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c, "name": n} for c, n in sorted(names.items())],
        }
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [IoU thresholds, recall points, categories, areas, max dets]
    per_class = []
    for k, cat in enumerate(ev.params.catIds):
        p_all = precision[:, :, k, 0, -1]
        p_50 = precision[0, :, k, 0, -1]
        valid = p_all[p_all > -1]
        per_class.append(
            ClassAP(
                names[cat],
                counts[cat],
                _pct(p_50[p_50 > -1].mean()) if counts[cat] else None,
                _pct(valid.mean()) if counts[cat] and valid.size else None,
            )
        )
    return MapFigures(_pct(max(0.0, ev.stats[1])), _pct(max(0.0, ev.stats[0])), per_class)


def class_mapping(
    dataset: DetectionDataset, labels: list[str] | None, model: str
) -> tuple[Callable[[DetectedObject], int | None], str]:
    """How a detection's class becomes a dataset category: by label when both sides name their classes
    (a COCO file's ids rarely match a model's), else by class id. Every dataset class must exist in the model.
    """
    if dataset.names and labels:
        by_label: dict[str, int] = {}
        for cid, name in dataset.names.items():
            by_label.setdefault(name, cid)
        known = set(labels)
        for name in dataset.names.values():
            if name not in known:
                raise InputError(
                    f"Class {name!r} of {dataset.root} matches no label of {model} ({label_hint(name, labels)}): rename the class "
                    "in the dataset to the model's label exactly."
                )
        return (lambda d: by_label.get(d.label)), "label"
    ids = set(dataset.names) if dataset.names else None
    return (lambda d: d.id if ids is None or d.id in ids else None), "class id"


def evaluate_detection(
    dataset: DetectionDataset,
    detector: DetectorUnderTest,
    *,
    against: DetectorUnderTest | None = None,
    progress: ProgressFn | None = None,
) -> DetectionReport:
    """Run ``detector`` (and ``against``) over every image of ``dataset`` and score both with pycocotools."""
    if dataset.objects == 0:
        raise InputError(f"{dataset.root} has no annotated objects: mAP needs at least one box.")
    detectors = [detector] if against is None else [detector, against]
    maps = [class_mapping(dataset, d.labels, d.model) for d in detectors]
    _pycocotools()  # fail before the first inference when the extra is missing
    truth: list[list[GroundTruthBox]] = []
    sizes: list[tuple[int, int]] = []
    found: list[list[list[DetectedObject]]] = [[] for _ in detectors]
    times: list[list[float]] = [[] for _ in detectors]
    for n, sample in enumerate(dataset.samples, 1):
        frame = read_image(sample.image)
        height, width = frame.shape[:2]
        truth.append(sample.pixel_boxes(width, height))
        sizes.append((width, height))
        for m, d in enumerate(detectors):
            t0 = time.perf_counter()
            found[m].append(list(d.detect(frame)))
            times[m].append((time.perf_counter() - t0) * 1e3)
        if progress is not None:
            progress(n, len(dataset.samples))
    names = dataset.names or {c: str(c) for c in sorted({b.class_id for boxes in truth for b in boxes})}
    scores = []
    mapped_all = []
    for m, d in enumerate(detectors):
        to_category, matched_by = maps[m]
        mapped = [
            [(cat, det.score, det.box) for det in dets if (cat := to_category(det)) is not None]
            for dets in found[m]
        ]
        mapped_all.append(mapped)
        figures = coco_map(truth, sizes, mapped, names)
        scores.append(
            DetectionScore(
                model=d.model,
                device=d.device,
                runtime=d.runtime,
                images=len(dataset.samples),
                objects=dataset.objects,
                matched_by=matched_by,
                map50_pct=figures.map50_pct,
                map50_95_pct=figures.map50_95_pct,
                per_class=figures.per_class,
                median_inference_ms=round(statistics.median(times[m]), 3),
            )
        )
    comparison = None
    if against is not None:
        reference = [
            [GroundTruthBox(c, *box) for c, s, box in dets if s >= AGREEMENT_MIN_SCORE]
            for dets in mapped_all[1]
        ]
        agreement = coco_map(reference, sizes, mapped_all[0], names).map50_pct if any(reference) else None
        comparison = DetectionComparison(
            agreement_pct=agreement,
            map50_difference_pts=round(scores[0].map50_pct - scores[1].map50_pct, 4),
            map50_95_difference_pts=round(scores[0].map50_95_pct - scores[1].map50_95_pct, 4),
        )
    return DetectionReport(
        task="detect",
        data=str(dataset.root),
        format=dataset.format,
        model=scores[0],
        against=scores[1] if against is not None else None,
        comparison=comparison,
    )


def detector_under_test(model: Model) -> DetectorUnderTest:
    """Wrap an opened detection model (``edgecnn.model.open_model``) in the evaluator's interface."""
    labels = getattr(model.decoder, "labels", None) or model.labels
    return DetectorUnderTest(
        model=str(model.path),
        device=model.device,
        runtime=model.runtime.describe(),
        labels=list(labels) if labels else None,
        detect=lambda frame: model.process(frame).result.objects,  # type: ignore[attr-defined]
    )


def evaluate_model(
    data: str | os.PathLike[str],
    model: Model,
    *,
    against: Model | None,
    options: Any,
    progress: ProgressFn | None = None,
) -> DetectionReport:
    """The evaluator's entry point (:class:`edgecnn.tasks.Evaluator`); ``options`` is an ``EvalOptions``."""
    from edgecnn.eval.datasets import read_detection_dataset

    dataset = read_detection_dataset(data, images=options.images)
    return evaluate_detection(
        dataset,
        detector_under_test(model),
        against=detector_under_test(against) if against is not None else None,
        progress=progress,
    )
