"""A small full-integer TFLite built like Ultralytics' YOLOv8 detect export, with TensorFlow (no download).

Three head maps ``[1, H, W, 64+nc]`` at strides 8, 16 and 32 from a 64x64 input, then the export's head: per
scale TRANSPOSE to channels first and RESHAPE to ``[1, 64+nc, H*W]``, CONCATENATION, the DFL (softmax over 16
bins per side, its expectation), anchors at the cell centres, boxes as (cx, cy, w, h) normalised to the input,
class sigmoid, CONCATENATION to ``[1, 4+nc, N]``. The weights are seeded, not trained: the box biases keep the
distances near one cell and the class weights vary the scores from cell to cell, so a handful of boxes pass
a threshold on any image. Ultralytics' ``metadata.json`` is appended, as its export does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.detectors import with_ultralytics_metadata

SIZE = 64
CLASSES = ("square", "circle", "triangle")
REG_MAX = 16


def yolov8_like_tflite(
    seed: int = 0,
    *,
    int8: bool = True,
    size: int = SIZE,
    class_bias: float = -1.0,
    samples: int = 40,
    names: tuple[str, ...] = CLASSES,
) -> bytes:
    """The export, full-integer (``int8``) or float32 with the same weights (the reference of the decode).

    ``size`` is the input's side (a multiple of 32; 640 for benchmarks/detect_postprocess.py), ``class_bias``
    the class logits' bias (lower: fewer cells pass a threshold), ``samples`` the calibration images,
    ``names`` the classes (80 for a COCO-sized head)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    nc = len(names)
    channels = 4 * REG_MAX + nc
    box_bias = np.tile(np.where(np.arange(REG_MAX) < 2, 3.0, -3.0), 4)  # ~0.5-1 cell from the anchor
    bias = np.concatenate([box_bias, np.full(nc, class_bias)]).astype(np.float32)

    def conv_weights(cin: int) -> tuple[Any, Any]:
        w = rng.normal(0, 0.6, (1, 1, cin, channels)).astype(np.float32)
        w[..., : 4 * REG_MAX] *= 0.02
        return tf.constant(w), tf.constant(bias)

    stem = tf.constant(rng.normal(0, 0.5, (8, 8, 3, 8)).astype(np.float32))
    down = tf.constant(rng.normal(0, 0.5, (2, 2, 8, 8)).astype(np.float32))
    heads_w = [conv_weights(8) for _ in range(3)]
    strides = (8, 16, 32)
    anchors, stride_row = [], []
    for s in strides:
        h = size // s
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(h) + 0.5, indexing="ij")
        anchors.append(np.stack([xs.ravel(), ys.ravel()]))
        stride_row.append(np.full(h * h, s))
    anchor = tf.constant(np.concatenate(anchors, axis=1)[None].astype(np.float32))  # [1, 2, N]
    stride = tf.constant(np.concatenate(stride_row)[None, None].astype(np.float32))  # [1, 1, N]
    project = tf.constant(np.arange(REG_MAX, dtype=np.float32).reshape(1, 1, REG_MAX, 1))

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    def yolo(x: Any) -> Any:
        f = tf.nn.relu(tf.nn.conv2d(x, stem, 8, "VALID"))  # 8x8
        maps = [f]
        for _ in range(2):
            f = tf.nn.relu(tf.nn.conv2d(f, down, 2, "VALID"))
            maps.append(f)  # 4x4, 2x2
        flat = []
        for m, (w, b) in zip(maps, heads_w, strict=True):
            head = tf.nn.conv2d(m, w, 1, "VALID") + b  # [1, H, W, 64+nc]
            h = int(head.shape[1])
            flat.append(tf.reshape(tf.transpose(head, [0, 3, 1, 2]), [1, channels, h * h]))
        cat = tf.concat(flat, axis=2)
        n = int(cat.shape[2])
        box = tf.reshape(cat[:, : 4 * REG_MAX], [1, 4, REG_MAX, n])
        box = tf.nn.softmax(tf.transpose(box, [0, 1, 3, 2]), axis=-1)  # [1, 4, N, 16]
        dist = tf.reshape(tf.matmul(box, project[0]), [1, 4, n])  # expectation over the bins
        lt, rb = dist[:, :2], dist[:, 2:]
        x1y1, x2y2 = anchor - lt, anchor + rb
        xywh = tf.concat([(x1y1 + x2y2) / 2, x2y2 - x1y1], axis=1) * stride / size
        scores = tf.sigmoid(cat[:, 4 * REG_MAX :])
        return tf.concat([xywh, scores], axis=1)

    def representative() -> Any:
        for _ in range(samples):
            yield [rng.uniform(0, 1, (1, size, size, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([yolo.get_concrete_function()], yolo)
    if not int8:
        return with_ultralytics_metadata(converter.convert(), imgsz=size, names=names)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return with_ultralytics_metadata(converter.convert(), imgsz=size, names=names)


# Anchors of the YOLOv5-style model, (w, h) pairs in input pixels per stride: not YOLOv5's defaults (those are
# for 640 px), so the cut must read them from the export's constants.
V5_ANCHORS = (
    (6.0, 8.0, 12.0, 10.0, 9.0, 16.0),
    (16.0, 20.0, 24.0, 14.0, 20.0, 30.0),
    (30.0, 28.0, 44.0, 40.0, 56.0, 60.0),
)


def yolov5_like_tflite(seed: int = 0, *, int8: bool = True, sigmoid_first: bool = False) -> bytes:
    """A YOLOv5 TFLite export's head (its ``models/tf.py`` TFDetect), full-integer or float32, same weights.

    Per stride a ``[1, H, W, 3*(5+nc)]`` conv, RESHAPE to ``[1, H*W, 3, 5+nc]``, sigmoid of each slice, centre
    ``(2 s + grid - 0.5) * stride``, size ``s^2 * (4 * anchor)``, both divided by the input size,
    CONCATENATION with objectness and classes, RESHAPE to ``[1, 3*H*W, 5+nc]``, CONCATENATION of the scales.
    The box weights are small, so boxes stay near their anchors; objectness and class logits vary by cell.
    ``sigmoid_first``: the sigmoid of the whole map before the RESHAPE, as older YOLOv5 exports have it (the
    same function).
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    nc, na = len(CLASSES), 3
    no = 5 + nc
    stem = tf.constant(rng.normal(0, 0.5, (8, 8, 3, 8)).astype(np.float32))
    down = tf.constant(rng.normal(0, 0.5, (2, 2, 8, 8)).astype(np.float32))
    weights = []
    for _ in range(3):
        w = rng.normal(0, 0.6, (1, 1, 8, na * no)).astype(np.float32).reshape(1, 1, 8, na, no)
        w[..., :4] *= 0.1
        b = np.zeros((na, no), np.float32)
        b[:, 4] = -1.0  # objectness
        weights.append((tf.constant(w.reshape(1, 1, 8, na * no)), tf.constant(b.reshape(-1))))
    strides = (8, 16, 32)

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    def yolo(x: Any) -> Any:
        f = tf.nn.relu(tf.nn.conv2d(x, stem, 8, "VALID"))
        maps = [f]
        for _ in range(2):
            f = tf.nn.relu(tf.nn.conv2d(f, down, 2, "VALID"))
            maps.append(f)
        outs = []
        for m, (w, b), stride, anchors in zip(maps, weights, strides, V5_ANCHORS, strict=True):
            h = int(m.shape[1])
            logits = tf.nn.conv2d(m, w, 1, "VALID") + b
            y = tf.reshape(tf.sigmoid(logits) if sigmoid_first else logits, [1, h * h, na, no])
            sigmoid = tf.identity if sigmoid_first else tf.sigmoid
            ys, xs = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
            grid = np.stack([xs.ravel(), ys.ravel()], -1).reshape(1, h * h, 1, 2).astype(np.float32) - 0.5
            anchor_grid = (np.asarray(anchors, np.float32).reshape(1, 1, na, 2) * 4).astype(np.float32)
            # sigmoid per slice, after the RESHAPE, as the export does
            xy = (sigmoid(y[..., 0:2]) * 2 + grid) * stride
            wh = sigmoid(y[..., 2:4]) ** 2 * anchor_grid
            size = tf.constant([[SIZE, SIZE]], dtype=tf.float32)
            y = tf.concat([xy / size, wh / size, sigmoid(y[..., 4:])], -1)
            outs.append(tf.reshape(y, [1, h * h * na, no]))
        return tf.concat(outs, axis=1)

    def representative() -> Any:
        for _ in range(40):
            yield [rng.uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([yolo.get_concrete_function()], yolo)
    if not int8:
        return bytes(converter.convert())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8  # as YOLOv5's export
    return bytes(converter.convert())


def yolov5_rule(output: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLOv5's own reading of its ``[N, 5+nc]`` output (float): boxes xyxy in input pixels, score =
    objectness x class, the best class; rows below ``min_score`` dropped (before NMS)."""
    conf = output[:, 5:] * output[:, 4:5]
    ids = conf.argmax(axis=1)
    scores = conf[np.arange(len(ids)), ids]
    keep = scores >= min_score
    xy, wh = output[keep, :2] * SIZE, output[keep, 2:4] * SIZE
    return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1), scores[keep], ids[keep]
