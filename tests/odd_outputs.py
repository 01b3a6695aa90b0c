"""Models whose outputs cannot be right, and SSDs whose postprocess op's options are damaged.

:func:`fixed_output_tflite` builds a tiny float TFLite model (input ``[1, 32, 32, 3]``) whose one output is
a given array: NaN, inf, scores of 34, inverted boxes, classes outside the model's, all zeros. With
``bright`` it adds that array when the input is bright (mean over 0.5), so a run over dark and bright
frames has odd results on some frames only. :func:`with_postprocess_options` rewrites (or strips) the
``TFLite_Detection_PostProcess`` op's FlexBuffer options of a real SSD through the schema's object API;
:func:`swap_ssd_classes_and_scores` swaps the op's class and score outputs in the graph's output list.
TensorFlow is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

SIZE = 32
POSTPROCESS = b"TFLite_Detection_PostProcess"
NC = 3  # classes of the YOLO-shaped and end-to-end models below
ODD_OPTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    "no options": lambda o: None,
    "num_classes 0": lambda o: {**o, "num_classes": 0},
    "num_classes past the class predictions": lambda o: {**o, "num_classes": 9},
    "huge max_detections": lambda o: {**o, "max_detections": 2**31 - 1},
    "NaN y_scale": lambda o: {**o, "y_scale": float("nan")},
    "negative h_scale": lambda o: {**o, "h_scale": -5.0},
    "nms_iou_threshold 1.5": lambda o: {**o, "nms_iou_threshold": 1.5},
    "no num_classes": lambda o: {k: v for k, v in o.items() if k != "num_classes"},
    "num_classes a string": lambda o: {**o, "num_classes": "three"},
    "max_classes_per_detection 0": lambda o: {**o, "max_classes_per_detection": 0},
}
# What the one error line says for each (a part of it).
ODD_OPTIONS_MESSAGE = {
    "no options": "has no options",
    "num_classes 0": "num_classes is 0",
    "num_classes past the class predictions": "num_classes is 9 but the class predictions",
    "huge max_detections": "max_detections is 2147483647",
    "NaN y_scale": "y_scale is nan",
    "negative h_scale": "h_scale is -5",
    "nms_iou_threshold 1.5": "nms_iou_threshold is 1.5",
    "no num_classes": "has no 'num_classes' option",
    "num_classes a string": "'num_classes' is not a number",
    "max_classes_per_detection 0": "max_classes_per_detection is 0",
}


def _pack(model: Any, size: int) -> bytes:
    builder = flatbuffers.Builder(size + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _postprocess_ops(model: Any) -> list[Any]:
    return [
        op
        for op in model.subgraphs[0].operators
        if model.operatorCodes[op.opcodeIndex].customCode == POSTPROCESS
    ]


def postprocess_options(data: bytes) -> dict[str, Any]:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    return flexbuffers.Loads(bytes(_postprocess_ops(model)[0].customOptions))  # type: ignore[no-any-return]


def with_postprocess_options(
    data: bytes, edit: Callable[[dict[str, Any]], dict[str, Any] | bytes | None]
) -> bytes:
    """``data`` (an SSD) with its postprocess op's options replaced by ``edit(options)``: a dict is encoded
    as a FlexBuffer map, bytes are used as they are, None strips them."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    for op in _postprocess_ops(model):
        options = edit(flexbuffers.Loads(bytes(op.customOptions)))
        raw = options if isinstance(options, bytes) or options is None else bytes(flexbuffers.Dumps(options))
        op.customOptions = None if raw is None else np.frombuffer(raw, np.uint8)
    return _pack(model, len(data))


def swap_ssd_classes_and_scores(data: bytes) -> bytes:
    """A TF1-order SSD (boxes, classes, scores, count) with its class and score outputs swapped."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    outputs = list(model.subgraphs[0].outputs)
    outputs[1], outputs[2] = outputs[2], outputs[1]
    model.subgraphs[0].outputs = np.asarray(outputs, dtype=np.int32)
    model.signatureDefs = []
    return _pack(model, len(data))


def fixed_output_tflite(values: np.ndarray, *, bright: np.ndarray | None = None) -> bytes:
    """A float model whose one output is ``values`` (plus ``bright`` when the input's mean is over 0.5)."""
    import tensorflow as tf

    values = values.astype(np.float32)
    # The converter stores an infinite constant as the largest float32: infinities are made at run time
    # (sign * 3e38 * (2 + m * m) overflows), NaN constants survive as they are.
    signs = np.where(np.isinf(values), np.sign(values), 0).astype(np.float32)
    base = tf.constant(np.where(np.isinf(values), 0, values).astype(np.float32))
    infinities = tf.constant(signs * np.float32(3e38))
    extra = tf.constant((np.zeros_like(values) if bright is None else bright).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    def fixed(x: Any) -> Any:
        m = tf.reduce_mean(x)
        lit = tf.cast(m > 0.5, tf.float32)
        return base + m * 0.0 + lit * extra + infinities * (2.0 + m * m)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed.get_concrete_function()], tf.Module())
    return bytes(converter.convert())


def yolo_values(**cells: float) -> np.ndarray:
    """``[1, 4 + NC, 144]`` with one object in column 0: a box in the middle, class 0 at 0.9; ``cells``
    overrides rows of column 0 by name (cx, cy, w, h, s0, s1, s2)."""
    values = np.zeros((1, 4 + NC, 144), np.float32)
    column = {"cx": 0.5, "cy": 0.5, "w": 0.3, "h": 0.3, "s0": 0.9, "s1": 0.05, "s2": 0.05} | cells
    values[0, :, 0] = [column[k] for k in ("cx", "cy", "w", "h", "s0", "s1", "s2")]
    return values


def e2e_values(**cells: float) -> np.ndarray:
    """``[1, 20, 6]`` (x1, y1, x2, y2, score, class) with one object in row 0, the other rows padding."""
    values = np.zeros((1, 20, 6), np.float32)
    row = {"x1": 0.2, "y1": 0.2, "x2": 0.6, "y2": 0.6, "score": 0.9, "cls": 1.0} | cells
    values[0, 0] = [row[k] for k in ("x1", "y1", "x2", "y2", "score", "cls")]
    return values
