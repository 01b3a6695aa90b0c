"""A YOLO export cut at its head maps, decoded by edgecnn, against the uncut export, on real images.

Usage: python benchmarks/yolo_head_cut.py MODEL.tflite IMAGE... [--object-threshold 0.25] [--reference FLOAT.tflite]
[--json]

MODEL is a full-integer Ultralytics YOLOv8/YOLO11 export (``*_full_integer_quant.tflite``) or a YOLOv5 one
(``yolov5n-int8.tflite``). For each image both models run on the CPU (same letterbox, same OpenCV NMS, same
threshold): the cut one through edgecnn's heads layout (:mod:`edgecnn.tasks.yolo_heads`), the uncut one through
edgecnn's ``[1, 4+nc, N]`` layout (YOLOv8/11) or, for YOLOv5's ``[1, 25200, 5+nc]`` output, a decode written
here by YOLOv5's rule (score = objectness x class; independent of edgecnn's own YOLOv5 layout, which it
checks). An object of the
uncut model is *matched* when the cut one has an object of the same label at IoU >= 0.9 (also given at
IoU >= 0.5). Objects within 0.02 of the threshold may be found by one model only, so the share is also given
without them.

The uncut model runs its DFL, box arithmetic and sigmoid in int8 and rounds boxes and scores to one output
scale (about 2.5 px at 640); the cut model's decode is float. ``--reference`` names a float-activation export
of the same weights (Ultralytics' ``*_int8.tflite`` is dynamic-range: int8 weights, float activations): both
models' objects are then matched against it, which says which of the two is nearer the float model.

Where the differences come from (the uncut's int8 tail, stage by stage; edgecnn's decode against Ultralytics'
own; which anchor cell each object comes from) is ``benchmarks/yolo_head_cut_agreement.py``.

Prints the static check's verdict on both models and the decode time per frame (median over the images of
the median of ``--repeats`` decodes of each image's outputs: one decode alone is too noisy; postprocess only). Fetched models and images are not part of edgecnn and are never committed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

NEAR = 0.02  # objects scoring within this of the threshold are "near" it


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _best_iou(obj: Any, others: list[Any]) -> float:
    return max((_iou(obj.box, o.box) for o in others if o.label == obj.label), default=0.0)


def yolov5_objects(model: Any, frame: np.ndarray, min_score: float, iou: float) -> list[Any]:
    """YOLOv5's ``[1, N, 5+nc]`` output (xywh normalised, objectness, class scores) by YOLOv5's own rule:
    score = objectness x class, per-class NMS; boxes mapped to the frame like edgecnn's."""
    from edgecnn.adapters import dequantize
    from edgecnn.tasks.detect import Object

    tensor, transform = model.prepare(frame)
    model.invoke(tensor)
    details = model.interpreter.get_output_details()[0]
    raw = model.interpreter.get_tensor(details["index"])[0]
    scale, zero_point = details["quantization"]
    rows = dequantize(raw, scale, zero_point) if scale else raw.astype(np.float32)
    conf = rows[:, 5:] * rows[:, 4:5]
    ids = conf.argmax(axis=1)
    scores = conf[np.arange(len(ids)), ids]
    keep = scores >= min_score
    rows, ids, scores = rows[keep], ids[keep], scores[keep]
    size = np.array([transform.input_width, transform.input_height], dtype=np.float32)
    xy, wh = rows[:, :2] * size, rows[:, 2:4] * size
    found = cv2.dnn.NMSBoxesBatched(
        np.concatenate([xy - wh / 2, wh], axis=1).tolist(), scores.tolist(), ids.tolist(), min_score, iou
    )
    kept = np.asarray(found, dtype=np.int64).reshape(-1)
    boxes = transform.to_frame(np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)[kept])
    labels = model.decoder.labels
    return [
        Object(int(c), labels[int(c)] if labels and c < len(labels) else str(int(c)), float(s), _box(b))
        for c, s, b in zip(ids[kept], scores[kept], boxes, strict=True)
    ]


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in row)
    return x1, y1, x2, y2


def main(argv: list[str] | None = None) -> int:
    from edgecnn.converters.yolo_head_cut import cut_heads
    from edgecnn.devices.backends.edgetpu.static_check import predict_compilation
    from edgecnn.model import open_model
    from edgecnn.modelfile import read_model
    from edgecnn.tasks import DecodeOptions
    from edgecnn.tasks.yolo_heads import LAYOUT_V5, head_layout

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--object-threshold", type=float, default=0.25)
    parser.add_argument("--reference", type=Path, help="a float-activation export of the same weights")
    parser.add_argument("--repeats", type=int, default=20, help="decodes timed per image (median kept)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cut_path = Path(tmp) / f"{args.model.stem}_heads.tflite"
        cut_path.write_bytes(cut_heads(read_model(args.model)))
        v5 = head_layout(read_model(cut_path)).layout == LAYOUT_V5  # type: ignore[union-attr]
        checks = {
            name: predict_compilation(read_model(path))
            for name, path in (("uncut", args.model), ("cut", cut_path))
        }
        options = DecodeOptions(object_threshold=args.object_threshold)
        paths = {"uncut": args.model, "cut": cut_path}
        if args.reference:
            paths["reference"] = args.reference
        models = {name: open_model(path, threads=1, decode=options) for name, path in paths.items()}
        cut_model = models["cut"]
        decoders = {name: m.decoder.name for name, m in models.items()}
        if v5:
            decoders["uncut"] = "YOLOv5 [1, N, 5+nc] by YOLOv5's rule (this script) + OpenCV NMS"
        times: dict[str, list[float]] = {"uncut": [], "cut": []}
        counts = {"uncut": 0, "matched": 0, "matched_iou50": 0, "clear": 0, "clear_matched": 0}
        vs_reference = {"uncut": [0, 0], "cut": [0, 0]}  # [objects, matched at IoU >= 0.9]
        per_image: list[dict[str, Any]] = []
        for image_path in args.images:
            frame = cv2.imread(str(image_path))
            if frame is None:
                print(f"skipped {image_path}: not an image", file=sys.stderr)
                continue
            found: dict[str, list[Any]] = {}
            for name, model in models.items():
                if name == "uncut" and v5:
                    found[name] = yolov5_objects(model, frame, args.object_threshold, cut_model.decoder.iou)  # type: ignore[attr-defined]
                    continue
                inference = model.process(frame)
                found[name] = inference.result.objects  # type: ignore[attr-defined]
                if name in times:
                    repeats = []
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        model.decoder.decode(model.interpreter, inference.transform)
                        repeats.append((time.perf_counter() - start) * 1e3)
                    times[name].append(statistics.median(repeats))
            ious = [_best_iou(o, found["cut"]) for o in found["uncut"]]
            clear = [o.score >= args.object_threshold + NEAR for o in found["uncut"]]
            hits = sum(i >= 0.9 for i in ious)
            counts["uncut"] += len(ious)
            counts["matched"] += hits
            counts["matched_iou50"] += sum(i >= 0.5 for i in ious)
            counts["clear"] += sum(clear)
            counts["clear_matched"] += sum(i >= 0.9 for i, c in zip(ious, clear, strict=True) if c)
            if "reference" in found:
                for name in ("uncut", "cut"):
                    vs_reference[name][0] += len(found[name])
                    vs_reference[name][1] += sum(_best_iou(o, found["reference"]) >= 0.9 for o in found[name])
            per_image.append(
                {
                    "image": image_path.name,
                    "uncut": len(found["uncut"]),
                    "cut": len(found["cut"]),
                    "matched": hits,
                }
            )
    total = counts["uncut"]

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    result: dict[str, Any] = {
        "model": str(args.model),
        "images": len(per_image),
        "object_threshold": args.object_threshold,
        "objects": total,
        "matched": counts["matched"],
        "matched_share": share(counts["matched"], total),
        "matched_share_iou50": share(counts["matched_iou50"], total),
        "clear_objects": counts["clear"],
        "clear_matched_share": share(counts["clear_matched"], counts["clear"]),
        "decode_ms_median": {name: round(statistics.median(t), 4) for name, t in times.items() if t},
        "decoders": decoders,
        "edgetpu": {
            name: {"mapped": c.mapped, "cpu": c.cpu, "compatible": c.compatible} for name, c in checks.items()
        },
        "per_image": per_image,
    }
    if args.reference:
        result["vs_reference"] = {
            name: {"objects": n, "matched": m, "matched_share": share(m, n)}
            for name, (n, m) in vs_reference.items()
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    print(
        f"{args.model.name}: {counts['matched']} of {total} objects of the uncut model matched by the cut one "
        f"(same label, IoU >= 0.9): {pct(result['matched_share'])}; at IoU >= 0.5: "
        f"{pct(result['matched_share_iou50'])}; not within {NEAR} of --object-threshold {args.object_threshold:g}: "
        f"{counts['clear_matched']} of {counts['clear']} ({pct(result['clear_matched_share'])})"
    )
    for name, c in checks.items():
        print(f"  {name}: static check {c.mapped} ops on the Edge TPU, {c.cpu} on the CPU ({decoders[name]})")
    for name, ms in result["decode_ms_median"].items():
        print(f"  {name}: decode {ms:.3f} ms per frame (median of {len(times[name])})")
    for name, (n, m) in vs_reference.items() if args.reference else ():
        print(f"  {name} vs {args.reference.name}: {m} of {n} objects at IoU >= 0.9 ({pct(share(m, n))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
