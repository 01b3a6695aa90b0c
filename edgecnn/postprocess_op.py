"""The options of SSD's ``TFLite_Detection_PostProcess`` op, read and checked before any interpreter sees them.

The op keeps its settings in the operator's custom options, a FlexBuffer map (``num_classes``,
``max_detections``, the box-decoding scales, the NMS thresholds). The runtime's kernel reads that map
without checking it: options that are missing (an op written without them) crash the process with
SIGSEGV before the first frame, a ``num_classes`` larger than the class-prediction tensor reads past its
end, a huge ``max_detections`` sizes outputs by it. So :func:`postprocess_problem` is part of the
structural check every command runs (:func:`edgecnn.modelfile.structural_problem`): such a model is one
``edgecnn: error:`` line in predict, run, bench, eval, inspect and ``service install`` alike.

It is the only custom op whose options the CPU runtime reads (``edgetpu-custom-op``'s are the Edge TPU
compiler's opaque bytes, handed to the delegate as they are); builtin ops' options are typed tables the
schema's object API has already parsed. The map is read with ``flatbuffers.flexbuffers`` (by key, with a
bounded binary search: never a decode of the whole map, which a hostile length could make huge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from flatbuffers import flexbuffers

from edgecnn.tasks.options import MAX_DETECTIONS

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
# The op's outputs hold max_detections * max_classes_per_detection rows; Coral's and TF's SSDs use 10..100.
# Far more is no detector a Pi runs, and a corrupt value would size tensors by it: MAX_DETECTIONS, the
# bound of --max-detections too (edgecnn.tasks.options).
_INTS = ("num_classes", "max_detections", "max_classes_per_detection")
_FLOATS = ("nms_score_threshold", "nms_iou_threshold", "y_scale", "x_scale", "h_scale", "w_scale")
_DETECTIONS_PER_CLASS = 100  # the kernel's default when the key is absent


@dataclass(frozen=True)
class PostprocessOptions:
    num_classes: int  # real classes, background not counted
    max_detections: int
    max_classes_per_detection: int
    detections_per_class: int
    use_regular_nms: bool
    nms_score_threshold: float
    nms_iou_threshold: float
    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float


class OptionsProblem(ValueError):
    """What is wrong with the options, as the end of a sentence (the caller names the op)."""


def _number(root: Any, key: str, *, integer: bool) -> float:
    try:
        ref = root[key]
    except KeyError:
        raise OptionsProblem(f"has no {key!r} option") from None
    if ref.IsBool or not (ref.IsInt or ref.IsFloat):
        raise OptionsProblem(f"option {key!r} is not a number")
    if integer:
        if not ref.IsInt:
            raise OptionsProblem(f"option {key!r} is {ref.AsFloat:g}, not a whole number")
        return int(ref.AsInt)
    return float(ref.AsFloat)


def read_options(custom_options: bytes) -> PostprocessOptions:
    """The op's options, or :class:`OptionsProblem` saying what is missing or out of range."""
    if not custom_options:
        raise OptionsProblem(
            "has no options (num_classes, max_detections, scales): the runtime would crash on it"
        )
    try:
        root = flexbuffers.GetRoot(custom_options)
        if not root.IsMap:
            raise OptionsProblem("options are not a FlexBuffer map")
        table = root.AsMap
        values = {key: _number(table, key, integer=True) for key in _INTS}
        values |= {key: _number(table, key, integer=False) for key in _FLOATS}
        try:
            values["detections_per_class"] = _number(table, "detections_per_class", integer=True)
        except OptionsProblem as exc:
            if "has no" not in str(exc):
                raise
            values["detections_per_class"] = _DETECTIONS_PER_CLASS
        try:
            regular = table["use_regular_nms"]
            use_regular = bool(regular.AsBool) if (regular.IsBool or regular.IsInt) else False
        except KeyError:
            use_regular = False
    except OptionsProblem:
        raise
    except Exception as exc:  # flexbuffers raises struct/index/unicode errors on damaged bytes
        raise OptionsProblem(f"options are not a readable FlexBuffer map ({type(exc).__name__})") from None
    options = PostprocessOptions(use_regular_nms=use_regular, **values)  # type: ignore[arg-type]
    _check_ranges(options)
    return options


def _check_ranges(o: PostprocessOptions) -> None:
    if o.num_classes < 1:
        raise OptionsProblem(f"option num_classes is {o.num_classes}, it must be at least 1")
    if not 1 <= o.max_detections <= MAX_DETECTIONS:
        raise OptionsProblem(f"option max_detections is {o.max_detections}, it must be 1..{MAX_DETECTIONS}")
    if not 1 <= o.max_classes_per_detection <= o.num_classes:
        raise OptionsProblem(
            f"option max_classes_per_detection is {o.max_classes_per_detection}, it must be 1..num_classes "
            f"({o.num_classes})"
        )
    if not 1 <= o.detections_per_class <= MAX_DETECTIONS:
        raise OptionsProblem(
            f"option detections_per_class is {o.detections_per_class}, it must be 1..{MAX_DETECTIONS}"
        )
    for key in ("y_scale", "x_scale", "h_scale", "w_scale"):
        value = getattr(o, key)
        # The kernel reads a float32: 1e300 is inf there, 1e-300 is 0.
        as_read = float(np.float32(value)) if math.isfinite(value) and abs(value) < 3.4e38 else math.inf
        if not (math.isfinite(as_read) and as_read > 0):
            raise OptionsProblem(f"option {key} is {value:g}, it must be a positive number")
    for key in ("nms_score_threshold", "nms_iou_threshold"):
        value = getattr(o, key)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise OptionsProblem(f"option {key} is {value:g}, it must be between 0 and 1")


def _shape(tensors: list[Any], index: int) -> list[int]:
    shape = tensors[index].shape
    return [int(d) for d in shape] if shape is not None else []


def op_problem(op: Any, tensors: list[Any]) -> str | None:
    """What is wrong with one postprocess operator (its options, its inputs' shapes against them), or None.

    Tensor indices were checked before (see :func:`edgecnn.modelfile.structural_problem`).
    """
    inputs = [int(i) for i in op.inputs] if op.inputs is not None else []
    outputs = [int(i) for i in op.outputs] if op.outputs is not None else []
    if len(inputs) != 3 or len(outputs) != 4 or min(inputs + outputs) < 0:
        return (
            f"has {len(inputs)} inputs and {len(outputs)} outputs; it takes box encodings, class predictions "
            "and anchors, and gives boxes, classes, scores and a count"
        )
    raw = op.customOptions
    data = bytes(np.asarray(raw, dtype=np.uint8).tobytes()) if raw is not None else b""
    try:
        options = read_options(data)
    except OptionsProblem as exc:
        return str(exc)
    boxes, classes, anchors = (_shape(tensors, i) for i in inputs)
    if len(classes) != 3 or len(boxes) != 3 or boxes[-1] < 4:
        return f"class predictions {classes} and box encodings {boxes} are not [1, anchors, N] tensors"
    if classes[1] != boxes[1] or (len(anchors) == 2 and anchors[0] != boxes[1]):
        return f"box encodings {boxes}, class predictions {classes} and anchors {anchors} disagree on the anchors"
    if classes[2] not in (options.num_classes, options.num_classes + 1):
        return (
            f"option num_classes is {options.num_classes} but the class predictions {classes} score "
            f"{classes[2]} (num_classes, or one more for the background)"
        )
    return None


def first_options(model: Any, is_postprocess: Any) -> PostprocessOptions | None:
    """The options of the model's first postprocess op (``is_postprocess(op)`` picks it), or None."""
    for graph in model.subgraphs or []:
        for op in graph.operators or []:
            if is_postprocess(op):
                raw = op.customOptions
                try:
                    return read_options(
                        bytes(np.asarray(raw, dtype=np.uint8).tobytes()) if raw is not None else b""
                    )
                except OptionsProblem:
                    return None
    return None
