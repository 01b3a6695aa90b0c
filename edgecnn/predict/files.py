"""``edgecnn predict``: run a model on image files, as a library function, whatever its task.

A classifier gives the top-k classes per image; a detector gives each object with its label, score and
box in pixels of that image. The report's JSON carries the task's own keys (``classes`` or ``objects``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.adapters import Class
from edgecnn.errors import UsageError
from edgecnn.images import read_image
from edgecnn.model import Model, open_model
from edgecnn.tasks import MAX_DETECTIONS, DecodeOptions, TaskResult

DEFAULT_MIN_SCORE = 0.4  # detection threshold, as Frigate's


@dataclass(frozen=True)
class ImageResult:
    image: str
    output: TaskResult
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float = 0.0
    width: int = 0
    height: int = 0

    @property
    def classes(self) -> list[Class]:
        """A classification's classes (empty for other tasks)."""
        return list(getattr(self.output, "classes", []))

    @property
    def objects(self) -> list[Any]:
        """A detection's objects (empty for other tasks)."""
        return list(getattr(self.output, "objects", []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            **self.output.to_json(),
            "summary": self.output.summary(),
            "preprocess_ms": self.preprocess_ms,
            "inference_ms": self.inference_ms,
            "postprocess_ms": self.postprocess_ms,
        }


@dataclass(frozen=True)
class PredictReport:
    model: str
    device: str
    runtime: str
    threads: int | None
    load_ms: float
    labels_source: str
    results: list[ImageResult]
    task: str = "classify"
    decoder: str = ""
    input_normalisation: str = ""  # the rule that made the input tensor (edgecnn.normalisation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "decoder": self.decoder,
            "input_normalisation": self.input_normalisation,
            "device": self.device,
            "runtime": self.runtime,
            "threads": self.threads,
            "load_ms": self.load_ms,
            "labels_source": self.labels_source,
            "results": [r.to_dict() for r in self.results],
        }


def parse_classes(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``"person,car"`` -> ``("person", "car")``; None or empty -> None (keep every class)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    return names or None


def predict(
    model: str | os.PathLike[str],
    images: list[str | os.PathLike[str]],
    *,
    top_k: int = 3,
    threads: int | None = None,
    device: str = "cpu",
    labels: str | os.PathLike[str] | None = None,
    crop: str | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
    max_detections: int = 100,
    classes: str | list[str] | tuple[str, ...] | None = None,
    classifier: Model | None = None,
    probe: bool = True,
    iou: float | None = None,
    agnostic: bool = False,
) -> PredictReport:
    """Run ``model`` on ``images``. ``top_k`` is for classifiers; ``min_score``, ``max_detections``,
    ``classes`` (label names), ``iou`` and ``agnostic`` (YOLO layouts' NMS; None: 0.45) for detectors."""
    if not images:
        raise UsageError("No images given: edgecnn predict MODEL IMAGE [IMAGE...].")
    if top_k < 1:
        raise UsageError("--top-k must be at least 1.")
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score {min_score:g} is out of range: use 0 to 1.")
    if not 1 <= max_detections <= MAX_DETECTIONS:
        raise UsageError(f"--max-detections must be between 1 and {MAX_DETECTIONS}, got {max_detections}.")
    frames = [(str(p), read_image(p)) for p in images]  # fail on a bad image before loading anything
    options = DecodeOptions(
        top_k=top_k,
        min_score=min_score,
        max_detections=max_detections,
        classes=parse_classes(classes),
        iou=iou,
        agnostic=agnostic,
    )
    clf = classifier or open_model(
        model, device=device, threads=threads, labels=labels, crop=crop, probe=probe, decode=options
    )
    results = []
    for name, frame in frames:
        pred = clf.process(frame)
        results.append(
            ImageResult(
                name,
                pred.result,
                round(pred.preprocess_ms, 3),
                round(pred.inference_ms, 3),
                round(pred.postprocess_ms, 3),
                int(frame.shape[1]),
                int(frame.shape[0]),
            )
        )
    labels_source = "--labels" if labels else (clf.meta.source if clf.labels else "none (class ids)")
    return PredictReport(
        model=str(clf.path or model),
        device=clf.device,
        runtime=clf.runtime.describe(),
        threads=threads,
        load_ms=round(clf.load_ms, 3),
        labels_source=labels_source,
        results=results,
        task=clf.task,
        decoder=clf.decoder.name,
        input_normalisation=clf.spec.normalisation.rule,
    )


def format_report(report: PredictReport) -> str:
    lines = [
        f"model {Path(report.model).name} on {report.device} ({report.runtime}), labels: {report.labels_source}"
    ]
    for result in report.results:
        lines.append(f"{result.image}  ({result.inference_ms:.2f} ms)")
        lines.extend(result.output.lines())
    return "\n".join(lines)
