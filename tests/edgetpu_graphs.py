"""Small TFLite graphs built with the flatbuffer object API, to reproduce what a compiler log describes.

The static Edge TPU check reads only the flatbuffer (ops, versions, tensor types and shapes, options and
small constants), so a graph with the right structure is enough: no weights worth the name, no TensorFlow,
no interpreter. ``Graph`` keeps the bookkeeping (buffers, op codes, quantization) out of the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np

from edgecnn.modelfile import ModelFile, parse_model

_TYPES = {
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
    "float32": schema.TensorType.FLOAT32,
}
_TYPES.update(
    {"int32": schema.TensorType.INT32, "int16": schema.TensorType.INT16, "int64": schema.TensorType.INT64}
)


@dataclass
class Graph:
    """One subgraph under construction; :meth:`model` serialises it (plus ``extra_subgraphs`` empty bodies)."""

    tensors: list[Any] = field(default_factory=list)
    buffers: list[Any] = field(default_factory=lambda: [schema.BufferT()])
    codes: list[tuple[int, int, str | None]] = field(default_factory=list)
    operators: list[Any] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)

    def tensor(
        self, shape: list[int], dtype: str = "int8", *, const: Any = None, variable: bool = False
    ) -> int:
        t = schema.TensorT()
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = _TYPES[dtype]
        t.name = f"t{len(self.tensors)}".encode()
        t.isVariable = variable
        if dtype in ("int8", "uint8", "int16"):
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint = [0.05], [0]
            t.quantization = q
        t.buffer = 0
        if const is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.asarray(const, dtype=np.dtype(dtype)).tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, shape: list[int], dtype: str = "int8") -> int:
        index = self.tensor(shape, dtype)
        self.inputs.append(index)
        return index

    def op(
        self,
        name: str,
        inputs: list[int],
        outputs: list[int],
        *,
        version: int = 1,
        options: Any = None,
        custom: str | None = None,
    ) -> list[int]:
        code = schema.BuiltinOperator.CUSTOM if custom else getattr(schema.BuiltinOperator, name)
        key = (code, version, custom)
        if key not in self.codes:
            self.codes.append(key)
        op = schema.OperatorT()
        op.opcodeIndex = self.codes.index(key)
        op.inputs, op.outputs = np.asarray(inputs, dtype=np.int32), np.asarray(outputs, dtype=np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[: -len("T")])
            op.builtinOptions = options
        self.operators.append(op)
        return outputs

    def conv(self, x: int, out_shape: list[int], *, version: int = 3, stride: int = 1) -> int:
        cin = int(self.tensors[x].shape[-1])
        w = self.tensor([out_shape[-1], 3, 3, cin], const=np.zeros((out_shape[-1], 3, 3, cin)))
        b = self.tensor([out_shape[-1]], "int32", const=np.zeros(out_shape[-1]))
        y = self.tensor(out_shape)
        options = schema.Conv2DOptionsT()
        options.strideH = options.strideW = stride
        options.dilationHFactor = options.dilationWFactor = 1
        self.op("CONV_2D", [x, w, b], [y], version=version, options=options)
        return y

    def resize(self, x: int, size: tuple[int, int], name: str = "RESIZE_BILINEAR", version: int = 3) -> int:
        n, _, _, c = (int(d) for d in self.tensors[x].shape)
        shape = self.tensor([2], "int32", const=list(size))
        y = self.tensor([n, size[0], size[1], c])
        self.op(name, [x, shape], [y], version=version)
        return y

    def unary(self, name: str, x: int, *, dtype: str = "int8", version: int = 1, options: Any = None) -> int:
        y = self.tensor([int(d) for d in self.tensors[x].shape], dtype)
        self.op(name, [x], [y], version=version, options=options)
        return y

    def model(self, outputs: list[int], *, extra_subgraphs: int = 0) -> ModelFile:
        m = schema.ModelT()
        m.version = 3
        m.buffers = self.buffers
        m.operatorCodes = []
        for code, version, custom in self.codes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            if custom:
                oc.customCode = custom.encode()
            m.operatorCodes.append(oc)
        graph = schema.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.operators
        graph.inputs = np.asarray(self.inputs, dtype=np.int32)
        graph.outputs = np.asarray(outputs, dtype=np.int32)
        m.subgraphs = [graph]
        for _ in range(extra_subgraphs):  # a body a WHILE/IF would call: one op on its own tensor
            body = schema.SubGraphT()
            t = schema.TensorT()
            t.shape, t.type, t.name, t.buffer = (
                np.asarray([1, 4], dtype=np.int32),
                schema.TensorType.INT8,
                b"b",
                0,
            )
            body.tensors = [t]
            op = schema.OperatorT()
            op.opcodeIndex = self.codes.index(
                next(k for k in self.codes if k[0] == schema.BuiltinOperator.RELU)
            )
            op.inputs, op.outputs = np.asarray([0], dtype=np.int32), np.asarray([0], dtype=np.int32)
            body.operators = [op]
            body.inputs = body.outputs = np.asarray([0], dtype=np.int32)
            m.subgraphs.append(body)
        builder = flatbuffers.Builder(4096)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return parse_model(bytes(builder.Output()))


# --- YOLO heads as Ultralytics exports them (full-integer), sized like the real ones ---------------------


def _const_shape(g: Graph, values: list[int]) -> int:
    return g.tensor([len(values)], "int32", const=values)


def _reshape(g: Graph, x: int, shape: list[int]) -> int:
    y = g.tensor(shape)
    options = schema.ReshapeOptionsT()
    options.newShape = list(shape)
    g.op("RESHAPE", [x, _const_shape(g, shape)], [y], options=options)
    return y


def _transpose(g: Graph, x: int, perm: list[int]) -> int:
    shape = [int(d) for d in g.tensors[x].shape]
    y = g.tensor([shape[p] for p in perm])
    g.op("TRANSPOSE", [x, _const_shape(g, perm)], [y], version=2)
    return y


def _concat(g: Graph, xs: list[int], axis: int) -> int:
    shape = [int(d) for d in g.tensors[xs[0]].shape]
    shape[axis] = sum(int(g.tensors[x].shape[axis]) for x in xs)
    y = g.tensor(shape)
    options = schema.ConcatenationOptionsT()
    options.axis = axis
    g.op("CONCATENATION", xs, [y], version=2, options=options)
    return y


def _slice(g: Graph, x: int, axis: int, start: int, size: int) -> int:
    shape = [int(d) for d in g.tensors[x].shape]
    begin, end = [0] * len(shape), list(shape)
    begin[axis], end[axis] = start, start + size
    shape[axis] = size
    y = g.tensor(shape)
    ins = [x, _const_shape(g, begin), _const_shape(g, end), _const_shape(g, [1] * len(shape))]
    g.op("STRIDED_SLICE", ins, [y], version=2, options=schema.StridedSliceOptionsT())
    return y


def _binary(g: Graph, name: str, a: int, b: int | list[int]) -> int:
    """``name`` of ``a`` with tensor ``b``, or with a constant of shape ``b`` (a grid, anchors, a stride)."""
    other = b if isinstance(b, int) else g.tensor(b, const=np.zeros(b))
    y = g.tensor([int(d) for d in g.tensors[a].shape])
    g.op(name, [a, other], [y], version=2 if name != "SUB" else 1)
    return y


def _backbone(g: Graph, imgsz: int, channels: int) -> list[int]:
    """Enough convolutions to be the larger Edge TPU segment (a real backbone has 200 ops), and the maps at
    strides 8, 16 and 32 with ``channels`` channels each."""
    x = g.conv(g.input([1, imgsz, imgsz, 3]), [1, imgsz // 8, imgsz // 8, 8], stride=8)
    for _ in range(30):
        x = g.conv(x, [1, imgsz // 8, imgsz // 8, 8])
    p3 = g.conv(x, [1, imgsz // 8, imgsz // 8, channels])
    p4 = g.conv(x, [1, imgsz // 16, imgsz // 16, channels], stride=2)
    p5 = g.conv(p4, [1, imgsz // 32, imgsz // 32, channels], stride=2)
    return [p3, p4, p5]


def yolov8_head(imgsz: int, classes: int = 80, *, dfl_transposes: int = 1) -> ModelFile:
    """YOLOv8/11's detect head as Ultralytics' TFLite export writes it: per-scale TRANSPOSE to channels first
    and RESHAPE to [1, 64+nc, H*W], CONCATENATION to [1, 64+nc, anchors], the DFL (RESHAPE, TRANSPOSE,
    SOFTMAX, a 1x1 CONV_2D), the box decode (MUL/ADD/SUB on [1, 2, anchors]) and the classes
    (STRIDED_SLICE -> LOGISTIC -> QUANTIZE), then CONCATENATION to [1, 4+nc, anchors]. Version 8.1 exports
    transpose the DFL twice (``dfl_transposes=2``), 8.2 once."""
    g = Graph()
    channels = 64 + classes
    flat = []
    for x in _backbone(g, imgsz, channels):
        h = int(g.tensors[x].shape[1])
        flat.append(_reshape(g, _transpose(g, x, [0, 3, 1, 2]), [1, channels, h * h]))
    cat = _concat(g, flat, axis=2)
    anchors = int(g.tensors[cat].shape[2])
    box = _reshape(g, _slice(g, cat, 1, 0, 64), [1, 4, 16, anchors])
    if dfl_transposes == 2:
        box = _transpose(g, _transpose(g, box, [0, 2, 1, 3]), [0, 2, 3, 1])
    else:
        box = _transpose(g, box, [0, 1, 3, 2])
    box = g.unary("SOFTMAX", box, options=schema.SoftmaxOptionsT())
    w = g.tensor([1, 1, 1, 16], const=np.zeros((1, 1, 1, 16)))
    b = g.tensor([1], "int32", const=[0])
    dist = g.tensor([1, 4, anchors, 1])
    options = schema.Conv2DOptionsT()
    options.strideH = options.strideW = options.dilationHFactor = options.dilationWFactor = 1
    g.op("CONV_2D", [box, w, b], [dist], version=3, options=options)
    dist = _reshape(
        g, _binary(g, "MUL", _reshape(g, dist, [1, 1, 4, anchors]), [1, 4, anchors]), [1, 4, anchors]
    )
    lt = _binary(g, "SUB", _slice(g, dist, 1, 0, 2), [1, 2, anchors])
    rb = _binary(g, "ADD", _slice(g, dist, 1, 2, 2), [1, 2, anchors])
    xy = _binary(g, "MUL", _binary(g, "ADD", lt, rb), [1, 1, 1])
    wh = _binary(g, "SUB", rb, lt)
    scores = g.unary("QUANTIZE", g.unary("LOGISTIC", _slice(g, cat, 1, 64, classes), version=2))
    return g.model([_concat(g, [xy, wh, scores], axis=1)])


def yolov5_head(imgsz: int, classes: int = 80) -> ModelFile:
    """YOLOv5's detect head as its TFLite export writes it: per scale RESHAPE to [1, H*W, 3, 5+nc], the grid
    decode (STRIDED_SLICE, MUL, ADD with the grid, MUL with the anchors), CONCATENATION and RESHAPE to
    [1, 3*H*W, 5+nc]; then CONCATENATION to [1, 25200, 5+nc] (at 640) and QUANTIZE."""
    g = Graph()
    per = 5 + classes
    outs = []
    for x in _backbone(g, imgsz, 3 * per):
        h = int(g.tensors[x].shape[1])
        x = _reshape(g, x, [1, h * h, 3, per])
        xy = _slice(g, x, 3, 0, 2)
        xy = _binary(g, "MUL", _binary(g, "ADD", _binary(g, "MUL", xy, []), [1, h * h, 1, 2]), [])
        xy = _binary(g, "MUL", xy, [1, 2])
        wh = _slice(g, x, 3, 2, 2)
        wh = _binary(g, "MUL", _binary(g, "MUL", _binary(g, "MUL", wh, wh), [1, 1, 3, 2]), [1, 2])
        rest = _slice(g, x, 3, 4, per - 4)
        outs.append(_reshape(g, _concat(g, [xy, wh, rest], axis=3), [1, 3 * h * h, per]))
    return g.model([g.unary("QUANTIZE", _concat(g, outs, axis=1))])


def _split0(g: Graph, x: int) -> list[int]:
    """SPLIT along axis 0 into its pieces of 1 (how onnx2tf unfolds a batched matrix product per head)."""
    shape = [int(d) for d in g.tensors[x].shape]
    outs = [g.tensor([1, *shape[1:]]) for _ in range(shape[0])]
    options = schema.SplitOptionsT()
    options.numSplits = shape[0]
    g.op("SPLIT", [g.tensor([], "int32", const=[0]), x], outs, version=2, options=options)
    return outs


def _product_of_activations(g: Graph, x: int, w: int, out_shape: list[int]) -> int:
    """FULLY_CONNECTED whose weights are computed (q·kᵀ as onnx2tf writes it): no constant operand."""
    y = g.tensor(out_shape)
    g.op("FULLY_CONNECTED", [x, w], [y], version=4, options=schema.FullyConnectedOptionsT())
    return y


def yolo11_attention(imgsz: int, *, per_head: bool = True) -> ModelFile:
    """YOLO11's C2PSA attention between a backbone and a neck, as Ultralytics' onnx2tf export writes it.

    The stride-32 map goes channels-first (TRANSPOSE of [1, s/32, s/32, 256]), is reshaped to 2 heads of
    q, k (STRIDED_SLICE), and ``per_head`` each head is SPLIT off along axis 0 and multiplied by
    FULLY_CONNECTED with computed weights into an [N, N] map, N = (s/32)². With ``per_head=False`` the product
    is one FULLY_CONNECTED with a one-dimensional output, so only the TRANSPOSE's size can refuse the block.
    The backbone writes more elements than the neck (at 80x80) though the neck has more ops (at s/32).
    """
    g = Graph()
    h = imgsz // 32
    n = h * h
    x = g.conv(g.input([1, imgsz, imgsz, 3]), [1, imgsz // 8, imgsz // 8, 32], stride=8)
    for _ in range(4):
        x = g.conv(x, [1, imgsz // 8, imgsz // 8, 32])
    p = g.conv(x, [1, h, h, 256], stride=4)
    qk = _reshape(g, _transpose(g, p, [0, 3, 1, 2]), [1, 2, 128, n])
    q, k = _slice(g, qk, 2, 0, 32), _slice(g, qk, 2, 32, 32)
    if per_head:
        qs = _split0(g, _reshape(g, _transpose(g, q, [0, 1, 3, 2]), [2, n, 32]))
        ks = _split0(g, _reshape(g, k, [2, 32, n]))
        scores = [
            _product_of_activations(g, qh, _transpose(g, _reshape(g, kh, [32, n]), [1, 0]), [n, n])
            for qh, kh in zip(qs, ks, strict=True)
        ]
        attn = _reshape(g, scores[0], [1, h, h, n])
    else:
        qv = _reshape(g, _slice(g, q, 1, 0, 1), [1, 32 * n])
        kv = _reshape(g, _slice(g, k, 1, 0, 1), [1, 32 * n])
        attn = _reshape(g, _product_of_activations(g, qv, kv, [1, 1]), [1, 1, 1, 1])
    y = _binary(g, "MUL", p, attn) if not per_head else g.conv(attn, [1, h, h, 256])
    if per_head:
        y = _binary(g, "ADD", p, y)
    for _ in range(12):
        y = g.conv(y, [1, h, h, 64])
    return g.model([y])
