"""``edgecnn run`` end to end on a generated 640x480 30 fps video, against its parts measured in the same run.

Prints, with targets:
- end-to-end fps / min(decode-only fps, classify-only fps)     >= 0.9 (capture and inference overlap)
- peak RSS of an `edgecnn run` process                          <= 120 MB
- process start to first classified frame                       <= 1 s
- per-frame Python overhead outside invoke(), as a ratio (busy time per frame / invoke time)
- SIGTERM to exit                                               <= 2 s
and writes them as JSON (default runs/benchmarks/pipeline-HOST.json) so devices can be compared.

Usage: python benchmarks/pipeline.py [--model M.tflite] [--frames 600] [--threads N] [--rounds 9] [--out F.json]
Without --model it trains and converts the seed digits model (edgecnn train + convert, about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS = 640, 480, 30


def device_name() -> str:
    model = Path("/proc/device-tree/model")
    if model.exists():
        return model.read_text(errors="replace").strip("\0\n ")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()} ({cpu}, {os.cpu_count()} cores)"


def governor_warning() -> str | None:
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if path.exists():
        governor = path.read_text().strip()
        if governor != "performance":
            return f"CPU governor is {governor!r}, not 'performance': figures may vary"
    return None


def load_warning() -> str | None:
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if load > cores - 1:
        return (
            f"load average {load:.1f} on {cores} cores: other processes compete for the CPU; end-to-end needs "
            "a core for decoding and one for inference, so its ratio is understated"
        )
    return None


def build_seed_model(folder: Path) -> Path:
    """The seed CNN on scikit-learn's digits, int8, the way the test suite's digits_model fixture builds it."""
    from edgecnn.converters.pipeline import convert
    from edgecnn.train import train

    train(output=folder, dataset="digits", epochs=3, augment=False, early_stopping=False, verbose=0)
    report = convert(folder / "model.keras", output=folder / "model_int8.tflite", calibration_samples=200)
    return Path(report.output)


def write_video(path: Path, frames: int) -> Path:
    from edgecnn.devices.sources.synthetic import render_digit

    digits = [render_digit(d, WIDTH, HEIGHT) for d in range(10)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for i in range(frames):
        frame = digits[(i // 15) % 10].copy()
        cv2.circle(frame, (20 + i % 600, 20), 10, (0, 0, 255), -1)  # some motion, so frames differ
        writer.write(frame)
    writer.release()
    return path


def decode_only(video: Path) -> float:
    cap = cv2.VideoCapture(str(video))
    count = 0
    t0 = time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        count += 1
    elapsed = time.perf_counter() - t0
    cap.release()
    return count / elapsed


class TimedInterpreter:
    """Forwards to the real interpreter and times invoke() alone."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.invoke_s: list[float] = []

    def invoke(self) -> None:
        t0 = time.perf_counter()
        self._inner.invoke()
        self.invoke_s.append(time.perf_counter() - t0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def classify_only(model: Path, frame: np.ndarray, threads: int | None, count: int) -> tuple[float, float]:
    """(model-only fps on an in-memory frame: preprocess + invoke + decode (top-k; NMS for a detector),
    bare invoke fps). Any task: a detector's figure is its detect-only fps."""
    from edgecnn.model import open_model

    clf = open_model(model, threads=threads)
    for _ in range(20):
        clf.process(frame)
    t0 = time.perf_counter()
    for _ in range(count):
        clf.process(frame)
    classify_fps = count / (time.perf_counter() - t0)
    tensor = clf.preprocess(frame)
    clf.invoke(tensor)
    t0 = time.perf_counter()
    for _ in range(count):
        clf.interpreter.invoke()
    return classify_fps, count / (time.perf_counter() - t0)


def end_to_end(model: Path, video: Path, threads: int | None) -> dict[str, float]:
    """The library pipeline on the file (every frame, in order), with invoke() timed inside it."""
    from edgecnn.model import open_model
    from edgecnn.run import RunOptions, run

    clf = open_model(model, threads=threads)
    timed = TimedInterpreter(clf.interpreter)
    clf.interpreter = timed
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the summary line; we print our own
        summary = run(RunOptions(model=model, source=str(video), quiet=True), model=clf)
    wall = time.perf_counter() - t0
    busy = (
        summary.mean_ms["preprocess"]
        + summary.mean_ms["inference"]
        + summary.mean_ms.get("postprocess", 0.0)
        + summary.mean_ms["other"]
    )
    invoke_ms = 1e3 * statistics.fmean(timed.invoke_s)
    return {
        "frames": summary.frames,
        "fps": summary.fps,
        "fps_wall": summary.frames / wall,
        "busy_ms": busy,
        "invoke_ms": invoke_ms,
        "overhead_ms": busy - invoke_ms,
        "preprocess_ms": summary.mean_ms["preprocess"],
        "capture_wait_ms": summary.mean_ms["capture_wait"],
    }


def edgecnn_argv() -> list[str]:
    exe = Path(sys.executable).parent / "edgecnn"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgecnn"]


# A minimal launcher measures the child: ru_maxrss counts pages a child shares with its parent before
# exec, so spawning from this process (which may hold TensorFlow after training) would inflate it.
RSS_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(argv: list[str]) -> float:
    """Peak RSS of exactly this child process (its own rusage from os.wait4), in MB."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", RSS_LAUNCHER, *argv], capture_output=True, text=True, check=True
    )
    code, maxrss = (int(v) for v in out.stdout.split())
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    kb = maxrss if platform.system() == "Linux" else maxrss / 1024
    return kb / 1024


def first_result_s(argv: list[str]) -> float:
    """Wall time from spawning the process to reading its first JSONL result."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.terminate()
    proc.communicate(timeout=30)
    if not line.startswith("{"):
        raise SystemExit(f"no result from {' '.join(argv)}")
    return elapsed


def sigterm_exit_s(argv: list[str]) -> float:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"SIGTERM exit code {proc.returncode}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, help="int8 .tflite (default: train + convert the seed digits model)"
    )
    parser.add_argument("--frames", type=int, default=600, help="frames in the generated video (default 600)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: runtime's)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load_before = load_warning()

    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        folder = Path(tmp)
        model = args.model or build_seed_model(folder / "seed")
        video = write_video(folder / "digits_640x480_30fps.avi", args.frames)
        frame = cv2.VideoCapture(str(video)).read()[1]
        base = [*edgecnn_argv(), "run", str(model)]
        threads = ["--threads", str(args.threads)] if args.threads else []
        # Child-process figures first: nothing else of ours is running then.
        rss = peak_rss_mb([*base, "--source", str(video), "--quiet", *threads])
        rss_served = peak_rss_mb(
            [
                *base,
                "--source",
                str(video),
                "--quiet",
                "--serve",
                "127.0.0.1:0",
                "--jsonl",
                os.devnull,
                *threads,
            ]
        )
        starts = [first_result_s([*base, "--source", "demo", "--jsonl", "-", *threads]) for _ in range(5)]
        stops = [sigterm_exit_s([*base, "--source", "demo", "--jsonl", "-", *threads]) for _ in range(3)]
        decode, classify, invoke, e2e = [], [], [], []
        for _ in range(args.rounds):
            # decode, classify, end-to-end, decode again: each end-to-end run is compared with parts
            # measured right around it, so load from other processes hits both sides alike.
            before = decode_only(video)
            c, i = classify_only(model, frame, args.threads, args.frames)
            e2e.append(end_to_end(model, video, args.threads))
            decode.append((before + decode_only(video)) / 2)
            classify.append(c)
            invoke.append(i)

    d, c, i = statistics.median(decode), statistics.median(classify), statistics.median(invoke)
    e = statistics.median(r["fps"] for r in e2e)
    ratios = [r["fps"] / min(dd, cc) for r, dd, cc in zip(e2e, decode, classify, strict=True)]
    busy = statistics.median(r["busy_ms"] for r in e2e)
    inv = statistics.median(r["invoke_ms"] for r in e2e)
    results = {
        "device": device_name(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "model": str(model if args.model else "seed digits int8 (trained in this run)"),
        "video": f"{WIDTH}x{HEIGHT} {FPS} fps MJPG, {args.frames} frames",
        "threads": args.threads,
        "decode_only_fps": round(d, 1),
        "classify_only_fps": round(c, 1),
        "invoke_only_fps": round(i, 1),
        "end_to_end_fps": round(e, 1),
        "end_to_end_ratio": round(statistics.median(ratios), 3),
        "end_to_end_ratio_rounds": [round(r, 3) for r in ratios],
        "peak_rss_mb": round(rss, 1),
        "peak_rss_served_mb": round(rss_served, 1),
        "start_to_first_result_s": {
            "median": round(statistics.median(starts), 3),
            "max": round(max(starts), 3),
        },
        "sigterm_to_exit_s": {"median": round(statistics.median(stops), 3), "max": round(max(stops), 3)},
        "per_frame_ms": {
            "busy": round(busy, 3),
            "invoke": round(inv, 3),
            "outside_invoke": round(busy - inv, 3),
            "preprocess": round(statistics.median(r["preprocess_ms"] for r in e2e), 3),
        },
        "overhead_ratio": round(busy / inv, 2),
        "load_average": os.getloadavg(),
        "rounds": e2e,
    }
    print(f"device: {results['device']}")
    for warning in (governor_warning(), load_before, load_warning()):
        if warning:
            print(f"warning: {warning}")
    print(f"video: {results['video']}; model: {results['model']}; rounds: {args.rounds}")
    print(f"decode-only        {d:8.1f} fps")
    print(
        f"classify-only      {c:8.1f} fps  (preprocess + infer + top-k on a decoded frame; invoke alone {i:.1f} fps)"
    )
    print(
        f"end-to-end         {e:8.1f} fps  ratio to min(decode, classify) {results['end_to_end_ratio']:.3f} (median of rounds; best {max(ratios):.3f})  (target >= 0.9)"
    )
    print(
        f"peak RSS           {rss:8.1f} MB  ({rss_served:.1f} MB with --serve and --jsonl)  (target <= 120 MB)"
    )
    print(
        f"start to 1st result {statistics.median(starts):7.3f} s   median of {len(starts)}, max {max(starts):.3f} s  (target <= 1 s)"
    )
    print(f"SIGTERM to exit    {statistics.median(stops):8.3f} s   max {max(stops):.3f} s  (target <= 2 s)")
    print(
        f"per frame: busy {busy:.3f} ms, invoke {inv:.3f} ms, outside invoke {busy - inv:.3f} ms "
        f"(preprocess {results['per_frame_ms']['preprocess']:.3f} ms): busy/invoke ratio {busy / inv:.2f}"
    )
    out = args.out or ROOT / "runs" / "benchmarks" / f"pipeline-{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
