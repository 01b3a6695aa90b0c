"""Static Edge TPU compatibility check of a ``.tflite`` model, before (or without) ``edgetpu_compiler``.

What the compiler needs (https://coral.ai/docs/edgetpu/models-intro/): every op in its supported list, at an
op version it knows (the table in ``edgetpu_ops.json`` is data, shipped with the package), int8/uint8
tensors, static shapes, batch 1, and only the three innermost dimensions of a tensor larger than 1.
The compiler maps ops in execution order until the first one it cannot run; that op and every op after it
stay on the CPU (one Edge TPU subgraph). A float model's leading QUANTIZE and trailing DEQUANTIZE are the
exception: they convert the input/output on the CPU and the rest still maps.

Reads the flatbuffer only: no TensorFlow, no interpreter, usable on the device.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import ai_edge_litert.schema_py_generated as schema

from edgecnn.modelfile import EDGETPU_CUSTOM_OP, ModelFile, opcode_name

_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_QUANTIZED = ("INT8", "UINT8")
_ALLOWED_OTHER = ("INT32", "INT64", "BOOL")  # biases, shapes, axes: constants the compiler folds
FLOAT_IO = "float input/output conversion"
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
POSTPROCESS = "detection postprocess at the end of the graph (runs on the CPU by design)"
POSTPROCESS_NOTE = (
    f"{POSTPROCESS_OP} (box decoding and NMS) runs on the CPU at the end of the graph: this is expected, "
    "as in Coral's own SSD models; the ops before it are what the Edge TPU runs."
)
DYNAMIC = "dynamic-shaped tensors"


@dataclass(frozen=True)
class SupportedOps:
    compiler: str
    max_versions: dict[str, int]
    notes: dict[str, str]


@functools.cache
def supported_ops() -> SupportedOps:
    """The supported-operations table shipped as ``edgecnn/converters/edgetpu_ops.json``."""
    text = resources.files("edgecnn.converters").joinpath("edgetpu_ops.json").read_text(encoding="utf-8")
    data = json.loads(text)
    ops = data["operators"]
    return SupportedOps(
        compiler=str(data["compiler"]),
        max_versions={name: int(spec["max_version"]) for name, spec in ops.items()},
        notes={name: str(spec.get("notes", "")) for name, spec in ops.items()},
    )


@dataclass(frozen=True)
class OpStatus:
    index: int
    name: str
    version: int
    edgetpu: bool
    reason: str = ""  # why it stays on the CPU; empty when mapped


@dataclass
class EdgeTPUCheck:
    """Outcome of :func:`check_edgetpu`: ``compatible`` means the compiler can map the whole model."""

    compatible: bool
    compiled: bool  # already an Edge TPU model (holds edgetpu-custom-op)
    problems: list[str]
    operators: list[OpStatus]
    mapped: int
    cpu: int
    compiler: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_lines(self) -> list[str]:
        """Text for ``edgecnn inspect --target edgetpu`` and ``edgecnn convert --edgetpu``."""
        if self.compiled:
            head = "edgetpu: already compiled for the Edge TPU"
        elif self.compatible:
            head = (
                f"edgetpu: compatible: all {self.mapped} ops map to the Edge TPU "
                f"(static check against edgetpu_compiler {self.compiler}'s op list)"
            )
        else:
            head = f"edgetpu: NOT fully compatible: {self.mapped} ops on the Edge TPU, {self.cpu} on the CPU"
        lines = [head]
        lines.extend(f"  problem: {p}" for p in self.problems)
        lines.extend(f"  note: {n}" for n in self.notes)
        groups: dict[tuple[str, int, str], int] = {}
        for op in self.operators:
            status = "Edge TPU" if op.edgetpu else f"CPU: {op.reason}"
            key = (op.name, op.version, status)
            groups[key] = groups.get(key, 0) + 1
        lines.extend(
            f"  {name} v{version} x{count}  {status}" for (name, version, status), count in groups.items()
        )
        return lines


def check_edgetpu(model_file: ModelFile) -> EdgeTPUCheck:
    table = supported_ops()
    model = model_file.model
    if model_file.is_edgetpu:
        ops = [
            OpStatus(
                i,
                op.name,
                op.version,
                op.name == EDGETPU_CUSTOM_OP,
                POSTPROCESS if op.name == POSTPROCESS_OP else "",
            )
            for i, op in enumerate(model_file.operators())
        ]
        compiled_notes = [POSTPROCESS_NOTE] if any(o.name == POSTPROCESS_OP for o in ops) else []
        return EdgeTPUCheck(
            True, True, [], ops, sum(o.edgetpu for o in ops), 0, table.compiler, compiled_notes
        )
    graph = model.subgraphs[0]
    problems: list[str] = []
    notes: list[str] = []
    if len(model.subgraphs) > 1:
        problems.append(f"{len(model.subgraphs)} subgraphs (control flow): the Edge TPU runs one subgraph.")
    for tensor in model_file.inputs:
        if tensor.shape and tensor.shape[0] != 1:
            problems.append(f"input {tensor.name} has batch {tensor.shape[0]}: the Edge TPU needs batch 1.")
    dynamic = sorted(
        {_name(graph.tensors[i]) for i in range(len(graph.tensors)) if _is_dynamic(graph.tensors[i])}
    )
    if dynamic:
        problems.append(
            f"dynamic shapes on {len(dynamic)} tensor(s) (e.g. {dynamic[0]}): re-export with a fixed batch of 1 "
            "(edgecnn convert does)."
        )
    graph_inputs = {int(i) for i in graph.inputs}
    graph_outputs = {int(i) for i in graph.outputs}
    statuses: list[OpStatus] = []
    unsupported: dict[tuple[str, int, str], list[int]] = {}  # (op, version, reason) -> op indices
    first_cpu: OpStatus | None = None
    operators = list(graph.operators or [])
    for index, op in enumerate(operators):
        name, custom = opcode_name(model.operatorCodes[op.opcodeIndex])
        version = int(model.operatorCodes[op.opcodeIndex].version or 1)
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        boundary = (name == "QUANTIZE" and set(ins) <= graph_inputs and _all_float(graph, ins)) or (
            name == "DEQUANTIZE" and set(outs) <= graph_outputs
        )
        if boundary:
            statuses.append(OpStatus(index, name, version, False, FLOAT_IO))
            continue
        if name == POSTPROCESS_OP and set(outs) <= graph_outputs:
            statuses.append(OpStatus(index, name, version, False, POSTPROCESS))
            continue
        reason = _unsupported_reason(table, name, custom, version, graph, model, ins, outs)
        if reason is not None:
            if reason != DYNAMIC:  # dynamic tensors are reported once, for the whole model
                unsupported.setdefault((name, version, reason), []).append(index)
            status = OpStatus(index, name, version, False, reason)
            first_cpu = first_cpu or status
        elif first_cpu is not None:
            status = OpStatus(index, name, version, False, f"after {first_cpu.name} (op {first_cpu.index})")
        else:
            status = OpStatus(index, name, version, True)
        statuses.append(status)
    for (name, version, reason), indices in unsupported.items():
        where = f"op {indices[0]}" if len(indices) == 1 else "ops " + ", ".join(map(str, indices))
        problems.append(f"{name} v{version} ({where}) cannot run on the Edge TPU: {reason}.")
    if first_cpu is not None:
        after = sum(1 for st in statuses[first_cpu.index + 1 :] if st.reason not in (FLOAT_IO, POSTPROCESS))
        problems.append(
            f"the compiler stops mapping at {first_cpu.name} (op {first_cpu.index}): it and the {after} op(s) "
            "after it would run on the CPU."
        )
    if any(st.reason == FLOAT_IO for st in statuses):
        notes.append(
            "float input/output: QUANTIZE/DEQUANTIZE at the ends run on the CPU (convert with --io int8 or uint8 to avoid it)."
        )
    if any(st.reason == POSTPROCESS for st in statuses):
        notes.append(POSTPROCESS_NOTE)
    mapped = sum(s.edgetpu for s in statuses)
    cpu = len(statuses) - mapped
    compatible = not problems
    return EdgeTPUCheck(compatible, False, _unique(problems), statuses, mapped, cpu, table.compiler, notes)


def _unsupported_reason(
    table: SupportedOps,
    name: str,
    custom: bool,
    version: int,
    graph: Any,
    model: Any,
    ins: list[int],
    outs: list[int],
) -> str | None:
    if custom:
        return f"custom op {name!r} is not an Edge TPU operation"
    if name not in table.max_versions:
        return "not in the Edge TPU's supported operations"
    if version > table.max_versions[name]:
        return f"op version {version} is newer than edgetpu_compiler {table.compiler} accepts (max v{table.max_versions[name]})"
    for i in ins + outs:
        tensor = graph.tensors[i]
        type_name = _TYPE_NAMES.get(tensor.type, str(tensor.type))
        if type_name not in _QUANTIZED and type_name not in _ALLOWED_OTHER:
            return f"works on {type_name} tensors (the Edge TPU runs int8/uint8 only: convert with --quantize int8)"
        if type_name in ("INT32", "INT64") and i in outs:
            return f"produces {type_name} tensors (the Edge TPU runs int8/uint8 only)"
    for i in ins + outs:
        tensor = graph.tensors[i]
        if _is_dynamic(tensor):
            return DYNAMIC  # the model-level problem names an example tensor
        shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
        if len(shape) > 3 and _product(shape[:-3]) > 1 and not _is_constant(model, tensor):
            return f"tensor {_name(tensor)} {shape} uses more than the 3 innermost dimensions"
    return None


def _all_float(graph: Any, indices: list[int]) -> bool:
    return all(_TYPE_NAMES.get(graph.tensors[i].type) == "FLOAT32" for i in indices)


def _is_dynamic(tensor: Any) -> bool:
    return tensor.shapeSignature is not None and any(int(d) < 0 for d in tensor.shapeSignature)


def _is_constant(model: Any, tensor: Any) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _name(tensor: Any) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _product(values: list[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
