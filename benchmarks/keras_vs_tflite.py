"""Keras ``model.predict`` on one frame vs float32 TFLite vs int8 TFLite, for the seed CNN on digits.

``model.predict(frame[None])`` is what a user of the classic tutorial code runs per camera frame; it pays
for building a dataset iterator and a step function on every call. ``model(frame[None])`` is the cheaper
direct call. The TFLite figures are ``edgecnn bench``'s (median of ``invoke()`` with perf_counter_ns).
Everything is timed in this one process, on this machine, one frame at a time; medians and p90 are printed,
and the speed-ups are medians relative to ``model.predict``.

    .venv/bin/python benchmarks/keras_vs_tflite.py [--epochs 3] [--runs 200] [--threads 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def time_calls(fn, frame: np.ndarray, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn(frame)
    samples = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        fn(frame)
        samples[i] = time.perf_counter_ns() - t0
    return samples / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=1, help="TFLite threads (Keras uses TensorFlow's default)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the trained and converted models here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from edgecnn.bench.runner import run_bench
    from edgecnn.converters.keras_to_tflite import load_keras_model
    from edgecnn.converters.pipeline import convert
    from edgecnn.devices.probe import probe_device
    from edgecnn.ml.datasets import load_dataset
    from edgecnn.train.trainer import normalize, train

    with tempfile.TemporaryDirectory(prefix="edgecnn-kvt-") as tmp:
        work = args.keep or Path(tmp)
        report = train(output=work / "run", dataset="digits", epochs=args.epochs, verbose=0)
        keras_path = Path(report.model)
        f32 = convert(keras_path, output=work / "model_float32.tflite", quantize="float32").output
        i8 = convert(keras_path, output=work / "model_int8.tflite", quantize="int8").output

        import tensorflow as tf

        model = load_keras_model(keras_path)
        data = load_dataset("digits")
        frame = normalize(data.x_test[:1])[0].astype(
            np.float32
        )  # one H x W x 1 frame, as the trainer feeds it

        probe = probe_device(diagnose_edgetpu=False)
        print(
            f"machine: {probe.name} ({probe.arch}, {probe.cores} cores, governor {probe.governor or 'unknown'}); "
            f"TensorFlow {tf.__version__} (default threads), {probe.runtime} with {args.threads} thread(s)"
        )
        print(
            f"seed CNN on digits, test accuracy {report.test_accuracy:.2%}; {args.runs} runs per method, one frame each\n"
        )

        rows = []
        predict = time_calls(lambda x: model.predict(x[None], verbose=0), frame, args.runs, args.warmup)
        rows.append(("Keras model.predict(frame)", predict))
        call = time_calls(lambda x: model(x[None], training=False).numpy(), frame, args.runs, args.warmup)
        rows.append(("Keras model(frame)", call))
        for name, path in (("TFLite float32 invoke()", f32), ("TFLite int8 invoke()", i8)):
            result = run_bench(path, threads=[args.threads], runs=args.runs, warmup=args.warmup, probe=probe)
            lat = result.results[0].latency_ms
            rows.append((name, np.array([lat.p50, lat.p90])))

        base = float(np.median(predict))
        print(f"{'method':<28} {'median ms':>10} {'p90 ms':>9} {'speed-up vs predict':>20}")
        for name, samples in rows:
            if samples.size == 2 and name.startswith("TFLite"):
                median, p90 = float(samples[0]), float(samples[1])
            else:
                median, p90 = float(np.median(samples)), float(np.percentile(samples, 90))
            print(f"{name:<28} {median:>10.4f} {p90:>9.4f} {base / median:>19.1f}x")
        f32_ms = next(float(s[0]) for n, s in rows if n.startswith("TFLite float32"))
        i8_ms = next(float(s[0]) for n, s in rows if n.startswith("TFLite int8"))
        print(f"\nint8 vs float32 TFLite: {f32_ms / i8_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
