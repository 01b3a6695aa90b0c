"""Read and write ``.tflite`` flatbuffers with the schema LiteRT ships (object API), never by hand.

Also reads labels that TFLite Support metadata embeds: such files end with a zip archive of associated files
(``labels.txt`` and friends) appended after the flatbuffer, which interpreters ignore.
"""

from __future__ import annotations

import copy
import io
import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np

from edgecnn.atomic import write_atomic as write_atomic  # re-exported for devices/ and service/install.py
from edgecnn.errors import ModelError
from edgecnn.postprocess_op import POSTPROCESS_OP, PostprocessOptions, first_options, op_problem
from edgecnn.safeio import FileKind, read_bytes

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4-8 of every .tflite file

_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TENSOR_TYPES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str  # schema name: UINT8, INT8, FLOAT32, ...
    scale: float | None = None
    zero_point: int | None = None

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)


@dataclass(frozen=True)
class OperatorInfo:
    name: str  # builtin op name (CONV_2D) or the custom code (edgetpu-custom-op)
    version: int
    custom: bool
    count: int


@dataclass
class ModelFile:
    """A parsed model: its flatbuffer (object API), plus what was appended after it."""

    path: Path | None
    data: bytes
    model: Any  # schema.ModelT
    appended: dict[str, bytes] = field(default_factory=dict)

    @property
    def inputs(self) -> list[TensorInfo]:
        graph = self.model.subgraphs[0]
        return [_tensor_info(self.model, graph.tensors[i]) for i in graph.inputs]

    @property
    def outputs(self) -> list[TensorInfo]:
        graph = self.model.subgraphs[0]
        return [_tensor_info(self.model, graph.tensors[i]) for i in graph.outputs]

    def operators(self) -> list[OperatorInfo]:
        """Histogram of (op, version) across all subgraphs, in first-use order."""
        counts: Counter[int] = Counter()
        for graph in self.model.subgraphs or []:
            for op in graph.operators or []:
                counts[op.opcodeIndex] += 1
        result = []
        for index, count in counts.items():
            code = self.model.operatorCodes[index]
            name, custom = opcode_name(code)
            result.append(OperatorInfo(name=name, version=int(code.version or 1), custom=custom, count=count))
        return result

    def signature_outputs(self) -> dict[str, int]:
        """Output names of the first signature -> position among the graph's outputs ({} without one)."""
        sigs = self.model.signatureDefs or []
        if not sigs:
            return {}
        graph = self.model.subgraphs[0]
        positions = {int(t): i for i, t in enumerate(graph.outputs if graph.outputs is not None else [])}
        names = {}
        for item in sigs[0].outputs or []:
            name = item.name.decode() if isinstance(item.name, bytes) else str(item.name)
            if int(item.tensorIndex) in positions:
                names[name] = positions[int(item.tensorIndex)]
        return names

    def output_from_softmax(self) -> bool:
        """True when the first output is produced by SOFTMAX/LOGISTIC, looking through shape-only ops."""
        graph = self.model.subgraphs[0]
        producers = {
            out: op for op in graph.operators or [] for out in (op.outputs if op.outputs is not None else [])
        }
        tensor = int(graph.outputs[0])
        for _ in range(8):
            op = producers.get(tensor)
            if op is None:
                return False
            name, _ = opcode_name(self.model.operatorCodes[op.opcodeIndex])
            if name in ("SOFTMAX", "LOGISTIC"):
                return True
            if (
                name not in ("RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE")
                or op.inputs is None
                or not len(op.inputs)
            ):
                return False
            tensor = int(op.inputs[0])
        return False

    @property
    def is_edgetpu(self) -> bool:
        return any(op.name == EDGETPU_CUSTOM_OP for op in self.operators())

    def metadata_entry(self, name: str) -> bytes | None:
        for entry in self.model.metadata or []:
            if text(entry.name) == name:
                buffer = self.model.buffers[entry.buffer]
                return (
                    bytes(np.asarray(buffer.data, dtype=np.uint8).tobytes())
                    if buffer.data is not None
                    else b""
                )
        return None

    def postprocess_options(self) -> PostprocessOptions | None:
        """The options of SSD's ``TFLite_Detection_PostProcess`` op (checked by :func:`parse_model`), or None."""
        codes = self.model.operatorCodes or []
        return first_options(self.model, lambda op: _is_postprocess(op, codes))

    def metadata_names(self) -> list[str]:
        return [text(e.name) for e in self.model.metadata or []]


def text(value: Any) -> str:
    """A flatbuffer string field as text: names in a damaged file need not be UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def opcode_name(code: Any) -> tuple[str, bool]:
    # The schema keeps two fields: builtinCode (int32, new) and deprecatedBuiltinCode (int8, old files);
    # readers must take the larger of the two.
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = text(code.customCode)
        return custom, True
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), False


def _tensor_info(model: Any, tensor: Any) -> TensorInfo:
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    signature = tuple(int(d) for d in tensor.shapeSignature) if tensor.shapeSignature is not None else shape
    scale = zero_point = None
    q = tensor.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        scale = float(q.scale[0])
        zero_point = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    name = text(tensor.name)
    return TensorInfo(
        name, shape, signature, _TENSOR_TYPES.get(tensor.type, str(tensor.type)), scale, zero_point
    )


def parse_model(data: bytes, path: Path | None = None) -> ModelFile:
    """Parse bytes into a :class:`ModelFile`, raising :class:`ModelError` with the fix on bad input."""
    where = str(path) if path else "model"
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelError(
            f"{where} is not a TFLite model (no TFL3 identifier). Pass a .tflite file, "
            "e.g. one written by `edgecnn convert`."
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        if not model.subgraphs:
            raise ValueError("no subgraphs")
    except Exception as exc:  # flatbuffers raises struct/index errors on truncated data
        raise ModelError(
            f"{where} is truncated or corrupt ({type(exc).__name__}). Copy the file again; "
            "check its size against the original."
        ) from exc
    problem = structural_problem(model, len(data))
    if problem:
        raise ModelError(
            f"{where} is not a usable TFLite model: {problem}. Re-export or copy the file again; "
            "`edgecnn convert` writes models that pass this check."
        )
    return ModelFile(path=path, data=data, model=model, appended=_appended_files(data))


# More elements than this in one input or output tensor is no image model this runtime could run on a Pi
# (a 4096x4096x3 input is 50M); it also keeps a corrupt shape from asking the interpreter for terabytes.
MAX_IO_ELEMENTS = 1 << 26
_TYPE_SIZES = {
    schema.TensorType.FLOAT32: 4,
    schema.TensorType.FLOAT16: 2,
    schema.TensorType.INT32: 4,
    schema.TensorType.UINT8: 1,
    schema.TensorType.INT64: 8,
    schema.TensorType.BOOL: 1,
    schema.TensorType.INT16: 2,
    schema.TensorType.INT8: 1,
    schema.TensorType.FLOAT64: 8,
    schema.TensorType.UINT64: 8,
    schema.TensorType.UINT32: 4,
    schema.TensorType.UINT16: 2,
}


_INTEGER_TYPES = {
    schema.TensorType.UINT8,
    schema.TensorType.INT8,
    schema.TensorType.INT16,
    schema.TensorType.INT32,
}


def _indices(values: Any) -> list[int]:
    return [int(v) for v in values] if values is not None else []


def _elements(shape: list[int]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _constant_bytes(buffers: list[Any], index: int) -> int:
    """Bytes of constant data in buffer ``index`` (stored inline or, in large models, at an offset)."""
    if not buffers:
        return 0
    buffer = buffers[index]
    if buffer.data is not None:
        return len(buffer.data)
    return int(buffer.size or 0) if buffer.offset else 0


def structural_problem(model: Any, file_size: int) -> str | None:
    """What makes ``model`` (a ``schema.ModelT``) unsafe to hand to an interpreter, or None.

    The interpreter trusts the indices in the flatbuffer; an out-of-range one is an IndexError in our
    code at best and a crash in native code at worst (subgraph outputs ``[-1]`` end in a double free at
    exit), so everything that indexes something is checked here first, with no recursion and no
    allocation proportional to what the file claims. The checks run in this order and the first
    problem found is the one reported.
    """
    buffers = model.buffers or []
    codes = model.operatorCodes or []
    graphs = model.subgraphs or []
    problem = _codes_problem(codes) or _buffers_problem(buffers, file_size)
    if problem:
        return problem
    for g_index, graph in enumerate(graphs):
        where = f"subgraph {g_index}"
        problem = (
            _tensors_problem(where, graph.tensors or [], buffers)
            or _operators_problem(where, graph, len(codes), len(graphs))
            or _postprocess_problem(where, graph, codes)
            or _graph_io_problem(where, graph)
            or (None if g_index else _main_graph_problem(graph, buffers))
        )
        if problem:
            return problem
    return _metadata_problem(model, buffers) or _signatures_problem(model, graphs)


def _codes_problem(codes: list[Any]) -> str | None:
    return "an operator code is empty" if any(code is None for code in codes) else None


def _buffers_problem(buffers: list[Any], file_size: int) -> str | None:
    """A buffer that points outside the file (data kept past the flatbuffer, as large models do)."""
    for b_index, buffer in enumerate(buffers):
        offset, size = int(buffer.offset or 0), int(buffer.size or 0)
        if offset and (offset < 0 or size < 0 or offset + size > file_size):
            return f"buffer {b_index} points at bytes {offset}..{offset + size}, past the end of the file"
    return None


def _tensors_problem(where: str, tensors: list[Any], buffers: list[Any]) -> str | None:
    """Every tensor: a non-negative shape, a known type, a real buffer, constant data that fits."""
    for t_index, tensor in enumerate(tensors):
        shape = _indices(tensor.shape)
        if any(d < 0 for d in shape):
            return f"{where} tensor {t_index} has a negative dimension {shape}"
        if tensor.type not in _TENSOR_TYPES:
            return f"{where} tensor {t_index} has unknown type {tensor.type}"
        b = int(tensor.buffer or 0)
        if not 0 <= b < max(1, len(buffers)):
            return f"{where} tensor {t_index} uses buffer {b}, past the {len(buffers)} buffers"
        size = _constant_bytes(buffers, b)
        element = _TYPE_SIZES.get(tensor.type)
        if size and element and tensor.sparsity is None and size != _elements(shape) * element:
            return (
                f"{where} tensor {t_index} {shape} {_TENSOR_TYPES[tensor.type]} has {size} bytes of "
                "constant data, which does not fit its shape"
            )
    return None


def _operators_problem(where: str, graph: Any, code_count: int, graph_count: int) -> str | None:
    """Every operator: an opcode that exists, tensors of its own subgraph, subgraphs it calls that exist."""
    count = len(graph.tensors or [])
    for o_index, op in enumerate(graph.operators or []):
        if not 0 <= int(op.opcodeIndex) < code_count:
            return f"{where} operator {o_index} uses opcode {op.opcodeIndex}, past the {code_count} operator codes"
        for name, values, optional in (
            ("input", op.inputs, True),
            ("output", op.outputs, False),
            ("intermediate", op.intermediates, False),
        ):
            for i in _indices(values):
                if not (-1 if optional else 0) <= i < count:
                    return f"{where} operator {o_index} {name} {i} is not one of its {count} tensors"
        options = op.builtinOptions
        for attr in vars(options) if options is not None else ():
            if attr.endswith("SubgraphIndex"):
                sub = int(getattr(options, attr) or 0)
                if not 0 <= sub < graph_count:
                    return (
                        f"{where} operator {o_index} calls subgraph {sub}, past the {graph_count} subgraphs"
                    )
    return None


def _is_postprocess(op: Any, codes: list[Any]) -> bool:
    return opcode_name(codes[int(op.opcodeIndex)]) == (POSTPROCESS_OP, True)


def _postprocess_problem(where: str, graph: Any, codes: list[Any]) -> str | None:
    """SSD's postprocess op: options the runtime reads unchecked (see :mod:`edgecnn.postprocess_op`)."""
    for o_index, op in enumerate(graph.operators or []):
        if _is_postprocess(op, codes):
            problem = op_problem(op, graph.tensors or [])
            if problem:
                return f"{where} operator {o_index} ({POSTPROCESS_OP}) {problem}"
    return None


def _graph_io_problem(where: str, graph: Any) -> str | None:
    count = len(graph.tensors or [])
    for name, values in (("input", _indices(graph.inputs)), ("output", _indices(graph.outputs))):
        for i in values:
            if not 0 <= i < count:
                return f"{where} {name} {i} is not one of its {count} tensors"
    return None


def _main_graph_problem(graph: Any, buffers: list[Any]) -> str | None:
    """The main subgraph's inputs and outputs: real, sized, sanely quantized tensors, and distinct."""
    tensors = graph.tensors or []
    inputs, outputs = _indices(graph.inputs), _indices(graph.outputs)
    if not inputs or not outputs:
        return f"the main subgraph has {len(inputs)} inputs and {len(outputs)} outputs; it needs at least one of each"
    for name, values in (("input", inputs), ("output", outputs)):
        for i in values:
            shape = _indices(tensors[i].shape)
            if _elements(shape) == 0:  # a scalar (shape []) holds one element
                return f"{name} tensor {i} has no elements (shape {shape})"
            if _elements(shape) > MAX_IO_ELEMENTS:
                return f"{name} tensor {i} has shape {shape}, far larger than any image model's"
            q = tensors[i].quantization
            scales = [float(v) for v in q.scale] if q is not None and q.scale is not None else []
            if tensors[i].type in _INTEGER_TYPES and any(not math.isfinite(v) or v <= 0 for v in scales):
                # real = scale * (q - zero_point): a scale of 0 makes every score 0 (or NaN after softmax)
                return f"{name} tensor {i} has quantization scale {scales[:4]}, which must be positive"
    produced = {i for op in graph.operators or [] for i in _indices(op.outputs)}
    for i in outputs:
        if i in inputs:
            return f"output tensor {i} is also the input tensor: the model computes nothing"
        if i not in produced and not _constant_bytes(buffers, int(tensors[i].buffer or 0)):
            return f"output tensor {i} is computed by no operator"
    for i in inputs:
        if _constant_bytes(buffers, int(tensors[i].buffer or 0)):
            return f"input tensor {i} is a constant"
    return None


def _metadata_problem(model: Any, buffers: list[Any]) -> str | None:
    for m_index, entry in enumerate(model.metadata or []):
        if not 0 <= int(entry.buffer) < len(buffers):
            return f"metadata entry {m_index} uses buffer {entry.buffer}, past the {len(buffers)} buffers"
    return None


def _signatures_problem(model: Any, graphs: list[Any]) -> str | None:
    for s_index, sig in enumerate(model.signatureDefs or []):
        sub = int(sig.subgraphIndex or 0)
        if not 0 <= sub < len(graphs):
            return f"signature {s_index} names subgraph {sub}, past the {len(graphs)} subgraphs"
        count = len(graphs[sub].tensors or [])
        for tmap in [*(sig.inputs or []), *(sig.outputs or [])]:
            if not 0 <= int(tmap.tensorIndex) < count:
                return f"signature {s_index} names tensor {tmap.tensorIndex}, not one of {count}"
    return None


def read_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read and check a model file: a regular file within the size cap, then :func:`parse_model`."""
    p = Path(path)
    return parse_model(read_bytes(p, FileKind.MODEL), p)


def _appended_files(data: bytes) -> dict[str, bytes]:
    """Associated files TFLite Support zips onto the end of the model (labels and the like)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}


def with_metadata(model_file: ModelFile, name: str, payload: bytes) -> bytes:
    """Serialize the model with metadata entry ``name`` set to ``payload`` (replacing an old one).

    Appended associated files are carried over so third-party readers still find them.
    """
    # A shallow copy whose two lists are new: ``model_file`` stays as it was, so serializing it twice gives
    # the same bytes (appending to its own lists left an orphan buffer behind on every call).
    model = copy.copy(model_file.model)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers = [*(model.buffers or []), buffer]
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if text(m.name) != name] + [entry]
    builder = flatbuffers.Builder(max(1024, len(model_file.data) + len(payload) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return append_files(bytes(builder.Output()), model_file.appended)


def append_files(data: bytes, files: dict[str, bytes]) -> bytes:
    """``data`` with ``files`` appended as a stored zip (how TFLite Support and Ultralytics carry labels and
    metadata after the flatbuffer). Every member has the same fixed date, so the same model and files give the
    same bytes whenever they are written (a clock stamp made every cut or conversion a different file)."""
    if not files:
        return data
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return data + sink.getvalue()
