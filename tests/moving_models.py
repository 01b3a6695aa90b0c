"""Real TFLite YOLO pose and YOLO seg models whose boxes follow what the input shows, built without TensorFlow.

A constant model (tests/const_models.py) gives the same box every frame: nothing moves, nothing is tracked.
These graphs compute their head from the image with a few builtin ops, so a person walking through a
generated video walks through the model's outputs too: for each horizontal band of the input, the box is
centred on the band's bright pixels (the centroid: ``SUM(image * x) / SUM(image)``), with a fixed size and
score, and (pose) 17 keypoints at fixed offsets from that centre. ``FULLY_CONNECTED`` turns the (cx, cy)
of each band into its column of a YOLO head ``[1, 4+nc+extra, N]`` (normalised, as Ultralytics' TFLite
export writes it); the other columns score 0. YOLO seg adds constant prototypes, positive everywhere, so
each object's mask is its box.

A band must always show something bright on a black background (the input is ``pixel / 255``): the frames of
:func:`walking_frames` keep one figure in each band, walking left to right in the top band and right to
left in the bottom one.
"""

from __future__ import annotations

from typing import Any

import ai_edge_litert.schema_py_generated as schema
import cv2
import flatbuffers
import numpy as np

from tests.const_models import with_ultralytics_metadata

INPUT = 64  # the model's input, square: frames of a square size are scaled, never padded
BOX = (10 / INPUT, 24 / INPUT)  # the figures' width and height in the input, normalised
SCORE = 0.9
COLUMNS = 64  # candidates in the head (more than its rows, as every export has)
POSE_ROWS = 4 + 1 + 17 * 3
SEG_MASKS = 4
# Keypoint offsets from the centre, fractions of the box (a standing figure: head up, ankles at the bottom).
_KPT_DY = np.linspace(-0.45, 0.5, 17)
_KPT_DX = np.tile([-0.3, 0.3], 9)[:17]


class _Graph:
    """A one-subgraph float32 model assembled op by op (the schema's object API)."""

    _CODES = ("SUM", "MUL", "ADD", "DIV", "RESHAPE", "CONCATENATION", "FULLY_CONNECTED")

    def __init__(self) -> None:
        self.buffers = [schema.BufferT()]
        self.tensors: list[Any] = []
        self.ops: list[Any] = []

    def tensor(self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = (
            schema.TensorType.INT32
            if data is not None and data.dtype == np.int32
            else schema.TensorType.FLOAT32
        )
        t.buffer = 0
        if data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, array: np.ndarray) -> int:
        return self.tensor(name, array.shape, array)

    def op(self, code: str, inputs: list[int], shape: tuple[int, ...], options: Any = None) -> int:
        out = self.tensor(f"{code.lower()}{len(self.ops)}", shape)
        op = schema.OperatorT()
        op.opcodeIndex = self._CODES.index(code)
        op.inputs = inputs
        op.outputs = [out]
        if options is not None:
            op.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.ops.append(op)
        return out

    def reshape(self, x: int, shape: tuple[int, ...]) -> int:
        return self.op("RESHAPE", [x, self.const(f"shape{len(self.ops)}", np.array(shape, np.int32))], shape)

    def concat(self, xs: list[int], axis: int, shape: tuple[int, ...]) -> int:
        options = schema.ConcatenationOptionsT()
        options.axis = axis
        return self.op("CONCATENATION", xs, shape, options)

    def total(self, x: int) -> int:
        options = schema.ReducerOptionsT()
        options.keepDims = True
        return self.op(
            "SUM",
            [x, self.const(f"axes{len(self.ops)}", np.array([1, 2, 3], np.int32))],
            (1, 1, 1, 1),
            options,
        )

    def build(self, inputs: list[int], outputs: list[int]) -> bytes:
        model = schema.ModelT()
        model.version = 3
        model.description = "edgecnn test: boxes that follow the image"
        codes = []
        for name in self._CODES:
            code = schema.OperatorCodeT()
            value = getattr(schema.BuiltinOperator, name)
            code.builtinCode = value
            code.deprecatedBuiltinCode = value  # every op here is below 127, where both fields agree
            code.version = 1
            codes.append(code)
        model.operatorCodes = codes
        graph = schema.SubGraphT()
        graph.tensors = self.tensors
        graph.inputs = inputs
        graph.outputs = outputs
        graph.operators = self.ops
        graph.name = "main"
        model.subgraphs = [graph]
        model.buffers = self.buffers
        builder = flatbuffers.Builder(4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _column_rows(rows: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """FULLY_CONNECTED's weights [rows, 2] and bias [rows]: a head column from (cx, cy)."""
    weights = np.zeros((rows, 2), np.float32)
    bias = np.zeros(rows, np.float32)
    if kind == "movenet":  # (y, x, score) per keypoint
        weights[0::3, 1] = 1
        bias[0::3] = _KPT_DY * BOX[1]
        weights[1::3, 0] = 1
        bias[1::3] = _KPT_DX * BOX[0]
        bias[2::3] = 0.9
        return weights, bias
    weights[0, 0] = weights[1, 1] = 1  # cx, cy
    bias[2], bias[3] = BOX
    bias[4] = SCORE  # one class
    if kind == "pose":
        weights[5::3, 0] = 1
        bias[5::3] = _KPT_DX * BOX[0]
        weights[6::3, 1] = 1
        bias[6::3] = _KPT_DY * BOX[1]
        bias[7::3] = 0.9  # visibility
    else:
        bias[5:] = 1.0  # mask coefficients: the prototypes' sum, positive everywhere
    return weights, bias


def following_model(kind: str, bands: int = 2) -> bytes:
    """A YOLO ``pose`` or ``seg`` model (with Ultralytics' metadata) on a ``[1, 64, 64, 3]`` float input:
    one object per horizontal band of the input, centred on that band's bright pixels. ``movenet``: a
    MoveNet single-pose output ``[1, 1, 17, 3]`` for one band (the whole input)."""
    if kind == "movenet":
        bands = 1
    rows = {"pose": POSE_ROWS, "movenet": 17 * 3}.get(kind, 4 + 1 + SEG_MASKS)
    g = _Graph()
    image = g.tensor("image", (1, INPUT, INPUT, 3))
    ys, xs = np.mgrid[0:INPUT, 0:INPUT].astype(np.float32) + 0.5
    weights, bias = _column_rows(rows, kind)
    fc_weights, fc_bias = g.const("fc_weights", weights), g.const("fc_bias", bias)
    columns = []
    height = INPUT // bands
    for band in range(bands):
        inside = np.zeros((INPUT, INPUT), np.float32)
        inside[band * height : (band + 1) * height] = 1
        maps = [
            np.repeat((m * inside)[None, :, :, None], 3, axis=3) for m in (inside, xs / INPUT, ys / INPUT)
        ]
        weighted = [
            g.op("MUL", [image, g.const(f"map{band}_{i}", m)], (1, INPUT, INPUT, 3))
            for i, m in enumerate(maps)
        ]
        mass, sx, sy = (g.total(w) for w in weighted)
        mass = g.op(
            "ADD", [mass, g.const(f"eps{band}", np.full((1, 1, 1, 1), 1e-6, np.float32))], (1, 1, 1, 1)
        )
        cx, cy = (g.reshape(g.op("DIV", [s, mass], (1, 1, 1, 1)), (1, 1)) for s in (sx, sy))
        centre = g.concat([cx, cy], 1, (1, 2))
        column = g.op(
            "FULLY_CONNECTED", [centre, fc_weights, fc_bias], (1, rows), schema.FullyConnectedOptionsT()
        )
        columns.append(g.reshape(column, (1, rows, 1)))
    if kind == "movenet":
        return g.build([image], [g.reshape(columns[0], (1, 1, 17, 3))])
    rest = g.const("empty", np.zeros((1, rows, COLUMNS - bands), np.float32))
    head = g.concat([*columns, rest], 2, (1, rows, COLUMNS))
    outputs = [head]
    if kind != "pose":
        protos = np.full((1, 16, 16, SEG_MASKS), 1.0, np.float32)
        flat = g.const("protos_flat", protos.reshape(-1))
        outputs.append(g.reshape(flat, protos.shape))
    data = g.build([image], outputs)
    if kind == "pose":
        meta: dict[str, Any] = {"task": "pose", "names": {"0": "person"}, "kpt_shape": [17, 3]}
    else:
        meta = {"task": "segment", "names": {"0": "person"}}
    return with_ultralytics_metadata(data, imgsz=[INPUT, INPUT], **meta)


def figure_box(x: float, band: int, size: int, bands: int = 2) -> tuple[int, int, int, int]:
    """Where :func:`walking_frames` draws a figure whose left edge is at ``x`` in a ``size``-pixel frame."""
    scale = size / INPUT
    w, h = round(BOX[0] * INPUT * scale), round(BOX[1] * INPUT * scale)
    top = round((band + 0.5) * size / bands - h / 2)
    return round(x), top, round(x) + w, top + h


def walking_frames(count: int, size: int = 128, step: float = 3.0, bands: int = 2) -> list[np.ndarray]:
    """``count`` black frames with a white figure of the models' box size per band, ``step`` pixels a
    frame: walking right in the top band, left in the bottom one (``bands=1``: one figure walking right
    across the middle, for MoveNet). Every figure crosses the middle of the frame."""
    return [
        figures_frame([(band, _walked(i, band, size, step)) for band in range(bands)], size, bands)
        for i in range(count)
    ]


def _walked(i: int, band: int, size: int, step: float) -> float:
    w = round(BOX[0] * size)
    return 4 + step * i if band == 0 else size - w - 4 - step * i


def figures_frame(figures: list[tuple[int, float]], size: int = 128, bands: int = 2) -> np.ndarray:
    """A black frame with a white figure at each (band, left edge x)."""
    frame = np.zeros((size, size, 3), np.uint8)
    for band, x in figures:
        x1, y1, x2, y2 = figure_box(x, band, size, bands)
        cv2.rectangle(frame, (x1, y1), (x2 - 1, y2 - 1), (255, 255, 255), -1)
    return frame
