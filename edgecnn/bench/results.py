"""Saved bench results: one self-describing JSON document per ``edgecnn bench -o FILE`` run.

A file carries everything needed to compare it later with files from other machines: the device probe
(board, CPU, governor, runtime...), the model's name, size and sha256, the settings, and per configuration
(device x threads) the latency statistics. ``format``/``schema_version`` say what the file is;
``units`` says what the numbers mean, so a reader needs no code from this module.

Layout (schema version 1)::

    {"format": "edgecnn-bench", "schema_version": 1, "units": {...}, "created": "2026-01-01T12:00:00Z",
     "edgecnn_version": "0.1.0", "machine": {<edgecnn devices --json>},
     "runtime": {"name": "ai-edge-litert", "version": "2.3.0"},
     "model": {"name", "path", "sha256", "size_bytes", "edgetpu_compiled", "input_shape", "input_dtype"},
     "settings": {"devices", "threads", "runs", "warmup", "duration_s", "input", "seed"},
     "results": [{"device", "device_used", "threads", "runs", "load_ms", "first_inference_ms",
                  "latency_ms": {"min", "mean", "p50", "p90", "p99", "max", "stdev"},
                  "throughput_ips", "peak_rss_mb", "rss_scope", "temperature_before_c",
                  "temperature_after_c", "throttling_before", "throttling_after", "warnings",
                  "postprocess_ms": {<as latency_ms>} or null, "task", "decoder",
                  "track_ms": {<as latency_ms>} or null, "track_objects"}]}

``task`` is ``classify``, ``detect``, or ``none`` for a model no task decodes: then only ``invoke()`` was
timed, ``postprocess_ms`` is null and ``decoder`` says why. ``postprocess_ms``, ``task`` and ``decoder`` are
absent from files written before them. ``track_ms`` (tracking the decoded objects, :mod:`edgecnn.track`,
as ``run`` does per frame) and ``track_objects`` (how many objects each tracked frame had) are null for
results without boxes, and absent from older files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from edgecnn.atomic import write_atomic
from edgecnn.errors import InputError

FORMAT = "edgecnn-bench"
SCHEMA_VERSION = 1
UNITS = {
    "latency_ms": "milliseconds per interpreter.invoke(), timed with time.perf_counter_ns",
    "postprocess_ms": "milliseconds per decode of the outputs into a result (top-k, NMS), apart from invoke()",
    "track_ms": "milliseconds per frame tracking the decoded objects (edgecnn run's track stage)",
    "load_ms": "milliseconds from file to an allocated interpreter (delegate included)",
    "first_inference_ms": "milliseconds for the first invoke() after loading (before warm-up)",
    "throughput_ips": "inferences per second over the timed loop (sequential, one input at a time)",
    "peak_rss_mb": "MiB, peak resident set size (VmHWM) of the bench process",
    "temperature_c": "degrees Celsius, SoC/CPU thermal zone",
}
LATENCY_KEYS = ("min", "mean", "p50", "p90", "p99", "max", "stdev")


@dataclass(frozen=True)
class LatencyStats:
    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    stdev: float


@dataclass
class ConfigResult:
    """One configuration: a device and a thread count."""

    device: str  # as requested: cpu, edgetpu, edgetpu:usb, auto
    device_used: str  # what ran it (auto may fall back to cpu)
    threads: int
    runs: int
    load_ms: float
    first_inference_ms: float
    latency_ms: LatencyStats
    throughput_ips: float
    peak_rss_mb: float | None
    rss_scope: str  # "configuration" (VmHWM reset before loading) or "process" (peak since start)
    temperature_before_c: float | None = None
    temperature_after_c: float | None = None
    throttling_before: str | None = None  # raw vcgencmd get_throttled value on a Pi
    throttling_after: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Decoding outputs into a result (top-k; NMS and box mapping for detectors), timed apart from invoke():
    # the LatencyStats keys (min, mean, p50, p90, p99, max, stdev) in ms. None in files from before it.
    postprocess_ms: dict[str, float] | None = None
    task: str | None = None  # classify, detect; "none": no task decodes the outputs (invoke() timed only)
    decoder: str | None = None  # how the outputs were read (inspect's decoder), or why they were not
    # Tracking the decoded objects (edgecnn.track; run's track stage), per frame: LatencyStats keys in ms.
    track_ms: dict[str, float] | None = None
    track_objects: int | None = None  # objects per tracked frame (what the tracking figure is for)


@dataclass
class ModelInfo:
    name: str
    path: str
    sha256: str
    size_bytes: int
    edgetpu_compiled: bool
    input_shape: list[int]
    input_dtype: str


@dataclass
class BenchSettings:
    devices: list[str]
    threads: list[int]
    runs: int
    warmup: int
    duration_s: float | None
    input: str  # "random" or "images:<folder>"
    seed: int


@dataclass
class BenchResult:
    """A whole ``edgecnn bench`` run, as saved by ``-o/--output``."""

    created: str
    edgecnn_version: str
    machine: dict[str, Any]  # DeviceProbe.to_dict()
    runtime: dict[str, Any]
    model: ModelInfo
    settings: BenchSettings
    results: list[ConfigResult]
    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))

    @property
    def machine_name(self) -> str:
        return str(self.machine.get("name") or "unknown machine")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Header first, so `head` on a saved file shows what it is.
        order = ["format", "schema_version", "units", "created", "edgecnn_version"]
        return {**{k: data[k] for k in order}, **{k: v for k, v in data.items() if k not in order}}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "bench result") -> BenchResult:
        """Rebuild a result, raising :class:`InputError` listing every schema problem found."""
        errors = validate(data)
        if errors:
            shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
            raise InputError(
                f"{source} is not a valid edgecnn bench result ({shown}). "
                "Pass files written by `edgecnn bench MODEL -o FILE`."
            )
        results = []
        for item in data["results"]:
            known = {f.name for f in fields(ConfigResult)}
            values = {k: v for k, v in item.items() if k in known}
            values["latency_ms"] = LatencyStats(**{k: float(item["latency_ms"][k]) for k in LATENCY_KEYS})
            results.append(ConfigResult(**values))
        return cls(
            created=data["created"],
            edgecnn_version=data["edgecnn_version"],
            machine=dict(data["machine"]),
            runtime=dict(data["runtime"]),
            model=ModelInfo(**{f.name: data["model"][f.name] for f in fields(ModelInfo)}),
            settings=BenchSettings(**{f.name: data["settings"][f.name] for f in fields(BenchSettings)}),
            results=results,
            format=data["format"],
            schema_version=data["schema_version"],
            units=dict(data.get("units") or UNITS),
        )


_NUMBER = (int, float)


def _check(errors: list[str], where: str, obj: Any, spec: dict[str, tuple[type, ...]]) -> None:
    """Append a line per key of ``spec`` that ``obj`` lacks or holds with another type (NoneType: optional)."""
    if not isinstance(obj, dict):
        errors.append(f"{where} must be an object")
        return
    for key, kinds in spec.items():
        if key not in obj:
            if type(None) not in kinds:
                errors.append(f"{where}.{key} is missing")
            continue
        value = obj[key]
        if isinstance(value, bool) and bool not in kinds:
            errors.append(f"{where}.{key} must not be a boolean")
        elif not isinstance(value, kinds):
            errors.append(
                f"{where}.{key} must be {' or '.join(sorted({k.__name__ for k in kinds}))}, "
                f"not {type(value).__name__}"
            )


def _kinds(hint: Any) -> tuple[type, ...]:
    """The JSON value types a field's annotation allows: a float may be written as an int, a nested
    dataclass is an object, ``list[int]`` a list; ``X | None`` adds NoneType (the key may be absent)."""
    if get_origin(hint) in (Union, UnionType):
        return tuple(dict.fromkeys(k for part in get_args(hint) for k in _kinds(part)))
    if hint is float:
        return _NUMBER
    if is_dataclass(hint):
        return (dict,)
    return (get_origin(hint) or hint,)


def _shape(cls: type, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[type, ...]]:
    """key -> allowed types, read from the dataclass that a file's object is loaded into, so the check and
    the loader cannot disagree about a field."""
    hints = get_type_hints(cls)
    return {f.name: _kinds(hints[f.name]) for f in fields(cls) if f.name not in skip}


def _header_error(data: Any) -> str | None:
    """Whether this is a bench result this edgecnn can read at all (then nothing else is checked)."""
    if not isinstance(data, dict):
        return "the document must be a JSON object"
    if data.get("format") != FORMAT:
        return f"format is {data.get('format')!r}, expected {FORMAT!r}"
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return "schema_version is missing or not an integer"
    if version > SCHEMA_VERSION:
        return (
            f"schema_version {version} is newer than this edgecnn reads ({SCHEMA_VERSION}): "
            "upgrade edgecnn (pip install -U edgecnn)"
        )
    return None


def _check_result(errors: list[str], where: str, item: Any) -> None:
    _check(errors, where, item, _shape(ConfigResult))
    if isinstance(item, dict) and isinstance(item.get("latency_ms"), dict):
        _check(errors, f"{where}.latency_ms", item["latency_ms"], _shape(LatencyStats))
        lat = item["latency_ms"]
        if all(isinstance(lat.get(k), _NUMBER) for k in ("min", "p50", "p99", "max")) and not (
            lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
        ):
            errors.append(f"{where}.latency_ms must satisfy min <= p50 <= p99 <= max")


def validate(data: Any) -> list[str]:
    """Every problem with ``data`` as a schema-1 bench result; an empty list means valid."""
    header = _header_error(data)
    if header is not None:
        return [header]
    errors: list[str] = []
    _check(errors, "result", data, _shape(BenchResult, skip=("format", "schema_version", "units")))
    units = data.get("units")
    if units is not None and (
        not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values())
    ):
        errors.append("units must be an object of strings")
    if errors:
        return errors
    _check(errors, "machine", data["machine"], {"name": (str,)})
    _check(errors, "runtime", data["runtime"], {"name": (str, type(None)), "version": (str, type(None))})
    _check(errors, "model", data["model"], _shape(ModelInfo))
    sha = data["model"].get("sha256")
    if isinstance(sha, str) and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        errors.append("model.sha256 must be 64 lowercase hex digits")
    _check(errors, "settings", data["settings"], _shape(BenchSettings))
    if not data["results"]:
        errors.append("results is empty")
    for i, item in enumerate(data["results"]):
        _check_result(errors, f"results[{i}]", item)
    return errors


def save_result(result: BenchResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` as JSON, atomically (a crash never leaves half a file)."""
    text = json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n"
    return write_atomic(path, text.encode(), what="bench result")


def load_result(path: str | os.PathLike[str]) -> BenchResult:
    from edgecnn.safeio import FileKind, loads_json, read_text

    p = Path(path)
    data = loads_json(read_text(p, FileKind.JSON), p)
    return BenchResult.from_dict(data, source=str(p))
