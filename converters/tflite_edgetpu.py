"""``edgecnn convert MODEL.tflite --edgetpu``: compile a full-integer TFLite made by any tool.

Most Coral users hold a TFLite file already (Ultralytics' ``*_full_integer_quant.tflite``, a TensorFlow export),
not a Keras model. The order is the Keras path's, so nothing half-done is left behind:

1. read the file and say what it is (:mod:`model_kind`): a float or dynamic-range file stops here with the
   fix in the tool that made it, since the compiler would map none of it;
2. the static check; a model the compiler would refuse outright stops here too;
3. ``edgetpu_compiler`` (its install steps when it is missing), in a temporary directory;
4. the compiled model (with the source's metadata carried over when the compiler dropped it), its log and
   the report, each written with a temporary name + rename.

With ``cut_head`` and no compiler, the cut CPU model is still written (with the report of the check on it)
before :class:`CompilerMissing` says how to install the compiler or compile the cut file elsewhere: the cut
is what edgecnn adds, it runs on the CPU as it is, and compiling it later needs nothing but that file
(``edgecnn convert MODEL_heads.tflite --edgetpu``). Without ``cut_head`` nothing would be gained by
writing, so nothing is, as for a Keras model.

Unlike the Keras path, a model the check does not map whole is still compiled: a YOLO export keeps its head
on the CPU by design of its exporter, and the compiled file is what the user asked for; the check's lines say
which ops stay on the CPU and why.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecnn.atomic import check_output, write_atomic
from edgecnn.devices.backends.edgetpu.model_kind import Kind, ModelKind, model_kind
from edgecnn.devices.backends.edgetpu.static_check import EdgeTPUCheck, predict_compilation
from edgecnn.digest import sha256_file
from edgecnn.errors import ConversionError, RuntimeMissing, UsageError
from edgecnn.metadata import METADATA_NAME
from edgecnn.modelfile import ModelFile, append_files, parse_model, read_model, with_metadata
from edgecnn.tasks.yolo_heads import METADATA_NAME as HEADS_METADATA

REPORT_SUFFIX = "_edgetpu_report.json"


@dataclass
class TFLiteCompileReport:
    """What ``--json`` prints and the report file holds."""

    source: str
    source_sha256: str
    kind: str
    output: str | None  # None: not compiled (no compiler; the cut model and this report were written)
    log: str | None
    report: str
    cut: str | None  # with cut_head: the cut CPU model (the compiled one's CPU twin)
    check: EdgeTPUCheck
    compiler: dict[str, Any]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["check"] = self.check.to_dict()
        return data


class CompilerMissing(RuntimeMissing):
    """No ``edgetpu_compiler``, after the cut CPU model and the check's report were written (``result``)."""

    def __init__(self, message: str, result: TFLiteCompileReport) -> None:
        super().__init__(message)
        self.result = result


def is_tflite_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".tflite"


def compile_tflite(
    model: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    cut_head: bool = False,
) -> TFLiteCompileReport:
    """Check and compile ``model`` (a full-integer TFLite) for the Edge TPU; see the module docstring.

    ``cut_head``: a YOLOv8/YOLO11 or YOLOv5 export is first cut at its per-scale head maps
    (:mod:`edgecnn.converters.yolo_head_cut`); the cut CPU model ``MODEL_heads.tflite`` is written beside the
    compiled ``MODEL_heads_edgetpu.tflite`` (its CPU twin), and edgecnn decodes the heads on the CPU. Without
    ``edgetpu_compiler`` the cut model and the report are still written, then :class:`CompilerMissing` (a
    :class:`RuntimeMissing`) carries that report.
    """
    started = time.perf_counter()
    source = Path(model)
    stem = f"{source.stem}_heads" if cut_head else source.stem
    out_path = Path(output) if output else source.with_name(f"{stem}_edgetpu.tflite")
    cut_path = out_path.with_name(out_path.stem.removesuffix("_edgetpu") + ".tflite") if cut_head else None
    if out_path.suffix != ".tflite":
        raise UsageError(f"Output {out_path} must end in .tflite.")
    if out_path.resolve() == source.resolve():
        raise UsageError(
            f"Output {out_path} is the input model: pass another name, e.g. {source.stem}_edgetpu.tflite."
        )
    report_path = Path(report) if report else out_path.with_name(out_path.stem + "_report.json")
    check_output(out_path, what="compiled model")
    check_output(report_path, what="compile report")
    if cut_path is not None:
        if cut_path.resolve() == source.resolve():
            raise UsageError(f"{cut_path} would overwrite the input model: pass another -o.")
        check_output(cut_path, what="cut model")
    source_file = read_model(source)
    if source_file.is_edgetpu:
        raise UsageError(
            f"{source.name} is already compiled for the Edge TPU: run it, or compile its CPU model."
        )
    kind = model_kind(source_file)
    cut_bytes = None
    if cut_path is not None and kind.full_integer:
        from edgecnn.converters.yolo_head_cut import cut_heads

        cut_bytes = cut_heads(source_file)
        source_file = parse_model(cut_bytes, cut_path)
    if kind.kind not in (Kind.FULL_INTEGER, Kind.INTEGER_FLOAT_IO):
        raise UsageError(
            f"{source.name} is {kind.describe()}; edgetpu_compiler needs a full-integer model: {kind.fix()}."
        )
    check = predict_compilation(source_file)
    if check.failure:
        raise ConversionError(
            f"edgetpu_compiler would stop without writing a model for {source.name}: {check.failure}. "
            + (f"Change: {'; '.join(check.advice)}. " if check.advice else "")
            + f"{out_path.name} was not written."
        )
    from edgecnn.devices.backends.edgetpu.compiler import compile_model, find_compiler

    try:
        find_compiler()
    except RuntimeMissing as exc:
        if cut_path is None or cut_bytes is None:
            raise RuntimeMissing(
                f"{exc} (The static check predicts {check.mapped} ops on the Edge TPU and {check.cpu} on the "
                f"CPU: edgecnn inspect {source} --target edgetpu lists them.)"
            ) from None
        result = _report(source, kind, None, None, report_path, cut_path, check, {}, started, None)
        write_atomic(cut_path, cut_bytes, what="cut model")
        _write_report(result)
        raise CompilerMissing(
            f"{str(exc).rstrip('.')}. The cut CPU model {cut_path} is written (the static check predicts {check.mapped} ops on "
            f"the Edge TPU and {check.cpu} on the CPU) and runs as it is (edgecnn predict {cut_path} IMAGE); "
            f"compile it where edgetpu_compiler is installed: edgecnn convert {cut_path} --edgetpu.",
            result,
        ) from None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgecnn-edgetpu-") as tmp:
        staged = Path(tmp) / "in" / f"{out_path.stem.removesuffix('_edgetpu')}.tflite"
        staged.parent.mkdir()
        staged.write_bytes(source_file.data)
        compiled = compile_model(staged, Path(tmp) / "out")
        compiled_bytes = compiled.model_path.read_bytes()
        log_bytes = compiled.log_path.read_bytes() if compiled.log_path else None
    compile_s = time.perf_counter() - t0
    compiled_bytes = _carry_metadata(source_file, compiled_bytes, out_path)
    if cut_path is not None and cut_bytes is not None:
        write_atomic(cut_path, cut_bytes, what="cut model")
    write_atomic(out_path, compiled_bytes, what="compiled model")
    log_path = None
    if log_bytes is not None:
        log_path = out_path.with_suffix(".log")
        write_atomic(log_path, log_bytes)
    result = _report(
        source,
        kind,
        out_path,
        log_path,
        report_path,
        cut_path if cut_bytes is not None else None,
        check,
        compiled.summary.to_dict(),
        started,
        compile_s,
    )
    _write_report(result)
    return result


def _report(
    source: Path,
    kind: ModelKind,
    out_path: Path | None,
    log_path: Path | None,
    report_path: Path,
    cut_path: Path | None,
    check: EdgeTPUCheck,
    compiler: dict[str, Any],
    started: float,
    compile_s: float | None,
) -> TFLiteCompileReport:
    seconds = {"total": round(time.perf_counter() - started, 2)}
    if compile_s is not None:
        seconds = {"compile": round(compile_s, 2), **seconds}
    return TFLiteCompileReport(
        source=str(source),
        source_sha256=sha256_file(source),
        kind=kind.kind.value,
        output=str(out_path) if out_path else None,
        log=str(log_path) if log_path else None,
        report=str(report_path),
        cut=str(cut_path) if cut_path else None,
        check=check,
        compiler=compiler,
        seconds=seconds,
    )


def _write_report(result: TFLiteCompileReport) -> None:
    write_atomic(
        Path(result.report),
        (json.dumps(result.to_dict(), indent=2, default=str) + "\n").encode(),
        what="compile report",
    )


_CARRIED = (METADATA_NAME, HEADS_METADATA)  # edgecnn's view; the YOLO heads layout of a cut model


def _carry_metadata(source: ModelFile, compiled: bytes, out_path: Path) -> bytes:
    """The compiled file with the source's edgecnn metadata entries (its view, a cut model's heads layout) and
    appended files (labels, Ultralytics' ``metadata.json``), so the runtime decodes it without flags."""
    compiled_file = parse_model(compiled, out_path)
    missing = {n: c for n, c in source.appended.items() if n not in compiled_file.appended}
    entries = {
        name: payload
        for name in _CARRIED
        if (payload := source.metadata_entry(name)) is not None and compiled_file.metadata_entry(name) is None
    }
    if not missing and not entries:
        return compiled
    compiled_file.appended = {**missing, **compiled_file.appended}
    if not entries:
        return append_files(compiled, missing)
    for name, payload in entries.items():  # with_metadata re-appends the appended files each time
        compiled = with_metadata(compiled_file, name, payload)
        compiled_file = parse_model(compiled, out_path)
    return compiled


def format_tflite_report(result: TFLiteCompileReport) -> str:
    c = result.compiler
    if result.output is None:  # no compiler: the cut model only (CompilerMissing's line says what next)
        lines = [
            f"cut {Path(result.source).name} ({result.kind}) -> {result.cut}, not compiled",
            *result.check.format_lines(),
        ]
    else:
        lines = [
            f"compiled {Path(result.source).name} ({result.kind}) -> {result.output} in "
            f"{result.seconds['total']:.1f} s",
            *result.check.format_lines(),
            f"edgetpu_compiler {c.get('compiler_version')}: {c.get('edgetpu_ops')} ops on the Edge TPU, "
            f"{c.get('cpu_ops')} on the CPU, {c.get('subgraphs')} subgraph(s)",
        ]
    written = [
        *([result.cut] if result.cut else []),
        *([result.output] if result.output else []),
        *([result.log] if result.log else []),
        result.report,
    ]
    lines.append(f"wrote {', '.join(written)}")
    return "\n".join(lines)
