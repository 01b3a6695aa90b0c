"""A YOLOv8/YOLO11 export cut at its head maps, decoded by edgecnn, against the uncut export, on real images.

Usage: python benchmarks/yolo_head_cut.py MODEL_full_integer_quant.tflite IMAGE... [--object-threshold 0.25] [--json]

For each image both models run on the CPU through edgecnn (same letterbox, same NMS): the uncut one with the
``[1, 4+nc, N]`` layout, the cut one with the heads layout (:mod:`edgecnn.tasks.yolo_heads`). An object of the
uncut model is *matched* when the cut one has an object of the same label at IoU >= 0.9. Prints the matched
share, the static check's verdict on both models, and the decode time per frame (median over the images,
postprocess only: DFL, anchors, sigmoid, NMS, box mapping; the median of ``--repeats`` decodes of each
image's outputs) of each. Fetched models are not part of edgecnn.
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


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main(argv: list[str] | None = None) -> int:
    from edgecnn.converters.yolo_head_cut import cut_heads
    from edgecnn.devices.backends.edgetpu.static_check import predict_compilation
    from edgecnn.model import open_model
    from edgecnn.modelfile import read_model
    from edgecnn.tasks import DecodeOptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--object-threshold", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=20, help="decodes timed per image (median kept)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cut_path = Path(tmp) / f"{args.model.stem}_heads.tflite"
        cut_path.write_bytes(cut_heads(read_model(args.model)))
        checks = {
            name: predict_compilation(read_model(path))
            for name, path in (("uncut", args.model), ("cut", cut_path))
        }
        options = DecodeOptions(object_threshold=args.object_threshold)
        models = {
            "uncut": open_model(args.model, threads=1, decode=options),
            "cut": open_model(cut_path, threads=1, decode=options),
        }
        decoders = {name: m.decoder.name for name, m in models.items()}
        times: dict[str, list[float]] = {"uncut": [], "cut": []}
        total = matched = matched_05 = 0
        per_image: list[dict[str, Any]] = []
        for image_path in args.images:
            frame = cv2.imread(str(image_path))
            if frame is None:
                print(f"skipped {image_path}: not an image", file=sys.stderr)
                continue
            found = {}
            for name, model in models.items():
                inference = model.process(frame)
                found[name] = inference.result.objects  # type: ignore[attr-defined]
                repeats = []  # the decode again on the same outputs: one frame's time is too noisy alone
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    model.decoder.decode(model.interpreter, inference.transform)
                    repeats.append((time.perf_counter() - start) * 1e3)
                times[name].append(statistics.median(repeats))
            loose = sum(
                any(o.label == c.label and _iou(o.box, c.box) >= 0.5 for c in found["cut"])
                for o in found["uncut"]
            )
            matched_05 += loose
            hits = sum(
                any(o.label == c.label and _iou(o.box, c.box) >= 0.9 for c in found["cut"])
                for o in found["uncut"]
            )
            total += len(found["uncut"])
            matched += hits
            per_image.append(
                {
                    "image": image_path.name,
                    "uncut": len(found["uncut"]),
                    "cut": len(found["cut"]),
                    "matched": hits,
                }
            )
    result = {
        "model": str(args.model),
        "images": len(per_image),
        "objects": total,
        "matched": matched,
        "matched_share": matched / total if total else None,
        "matched_at_iou_0.5": matched_05,
        "decode_ms_median": {name: statistics.median(t) for name, t in times.items() if t},
        "decoders": decoders,
        "edgetpu": {
            name: {"mapped": c.mapped, "cpu": c.cpu, "compatible": c.compatible} for name, c in checks.items()
        },
        "per_image": per_image,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    share = f"{matched / total:.1%}" if total else "n/a"
    print(
        f"{args.model.name}: {matched} of {total} objects matched (IoU >= 0.9, same label): {share}; "
        f"{matched_05} at IoU >= 0.5"
    )
    for name, c in checks.items():
        print(f"  {name}: static check {c.mapped} ops on the Edge TPU, {c.cpu} on the CPU ({decoders[name]})")
    for name, ms in result["decode_ms_median"].items():  # type: ignore[union-attr]
        print(f"  {name}: decode {ms:.3f} ms per frame (median of {len(times[name])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
