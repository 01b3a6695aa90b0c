"""``edgecnn predict``: classify image files with a model, as a library function."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecnn.adapters import Class
from edgecnn.errors import UsageError
from edgecnn.images import read_image
from edgecnn.model import Classifier, open_classifier


@dataclass(frozen=True)
class ImageResult:
    image: str
    classes: list[Class]
    preprocess_ms: float
    inference_ms: float


@dataclass(frozen=True)
class PredictReport:
    model: str
    device: str
    runtime: str
    threads: int | None
    load_ms: float
    labels_source: str
    results: list[ImageResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(
    model: str | os.PathLike[str],
    images: list[str | os.PathLike[str]],
    *,
    top_k: int = 3,
    threads: int | None = None,
    device: str = "cpu",
    labels: str | os.PathLike[str] | None = None,
    crop: str | None = None,
    classifier: Classifier | None = None,
    probe: bool = True,
) -> PredictReport:
    if not images:
        raise UsageError("No images given: edgecnn predict MODEL IMAGE [IMAGE...].")
    if top_k < 1:
        raise UsageError("--top-k must be at least 1.")
    frames = [(str(p), read_image(p)) for p in images]  # fail on a bad image before loading anything
    clf = classifier or open_classifier(
        model, device=device, threads=threads, labels=labels, crop=crop, probe=probe
    )
    results = []
    for name, frame in frames:
        pred = clf.classify(frame, top_k=top_k)
        results.append(
            ImageResult(name, pred.classes, round(pred.preprocess_ms, 3), round(pred.inference_ms, 3))
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
    )


def format_report(report: PredictReport) -> str:
    lines = [
        f"model {Path(report.model).name} on {report.device} ({report.runtime}), labels: {report.labels_source}"
    ]
    for result in report.results:
        lines.append(f"{result.image}  ({result.inference_ms:.2f} ms)")
        for c in result.classes:
            lines.append(f"  {c.score:7.4f}  {c.id:>5}  {c.label}")
    return "\n".join(lines)
