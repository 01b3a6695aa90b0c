"""``edgecnn predict``: run a model on image files, as a library function, whatever its task.

A classifier gives the top-k classes per image; a detector gives each object with its label, score and
box in pixels of that image; a pose model each person's keypoints; a segmenter the share of the image each
class covers (and, in JSON, its masks as RLE). The report's JSON carries the task's own keys
(:func:`edgecnn.tasks.detailed_json`). ``save`` writes each image with its result drawn on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.adapters import Class
from edgecnn.atomic import output_folder, write_atomic
from edgecnn.errors import OutputError, UsageError
from edgecnn.images import IMAGE_SUFFIXES, expand_images, read_image
from edgecnn.model import Model, open_model
from edgecnn.modelfile import TFLITE_IDENTIFIER, read_model
from edgecnn.tasks import DecodeOptions, TaskResult, detailed_json
from edgecnn.tasks.options import MIN_SCORE, check_min_score


@dataclass(frozen=True)
class ImageResult:
    image: str
    output: TaskResult
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float = 0.0
    width: int = 0
    height: int = 0
    saved: str | None = None  # the annotated image written with save=DIR

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
            **detailed_json(self.output),
            "summary": self.output.summary(),
            **({"saved": self.saved} if self.saved is not None else {}),
            "preprocess_ms": self.preprocess_ms,
            "inference_ms": self.inference_ms,
            "postprocess_ms": self.postprocess_ms,
        }


@dataclass(frozen=True)
class PredictReport:
    model: str
    device: str
    runtime: str
    threads: int  # CPU threads the interpreter ran with (1 unless --threads said otherwise)
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


def _looks_like_model(path: Path) -> bool:
    """A regular file with a ``.tflite`` name or TFLite's ``TFL3`` identifier at byte 4."""
    if not path.is_file():  # missing, a folder, a FIFO: reading it as an image says what is wrong
        return False
    if path.suffix.lower() == ".tflite":
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head[4:8] == TFLITE_IDENTIFIER


def check_argument_order(model: str | os.PathLike[str], images: list[str | os.PathLike[str]]) -> None:
    """Raise :class:`UsageError` when the model and the images were given the other way round.

    ``edgecnn predict cat.jpg model.tflite`` would otherwise report an image that is not a model and a
    model that is not an image; the user needs to hear the order instead.
    """
    first = Path(model)
    first_is_image = first.suffix.lower() in IMAGE_SUFFIXES and not _looks_like_model(first)
    model_given_as_image = next((Path(p) for p in images if _looks_like_model(Path(p))), None)
    order = "the model comes first: edgecnn predict MODEL IMAGE..."
    if model_given_as_image is not None:
        if first_is_image:
            raise UsageError(f"{first} is an image and {model_given_as_image} a model: {order}")
        raise UsageError(
            f"{model_given_as_image} is a model, not an image: give one model, then images: "
            "edgecnn predict MODEL IMAGE..."
        )
    if first_is_image:
        raise UsageError(f"{first} is an image, not a model: {order}")


def predict(
    model: str | os.PathLike[str],
    images: list[str | os.PathLike[str]],
    *,
    decode: DecodeOptions | None = None,
    min_score: float | None = None,
    threads: int | None = None,
    device: str = "cpu",
    labels: str | os.PathLike[str] | None = None,
    crop: str | None = None,
    opened: Model | None = None,
    probe: bool = True,
    save: str | os.PathLike[str] | None = None,
) -> PredictReport:
    """Run ``model`` on ``images`` (files, or folders of them).

    ``decode`` holds the task options (:mod:`edgecnn.tasks.options`: ``top_k`` for classifiers;
    ``object_threshold``, ``max_detections``, ``classes``, ``iou``, ``agnostic`` for detectors; the
    pose and segment tasks read those of them that apply to their layouts), as ``edgecnn run`` takes
    them. ``min_score`` is the output filter, as in ``run``: an image whose result scores less (its top
    class; its best object) is left out of the report (None: the declared 0, every image). ``save``: a
    folder to write each reported image into with its result drawn on it (classes, boxes, keypoints and
    skeletons, masks), under the image's own name, each file written atomically.

    The model is read before the images, so a missing model is reported as the model, not as an image;
    a model and an image given the other way round are named as such.
    """
    if not images:
        raise UsageError("No images given: edgecnn predict MODEL IMAGE [IMAGE...].")
    check_argument_order(model, images)
    lowest = check_min_score(MIN_SCORE.default if min_score is None else min_score)
    options = decode or DecodeOptions()
    model_file = read_model(model) if opened is None else None
    # Fail on a bad image before the interpreter is loaded (or an Edge TPU probed).
    frames = [(str(p), read_image(p)) for p in expand_images(images)]
    folder = output_folder(save, what="--save folder") if save is not None else None
    names = _saved_names([Path(name) for name, _ in frames]) if folder is not None else []
    opened = opened or open_model(
        model_file or model,
        device=device,
        threads=threads,
        labels=labels,
        crop=crop,
        probe=probe,
        decode=options,
    )
    results = []
    for i, (name, frame) in enumerate(frames):
        pred = opened.process(frame)
        if pred.result.score < lowest:  # the output filter, as run's ResultFilter
            continue
        saved = None
        if folder is not None:
            saved = str(save_annotated(folder / names[i], frame, pred.result))
        results.append(
            ImageResult(
                name,
                pred.result,
                round(pred.preprocess_ms, 3),
                round(pred.inference_ms, 3),
                round(pred.postprocess_ms, 3),
                int(frame.shape[1]),
                int(frame.shape[0]),
                saved,
            )
        )
    labels_source = "--labels" if labels else (opened.meta.source if opened.labels else "none (class ids)")
    return PredictReport(
        model=str(opened.path or model),
        device=opened.device,
        runtime=opened.runtime.describe(),
        threads=opened.threads,
        load_ms=round(opened.load_ms, 3),
        labels_source=labels_source,
        results=results,
        task=opened.task,
        decoder=opened.decoder.name,
        input_normalisation=opened.spec.normalisation.rule,
    )


SAVE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _saved_names(paths: list[Path]) -> list[str]:
    """Each image's own file name (a format OpenCV writes, else .png); a name met before gets _2, _3."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        suffix = p.suffix.lower() if p.suffix.lower() in SAVE_SUFFIXES else ".png"
        name = p.stem + suffix
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{p.stem}_{seen[name]}{suffix}")
    return names


def save_annotated(path: Path, frame: np.ndarray, result: TaskResult) -> Path:
    """``frame`` with ``result`` drawn on it (the task's own :meth:`~edgecnn.tasks.TaskResult.draw`, as the
    preview stream shows it), encoded by its suffix and written atomically."""
    image = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    result.draw(image)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OutputError(f"Cannot encode {path.name} as {path.suffix}: save to a .png or .jpg name.")
    return write_atomic(path, encoded.tobytes(), what="annotated image")


def format_report(report: PredictReport) -> str:
    lines = [
        f"model {Path(report.model).name} on {report.device} ({report.runtime}, {report.threads} "
        f"thread{'s' if report.threads != 1 else ''}), labels: {report.labels_source}"
    ]
    for result in report.results:
        saved = f"  -> {result.saved}" if result.saved else ""
        lines.append(f"{result.image}  ({result.inference_ms:.2f} ms){saved}")
        lines.extend(result.output.lines())
    return "\n".join(lines)
