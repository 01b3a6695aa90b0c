"""Read a YOLO-format detection dataset: ``DATA/images/**`` with ``DATA/labels/**.txt`` beside them.

Each label line is ``class cx cy w h`` normalized to 0..1, the format Ultralytics reads (a polygon line,
``class x1 y1 x2 y2 ...``, becomes its bounding box, as ``yolo val`` does). An image without a label file
is an image with no objects. Class names come from ``DATA/classes.txt`` (one per line) or the ``names`` of
``DATA/data.yaml``; without either, classes are matched to the model by id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecnn.errors import InputError, RuntimeMissing, one_line
from edgecnn.eval.groundtruth import DetectionDataset, DetectionSample, NormalizedBox
from edgecnn.images import IMAGE_SUFFIXES
from edgecnn.safeio import FileKind, read_bytes, read_text

# Normalized coordinates a little outside 0..1 are rounding in the exporter, not a wrong box.
_TOLERANCE = 1e-3


def is_yolo_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "labels").is_dir()


def _read_names(root: Path) -> dict[int, str] | None:
    classes = root / "classes.txt"
    if classes.is_file():
        names = [line.strip() for line in read_text(classes, FileKind.LABELS).splitlines()]
        while names and not names[-1]:
            names.pop()
        return dict(enumerate(names))
    for name in ("data.yaml", "dataset.yaml"):
        path = root / name
        if path.is_file():
            return _yaml_names(path)
    return None


def _yaml_names(path: Path) -> dict[int, str]:
    try:
        import yaml
    except ImportError as exc:
        raise RuntimeMissing(
            f"Reading {path} needs PyYAML: pip install 'edgecnn[eval]' (or write the class names to classes.txt)."
        ) from exc
    try:
        doc: Any = yaml.safe_load(read_text(path, FileKind.LABELS))
    except RecursionError:
        raise InputError(f"{path} nests too deeply for a dataset file: fix the file.") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML ({one_line(exc)}): fix the file.") from exc
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return dict(enumerate(names))
    if isinstance(names, dict) and all(isinstance(k, int) and isinstance(v, str) for k, v in names.items()):
        return dict(names)
    raise InputError(
        f"{path} has no usable 'names' (a list of class names, or a mapping of id to name): add one, "
        "or write the names to classes.txt."
    )


def _parse_line(path: Path, number: int, line: str, names: dict[int, str] | None) -> NormalizedBox:
    where = f"{path} line {number}"
    fields = line.split()
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise InputError(
            f"{where}: expected 'class cx cy w h' (5 numbers) or a polygon 'class x1 y1 x2 y2 ...', "
            f"got {len(fields)} fields: fix the label file."
        )
    try:
        class_id = int(fields[0])
        values = [float(v) for v in fields[1:]]
    except ValueError:
        raise InputError(
            f"{where}: {line.strip()!r} is not a class id followed by numbers: fix the label file."
        ) from None
    if class_id < 0 or (names is not None and class_id not in names):
        known = f"0..{max(names)}" if names else "0 or more"
        raise InputError(f"{where}: class id {class_id} is not one of the dataset's classes ({known}).")
    if any(v != v for v in values):
        raise InputError(f"{where}: NaN coordinate: fix the label file.")
    if len(values) == 4:
        cx, cy, w, h = values
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        xs, ys = values[0::2], values[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    if min(x1, y1) < -_TOLERANCE or max(x2, y2) > 1 + _TOLERANCE:
        raise InputError(
            f"{where}: box ({x1:.4g}, {y1:.4g})-({x2:.4g}, {y2:.4g}) reaches outside the image: YOLO labels are "
            "normalized to 0..1 (divide pixel coordinates by the image's width and height)."
        )
    if x2 <= x1 or y2 <= y1:
        raise InputError(f"{where}: box has zero or negative width or height: fix or remove the line.")
    x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(1.0, x2), min(1.0, y2)
    return NormalizedBox(class_id, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)


def read_label_file(path: Path, names: dict[int, str] | None = None) -> tuple[NormalizedBox, ...]:
    try:
        text = read_bytes(path, FileKind.ANNOTATIONS).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path} is not a text label file: YOLO labels are lines of 'class cx cy w h'."
        ) from None
    return tuple(
        _parse_line(path, number, line, names)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    )


def read_yolo(data: str | os.PathLike[str]) -> DetectionDataset:
    """Read every image under ``DATA/images`` with its label file; check every label file has an image."""
    root = Path(data)
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir():
        raise InputError(f"{root} has labels/ but no images/ folder: put the images in {images_dir}.")
    names = _read_names(root)
    images = sorted(
        p
        for p in images_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not images:
        raise InputError(f"No images in {images_dir}: put .jpg/.png files there.")
    by_stem = {p.relative_to(images_dir).with_suffix(""): p for p in images}
    for label in sorted(labels_dir.rglob("*.txt")):
        if label.relative_to(labels_dir).with_suffix("") not in by_stem:
            raise InputError(
                f"{label} annotates a missing image (no {images_dir / label.relative_to(labels_dir).with_suffix('.*')}): "
                "add the image or remove the label file."
            )
    samples = []
    for image in images:
        label = labels_dir / image.relative_to(images_dir).with_suffix(".txt")
        boxes = read_label_file(label, names) if label.exists() else ()  # a FIFO or folder: safeio says so
        samples.append(DetectionSample(image=image, annotation=label, size=None, boxes=boxes))
    return DetectionDataset(root=root, format="yolo", names=names, samples=samples)
