"""``edgecnn inspect``: what a model file holds, without running it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import RuntimeMissing, UsageError
from edgecnn.metadata import ModelMetadata, read_metadata
from edgecnn.modelfile import ModelFile, OperatorInfo, TensorInfo, read_model
from edgecnn.runtime import get_runtime


@dataclass
class ModelReport:
    path: str
    size_bytes: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    operators: list[OperatorInfo]
    dynamic_inputs: bool
    edgetpu_compiled: bool
    labels_count: int
    labels_first: list[str]
    metadata_source: str
    metadata: dict[str, Any]
    flatbuffer_metadata: list[str]
    appended_files: list[str]
    runtime: str
    extra: dict[str, Any] = field(default_factory=dict)  # target checks add their findings here
    task: str = ""  # classify, detect; or "unsupported: <why>"
    decoder: str = ""  # how predict/run will read the outputs
    # what the input tensor gets for a pixel and why (edgecnn.normalisation); "rule" is the human line
    input_normalisation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("inputs", "outputs"):
            for t, info in zip(data[key], getattr(self, key), strict=True):
                t["dynamic"] = info.dynamic
        for (
            key,
            value,
        ) in self.extra.items():  # target checks serialise themselves (the predicted compiler log)
            if callable(getattr(value, "to_dict", None)):
                data["extra"][key] = value.to_dict()
        return data


def inspect_model(model: str | os.PathLike[str], *, target: str | None = None) -> ModelReport:
    """``target="edgetpu"`` adds the static Edge TPU compatibility check under ``extra["edgetpu"]``."""
    if target not in (None, "edgetpu"):
        raise UsageError(f"Unknown --target {target!r}: use edgetpu.")
    mf = read_model(model)
    meta = read_metadata(mf)
    try:
        runtime = get_runtime().describe()
    except RuntimeMissing:
        runtime = "none"
    meta_dict = {k: v for k, v in asdict(meta).items() if k not in ("labels", "source", "norm_source")}
    labels = meta.labels or []
    task, decoder = _task_and_decoder(mf, meta, runtime != "none")
    return ModelReport(
        path=str(mf.path),
        size_bytes=len(mf.data),
        inputs=mf.inputs,
        outputs=mf.outputs,
        operators=mf.operators(),
        dynamic_inputs=any(t.dynamic for t in mf.inputs),
        edgetpu_compiled=mf.is_edgetpu,
        labels_count=len(labels),
        labels_first=labels[:5],
        metadata_source=meta.source,
        metadata=meta_dict,
        flatbuffer_metadata=mf.metadata_names(),
        appended_files=sorted(mf.appended),
        runtime=runtime,
        extra=_target_checks(mf, target),
        task=task,
        decoder=decoder,
        input_normalisation=_normalisation(mf, meta),
    )


def _normalisation(mf: ModelFile, meta: ModelMetadata) -> dict[str, Any]:
    """What predict/run/eval/bench feed the input (the same rule :class:`~edgecnn.preprocess.InputSpec` uses)."""
    from edgecnn.errors import EdgecnnError
    from edgecnn.normalisation import input_normalisation

    if len(mf.inputs) != 1 or len(mf.inputs[0].shape) != 4 or mf.inputs[0].shape[-1] not in (1, 3):
        return {"rule": "none: not a single 1xHxWx1 or 1xHxWx3 image input"}
    inp = mf.inputs[0]
    if inp.dtype not in ("UINT8", "INT8", "INT16", "FLOAT32"):
        return {"rule": f"none: edgecnn feeds uint8, int8, int16 or float32 inputs, not {inp.dtype.lower()}"}
    try:
        return input_normalisation(inp.dtype, inp.scale, inp.zero_point or 0, inp.shape[-1], meta).to_dict()
    except EdgecnnError as exc:
        return {"rule": f"none: {exc}"}


def _task_and_decoder(mf: ModelFile, meta: ModelMetadata, have_runtime: bool) -> tuple[str, str]:
    """The task and the decoder predict/run would use. The decoder needs the interpreter (the SSD op's
    output shapes are only known after allocation), so it is opened on the CPU when it can be."""
    from edgecnn.errors import EdgecnnError
    from edgecnn.tasks import choose_task

    try:
        task = choose_task(mf, meta)
    except EdgecnnError as exc:
        return f"unsupported: {exc}", "none"
    if not have_runtime:
        return task, "unknown (no TFLite runtime here)"
    if mf.is_edgetpu:
        return task, "known when run with the Edge TPU (the CPU cannot allocate a compiled model)"
    from edgecnn.model import open_model
    from edgecnn.nativelog import native_chatter_filtered

    try:
        with native_chatter_filtered():
            model = open_model(mf, device="cpu", threads=1)
    except EdgecnnError as exc:
        return task, f"cannot open: {exc}"
    return task, model.decoder.name


def _target_checks(mf: ModelFile, target: str | None) -> dict[str, Any]:
    if target != "edgetpu":
        return {}
    from edgecnn.devices.backends.edgetpu.static_check import predict_compilation

    return {"edgetpu": predict_compilation(mf)}


def _tensor_line(t: TensorInfo) -> str:
    q = f" q=(scale {t.scale:.6g}, zero {t.zero_point})" if t.scale is not None else ""
    sig = " dynamic " + str(list(t.shape_signature)) if t.dynamic else ""
    return f"  {t.name}: {list(t.shape)} {t.dtype}{q}{sig}"


def format_report(report: ModelReport) -> str:
    lines = [
        f"{Path(report.path).name}  {report.size_bytes / 1024:.1f} KiB  runtime: {report.runtime}",
        f"compiled for Edge TPU: {'yes' if report.edgetpu_compiled else 'no'}",
        f"task: {report.task}" + (f"  (decoder: {report.decoder})" if report.decoder else ""),
        "inputs:",
        *(_tensor_line(t) for t in report.inputs),
        f"input normalisation: {report.input_normalisation.get('rule', 'unknown')}",
        "outputs:",
        *(_tensor_line(t) for t in report.outputs),
        "operators:",
        *(f"  {op.name} v{op.version} x{op.count}" for op in report.operators),
        _labels_line(report),
        "metadata: "
        + ", ".join(
            f"{k}={v}" for k, v in report.metadata.items() if k != "provenance" and v not in (None, {}, "")
        ),
        *_provenance_lines(report.metadata.get("provenance")),
    ]
    for key, value in report.extra.items():
        render = getattr(value, "format_lines", None)  # checks render themselves (e.g. EdgeTPUCheck)
        lines.extend(render() if callable(render) else [f"{key}: {value}"])
    return "\n".join(lines)


def _labels_line(report: ModelReport) -> str:
    """``labels: 1001 (tflite-support), first 5: "background", "tench, Tinca tinca", ...``.

    Each label is quoted (JSON string syntax) because labels may hold commas (ImageNet's synonyms), so a
    plain comma list would not say where one ends and the next begins.
    """
    line = f"labels: {report.labels_count} ({report.metadata_source})"
    if not report.labels_first:
        return line
    shown = ", ".join(json.dumps(label, ensure_ascii=False) for label in report.labels_first)
    more = ", ..." if report.labels_count > len(report.labels_first) else ""
    return f"{line}, first {len(report.labels_first)}: {shown}{more}"


def _provenance_lines(provenance: Any, indent: str = "  ") -> list[str]:
    """Where the model came from, one ``key: value`` per line, nested tables indented (not a Python dict)."""
    if not isinstance(provenance, dict) or not provenance:
        return []

    def walk(data: dict[str, Any], pad: str) -> list[str]:
        out = []
        for key, value in data.items():
            if isinstance(value, dict):
                out.append(f"{pad}{key}:")
                out.extend(walk(value, pad + "  "))
            elif value not in (None, ""):
                out.append(f"{pad}{key}: {value}")
        return out

    return ["provenance:", *walk(provenance, indent)]
