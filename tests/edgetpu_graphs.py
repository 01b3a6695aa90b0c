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
