"""YOLOv8/YOLO11 cut at its per-scale head outputs: the decode Ultralytics' export puts in the graph, done here.

A full-integer YOLOv8 export ends in layout ops (TRANSPOSE, RESHAPE, CONCATENATION on ``[1, 64+nc, 8400]``)
that edgetpu_compiler refuses for their size, so everything after the first of them (DFL, box decode,
class sigmoid) runs on the CPU in the middle of the Edge TPU's work, at two transfers a frame. A model cut
before them (``edgecnn convert MODEL.tflite --edgetpu --cut-head``, :mod:`edgecnn.converters.yolo_head_cut`)
ends in one ``[1, H, W, 64+nc]`` output per scale (strides 8, 16, 32), all mapped; this layout decodes them:

- DFL: per box side, a softmax over ``reg_max`` bins and its expectation (distances in grid cells);
- anchors at the cell centres (``x + 0.5, y + 0.5``), boxes ``anchor -/+ distances`` times the stride;
- classes: a sigmoid of the logits (thresholded on the logits first, so only candidates are decoded);
- NMS with OpenCV, per class or class-agnostic, as the ``[1, 4+nc, N]`` layout does.

The cut model says so in a metadata entry (:data:`METADATA_NAME`, JSON: layout, strides, reg_max, classes);
Ultralytics' own metadata (names, imgsz) stays appended to the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgecnn.adapters import dequantize
from edgecnn.errors import ModelError
from edgecnn.modelfile import ModelFile
from edgecnn.preprocess import Transform
from edgecnn.tasks import DecodeOptions
from edgecnn.tasks.detect import DetectDecoder, Detections, YoloDecoder, _view

METADATA_NAME = "edgecnn_yolo_heads"
LAYOUT = "yolov8-dfl-heads"


@dataclass(frozen=True)
class HeadLayout:
    """What the cut model's metadata entry says: one output per stride, in the order of ``strides``."""

    strides: tuple[int, ...]
    reg_max: int
    classes: int

    def to_json(self) -> bytes:
        data = {
            "layout": LAYOUT,
            "strides": list(self.strides),
            "reg_max": self.reg_max,
            "classes": self.classes,
        }
        return json.dumps(data).encode()


def head_layout(model_file: ModelFile) -> HeadLayout | None:
    """The layout a cut model carries, or ``None`` (any other model)."""
    raw = model_file.metadata_entry(METADATA_NAME)
    if raw is None:
        return None
    where = model_file.path or "the model"
    try:
        data = json.loads(raw)
        layout = HeadLayout(
            tuple(int(s) for s in data["strides"]), int(data["reg_max"]), int(data["classes"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{where}: its {METADATA_NAME} metadata is unreadable ({exc}). Cut the model again."
        ) from None
    channels = 4 * layout.reg_max + layout.classes
    shapes_fit = all(
        len(t.shape) == 4 and t.shape[0] == 1 and t.shape[3] == channels for t in model_file.outputs
    )
    if data.get("layout") != LAYOUT or len(layout.strides) != len(model_file.outputs) or not shapes_fit:
        raise ModelError(
            f"{where}: its {METADATA_NAME} metadata does not describe its {len(model_file.outputs)} outputs. "
            "Cut the model again with this edgecnn."
        )
    return layout


def decode_heads(
    heads: list[tuple[np.ndarray, float, int]], layout: HeadLayout, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head maps ``(values [H, W, 4*reg_max + nc], scale, zero point)`` (scale 0: float values) -> (boxes xyxy in
    input pixels, scores, class ids) of every cell whose best class reaches ``threshold`` (--object-threshold), before NMS.

    The threshold is applied to the raw class logits (integers, for a quantized map), so only candidate
    cells are dequantized and decoded: an 80x80x144 map is never converted whole.
    """
    if threshold <= 0:
        logit = -math.inf
    elif threshold >= 1:
        logit = math.inf
    else:
        logit = math.log(threshold / (1 - threshold))
    bins = 4 * layout.reg_max
    boxes, scores, ids = [], [], []
    project = np.arange(layout.reg_max, dtype=np.float32)
    for (head, scale, zero_point), stride in zip(heads, layout.strides, strict=True):
        h, w, _ = head.shape
        flat = head.reshape(h * w, -1)
        best = flat[:, bins:].T.max(axis=0)  # along the cells: 3x faster than max(axis=1) on 80 classes
        if scale:
            if math.isfinite(logit):
                cells = np.flatnonzero(best >= math.ceil(logit / scale + zero_point))
            else:
                cells = np.arange(len(best)) if logit < 0 else np.zeros(0, np.int64)
            rows = dequantize(flat[cells], scale, zero_point)
        else:
            cells = np.flatnonzero(~(best < logit))  # NaN stays in, for the sanity checks to report
            rows = flat[cells].astype(np.float32)
        if not len(cells):
            continue
        dist = rows[:, :bins].reshape(-1, 4, layout.reg_max)
        dist = np.exp(dist - dist.max(axis=2, keepdims=True))
        dist = (dist / dist.sum(axis=2, keepdims=True)) @ project  # [n, 4]: left, top, right, bottom
        ax = (cells % w).astype(np.float32) + 0.5
        ay = (cells // w).astype(np.float32) + 0.5
        xyxy = np.stack([ax - dist[:, 0], ay - dist[:, 1], ax + dist[:, 2], ay + dist[:, 3]], axis=1) * stride
        cls = rows[:, bins:]
        boxes.append(xyxy)
        ids.append(cls.argmax(axis=1))
        scores.append(1.0 / (1.0 + np.exp(-cls.max(axis=1))))
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.concatenate(boxes), np.concatenate(scores).astype(np.float32), np.concatenate(ids)


def claims(model_file: ModelFile) -> bool:
    return model_file.metadata_entry(METADATA_NAME) is not None


class HeadsDecoder(YoloDecoder):
    """The detect task's decoder for a cut model (registered in :mod:`edgecnn.tasks.detect`); a YoloDecoder
    for everything after the boxes (NMS options, --iou/--agnostic, the sanity checks)."""

    def __init__(
        self, model_file: ModelFile, interpreter: Any, labels: list[str] | None, options: DecodeOptions
    ) -> None:
        DetectDecoder.__init__(self, model_file, labels, options)
        layout = head_layout(model_file)
        if layout is None:
            raise ModelError(f"{model_file.path or 'the model'} carries no {METADATA_NAME} metadata.")
        self.layout = layout
        self.channels_last = False
        self.class_count = layout.classes
        self._outputs = interpreter.get_output_details()
        self.name = (
            f"YOLO heads {[list(t.shape) for t in model_file.outputs]} (DFL {layout.reg_max} bins, strides "
            f"{list(layout.strides)}, {layout.classes} classes) + OpenCV NMS"
            f" ({'class-agnostic' if options.agnostic else 'per class'}, IoU {self.iou:g})"
        )

    def _decode(self, interpreter: Any, transform: Transform) -> Detections:
        heads = []
        for d in self._outputs:
            scale, zero_point = d["quantization"]
            heads.append((_view(interpreter, d["index"])[0], float(scale), int(zero_point)))
        xyxy, scores, ids = decode_heads(heads, self.layout, self.threshold)
        del heads  # views of the runtime's buffers (no copy): none may outlive decode (see YoloDecoder)
        if len(scores) and np.all(np.isfinite(scores)) and np.all(np.isfinite(xyxy)):
            tlwh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
            if self.options.agnostic:
                found = cv2.dnn.NMSBoxes(tlwh.tolist(), scores.tolist(), self.threshold, self.iou)
            else:
                found = cv2.dnn.NMSBoxesBatched(tlwh.tolist(), scores.tolist(), ids.tolist(), self.threshold,
                                               self.iou)  # fmt: skip
            kept = np.asarray(found, dtype=np.int64).reshape(-1)[: self.max_detections]
            xyxy, scores, ids = xyxy[kept], scores[kept], ids[kept]
        return self._objects(xyxy, scores, ids, transform)
