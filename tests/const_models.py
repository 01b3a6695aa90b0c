"""Real TFLite models whose outputs are given arrays, built without TensorFlow (the schema's object API).

:func:`constant_model` writes a one-input graph (``[1, H, W, 3]`` float32 or uint8, read by no op) whose
outputs are ``RESHAPE`` of constant tensors: the interpreter runs it like any model, and every frame's
outputs are exactly the arrays given. Decoders then see a known layout (YOLO pose, YOLO seg, score maps,
class maps; float or full-integer with the quantization given) with known contents, so a test can compute
where each keypoint, box and mask pixel must land in the frame through the preprocessing transform.
:func:`with_ultralytics_metadata` appends what Ultralytics' export appends (``metadata.json`` in a zip).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np

_TYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
}


def _tensor(name: str, shape: tuple[int, ...], dtype: np.dtype, buffer: int, quant: tuple[float, int] | None):
    t = schema.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = _TYPES[np.dtype(dtype)]
    t.buffer = buffer
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale = [float(quant[0])]
        q.zeroPoint = [int(quant[1])]
        t.quantization = q
    return t


def constant_model(
    outputs: list[np.ndarray],
    *,
    size: tuple[int, int] = (64, 64),
    input_dtype: Any = np.float32,
    quantization: list[tuple[float, int] | None] | None = None,
    custom_op: str | None = None,
) -> bytes:
    """A model with input ``[1, size[0], size[1], 3]`` whose outputs are ``outputs`` (with ``quantization``
    (scale, zero point) per output for integer ones). ``custom_op``: the ops are that custom op instead
    (a model the runtime cannot prepare, as PoseNet's decoder)."""
    quantization = quantization or [None] * len(outputs)
    model = schema.ModelT()
    model.version = 3
    model.description = "edgecnn test: constant outputs"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RESHAPE
    if custom_op is not None:
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = custom_op
    code.version = 1
    model.operatorCodes = [code]
    buffers = [schema.BufferT()]  # buffer 0: empty, by convention

    def add_buffer(data: bytes) -> int:
        b = schema.BufferT()
        b.data = np.frombuffer(data, np.uint8)
        buffers.append(b)
        return len(buffers) - 1

    graph = schema.SubGraphT()
    in_quant = (1.0, 0) if np.dtype(input_dtype) == np.uint8 else None
    tensors = [_tensor("image", (1, *size, 3), np.dtype(input_dtype), 0, in_quant)]
    ops = []
    out_ids = []
    for i, (array, quant) in enumerate(zip(outputs, quantization, strict=True)):
        array = np.ascontiguousarray(array)
        const = len(tensors)
        tensors.append(_tensor(f"const{i}", (array.size,), array.dtype, add_buffer(array.tobytes()), quant))
        shape = np.array(array.shape, np.int32)
        tensors.append(_tensor(f"shape{i}", (len(shape),), shape.dtype, add_buffer(shape.tobytes()), None))
        out_ids.append(len(tensors))
        tensors.append(_tensor(f"output{i}", array.shape, array.dtype, 0, quant))
        op = schema.OperatorT()
        op.opcodeIndex = 0
        op.inputs = [const, const + 1]
        op.outputs = [out_ids[-1]]
        ops.append(op)
    graph.tensors = tensors
    graph.inputs = [0]
    graph.outputs = out_ids
    graph.operators = ops
    graph.name = "main"
    model.subgraphs = [graph]
    model.buffers = buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_ultralytics_metadata(data: bytes, **meta: Any) -> bytes:
    """``data`` with Ultralytics' ``metadata.json`` appended (``task``, ``names``, ``kpt_shape``, ...)."""
    full = {"author": "Ultralytics", "version": "8.3.0", "stride": 32, "batch": 1, **meta}
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("metadata.json", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, json.dumps(full))
    return data + sink.getvalue()


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: Any = np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)
