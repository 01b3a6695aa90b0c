"""``make demo`` / ``edgecnn demo``: the whole pipeline on embedded defaults, offline, in a few minutes.

Seven steps, each through the same library function the matching command uses, so the demo shows what a
user would get by typing the commands:

1. train the seed CNN on scikit-learn's bundled digits (:func:`edgecnn.train.train`);
2. convert it to int8 TFLite with verification on held-out images, and to float32 TFLite for comparison
   (:func:`edgecnn.converters.pipeline.convert`);
3. the static Edge TPU compatibility check (what ``edgecnn inspect --target edgetpu`` prints);
4. bench float32 vs int8 on this machine (:func:`edgecnn.bench.runner.run_bench`);
5. render held-out digits (never trained on) into a 640x480 MJPG video;
6. ``edgecnn run`` on that video as a real subprocess with ``--serve``, fetching ``/healthz`` and
   ``/latest`` while it runs, then scoring its JSONL against the digits rendered;
7. counting: scripted shapes cross a line in a generated video, and ``edgecnn run`` (the library call) with
   tracking and ``--line`` counts them, with the small shapes detector shipped in the package
   (:mod:`edgecnn.demo.counting`).

Everything lands in one folder (``runs/demo``), which a re-run replaces: the folder carries a marker file,
and a folder without it is never deleted. Accuracy figures are on the test split only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edgecnn.atomic import write_atomic
from edgecnn.demo.counting import CountFigures, count_crossings
from edgecnn.errors import EdgecnnError, RuntimeMissing, UsageError
from edgecnn.httpget import free_port, http_get_json
from edgecnn.texttable import render

if TYPE_CHECKING:  # the stages import TensorFlow: only when the demo runs them
    from edgecnn.converters.pipeline import ConversionReport
    from edgecnn.devices.probe import DeviceProbe
    from edgecnn.train.trainer import TrainReport

STEPS = 7
MARKER = ".edgecnn-demo"
DEFAULT_OUTPUT = Path("runs/demo")
DEFAULT_EPOCHS = 15  # with augmentation: ~98% test accuracy on digits in ~20 s on 2 cores
QUICK_EPOCHS = 2
DEFAULT_SECONDS = 5.0
MIN_AGREEMENT = 90.0  # percent of held-out images on which int8 and float must agree (not in quick mode)
VIDEO_FPS = 30.0  # a camera-like rate; --realtime plays the file at it, dropping frames if too slow
VIDEO_SIZE = (640, 480)
HOLD_FRAMES = 3  # each held-out digit stays on screen this many frames (10 digits a second)
BENCH_RUNS, BENCH_WARMUP = 1000, 50
RUN_GRACE_S = 90.0  # start-up allowance for the `edgecnn run` child on a slow, busy machine


@dataclass
class FormatFigures:
    """One converted model: what the summary table compares."""

    quantize: str  # float32 or int8
    path: str
    size_bytes: int
    test_accuracy: float | None  # through the device runtime, on the held-out test images
    latency_p50_ms: float
    latency_p99_ms: float
    bench_runs: int
    bench_threads: int


@dataclass
class StreamFigures:
    """The ``edgecnn run --serve`` step, measured from its JSONL and its HTTP endpoint."""

    video: str
    video_fps: float
    video_frames: int
    seconds: float
    classified: int
    fps: float  # classified frames per second, first to last result
    dropped: int  # video frames the realtime source skipped because the pipeline was busy
    correct: int  # classified frames whose top label is the digit rendered into that frame
    accuracy: float | None
    latency_p50_ms: float | None  # capture to result
    healthz: dict[str, Any] = field(default_factory=dict)
    latest: dict[str, Any] = field(default_factory=dict)
    url: str = ""


@dataclass
class DemoReport:
    output: str
    seconds: float
    machine: str
    quick: bool
    dataset: str
    epochs_run: int
    train_seconds: float
    test_samples: int  # the whole held-out test split (Keras figure)
    verification_samples: int  # the test images the TFLite accuracies were measured on
    keras_test_accuracy: float
    int8_agreement: float  # top-1 agreement of int8 TFLite with the float Keras model
    float32: FormatFigures
    int8: FormatFigures
    edgetpu: dict[str, Any]
    run: StreamFigures
    counting: CountFigures
    steps_seconds: dict[str, float]
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Progress:
    """``[i/6] what ...`` lines and indented detail lines, flushed at once so ``make`` shows them live."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.step_seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout  # looked up late: the CLI may redirect stdout around us

    def step(self, index: int, key: str, text: str) -> None:
        self.done()
        self.line(f"[{index}/{STEPS}] {text} ...", indent=0)
        self._current = (key, time.perf_counter())

    def done(self) -> None:
        if self._current is not None:
            key, start = self._current
            self.step_seconds[key] = round(time.perf_counter() - start, 2)
            self._current = None

    def line(self, text: str, indent: int = 4) -> None:
        self.stream.write(" " * indent + text + "\n")
        self.stream.flush()


def demo(
    *,
    output: Path = DEFAULT_OUTPUT,
    epochs: int | None = None,
    seconds: float = DEFAULT_SECONDS,
    quick: bool = False,
    progress: TextIO | None = None,
) -> DemoReport:
    """Run the seven demo steps into ``output`` (replaced if a previous demo wrote it) and return the figures.

    ``epochs`` defaults to 15 (2 with ``quick``); ``seconds`` is how long ``edgecnn run`` classifies the
    video. ``quick`` trains on 300 images without augmentation and benches briefly: for tests, not for
    figures anyone should quote. Progress goes to ``progress`` (default stdout), Keras' included.
    """
    if epochs is not None and not 1 <= epochs <= 1000:
        raise UsageError(f"--epochs must be between 1 and 1000 (got {epochs}).")
    if not 0.5 <= seconds <= 600:
        raise UsageError(f"--seconds must be between 0.5 and 600 (got {seconds:g}).")
    if importlib.util.find_spec("tensorflow") is None:  # before touching the output folder
        raise RuntimeMissing(
            "edgecnn demo trains a model, which needs TensorFlow: pip install 'edgecnn[train]' "
            "(make demo installs it)."
        )
    started = time.perf_counter()
    out = Path(output)
    say = _Progress(progress)
    prepare_output(out)

    n_epochs = epochs or (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    trained = _train_step(out, n_epochs, quick, say)
    int8, f32 = _convert_step(out, Path(trained.model), quick, say)
    edgetpu = _edgetpu_step(int8, say)
    probe, figures = _bench_step(out, {"float32": f32, "int8": int8}, quick, say)

    say.step(5, "video", "rendering held-out digits into a 640x480 video")
    video, video_labels = render_video(out, seconds=seconds + 2.0)
    say.line(
        f"{video} ({len(video_labels)} frames at {VIDEO_FPS:g} fps, "
        f"{math.ceil(len(video_labels) / HOLD_FRAMES)} test-split digits)"
    )

    say.step(6, "run", f"edgecnn run on the video with --serve for {seconds:g} s")
    stream = run_on_video(out, Path(int8.output), video, video_labels, seconds=seconds, say=say)
    say.line(
        f"{stream.classified} frames classified at {stream.fps:.1f} fps ({stream.dropped} dropped), "
        f"{stream.correct} with the digit that was rendered"
    )

    say.step(7, "counting", "counting shapes that cross a line (edgecnn run with tracking and --line)")
    counting = count_crossings(out, stream=say.stream)
    say.line("$ " + counting.command)
    for event in counting.events:
        say.line(
            f"frame {event['frame']:>3}: track {event['track_id']} ({event['label']}) crossed "
            f"{event['line']} {event['direction']}"
        )
    say.line(
        f"counted in {counting.counted['in']} out {counting.counted['out']}; scripted in "
        f"{counting.expected['in']} out {counting.expected['out']} ({counting.shapes} shapes, "
        f"{counting.tracks} track IDs over {counting.frames} frames)"
    )
    say.done()

    report = DemoReport(
        output=str(out),
        seconds=round(time.perf_counter() - started, 1),
        machine=f"{probe.name} ({probe.arch}, {probe.cores or '?'} cores)",
        quick=quick,
        dataset=trained.dataset,
        epochs_run=trained.epochs_run,
        train_seconds=trained.seconds,
        test_samples=trained.test_samples,
        verification_samples=int8.verification.samples,
        keras_test_accuracy=trained.test_accuracy,
        int8_agreement=int8.verification.top1_agreement,
        float32=figures["float32"],
        int8=figures["int8"],
        edgetpu=edgetpu,
        run=stream,
        counting=counting,
        steps_seconds=say.step_seconds,
        files=_artifacts(out, trained, int8, f32, video),
    )
    write_atomic(out / "demo.json", (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return report


def _train_step(out: Path, n_epochs: int, quick: bool, say: _Progress) -> TrainReport:
    from edgecnn.train import train

    say.step(1, "train", f"training the seed CNN on the bundled digits (up to {n_epochs} epochs)")
    with contextlib.redirect_stdout(say.stream):  # Keras prints its progress to sys.stdout
        trained = train(
            output=out,
            dataset="digits",
            epochs=n_epochs,
            augment=not quick,
            early_stopping=not quick,
            limit=300 if quick else None,
            verbose="auto",
        )
    say.line(
        f"test accuracy {trained.test_accuracy:.2%} on {trained.test_samples} held-out images "
        f"after {trained.epochs_run} epochs ({trained.seconds:.0f} s)"
    )
    return trained


def _convert_step(
    out: Path, keras_path: Path, quick: bool, say: _Progress
) -> tuple[ConversionReport, ConversionReport]:
    """(int8, float32) TFLite of the trained model, each verified against it."""
    from edgecnn.converters.pipeline import convert

    say.step(2, "convert", "converting to int8 TFLite with verification (and float32 for comparison)")
    # Verification calls Keras predict on new models: after a few, TensorFlow warns about "retracing",
    # which is expected here and would only alarm a newcomer. Errors still show.
    tf_log = logging.getLogger("tensorflow")
    tf_level = tf_log.level
    tf_log.setLevel(logging.ERROR)
    try:
        int8 = convert(
            keras_path,
            output=out / "model_int8.tflite",
            quantize="int8",
            calibration_samples=100 if quick else 300,
            verification_samples=120 if quick else 1000,
            min_agreement=None if quick else MIN_AGREEMENT,  # below it: ConversionError, nothing written
        )
        f32 = convert(
            keras_path,
            output=out / "model_float32.tflite",
            quantize="float32",
            verification_samples=120 if quick else 1000,
            report=out / "conversion_report_float32.json",
        )
    finally:
        tf_log.setLevel(tf_level)
    v8, v32 = int8.verification, f32.verification
    say.line(
        f"int8 {_kib(int8.sizes['output_bytes'])}: accuracy {_pct(v8.converted_accuracy)} vs float "
        f"{_pct(v8.float_accuracy)}, top-1 agreement {v8.top1_agreement:.2%} on {v8.samples} held-out images"
    )
    say.line(f"float32 {_kib(f32.sizes['output_bytes'])}: accuracy {_pct(v32.converted_accuracy)}")
    return int8, f32


def _edgetpu_step(int8: ConversionReport, say: _Progress) -> dict[str, Any]:
    """The static Edge TPU check, and whether a compiler is here to go further."""
    from edgecnn.inspect.contents import inspect_model

    say.step(3, "edgetpu", "checking Edge TPU compatibility (edgecnn inspect --target edgetpu)")
    check = inspect_model(int8.output, target="edgetpu").extra["edgetpu"]
    for text in check.format_lines():
        say.line(text)
    compiler = shutil.which("edgetpu_compiler")
    say.line(
        f"edgetpu_compiler found at {compiler}: `edgecnn convert --edgetpu` compiles the model"
        if compiler
        else "edgetpu_compiler is not on this machine (Coral ships it for x86-64 Debian/Ubuntu only), so "
        "this was the static check; `edgecnn convert --edgetpu` compiles, and prints the install steps"
    )
    return {
        "compatible": check.compatible,
        "mapped": check.mapped,
        "cpu": check.cpu,
        "problems": check.problems,
        "verdict": check.format_lines()[0],
        "compiler": compiler,
    }


def _artifacts(
    out: Path, trained: TrainReport, int8: ConversionReport, f32: ConversionReport, video: Path
) -> dict[str, str]:
    """Every file the demo leaves, by role (the report's ``files``)."""
    return {
        "model_keras": trained.model,
        "curves": trained.files.get("curves", ""),
        "metrics": trained.files.get("metrics", ""),
        "model_int8": int8.output,
        "model_float32": f32.output,
        "conversion_report": int8.report,
        "bench_int8": str(out / "bench_int8.json"),
        "bench_float32": str(out / "bench_float32.json"),
        "video": str(video),
        "crossing_video": str(out / "crossing.avi"),
        "crossing_events": str(out / "crossing_events.jsonl"),
        "crossing_results": str(out / "crossing.jsonl"),
        "run_jsonl": str(out / "run.jsonl"),
        "run_log": str(out / "run.log"),
        "report": str(out / "demo.json"),
    }


def _bench_step(
    out: Path, models: dict[str, ConversionReport], quick: bool, say: _Progress
) -> tuple[DeviceProbe, dict[str, FormatFigures]]:
    """One ``edgecnn bench`` per model on 1 CPU thread, saved beside it; the figures for the table."""
    from edgecnn.bench.results import save_result
    from edgecnn.bench.runner import run_bench
    from edgecnn.devices.probe import probe_device

    say.step(4, "bench", "benchmarking float32 vs int8 on this machine (edgecnn bench)")
    probe = probe_device()
    runs, warmup = (30, 3) if quick else (BENCH_RUNS, BENCH_WARMUP)
    figures: dict[str, FormatFigures] = {}
    # The bench's own progress line would repeat what say.line() prints below: one line per bench.
    bench_log = logging.getLogger("edgecnn.bench.runner")
    for name, conv in models.items():
        level = bench_log.level
        bench_log.setLevel(logging.WARNING)
        try:
            result = run_bench(
                conv.output, devices="cpu", threads=(1,), runs=runs, warmup=warmup, probe=probe
            )
        finally:
            bench_log.setLevel(level)
        save_result(result, out / f"bench_{name}.json")
        cfg = result.results[0]
        figures[name] = FormatFigures(
            quantize=name,
            path=conv.output,
            size_bytes=int(conv.sizes["output_bytes"]),
            test_accuracy=conv.verification.converted_accuracy,
            latency_p50_ms=cfg.latency_ms.p50,
            latency_p99_ms=cfg.latency_ms.p99,
            bench_runs=cfg.runs,
            bench_threads=cfg.threads,
        )
        say.line(
            f"{name:<8} p50 {cfg.latency_ms.p50:.3f} ms  p99 {cfg.latency_ms.p99:.3f} ms  "
            f"({cfg.runs} invokes, 1 thread, {cfg.throughput_ips:.0f} inferences/s)"
        )
    return probe, figures


def prepare_output(out: Path) -> None:
    """Empty ``out`` for a fresh demo: only a folder a previous demo wrote (marker file) is ever deleted."""
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise UsageError(f"{out} exists and is not a folder: pass another -o/--output.")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise UsageError(
                f"{out} exists and was not written by edgecnn demo, so it is left alone: pass another "
                "-o/--output, or remove the folder."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_atomic(out / MARKER, b"Written by edgecnn demo; the next demo into this folder replaces it.\n")


def render_video(out: Path, *, seconds: float) -> tuple[Path, list[int]]:
    """Held-out digits (the test split train and convert used) as a 640x480 MJPG video; (path, label per frame).

    The per-frame labels also go to ``digits_video.json`` so the scoring can be redone by anyone.
    """
    from edgecnn.devices.sources.synthetic import digit_frame, write_video
    from edgecnn.train import load_dataset

    data = load_dataset("digits")  # same default seed and test split as the training run
    count = max(HOLD_FRAMES, math.ceil(seconds * VIDEO_FPS))
    labels = [int(data.y_test[(i // HOLD_FRAMES) % len(data.y_test)]) for i in range(count)]
    width, height = VIDEO_SIZE
    frames = (
        digit_frame(data.x_test[(i // HOLD_FRAMES) % len(data.x_test)], width, height) for i in range(count)
    )
    video = write_video(out / "digits.avi", frames, fps=VIDEO_FPS)
    info = {
        "video": video.name,
        "fps": VIDEO_FPS,
        "width": width,
        "height": height,
        "hold_frames": HOLD_FRAMES,
        "source": f"{data.source}, held-out test split (seed 0, test split 0.2), in order",
        "labels": labels,
    }
    write_atomic(out / "digits_video.json", (json.dumps(info) + "\n").encode())
    return video, labels


def run_on_video(
    out: Path, model: Path, video: Path, labels: list[int], *, seconds: float, say: _Progress
) -> StreamFigures:
    """``edgecnn run`` as a real child process; poll its HTTP endpoint, then score its JSONL."""
    jsonl = out / "run.jsonl"
    log_path = out / "run.log"
    for attempt in range(3):  # the free port we picked may be taken before the child binds it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "edgecnn", "run", str(model),
            "--source", str(video), "--realtime", "--crop", "center",
            "--duration", f"{seconds:g}", "--jsonl", str(jsonl), "--serve", f"127.0.0.1:{port}",
        ]  # fmt: skip
        say.line("$ edgecnn " + " ".join(argv[3:]))
        jsonl.unlink(missing_ok=True)  # --jsonl appends
        code, lines, healthz, latest = _run_child(argv, url, seconds, say)
        write_atomic(log_path, "".join(lines).encode("utf-8"), what="demo run log")
        if code == 0:
            break
        if attempt < 2 and any(f"Cannot serve on 127.0.0.1:{port}" in line for line in lines):
            continue
        errors = [line.strip() for line in lines if line.startswith("edgecnn:")] or [
            line.strip() for line in list(lines)[-3:]
        ]
        raise EdgecnnError(
            f"edgecnn run exited with {code}: {' / '.join(errors) or 'no output'} (full output in {log_path})."
        )
    if not healthz or not latest:
        raise EdgecnnError(
            f"edgecnn run classified for {seconds:g} s but {url}/healthz and /latest did not both answer "
            f"200 meanwhile: the loopback interface may be down or the service too slow to start (see "
            f"{log_path}); check `ip addr show lo`, or try a longer --seconds."
        )
    say.line(f"GET {url}/healthz -> {json.dumps(healthz)}")
    say.line(f"GET {url}/latest  -> {textwrap.shorten(json.dumps(latest), 160, placeholder=' …')}")
    return score_jsonl(
        jsonl, labels, video=video, seconds=seconds, healthz=healthz, latest=latest, url=url + "/"
    )


def _run_child(
    argv: list[str], url: str, seconds: float, say: _Progress
) -> tuple[int, list[str], dict[str, Any], dict[str, Any]]:
    """Start the child, echo its output indented, fetch /healthz (once 200) and /latest; return all that."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: deque[str] = deque(maxlen=2000)

    def pump() -> None:
        assert proc.stdout is not None  # we asked for a pipe
        for line in proc.stdout:
            lines.append(line)
            say.line("| " + line.rstrip("\n"), indent=6)

    reader = threading.Thread(target=pump, name="edgecnn-run-output", daemon=True)
    reader.start()
    healthz: dict[str, Any] = {}
    latest: dict[str, Any] = {}
    deadline = time.monotonic() + seconds + RUN_GRACE_S
    try:
        # Poll until the service says frames flow, let it run a moment, then take the snapshot we show.
        while proc.poll() is None and time.monotonic() < deadline:
            status, body = http_get_json(url + "/healthz")
            if status == 200:
                healthz = body
                break
            time.sleep(0.05)
        if healthz and proc.poll() is None:
            time.sleep(min(1.0, seconds / 2))
            status, body = http_get_json(url + "/healthz")
            if status == 200:
                healthz = body
            status, body = http_get_json(url + "/latest")
            if status == 200:
                latest = body
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise EdgecnnError(
            f"edgecnn run did not finish within {seconds + RUN_GRACE_S:.0f} s and was stopped: the machine "
            "may be overloaded; try again."
        ) from None
    except BaseException:
        proc.kill()  # Ctrl-C: never leave the child serving behind us
        proc.wait()
        raise
    reader.join(timeout=10)
    return code, list(lines), healthz, latest


def score_jsonl(
    jsonl: Path,
    labels: list[int],
    *,
    video: Path,
    seconds: float,
    healthz: dict[str, Any],
    latest: dict[str, Any],
    url: str,
) -> StreamFigures:
    """Frames, fps, drops and correct frames from ``edgecnn run``'s JSONL (``frame`` = video frame index)."""
    import numpy as np

    try:
        records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        raise EdgecnnError(f"Cannot read the results edgecnn run wrote to {jsonl}: {exc}.") from exc
    if not records:
        raise EdgecnnError(f"edgecnn run classified no frames (empty {jsonl}): see run.log beside it.")
    correct = sum(
        1
        for r in records
        if 0 <= r["frame"] < len(labels) and r["classes"][0]["label"] == str(labels[r["frame"]])
    )
    span = records[-1]["timestamp"] - records[0]["timestamp"]
    fps = (len(records) - 1) / span if len(records) > 1 and span > 0 else 0.0
    ages = [r["latency_ms"]["age"] for r in records]
    return StreamFigures(
        video=str(video),
        video_fps=VIDEO_FPS,
        video_frames=len(labels),
        seconds=seconds,
        classified=len(records),
        fps=round(fps, 2),
        dropped=max(0, records[-1]["frame"] + 1 - len(records)),
        correct=correct,
        accuracy=round(correct / len(records), 4),
        latency_p50_ms=round(float(np.percentile(ages, 50)), 3),
        healthz=healthz,
        latest=latest,
        url=url,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _kib(size: float) -> str:
    return f"{size / 1024:.1f} KiB"


def _count_cell(count: CountFigures) -> str:
    got, want = count.counted, count.expected
    verdict = "exact" if count.exact else f"scripted in {want['in']} out {want['out']}"
    return f"in {got['in']} out {got['out']} ({verdict})"


def format_report(report: DemoReport) -> str:
    """The one summary table the demo ends with, then where everything is."""
    f32, i8, run, count = report.float32, report.int8, report.run, report.counting
    minutes, secs = divmod(round(report.seconds), 60)
    took = f"{minutes} min {secs} s" if minutes else f"{secs} s"
    rows = [
        ("", "float32 TFLite", "int8 TFLite"),
        (
            f"test accuracy ({report.verification_samples} images)",
            _pct(f32.test_accuracy),
            _pct(i8.test_accuracy),
        ),
        (
            "model size",
            _kib(f32.size_bytes),
            f"{_kib(i8.size_bytes)} ({i8.size_bytes / f32.size_bytes:.2f}x)",
        ),
        (
            "latency p50 / p99",
            f"{f32.latency_p50_ms:.3f} / {f32.latency_p99_ms:.3f} ms",
            f"{i8.latency_p50_ms:.3f} / {i8.latency_p99_ms:.3f} ms",
        ),
        ("end-to-end (edgecnn run)", "", f"{run.fps:.1f} fps (video {run.video_fps:g} fps)"),
        ("Edge TPU check", "", "compatible" if report.edgetpu["compatible"] else "NOT compatible"),
        ("line count (tracking, shapes)", "", _count_cell(report.counting)),
    ]
    table = render(rows[0], rows[1:], rule=True, indent=2).splitlines()
    quick = "  (quick mode: tiny training, figures not representative)" if report.quick else ""
    out = Path(report.output)
    lines = [
        "",
        f"edgecnn demo: seed CNN on {report.dataset}, {report.epochs_run} epochs, on {report.machine}, "
        f"in {took}{quick}",
        *table,
        f"  accuracy is on the held-out test split; the float Keras model scores "
        f"{report.keras_test_accuracy:.2%} ({report.test_samples} images) and int8 agrees with it on {report.int8_agreement:.2%} of images",
        f"  latency: one invoke() on 1 CPU thread, {i8.bench_runs} timed runs each (edgecnn bench)",
        f"  end-to-end: {run.video_frames} frames of 640x480 MJPG played at {run.video_fps:g} fps for "
        f"{run.seconds:g} s, --crop center: {run.classified} classified, {run.dropped} dropped, "
        f"{run.correct}/{run.classified} ({_pct(run.accuracy)}) show the digit rendered; "
        f"capture-to-result p50 {run.latency_p50_ms:.1f} ms",
        f"  Edge TPU: {report.edgetpu['verdict'].removeprefix('edgetpu: ')}",
        f"  counting: {count.shapes} scripted shapes crossed a line in {count.frames} frames; edgecnn run "
        f"tracked them with the bundled int8 shapes detector ({count.tracks} track IDs) and wrote "
        f"{len(count.events)} cross events ({_count_cell(count)})",
        "",
        f"artifacts in {out}/:",
        *(
            f"  {Path(path).name:<30} {what}"
            for path, what in (
                (
                    report.files["model_keras"],
                    "trained Keras model (+ labels.txt, metrics.json, curves.png, samples/)",
                ),
                (report.files["model_int8"], "int8 TFLite with metadata: the one to deploy"),
                (report.files["model_float32"], "float32 TFLite, for comparison"),
                (report.files["conversion_report"], "conversion and verification details"),
                (report.files["bench_int8"], "bench results (also bench_float32.json): edgecnn bench report"),
                (report.files["video"], "the test video (labels in digits_video.json)"),
                (report.files["run_jsonl"], "edgecnn run results, one JSON line per frame (log: run.log)"),
                (report.files["crossing_video"], "shapes crossing a line (results: crossing.jsonl)"),
                (report.files["crossing_events"], "the crossing events edgecnn run wrote"),
                (report.files["report"], "these figures as JSON"),
            )
        ),
        "",
        "next: watch it live with",
        f"  edgecnn run {report.files['model_int8']} --source {report.files['video']} --realtime --loop "
        "--crop center --serve 127.0.0.1:8080",
        "  and open http://127.0.0.1:8080/; it serves until Ctrl-C (on a Raspberry Pi: --camera 0 instead of "
        "--source ... --loop)",
    ]
    return "\n".join(lines)
