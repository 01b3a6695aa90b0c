"""``edgecnn bench formats MODEL.keras --dataset NAME``: the four TFLite formats of one model, side by side.

Each format is produced by the real converter (:func:`edgecnn.converters.pipeline.convert`, which embeds
metadata and measures held-out accuracy through the device runtime), then timed by the same runner as
``edgecnn bench``. So the table answers the practical question: what does int8 cost in accuracy and what
does it buy in size and latency on *this* machine, against float32, float16 and dynamic-range.
Needs the ``[train]`` extra (TensorFlow converts); the timing itself uses only the TFLite runtime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.texttable import render

log = logging.getLogger(__name__)

FORMATS = ("float32", "float16", "dynamic", "int8")


@dataclass(frozen=True)
class FormatRow:
    format: str
    path: str | None  # None when the files went to a temporary folder
    size_bytes: int
    size_vs_float32: float
    input_dtype: str
    accuracy: float | None  # held-out top-1 through the TFLite runtime
    keras_accuracy: float | None  # the float Keras model on the same images
    agreement: float  # top-1 agreement with the Keras model
    median_ms: float
    p99_ms: float
    speedup_vs_float32: float


@dataclass
class FormatsReport:
    model: str
    dataset: str
    held_out: str  # where the accuracy images came from
    samples: int
    threads: int
    runs: int
    machine: str
    runtime: str
    rows: list[FormatRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_formats(
    model: str | os.PathLike[str],
    *,
    dataset: str,
    threads: int = 1,
    runs: int = 100,
    warmup: int = 10,
    out_dir: str | os.PathLike[str] | None = None,
    formats: tuple[str, ...] = FORMATS,
    verification_samples: int = 1000,
) -> FormatsReport:
    """Convert ``model`` to each of ``formats`` and measure size, held-out accuracy and latency."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"Unknown format(s) {unknown}: choose from {', '.join(FORMATS)}.")
    if runs < 2:
        raise UsageError("--runs must be at least 2.")
    source = Path(model)
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="edgecnn-formats-") as tmp:
            return _compare(
                source, dataset, threads, runs, warmup, Path(tmp), formats, verification_samples, keep=False
            )
    return _compare(
        source, dataset, threads, runs, warmup, Path(out_dir), formats, verification_samples, keep=True
    )


def _compare(
    source: Path,
    dataset: str,
    threads: int,
    runs: int,
    warmup: int,
    folder: Path,
    formats: tuple[str, ...],
    verification_samples: int,
    *,
    keep: bool,
) -> FormatsReport:
    from edgecnn.atomic import output_folder
    from edgecnn.bench.runner import run_bench
    from edgecnn.converters.pipeline import convert
    from edgecnn.devices.probe import probe_device

    output_folder(folder, what="converted models")
    probe = probe_device(diagnose_edgetpu=False)
    measured = []
    for number, fmt in enumerate(formats, 1):
        out = folder / f"{source.stem}_{fmt}.tflite"
        log.info("[%d/%d] %s: converting %s and timing %s", number, len(formats), fmt, source.name, out.name)
        # Converting one Keras model four times makes TensorFlow warn about tf.function retracing: expected
        # here, and not something the user can act on.
        with _tensorflow_warnings_hidden():
            conversion = convert(
                source,
                output=out,
                quantize=fmt,
                calibration=dataset,
                verification_samples=verification_samples,
                report=folder / f"{source.stem}_{fmt}_conversion.json",
            )
        bench = run_bench(out, threads=[threads], runs=runs, warmup=warmup, probe=probe)
        measured.append((fmt, out, conversion, bench))

    float32_size = measured[0][2].sizes["float32_tflite_bytes"]
    reference = next((b for f, _, _, b in measured if f == "float32"), None)
    ref_ms = reference.results[0].latency_ms.p50 if reference else None
    rows = []
    for fmt, out, conversion, bench in measured:
        v = conversion.verification
        lat = bench.results[0].latency_ms
        rows.append(
            FormatRow(
                format=fmt,
                path=str(out) if keep else None,
                size_bytes=bench.model.size_bytes,
                size_vs_float32=round(bench.model.size_bytes / float32_size, 3),
                input_dtype=bench.model.input_dtype,
                accuracy=v.converted_accuracy,
                keras_accuracy=v.float_accuracy,
                agreement=v.top1_agreement,
                median_ms=lat.p50,
                p99_ms=lat.p99,
                speedup_vs_float32=round(ref_ms / lat.p50, 2) if ref_ms and lat.p50 > 0 else 1.0,
            )
        )
    first = measured[0][2].verification
    return FormatsReport(
        model=str(source),
        dataset=dataset,
        held_out=first.source,
        samples=first.samples,
        threads=threads,
        runs=runs,
        machine=probe.name,
        runtime=probe.runtime or "unknown",
        rows=rows,
    )


def format_formats(report: FormatsReport) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2%}"

    header = ("format", "size", "vs f32", "input", "accuracy", "agreement", "median ms", "p99 ms", "speed-up")
    rows = [header]
    for r in report.rows:
        rows.append(
            (
                r.format,
                f"{r.size_bytes / 1024:.1f} KiB",
                f"{r.size_vs_float32:.2f}x",
                r.input_dtype,
                pct(r.accuracy),
                pct(r.agreement),
                f"{r.median_ms:.4f}",
                f"{r.p99_ms:.4f}",
                f"{r.speedup_vs_float32:.2f}x",
            )
        )
    keras_acc = report.rows[0].keras_accuracy if report.rows else None
    lines = [
        f"{Path(report.model).name} on {report.machine} ({report.runtime}), {report.threads} thread(s), "
        f"{report.runs} timed runs per format",
        f"accuracy: top-1 on {report.samples} held-out images ({report.held_out}); Keras float model: {pct(keras_acc)}",
        "",
    ]
    lines += render(header, rows[1:], right=range(1, len(header)), rule=True).splitlines()
    lines.append("agreement: same top-1 class as the Keras model; speed-up: float32 median / this median")
    kept = [r.path for r in report.rows if r.path]
    if kept:
        lines.append("kept: " + ", ".join(kept))
    return "\n".join(lines)


@contextlib.contextmanager
def _tensorflow_warnings_hidden() -> Iterator[None]:
    """TensorFlow's Python-level WARNING records (retracing) off for the block, unless EDGECNN_DEBUG is set."""
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    tf_log = logging.getLogger("tensorflow")
    previous = tf_log.level
    tf_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_log.setLevel(previous)
