"""Detection postprocess per frame (decode + NMS + box mapping) vs invoke() of the model it belongs to.

Target: <= 1 ms per frame for the YOLO layout [1, 84, 8400] on this machine's CPU, one thread, float32 and
full int8; printed with its ratio to invoke(). The same target holds for the YOLO heads layout: a YOLOv8-style
full-integer export at 640 px (DFL head, 80 classes, tests/yolo_tf.py) cut at its three head maps
(:mod:`edgecnn.converters.yolo_head_cut`), decoded by :mod:`edgecnn.tasks.yolo_heads` (DFL, anchors, sigmoid,
NMS on the CPU; on a Coral the cut model's invoke is the Edge TPU's). The uncut DFL export's row is there for
its invoke(): on the noise frame its int8 DFL and box arithmetic collapse the untrained boxes to no width, so it
reports no objects where the cut model's float decode finds some. The SSD layout (TFLite_Detection_PostProcess: NMS inside
the graph, so edgecnn only reads and maps the rows) is measured the same way.

The models are built here with TensorFlow (no downloads): a YOLOv8-shaped 640x640 network with untrained
weights and a class bias that leaves a realistic handful of candidates above the threshold (the count is
printed: NMS time grows with it), and the session test detector's SSD layout. Results go to
``--output FILE`` as JSON when given.

Usage: python benchmarks/detect_postprocess.py [--runs N] [--output results.json]
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

SIZE = 640
NC = 80


def yolo_like(int8: bool) -> bytes:
    """[1, 3+1, 640, 640] -> [1, 84, 8400] with strides 8/16/32, Ultralytics' output layout."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def conv(c_in: int, c_out: int, stride: int) -> Any:
        w = tf.constant(rng.normal(0, 0.3, (3, 3, c_in, c_out)).astype(np.float32))
        return lambda x: tf.nn.relu(tf.nn.conv2d(x, w, stride, "SAME"))

    stem = [conv(3, 8, 2), conv(8, 16, 2), conv(16, 16, 2)]  # stride 8
    down16, down32 = conv(16, 16, 2), conv(16, 16, 2)
    head_w = tf.constant(rng.normal(0, 0.05, (16, 4 + NC)).astype(np.float32))
    bias = np.concatenate([np.zeros(4), np.full(NC, -6.0)]).astype(np.float32)

    def head(x: Any, stride: int) -> Any:
        n = (SIZE // stride) ** 2
        y = tf.reshape(tf.matmul(tf.reshape(x, (n, 16)), head_w) + bias, (1, n, 4 + NC))
        grid = SIZE // stride
        gy, gx = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        centre = np.stack([(gx.ravel() + 0.5) / grid, (gy.ravel() + 0.5) / grid], -1).astype(np.float32)
        s = tf.sigmoid(y)
        boxes = tf.concat([centre + (s[..., :2] - 0.5) / grid, s[..., 2:4] * 0.3], -1)
        return tf.concat([boxes, s[..., 4:]], -1)

    @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    def model(x: Any) -> Any:
        p8 = x
        for layer in stem:
            p8 = layer(p8)
        p16 = down16(p8)
        p32 = down32(p16)
        out = tf.concat([head(p8, 8), head(p16, 16), head(p32, 32)], axis=1)  # [1, 8400, 84]
        return tf.transpose(out, (0, 2, 1))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], tf.Module())
    if int8:
        images = [rng.random((1, SIZE, SIZE, 3), dtype=np.float32) for _ in range(4)]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([im] for im in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def yolo_heads_rows(folder: Path, frame: np.ndarray, runs: int) -> list[dict[str, Any]]:
    """A YOLOv8-style full-integer export with its DFL head, and it cut at its head maps: one row each.

    The class bias leaves about 30 cells over the default threshold on the benchmark frame (the untrained
    weights' logits spread wide), a realistic candidate count for the NMS."""
    from edgecnn.converters.yolo_head_cut import cut_heads
    from edgecnn.modelfile import read_model
    from tests.yolo_tf import yolov8_like_tflite

    uncut = folder / "yolov8_dfl_84x8400_int8.tflite"
    names = tuple(f"class{i}" for i in range(NC))
    uncut.write_bytes(yolov8_like_tflite(size=SIZE, class_bias=-19.5, samples=8, names=names))
    cut = folder / "yolov8_heads_cut_int8.tflite"
    cut.write_bytes(cut_heads(read_model(uncut)))
    return [measure(uncut, frame, runs), measure(cut, frame, runs)]


def ssd_like(folder: Path) -> Path:
    from tests.detectors import arrange_ssd_outputs, freeze, make_scenes, ssd_tflite, train_core

    scenes = make_scenes(200, seed=0)
    core = freeze(train_core(scenes, epochs=2))
    path = folder / "ssd.tflite"
    path.write_bytes(arrange_ssd_outputs(ssd_tflite(core, scenes, order=None), "tf1"))
    return path


def measure(path: Path, frame: np.ndarray, runs: int) -> dict[str, Any]:
    from edgecnn.model import open_model

    model = open_model(path, threads=1)
    tensor, transform = model.prepare(frame)
    invoke, decode = [], []
    for i in range(runs + 5):
        t0 = time.perf_counter_ns()
        model.invoke(tensor)
        t1 = time.perf_counter_ns()
        result = model.decoder.decode(model.interpreter, transform)
        t2 = time.perf_counter_ns()
        if i >= 5:  # warm-up
            invoke.append((t1 - t0) / 1e6)
            decode.append((t2 - t1) / 1e6)
    inv, dec = statistics.median(invoke), statistics.median(decode)
    return {
        "model": path.name,
        "output": [[int(d) for d in o["shape"]] for o in model.interpreter.get_output_details()],
        "decoder": model.decoder.name,
        "objects": len(result.objects),
        "invoke_ms_p50": round(inv, 3),
        "postprocess_ms_p50": round(dec, 4),
        "postprocess_ms_p90": round(float(np.percentile(decode, 90)), 4),
        "postprocess_to_invoke": round(dec / inv, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    camera = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # letterboxed to 640x640
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, int8 in (("yolo_84x8400_float32.tflite", False), ("yolo_84x8400_int8.tflite", True)):
            path = folder / name
            path.write_bytes(yolo_like(int8))
            rows.append(measure(path, camera, args.runs))
        rows.extend(yolo_heads_rows(folder, camera, args.runs))
        ssd = ssd_like(folder)
        rows.append(measure(ssd, camera, args.runs))
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, one thread, median of {args.runs} runs"
    )
    print(f"{'model':32} {'objects':>7} {'invoke ms':>10} {'post ms':>9} {'post p90':>9} {'post/invoke':>12}")
    for r in rows:
        print(
            f"{r['model']:32} {r['objects']:>7} {r['invoke_ms_p50']:>10.3f} {r['postprocess_ms_p50']:>9.4f} "
            f"{r['postprocess_ms_p90']:>9.4f} {r['postprocess_to_invoke']:>12.4f}"
        )
    yolo_ok = all(r["postprocess_ms_p50"] <= 1.0 for r in rows if r["model"].startswith("yolo"))
    print(f"YOLO layouts (84x8400 and cut heads) postprocess <= 1 ms: {'yes' if yolo_ok else 'NO'}")
    if args.output:
        args.output.write_text(json.dumps({"results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
