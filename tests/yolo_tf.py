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


def yolov8_like_tflite(seed: int = 0, *, int8: bool = True) -> bytes:
    """The export, full-integer (``int8``) or float32 with the same weights (the reference of the decode)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    nc = len(CLASSES)
    channels = 4 * REG_MAX + nc
    box_bias = np.tile(np.where(np.arange(REG_MAX) < 2, 3.0, -3.0), 4)  # ~0.5-1 cell from the anchor
    bias = np.concatenate([box_bias, np.full(nc, -1.0)]).astype(np.float32)

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
        h = SIZE // s
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(h) + 0.5, indexing="ij")
        anchors.append(np.stack([xs.ravel(), ys.ravel()]))
        stride_row.append(np.full(h * h, s))
    anchor = tf.constant(np.concatenate(anchors, axis=1)[None].astype(np.float32))  # [1, 2, N]
    stride = tf.constant(np.concatenate(stride_row)[None, None].astype(np.float32))  # [1, 1, N]
    project = tf.constant(np.arange(REG_MAX, dtype=np.float32).reshape(1, 1, REG_MAX, 1))

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
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
        xywh = tf.concat([(x1y1 + x2y2) / 2, x2y2 - x1y1], axis=1) * stride / SIZE
        scores = tf.sigmoid(cat[:, 4 * REG_MAX :])
        return tf.concat([xywh, scores], axis=1)

    def representative() -> Any:
        for _ in range(40):
            yield [rng.uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([yolo.get_concrete_function()], yolo)
    if not int8:
        return with_ultralytics_metadata(converter.convert(), imgsz=SIZE, names=CLASSES)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return with_ultralytics_metadata(converter.convert(), imgsz=SIZE, names=CLASSES)
