"""What ``edgetpu_compiler`` would do with a ``.tflite`` model, predicted without the compiler.

The compiler (x86-64 only, frozen at 16.0) prints one status per op; this module predicts the same
statuses, in the same words, so a user can hold the check next to a compiler log line by line:

- ``Mapped to Edge TPU``;
- ``Operation not supported``: the op type is not in the Edge TPU's list (``edgetpu_ops.json``);
- ``Operation version not supported``: a newer op version than the compiler maps;
- ``Operation is working on an unsupported data type``: float (or int32 output) tensors;
- ``Tensor has unsupported rank (up to 3 innermost dimensions mapped)``;
- ``Operation is otherwise supported, but not mapped due to some unspecified limitation``: a per-op
  constraint (resize size and factor, fused activation on pooling, dilation, softmax size, ...);
- ``More than one subgraph is not supported``: a supported op that depends on an op already on the CPU.

Partitioning, learned from Coral's compiled pairs (``google-coral/test_data``; measured by
``benchmarks/edgetpu_check_agreement.py``) and users' logs: the compiler maps one Edge TPU subgraph.
Every CPU op on a path starts a new segment (two ops in one segment never have a CPU op between them);
the compiler keeps the segment with the most ops and puts the supported ops of every other segment on
the CPU as "More than one subgraph is not supported". So CPU ops at the start do not stop mapping
(movenet's leading CAST/QUANTIZE), ops after a CPU op in the middle go to the CPU while independent
branches keep mapping (deeplab's ops after its 1x1->33x33 resize; movenet's heads beside its float
DEQUANTIZE), and a few supported ops before a CPU op near the input can lose to the larger rest
(google-coral/edgetpu #461). Some inputs make the compiler stop with no output at all: an op
version its own TFLite cannot parse (CONV_2D v6), dynamic shapes, or a model with nothing quantized.

Reads the flatbuffer only: no TensorFlow, no interpreter, usable on the device.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np

from edgecnn.devices.backends.edgetpu.model_kind import Kind, ModelKind, model_kind, smaller_imgsz
from edgecnn.modelfile import EDGETPU_CUSTOM_OP, ModelFile, opcode_name, parse_model, text

_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_QUANTIZED = ("INT8", "UINT8")
_ALLOWED_OTHER = ("INT32", "INT64", "BOOL")  # biases, shapes, axes: constants the compiler folds
FLOAT_IO = "float input/output conversion"
DYNAMIC = "dynamic-shaped tensors"

# The compiler's own status strings (its "Operator / Count / Status" table).
MAPPED = "Mapped to Edge TPU"
NOT_SUPPORTED = "Operation not supported"
VERSION = "Operation version not supported"
DATA_TYPE = "Operation is working on an unsupported data type"
RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
LIMITATION = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
SUBGRAPH = "More than one subgraph is not supported"
NOT_COMPILED = "Not compiled: the compiler stops before mapping"  # ours: the compiler prints no table then
STATUSES = (MAPPED, NOT_SUPPORTED, VERSION, DATA_TYPE, RANK, LIMITATION, SUBGRAPH)


@dataclass(frozen=True)
class SupportedOps:
    """``edgetpu_ops.json``: which ops and versions compiler 16 maps, and the limits learned for it."""

    compiler: str
    default_runtime: int
    max_versions: dict[str, int]
    runtimes: dict[str, int]
    notes: dict[str, str]
    parse_limits: dict[str, int]
    limits: dict[str, int]
    data_type_only: frozenset[str] = frozenset()


@functools.cache
def supported_ops() -> SupportedOps:
    """The table shipped as ``edgecnn/devices/backends/edgetpu/edgetpu_ops.json``."""
    package = resources.files("edgecnn.devices.backends.edgetpu")
    data = json.loads(package.joinpath("edgetpu_ops.json").read_text(encoding="utf-8"))
    ops = data["operators"]
    return SupportedOps(
        compiler=str(data["compiler"]),
        default_runtime=int(data["default_runtime"]),
        max_versions={name: int(spec["max_version"]) for name, spec in ops.items()},
        runtimes={name: int(spec.get("runtime", 10)) for name, spec in ops.items()},
        notes={name: str(spec.get("notes", "")) for name, spec in ops.items()},
        parse_limits={k: int(v) for k, v in data["parse_limits"].items() if not k.startswith("_")},
        limits={k: int(v) for k, v in data["limits"].items() if not k.startswith("_")},
        data_type_only=frozenset(data.get("data_type_only", {}).get("ops", [])),
    )


@dataclass(frozen=True)
class OpStatus:
    index: int
    name: str
    version: int
    edgetpu: bool
    reason: str = ""  # why it stays on the CPU; empty when mapped
    status: str = MAPPED  # the compiler's words for it
    advice: str = ""  # what to change so it maps
    subgraph: int = 0


@dataclass
class EdgeTPUCheck:
    """Outcome of :func:`predict_compilation`: ``compatible`` means the compiler maps the whole model.

    ``failure`` is set when the compiler would stop without writing a model (then nothing maps);
    ``runtime`` is the Edge TPU runtime the compiled model needs with the compiler's defaults and
    ``min_runtime`` the lowest ``-m`` value its mapped ops allow.
    """

    compatible: bool
    compiled: bool  # already an Edge TPU model (holds edgetpu-custom-op)
    problems: list[str]
    operators: list[OpStatus]
    mapped: int
    cpu: int
    compiler: str
    notes: list[str] = field(default_factory=list)
    failure: str | None = None
    runtime: int | None = None
    min_runtime: int | None = None
    advice: list[str] = field(default_factory=list)
    kind: str | None = (
        None  # model_kind: full-integer, integer with float I/O, dynamic-range, float16, float32
    )
    kind_fix: str | None = None  # how to get a full-integer file from the tool that made this one
    smaller_imgsz: int | None = None  # the input side at which every size-limited op would map

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["log"] = [{"operator": o, "count": c, "status": s} for o, c, s in self.log_table()]
        return data

    def cpu_ops(self) -> Counter[str]:
        """Op names the compiler would leave on the CPU (what stays beside edgetpu-custom-op)."""
        return Counter(op.name for op in self.operators if not op.edgetpu)

    def log_table(self) -> list[tuple[str, int, str]]:
        """``(operator, count, status)`` rows in the compiler log's order (first appearance)."""
        rows: dict[tuple[str, str], int] = {}
        for op in self.operators:
            rows[(op.name, op.status)] = rows.get((op.name, op.status), 0) + 1
        return [(name, count, status) for (name, status), count in rows.items()]

    def format_lines(self) -> list[str]:
        """Text for ``edgecnn inspect --target edgetpu`` and ``edgecnn convert --edgetpu``."""
        if self.compiled:
            head = "edgetpu: already compiled for the Edge TPU"
        elif self.compatible:
            head = (
                f"edgetpu: compatible: all {self.mapped} ops map to the Edge TPU "
                f"(static check against edgetpu_compiler {self.compiler}'s rules)"
            )
        else:
            head = f"edgetpu: NOT fully compatible: {self.mapped} ops on the Edge TPU, {self.cpu} on the CPU"
        lines = [head]
        if self.kind is not None and not self.compiled:
            lines.append(f"  model: {self.kind}")
        if self.failure:
            lines.append(f"  compiler: stops without output: {self.failure}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        lines.extend(f"  change: {a}" for a in self.advice)
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.runtime is not None and not self.compiled:
            needs = f"  runtime: the compiled model needs Edge TPU runtime {self.runtime} (libedgetpu 16.0)"
            if self.min_runtime is not None and self.min_runtime < self.runtime:
                needs += f"; compile with -m {self.min_runtime} for an older libedgetpu"
            lines.append(needs)
        groups: dict[tuple[str, int, str], int] = {}
        for op in self.operators:
            key = (op.name, op.version, "Edge TPU" if op.edgetpu else f"CPU: {op.reason}")
            groups[key] = groups.get(key, 0) + 1
        lines.extend(
            f"  {name} v{version} x{count}  {where}" for (name, version, where), count in groups.items()
        )
        if not self.compiled and not self.compatible:  # when all maps, the lines above say it; --json has it
            lines.append("  as edgetpu_compiler -s would log it:")
            lines.append(f"  {'Operator':<30} {'Count':<10} Status")
            lines.extend(f"  {name:<30} {count:<10} {status}" for name, count, status in self.log_table())
        return lines


POSTPROCESS_OP = "TFLite_Detection_PostProcess"
POSTPROCESS_NOTE = (
    f"{POSTPROCESS_OP} (box decoding and NMS) runs on the CPU at the end of the graph: this is expected, "
    "as in Coral's own SSD models; the ops before it are what the Edge TPU runs."
)


def _expected_on_cpu(st: OpStatus) -> bool:
    """A detector's postprocess op: a CPU custom op by design, never a problem to report or fix."""
    return st.name == POSTPROCESS_OP


def predict_compilation(model_file: ModelFile) -> EdgeTPUCheck:
    """Predict ``edgetpu_compiler``'s per-op statuses for ``model_file`` (see the module docstring)."""
    table = supported_ops()
    if model_file.is_edgetpu:
        return _already_compiled(model_file, table)
    model = model_file.model
    problems, failures = _whole_model_problems(model_file, table)
    statuses = _partition(table, model, model.subgraphs[0], failures)
    if len(model.subgraphs) > 1:
        problems.append(f"{len(model.subgraphs)} subgraphs (control flow): the Edge TPU runs one subgraph.")
        statuses += _other_subgraphs(model)
    kind = model_kind(model_file)
    float_model = kind.kind in (Kind.DYNAMIC_RANGE, Kind.FLOAT16, Kind.FLOAT32)
    if float_model:  # one line for the whole file rather than one per float op type
        floats = [st for st in statuses if st.status == DATA_TYPE and st.reason != FLOAT_IO]
        problems.append(
            f"{len(floats)} of {len(statuses)} ops work on float tensors, which the Edge TPU does not run."
        )
    problems += _unsupported_problems([st for st in statuses if not (float_model and st.status == DATA_TYPE)])
    main = [st for st in statuses if st.subgraph == 0 and not _expected_on_cpu(st)]
    first_cpu = _first_blocking(main, failures)
    if first_cpu is not None:
        after = sum(
            1 for st in main if st.index > first_cpu.index and not st.edgetpu and st.reason != FLOAT_IO
        )
        problems.append(
            f"the compiler stops mapping at {first_cpu.name} (op {first_cpu.index}): it and {after} later "
            "op(s) run on the CPU."
        )
    failure = "; ".join(dict.fromkeys(failures)) or None
    if failure:
        problems.append(f"edgetpu_compiler would stop without writing a model: {failure}.")
    mapped_ops = [st for st in statuses if st.edgetpu]
    min_runtime = max([10, *(table.runtimes.get(st.name, 10) for st in mapped_ops)]) if mapped_ops else None
    advice = _advice(statuses, first_cpu)
    grouped = _grouped_convolutions(model, model.subgraphs[0])
    if grouped and any("'CONV_2D' version '6'" in f for f in failures):
        problems.insert(0, _grouped_problem(grouped))
        conv_v6 = {st.advice for st in statuses if st.status == VERSION and st.name == "CONV_2D"}
        advice = [a for a in advice if a not in conv_v6]
        if kind.full_integer:  # otherwise the kind's own fix below says it, with the re-export
            advice.insert(0, _grouped_fix(kind))
    if not kind.full_integer:  # one line for the file as a whole, in the words of the tool that made it
        float_advice = {st.advice for st in statuses if st.status == DATA_TYPE}
        fix = kind.fix(grouped_convolution=bool(grouped)) or ""
        advice = [fix, *(a for a in advice if a not in float_advice and a != fix)]
    smaller = None if failures else _smaller_imgsz(table, model, statuses, kind)
    if smaller is not None:  # one export option instead of a line per oversized op
        sized = {st.advice for st in statuses if st.reason.startswith(SIZE_REASON)}
        advice = [smaller[1], *(a for a in advice if a not in sized)]
    attention = _attention(model, model.subgraphs[0])
    stops_in_attention = attention is not None and first_cpu is not None and first_cpu.index in attention.ops
    if attention is not None:
        said = _attention_advice(table, model, statuses, kind, attention)
        if said is not None:  # one line for the block instead of one per refused op in it
            in_it = {st.advice for st in statuses if st.index in attention.ops}
            only_here = all(st.index in attention.ops for st in statuses if st.reason.startswith(SIZE_REASON))
            rest = [
                a
                for a in advice
                if (a not in in_it or (smaller is not None and a == smaller[1]))
                and not (smaller is not None and a == smaller[1] and only_here)  # the block's line says it
            ]
            if smaller is not None and only_here:
                smaller = (smaller[0], said)
            at = 1 if (smaller is not None and not only_here) or not kind.full_integer or failures else 0
            advice = [*rest[:at], said, *rest[at:]]
    if stops_in_attention and attention is not None and first_cpu is not None:
        problems.append(
            f"the Edge TPU subgraph ends in the model's attention block (ops {min(attention.ops)}-"
            f"{max(attention.ops)}: {len(attention.matmuls)} product(s) of two activations, q·kᵀ and ·v"
            f"{'; in YOLO11 its C2PSA block' if kind.producer == 'ultralytics' else ''}): {first_cpu.name} "
            f"(op {first_cpu.index}) is refused and everything "
            "after it (the rest of the attention, the neck and the head) runs on the CPU."
        )
    if (
        problems
        and kind.full_integer
        and not failures
        and not stops_in_attention  # a cut at the head outputs leaves the attention on the CPU all the same
        and _yolo_heads_found(model_file)
    ):
        advice.insert(
            0,
            "or keep the input size and leave the head to the CPU after the Edge TPU: edgecnn convert MODEL.tflite "
            "--edgetpu --cut-head cuts the model at its per-scale head outputs (mapped whole) and edgecnn decodes "
            "them",
        )
        if smaller is not None:  # the export option first, the cut as its alternative
            advice[0], advice[1] = advice[1], advice[0]
    return EdgeTPUCheck(
        compatible=not problems,
        compiled=False,
        problems=_unique(problems),
        operators=statuses,
        mapped=len(mapped_ops),
        cpu=len(statuses) - len(mapped_ops),
        compiler=table.compiler,
        notes=_notes(statuses),
        failure=failure,
        runtime=table.default_runtime if mapped_ops else None,
        min_runtime=min_runtime,
        advice=advice,
        kind=kind.describe(),
        kind_fix=kind.fix(),
        smaller_imgsz=smaller[0] if smaller else None,
    )


def _grouped_convolutions(model: Any, graph: Any) -> list[tuple[int, list[int], list[int]]]:
    """``(op, input shape, filter shape)`` of each CONV_2D whose filter sees fewer channels than its input.

    TFLite's op_version.cc gives such a grouped convolution CONV_2D version 6 (runtime 2.9), and its
    UpdateOpVersion raises the one CONV_2D op code to the highest version any CONV_2D needs: one grouped
    convolution makes the whole file "CONV_2D version 6", which compiler 16.0 cannot parse.
    """
    found = []
    for index, op in enumerate(graph.operators or []):
        name, _ = opcode_name(model.operatorCodes[op.opcodeIndex])
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        if name != "CONV_2D" or len(ins) < 2:
            continue
        src, weights = _shape(graph.tensors[ins[0]]), _shape(graph.tensors[ins[1]])
        if len(src) == 4 and len(weights) == 4 and src[3] != weights[3]:
            found.append((index, src, weights))
    return found


def _grouped_problem(grouped: list[tuple[int, list[int], list[int]]]) -> str:
    index, src, weights = grouped[0]
    more = f" and {len(grouped) - 1} more" if len(grouped) > 1 else ""
    return (
        f"CONV_2D v6 comes from {len(grouped)} grouped convolution(s) (op {index}{more}: filter {weights} on "
        f"{src}, {src[3] // max(weights[3], 1)} groups; in a YOLO11 export the attention block's positional "
        "encoding): TFLite writes a grouped CONV_2D as version 6 and gives every CONV_2D of the file the "
        "highest version any of them needs, so edgetpu_compiler (CONV_2D up to v5) cannot parse the file."
    )


def _grouped_fix(kind: ModelKind) -> str:
    if kind.producer == "ultralytics":
        size = f" imgsz={kind.imgsz}" if kind.imgsz else ""
        return (
            f"export with Ultralytics 8.3.149 or newer as yolo export model=best.pt format=edgetpu{size}: for "
            "format=edgetpu it converts with onnx2tf's disable_group_convolution (no grouped CONV_2D, so no v6) "
            "and compiles the *_full_integer_quant.tflite itself; format=tflite int8=True keeps the grouped "
            "convolution, so its files stay CONV_2D v6"
        )
    return (
        "write the grouped convolution without groups: as DEPTHWISE_CONV_2D when each group has one channel, "
        "or one CONV_2D per group and a CONCATENATION (onnx2tf --disable_group_convolution does that), then "
        "convert again"
    )


# Ops a product of two activations is fed through (and what lies between q·kᵀ and ·v): no compute of their own.
_ATTENTION_PATH = frozenset(
    {
        "TRANSPOSE",
        "RESHAPE",
        "STRIDED_SLICE",
        "SLICE",
        "SPLIT",
        "SPLIT_V",
        "PACK",
        "UNPACK",
        "CONCATENATION",
        "SQUEEZE",
        "EXPAND_DIMS",
        "GATHER",
        "QUANTIZE",
        "MUL",
        "SOFTMAX",
    }
)


@dataclass(frozen=True)
class Attention:
    """A self-attention block: its products of two activations and the ops that feed them by layout alone."""

    matmuls: tuple[int, ...]
    ops: frozenset[int]


def _attention(model: Any, graph: Any) -> Attention | None:
    """The products of two activations (BATCH_MATMUL, or FULLY_CONNECTED with computed weights, which is how
    onnx2tf unfolds YOLO11's C2PSA attention) and every op that reaches one through layout ops only."""
    ops = graph.operators or []
    names = [opcode_name(model.operatorCodes[op.opcodeIndex])[0] for op in ops]
    consumers: dict[int, list[int]] = {}
    matmuls = []
    for index, op in enumerate(ops):
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        for i in ins:
            consumers.setdefault(i, []).append(index)
        if (
            names[index] in ("BATCH_MATMUL", "FULLY_CONNECTED")
            and len(ins) >= 2
            and not any(_is_constant(model, graph.tensors[i]) for i in ins[:2])
        ):
            matmuls.append(index)
    if not matmuls:
        return None
    reach = set(matmuls)
    for index in reversed(range(len(ops))):  # TFLite stores operators in execution order
        if index in reach or names[index] not in _ATTENTION_PATH:
            continue
        outs = [int(i) for i in (ops[index].outputs if ops[index].outputs is not None else [])]
        if any(c in reach for i in outs for c in consumers.get(i, [])):
            reach.add(index)
    return Attention(tuple(matmuls), frozenset(reach))


def _attention_advice(
    table: SupportedOps, model: Any, statuses: list[OpStatus], kind: ModelKind, attention: Attention
) -> str | None:
    """What keeps the attention block off the Edge TPU, and whether a smaller input would change it.

    Compiled YOLO11n exports (Ultralytics 8.3.38 to 8.3.91, no source beside them: benzionfischer/
    yolo_format_converter, charlesLangko1234/yolov11_person_detection, JavierSupr/Coral-Inference,
    ClemF4/Cattainer at 640 px; PID-and-Me/AI-Pool, julham76/yolo11-edgetpu, mark81681/rasp at 192 and
    256 px) all end their Edge TPU subgraph in C2PSA: at 640 at the TRANSPOSE of [1,20,20,256] (size), at
    192 and 256 at the SPLIT of the attention heads (any size), so a smaller input never keeps it whole.
    """
    refused = [
        st
        for st in statuses
        if st.index in attention.ops
        and st.subgraph == 0
        and st.status not in (MAPPED, SUBGRAPH, NOT_COMPILED)
        and st.reason != FLOAT_IO
    ]
    if not refused:
        return None
    graph = model.subgraphs[0]
    where = f"the attention block (ops {min(attention.ops)}-{max(attention.ops)}"
    where += ", YOLO11's C2PSA)" if kind.producer == "ultralytics" else ")"
    sized = [st for st in refused if st.reason.startswith(SIZE_REASON)]
    excess = 1.0
    for st in sized:
        op = graph.operators[st.index]
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        over = _size_excess(table, st.name, graph, model, ins, outs)
        excess = max(excess, over[0] if over else 1.0)
    side = smaller_imgsz(kind.imgsz, excess) if kind.imgsz and sized else None
    size_names = ", ".join(dict.fromkeys(f"{st.name} (op {st.index})" for st in sized))
    if len(sized) == len(refused):
        if side is None:
            return f"{where} is too large for the Edge TPU ({size_names}) and no input size makes it fit"
        how = (
            f"yolo export model=best.pt format=edgetpu imgsz={side}"
            if kind.producer == "ultralytics"
            else f"re-export the model for a {side}x{side} input"
        )
        return (
            f"{where} stays on the CPU only for its size ({size_names}): at imgsz {side} or less (from "
            f"{kind.imgsz}) it fits: {how} (an estimate from the size limits: check the new export again)"
        )
    hard = "; ".join(
        dict.fromkeys(f"{st.name} {st.reason}" for st in refused if not st.reason.startswith(SIZE_REASON))
    )
    fits = f"; its {size_names} would fit at imgsz {side} or less" if side is not None and sized else ""
    return (
        f"{where} does not map at any input size: {hard}{fits}. Everything after it runs on the CPU; for a "
        "detector the Edge TPU runs up to its head, use one without attention (YOLOv8n maps up to its head)"
    )


def _yolo_heads_found(model_file: ModelFile) -> bool:
    """A YOLOv8/YOLO11 or YOLOv5 export ``convert --cut-head`` can cut ."""
    from edgecnn.tasks.yolo_head_graph import find_heads

    return find_heads(model_file) is not None


def _smaller_imgsz(
    table: SupportedOps, model: Any, statuses: list[OpStatus], kind: ModelKind
) -> tuple[int, str] | None:
    """When only size limits keep ops off the Edge TPU: the input side at which they would all map.

    The size-limited tensors of a detector's head grow with the input area, so the largest excess over its
    limit says how much smaller the input has to be (an estimate: the compiler has to be run on that export).
    """
    causes = [
        st
        for st in statuses
        if not st.edgetpu
        and st.subgraph == 0
        and st.status != SUBGRAPH
        and st.reason != FLOAT_IO
        and not _expected_on_cpu(st)
    ]
    if not causes or kind.imgsz is None or not all(st.reason.startswith(SIZE_REASON) for st in causes):
        return None
    graph = model.subgraphs[0]
    excess = 1.0
    for st in causes:
        op = graph.operators[st.index]
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        over = _size_excess(table, st.name, graph, model, ins, outs)
        excess = max(excess, over[0] if over else 1.0)
    side = smaller_imgsz(kind.imgsz, excess)
    if side is None or side >= kind.imgsz:
        return None
    how = (
        f"yolo export model=best.pt format=edgetpu imgsz={side}"
        if kind.producer == "ultralytics"
        else f"re-export the model for a {side}x{side} input"
    )
    return side, (
        f"{len(causes)} op(s) stay on the CPU only for their size (and what follows them with them); their "
        f"tensors grow with the input area, so at imgsz {side} (from {kind.imgsz}) all of them should map: "
        f"{how} (an estimate: check the new export again)"
    )


def _already_compiled(model_file: ModelFile, table: SupportedOps) -> EdgeTPUCheck:
    """A compiled model: the edgetpu-custom-op runs on the Edge TPU, whatever is left on the CPU."""
    ops = [
        OpStatus(i, op.name, op.version, op.name == EDGETPU_CUSTOM_OP)
        for i, op in enumerate(model_file.operators())
    ]
    compiled_notes = [POSTPROCESS_NOTE] if any(_expected_on_cpu(o) for o in ops) else []
    return EdgeTPUCheck(True, True, [], ops, sum(o.edgetpu for o in ops), 0, table.compiler, compiled_notes)


def _whole_model_problems(model_file: ModelFile, table: SupportedOps) -> tuple[list[str], list[str]]:
    """Problems of the model as a whole (batch, dynamic shapes) and the compiler's outright refusals."""
    model = model_file.model
    graph = model.subgraphs[0]
    problems: list[str] = []
    failures: list[str] = []
    for tensor in model_file.inputs:
        if tensor.shape and tensor.shape[0] != 1:
            problems.append(f"input {tensor.name} has batch {tensor.shape[0]}: the Edge TPU needs batch 1.")
    dynamic = (
        sorted({_name(t) for t in graph.tensors if _is_dynamic(t)}) if _shapes_at_run_time(model) else []
    )
    if dynamic:
        problems.append(
            f"dynamic shapes on {len(dynamic)} tensor(s) (e.g. {dynamic[0]}): re-export with a fixed batch of 1 "
            "(edgecnn convert does)."
        )
        failures.append(
            "Attempting to use a delegate that only supports static-sized tensors with a graph that has "
            "dynamic-sized tensors"
        )
    if not any(_TYPE_NAMES.get(t.type) in _QUANTIZED for g in model.subgraphs for t in g.tensors or []):
        failures.append("Model not quantized")
    for code in model.operatorCodes or []:
        name, custom = opcode_name(code)
        version = int(code.version or 1)
        if not custom and name in table.parse_limits and version > table.parse_limits[name]:
            failures.append(
                f"Didn't find op for builtin opcode '{name}' version '{version}' (Model could not be parsed)"
            )
    return problems, failures


def _other_subgraphs(model: Any) -> list[OpStatus]:
    """Ops of subgraphs past the first (control flow bodies): never compiled, always on the CPU."""
    statuses = []
    for s, sub in enumerate(model.subgraphs[1:], start=1):
        for index, op in enumerate(sub.operators or []):
            name, _ = opcode_name(model.operatorCodes[op.opcodeIndex])
            version = int(model.operatorCodes[op.opcodeIndex].version or 1)
            statuses.append(
                OpStatus(index, name, version, False, f"in subgraph {s}", SUBGRAPH, _SUBGRAPH_ADVICE, s)
            )
    return statuses


def _unsupported_problems(statuses: list[OpStatus]) -> list[str]:
    """One problem per (op, version, reason), naming every op index it applies to."""
    unsupported: dict[tuple[str, int, str], list[int]] = {}
    for st in statuses:
        if st.edgetpu or st.reason in (FLOAT_IO, DYNAMIC) or st.status in (SUBGRAPH, NOT_COMPILED):
            continue
        if _expected_on_cpu(st):
            continue
        unsupported.setdefault((st.name, st.version, st.reason), []).append(st.index)
    problems = []
    for (name, version, reason), indices in unsupported.items():
        where = f"op {indices[0]}" if len(indices) == 1 else "ops " + ", ".join(map(str, indices))
        problems.append(f"{name} v{version} ({where}) cannot run on the Edge TPU: {reason}.")
    return problems


def _notes(statuses: list[OpStatus]) -> list[str]:
    notes = []
    if any(st.reason == FLOAT_IO for st in statuses):
        notes.append(
            "float input/output: QUANTIZE/DEQUANTIZE at the ends run on the CPU (convert with --io int8 or uint8 to avoid it)."
        )
    if any(_expected_on_cpu(st) for st in statuses):
        notes.append(POSTPROCESS_NOTE)
    return notes


def _advice(statuses: list[OpStatus], first_cpu: OpStatus | None) -> list[str]:
    """One ``change:`` line per op to fix; ops that only sit in another Edge TPU segment are summed up."""
    lines = [
        st.advice
        for st in statuses
        if not st.edgetpu and st.advice and st.status != SUBGRAPH and not _expected_on_cpu(st)
    ]
    for where in ("before", "after"):
        group = [
            st
            for st in statuses
            if st.status == SUBGRAPH and st.subgraph == 0 and st.reason.startswith(where)
        ]
        if not group:
            continue
        names = ", ".join(f"{n} x{c}" for n, c in Counter(st.name for st in group).items())
        splitter = group[0].reason[len(where) + 1 :]
        verb = "follow" if where == "after" else "come before"
        lines.append(
            f"{len(group)} op(s) ({names}) run on the CPU only because they {verb} {splitter} and the compiler "
            "maps one Edge TPU subgraph: once it maps (or moves to the end of the model), they map too"
        )
    lines += [st.advice for st in statuses if st.status == SUBGRAPH and st.subgraph > 0]
    return _unique(lines)


_SUBGRAPH_ADVICE = (
    "ops in a second subgraph (WHILE/IF bodies) run on the CPU: unroll the loop or move it out of the model"
)


def _partition(table: SupportedOps, model: Any, graph: Any, failures: list[str]) -> list[OpStatus]:
    """Statuses for subgraph 0: each op's own verdict, then the one Edge TPU subgraph the compiler keeps.

    Every CPU op on a path starts a new segment: an op's segment is the largest number of CPU ops on any
    path from the graph inputs to it, so no segment has a TPU -> CPU -> TPU path inside it. The compiler
    maps one segment, the one whose ops write the most elements (the earliest on a tie: Coral's models,
    and users' logs where a few supported ops near the input stay on the CPU beside a large mapped rest);
    supported ops in the other segments get "More than one subgraph is not supported".

    By elements, not by op count: compiled YOLO11n 640 exports (benzionfischer/yolo_format_converter,
    JavierSupr/Coral-Inference, charlesLangko1234/yolov11_person_detection; compiled files only) keep the
    backbone before C2PSA's refused TRANSPOSE on the Edge TPU, 133 ops writing 38.8M elements in the
    same-architecture eronariodito export, and leave the neck after the attention, 176 ops writing 31.2M,
    on the CPU. Counting ops picked the neck; counting elements keeps Coral's 14 + 13 pairs and the users'
    pairs exact as before (benchmarks/edgetpu_check_agreement.py).
    """
    graph_inputs = {int(i) for i in graph.inputs}
    graph_outputs = {int(i) for i in graph.outputs}
    depth_of_tensor: dict[int, int] = {}
    rows: list[
        tuple[int, str, int, int, tuple[str, str, str] | None]
    ] = []  # index, name, version, depth, verdict
    for index, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        name, custom = opcode_name(code)
        version = int(code.version or 1)
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        verdict = _op_verdict(table, name, custom, version, graph, model, op, ins, outs)
        boundary = (name == "QUANTIZE" and set(ins) <= graph_inputs and _all_float(graph, ins)) or (
            name == "DEQUANTIZE" and set(outs) <= graph_outputs and _all_float(graph, outs)
        )
        if boundary and verdict is not None:
            verdict = (
                DATA_TYPE,
                FLOAT_IO,
                "convert with --io int8 (or uint8) so the model takes and gives integers",
            )
        depth = max([depth_of_tensor.get(i, 0) for i in ins], default=0)
        for i in outs:
            depth_of_tensor[i] = depth + (verdict is not None)
        rows.append((index, name, version, depth, verdict))
    if failures:
        return [
            OpStatus(i, n, v, False, vd[1], vd[0], vd[2])
            if vd
            else OpStatus(i, n, v, False, f"not compiled: {failures[0]}", NOT_COMPILED)
            for i, n, v, _, vd in rows
        ]
    sizes: Counter[int] = Counter()  # segment -> the elements its ops write
    for index, _, _, depth, verdict in rows:
        if verdict is None:
            sizes[depth] += _written(graph, graph.operators[index])
    chosen = min(sizes, key=lambda d: (-sizes[d], d)) if sizes else -1
    splitters = {}  # segment -> the first CPU op that ends it (and so separates it from the next)
    for i, n, _, depth, verdict in rows:
        if verdict is not None and depth not in splitters:
            splitters[depth] = (n, i)
    statuses = []
    for i, n, v, depth, verdict in rows:
        if verdict is not None:
            statuses.append(OpStatus(i, n, v, False, verdict[1], verdict[0], verdict[2]))
        elif depth == chosen:
            statuses.append(OpStatus(i, n, v, True))
        else:
            where, (op_name, op_index) = (
                ("after", splitters[chosen]) if depth > chosen else ("before", splitters[depth])
            )
            statuses.append(OpStatus(i, n, v, False, f"{where} {op_name} (op {op_index})", SUBGRAPH))
    return statuses


def _written(graph: Any, op: Any) -> int:
    """Elements an op writes: how the compiler weighs a segment (see :func:`_partition`)."""
    return sum(
        _product(_shape(graph.tensors[int(i)])) for i in (op.outputs if op.outputs is not None else [])
    )


def _first_blocking(statuses: list[OpStatus], failures: list[str]) -> OpStatus | None:
    """The op where the Edge TPU subgraph ends: the first CPU op that depends on mapped ops."""
    if failures:
        return next((st for st in statuses if not st.edgetpu and st.reason != FLOAT_IO), None)
    seen_tpu = False
    for st in statuses:
        seen_tpu = seen_tpu or st.edgetpu
        if seen_tpu and not st.edgetpu and st.reason != FLOAT_IO and st.status != SUBGRAPH:
            return st
    return None


def _op_verdict(
    table: SupportedOps,
    name: str,
    custom: bool,
    version: int,
    graph: Any,
    model: Any,
    op: Any,
    ins: list[int],
    outs: list[int],
) -> tuple[str, str, str] | None:
    """``(status, reason, advice)`` when the op cannot map by itself, else ``None``."""
    if custom:
        return (
            NOT_SUPPORTED,
            f"custom op {name!r} is not an Edge TPU operation",
            f"{name} runs on the CPU: keep it at the end of the model (post-processing) so everything before maps",
        )
    if name in table.data_type_only:
        return (
            DATA_TYPE,
            f"{name} produces float tensors (the Edge TPU runs int8/uint8 only)",
            f"{name} turns integers into floats: keep the model integer to the end (--io int8), or do the "
            "float maths on the CPU after the model",
        )
    if name not in table.max_versions:
        return (
            NOT_SUPPORTED,
            "not in the Edge TPU's supported operations",
            f"{name} is not an Edge TPU op: replace it with supported ops, or move it to the end of the model "
            "(after the last Edge TPU op) so only it runs on the CPU",
        )
    if version > table.max_versions[name]:
        return (
            VERSION,
            f"op version {version} is newer than edgetpu_compiler {table.compiler} accepts (max v{table.max_versions[name]})",
            f"{name} v{version} was written by a newer TensorFlow Lite converter: re-convert with one that "
            f"writes {name} v{table.max_versions[name]} or older (TensorFlow 2.5-2.8, or "
            "converter.experimental_new_converter = False)",
        )
    for i in ins + outs:
        tensor = graph.tensors[i]
        type_name = _TYPE_NAMES.get(tensor.type, str(tensor.type))
        if type_name == "INT16" and tensor.isVariable:
            continue  # an LSTM's cell state: the compiler maps UNIDIRECTIONAL_SEQUENCE_LSTM with it
        if type_name not in _QUANTIZED and type_name not in _ALLOWED_OTHER:
            return (
                DATA_TYPE,
                f"works on {type_name} tensors (the Edge TPU runs int8/uint8 only)",
                f"{name} works on {type_name}: quantize the whole model to int8 (full-integer), "
                "or move float post-processing out of the model",
            )
        if type_name in ("INT32", "INT64") and i in outs:
            return (
                DATA_TYPE,
                f"produces {type_name} tensors (the Edge TPU runs int8/uint8 only)",
                f"{name} produces {type_name}: do it on the CPU after the model",
            )
    for i in ins + outs:
        tensor = graph.tensors[i]
        if _is_dynamic(tensor) and _shapes_at_run_time(model):
            return (NOT_COMPILED, DYNAMIC, "re-export with a fixed batch of 1 (edgecnn convert does)")
        shape = _shape(tensor)
        if len(shape) > 3 and _product(shape[:-3]) > 1 and not _is_constant(model, tensor):
            return (
                RANK,
                f"tensor {_name(tensor)} {shape} uses more than the 3 innermost dimensions",
                f"{name}: keep tensors to batch 1 and at most 3 dimensions larger than 1 (reshape before it)",
            )
    return _constraint(table, name, graph, model, op, ins, outs)


def _constraint(
    table: SupportedOps, name: str, graph: Any, model: Any, op: Any, ins: list[int], outs: list[int]
) -> tuple[str, str, str] | None:
    """The documented per-op limits (coral.ai models-intro "supported operations"), as LIMITATION."""
    options = op.builtinOptions
    activation = getattr(options, "fusedActivationFunction", 0) or 0
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION") and activation:
        return (
            LIMITATION,
            "has a fused activation function, which the Edge TPU does not support on it",
            f"{name}: apply the activation as its own op (RELU after {name}), not fused into it",
        )
    if (
        name in ("CONV_2D", "DEPTHWISE_CONV_2D")
        and options is not None
        and (options.dilationHFactor or 1) != (options.dilationWFactor or 1)
    ):
        return (
            LIMITATION,
            f"dilation {options.dilationHFactor}x{options.dilationWFactor} differs in x and y",
            f"{name}: use the same dilation in x and y",
        )
    if name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR") and ins and outs:
        src, dst = _shape(graph.tensors[ins[0]]), _shape(graph.tensors[outs[0]])
        if len(src) == 4 and len(dst) == 4:
            why = _resize_limit(table, src[1:3], dst[1:3])
            if why:
                return (
                    LIMITATION,
                    why,
                    f"{name} {src[1]}x{src[2]} -> {dst[1]}x{dst[2]} exceeds what the Edge TPU maps: resize on the "
                    "CPU after the model, or use a smaller output or an integer factor of "
                    f"{table.limits['resize_max_scale']} or less",
                )
    if name == "SOFTMAX" and ins:
        # Coral's table says "one-dimensional, at most 16000 elements", but every YOLOv8 log shows SOFTMAX on
        # [1,4,8400,16] (DFL, along the last axis) as "More than one subgraph", never as a limitation: the
        # compiler limits the axis the softmax runs along (the innermost), not the other ones.
        shape = _shape(graph.tensors[ins[0]])
        if shape and shape[-1] > table.limits["softmax_max_elements"]:
            return (
                LIMITATION,
                f"runs along an axis of {shape[-1]} elements (input {shape}); the Edge TPU maps up to "
                f"{table.limits['softmax_max_elements']}",
                "SOFTMAX: apply it on the CPU after the model, or over fewer classes",
            )
    size = _size_limit(table, name, graph, model, ins, outs)
    if size is not None:
        return size
    # Coral's documented limit ("output tensor is one-dimensional", coral.ai models-intro). No compiled file here
    # isolates it: in YOLO11's attention (FULLY_CONNECTED with computed weights, outputs [36,36] .. [400,400]) the
    # SPLIT before it is already refused, so those pairs agree with or without this rule.
    if name == "FULLY_CONNECTED" and outs and len([d for d in _shape(graph.tensors[outs[0]]) if d != 1]) > 1:
        return (
            LIMITATION,
            f"output {_shape(graph.tensors[outs[0]])} is not one-dimensional",
            "FULLY_CONNECTED: flatten its input first (Flatten before Dense) so the output is one-dimensional",
        )
    if name == "FULLY_CONNECTED" and options is not None and (options.weightsFormat or 0) != 0:
        return (
            LIMITATION,
            "uses a shuffled weights format",
            "FULLY_CONNECTED: convert with the default weights format",
        )
    if name == "STRIDED_SLICE" and options is not None:
        strides = _constant(model, graph, ins[3]) if len(ins) > 3 else None
        if (
            (options.ellipsisMask or 0)
            or (options.newAxisMask or 0)
            or (strides is not None and any(s != 1 for s in strides))
        ):
            return (
                LIMITATION,
                "strides other than 1, or an ellipsis/new-axis mask",
                "STRIDED_SLICE: slice with stride 1 (a plain SLICE) and no ellipsis or new-axis mask",
            )
    axis_ops = {"MEAN": 1, "SUM": 1, "REDUCE_MAX": 1, "REDUCE_MIN": 1, "SPLIT": 0}
    # A SPLIT into one piece copies its input: the compiler maps it even on the batch axis (yamnet_spectra_in
    # in Coral's coralmicro models, SPLIT of [1,96,64,1] along axis 0 into 1, compiled onto the Edge TPU).
    # A SPLIT into pieces along axis 0 of a 3-D tensor is refused too: YOLO11n exports (Ultralytics 8.3.87 and
    # 8.3.91) compiled at 192 and 256 px (PID-and-Me/AI-Pool, julham76/yolo11-edgetpu, mark81681/rasp; compiled
    # files only, no source beside them) end the Edge TPU subgraph with the [2,36,32], [2,32,36], [2,64,36]
    # (192 px) and [2,64,32], [2,32,64], [2,64,64] (256 px) attention heads as outputs and keep the SPLIT of
    # each along axis 0 on the CPU, though everything it feeds is smaller than what maps elsewhere.
    if name in axis_ops and len(ins) > axis_ops[name] and not (name == "SPLIT" and len(outs) == 1):
        axes = _constant(model, graph, ins[axis_ops[name]])
        shape = _shape(graph.tensors[ins[1 - axis_ops[name]]])
        rank = len(shape)
        if axes is not None and any(a % max(rank, 1) == 0 for a in axes):
            if rank == 4:
                return (
                    LIMITATION,
                    "works along the batch dimension",
                    f"{name}: reduce or split along height, width or channels, not the batch",
                )
            if rank == 3 and name == "SPLIT":
                return (
                    LIMITATION,
                    f"splits {shape} along its outermost axis",
                    "SPLIT: split along an inner axis (keep the outermost axis 1)",
                )
    if name == "PAD" and len(ins) > 1:
        pads = _constant(model, graph, ins[1])
        if pads is not None and len(pads) >= 8 and any(pads[:2]):
            return (LIMITATION, "pads the batch dimension", "PAD: pad height, width or channels only")
    return None


# Size limits on layout and element-wise ops, learned from real YOLO exports users compiled with compiler 16
# (benchmarks/edgetpu_check_agreement.py on /work/peer-data/edgetpu-pairs; fetched, not committed). Each limit
# lies between the largest size seen mapped and the smallest seen refused ("Operation is otherwise supported,
# but not mapped due to some unspecified limitation"); the value chosen inside that bracket is a guess:
# - TRANSPOSE, by elements: mapped 57600 (YOLOv8n 640 head, [1,20,20,144]) and 26000 ([1,20,20,65]); refused
#   104000 ([1,40,40,65], 1-class YOLOv8n 640), 134400 ([1,4,16,2100], YOLOv8n 320 DFL), 230400
#   ([1,40,40,144]), 537600, 921600. Limit 65536.
# - RESHAPE, CONCATENATION, STRIDED_SLICE, LOGISTIC, QUANTIZE, by the product of a tensor's two innermost
#   dimensions (its whole size for YOLO's [1,C,N] head tensors; a [1,320,320,16] backbone activation counts
#   5120 and maps): mapped 176400 (CONCATENATION to [1,84,2100], YOLOv8n 320), 168000 (LOGISTIC and QUANTIZE
#   on [1,80,2100]), 134400 (RESHAPE from [1,64,2100]); refused 230400 (RESHAPE to [1,144,1600]), 302400
#   (CONCATENATION to and STRIDED_SLICE from [1,144,2100]), 408000 (RESHAPE to [1,4800,85], YOLOv5n 640),
#   672000 (LOGISTIC/QUANTIZE on [1,80,8400]), 2142000 (CONCATENATION and QUANTIZE on [1,25200,85]).
#   Limit 196608.
# - RESHAPE, by its output's longest axis before the innermost: mapped 1600 ([1,40,40,255] -> [1,1600,3,85],
#   YOLOv5n 640, 408000 elements); refused 6400 ([1,80,80,255] -> [1,6400,3,85]) though its innermost
#   dimensions are small. CONCATENATION and STRIDED_SLICE on that same [1,6400,3,85] layout map, so this
#   limit is RESHAPE's alone. Limit 4096.
_PLANE_LIMITED = ("RESHAPE", "CONCATENATION", "STRIDED_SLICE", "LOGISTIC", "QUANTIZE")
SIZE_REASON = "too large for the Edge TPU"  # every size-limit reason starts with it (see advice)


def _size_limit(
    table: SupportedOps, name: str, graph: Any, model: Any, ins: list[int], outs: list[int]
) -> tuple[str, str, str] | None:
    """The size limits above, as ``(LIMITATION, reason, advice)``; ``None`` when the op is small enough."""
    over = _size_excess(table, name, graph, model, ins, outs)
    return over[1] if over else None


def _size_excess(
    table: SupportedOps, name: str, graph: Any, model: Any, ins: list[int], outs: list[int]
) -> tuple[float, tuple[str, str, str]] | None:
    """``(how many times over, verdict)`` for the first size limit the op exceeds, else ``None``."""
    tensors = [graph.tensors[i] for i in ins + outs if not _is_constant(model, graph.tensors[i])]
    if name == "TRANSPOSE" and tensors:
        limit = table.limits["transpose_max_elements"]
        shape = max((_shape(t) for t in tensors), key=_product)
        if _product(shape) > limit:
            return _product(shape) / limit, (
                LIMITATION,
                f"{SIZE_REASON}: {shape} has {_product(shape)} elements, TRANSPOSE maps up to {limit}",
                f"TRANSPOSE of {shape}: transpose on the CPU after the model, or make the tensor smaller "
                "(a smaller input size)",
            )
    if name in _PLANE_LIMITED and tensors:
        limit = table.limits["inner_plane_max_elements"]
        shape = max((_shape(t) for t in tensors), key=_inner_plane)
        if _inner_plane(shape) > limit:
            return _inner_plane(shape) / limit, (
                LIMITATION,
                f"{SIZE_REASON}: {shape} holds {_inner_plane(shape)} elements in its two innermost dimensions, "
                f"{name} maps up to {limit}",
                f"{name} on {shape}: do it on the CPU after the model, or make the tensor smaller (a smaller "
                "input size)",
            )
    if name == "RESHAPE" and outs:
        shape = _shape(graph.tensors[outs[0]])
        limit = table.limits["reshape_max_outer_axis"]
        if len(shape) > 1 and max(shape[:-1]) > limit:
            return max(shape[:-1]) / limit, (
                LIMITATION,
                f"{SIZE_REASON}: output {shape} has an axis of {max(shape[:-1])} before the innermost, RESHAPE "
                f"maps up to {limit}",
                f"RESHAPE to {shape}: reshape on the CPU after the model, or make the tensor smaller (a smaller "
                "input size)",
            )
    return None


def _inner_plane(shape: list[int]) -> int:
    return _product(shape[-2:]) if shape else 0


def _resize_limit(table: SupportedOps, src: list[int], dst: list[int]) -> str | None:
    scale, side = table.limits["resize_max_scale"], table.limits["resize_max_output_side"]
    for a, b in zip(src, dst, strict=True):
        if a <= 0 or b <= 0:
            return None
        big, small = max(a, b), min(a, b)
        if big % small:
            return f"output {dst[0]}x{dst[1]} is not an integer multiple of input {src[0]}x{src[1]}"
        if big // small > scale:
            return f"scales {src[0]}x{src[1]} by {big // small}, more than the {scale}x the Edge TPU maps"
    if max(dst) > side and dst != src:
        return f"output {dst[0]}x{dst[1]} is larger than the {side} pixels a side the Edge TPU resizes"
    return None


def _constant(model: Any, graph: Any, index: int) -> list[int] | None:
    """A small int32 constant (axes, paddings, strides) through numpy, or ``None`` when not constant."""
    tensor = graph.tensors[index]
    if not _is_constant(model, tensor) or _TYPE_NAMES.get(tensor.type) != "INT32":
        return None
    data = np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8).tobytes()
    return [int(v) for v in np.frombuffer(data, dtype="<i4")]


def _shape(tensor: Any) -> list[int]:
    return [int(d) for d in (tensor.shape if tensor.shape is not None else [])]


def _all_float(graph: Any, indices: list[int]) -> bool:
    return all(_TYPE_NAMES.get(graph.tensors[i].type) == "FLOAT32" for i in indices)


def _shapes_at_run_time(model: Any) -> bool:
    """Whether TFLite would size some tensor at run time, which is what the compiler's interpreter refuses.

    A batch of -1 in the shape signatures alone is not enough: the tensors still have static shapes, and the
    compiler maps such a model whole (a user's Keras export, [-1,200,66,1] signatures, compiled with every op
    on the Edge TPU). A SHAPE op feeding the shapes of later ops (a dynamic-batch Flatten), or a tensor whose
    shape itself holds -1, is what fails.
    """
    for graph in model.subgraphs:
        if any(-1 in _shape(t) for t in graph.tensors):
            return True
        for op in graph.operators or []:
            if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.SHAPE:
                return True
    return False


def _is_dynamic(tensor: Any) -> bool:
    return tensor.shapeSignature is not None and any(int(d) < 0 for d in tensor.shapeSignature)


def _is_constant(model: Any, tensor: Any) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _name(tensor: Any) -> str:
    return text(tensor.name)


def _product(values: list[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Agreement:
    """The check against a model the real compiler made: CPU ops (by name) only one of them names.

    With the compiler's log (``X_edgetpu.log``), ``log_exact`` says whether the check's ``(operator, status)``
    counts equal the log's table, and ``log_check_only``/``log_compiler_only`` name the rows that differ
    ("OP: status" -> count); without a log they stay ``None``.
    """

    exact: bool
    check_cpu_count: int
    compiler_cpu_count: int
    check_only: dict[str, int]
    compiler_only: dict[str, int]
    log_exact: bool | None = None
    log_check_only: dict[str, int] | None = None
    log_compiler_only: dict[str, int] | None = None
    stop_check: str | None = None  # the op the check says the Edge TPU subgraph ends at ("NAME [shape]")
    stop_compiler: str | None = None  # the first CPU op fed by the compiled edgetpu-custom-op
    same_stop: bool = True  # the same op and input shape; the same op type when the two inputs differ in size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _op_text(model_file: ModelFile, index: int) -> str:
    model = model_file.model
    graph = model.subgraphs[0]
    op = graph.operators[index]
    name, _ = opcode_name(model.operatorCodes[op.opcodeIndex])
    ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
    data = [i for i in ins if not _is_constant(model, graph.tensors[i])]
    return f"{name} {_shape(graph.tensors[data[0]])}" if data else name


def _predicted_stop(source: ModelFile, check: EdgeTPUCheck) -> str | None:
    """The first op the check leaves on the CPU that reads what a mapped op wrote (as :func:`compiled_stop`)."""
    graph = source.model.subgraphs[0]
    written: set[int] = set()
    for st in check.operators:
        if st.subgraph:
            continue
        op = graph.operators[st.index]
        if st.edgetpu:
            written |= {int(i) for i in (op.outputs if op.outputs is not None else [])}
        elif {int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0} & written:
            return _op_text(source, st.index)
    return None


def compiled_stop(compiled: ModelFile) -> str | None:
    """The first op of a compiled model that reads what the Edge TPU wrote: where the compiler stopped."""
    graph = compiled.model.subgraphs[0]
    written: set[int] = set()
    for index, op in enumerate(graph.operators or []):
        name, _ = opcode_name(compiled.model.operatorCodes[op.opcodeIndex])
        ins = {int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0}
        if name == EDGETPU_CUSTOM_OP:
            written |= {int(i) for i in (op.outputs if op.outputs is not None else [])}
        elif ins & written:
            return _op_text(compiled, index)
    return None


def compiled_cpu_ops(compiled: ModelFile) -> Counter[str]:
    """Ops the compiler left on the CPU: every op of the compiled file besides edgetpu-custom-op.

    By name only: the compiler rewrites the op versions of what it leaves (movenet's MUL v2 comes back v1).
    """
    return Counter({op.name: op.count for op in compiled.operators() if op.name != EDGETPU_CUSTOM_OP})


def cpu_part(compiled: ModelFile) -> ModelFile | None:
    """What a compiled file runs on the CPU, as a model of its own: the edgetpu-custom-op's outputs are its inputs.

    ``None`` when the compiler left nothing on the CPU. A compiled file published without its source still
    shows, in this part, every op the compiler stopped at, with its shapes and scales: enough to ask whether
    the check would refuse that op too (:func:`stop_explained`).
    """
    model = schema.ModelT.InitFromPackedBuf(compiled.data, 0)  # a fresh copy: the caller's stays whole
    graph = model.subgraphs[0]
    operators = graph.operators or []
    custom = [
        op for op in operators if opcode_name(model.operatorCodes[op.opcodeIndex])[0] == EDGETPU_CUSTOM_OP
    ]
    inputs = [int(i) for op in custom for i in (op.outputs if op.outputs is not None else [])]
    graph.operators = [op for op in operators if op not in custom]
    graph.inputs = np.asarray(inputs, dtype=np.int32)
    graph.outputs = np.asarray([int(i) for i in graph.outputs if int(i) not in inputs], dtype=np.int32)
    if not custom or not graph.operators or not len(graph.outputs):
        return None
    model.signatureDefs = None  # they name the original inputs
    builder = flatbuffers.Builder(len(compiled.data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return parse_model(bytes(builder.Output()))


def _inputs(op: Any) -> list[int]:
    return [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]


def stop_explained(compiled: ModelFile) -> bool | None:
    """Whether the check refuses an op the compiler stopped at: one that reads the Edge TPU subgraph's outputs.

    ``False`` marks a compiled file that ends its Edge TPU subgraph at ops the check maps (on these very
    tensors): no per-op rule explains that stop, and none is inferred from it. Seen on Ultralytics exports
    (JavierSupr/Coral-Inference's YOLOv8n-seg at 640 stops at a QUANTIZE of [1,20,20,256] that maps in three
    users' YOLOv8 pairs; julham76/pose_yolo's YOLO11n-pose at 256 at a backbone PAD its YOLO11n detector maps).
    Ultralytics runs the compiler with ``--search_delegate`` (after a failed or timed-out compile it retries
    with the graph cut earlier), the likely cause; not proven, as no log of those runs is published.
    ``None`` when nothing is on the CPU.
    """
    part = cpu_part(compiled)
    if part is None:
        return None
    graph = part.model.subgraphs[0]
    edge = {int(i) for i in graph.inputs}
    check = predict_compilation(part)
    readers = [
        st for st in check.operators if st.subgraph == 0 and edge & set(_inputs(graph.operators[st.index]))
    ]
    return any(not st.edgetpu and st.status != SUBGRAPH for st in readers)


def agreement_with_compiled(
    source: ModelFile, compiled: ModelFile, log_rows: list[tuple[str, int, str]] | None = None
) -> Agreement:
    """Compare :func:`predict_compilation` on ``source`` with what the compiler left in ``compiled``.

    ``log_rows`` is the compiler log's ``(operator, count, status)`` table when there is one (its row order
    varies between runs, so rows are compared as counts).
    """
    check = predict_compilation(source)
    predicted = check.cpu_ops()
    actual = compiled_cpu_ops(compiled)
    log_fields: dict[str, Any] = {}
    if log_rows is not None:
        mine: Counter[str] = Counter()
        for name, count, status in check.log_table():
            mine[f"{name}: {status}"] += count
        theirs: Counter[str] = Counter()
        for name, count, status in log_rows:
            theirs[f"{name}: {status}"] += count
        log_fields = {
            "log_exact": mine == theirs,
            "log_check_only": dict(mine - theirs),
            "log_compiler_only": dict(theirs - mine),
        }
    stop_check, stop_compiler = _predicted_stop(source, check), compiled_stop(compiled)
    same_size = [t.shape for t in source.inputs] == [t.shape for t in compiled.inputs]
    return Agreement(
        stop_check=stop_check,
        stop_compiler=stop_compiler,
        same_stop=stop_check == stop_compiler
        if same_size
        else (stop_check or "").split(" ")[0] == (stop_compiler or "").split(" ")[0],
        exact=predicted == actual,
        check_cpu_count=sum(predicted.values()),
        compiler_cpu_count=sum(actual.values()),
        check_only=dict(predicted - actual),
        compiler_only=dict(actual - predicted),
        **log_fields,
    )
