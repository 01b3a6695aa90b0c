"""Segmentation: raw outputs -> a class per pixel of the original frame, reported as per-class fractions;
YOLO segmentation adds objects (label, score, box) each with its own mask.

Three layouts, each a decoder chosen once per model from its outputs:

- **Class map** ``[1, H, W]`` integer (DeepLab with its ``ARG_MAX``, Coral's zoo; int64 as TF writes it).
- **Scores** ``[1, H, W, C]`` (logits or probabilities, float or quantized): the argmax over C is taken on
  the raw values (dequantizing with a positive scale keeps the order).
- **Ultralytics YOLO seg** (``yolov8n-seg``, ``yolo11n-seg``): a detection output ``[1, 4+nc+M, N]`` (boxes,
  class scores, M mask coefficients) and prototypes ``[1, Hp, Wp, M]``. Boxes and NMS are the detector's
  (:class:`edgecnn.tasks.detect.YoloDecoder`); each kept object's mask is ``coefficients @ prototypes``
  cropped to its box, as Ultralytics does. ``sigmoid(x) > 0.5`` is ``x > 0``, so no sigmoid is computed.

Every mask goes back to frame pixels through the inverse of the :class:`~edgecnn.preprocess.Transform`
that made the input (crop, stretch or letterbox): one ``cv2.warpAffine`` per map (nearest for class ids,
linear for YOLO's mask logits, over each object's box only).

Results are small on purpose: ``run``'s JSONL/MQTT/``/latest`` carry the fraction of the frame each class
covers (and YOLO's objects), never the masks. ``predict --json`` adds each mask as COCO run-length
encoding written by pycocotools (:meth:`Segmentation.detailed_json`), when pycocotools is installed (the
``eval`` extra); the runtime itself needs only NumPy and OpenCV.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from edgecnn.adapters import dequantize
from edgecnn.errors import InvalidResult, ModelError
from edgecnn.metadata import ModelMetadata
from edgecnn.modelfile import ModelFile, TensorInfo
from edgecnn.preprocess import Transform
from edgecnn.tasks import DecodeOptions, shapes, stage_evaluator
from edgecnn.tasks import detect as _detect

log = logging.getLogger(__name__)

NAME = "segment"
DESCRIPTION = "image segmenter"  # what the model does, in words (the service's Description=)
OUTPUT_DTYPES = ("INT64", "INT32")  # class maps: TF's ARG_MAX writes int64
MIN_FRACTION = 0.005  # a class covering less of the frame is not "present" (labels(), the change key)
BACKGROUND = "background"
NO_CLASS = 255  # YOLO seg: pixels no object covers, in the class map (PASCAL's "ignore" value)
_ALPHA = 0.5  # overlay opacity

_PALETTE = np.array(_detect._PALETTE * 15, dtype=np.uint8)[:256]  # class id -> BGR (256 entries for cv2.LUT)


@dataclass(frozen=True)
class Area:
    """One class's share of the frame."""

    id: int
    label: str
    fraction: float  # of the frame's pixels, 0..1

    @property
    def score(self) -> float:
        return self.fraction


@dataclass(frozen=True, eq=False)
class Instance:
    """A YOLO-seg object: the detector's object and its mask, a box-sized crop of the frame."""

    object: _detect.Object
    mask: np.ndarray  # bool [y2-y1, x2-x1] at origin
    origin: tuple[int, int]  # x, y of the mask's top-left pixel in the frame

    def full_mask(self, height: int, width: int) -> np.ndarray:
        full = np.zeros((height, width), np.uint8)
        x, y = self.origin
        h, w = self.mask.shape
        full[y : y + h, x : x + w] = self.mask
        return full


@dataclass(frozen=True, eq=False)
class Segmentation:
    areas: list[Area]  # every class present, largest first (background included)
    mask: np.ndarray = field(repr=False)  # [frame h, frame w] class id per pixel (uint8 or uint16)
    instances: list[Instance] = field(default_factory=list)  # YOLO seg: objects best first
    background: int | None = 0  # the class id that is nothing (None: every class is something)
    boxed: bool = False  # YOLO seg: objects with boxes (tracked in run), even on a frame with none
    task: str = field(default=NAME, init=False)

    def _found(self) -> list[Area]:
        return [a for a in self.areas if a.id != self.background and a.fraction >= MIN_FRACTION]

    @property
    def top(self) -> Any:
        if self.instances:
            return self.instances[0].object
        found = self._found()
        return found[0] if found else None

    @property
    def score(self) -> float:
        """YOLO seg: the best object's score; class maps: the largest class's share of the frame."""
        top = self.top
        return float(top.score) if top is not None else 0.0

    @property
    def key(self) -> Hashable:
        return tuple(
            sorted(self.labels() if not self.instances else {i.object.label for i in self.instances})
        )

    def labels(self) -> list[str]:
        if self.instances:
            return [i.object.label for i in self.instances]
        return [a.label for a in self._found()]

    def to_json(self) -> dict[str, Any]:
        """``classes``: id, label and fraction of the frame per class present; YOLO seg adds ``objects``
        (as a detector's). No masks: a frame's record stays a few hundred bytes."""
        out: dict[str, Any] = {
            "classes": [{"id": a.id, "label": a.label, "fraction": round(a.fraction, 5)} for a in self.areas]
        }
        if self.instances:
            out["objects"] = _detect.Detections([i.object for i in self.instances]).to_json()["objects"]
        return out

    def track_items(self) -> list[_detect.Object] | None:
        """YOLO seg's objects (:class:`edgecnn.tasks.Trackable`); None for a class map, which has no boxes
        (tracking passes it through untouched)."""
        return [i.object for i in self.instances] if self.boxed else None

    def track_records(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return list(data.get("objects", []))

    def keep(self, indices: Sequence[int]) -> Segmentation:
        """YOLO seg: the objects at ``indices`` (:class:`edgecnn.tasks.Keepable`), with the class map and
        the areas made again from their masks alone (:func:`paint`), so ``classes`` and the drawing never
        show a dropped object. A class map has no items: itself."""
        if not self.boxed or len(indices) == len(self.instances):
            return self
        instances = [self.instances[i] for i in indices]
        height, width = self.mask.shape
        mask = paint(instances, height, width)
        # The labels the decoder gave: each class's area's, else the object's own (a class whose pixels
        # were all under a dropped object had no area); NO_CLASS is the background.
        names = {min(i.object.id, NO_CLASS - 1): i.object.label for i in instances}
        names.update({a.id: a.label for a in self.areas})
        areas = [replace(a, label=names.get(a.id, a.label)) for a in _areas(mask, None, 0)]
        return Segmentation(areas, mask, instances, background=self.background, boxed=True)

    def detailed_json(self) -> dict[str, Any]:
        """:meth:`to_json` plus each mask as COCO RLE (``{"size": [h, w], "counts": "..."}``, pycocotools'
        ``mask.encode``): one per class, and one per YOLO object. Without pycocotools the masks are left out
        and ``masks`` says why."""
        out = self.to_json()
        try:
            from pycocotools import mask as coco_mask
        except ImportError:
            out["masks"] = "not written: RLE needs pycocotools (pip install 'edgecnn[eval]')"
            return out

        def rle(binary: np.ndarray) -> dict[str, Any]:
            encoded = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
            return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}

        for entry in out["classes"]:
            entry["rle"] = rle(self.mask == entry["id"])
        h, w = self.mask.shape
        for entry, instance in zip(out.get("objects", []), self.instances, strict=True):
            entry["rle"] = rle(instance.full_mask(h, w))
        return out

    def summary(self) -> str:
        if self.instances:
            return _detect.Detections([i.object for i in self.instances]).summary()
        found = self._found()
        if not found:
            return "nothing segmented"
        return ", ".join(f"{a.label} {a.fraction:.0%}" for a in found[:5])

    def line(self) -> str:
        return self.summary()

    def lines(self) -> list[str]:
        rows = [f"  {a.fraction:7.2%}  {a.id:>5}  {a.label}" for a in self.areas]
        if self.instances:
            rows += _detect.Detections([i.object for i in self.instances]).lines()
        return rows or ["  nothing segmented"]

    def draw(self, image: np.ndarray) -> None:
        """Each class (or object) blended in its colour over the frame; YOLO's boxes and labels on top."""
        if self.instances:
            for instance in reversed(self.instances):  # the best object ends on top
                x, y = instance.origin
                h, w = instance.mask.shape
                roi = image[y : y + h, x : x + w]
                colour = np.array(_detect._PALETTE[instance.object.id % len(_detect._PALETTE)], np.float32)
                roi[instance.mask] = (roi[instance.mask] * (1 - _ALPHA) + colour * _ALPHA).astype(np.uint8)
            _detect.Detections([i.object for i in self.instances]).draw(image)
            return
        ids = self.mask if self.mask.dtype == np.uint8 else np.minimum(self.mask, 255).astype(np.uint8)
        colours = cv2.LUT(cv2.merge([ids, ids, ids]), _PALETTE.reshape(256, 1, 3))
        blended = cv2.addWeighted(image, 1 - _ALPHA, colours, _ALPHA, 0)
        shown = ids != (self.background if self.background is not None else -1)
        image[shown] = blended[shown]


# --- frame <- input ----------------------------------------------------------------------------------


def frame_matrix(transform: Transform, out_width: int, out_height: int) -> np.ndarray:
    """The affine map from a frame pixel (column, row) to the matching position in a ``out_width`` x
    ``out_height`` map over the model's input, for ``cv2.warpAffine(..., WARP_INVERSE_MAP)``.

    Pixel centres: frame pixel u's centre u + 0.5 is input coordinate X = (u + 0.5 - offset) * scale + pad
    (the inverse of :meth:`Transform.to_frame`), which is map index X * out / in - 0.5.
    """
    rx = out_width / transform.input_width
    ry = out_height / transform.input_height
    sx, sy = transform.scale_x, transform.scale_y
    return np.array(
        [
            [sx * rx, 0.0, ((0.5 - transform.offset_x) * sx + transform.pad_x) * rx - 0.5],
            [0.0, sy * ry, ((0.5 - transform.offset_y) * sy + transform.pad_y) * ry - 0.5],
        ],
        dtype=np.float64,
    )


def to_frame(
    values: np.ndarray,
    transform: Transform,
    *,
    linear: bool = False,
    roi: tuple[int, int, int, int] | None = None,
    fill: float = 0,
    grid: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """A map over the input (``[h, w]``, any resolution) -> frame pixels (``roi`` x, y, w, h: that part
    only). Nearest for class ids, linear for logits; outside the map (letterbox padding) is ``fill``.
    ``values`` may be a crop at ``origin`` (column, row) of a map of ``grid`` (width, height) cells."""
    x, y, w, h = roi or (0, 0, transform.frame_width, transform.frame_height)
    gw, gh = grid or (values.shape[1], values.shape[0])
    matrix = frame_matrix(transform, gw, gh)
    matrix[:, 2] += matrix[:, :2] @ np.array([x, y], np.float64)  # the roi's (0, 0) is frame (x, y)
    matrix[:, 2] -= np.array(origin, np.float64)
    return cv2.warpAffine(
        values,
        matrix,
        (w, h),
        flags=(cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST) | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )


# --- which layout ------------------------------------------------------------------------------------


def _class_map(outputs: list[TensorInfo]) -> bool:
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return False
    _, h, w = outputs[0].shape
    return (
        outputs[0].shape[0] == 1 and h > 1 and w > 1 and outputs[0].dtype.upper() in (*OUTPUT_DTYPES, "UINT8")
    )


def _score_map(outputs: list[TensorInfo]) -> bool:
    if len(outputs) != 1 or len(outputs[0].shape) != 4 or outputs[0].dtype.upper() in OUTPUT_DTYPES:
        return False
    one, h, w, c = outputs[0].shape
    return one == 1 and h > 1 and w > 1 and c >= 2


def _yolo_seg(outputs: list[TensorInfo]) -> tuple[int, int] | None:
    """(index of the detection output, index of the prototypes) for YOLO seg's two outputs, else None."""
    if len(outputs) != 2:
        return None
    ranks = [len(o.shape) for o in outputs]
    if sorted(ranks) != [3, 4]:
        return None
    det, proto = (0, 1) if ranks[0] == 3 else (1, 0)
    if _detect._yolo_layout([outputs[det]]) not in ("yolo", "yolo-channels-last"):
        return None
    return det, proto


def claims(model_file: ModelFile, meta: ModelMetadata) -> bool:
    outputs = model_file.outputs
    # YOLOv5's full-integer [1, 25200, 85] is uint8 like a class map: its box count for the input tells it apart.
    class_map = _class_map(outputs) and not _detect.fits_yolo_grid(model_file)
    return class_map or _score_map(outputs) or _yolo_seg(outputs) is not None


def segment_labels(labels: list[str] | None) -> list[str] | None:
    """Labels up to the first blank line: Coral's ``pascal_voc_segmentation_labels.txt`` adds notes after one."""
    if labels and "" in labels:
        return labels[: labels.index("")]
    return labels


def paint(instances: Sequence[Instance], height: int, width: int) -> np.ndarray:
    """YOLO seg's class map: each instance's class id over its mask (ids past 254 as 254), worst object
    first so the best one's pixels win where masks overlap; :data:`NO_CLASS` elsewhere. One pass of box-
    sized assignments over a frame-sized fill: the decoder's map, and :meth:`Segmentation.keep`'s again
    for the objects it keeps (the masks are already made, so no logit is computed twice)."""
    class_map = np.full((height, width), NO_CLASS, np.uint8)
    for instance in reversed(instances):
        x, y = instance.origin
        h, w = instance.mask.shape
        region = class_map[y : y + h, x : x + w]
        region[instance.mask[: region.shape[0], : region.shape[1]]] = min(instance.object.id, NO_CLASS - 1)
    return class_map


def _areas(mask: np.ndarray, labels: list[str] | None, count: int) -> list[Area]:
    if mask.dtype == np.uint8:  # OpenCV's histogram: no 8-byte copy of every pixel, as bincount makes
        counts = cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(mask.ravel(), minlength=count)
    total = max(1, mask.size)
    present = np.flatnonzero(counts)
    order = present[np.argsort(-counts[present], kind="stable")]
    return [Area(int(i), _label(labels, int(i)), float(counts[i]) / total) for i in order]


def _label(labels: list[str] | None, class_id: int) -> str:
    if class_id == NO_CLASS and (labels is None or class_id >= len(labels)):
        return BACKGROUND
    return labels[class_id] if labels is not None and 0 <= class_id < len(labels) else str(class_id)


def _background(labels: list[str] | None) -> int | None:
    """The class that is nothing: one labelled ``background``, else class 0 when unlabelled (DeepLab)."""
    if labels:
        low = [label.strip().lower() for label in labels]
        return low.index(BACKGROUND) if BACKGROUND in low else None
    return 0


class _MapDecoder:
    task = NAME
    name = ""
    letterbox = False
    verb = "segmenting"
    decodes = True

    def __init__(self, model_file: ModelFile, interpreter: Any, labels: list[str] | None) -> None:
        self.where = str(model_file.path or "the model")
        self.labels = segment_labels(labels)
        self.background = _background(self.labels)
        self._details = interpreter.get_output_details()[0]
        self.class_count = 0

    def _result(self, ids: np.ndarray, transform: Transform, count: int) -> Segmentation:
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 65535):
            raise InvalidResult(
                f"{self.where} produced class ids {int(ids.min())}..{int(ids.max())}: no class map has those. "
                "Check its outputs with `edgecnn inspect`."
            )
        small = ids.astype(np.uint8 if int(ids.max(initial=0)) < 256 else np.uint16)
        mask = to_frame(small, transform)
        return Segmentation(_areas(mask, self.labels, count), mask, background=self.background)


class ClassMapDecoder(_MapDecoder):
    def __init__(self, model_file: ModelFile, interpreter: Any, labels: list[str] | None) -> None:
        super().__init__(model_file, interpreter, labels)
        self.name = f"class map {list(model_file.outputs[0].shape)} {model_file.outputs[0].dtype} (argmax in the model)"

    def decode(self, interpreter: Any, transform: Transform) -> Segmentation:
        ids = interpreter.get_tensor(self._details["index"])[0]
        return self._result(ids, transform, len(self.labels or []))


class ScoreMapDecoder(_MapDecoder):
    def __init__(self, model_file: ModelFile, interpreter: Any, labels: list[str] | None) -> None:
        super().__init__(model_file, interpreter, labels)
        shape = model_file.outputs[0].shape
        self.class_count = int(shape[-1])
        self.name = f"scores {list(shape)} {model_file.outputs[0].dtype} + argmax over {shape[-1]} classes"
        scale = self._details["quantization"][0]
        if scale < 0:
            raise ModelError(f"{self.where}: output quantization scale {scale:g} is negative: re-export it.")

    def decode(self, interpreter: Any, transform: Transform) -> Segmentation:
        scores = _detect._view(interpreter, self._details["index"])[0]
        if scores.dtype.kind == "f" and not np.isfinite(scores).all():
            del scores
            raise InvalidResult(
                f"{self.where} produced NaN or infinite scores: the model is broken. Re-export it."
            )
        ids = scores.argmax(axis=-1)  # a copy: the view is dropped below
        del scores
        return self._result(ids, transform, self.class_count)


class YoloSegDecoder(_detect.YoloDecoder):
    """Boxes, scores and NMS as the detector's; each kept object's mask from its coefficients."""

    verb = "segmenting"

    def __init__(
        self,
        model_file: ModelFile,
        interpreter: Any,
        labels: list[str] | None,
        options: DecodeOptions,
        det: int,
        proto: int,
    ) -> None:
        outputs = model_file.outputs
        proto_shape = outputs[proto].shape
        channels_first = proto_shape[1] < proto_shape[3]  # [1, M, Hp, Wp] (PyTorch order): rare in TFLite
        self.masks = int(proto_shape[1] if channels_first else proto_shape[3])
        layout = _detect._yolo_layout([outputs[det]])
        super().__init__(
            model_file,
            interpreter,
            labels,
            options,
            channels_last=layout == "yolo-channels-last",
            extra_rows=self.masks,
            output=det,
        )
        self.task = NAME
        self.channels_first = channels_first
        self._proto = proto  # its position among the outputs
        self._proto_details = interpreter.get_output_details()[proto]
        self._proto_index = self._proto_details["index"]
        self.background = None
        self.name = self.name.replace(
            "class scores)", f"class scores, {self.masks} mask coefficients) + prototypes {list(proto_shape)}"
        )

    def decode(self, interpreter: Any, transform: Transform) -> Segmentation:  # type: ignore[override]
        with np.errstate(all="ignore"):
            xyxy, scores, ids, columns, _normalised = self.select(interpreter, transform)
            found, rows = self._indexed_objects(xyxy, scores, ids, transform)
            raw = self.raw_output(interpreter)
            coefficients = self.dequantized(raw[4 + self.class_count :, columns[rows]]).T  # [n, M]: a copy
            del raw
            protos = _detect._view(interpreter, self._proto_index)[0]  # no copy: crops are copied below
            if self.channels_first:
                protos = protos.transpose(1, 2, 0)
            ph, pw, _m = protos.shape
            to_grid = frame_matrix(transform, pw, ph)
            crops = []
            for obj in found.objects:
                # The object's box on the prototype grid, a cell of margin for bilinear sampling: only
                # those cells' logits are computed (Ultralytics computes all 160x160 and crops after).
                (gx1, gx2), (gy1, gy2) = (
                    to_grid[i, i] * np.array(obj.box[i::2]) + to_grid[i, 2] for i in (0, 1)
                )
                cx1, cy1 = max(0, int(np.floor(gx1)) - 1), max(0, int(np.floor(gy1)) - 1)
                cx2, cy2 = min(pw, int(np.ceil(gx2)) + 2), min(ph, int(np.ceil(gy2)) + 2)
                crops.append(((cx1, cy1), self._dequantized_protos(protos[cy1:cy2, cx1:cx2])))
            del protos
            instances = []
            for obj, coefficient, (origin, crop) in zip(found.objects, coefficients, crops, strict=True):
                x1, y1 = int(np.floor(obj.box[0])), int(np.floor(obj.box[1]))
                x2, y2 = int(np.ceil(obj.box[2])), int(np.ceil(obj.box[3]))
                w, h = max(1, x2 - x1), max(1, y2 - y1)
                logit = (
                    (crop @ coefficient).astype(np.float32) if crop.size else np.full((1, 1), -1, np.float32)
                )
                roi = (x1, y1, w, h)
                mask = (
                    to_frame(logit, transform, linear=True, roi=roi, fill=-1, grid=(pw, ph), origin=origin)
                    > 0
                )
                # Crop to the box (Ultralytics' crop_mask): pixels whose centre is inside it.
                cols = np.arange(x1, x1 + w) + 0.5
                lines = np.arange(y1, y1 + h) + 0.5
                mask &= ((cols >= obj.box[0]) & (cols <= obj.box[2]))[None, :]
                mask &= ((lines >= obj.box[1]) & (lines <= obj.box[3]))[:, None]
                instances.append(Instance(obj, mask, (x1, y1)))
        class_map = paint(instances, transform.frame_height, transform.frame_width)
        labels = self.labels
        return Segmentation(
            _areas(class_map, labels, 0), class_map, instances, background=NO_CLASS, boxed=True
        )

    def _dequantized_protos(self, crop: np.ndarray) -> np.ndarray:
        """A crop of the prototypes as float32 (a copy, whatever the output's dtype)."""
        scale, zero_point = self._proto_details["quantization"]
        if np.issubdtype(crop.dtype, np.integer) and scale:
            return dequantize(crop, scale, zero_point)
        return crop.astype(np.float32)


def decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions,
) -> _MapDecoder | YoloSegDecoder:
    outputs = model_file.outputs
    if _class_map(outputs) or _score_map(outputs):
        maps: _MapDecoder = (ClassMapDecoder if _class_map(outputs) else ScoreMapDecoder)(
            model_file, interpreter, labels
        )
        if options.iou is not None or options.agnostic or options.classes:
            log.warning(
                "--iou, --agnostic and --classes do not apply to %s (%s): ignored.", maps.where, maps.name
            )
        return maps
    pair = _yolo_seg(outputs)
    if pair is not None:
        dec = YoloSegDecoder(model_file, interpreter, labels, options, *pair)
        if meta.letterbox is not None:
            dec.letterbox = bool(meta.letterbox)
        return dec
    raise ModelError(
        f"{model_file.path or 'the model'} is declared a segmentation model but its outputs "
        f"{shapes(outputs)} fit no segmentation layout edgecnn reads (class map [1, H, W]; scores "
        "[1, H, W, C]; YOLO seg [1, 4+nc+M, N] with prototypes [1, Hp, Wp, M]). Re-export it in one of these."
    )


def evaluator() -> Any:
    """How ``edgecnn eval`` measures segment models: mean IoU and pixel accuracy on a folder of label masks (:mod:`edgecnn.eval.segment`)."""
    return stage_evaluator("edgecnn.eval.segment")
