"""predict's per-inference cost vs a bare Interpreter.invoke() loop, and CLI start-up time.

Prints ratios measured in one run (targets: overhead <= 1.05, start-up under 1 s on a 2-core machine).
Usage: python benchmarks/predict_overhead.py [MODEL] [IMAGE] [--threads N] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORAL = ROOT / "tests" / "data" / "coral"


def bare_loop(model: Path, threads: int, runs: int) -> list[float]:
    """What a hand-written script does: set the tensor it already has, invoke, read the output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    data = np.random.default_rng(0).integers(0, 255, size=inp["shape"], dtype=np.uint8).astype(inp["dtype"])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        interpreter.set_tensor(inp["index"], data)
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def edgecnn_loop(model: Path, image: Path, threads: int, runs: int) -> list[float]:
    """predict's own per-inference path: infer() (set input, invoke, dequantize, probabilities)."""
    from edgecnn.images import read_image
    from edgecnn.model import open_model

    clf = open_model(model, threads=threads)
    tensor = clf.preprocess(read_image(image))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        clf.infer(tensor)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def startup(model: Path, image: Path, repeats: int = 5) -> list[float]:
    exe = Path(sys.executable).parent / "edgecnn"
    argv = (
        [str(exe), "predict", str(model), str(image)]
        if exe.exists()
        else [sys.executable, "-m", "edgecnn", "predict", str(model), str(image)]
    )
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default=str(CORAL / "mobilenet_v1_0.25_128_quant.tflite"))
    parser.add_argument("image", nargs="?", default=str(CORAL / "cat.bmp"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    model, image = Path(args.model), Path(args.image)
    warm = 30
    # Interleave rounds so drift on a shared machine hits both sides alike.
    bare: list[float] = []
    ours: list[float] = []
    for _ in range(3):
        bare += bare_loop(model, args.threads, args.runs + warm)[warm:]
        ours += edgecnn_loop(model, image, args.threads, args.runs + warm)[warm:]
    b, o = statistics.median(bare), statistics.median(ours)
    walls = startup(model, image)
    print(f"model {model.name}, threads {args.threads}, {len(bare)} runs each")
    print(f"bare invoke loop   median {b:.3f} ms  p90 {np.percentile(bare, 90):.3f} ms")
    print(f"edgecnn infer()    median {o:.3f} ms  p90 {np.percentile(ours, 90):.3f} ms")
    print(f"overhead ratio     {o / b:.3f}  (target <= 1.05)")
    print(
        f"predict start-up   median {statistics.median(walls):.3f} s  min {min(walls):.3f} s  (target < 1 s)"
    )


if __name__ == "__main__":
    main()
