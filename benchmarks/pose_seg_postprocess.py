"""Pose and segmentation postprocess per frame (decode, NMS, keypoints or masks mapped to the frame).

Targets on this machine's CPU, one thread, a 640x480 camera frame:
- MoveNet single-pose and YOLO pose [1, 56, 8400] (640x640 input, letterboxed): <= 2 ms per frame;
- YOLO seg [1, 116, 8400] + prototypes [1, 160, 160, 32] with 10 objects: <= 5 ms per frame.
Each is printed with its ratio to the target (under 1 is met).

MoveNet is Coral's real model (tests/data/coral). The YOLO layouts are built here without TensorFlow as
constant-output TFLite models (tests/const_models.py), float32 and full int8, whose outputs hold a
realistic crowd: 5 people (pose) or 10 objects (seg), each with 6 overlapping candidates over the
threshold for NMS to merge, and 8400 - that columns of background scores. What decode costs does not
depend on the network that made the outputs, so a constant one measures it exactly; invoke() is not
timed here (benchmarks/detect_postprocess.py sets postprocess beside a real invoke).

Usage: python benchmarks/pose_seg_postprocess.py [--runs N] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.const_models import constant_model, quantize, with_ultralytics_metadata  # noqa: E402

SIZE = 640
N = 8400
K = 17
MASKS = 32
TARGETS = {"pose": 2.0, "segment": 5.0}


def _crowd(rows: int, objects: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """[rows, N]: ``objects`` objects, 6 jittered candidates each, background elsewhere (normalised)."""
    out = np.zeros((rows, N), np.float32)
    out[:4] = rng.uniform(0.05, 0.1, (4, N))
    out[4 : 4 + classes] = rng.uniform(0, 0.05, (classes, N))
    col = 0
    for i in range(objects):
        cx, cy = rng.uniform(0.15, 0.85, 2)
        w, h = rng.uniform(0.1, 0.25, 2)
        for j in range(6):
            out[:4, col] = [cx + rng.normal(0, 0.003), cy + rng.normal(0, 0.003), w, h]
            out[4 + i % classes, col] = 0.9 - 0.05 * j
            col += 1
    out[4 + classes :] = rng.uniform(0, 1, (rows - 4 - classes, N))
    return out[None]


def build(folder: Path) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(0)
    models = []
    pose = _crowd(4 + 1 + K * 3, 5, 1, rng)
    seg = _crowd(4 + 80 + MASKS, 10, 80, rng)
    protos = rng.normal(0, 1, (1, 160, 160, MASKS)).astype(np.float32)
    names = {str(i): f"class{i}" for i in range(80)}
    for int8 in (False, True):
        kind = "int8" if int8 else "float32"
        if int8:
            q = [(1 / 255, -128), (0.05, 0)]
            pose_data = constant_model([quantize(pose, *q[0])], size=(SIZE, SIZE), quantization=[q[0]])
            seg_data = constant_model(
                [quantize(seg, *q[0]), quantize(protos, *q[1])], size=(SIZE, SIZE), quantization=q
            )
        else:
            pose_data = constant_model([pose], size=(SIZE, SIZE))
            seg_data = constant_model([seg, protos], size=(SIZE, SIZE))
        p = folder / f"yolo_pose_56x8400_{kind}.tflite"
        p.write_bytes(
            with_ultralytics_metadata(pose_data, task="pose", names={"0": "person"}, kpt_shape=[K, 3])
        )
        models.append(("pose", p))
        s = folder / f"yolo_seg_116x8400_{kind}.tflite"
        s.write_bytes(with_ultralytics_metadata(seg_data, task="segment", names=names))
        models.append(("segment", s))
    return [("pose", ROOT / "tests/data/coral/movenet_single_pose_lightning_ptq.tflite"), *models]


def measure(task: str, path: Path, frame: np.ndarray, runs: int) -> dict[str, Any]:
    from edgecnn.model import open_model

    model = open_model(path, threads=1)
    tensor, transform = model.prepare(frame)
    model.invoke(tensor)
    decode = []
    for i in range(runs + 5):
        t0 = time.perf_counter_ns()
        result = model.decoder.decode(model.interpreter, transform)
        t1 = time.perf_counter_ns()
        if i >= 5:  # warm-up
            decode.append((t1 - t0) / 1e6)
    p50 = statistics.median(decode)
    found = getattr(result, "poses", None)
    if found is None:
        found = result.instances  # type: ignore[attr-defined]
    return {
        "task": task,
        "model": path.name,
        "decoder": model.decoder.name,
        "found": len(found),
        "postprocess_ms_p50": round(p50, 4),
        "postprocess_ms_p90": round(float(np.percentile(decode, 90)), 4),
        "postprocess_ms_min": round(min(decode), 4),
        "target_ms": TARGETS[task],
        "to_target": round(p50 / TARGETS[task], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    import cv2

    # Coral's squat photo as a 640x480 camera frame (MoveNet finds its person; YOLO's outputs are constant)
    camera = cv2.resize(cv2.imread(str(ROOT / "tests/data/coral/squat.bmp")), (640, 480))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(task, path, camera, args.runs) for task, path in build(Path(tmp))]
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, one thread, 640x480 frame, {args.runs} runs"
    )
    print(f"{'model':42} {'found':>5} {'p50 ms':>8} {'p90 ms':>8} {'target':>7} {'p50/target':>10}")
    for r in rows:
        print(
            f"{r['model']:42} {r['found']:>5} {r['postprocess_ms_p50']:>8.3f} {r['postprocess_ms_p90']:>8.3f} "
            f"{r['target_ms']:>7.1f} {r['to_target']:>10.3f}"
        )
    met = all(r["to_target"] <= 1 for r in rows)
    print(f"every target met (p50): {'yes' if met else 'NO'}")
    if args.output:
        args.output.write_text(json.dumps({"machine": platform.machine(), "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
