"""Which kind of labelled dataset ``DATA`` is, and reading a detection dataset in either format."""

from __future__ import annotations

import os
from pathlib import Path

from edgecnn.errors import InputError, UsageError
from edgecnn.eval.coco_json import read_coco
from edgecnn.eval.groundtruth import DetectionDataset
from edgecnn.eval.yolo_labels import is_yolo_dataset, read_yolo

# What each dataset_format() name is, in words (eval's error when a model's task reads another layout).
LAYOUT_NAMES = {
    "folders": "class folders",
    "yolo": "a YOLO detection dataset",
    "coco": "a COCO detection file",
    "masks": "a folder of label masks",
}


def dataset_format(data: str | os.PathLike[str]) -> str:
    """``coco`` (a .json file: detection or keypoints), ``masks`` (a folder with masks/: segmentation),
    ``yolo`` (a folder with labels/) or ``folders`` (class sub-folders)."""
    path = Path(data)
    if not path.exists():
        raise InputError(
            f"Dataset not found: {path}. Pass a folder of class folders, a YOLO folder, a folder with "
            "masks/ and images/, or a COCO .json."
        )
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise InputError(
            f"{path} is a file: pass a folder (DATA/<label>/*.jpg, or YOLO images/ + labels/) or a COCO .json file."
        )
    if is_yolo_dataset(path):
        return "yolo"
    return "masks" if (path / "masks").is_dir() else "folders"


def read_detection_dataset(
    data: str | os.PathLike[str], *, images: str | os.PathLike[str] | None = None
) -> DetectionDataset:
    kind = dataset_format(data)
    if kind == "coco":
        return read_coco(data, images=images)
    if kind == "yolo":
        if images is not None:
            raise UsageError(
                "--images is for COCO .json annotations; a YOLO dataset keeps its images in DATA/images."
            )
        return read_yolo(data)
    raise InputError(
        f"{data} has no labels/ folder and is not a COCO .json file: it is not a detection dataset."
    )
