"""``edgecnn bench MODEL``: latency per configuration (device x threads), comparable across machines.

What is timed is ``interpreter.invoke()`` alone, with ``time.perf_counter_ns``: inputs are prepared (random
pixels, or ``--images`` decoded and preprocessed) before the clock starts, so the figure is the model's
latency on this device and nothing else. Each configuration loads the model afresh (load time), times the
first invoke separately (it allocates and, on an Edge TPU, uploads weights), warms up, then measures
``runs`` invokes (or as many as fit in ``duration_s``). Percentiles and spread are reported, never a lone
mean. The machine is named in the result (board, governor, temperature, throttling) because a latency
figure without its device is not comparable with anything.

Any model is timed, whatever its task: one no task decodes (pose keypoints, a segmentation map, several
heads, an int64 argmax) opens with ``require_task=False`` and its decoder says it ``decodes`` nothing, so
only ``invoke()`` is timed and the result records task ``none`` and why (postprocess not measured).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import __version__
from edgecnn.bench.results import (
    BenchResult,
    BenchSettings,
    ConfigResult,
    LatencyStats,
    ModelInfo,
)
from edgecnn.devices.backends import parse_device
from edgecnn.devices.probe import DeviceProbe, Throttling, probe_device, read_temperature, read_throttling
from edgecnn.errors import InvalidResult, UsageError
from edgecnn.modelfile import read_model
from edgecnn.tasks.options import DecodeOptions
from edgecnn.texttable import render

log = logging.getLogger(__name__)

MAX_THREADS = 64
MIN_TIMED_RUNS = 2  # stdev needs two samples


def parse_devices(value: str | Sequence[str]) -> list[str]:
    """``"cpu,edgetpu"`` -> ``["cpu", "edgetpu"]``, each checked against the device grammar."""
    items = value.split(",") if isinstance(value, str) else list(value)
    devices = [str(parse_device(item.strip())) for item in items if item.strip()]
    if not devices:
        raise UsageError("--device is empty: pass cpu, edgetpu or a comma list such as cpu,edgetpu.")
    return list(dict.fromkeys(devices))


def parse_threads(value: str | Sequence[int]) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (each 1..64)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    threads = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            n = int(text)
        except ValueError:
            raise UsageError(f"--threads {text!r} is not a number: pass e.g. 1 or 1,2,4.") from None
        if not 1 <= n <= MAX_THREADS:
            raise UsageError(f"--threads {n} is out of range: use 1 to {MAX_THREADS}.")
        threads.append(n)
    if not threads:
        raise UsageError("--threads is empty: pass e.g. 1 or 1,2,4.")
    return list(dict.fromkeys(threads))


def latency_stats(samples_ns: np.ndarray) -> LatencyStats:
    """Percentiles (linear interpolation) and sample standard deviation, in milliseconds."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        min=round(float(ms.min()), 4),
        mean=round(float(ms.mean()), 4),
        p50=round(float(p50), 4),
        p90=round(float(p90), 4),
        p99=round(float(p99), 4),
        max=round(float(ms.max()), 4),
        stdev=round(float(statistics.stdev(ms.tolist())) if ms.size > 1 else 0.0, 4),
    )


# --- peak memory -----------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0: write 5 to /proc/self/clear_refs); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """VmHWM from /proc/self/status, else ``getrusage`` (the process-wide peak)."""
    try:
        text = Path("/proc/self/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+)\s*kB", text, re.MULTILINE)
        if match:
            return round(int(match.group(1)) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


# --- inputs --------------------------------------------------------------------------------------


def _random_inputs(model: Any, seed: int, count: int = 4) -> list[np.ndarray]:
    """Random pixels through the model's own preprocessing: the right dtype, shape and value range."""
    spec = model.spec
    rng = np.random.default_rng(seed)
    shape = (spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, 3)
    return [model.preprocess(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(count)]


def _image_inputs(model: Any, frames: list[np.ndarray]) -> list[np.ndarray]:
    return [model.preprocess(frame) for frame in frames]


def _read_images(folder: str | os.PathLike[str]) -> list[np.ndarray]:
    from edgecnn.images import list_images, read_image

    return [read_image(p) for p in list_images(folder)]


# --- the measurement -------------------------------------------------------------------------------


def time_invokes(
    interpreter: Any,
    tensors: list[np.ndarray],
    *,
    runs: int,
    duration_s: float | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> tuple[np.ndarray, float]:
    """Time ``invoke()`` ``runs`` times (or for ``duration_s``); return (samples in ns, wall seconds).

    With one input it is set once; with several they are cycled, each set outside the timed region.
    """
    index = interpreter.get_input_details()[0]["index"]
    set_tensor, invoke = interpreter.set_tensor, interpreter.invoke
    single = len(tensors) == 1
    set_tensor(index, tensors[0])
    samples: list[int] = []
    deadline = None if duration_s is None else clock() + int(duration_s * 1e9)
    start = clock()
    i = 0
    while True:
        if deadline is None:
            if i >= runs:
                break
        elif i >= MIN_TIMED_RUNS and clock() >= deadline:
            break
        if not single:
            set_tensor(index, tensors[i % len(tensors)])
        t0 = clock()
        invoke()
        samples.append(clock() - t0)
        i += 1
    wall = (clock() - start) / 1e9
    return np.asarray(samples, dtype=np.int64), wall


def _throttle_changed(before: Throttling | None, after: Throttling | None) -> str | None:
    if after is None:
        return None
    if after.now:
        return f"the CPU is throttled now ({after.raw}: {', '.join(after.now)})"
    new = set(after.since_boot) - set(before.since_boot if before else [])
    if new:
        return f"the CPU throttled during the run ({after.raw}: {', '.join(sorted(new))})"
    return None


def bench_configuration(
    model_path: Path,
    *,
    device: str,
    threads: int,
    runs: int,
    warmup: int,
    duration_s: float | None,
    frames: list[np.ndarray] | None,
    seed: int,
    probe: DeviceProbe,
    sysfs_root: Path,
    vcgencmd: str | None,
    decode: DecodeOptions | None = None,
) -> ConfigResult:
    """Load, first invoke, warm up, measure: one :class:`ConfigResult`. ``decode``: the task options the
    decoder is timed with (the declared defaults when None, as ``predict`` and ``run`` have them)."""
    from edgecnn.model import open_model

    scoped = reset_peak_rss()
    temp_before = read_temperature(sysfs_root)
    throttle_before = read_throttling(vcgencmd)
    opened = open_model(model_path, device=device, threads=threads, decode=decode, require_task=False)
    tensors = _image_inputs(opened, frames) if frames else _random_inputs(opened, seed)
    interpreter = opened.interpreter
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensors[0])
    t0 = time.perf_counter_ns()
    interpreter.invoke()
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    for i in range(warmup):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensors[i % len(tensors)])
        interpreter.invoke()
    samples, wall = time_invokes(interpreter, tensors, runs=runs, duration_s=duration_s)
    post = time_postprocess(
        opened, frames[0] if frames else None, runs=min(int(samples.size), 200), seed=seed
    )
    track, track_objects = time_track(
        opened, frames[0] if frames else None, runs=min(int(samples.size), 200), seed=seed
    )
    temp_after = read_temperature(sysfs_root)
    throttle_after = read_throttling(vcgencmd)
    rss = peak_rss_mb()

    warnings = []
    if opened.path is not None and opened.path.resolve() != model_path.resolve():
        warnings.append(
            f"--device {device} ran the CPU model {opened.path.name} instead of {model_path.name} (no Edge TPU "
            "works here): these figures are the CPU model's."
        )
    if probe.governor and probe.governor != "performance":
        warnings.append(
            f"CPU governor is {probe.governor!r}, not 'performance': figures vary with the clock "
            "(echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)."
        )
    throttled = _throttle_changed(throttle_before, throttle_after)
    if throttled:
        warnings.append(f"{throttled}: latency is not representative; cool the board and re-run.")
    if samples.size < 100:
        warnings.append(f"only {samples.size} timed runs: p99 is close to the max; use --runs 100 or more.")
    return ConfigResult(
        device=device,
        device_used=opened.device,
        threads=threads,
        runs=int(samples.size),
        load_ms=round(opened.load_ms, 3),
        first_inference_ms=round(first_ms, 3),
        latency_ms=latency_stats(samples),
        throughput_ips=round(samples.size / wall, 2) if wall > 0 else 0.0,
        peak_rss_mb=rss,
        rss_scope="configuration" if scoped else "process",
        temperature_before_c=temp_before,
        temperature_after_c=temp_after,
        throttling_before=throttle_before.raw if throttle_before else None,
        throttling_after=throttle_after.raw if throttle_after else None,
        warnings=warnings,
        postprocess_ms=asdict(latency_stats(post)) if post.size else None,
        task=opened.task,
        decoder=opened.decoder.name or None,
        track_ms=asdict(latency_stats(track)) if track.size else None,
        track_objects=track_objects,
    )


def time_track(
    model: Any,
    frame: np.ndarray | None,
    *,
    runs: int,
    seed: int = 0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> tuple[np.ndarray, int | None]:
    """Time ``run``'s track stage (:class:`edgecnn.track.stage.TrackStage`: tracker, no lines or zones) on
    the decoded result of one frame, ``runs`` frames at 30 fps: (ns samples, objects per frame). No samples
    when the result has no boxes (a classifier, a class map) or nothing decodes."""
    none = np.asarray([], dtype=np.int64)
    if not model.decoder.decodes:
        return none, None
    from edgecnn.tasks import Trackable
    from edgecnn.track.stage import TrackStage

    if frame is None:
        spec = model.spec
        rng = np.random.default_rng(seed)
        shape = (spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, 3)
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
    try:
        result = model.process(frame).result
    except InvalidResult:
        return none, None
    items = result.track_items() if isinstance(result, Trackable) else None
    if items is None:
        return none, None
    stage = TrackStage()
    size = (frame.shape[1], frame.shape[0])
    samples = []
    for i in range(max(0, runs) + 5):  # the first frames start and confirm tracks: not timed
        t0 = clock()
        stage.apply(result, size=size, time_s=i / 30, timestamp=i / 30, frame=i)
        if i >= 5:
            samples.append(clock() - t0)
    return np.asarray(samples, dtype=np.int64), sum(item is not None for item in items)


def time_postprocess(
    model: Any,
    frame: np.ndarray | None,
    *,
    runs: int,
    seed: int = 0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> np.ndarray:
    """Time the task decoder alone (outputs -> result: top-k, or dequantize + NMS + box mapping) ``runs``
    times on the outputs of one invoke, in ns. The same work ``run`` and ``predict`` do per frame after
    ``invoke()``; a detector's figure depends on how many candidates pass the threshold, so pass real
    ``--images`` for a representative number. No samples for a model whose decoder decodes nothing."""
    if not model.decoder.decodes:
        return np.asarray([], dtype=np.int64)
    if frame is None:
        spec = model.spec
        rng = np.random.default_rng(seed)
        shape = (spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, 3)
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
    tensor, transform = model.prepare(frame)
    model.invoke(tensor)
    decode, interpreter = model.decoder.decode, model.interpreter
    try:
        decode(interpreter, transform)
    except InvalidResult as exc:  # timing needs no result: say why there is no postprocess figure
        log.warning("postprocess not timed: %s", exc)
        return np.asarray([], dtype=np.int64)
    samples = []
    for _ in range(max(0, runs)):
        t0 = clock()
        decode(interpreter, transform)
        samples.append(clock() - t0)
    return np.asarray(samples, dtype=np.int64)


def model_info(model_path: Path) -> ModelInfo:
    mf = read_model(model_path)
    first = mf.inputs[0] if mf.inputs else None
    return ModelInfo(
        name=model_path.name,
        path=str(model_path),
        sha256=hashlib.sha256(mf.data).hexdigest(),
        size_bytes=len(mf.data),
        edgetpu_compiled=mf.is_edgetpu,
        input_shape=list(first.shape) if first else [],
        input_dtype=first.dtype.lower() if first else "unknown",
    )


def _check_counts(runs: int, warmup: int, duration_s: float | None) -> None:
    if runs < MIN_TIMED_RUNS:
        raise UsageError(f"--runs {runs} is too few: use at least {MIN_TIMED_RUNS} (100+ for a useful p99).")
    if warmup < 0:
        raise UsageError("--warmup cannot be negative.")
    if duration_s is not None and duration_s <= 0:
        raise UsageError("--duration must be a positive number of seconds.")


def _open_accelerators(model_path: Path, device_list: Sequence[str], threads: int) -> None:
    """Fail fast: a missing Edge TPU should not be discovered after minutes of CPU runs."""
    from edgecnn.model import open_model

    for device in device_list:
        if parse_device(device).key != "cpu":
            open_model(model_path, device=device, threads=threads, require_task=False)


def _log_result(model_name: str, result: ConfigResult, threads: int) -> None:
    log.info(
        "%s: %s x%d thread%s: median %.3f ms, p99 %.3f ms (%d runs)",
        model_name,
        result.device_used,
        threads,
        "" if threads == 1 else "s",
        result.latency_ms.p50,
        result.latency_ms.p99,
        result.runs,
    )


def run_bench(
    model: str | os.PathLike[str],
    *,
    devices: str | Sequence[str] = "cpu",
    threads: str | Sequence[int] = (1,),
    runs: int = 100,
    warmup: int = 10,
    duration_s: float | None = None,
    images: str | os.PathLike[str] | None = None,
    seed: int = 0,
    probe: DeviceProbe | None = None,
    sysfs_root: Path = Path("/sys"),
    path_env: str | None = None,
    decode: DecodeOptions | None = None,
) -> BenchResult:
    """Benchmark ``model`` on every (device, threads) pair; devices that cannot open fail before any timing.

    ``probe`` names the machine (``probe_device()`` by default); ``sysfs_root``/``path_env`` point the
    temperature and throttling reads elsewhere (tests). ``decode`` holds the task options (top-k, object
    threshold, ...: :mod:`edgecnn.tasks.options`) the postprocess is timed with.
    """
    _check_counts(runs, warmup, duration_s)
    device_list = parse_devices(devices)
    thread_list = parse_threads(threads)
    model_path = Path(model)
    info = model_info(model_path)  # a bad model fails here, with the model's own error
    frames = _read_images(images) if images is not None else None
    probe = probe or probe_device(path_env=path_env)
    is_pi = bool(probe.board and probe.board.startswith("Raspberry Pi"))
    from edgecnn.devices.probe import find_vcgencmd

    vcgencmd = find_vcgencmd(path_env) if is_pi else None

    _open_accelerators(model_path, device_list, thread_list[0])

    results = []
    for device in device_list:
        for n in thread_list:
            result = bench_configuration(
                model_path,
                device=device,
                threads=n,
                runs=runs,
                warmup=warmup,
                duration_s=duration_s,
                frames=frames,
                seed=seed,
                probe=probe,
                sysfs_root=sysfs_root,
                vcgencmd=vcgencmd,
                decode=decode,
            )
            _log_result(model_path.name, result, n)
            results.append(result)

    from edgecnn.runtime import get_runtime

    runtime = get_runtime()
    return BenchResult(
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        edgecnn_version=__version__,
        machine=probe.to_dict(),
        runtime={"name": runtime.name, "version": runtime.version},
        model=info,
        settings=BenchSettings(
            devices=device_list,
            threads=thread_list,
            runs=runs,
            warmup=warmup,
            duration_s=duration_s,
            input="random" if images is None else f"images:{images}",
            seed=seed,
        ),
        results=results,
    )


def format_result(result: BenchResult) -> str:
    """The table ``edgecnn bench`` prints."""
    m = result.machine
    model = result.model
    lines = [
        f"model   {model.name} ({model.size_bytes / 1e6:.2f} MB, sha256 {model.sha256[:12]}, "
        f"input {'x'.join(map(str, model.input_shape))} {model.input_dtype})",
        f"machine {result.machine_name} ({m.get('arch')}, {m.get('cores')} cores, governor "
        f"{m.get('governor') or 'unknown'}), {result.runtime.get('name')} {result.runtime.get('version')}",
        "",
    ]
    header = (
        "device", "threads", "load ms", "first ms", "min", "p50", "mean", "p90", "p99", "max", "stdev",
        "runs", "inf/s", "rss MB", "temp °C",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = [header]
    for r in result.results:
        lat = r.latency_ms
        temps = (
            f"{r.temperature_before_c:.0f}->{r.temperature_after_c:.0f}"
            if r.temperature_before_c is not None and r.temperature_after_c is not None
            else "-"
        )
        rows.append(
            (
                r.device_used,
                str(r.threads),
                f"{r.load_ms:.1f}",
                f"{r.first_inference_ms:.2f}",
                *(f"{getattr(lat, k):.3f}" for k in ("min", "p50", "mean", "p90", "p99", "max", "stdev")),
                str(r.runs),
                f"{r.throughput_ips:.1f}",
                "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
                temps,
            )
        )
    lines += render(header, rows[1:], right=range(2, len(header)), rule=True).splitlines()
    lines.append("latency in ms per invoke(); inputs: " + result.settings.input)
    for r in result.results:
        if r.postprocess_ms:
            p = r.postprocess_ms
            lines.append(
                f"postprocess ({r.task or 'decode'}, apart from invoke) on {r.device_used} x{r.threads}: "
                f"p50 {p['p50']:.3f} ms  p99 {p['p99']:.3f} ms  ({p['p50'] / max(r.latency_ms.p50, 1e-9):.2f}x invoke p50)"
            )
        else:
            lines.append(
                f"postprocess on {r.device_used} x{r.threads}: not measured, task {r.task or 'unknown'} "
                f"({r.decoder or 'no decoder'})"
            )
        if r.track_ms:
            t = r.track_ms
            lines.append(
                f"track ({r.track_objects} objects per frame, as edgecnn run tracks them): "
                f"p50 {t['p50']:.3f} ms  p99 {t['p99']:.3f} ms"
            )
    seen = set()
    for r in result.results:
        for w in r.warnings:
            if w not in seen:
                seen.add(w)
                lines.append(f"warning: {w}")
    return "\n".join(lines)
