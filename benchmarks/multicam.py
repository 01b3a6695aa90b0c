"""Several cameras into one CPU interpreter (``[[cameras]]``), against one camera measured in the same run.

Four generated 640x480 videos played at 15 fps (``realtime``, looped, like cameras) feed one shared model
with event clips on (every frame is part of an event, the heaviest case: the pre-roll ring encodes each
frame as JPEG and the clip writer encodes video all the time). The model is chosen so that the cameras
offer more frames than it can take (4 x 15 = 60 fps against about 30 inferences/s here), so the run is
inference-bound and the question is how much of the interpreter's capacity the shared worker uses.

Prints, with targets:
- aggregate inferences/s of N cameras / single-stream inferences/s          >= 0.9
  (single stream: one camera reading the same video as fast as it can, i.e. invoke-bound; the two
  alternate for --rounds rounds and the median round is reported, with every round's ratio)
- how busy the shared interpreter was in the N-camera run itself (inferences/s x mean invoke time):
  what the scheduling loses, whatever else the machine does
- fairness: max / min per-camera inferences/s                               <= 1.2
- per-camera latency p99 (capture to result)
- peak RSS of the N-camera process, and RSS added per camera                <= 15 MB
  ((peak with N cameras - peak with 1 camera) / (N - 1), both at 15 fps with clips on)
and writes them as JSON (default runs/benchmarks/multicam-HOST.json).

Usage: python benchmarks/multicam.py [--model M.tflite] [--cameras 4] [--seconds 12] [--rounds 3]
       [--no-clips] [--out F.json]
Without --model it builds an untrained MobileNetV2 at 512x512, int8 (TensorFlow, about 20 s; cached in
~/.cache/edgecnn-bench): only its cost matters here, not what it recognises.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from pipeline import device_name, governor_warning  # noqa: E402  (the sibling benchmark's helpers)

WIDTH, HEIGHT, FPS = 640, 480, 15
SIZE = 512


def build_model(path: Path) -> Path:
    """An untrained MobileNetV2 classifier, full-integer int8 (uint8 input/output), ``SIZE`` px input."""
    if path.exists():
        return path
    import numpy as np
    import tensorflow as tf

    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3), classes=10)

    def representative() -> Any:
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.random((1, SIZE, SIZE, 3), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(converter.convert())
    tmp.replace(path)
    return path


def make_video(path: Path, seconds: float = 8.0) -> Path:
    """A moving scene (a bright square sliding over a gradient, with noise) that compresses like a camera's."""
    import cv2
    import numpy as np

    from edgecnn.devices.sources.synthetic import write_video

    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(40, 200, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    frames = []
    for i in range(int(seconds * FPS)):
        image = cv2.merge([base, np.roll(base, i * 7, axis=1), base[:, ::-1]])
        image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
        x = (i * 13) % (WIDTH - 120)
        cv2.rectangle(image, (x, 180), (x + 120, 300), (250, 250, 250), -1)
        frames.append(image)
    return write_video(path, frames, fps=FPS)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measured run in this (fresh) process: ``spec`` says which; returns its figures."""
    import threading

    from edgecnn.run.cameras import run_cameras
    from edgecnn.run.footprint import configure_process
    from edgecnn.run.options import RunOptions

    configure_process()
    cameras = [{"name": f"cam{i}", "source": spec["video"]} for i in range(spec["cameras"])]
    clips = {}
    if spec["clips"]:
        clips = {"clips": spec["clips"], "clip_pre": 2.0, "clip_post": 2.0, "clip_max_length": 10.0}
        clips["clip_max_mb"] = 500.0
    options = RunOptions(
        model=Path(spec["model"]),
        cameras=cameras,
        realtime=spec["realtime"],
        loop=True,
        duration=spec["seconds"],
        quiet=True,
        **clips,
    )
    invoke_rate = None
    if spec.get("invoke"):
        from edgecnn.model import open_model

        model = open_model(spec["model"])
        tensor = model.preprocess(__import__("numpy").zeros((HEIGHT, WIDTH, 3), "uint8"))
        for _ in range(5):
            model.invoke(tensor)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3.0:
            model.invoke(tensor)
            count += 1
        invoke_rate = count / (time.perf_counter() - start)
        del model
    summaries = run_cameras(options, stop_event=threading.Event())
    return {
        "cameras": {
            name: {
                "fps": s.fps,
                "frames": s.frames,
                "dropped": s.dropped,
                "latency_ms": s.latency_ms,
                "inference_mean_ms": s.mean_ms["inference"],
            }
            for name, s in summaries.items()
        },
        "invoke_per_s": invoke_rate,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that across fork and
    exec, so a child of a parent that once held TensorFlow would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + 120,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed ({spec}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="Single-stream / N-camera pairs (median shown)."
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-clips", action="store_true", help="Clips off (to see what they cost).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecnn-bench"
    model = args.model or build_model(cache / f"mobilenet_v2_{SIZE}_int8.tflite")
    print(f"device: {device_name()}")
    if (warning := governor_warning()) is not None:
        print(f"warning: {warning}")
    with tempfile.TemporaryDirectory(prefix="edgecnn-multicam-") as tmp:
        video = make_video(Path(tmp) / "camera.mp4")
        base = {"model": str(model), "video": str(video), "seconds": args.seconds}
        clips1 = None if args.no_clips else str(Path(tmp) / "clips1")
        one = measure({**base, "cameras": 1, "realtime": True, "clips": clips1})
        # Single stream and N cameras alternate, so a change in what else the machine does hits both;
        # each ratio compares neighbours, and the median of the rounds is reported.
        singles, manys = [], []
        for i in range(args.rounds):
            singles.append(measure({**base, "cameras": 1, "realtime": False, "clips": None, "invoke": True}))
            clipsn = None if args.no_clips else str(Path(tmp) / f"clipsN{i}")
            manys.append(measure({**base, "cameras": args.cameras, "realtime": True, "clips": clipsn}))
        clip_files = sum(1 for p in Path(tmp).glob("clipsN*/**/*.avi"))
    ratios = [
        sum(c["fps"] for c in m["cameras"].values()) / s["cameras"]["cam0"]["fps"]
        for s, m in zip(singles, manys, strict=True)
    ]
    k = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]  # the median round
    single, many = singles[k], manys[k]
    single_fps = single["cameras"]["cam0"]["fps"]
    rates = {name: cam["fps"] for name, cam in many["cameras"].items()}
    aggregate = sum(rates.values())
    fairness = max(rates.values()) / max(1e-9, min(rates.values()))
    # In the same run: the share of the time the shared interpreter was busy (inferences/s x mean invoke).
    mean_invoke_ms = sum(c["inference_mean_ms"] * c["frames"] for c in many["cameras"].values()) / max(
        1, sum(c["frames"] for c in many["cameras"].values())
    )
    utilisation = aggregate * mean_invoke_ms / 1e3
    peak_many = max(m["peak_rss_mb"] for m in manys)
    per_camera_rss = (peak_many - one["peak_rss_mb"]) / max(1, args.cameras - 1)
    figures = {
        "device": device_name(),
        "model": Path(model).name,
        "cameras": args.cameras,
        "source_fps": FPS,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "invoke_per_s": round(single["invoke_per_s"], 2),
        "single_stream_per_s": single_fps,
        "aggregate_per_s": round(aggregate, 2),
        "aggregate_ratio": round(ratios[k], 3),
        "aggregate_ratios": [round(r, 3) for r in ratios],
        "interpreter_busy": round(utilisation, 3),
        "per_camera_per_s": rates,
        "fairness_max_min": round(fairness, 3),
        "latency_p99_ms": {name: cam["latency_ms"]["p99"] for name, cam in many["cameras"].items()},
        "latency_p50_ms": {name: cam["latency_ms"]["p50"] for name, cam in many["cameras"].items()},
        "dropped": {name: cam["dropped"] for name, cam in many["cameras"].items()},
        "peak_rss_mb": round(peak_many, 1),
        "peak_rss_one_camera_mb": round(one["peak_rss_mb"], 1),
        "rss_per_camera_mb": round(per_camera_rss, 2),
        "clips_written": clip_files,
    }
    ok_ratio = figures["aggregate_ratio"] >= 0.9
    ok_fair = fairness <= 1.2
    ok_rss = per_camera_rss <= 15
    print(f"model {figures['model']}: invoke alone {figures['invoke_per_s']:.1f}/s, "
          f"single stream (invoke-bound) {single_fps:.1f}/s")  # fmt: skip
    clips_on = "clips off" if args.no_clips else f"clips on ({clip_files} clips written)"
    print(f"{args.cameras} cameras at {FPS} fps, {clips_on}:")
    for name, rate in rates.items():
        cam = many["cameras"][name]
        print(f"  {name}: {rate:6.2f}/s  latency p50 {cam['latency_ms']['p50']:.1f} ms  "
              f"p99 {cam['latency_ms']['p99']:.1f} ms  dropped {cam['dropped']}")  # fmt: skip
    print(f"aggregate {aggregate:.1f}/s = {figures['aggregate_ratio']:.3f} of single stream "
          f"(target >= 0.9: {'ok' if ok_ratio else 'MISSED'}; rounds {figures['aggregate_ratios']})")  # fmt: skip
    print(
        f"shared interpreter busy {utilisation:.1%} of the time (inferences/s x mean invoke {mean_invoke_ms:.1f} ms)"
    )
    print(f"fairness max/min {fairness:.3f} (target <= 1.2: {'ok' if ok_fair else 'MISSED'})")
    print(f"peak RSS {figures['peak_rss_mb']:.1f} MB ({args.cameras} cameras), {figures['peak_rss_one_camera_mb']:.1f} MB "
          f"(1 camera): {per_camera_rss:.2f} MB per camera (target <= 15: {'ok' if ok_rss else 'MISSED'})")  # fmt: skip
    out = args.out or ROOT / "runs" / "benchmarks" / f"multicam-{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**figures, "platform": platform.platform()}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if ok_ratio and ok_fair and ok_rss else 1


if __name__ == "__main__":
    raise SystemExit(main())
