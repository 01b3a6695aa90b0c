"""Object detection: raw outputs -> objects with a label, a score and a box in pixels of the original frame.

Three layouts, each a decoder chosen once per model from its outputs:

- **SSD / EfficientDet-Lite** with the ``TFLite_Detection_PostProcess`` op (Coral's zoo, TF Model Maker):
  four float outputs, boxes normalised (ymin, xmin, ymax, xmax), NMS done by the op. The outputs come in
  the three orders pycoral's ``get_objects`` knows: by signature names, TF1 order (boxes, classes,
  scores, count) and TF2 order (scores, boxes, count, classes). Only the first ``count`` rows are read.
- **Ultralytics YOLOv8/YOLO11**: one output ``[1, 4+nc, N]`` (cx, cy, w, h, class scores; boxes
  normalised to the input size by the TFLite export), float32 or full int8 with one quantization for
  boxes and scores. edgecnn does the NMS with OpenCV: ``cv2.dnn.NMSBoxesBatched`` per class (the default,
  as Ultralytics), ``cv2.dnn.NMSBoxes`` across classes with ``--agnostic``; IoU threshold ``--iou``.
  The input is letterboxed, as Ultralytics does.
- **YOLOv5** (its own ``export.py``): one output ``[1, N, 5+nc]`` (cx, cy, w, h, objectness, class
  scores, all after the sigmoid; the TF export normalises the boxes by the input size, other converters
  leave them in pixels: both are read). Told from YOLOv8's ``[1, N, 4+nc]`` by N: YOLOv5 has 3 anchors per
  grid cell, so N is 3x the cells of strides 8, 16 and 32 (25200 at 640, 6300 at 320) where YOLOv8 has one
  box per cell (8400 at 640); when the input size says neither, by the labels the model carries (5+nc or
  4+nc rows). Score = objectness x class score, as YOLOv5's NMS scores a box; then the same OpenCV NMS.
- **End-to-end** ``[1, N, 6]`` (x1, y1, x2, y2, score, class): NMS already done in the model.

Every layout keeps the objects scoring at least ``--object-threshold`` (default 0.4), at most
``--max-detections`` of them, of the ``--classes`` asked for: the task options of :mod:`edgecnn.tasks.options`,
checked there (which results are output, ``--min-score``, is decided after the decoder, by the command).
``--iou`` and ``--agnostic`` apply to the YOLO layout only: SSD's op and end-to-end models do their own NMS,
and a decoder for them logs a warning when either is given instead of pretending to use it.

Labels: whatever the model carries (edgecnn or Ultralytics metadata, a TFLite Support label file) or
``--labels``. A label file whose first line is ``???`` follows the TF Object Detection API convention
(line 0 is the background the op never reports) and is shifted by one; Coral's id-prefixed files with
gaps are understood by the label parser. Each decoder knows its class count where the outputs tell it (the
SSD op's ``num_classes`` option, YOLO's ``4 + nc`` rows; end-to-end models: their own labels), and
:func:`edgecnn.sanity.check_labels` holds the labels to it before the first frame; a class with no line
shows as its number.

Results that cannot be right (:mod:`edgecnn.sanity`: NaN or inf, scores outside 0..1, boxes with no area,
class ids outside the model's classes) are :class:`~edgecnn.errors.InvalidResult`, one rule for every
layout; NumPy's RuntimeWarnings on such values are silenced where outputs are decoded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgecnn.adapters import dequantize
from edgecnn.errors import InvalidResult, ModelError, UsageError
from edgecnn.metadata import ModelMetadata
from edgecnn.modelfile import ModelFile, TensorInfo
from edgecnn.postprocess_op import POSTPROCESS_OP
from edgecnn.preprocess import Transform
from edgecnn.sanity import check_boxes, check_class_ids, check_scores
from edgecnn.tasks import DecodeOptions, shapes, stage_evaluator
from edgecnn.tasks.options import DEFAULT_IOU

log = logging.getLogger(__name__)

NAME = "detect"
DESCRIPTION = "object detector"  # what the model does, in words (the service's Description=)
BOX_SLACK = 0.5  # normalised boxes may overshoot the image a little; more means the outputs are misread

_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
            (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203)]  # fmt: skip


@dataclass(frozen=True)
class Object:
    id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the original frame


@dataclass(frozen=True)
class Detections:
    objects: list[Object]  # best first
    task: str = field(default=NAME, init=False)

    @property
    def top(self) -> Object | None:
        return self.objects[0] if self.objects else None

    @property
    def score(self) -> float:
        return self.objects[0].score if self.objects else 0.0

    @property
    def key(self) -> Hashable:
        return tuple(sorted({o.label for o in self.objects}))

    def labels(self) -> list[str]:
        return [o.label for o in self.objects]

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": [
                {
                    "id": o.id,
                    "label": o.label,
                    "score": round(o.score, 6),
                    "box": [round(v, 1) for v in o.box],
                }
                for o in self.objects
            ]
        }

    def track_items(self) -> list[Object]:
        """Every object (:class:`edgecnn.tasks.Trackable`): tracking writes a ``track_id`` into each."""
        return self.objects

    def track_records(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return list(data["objects"])

    def keep(self, indices: Sequence[int]) -> Detections:
        """The objects at ``indices`` (:class:`edgecnn.tasks.Keepable`)."""
        return Detections([self.objects[i] for i in indices])

    def summary(self) -> str:
        if not self.objects:
            return "no objects"
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o.label] = counts.get(o.label, 0) + 1
        seen = ", ".join(f"{n} {label}" if n > 1 else label for label, n in counts.items())
        return f"{len(self.objects)} object{'s' if len(self.objects) != 1 else ''}: {seen} (best {self.score:.2f})"

    def line(self) -> str:
        return self.summary()

    def lines(self) -> list[str]:
        if not self.objects:
            return ["  no objects"]
        return [
            f"  {o.score:7.4f}  {o.id:>5}  {o.label:<16} box {', '.join(f'{v:.0f}' for v in o.box)}"
            for o in self.objects
        ]

    def draw(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        scale = max(0.4, min(w, h) / 900)
        thickness = max(1, round(min(w, h) / 300))
        for o in self.objects:
            colour = _PALETTE[o.id % len(_PALETTE)]
            x1, y1, x2, y2 = (round(v) for v in o.box)
            cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
            text = f"{o.label} {o.score:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
            cv2.rectangle(image, (x1, ty - th - base), (x1 + tw + 4, ty + 1), colour, -1)
            cv2.putText(image, text, (x1 + 2, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)  # fmt: skip


# --- which layout ------------------------------------------------------------------------------------


def _has_postprocess_op(model_file: ModelFile) -> bool:
    return any(op.name == POSTPROCESS_OP for op in model_file.operators())


def _yolo_layout(outputs: list[TensorInfo]) -> str | None:
    """ "yolo" for [1, 4+nc, N] (or [1, N, 4+nc]), "e2e" for [1, N, 6], None otherwise."""
    if len(outputs) != 1 or len(outputs[0].shape) != 3 or outputs[0].shape[0] != 1:
        return None
    _, a, b = outputs[0].shape
    if b == 6 and a > 6:
        return "e2e"
    if a >= 5 and b > a:
        return "yolo"
    if b >= 5 and a > b:
        return "yolo-channels-last"
    return None


YOLO_STRIDES = (8, 16, 32)  # the three scales of YOLOv5 and YOLOv8/11's detect heads


def boxes_per_cell(model_file: ModelFile, rows: int) -> int | None:
    """How many boxes per grid cell ``rows`` boxes are for this model's input at :data:`YOLO_STRIDES`: 1 for
    YOLOv8/11 (anchor-free, 8400 at 640), YOLOv5's anchors per cell (3: 25200 at 640), ``None`` when the
    count fits no grid (an odd input size is rounded either way, as exports differ)."""
    shape = model_file.inputs[0].shape if model_file.inputs else ()
    if len(shape) != 4 or min(shape[1:3]) < max(YOLO_STRIDES):
        return None
    h, w = shape[1:3]
    for cells in {
        sum((h // s) * (w // s) for s in YOLO_STRIDES),
        sum(-(-h // s) * -(-w // s) for s in YOLO_STRIDES),
    }:
        if rows % cells == 0 and 1 <= rows // cells <= 9:
            return rows // cells
    return None


def is_yolov5(model_file: ModelFile, labels: list[str] | None) -> bool:
    """Whether a YOLO-shaped output (:func:`_yolo_layout`) is YOLOv5's ``[1, N, 5+nc]`` rather than
    YOLOv8/11's ``[1, N, 4+nc]``: by its box count for the input (several anchors per cell), else, when the
    input says neither, by the labels the model carries (``5 + len(labels)`` values a box)."""
    found = _yolo_rows(model_file)
    if found is None:
        return False
    rows, values = found
    per_cell = boxes_per_cell(model_file, rows)
    if per_cell is not None:
        return per_cell > 1
    count = len(detection_labels(labels) or [])
    return count > 0 and values == 5 + count


def _yolo_rows(model_file: ModelFile) -> tuple[int, int] | None:
    """(boxes, values per box) of a YOLO-shaped single output, else ``None``."""
    layout = _yolo_layout(model_file.outputs)
    if layout not in ("yolo", "yolo-channels-last"):
        return None
    _, a, b = model_file.outputs[0].shape
    return (a, b) if layout == "yolo-channels-last" else (b, a)


def fits_yolo_grid(model_file: ModelFile) -> bool:
    """A single ``[1, a, b]`` output whose larger side is a YOLO box count for the input (:func:`boxes_per_cell`):
    boxes, not a ``[1, H, W]`` class map, even when it is uint8 (YOLOv5's full-integer export)."""
    found = _yolo_rows(model_file)
    return found is not None and boxes_per_cell(model_file, found[0]) is not None


def claims(model_file: ModelFile, meta: ModelMetadata) -> bool:
    from edgecnn.tasks import yolo_heads  # YOLO cut at its per-scale head outputs: its own module

    return (
        _has_postprocess_op(model_file)
        or _yolo_layout(model_file.outputs) is not None
        or yolo_heads.claims(model_file)
    )


def detection_labels(labels: list[str] | None) -> list[str] | None:
    """Drop the TF Object Detection API's leading ``???`` (background) line: the op's class 0 is line 1."""
    if labels and labels[0].strip() == "???":
        return labels[1:]
    return labels


class DetectDecoder:
    """What :func:`decoder` returns, whichever layout: labels, the task options, and the filtering, box
    mapping and checks every layout shares (:meth:`_objects`)."""

    task = NAME
    letterbox = False
    class_count = 0  # classes the outputs can report (0: unknown); open_model checks the labels against it
    whole_classes = False  # class ids come as exact whole numbers (a fraction is a misread output)
    verb = "detecting"
    decodes = True
    name = ""

    def __init__(self, model_file: ModelFile, labels: list[str] | None, options: DecodeOptions) -> None:
        self.where = str(model_file.path or "the model")
        self.labels = detection_labels(labels)
        self.threshold = float(options.object_threshold)  # --object-threshold: objects below are dropped
        self._told_no_area = False
        self.max_detections = options.max_detections
        self.iou = DEFAULT_IOU if options.iou is None else float(options.iou)
        self.options = options
        self.keep: set[int] | None = None
        if options.classes:
            known = {label: i for i, label in enumerate(self.labels or [])}
            missing = [c for c in options.classes if c not in known]
            if missing:
                shown = ", ".join((self.labels or [])[:20]) or "none: the model has no labels"
                raise UsageError(
                    f"--classes {','.join(missing)}: not a label of {self.where} (labels: {shown}). "
                    "Use the model's label names."
                )
            self.keep = {known[c] for c in options.classes}

    def _label(self, class_id: int) -> str:
        """The class's label; its number when there are no labels or they end before it (check_labels
        warned, or refused a --labels file, before the first frame)."""
        if self.labels is None or not 0 <= class_id < len(self.labels):
            return str(class_id)
        return self.labels[class_id]

    def _known_classes(self) -> int:
        """The class count ids are checked against: the outputs' (class_count), else the labels' (0: any)."""
        return self.class_count or len(self.labels or [])

    def _objects(
        self, xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, transform: Transform
    ) -> Detections:
        """Input-pixel boxes -> frame-pixel objects, best first, filtered and capped; :class:`InvalidResult`
        for values that cannot be right. ``classes`` may be floats (SSD, end-to-end): NaN is no class 0."""
        return self._indexed_objects(xyxy, scores, classes, transform)[0]

    def _indexed_objects(
        self, xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, transform: Transform
    ) -> tuple[Detections, np.ndarray]:
        """:meth:`_objects`, and which input row each object came from (pose and segment layouts built on
        YOLO's read their keypoints and mask coefficients for those rows)."""
        check_scores(scores, self.where)
        seen = scores > 0  # a score of 0 is nothing seen (end-to-end padding rows with --object-threshold 0)
        rows = np.flatnonzero(seen)
        xyxy, scores, classes = xyxy.reshape(-1, 4)[seen], scores[seen], classes[seen]
        # Inverted by more than 1% of the input is misread outputs; no area is a box quantized to nothing.
        area = check_boxes(
            xyxy, self.where, tolerance=0.01 * max(transform.input_width, transform.input_height)
        )
        if not area.all():
            if not self._told_no_area:
                log.warning(
                    "%s gave %d boxes with no area (dropped; quantized outputs collapse small boxes): "
                    "said once per model.",
                    self.where,
                    int((~area).sum()),
                )
                self._told_no_area = True
            xyxy, scores, classes, rows = xyxy[area], scores[area], classes[area], rows[area]
        self._check_in_range(xyxy, transform)
        ids = check_class_ids(classes, self._known_classes(), self.where, integral=self.whole_classes)
        if self.keep is not None and len(ids):
            mask = np.isin(ids, list(self.keep))
            xyxy, scores, ids, rows = xyxy[mask], scores[mask], ids[mask], rows[mask]
        boxes = transform.to_frame(xyxy) if len(xyxy) else xyxy[:0]
        # A box wholly outside the frame (in the letterbox padding) clips to nothing: not an object in it.
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, ids, rows = boxes[inside], scores[inside], ids[inside], rows[inside]
        order = np.argsort(-scores, kind="stable")[: self.max_detections]
        found = Detections(
            [Object(int(ids[i]), self._label(int(ids[i])), float(scores[i]), _box(boxes[i])) for i in order]
        )
        return found, rows[order]

    def _check_in_range(self, xyxy: np.ndarray, transform: Transform) -> None:
        """Input-pixel boxes may overshoot the input by BOX_SLACK of its size, no more (1e30 is garbage)."""
        if not len(xyxy):
            return
        w, h = transform.input_width, transform.input_height
        low = np.array([-BOX_SLACK * w, -BOX_SLACK * h] * 2, dtype=np.float64)
        high = np.array([(1 + BOX_SLACK) * w, (1 + BOX_SLACK) * h] * 2, dtype=np.float64)
        if np.any(xyxy < low) or np.any(xyxy > high):
            raise InvalidResult(
                f"{self.where} produced boxes out of range ({float(xyxy.min()):.4g}..{float(xyxy.max()):.4g} for a "
                f"{w}x{h} input): its box outputs are misread or broken. Re-export it and check it with "
                "`edgecnn predict`."
            )

    def _check_normalised(self, boxes: np.ndarray) -> None:
        if boxes.size and (float(boxes.min()) < -BOX_SLACK or float(boxes.max()) > 1 + BOX_SLACK):
            raise InvalidResult(
                f"{self.where} produced boxes out of range ({float(boxes.min()):.3g}..{float(boxes.max()):.3g}, "
                "expected normalised 0..1): its outputs are in an order edgecnn does not know. "
                "Re-export it with the standard TFLite_Detection_PostProcess outputs."
            )


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in row)
    return x1, y1, x2, y2


def _view(interpreter: Any, tensor_index: int) -> np.ndarray:
    """The output tensor without a copy where the runtime offers it (``Interpreter.tensor``), else a copy."""
    tensor = getattr(interpreter, "tensor", None)
    return tensor(tensor_index)() if tensor is not None else interpreter.get_tensor(tensor_index)  # type: ignore[no-any-return]


def _read(interpreter: Any, index: int) -> np.ndarray:
    """Output tensor ``index`` as float32 (dequantized when integer)."""
    details = interpreter.get_output_details()[index]
    raw = interpreter.get_tensor(details["index"])
    scale, zero_point = details["quantization"]
    if np.issubdtype(raw.dtype, np.integer) and scale:
        return dequantize(raw, scale, zero_point)
    return raw.astype(np.float32, copy=False)


# --- SSD with TFLite_Detection_PostProcess ---------------------------------------------------------------


def _ssd_order(
    model_file: ModelFile, outputs: list[tuple[int, ...]]
) -> tuple[tuple[int, int, int, int], str]:
    """(indices of boxes, classes, scores, count among the outputs, how they were found).

    ``outputs`` are the shapes after ``allocate_tensors()``: the op's outputs often have none in the file.
    """
    where = model_file.path or "the model"
    unknown = ModelError(
        f"{where} has the TFLite_Detection_PostProcess op but outputs {[list(o) for o in outputs]} in an order edgecnn "
        "does not know (expected boxes [1,K,4], classes [1,K], scores [1,K], count [1]). "
        "Re-export it with the TF Object Detection API's TFLite export."
    )
    if len(outputs) != 4:
        raise unknown
    names = model_file.signature_outputs()
    if names and len(names) == 4:
        by_name: dict[str, int] = {}
        for name, position in names.items():
            low = name.lower()
            for role, needles in (("boxes", ("box",)), ("classes", ("class",)), ("scores", ("score",)),
                                  ("count", ("num", "count"))):  # fmt: skip
                if any(n in low for n in needles):
                    by_name[role] = position
        if len(by_name) < 4 and set(names) == {"output_0", "output_1", "output_2", "output_3"}:
            # TF2 object-detection export: output_0 count, output_1 scores, output_2 classes, output_3 boxes.
            by_name = {
                "count": names["output_0"],
                "scores": names["output_1"],
                "classes": names["output_2"],
                "boxes": names["output_3"],
            }
        if len(set(by_name.values())) == 4 and len(by_name) == 4:
            order = (by_name["boxes"], by_name["classes"], by_name["scores"], by_name["count"])
            if _ssd_shapes_fit(outputs, order):
                return order, "signature names"
    for order, how in (((0, 1, 2, 3), "TF1 order"), ((1, 3, 0, 2), "TF2 order")):
        if _ssd_shapes_fit(outputs, order):
            return order, how
    raise unknown


def _ssd_shapes_fit(outputs: list[tuple[int, ...]], order: tuple[int, int, int, int]) -> bool:
    boxes, classes, scores, count = (outputs[i] for i in order)
    return (
        len(boxes) == 3
        and boxes[-1] == 4
        and math.prod(count) == 1
        and math.prod(classes) == math.prod(scores) == boxes[1]
    )


class SSDDecoder(DetectDecoder):
    whole_classes = True  # the op writes class indices as floats, exactly

    def __init__(
        self, model_file: ModelFile, interpreter: Any, labels: list[str] | None, options: DecodeOptions
    ) -> None:
        super().__init__(model_file, labels, options)
        out_shapes = [tuple(int(d) for d in o["shape"]) for o in interpreter.get_output_details()]
        self.order, how = _ssd_order(model_file, out_shapes)
        self.name = f"{POSTPROCESS_OP} outputs ({how})"
        op_options = model_file.postprocess_options()  # checked by parse_model: present and sane
        self.class_count = op_options.num_classes if op_options is not None else 0

    def decode(self, interpreter: Any, transform: Transform) -> Detections:
        with np.errstate(all="ignore"):
            return self._decode(interpreter, transform)

    def _decode(self, interpreter: Any, transform: Transform) -> Detections:
        ib, ic, iscore, icount = self.order
        boxes = _read(interpreter, ib)[0]
        classes = _read(interpreter, ic).reshape(-1)
        scores = _read(interpreter, iscore).reshape(-1)
        count_value = float(_read(interpreter, icount).reshape(-1)[0])
        if not math.isfinite(count_value):
            count_value = -1
        count = int(count_value)
        if not 0 <= count <= len(scores):
            raise InvalidResult(
                f"{self.where} reported {count_value:g} detections but has room for {len(scores)}: its outputs are "
                "in an order edgecnn does not know. Re-export it with the standard postprocess outputs."
            )
        boxes, classes, scores = boxes[:count], classes[:count], scores[:count]
        # Every reported row is checked, not only those over --object-threshold: swapped class and score
        # outputs (scores like 34.0) or a NaN are the model's fault whatever the threshold.
        check_scores(scores, self.where)
        check_class_ids(classes, self._known_classes(), self.where, integral=True)
        keep = scores >= self.threshold
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
        self._check_normalised(boxes)
        w, h = transform.input_width, transform.input_height
        xyxy = np.stack([boxes[:, 1] * w, boxes[:, 0] * h, boxes[:, 3] * w, boxes[:, 2] * h], axis=-1)
        return self._objects(xyxy, scores, classes, transform)


# --- Ultralytics YOLO ------------------------------------------------------------------------------------


class YoloDecoder(DetectDecoder):
    """``[1, 4+nc, N]``: class scores share one quantization with the boxes, so an int8 model's threshold
    test runs on the raw integers (``q >= threshold / scale + zero_point``) and only candidates are
    dequantized: a whole 84x8400 tensor is never converted."""

    letterbox = True
    first_class = 4  # the row of class 0: after cx, cy, w, h (YOLOv5: and objectness)

    def __init__(
        self,
        model_file: ModelFile,
        interpreter: Any,
        labels: list[str] | None,
        options: DecodeOptions,
        *,
        channels_last: bool,
        extra_rows: int = 0,
        output: int = 0,
    ) -> None:
        super().__init__(model_file, labels, options)
        self._details = interpreter.get_output_details()[output]
        self.channels_last = channels_last
        shape = model_file.outputs[output].shape
        # Rows after the class scores (pose keypoints, segment mask coefficients): read by subclasses.
        self.extra_rows = extra_rows
        self.class_count = (shape[2] if channels_last else shape[1]) - self.first_class - extra_rows
        if self.class_count < 1:
            raise ModelError(
                f"{self.where}: output {list(shape)} has no room for class scores after the boxes and "
                f"{extra_rows} other rows: its metadata does not fit its outputs. Re-export it."
            )
        self.name = (
            f"YOLO {list(shape)} (cx, cy, w, h + {self.class_count} class scores) + {self._nms_name()}"
        )

    def _nms_name(self) -> str:
        return f"OpenCV NMS ({'class-agnostic' if self.options.agnostic else 'per class'}, IoU {self.iou:g})"

    def decode(self, interpreter: Any, transform: Transform) -> Detections:
        with np.errstate(all="ignore"):
            return self._decode(interpreter, transform)

    def _decode(self, interpreter: Any, transform: Transform) -> Detections:
        xyxy, scores, ids, _columns, _normalised = self.select(interpreter, transform)
        return self._objects(xyxy, scores, ids, transform)

    def raw_output(self, interpreter: Any) -> np.ndarray:
        """The ``[4+nc+extra, N]`` (YOLOv5: ``[5+nc, N]``) output as a view of the runtime's buffer (transposed if channels-last):
        index it (a copy) and drop it before returning, or the next ``invoke()`` fails."""
        raw = _view(interpreter, self._details["index"])[0]
        return raw.T if self.channels_last else raw

    def dequantized(self, rows: np.ndarray) -> np.ndarray:
        """Rows indexed out of :meth:`raw_output` as float32 (one quantization for the whole output)."""
        scale, zero_point = self._details["quantization"]
        if np.issubdtype(rows.dtype, np.integer) and scale:
            return dequantize(rows, scale, zero_point)
        return rows.astype(np.float32, copy=False)

    def _scored(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Columns of ``raw`` (the output as :meth:`raw_output`) scoring at least ``--object-threshold``:
        (their columns, cx cy w h as float32 ``[n, 4]``, scores, class ids), copies. YOLOv8/11: the best
        class score; the threshold test runs on the raw integers of a quantized output."""
        scale, zero_point = self._details["quantization"]
        quantized = np.issubdtype(raw.dtype, np.integer) and bool(scale)
        class_rows = raw[4 : 4 + self.class_count]
        # max over classes first (a fast row-wise reduction), argmax only for the few candidates.
        best = class_rows.max(axis=0)
        if quantized:
            threshold = math.ceil(self.threshold / scale + zero_point)
            candidates = np.flatnonzero(best >= threshold)
            boxes = dequantize(raw[:4, candidates], scale, zero_point).T
            scores = dequantize(best[candidates], scale, zero_point)
        else:
            # NaN fails every comparison: keep NaN columns as candidates so _objects reports them.
            candidates = np.flatnonzero(~(best < self.threshold))
            scores = best[candidates].astype(np.float32)
            boxes = raw[:4, candidates].T.astype(np.float32)
        ids = class_rows[:, candidates].argmax(axis=0) if len(candidates) else np.zeros(0, np.int64)
        return candidates, boxes, scores, ids

    def select(
        self, interpreter: Any, transform: Transform
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """Candidates over ``--min-score`` after NMS: (x1, y1, x2, y2 in input pixels, scores, class ids,
        their columns of the output, whether the boxes were normalised): pose and segment layouts read
        their extra rows for those columns."""
        # A view of the output buffer (no copy of a 2.8 MB [84, 8400] tensor); everything kept below is a
        # copy made by indexing, so nothing refers to the buffer after decode returns.
        raw = self.raw_output(interpreter)
        candidates, boxes, scores, ids = self._scored(raw)
        # Everything below is a copy. Drop the view of the runtime's buffer now: an InvalidResult raised
        # below keeps this frame's locals in its traceback, and a live view makes the next invoke() fail.
        del raw
        normalised = bool(boxes.size and float(np.abs(boxes).max()) <= 2.0)
        if normalised:  # Ultralytics' and YOLOv5's TFLite exports divide boxes by the input size
            boxes = boxes * np.array([transform.input_width, transform.input_height] * 2, dtype=np.float32)
        xyxy = np.empty_like(boxes)
        xyxy[:, :2] = boxes[:, :2] - boxes[:, 2:] / 2
        xyxy[:, 2:] = boxes[:, :2] + boxes[:, 2:] / 2
        kept = self.nms(xyxy, boxes[:, 2:], scores, ids)
        if kept is not None:
            xyxy, scores, ids, candidates = xyxy[kept], scores[kept], ids[kept], candidates[kept]
        return xyxy, scores, ids, candidates, normalised

    def nms(self, xyxy: np.ndarray, wh: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
        """The indices OpenCV's NMS keeps (per class, or across classes with --agnostic) among the --classes
        asked for, best first, at most --max-detections; ``None`` when there are no candidates or a value is not finite (left for the
        sanity checks to report). ``wh`` is the boxes' width and height, as the layout has them."""
        if not (len(scores) and np.all(np.isfinite(scores)) and np.all(np.isfinite(xyxy))):
            return None
        pool = None
        if self.keep is not None:
            # --classes picks the candidates before NMS and the cap (Ultralytics' classes=): after them, a
            # frame with --max-detections objects of other classes left none of the asked-for ones.
            pool = np.flatnonzero(np.isin(ids, list(self.keep)))
            xyxy, wh, scores, ids = xyxy[pool], wh[pool], scores[pool], ids[pool]
            if not len(pool):
                return pool
        tlwh = np.concatenate([xyxy[:, :2], wh], axis=1)
        # No top_k for OpenCV: its top_k caps the candidates *entering* NMS, so on a crowded frame the
        # overlapping duplicates of the best objects used up the budget and real objects never reached
        # it (benchmarks/peer_ultralytics.py: 36 of Ultralytics' 56 objects). Its kept indices come
        # best first; --max-detections keeps the first of those, as Ultralytics' max_det does.
        if self.options.agnostic:
            found = cv2.dnn.NMSBoxes(tlwh.tolist(), scores.tolist(), self.threshold, self.iou)
        else:
            found = cv2.dnn.NMSBoxesBatched(tlwh.tolist(), scores.tolist(), ids.tolist(), self.threshold,
                                           self.iou)  # fmt: skip
        kept = np.asarray(found, dtype=np.int64).reshape(-1)[: self.max_detections]
        return kept if pool is None else pool[kept]


class Yolov5Decoder(YoloDecoder):
    """YOLOv5's ``[1, N, 5+nc]``: an objectness row before the class scores, score = objectness x class (as
    YOLOv5's NMS). A box's score cannot exceed its objectness (both are sigmoids), so the threshold test
    runs on the objectness row first, on the raw integers of a quantized output, as YOLOv5's NMS keeps
    candidates by ``obj > conf_thres``: only those columns are dequantized."""

    first_class = 5

    def __init__(
        self,
        model_file: ModelFile,
        interpreter: Any,
        labels: list[str] | None,
        options: DecodeOptions,
        *,
        channels_last: bool,
    ) -> None:
        super().__init__(model_file, interpreter, labels, options, channels_last=channels_last)
        shape = list(model_file.outputs[0].shape)
        self.name = (
            f"YOLOv5 {shape} (5+nc: cx, cy, w, h, objectness + {self.class_count} class scores; "
            f"score = objectness x class) + {self._nms_name()}"
        )

    def _scored(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        scale, zero_point = self._details["quantization"]
        objectness = raw[4]
        if np.issubdtype(raw.dtype, np.integer) and scale:
            candidates = np.flatnonzero(objectness >= math.ceil(self.threshold / scale + zero_point))
        else:
            candidates = np.flatnonzero(~(objectness < self.threshold))  # NaN stays, for _objects to report
        rows = self.dequantized(raw[: 5 + self.class_count, candidates])  # [5+nc, n]: a copy
        ids = rows[5:].argmax(axis=0) if len(candidates) else np.zeros(0, np.int64)
        scores = rows[4] * rows[5 + ids, np.arange(len(ids))]
        keep = ~(scores < self.threshold)
        return (
            candidates[keep],
            rows[:4, keep].T.astype(np.float32),
            scores[keep].astype(np.float32),
            ids[keep],
        )


class EndToEndDecoder(DetectDecoder):
    letterbox = True

    def __init__(
        self, model_file: ModelFile, meta: ModelMetadata, labels: list[str] | None, options: DecodeOptions
    ) -> None:
        super().__init__(model_file, labels, options)
        self.name = (
            f"end-to-end {list(model_file.outputs[0].shape)} (x1, y1, x2, y2, score, class; NMS in the model)"
        )
        # The outputs do not say how many classes there are; the model's own labels do (Ultralytics names).
        self.class_count = len(detection_labels(meta.labels) or [])

    def decode(self, interpreter: Any, transform: Transform) -> Detections:
        with np.errstate(all="ignore"):
            rows = _read(interpreter, 0)[0]
            scores = rows[:, 4]
            check_scores(scores, self.where)  # every row: a score of -3 is no padding row either
            keep = ~(scores < self.threshold)  # NaN stays in, to be reported
            rows = rows[keep]
            xyxy = rows[:, :4].copy()
            if xyxy.size and np.all(np.isfinite(xyxy)) and float(np.abs(xyxy).max()) <= 2.0:
                xyxy *= np.array([transform.input_width, transform.input_height] * 2, dtype=np.float32)
            return self._objects(xyxy, rows[:, 4], rows[:, 5], transform)


def decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions,
) -> DetectDecoder:
    # The option values were checked against their declarations when ``options`` was built.
    from edgecnn.tasks import yolo_heads  # YOLO cut at its per-scale head outputs: its own module

    if yolo_heads.claims(model_file):
        dec: DetectDecoder = yolo_heads.HeadsDecoder(model_file, interpreter, labels, options)
    elif _has_postprocess_op(model_file):
        dec = SSDDecoder(model_file, interpreter, labels, options)
    else:
        layout = _yolo_layout(model_file.outputs)
        if layout == "e2e":
            dec = EndToEndDecoder(model_file, meta, labels, options)
        # The layout is the model's: a --labels file (which may be meant for another model, and is checked
        # against the class count this decides) never turns a YOLOv8 reading into YOLOv5's.
        elif layout in ("yolo", "yolo-channels-last") and is_yolov5(model_file, meta.labels):
            dec = Yolov5Decoder(
                model_file, interpreter, labels, options, channels_last=layout == "yolo-channels-last"
            )
        elif layout in ("yolo", "yolo-channels-last"):
            dec = YoloDecoder(
                model_file, interpreter, labels, options, channels_last=layout == "yolo-channels-last"
            )
        else:
            raise ModelError(
                f"{model_file.path or 'the model'} is declared a detector but its outputs {shapes(model_file.outputs)} "
                "fit no detection layout edgecnn reads (TFLite_Detection_PostProcess; YOLO [1, 4+nc, N]; "
                "YOLOv5 [1, N, 5+nc]; "
                "[1, N, 6]). Re-export it in one of these."
            )
    if meta.letterbox is not None:
        dec.letterbox = bool(meta.letterbox)
    if not isinstance(dec, YoloDecoder) and (options.iou is not None or options.agnostic):
        log.warning(
            "--iou/--agnostic do not apply to %s: its NMS is done inside the model (%s).",
            dec.where,
            dec.name,
        )
    return dec


def evaluator() -> Any:
    """How ``edgecnn eval`` measures detectors: mAP on a YOLO folder or a COCO file (:mod:`edgecnn.eval.detect`)."""
    return stage_evaluator("edgecnn.eval.detect")
