"""Plain data shared by the detection dataset readers and the detection evaluator.

A reader turns YOLO ``labels/*.txt`` or a COCO JSON file into one :class:`DetectionDataset`; the evaluator
never knows which format it came from, which is what lets a test show both give the same mAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import InputError

# How far (in pixels, after mapping normalized YOLO coordinates) a box may poke outside its image before it
# is an error rather than rounding in the tool that wrote it.
EDGE_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class GroundTruthBox:
    """One annotated object: class id of the dataset and box x1, y1, x2, y2 in image pixels."""

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    crowd: bool = False  # COCO ``iscrowd``: a region detections may hit without counting as false positives


@dataclass(frozen=True)
class NormalizedBox:
    """A YOLO box: centre and size as fractions of the image (resolved to pixels once the size is known)."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class DetectionSample:
    image: Path
    annotation: Path  # the file (and for YOLO, the line numbers start at 1) that describes this image
    size: tuple[int, int] | None  # (width, height) as the annotation states it; None for YOLO
    boxes: tuple[GroundTruthBox | NormalizedBox, ...]

    def pixel_boxes(self, width: int, height: int) -> list[GroundTruthBox]:
        """Boxes in pixels of the decoded image, checking the annotation's stated size against it."""
        if self.size is not None and self.size != (width, height):
            raise InputError(
                f"{self.image} is {width}x{height} pixels but {self.annotation} says {self.size[0]}x{self.size[1]}: "
                "fix the image's width/height in the annotation file."
            )
        out = []
        for box in self.boxes:
            if isinstance(box, GroundTruthBox):
                out.append(box)
                continue
            out.append(
                GroundTruthBox(
                    box.class_id,
                    (box.cx - box.w / 2) * width,
                    (box.cy - box.h / 2) * height,
                    (box.cx + box.w / 2) * width,
                    (box.cy + box.h / 2) * height,
                )
            )
        return out


@dataclass(frozen=True)
class DetectionDataset:
    root: Path
    format: str  # "yolo" or "coco"
    names: dict[int, str] | None  # dataset class id -> name; None when the dataset names no classes
    samples: list[DetectionSample]

    @property
    def objects(self) -> int:
        return sum(len(s.boxes) for s in self.samples)

    def name(self, class_id: int) -> str:
        return self.names.get(class_id, str(class_id)) if self.names else str(class_id)
