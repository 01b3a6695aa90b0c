"""Read and write ``.tflite`` flatbuffers with the schema LiteRT ships (object API), never by hand.

Also reads labels that TFLite Support metadata embeds: such files end with a zip archive of associated files
(``labels.txt`` and friends) appended after the flatbuffer, which interpreters ignore.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np

from edgecnn.errors import ModelError

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
_FILE_IDENTIFIER = b"TFL3"

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
            entry_name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            if entry_name == name:
                buffer = self.model.buffers[entry.buffer]
                return (
                    bytes(np.asarray(buffer.data, dtype=np.uint8).tobytes())
                    if buffer.data is not None
                    else b""
                )
        return None

    def metadata_names(self) -> list[str]:
        return [e.name.decode() if isinstance(e.name, bytes) else e.name for e in self.model.metadata or []]


def opcode_name(code: Any) -> tuple[str, bool]:
    # The schema keeps two fields: builtinCode (int32, new) and deprecatedBuiltinCode (int8, old files);
    # readers must take the larger of the two.
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
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
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
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
    return ModelFile(path=path, data=data, model=model, appended=_appended_files(data))


def read_model(path: str | os.PathLike[str]) -> ModelFile:
    p = Path(path)
    if not p.exists():
        raise ModelError(f"Model file not found: {p}. Check the path.")
    if p.is_dir():
        raise ModelError(f"{p} is a directory, not a model file. Pass the .tflite file inside it.")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"Cannot read {p}: {exc.strerror}. Check its permissions.") from exc
    return parse_model(data, p)


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
    model = model_file.model
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.metadata = [
        m
        for m in (model.metadata or [])
        if (m.name.decode() if isinstance(m.name, bytes) else m.name) != name
    ]
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(max(1024, len(model_file.data) + len(payload) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    out = bytes(builder.Output())
    if model_file.appended:
        sink = io.BytesIO()
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
            for fname, content in model_file.appended.items():
                archive.writestr(fname, content)
        out += sink.getvalue()
    return out


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> Path:
    """Write to a temp file beside ``path`` and rename: a crash never leaves half a model behind.

    ``mode`` is set explicitly because the temp file starts as 0600, which would hide the model from a
    service running as another user.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
