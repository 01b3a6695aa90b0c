"""The segmentation evaluator: mean IoU and pixel accuracy against a folder of label masks.

Masks are single-channel images of class ids, one per image with the same name stem (``2007_000032.jpg``
and ``2007_000032.png``), the size of their image. PASCAL VOC's palette PNGs hold ids as palette indices:
they are read as such when Pillow is installed. Pixels labelled :data:`IGNORE` (PASCAL's 255, object
borders) count for nothing. IoU per class is TP / (TP + FP + FN) over the whole dataset (one confusion
matrix, as PASCAL and Cityscapes compute it, not a mean of per-image IoUs); mean IoU averages the classes
present in the truth or the predictions.

``edgecnn eval MODEL DATA`` reaches it through the segment task (:func:`edgecnn.tasks.segment.evaluator`):
DATA is a folder holding ``masks/`` and ``images/`` (every image needs its mask), or ``masks/`` alone with
``--images DIR`` (the masks choose the images: PASCAL VOC's ``SegmentationClass`` labels a part of its
``JPEGImages``). With ``--against``, the second model is scored too and the two class maps' agreement is
the share of labelled pixels where they give the same class. It scores class maps (DeepLab-style); YOLO
seg's instance masks are refused in one line.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edgecnn.errors import InputError, UsageError
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import ReportMixin
from edgecnn.images import IMAGE_SUFFIXES, list_images, read_image

if TYPE_CHECKING:
    from edgecnn.model import Model

IGNORE = 255
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")  # lossless only: a JPEG's class ids are blurred

# The Evaluator protocol (edgecnn.tasks.Evaluator), reached through edgecnn.tasks.segment.evaluator().
LAYOUTS = ("masks",)
EXPECTS = "a folder with masks/ (label masks named as their images) and images/ (or --images DIR)"
DECODE: dict[str, Any] = {}  # class maps take no decode option


@dataclass(frozen=True)
class ClassIoU:
    id: int
    label: str
    pixels: int  # in the truth
    iou_pct: float | None  # None: in neither truth nor predictions


@dataclass(frozen=True)
class SegmentationFigures:
    mean_iou_pct: float
    pixel_accuracy_pct: float
    per_class: list[ClassIoU]


@dataclass(frozen=True)
class SegmentationComparison:
    """The ``--against`` model on the same images: its figures, and how often the two class maps agree."""

    model: str
    figures: SegmentationFigures
    agreement_pct: float  # labelled pixels (not IGNORE) where both models give the same class


@dataclass(frozen=True)
class SegmentationReport(ReportMixin):
    task: str
    data: str
    model: str
    images: int
    figures: SegmentationFigures
    median_inference_ms: float
    comparison: SegmentationComparison | None = None

    @property
    def headline(self) -> tuple[str, float]:
        return "mean IoU", self.figures.mean_iou_pct

    def tables(self) -> list[Any]:
        from rich.table import Table

        summary = Table(title=f"segment: {Path(self.model).name} on {self.data}", title_justify="left")
        summary.add_column("")
        summary.add_column("value", justify="right")
        summary.add_row("images", str(self.images))
        summary.add_row("mean IoU", f"{self.figures.mean_iou_pct:.2f}%")
        summary.add_row("pixel accuracy", f"{self.figures.pixel_accuracy_pct:.2f}%")
        summary.add_row("median inference", f"{self.median_inference_ms:.2f} ms")
        if self.comparison is not None:
            other = self.comparison
            summary.add_row(
                f"against {Path(other.model).name}: mean IoU", f"{other.figures.mean_iou_pct:.2f}%"
            )
            summary.add_row("against: pixel accuracy", f"{other.figures.pixel_accuracy_pct:.2f}%")
            summary.add_row("pixels agreeing", f"{other.agreement_pct:.2f}%")
        classes = Table(title="per class", title_justify="left")
        for name in ("id", "label", "pixels", "IoU"):
            classes.add_column(name, justify="left" if name == "label" else "right")
        for c in self.figures.per_class:
            if c.iou_pct is not None:
                classes.add_row(str(c.id), c.label, str(c.pixels), f"{c.iou_pct:.2f}%")
        return [summary, classes]


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int, *, ignore: int = IGNORE) -> np.ndarray:
    """``[classes, classes + 1]`` pixel counts, rows truth, columns prediction; ``ignore`` pixels and ids
    past ``classes`` in the truth are left out; predicted ids past it are the last column (always wrong)."""
    if truth.shape != predicted.shape:
        raise InputError(f"a mask of {truth.shape[::-1]} pixels for a prediction of {predicted.shape[::-1]}")
    t = truth.astype(np.int64).ravel()
    p = np.minimum(predicted.astype(np.int64).ravel(), classes)
    keep = (t != ignore) & (t < classes)
    counts = np.bincount(t[keep] * (classes + 1) + p[keep], minlength=classes * (classes + 1))
    return counts.reshape(classes, classes + 1)  # type: ignore[no-any-return]


def figures(matrix: np.ndarray, labels: list[str] | None = None) -> SegmentationFigures:
    """Mean IoU (classes in truth or predictions) and pixel accuracy of a :func:`confusion` matrix (summed
    over images)."""
    classes = matrix.shape[0]
    tp = np.diag(matrix[:, :classes]).astype(np.float64)
    in_truth = matrix.sum(axis=1).astype(np.float64)  # the last column too: those pixels were missed
    in_pred = matrix[:, :classes].sum(axis=0).astype(np.float64)
    union = in_truth + in_pred - tp
    per_class = []
    for i in range(classes):
        label = labels[i] if labels is not None and i < len(labels) else str(i)
        iou = round(float(100.0 * tp[i] / union[i]), 4) if union[i] else None
        per_class.append(ClassIoU(i, label, int(in_truth[i]), iou))
    present = [c.iou_pct for c in per_class if c.iou_pct is not None]
    total = in_truth.sum()
    return SegmentationFigures(
        round(float(np.mean(present)), 4) if present else 0.0,
        round(100.0 * tp.sum() / total, 4) if total else 0.0,
        per_class,
    )


def read_mask(path: Path) -> np.ndarray:
    """A mask's class ids: a single-channel image, or a palette image's indices (with Pillow)."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is not None and mask.ndim == 2:
        return mask
    try:
        from PIL import Image

        with Image.open(path) as image:
            if image.mode in ("P", "L", "I;16", "I"):
                return np.asarray(image)
    except ImportError:
        pass
    except OSError:
        mask = None
    if mask is None:
        raise InputError(f"{path} is not an image edgecnn can read: pass a PNG of class ids.")
    raise InputError(
        f"{path} has {mask.shape[2]} colour channels: a label mask holds one class id per pixel (an 8-bit "
        "grey or palette PNG). Convert it, or install Pillow to read palette PNGs."
    )


def mask_pairs(
    images: str | os.PathLike[str], masks: str | os.PathLike[str], *, every_image: bool = True
) -> list[tuple[Path, Path]]:
    """Each image with the mask of the same stem. ``every_image``: each image in ``images`` needs a mask
    (a dataset's own images/); else the masks choose the images, each mask needing its image (a shared
    image folder, as PASCAL VOC's JPEGImages, holds more images than are labelled)."""
    folder = Path(masks)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: pass the folder of label masks.")
    by_stem: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in MASK_SUFFIXES:
            by_stem.setdefault(p.stem, p)
    image_files = [i for i in list_images(images) if i.suffix.lower() in IMAGE_SUFFIXES]
    pairs = []
    if every_image:
        for image in image_files:
            mask = by_stem.get(image.stem)
            if mask is None:
                raise InputError(
                    f"{image} has no mask in {folder} (looked for {image.stem}.png): add it or remove the image."
                )
            pairs.append((image, mask))
    else:
        by_image: dict[str, Path] = {}
        for image in image_files:
            by_image.setdefault(image.stem, image)
        for stem, mask in by_stem.items():
            found = by_image.get(stem)
            if found is None:
                raise InputError(
                    f"{mask} has no image in {images} (looked for {stem}.*): add it or remove the mask."
                )
            pairs.append((found, mask))
    if not pairs:
        raise InputError(
            f"{images} holds no images with a mask in {folder}: pass the images the masks label."
        )
    return pairs


def _check_class_map(model: Model) -> None:
    from edgecnn.tasks.segment import YoloSegDecoder

    if model.task != "segment":
        raise InputError(f"{model.path} is a {model.task} model: mean IoU needs a segment model.")
    if isinstance(model.decoder, YoloSegDecoder):
        raise UsageError(
            f"{model.path} is a YOLO seg model (instance masks): edgecnn eval scores class maps against label "
            "masks (DeepLab-style models); measure YOLO seg with `yolo val` (mask mAP)."
        )


def evaluate_segmentation(
    model: Model,
    images: str | os.PathLike[str],
    masks: str | os.PathLike[str],
    *,
    ignore: int = IGNORE,
    progress: ProgressFn | None = None,
    against: Model | None = None,
    every_image: bool = True,
) -> SegmentationReport:
    """Run ``model`` (a segment model; and ``against``, another build, on the same decoded images) on every
    image and score its class maps against the masks (:func:`mask_pairs` pairs them)."""
    _check_class_map(model)
    if against is not None:
        _check_class_map(against)
    pairs = mask_pairs(images, masks, every_image=every_image)
    labels = getattr(model.decoder, "labels", None)
    truths = [read_mask(m) for _, m in pairs]
    known = [int(t[t != ignore].max(initial=0)) + 1 for t in truths]
    counts = [len(labels or []), getattr(model.decoder, "class_count", 0), *known]
    if against is not None:
        counts.append(getattr(against.decoder, "class_count", 0))
    classes = max(counts)
    matrix = np.zeros((classes, classes + 1), np.int64)
    other_matrix = np.zeros_like(matrix)
    agree = labelled = 0
    times = []
    for done, ((image, mask_path), truth) in enumerate(zip(pairs, truths, strict=True), 1):
        frame = read_image(image)
        out = model.process(frame)
        times.append(out.inference_ms)
        predicted: np.ndarray = out.result.mask  # type: ignore[attr-defined]  # a segment model's Segmentation
        try:
            matrix += confusion(truth, predicted, classes, ignore=ignore)
            if against is not None:
                theirs: np.ndarray = against.process(frame).result.mask  # type: ignore[attr-defined]
                other_matrix += confusion(truth, theirs, classes, ignore=ignore)
                scored = truth != ignore
                agree += int((predicted[scored] == theirs[scored]).sum())
                labelled += int(scored.sum())
        except InputError as exc:
            raise InputError(f"{mask_path}: {exc}: a mask is the size of its image.") from None
        if progress:
            progress(done, len(pairs))
    comparison = None
    if against is not None:
        comparison = SegmentationComparison(
            str(against.path),
            figures(other_matrix, labels),
            round(100.0 * agree / labelled, 4) if labelled else 0.0,
        )
    return SegmentationReport(
        task="segment",
        data=str(images),
        model=str(model.path),
        images=len(pairs),
        figures=figures(matrix, labels),
        median_inference_ms=round(statistics.median(times), 3) if times else 0.0,
        comparison=comparison,
    )


def evaluate_model(
    data: str | os.PathLike[str],
    model: Model,
    *,
    against: Model | None = None,
    options: Any,
    progress: ProgressFn | None = None,
) -> SegmentationReport:
    """The evaluator's entry point (:class:`edgecnn.tasks.Evaluator`): ``data`` holds ``masks/`` and
    ``images/``, or ``masks/`` with the images in ``options.images`` (``--images``)."""
    folder = Path(data)
    images = options.images if options.images is not None else folder / "images"
    if not images.is_dir():
        raise InputError(f"{folder} has masks/ but no images/ folder: add it, or pass --images DIR.")
    report = evaluate_segmentation(
        model,
        images,
        folder / "masks",
        progress=progress,
        against=against,
        every_image=options.images is None,
    )
    return replace(report, data=str(folder))
