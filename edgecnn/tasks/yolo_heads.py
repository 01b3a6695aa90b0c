"""YOLOv8/YOLO11 and YOLOv5 cut at their per-scale head outputs: the decode the export puts in the graph, done here.

A full-integer YOLOv8 export ends in layout ops (TRANSPOSE, RESHAPE, CONCATENATION on ``[1, 64+nc, 8400]``)
that edgetpu_compiler refuses for their size, so everything after the first of them (DFL, box decode,
class sigmoid) runs on the CPU, in int8, inside the interpreter's invoke() after the Edge TPU's part. A model cut
before them (``edgecnn convert MODEL.tflite --edgetpu --cut-head``, :mod:`edgecnn.converters.yolo_head_cut`)
ends in one ``[1, H, W, 64+nc]`` output per scale (strides 8, 16, 32), all mapped; this layout decodes them:

- DFL: per box side, a softmax over ``reg_max`` bins and its expectation (distances in grid cells);
- anchors at the cell centres (``x + 0.5, y + 0.5``), boxes ``anchor -/+ distances`` times the stride;
- classes: a sigmoid of the logits (thresholded on the logits first, so only candidates are decoded);
- NMS with OpenCV, per class or class-agnostic, as the ``[1, 4+nc, N]`` layout does.

YOLOv5's TFLite export (its ``export.py``) ends the same way: per scale a ``[1, H, W, na*(5+nc)]`` conv output,
then RESHAPE to ``[1, H*W, na, 5+nc]``, the grid and anchor arithmetic and a CONCATENATION to
``[1, 25200, 5+nc]`` that the compiler puts on the CPU. Cut at the conv outputs (:data:`LAYOUT_V5`), it is
decoded here with its grid, the anchors read from the export's own constants, and sigmoid objectness x class.

The cut model says so in a metadata entry (:data:`METADATA_NAME`, JSON: layout, strides, reg_max, classes,
YOLOv5's anchors);
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
LAYOUT_V5 = "yolov5-anchor-heads"  # YOLOv5: [1, H, W, na*(5+nc)] per scale, boxes from a grid and anchors


@dataclass(frozen=True)
class HeadLayout:
    """What the cut model's metadata entry says: one output per stride, in the order of ``strides``.

    YOLOv8/11 (:data:`LAYOUT`): ``reg_max`` DFL bins per box side, no anchors. YOLOv5 (:data:`LAYOUT_V5`):
    ``reg_max`` 0 and ``anchors``, per stride the ``(w, h)`` pairs in input pixels (``na`` of them, usually 3).
    """

    strides: tuple[int, ...]
    reg_max: int
    classes: int
    layout: str = LAYOUT
    anchors: tuple[tuple[float, ...], ...] | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "layout": self.layout,
            "strides": list(self.strides),
            "reg_max": self.reg_max,
            "classes": self.classes,
        }
        if self.anchors is not None:
            data["anchors"] = [list(a) for a in self.anchors]
        return json.dumps(data).encode()

    def channels(self) -> int:
        """The channels of each head map: DFL bins and class logits, or per anchor (x, y, w, h, obj, classes)."""
        if self.layout == LAYOUT_V5:
            return len(self.anchors[0]) // 2 * (5 + self.classes) if self.anchors else 0
        return 4 * self.reg_max + self.classes


def head_layout(model_file: ModelFile) -> HeadLayout | None:
    """The layout a cut model carries, or ``None`` (any other model). Every output must be the head map its
    stride says: ``[1, input/stride, input/stride, channels]``, in the order of the strides."""
    raw = model_file.metadata_entry(METADATA_NAME)
    if raw is None:
        return None
    where = model_file.path or "the model"
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        anchors = data.get("anchors")
        layout = HeadLayout(
            tuple(int(s) for s in data["strides"]),
            int(data["reg_max"]),
            int(data["classes"]),
            str(data.get("layout")),
            None if anchors is None else tuple(tuple(float(v) for v in a) for a in anchors),
        )
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ModelError(
            f"{where}: its {METADATA_NAME} metadata is unreadable ({exc}). Cut the model again."
        ) from None
    inp = model_file.inputs[0].shape
    fits = (
        layout.layout in (LAYOUT, LAYOUT_V5)
        and len(layout.strides) == len(model_file.outputs)
        and all(s > 0 for s in layout.strides)
        and layout.classes > 0
        and (layout.layout == LAYOUT_V5) == (layout.anchors is not None)
        and (layout.anchors is None or (
            len(layout.anchors) == len(layout.strides)
            and all(len(a) >= 2 and len(a) % 2 == 0 and len(a) == len(layout.anchors[0]) for a in layout.anchors)
        ))
        and (layout.layout == LAYOUT_V5 or 1 <= layout.reg_max <= 64)
        and len(inp) == 4
        and all(
            tuple(t.shape) == (1, inp[1] // s, inp[2] // s, layout.channels())
            for t, s in zip(model_file.outputs, layout.strides, strict=False)
        )
    )  # fmt: skip
    if not fits:
        raise ModelError(
            f"{where}: its {METADATA_NAME} metadata does not describe its {len(model_file.outputs)} outputs. "
            "Cut the model again with this edgecnn."
        )
    return layout


def _logit(score: float) -> float:
    """The class (or objectness) logit whose sigmoid is ``score``: thresholds are tested before the sigmoid."""
    if score <= 0:
        return -math.inf
    if score >= 1:
        return math.inf
    return math.log(score / (1 - score))


def _candidates(values: np.ndarray, logit: float, scale: float, zero_point: int) -> np.ndarray:
    """Indices of ``values`` (raw, quantized when ``scale``) at or above ``logit``; NaN kept (float)."""
    if scale:
        if math.isfinite(logit):
            return np.flatnonzero(values >= math.ceil(logit / scale + zero_point))
        return np.arange(len(values)) if logit < 0 else np.zeros(0, np.int64)
    return np.flatnonzero(~(values < logit))  # NaN stays in, for the sanity checks to report


def decode_anchor_heads(
    heads: list[tuple[np.ndarray, float, int]], layout: HeadLayout, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLOv5's head maps ``[H, W, na*(5+nc)]`` -> (boxes xyxy in input pixels, scores, class ids) of every
    anchor whose objectness x best class score reaches ``threshold`` (--object-threshold), before NMS.

    YOLOv5's decode (``models/yolo.py`` Detect, the TF export's TFDetect), on the sigmoid ``s`` of each value:
    centre ``(2 s_xy - 0.5 + cell) * stride``, size ``(2 s_wh)^2 * anchor``, score ``s_obj * s_class`` (as its
    NMS scores a box). The score cannot exceed the objectness, so anchors are first kept on the raw
    objectness logit: only those are dequantized.
    """
    logit = _logit(threshold)
    no = 5 + layout.classes
    boxes, scores, ids = [], [], []
    for (head, scale, zero_point), stride, anchor in zip(
        heads, layout.strides, layout.anchors or (), strict=True
    ):
        h, w, _ = head.shape
        na = len(anchor) // 2
        flat = head.reshape(h * w * na, no)  # the export's reshape to [1, H*W, na, no], flattened
        rows_at = _candidates(flat[:, 4], logit, scale, zero_point)
        if not len(rows_at):
            continue
        rows = dequantize(flat[rows_at], scale, zero_point) if scale else flat[rows_at].astype(np.float32)
        # The sigmoid is monotonic: the best class is the largest class logit; only it and the box and
        # objectness columns go through the sigmoid.
        best = rows[:, 5:].argmax(axis=1)
        s = 1.0 / (1.0 + np.exp(-rows[:, :5]))
        score = s[:, 4] / (1.0 + np.exp(-rows[np.arange(len(best)), 5 + best]))
        keep = ~(score < threshold)  # NaN stays in, for the sanity checks to report
        rows_at, s, best, score = rows_at[keep], s[keep], best[keep], score[keep]
        cell, a = rows_at // na, rows_at % na
        wh_anchor = np.asarray(anchor, dtype=np.float32).reshape(na, 2)[a]
        cx = (s[:, 0] * 2 - 0.5 + (cell % w)) * stride
        cy = (s[:, 1] * 2 - 0.5 + (cell // w)) * stride
        half = (s[:, 2:4] * 2) ** 2 * wh_anchor / 2
        boxes.append(np.stack([cx - half[:, 0], cy - half[:, 1], cx + half[:, 0], cy + half[:, 1]], axis=1))
        scores.append(score)
        ids.append(best)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return (
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(ids),
    )


def decode_heads(
    heads: list[tuple[np.ndarray, float, int]], layout: HeadLayout, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head maps ``(values [H, W, 4*reg_max + nc], scale, zero point)`` (scale 0: float values) -> (boxes xyxy in
    input pixels, scores, class ids) of every cell whose best class reaches ``threshold`` (--object-threshold), before NMS.

    The threshold is applied to the raw class logits (integers, for a quantized map), so only candidate
    cells are dequantized and decoded: an 80x80x144 map is never converted whole. A YOLOv5 layout goes to
    :func:`decode_anchor_heads`.
    """
    if layout.layout == LAYOUT_V5:
        return decode_anchor_heads(heads, layout, threshold)
    logit = _logit(threshold)
    bins = 4 * layout.reg_max
    boxes, scores, ids = [], [], []
    project = np.arange(layout.reg_max, dtype=np.float32)
    for (head, scale, zero_point), stride in zip(heads, layout.strides, strict=True):
        h, w, _ = head.shape
        flat = head.reshape(h * w, -1)
        # Best class per cell: OpenCV's transpose (strided rows in, one SIMD pass) then a max over the rows,
        # 5x faster than numpy's max over each cell's 80 channels (0.08 vs 0.4 ms for an 80x80 map here).
        best = cv2.transpose(flat[:, bins:]).max(axis=0)
        cells = _candidates(best, logit, scale, zero_point)
        rows = dequantize(flat[cells], scale, zero_point) if scale else flat[cells].astype(np.float32)
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
        # the base decoder's set-up (labels, options), not YoloDecoder's (which reads one [1, 4+nc, N] output)
        DetectDecoder.__init__(self, model_file, labels, options)
        layout = head_layout(model_file)
        if layout is None:
            raise ModelError(f"{model_file.path or 'the model'} carries no {METADATA_NAME} metadata.")
        self.layout = layout
        self.channels_last = False
        self.class_count = layout.classes
        self._outputs = interpreter.get_output_details()
        how = (
            f"{len(layout.anchors[0]) // 2} anchors per cell, objectness x class"
            if layout.anchors
            else f"DFL {layout.reg_max} bins"
        )
        self.name = (
            f"YOLO{'v5' if layout.anchors else ''} heads {[list(t.shape) for t in model_file.outputs]} ({how}, "
            f"strides {list(layout.strides)}, {layout.classes} classes) + OpenCV NMS"
            f" ({'class-agnostic' if options.agnostic else 'per class'}, IoU {self.iou:g})"
        )

    def _decode(self, interpreter: Any, transform: Transform) -> Detections:
        heads = []
        for d in self._outputs:
            scale, zero_point = d["quantization"]
            heads.append((_view(interpreter, d["index"])[0], float(scale), int(zero_point)))
        xyxy, scores, ids = decode_heads(heads, self.layout, self.threshold)
        del heads  # views of the runtime's buffers (no copy): none may outlive decode (see YoloDecoder)
        kept = self.nms(xyxy, xyxy[:, 2:] - xyxy[:, :2], scores, ids)  # YoloDecoder's NMS
        if kept is not None:
            xyxy, scores, ids = xyxy[kept], scores[kept], ids[kept]
        return self._objects(xyxy, scores, ids, transform)
