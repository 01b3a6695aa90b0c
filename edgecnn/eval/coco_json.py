"""Read a COCO-format detection annotation file (``images``, ``annotations``, ``categories``).

Boxes are ``[x, y, width, height]`` in pixels, as the COCO format defines. Image files are looked up
relative to ``images`` (``--images DIR``), else beside the JSON file, else in ``images/`` beside it.
Everything is checked before any inference: an annotation naming an image id, a category or a file that
does not exist, a box outside its image or not finite (NaN, Infinity), or a ``file_name`` that leaves the
images folder (absolute, or with ``..``), is one error naming the file and the entry.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from edgecnn.errors import InputError
from edgecnn.eval.groundtruth import EDGE_TOLERANCE_PX, DetectionDataset, DetectionSample, GroundTruthBox
from edgecnn.safeio import FileKind, read_bytes

MAX_SIDE = 1 << 20  # pixels: far beyond any photo, and small enough for float arithmetic on boxes


def _require(path: Path, entry: str, obj: Any, key: str, kinds: tuple[type, ...]) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise InputError(
            f"{path}: {entry} has no valid {key!r} (a COCO annotation file needs it): fix the file."
        )
    return value


def _leaves_folder(file_name: str) -> bool:
    """An absolute name, a ``..`` step or a NUL: a file name that could point outside the images folder.

    Judged on the text, with either separator, before any file is looked at, so an annotation file cannot
    make eval read ``/etc/shadow`` or ``../../x``; a symlinked images folder still works (it is the folder).
    """
    if not file_name or "\0" in file_name:
        return True
    for pure in (PurePosixPath(file_name), PureWindowsPath(file_name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return True
    return False


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
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() (4,300) digits
        raise InputError(
            f"{path} holds a number thousands of digits long, which no COCO annotation file has: fix the file."
        ) from None
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
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise InputError(
                f"{path}: {entry} says its image is {str(width)[:20]}x{str(height)[:20]} pixels: give its real width and "
                f"height (1 to {MAX_SIDE})."
            )
        if _leaves_folder(file_name):
            raise InputError(
                f"{path}: {entry} names {file_name[:200]!r}, which leaves the images folder (an absolute path or "
                "'..'): give file names relative to the images folder (--images DIR)."
            )
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
        try:
            x, y, w, h = (float(v) for v in bbox)
        except OverflowError:  # an integer too large for a float
            x = y = w = h = math.inf
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise InputError(
                f"{path}: {entry} box [{x:g}, {y:g}, {w:g}, {h:g}] is not finite (NaN or Infinity): COCO boxes "
                "are [x, y, width, height] in pixels; fix the entry."
            )
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
