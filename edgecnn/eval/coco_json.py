"""Read a COCO-format detection annotation file (``images``, ``annotations``, ``categories``).

Boxes are ``[x, y, width, height]`` in pixels, as the COCO format defines. Image files are looked up
relative to ``images`` (``--images DIR``), else beside the JSON file, else in ``images/`` beside it.
Everything is checked before any inference: an annotation naming an image id, a category or a file that
does not exist, or a box outside its image, is one error naming the file and the entry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgecnn.errors import InputError
from edgecnn.eval.groundtruth import EDGE_TOLERANCE_PX, DetectionDataset, DetectionSample, GroundTruthBox
from edgecnn.safeio import FileKind, read_bytes


def _require(path: Path, entry: str, obj: Any, key: str, kinds: tuple[type, ...]) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise InputError(
            f"{path}: {entry} has no valid {key!r} (a COCO annotation file needs it): fix the file."
        )
    return value


def _image_path(json_path: Path, images: Path | None, file_name: str) -> Path | None:
    candidates = (
        [images / file_name]
        if images
        else [json_path.parent / file_name, json_path.parent / "images" / file_name]
    )
    return next((c for c in candidates if c.is_file()), None)


def read_coco(
    annotations: str | os.PathLike[str], *, images: str | os.PathLike[str] | None = None
) -> DetectionDataset:
    path = Path(annotations)
    image_dir = Path(images) if images is not None else None
    try:
        doc = json.loads(read_bytes(path, FileKind.ANNOTATIONS))
    except RecursionError:
        raise InputError(f"{path} nests too deeply for a COCO annotation file: fix the file.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}): fix the file.") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a JSON text file: pass a COCO annotation file.") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise InputError(
            f"{path} is not a COCO annotation file: it needs 'images', 'annotations' and 'categories' lists."
        )
    names: dict[int, str] = {}
    for i, cat in enumerate(doc["categories"]):
        entry = f"categories[{i}]"
        names[_require(path, entry, cat, "id", (int,))] = _require(path, entry, cat, "name", (str,))
    info: dict[int, tuple[Path, int, int]] = {}
    for i, image in enumerate(doc["images"]):
        entry = f"images[{i}]"
        image_id = _require(path, entry, image, "id", (int,))
        if image_id in info:
            raise InputError(f"{path}: {entry} repeats image id {image_id}: give every image its own id.")
        file_name = _require(path, entry, image, "file_name", (str,))
        width = _require(path, entry, image, "width", (int,))
        height = _require(path, entry, image, "height", (int,))
        found = _image_path(path, image_dir, file_name)
        if found is None:
            where = image_dir or f"{path.parent} or {path.parent / 'images'}"
            raise InputError(
                f"{path}: {entry} names {file_name!r}, which is not in {where}: add the image, remove its "
                "entry, or pass --images DIR."
            )
        info[image_id] = (found, width, height)
    if not info:
        raise InputError(f"{path} lists no images: add them to its 'images' list.")
    boxes: dict[int, list[GroundTruthBox]] = {image_id: [] for image_id in info}
    for i, ann in enumerate(doc["annotations"]):
        entry = f"annotations[{i}]"
        image_id = _require(path, entry, ann, "image_id", (int,))
        category = _require(path, entry, ann, "category_id", (int,))
        bbox = _require(path, entry, ann, "bbox", (list,))
        if image_id not in info:
            raise InputError(
                f"{path}: {entry} is for image id {image_id}, which 'images' does not list: add the image or "
                "remove the annotation."
            )
        if category not in names:
            raise InputError(f"{path}: {entry} has category_id {category}, which 'categories' does not list.")
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise InputError(
                f"{path}: {entry} 'bbox' must be [x, y, width, height] in pixels: fix the entry."
            )
        x, y, w, h = (float(v) for v in bbox)
        _, width, height = info[image_id]
        t = EDGE_TOLERANCE_PX
        if w <= 0 or h <= 0 or x < -t or y < -t or x + w > width + t or y + h > height + t:
            raise InputError(
                f"{path}: {entry} box [{x:g}, {y:g}, {w:g}, {h:g}] reaches outside its {width}x{height} image "
                f"{info[image_id][0].name} (or is empty): COCO boxes are [x, y, width, height] in pixels."
            )
        crowd = bool(ann.get("iscrowd", 0)) if isinstance(ann, dict) else False
        boxes[image_id].append(
            GroundTruthBox(
                category, max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h), crowd
            )
        )
    samples = [
        DetectionSample(image=file, annotation=path, size=(width, height), boxes=tuple(boxes[image_id]))
        for image_id, (file, width, height) in sorted(info.items())
    ]
    return DetectionDataset(root=path, format="coco", names=names, samples=samples)
