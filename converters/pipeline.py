"""``edgecnn convert``: Keras model -> verified TFLite model with metadata (and optionally an Edge TPU build).

Order matters, so that nothing half-done is ever left behind:

1. check options (and that ``edgetpu_compiler`` exists when ``--edgetpu`` is asked: fail before the work);
2. load the Keras model, re-wrap it with a fixed batch of 1, convert (and a float32 reference for sizes);
3. embed metadata (labels, colour, normalization, provenance) and verify on held-out images through the
   device runtime; ``--min-agreement`` stops here with nothing written;
4. Edge TPU: static check, then compile in a temporary directory;
5. write every output with a temporary name + rename: the model, ``<name>_edgetpu.tflite`` (+ its log)
   and ``conversion_report.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import __version__
from edgecnn.atomic import check_output, write_atomic
from edgecnn.converters.calibration import (
    ConversionData,
    ImageSet,
    ModelInput,
    check_source,
    prepare_data,
    representative_dataset,
)
from edgecnn.converters.keras_to_tflite import (
    IOType,
    Quantization,
    ends_with_softmax,
    fixed_batch,
    image_input_shape,
    load_keras_model,
    num_classes,
    to_tflite,
)
from edgecnn.converters.verify import Verification, compare, keras_scores, runtime_scores
from edgecnn.devices.backends.edgetpu.static_check import EdgeTPUCheck, predict_compilation
from edgecnn.digest import sha256_file
from edgecnn.errors import ConversionError, UsageError
from edgecnn.metadata import ModelMetadata, embed_metadata, read_labels_file
from edgecnn.ml.runinfo import RunInfo, read_run_info
from edgecnn.modelfile import ModelFile, parse_model

log = logging.getLogger(__name__)

REPORT_NAME = "conversion_report.json"


@dataclass
class EdgeTPUResult:
    check: EdgeTPUCheck
    output: str | None = None
    log: str | None = None
    compiler: dict[str, Any] | None = None  # CompileSummary as a dict


@dataclass
class ConversionReport:
    source: str
    source_sha256: str
    output: str
    report: str
    quantize: str
    io: str
    input_shape: list[int]
    input_dtype: str
    output_dtype: str
    static_shapes: bool
    operators: list[dict[str, Any]]
    labels: list[str] | None
    colour: str
    mean: float | list[float]
    std: float | list[float]
    calibration: dict[str, Any]
    verification: Verification
    sizes: dict[str, Any]
    seconds: dict[str, float]
    edgetpu: EdgeTPUResult | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def convert(
    model: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    quantize: str = "int8",
    io: str | None = None,
    calibration: str | None = None,
    calibration_samples: int = 300,
    verification_samples: int = 1000,
    min_agreement: float | None = None,
    edgetpu: bool = False,
    labels: str | os.PathLike[str] | None = None,
    mean: float | None = None,
    std: float | None = None,
    report: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> ConversionReport:
    """Convert a Keras model to TFLite, verify it, embed metadata and write it atomically.

    ``min_agreement`` is a percentage (0-100) of held-out images on which float and converted model must
    pick the same class; below it a :class:`ConversionError` is raised and nothing is written.
    ``io`` defaults to int8 for int8 models and float32 otherwise.
    """
    started = time.perf_counter()
    quant, io_type = _check_options(
        quantize=quantize,
        io=io,
        edgetpu=edgetpu,
        min_agreement=min_agreement,
        calibration=calibration,
        calibration_samples=calibration_samples,
        verification_samples=verification_samples,
        mean=mean,
        std=std,
    )
    source = Path(model)
    out_path = _output_path(source, output, quant)
    report_path = Path(report) if report else out_path.with_name(REPORT_NAME)
    check_output(out_path, what="converted model")  # a directory or a socket fails now, not after converting
    check_output(report_path, what="conversion report")

    keras_model = load_keras_model(source)
    src = _describe_source(keras_model, source, labels=labels, mean=mean, std=std)
    data = prepare_data(
        calibration=calibration,
        run=src.run,
        model_input=ModelInput(src.height, src.width, src.channels, src.colour, src.resize),
        labels=src.labels,
        calibration_samples=calibration_samples,
        verification_samples=verification_samples,
        seed=seed,
    )
    conv = _convert_and_verify(
        keras_model, src, data, quant, io_type, out_path, calibration=calibration, min_agreement=min_agreement
    )
    tpu, tpu_files = _edgetpu(conv.final, conv.meta, out_path) if edgetpu else (None, {})

    write_atomic(out_path, conv.final, what="converted model")
    for path, content in tpu_files.items():
        write_atomic(path, content)
    result = _build_report(
        source, src, data, conv, tpu, out_path=out_path, report_path=report_path, started=started
    )
    write_atomic(
        report_path,
        (json.dumps(result.to_dict(), indent=2, default=str) + "\n").encode(),
        what="conversion report",
    )
    return result


def _check_options(
    *,
    quantize: str,
    io: str | None,
    edgetpu: bool,
    min_agreement: float | None,
    calibration: str | None,
    calibration_samples: int,
    verification_samples: int,
    mean: float | None,
    std: float | None,
) -> tuple[Quantization, IOType]:
    """Every mistake in the options, found before TensorFlow loads or minutes are spent."""
    quant = _choice(Quantization, quantize, "--quantize")
    io_type = _choice(IOType, io or ("int8" if quant is Quantization.INT8 else "float32"), "--io")
    if quant is not Quantization.INT8 and io_type is not IOType.FLOAT32:
        raise UsageError(
            f"--io {io_type.value} needs --quantize int8: {quant.value} models take float32 input."
        )
    if edgetpu and quant is not Quantization.INT8:
        raise UsageError(
            f"--edgetpu needs --quantize int8 (got {quant.value}): the Edge TPU runs int8 models only."
        )
    if min_agreement is not None and not 0 <= min_agreement <= 100:
        raise UsageError(f"--min-agreement is a percentage between 0 and 100 (got {min_agreement}).")
    if calibration_samples < 1 or verification_samples < 1:
        raise UsageError("--calibration-samples and --verification-samples must be at least 1.")
    if (mean is None) != (std is None):
        raise UsageError("Pass both --mean and --std (pixels become (pixel - mean) / std), or neither.")
    if std is not None and std <= 0:
        raise UsageError(f"--std must be positive (got {std}).")
    if calibration is not None:
        check_source(calibration)  # a typo or an empty folder fails before TensorFlow loads
    if edgetpu:
        from edgecnn.devices.backends.edgetpu.compiler import find_compiler

        find_compiler()  # before minutes of work: the error says how to install it
    return quant, io_type


def _output_path(source: Path, output: str | os.PathLike[str] | None, quant: Quantization) -> Path:
    out_path = Path(output) if output else source.with_name(f"{source.stem}_{quant.value}.tflite")
    if out_path.suffix != ".tflite":
        raise UsageError(f"Output {out_path} must end in .tflite.")
    if out_path.is_dir():
        raise UsageError(
            f"Output {out_path} is a directory: pass a file name such as {out_path / 'model_int8.tflite'}."
        )
    return out_path


@dataclass
class _Source:
    """What the Keras model and the run it came from say about its input, labels and preprocessing."""

    name: str
    height: int
    width: int
    channels: int
    sha256: str
    run: RunInfo | None
    labels: list[str] | None
    colour: str
    mean: float
    std: float
    resize: str


def _describe_source(
    keras_model: Any,
    source: Path,
    *,
    labels: str | os.PathLike[str] | None,
    mean: float | None,
    std: float | None,
) -> _Source:
    """Flags first, then the training run's metrics.json beside the model, then defaults."""
    height, width, channels = image_input_shape(keras_model)
    classes = num_classes(keras_model)
    source_sha = sha256_file(source)
    run = read_run_info(source)
    if run and run.model_sha256 and run.model_sha256 != source_sha:
        log.warning(
            "%s was not written together with %s (hash differs): using its settings anyway.",
            run.metrics_path,
            source.name,
        )
    label_list = read_labels_file(labels) if labels else (run.labels if run else None)
    if label_list is not None and len(label_list) != classes:
        raise UsageError(
            f"{len(label_list)} labels for a model with {classes} outputs: pass a labels file with one line per class."
        )
    return _Source(
        name=source.name,
        height=height,
        width=width,
        channels=channels,
        sha256=source_sha,
        run=run,
        labels=label_list,
        colour="GRAY" if channels == 1 else ("RGB" if not run or run.colour == "GRAY" else run.colour),
        mean=mean if mean is not None else (run.mean if run else 0.0),
        std=std if std is not None else (run.std if run else 255.0),
        resize=run.resize if run else "bilinear",
    )


def _quantize(
    keras_model: Any, quant: Quantization, io_type: IOType, calibration_images: np.ndarray, src: _Source
) -> tuple[bytes, bytes]:
    """(the float32 TFLite, the one asked for): the float32 one is the size and speed reference."""
    batch1 = fixed_batch(keras_model)
    float32_bytes = to_tflite(batch1, quantize=Quantization.FLOAT32, io_type=IOType.FLOAT32)
    if quant is Quantization.FLOAT32:
        return float32_bytes, float32_bytes
    converted = to_tflite(
        batch1,
        quantize=quant,
        io_type=io_type,
        representative=representative_dataset(calibration_images, src.mean, src.std),
    )
    return float32_bytes, converted


def _check_static(model_file: ModelFile) -> bool:
    inp = model_file.inputs[0]
    static = not any(
        int(d) < 0
        for graph in model_file.model.subgraphs
        for tensor in graph.tensors
        for d in (tensor.shapeSignature if tensor.shapeSignature is not None else [])
    )
    if not static or inp.shape[0] != 1:
        raise ConversionError(
            f"The converted model still has dynamic shapes (input {list(inp.shape_signature)}): "
            "this TensorFlow version did not honour the batch-1 re-wrap; please report it."
        )
    return static


def _metadata(
    keras_model: Any,
    src: _Source,
    quant: Quantization,
    io_type: IOType,
    calibration_set: ImageSet,
    calibration: str | None,
) -> ModelMetadata:
    run = src.run
    return ModelMetadata(
        labels=src.labels,
        colour=src.colour,
        mean=src.mean,
        std=src.std,
        resize=src.resize,
        outputs="probabilities" if ends_with_softmax(keras_model) else "logits",
        task="classify",  # edgecnn convert takes Keras classifiers; runtimes read the task from here
        provenance={
            "tool": f"edgecnn {__version__}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_model": src.name,
            "source_sha256": src.sha256,
            "dataset": _short(run.dataset) if run else _short(calibration or ""),
            "architecture": run.architecture if run else None,
            "quantization": quant.value,
            "io": io_type.value,
            "calibration": {"source": calibration_set.source, "samples": len(calibration_set)},
        },
    )


def _verify(
    keras_model: Any,
    converted: bytes,
    meta: ModelMetadata,
    verification_set: ImageSet,
    src: _Source,
    min_agreement: float | None,
    out_path: Path,
) -> Verification:
    """Float Keras and converted model on the same held-out images; below ``min_agreement`` nothing is written."""
    float_scores = keras_scores(keras_model, verification_set.images, src.mean, src.std)
    converted_scores = runtime_scores(
        parse_model(embed_metadata(parse_model(converted), meta)), verification_set.images, src.colour
    )
    verification = compare(float_scores, converted_scores, verification_set.labels, verification_set.source)
    if min_agreement is not None and verification.top1_agreement * 100 < min_agreement:
        raise ConversionError(
            f"Top-1 agreement {verification.top1_agreement:.2%} on {verification.samples} held-out images is below "
            f"--min-agreement {min_agreement:g}%: {out_path.name} was not written. Calibrate with more or more "
            "representative images (--calibration, --calibration-samples), or use --quantize float16."
        )
    return verification


@dataclass
class _Converted:
    """The converted model, verified and carrying its metadata: everything before a file is written."""

    quant: Quantization
    io_type: IOType
    float32_bytes: bytes  # the float32 TFLite: the size reference
    model_file: ModelFile  # the converter's output (its input, output and operators go in the report)
    static: bool
    meta: ModelMetadata
    verification: Verification
    final: bytes  # with the metadata embedded: what is written
    convert_s: float
    verify_s: float


def _convert_and_verify(
    keras_model: Any,
    src: _Source,
    data: ConversionData,
    quant: Quantization,
    io_type: IOType,
    out_path: Path,
    *,
    calibration: str | None,
    min_agreement: float | None,
) -> _Converted:
    """Convert, check the shapes, verify on held-out images, then embed the metadata with the results."""
    t0 = time.perf_counter()
    float32_bytes, converted = _quantize(keras_model, quant, io_type, data.calibration.images, src)
    convert_s = time.perf_counter() - t0
    model_file = parse_model(converted)
    static = _check_static(model_file)
    meta = _metadata(keras_model, src, quant, io_type, data.calibration, calibration)

    t1 = time.perf_counter()
    verification = _verify(keras_model, converted, meta, data.verification, src, min_agreement, out_path)
    verify_s = time.perf_counter() - t1
    meta.provenance["verification"] = verification.to_dict()
    meta.provenance["sizes"] = {"float32_tflite_bytes": len(float32_bytes)}
    final = embed_metadata(parse_model(converted), meta)
    meta.provenance["sizes"]["output_bytes"] = len(final)
    return _Converted(
        quant=quant,
        io_type=io_type,
        float32_bytes=float32_bytes,
        model_file=model_file,
        static=static,
        meta=meta,
        verification=verification,
        final=final,
        convert_s=convert_s,
        verify_s=verify_s,
    )


def _build_report(
    source: Path,
    src: _Source,
    data: ConversionData,
    conv: _Converted,
    tpu: EdgeTPUResult | None,
    *,
    out_path: Path,
    report_path: Path,
    started: float,
) -> ConversionReport:
    """What ``conversion_report.json`` says; ``total`` counts up to now, the files written included."""
    model_file, float32_bytes, final = conv.model_file, conv.float32_bytes, conv.final
    inp, out = model_file.inputs[0], model_file.outputs[0]
    return ConversionReport(
        source=str(source),
        source_sha256=src.sha256,
        output=str(out_path),
        report=str(report_path),
        quantize=conv.quant.value,
        io=conv.io_type.value,
        input_shape=list(inp.shape),
        input_dtype=inp.dtype,
        output_dtype=out.dtype,
        static_shapes=conv.static,
        operators=[
            {"name": op.name, "version": op.version, "count": op.count} for op in model_file.operators()
        ],
        labels=src.labels,
        colour=src.colour,
        mean=src.mean,
        std=src.std,
        calibration={"source": data.calibration.source, "samples": len(data.calibration)},
        verification=conv.verification,
        sizes={
            "keras_bytes": source.stat().st_size,
            "float32_tflite_bytes": len(float32_bytes),
            "output_bytes": len(final),
            "output_vs_float32": round(len(final) / len(float32_bytes), 4),
        },
        seconds={
            "convert": round(conv.convert_s, 2),
            "verify": round(conv.verify_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        edgetpu=tpu,
        metadata=json.loads(conv.meta.to_json()),
    )


def _edgetpu(
    cpu_model: bytes, meta: ModelMetadata, out_path: Path
) -> tuple[EdgeTPUResult, dict[Path, bytes]]:
    """Static check, then compile; returns the files to write (nothing is written here)."""
    from edgecnn.devices.backends.edgetpu.compiler import compile_model

    check = predict_compilation(parse_model(cpu_model))
    if not check.compatible:
        change = " Change: " + "; ".join(check.advice) + "." if check.advice else ""
        raise ConversionError(
            "The model is not Edge TPU compatible: "
            + " ".join(check.problems)
            + change
            + f" {out_path.name} was not written."
        )
    with tempfile.TemporaryDirectory(prefix="edgecnn-edgetpu-") as tmp:
        staged = Path(tmp) / "in" / out_path.name
        staged.parent.mkdir()
        staged.write_bytes(cpu_model)
        compiled = compile_model(staged, Path(tmp) / "out")
        compiled_bytes = compiled.model_path.read_bytes()
        log_bytes = compiled.log_path.read_bytes() if compiled.log_path else None
    tpu_meta = copy.deepcopy(meta)
    tpu_meta.cpu_twin = out_path.name
    tpu_meta.provenance["edgetpu"] = {
        "compiler_version": compiled.summary.compiler_version,
        "edgetpu_ops": compiled.summary.edgetpu_ops,
        "cpu_ops": compiled.summary.cpu_ops,
        "subgraphs": compiled.summary.subgraphs,
    }
    tpu_path = out_path.with_name(f"{out_path.stem}_edgetpu.tflite")
    files = {tpu_path: embed_metadata(parse_model(compiled_bytes, tpu_path), tpu_meta)}
    log_path = None
    if log_bytes is not None:
        log_path = out_path.with_name(f"{out_path.stem}_edgetpu.log")
        files[log_path] = log_bytes
    result = EdgeTPUResult(
        check=check,
        output=str(tpu_path),
        log=str(log_path) if log_path else None,
        compiler=compiled.summary.to_dict(),
    )
    return result, files


def _choice(enum: Any, value: str, flag: str) -> Any:
    try:
        return enum(str(value).lower())
    except ValueError:
        raise UsageError(f"Unknown {flag} {value!r}: use {', '.join(e.value for e in enum)}.") from None


def _short(dataset: str) -> str:
    return Path(dataset).name if os.sep in dataset else dataset


def format_report(report: ConversionReport) -> str:
    v = report.verification
    kind = f"{report.quantize} TFLite"

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2%}"

    sizes = report.sizes
    rows = [
        ("", "float (Keras)", kind),
        ("accuracy", pct(v.float_accuracy), pct(v.converted_accuracy)),
        ("top-1 agreement", "", pct(v.top1_agreement)),
        ("mean |score diff|", "", f"{v.mean_abs_score_diff:.4f}"),
        (
            "size",
            f"{sizes['float32_tflite_bytes'] / 1024:.1f} KiB (float32 TFLite)",
            f"{sizes['output_bytes'] / 1024:.1f} KiB ({sizes['output_vs_float32']:.2f}x)",
        ),
    ]
    lines = [
        f"converted {Path(report.source).name} -> {report.output} ({report.quantize}, io {report.io}, "
        f"input {report.input_shape} {report.input_dtype}) in {report.seconds['total']:.1f} s",
        *(f"  {a:<18} {b:<30} {c}" for a, b, c in rows),
    ]
    if v.accuracy_drop_pp is not None:
        lines.append(f"  accuracy change: {-v.accuracy_drop_pp:+.2f} percentage points")
    lines.append(
        f"verified on {v.samples} held-out images ({v.source}); calibrated on "
        f"{report.calibration['samples']} images ({report.calibration['source']})"
    )
    lines.append(
        "operators: " + ", ".join(f"{op['name']} v{op['version']} x{op['count']}" for op in report.operators)
    )
    if report.edgetpu is not None:
        lines.extend(report.edgetpu.check.format_lines())
        c = report.edgetpu.compiler or {}
        lines.append(
            f"edgetpu_compiler {c.get('compiler_version')}: {c.get('edgetpu_ops')} ops on the Edge TPU, "
            f"{c.get('cpu_ops')} on the CPU, {c.get('subgraphs')} subgraph(s), on-chip "
            f"{_kib(c.get('on_chip_used_bytes'))}, off-chip {_kib(c.get('off_chip_used_bytes'))} -> {report.edgetpu.output}"
        )
    written = [report.output]
    if report.edgetpu is not None:
        written += [p for p in (report.edgetpu.output, report.edgetpu.log) if p]
    lines.append(f"wrote {', '.join(written)} and {report.report}")
    return "\n".join(lines)


def _kib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.2f} KiB"
