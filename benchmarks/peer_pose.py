"""Do ``edgecnn``'s pose decoder and an independent decode of the raw interpreter find the same people,
with the same keypoints, on real Ultralytics YOLO pose exports? And how do they score against labels?

Usage::

    .venv/bin/python benchmarks/peer_pose.py MODEL|DIR... --images DIR [--labels DIR] [--conf 0.25]
        [--iou 0.45] [--json]

For every model (``*.tflite``, folders searched) and image, two decodes of the same ``invoke()``:

- edgecnn: ``open_model(model).process(image)`` (its letterbox, its YOLO pose decoder);
- reference: written here from Ultralytics' documented post-processing, sharing no code with edgecnn:
  the input tensor edgecnn fed is kept, the raw output is dequantized in float64, candidates over
  ``--conf`` go through a plain greedy NMS (IoU ``--iou``), and boxes and keypoints are mapped back by
  undoing Ultralytics' letterbox (gain, padding) by hand.

People are matched greedily by box IoU (>= 0.5). The table shows, per model: people each found, matched,
mean box IoU, mean and largest keypoint distance (pixels of the image) and the largest keypoint score
difference. With ``--labels`` (Ultralytics pose labels: ``class cx cy w h`` then x, y, visibility per
keypoint, normalised) both decodes are also scored by OKS AP with pycocotools
(:func:`edgecnn.eval.pose.oks_ap`).

The models and images are public files fetched from GitHub into /work/peer-data (never committed); the
Ultralytics package itself is not needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecnn.errors import InvalidResult  # noqa: E402
from edgecnn.eval.pose import oks_ap  # noqa: E402
from edgecnn.images import read_image  # noqa: E402
from edgecnn.model import open_model  # noqa: E402
from edgecnn.tasks.pose import COCO_KEYPOINTS  # noqa: E402


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def reference_decode(
    interpreter: Any, frame_shape: tuple[int, int], conf: float, iou: float
) -> list[dict[str, Any]]:
    """Ultralytics' pose post-processing, by hand: [1, 56, N] -> people in image pixels."""
    details = interpreter.get_output_details()[0]
    raw = interpreter.get_tensor(details["index"])[0].astype(np.float64)
    scale, zero = details["quantization"]
    if scale:
        raw = (raw - zero) * scale
    if raw.shape[0] > raw.shape[1]:
        raw = raw.T
    inp = interpreter.get_input_details()[0]["shape"]
    ih, iw = int(inp[1]), int(inp[2])
    h, w = frame_shape
    gain = min(ih / h, iw / w)
    # Ultralytics' LetterBox: new size rounded, padding split in two (its round(d -/+ 0.1) rule)
    nw, nh = round(w * gain), round(h * gain)
    pad_x, pad_y = (iw - nw) / 2, (ih - nh) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    keep = np.flatnonzero(raw[4] >= conf)
    order = keep[np.argsort(-raw[4, keep])]
    people: list[dict[str, Any]] = []
    chosen: list[np.ndarray] = []
    for col in order:
        cx, cy, bw, bh = raw[:4, col] * ([iw, ih, iw, ih] if np.abs(raw[:4, col]).max() <= 2 else 1)
        box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        if any(_iou(box, c) > iou for c in chosen):
            continue
        chosen.append(box)
        k = raw[5:, col].reshape(-1, 3).copy()
        if np.abs(k[:, :2]).max() <= 2:
            k[:, 0] *= iw
            k[:, 1] *= ih
        k[:, 0] = (k[:, 0] - left) / (nw / w)
        k[:, 1] = (k[:, 1] - top) / (nh / h)
        frame_box = np.array([(box[0] - left) / (nw / w), (box[1] - top) / (nh / h), (box[2] - left) / (nw / w),
                              (box[3] - top) / (nh / h)])  # fmt: skip
        frame_box = np.clip(frame_box, 0, [w, h, w, h])
        k[:, 0] = np.clip(k[:, 0], 0, w)
        k[:, 1] = np.clip(k[:, 1], 0, h)
        people.append({"box": frame_box, "score": float(raw[4, col]), "keypoints": k})
    return people


def _edgecnn_people(result: Any) -> list[dict[str, Any]]:
    return [
        {
            "box": np.array(p.box),
            "score": p.score,
            "keypoints": np.array([[k.x, k.y, k.score] for k in p.keypoints]),
        }
        for p in result.poses
    ]


def _labels(path: Path, w: int, h: int) -> list[np.ndarray]:
    rows = []
    for line in path.read_text().splitlines():
        v = np.array([float(x) for x in line.split()])
        if len(v) == 5 + 17 * 3:
            rows.append(v)
    out = []
    for v in rows:
        k = v[5:].reshape(17, 3) * [w, h, 1]
        box = np.array([(v[1] - v[3] / 2) * w, (v[2] - v[4] / 2) * h, v[3] * w, v[4] * h])
        out.append(np.concatenate([box, k.ravel()]))
    return out


def compare(
    model_path: Path, images: list[Path], labels: Path | None, conf: float, iou: float
) -> dict[str, Any]:
    from edgecnn.tasks import DecodeOptions

    model = open_model(model_path, decode=DecodeOptions(object_threshold=conf, iou=iou))
    stats: dict[str, Any] = {
        "model": model_path.name,
        "decoder": model.decoder.name,
        "edgecnn": 0,
        "reference": 0,
    }
    box_ious, dists, score_diffs = [], [], []
    matched = 0
    dataset: dict[str, Any] = {"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS)}]}  # fmt: skip
    results: dict[str, list[dict[str, Any]]] = {"edgecnn": [], "reference": []}
    for image_id, image in enumerate(images, 1):
        frame = read_image(image)
        try:
            out = model.process(frame)
        except InvalidResult:  # NaN out of the model (a dynamic-range export): edgecnn refuses the frame
            stats["invalid_frames"] = stats.get("invalid_frames", 0) + 1
            continue
        ours = _edgecnn_people(out.result)
        ref = reference_decode(model.interpreter, frame.shape[:2], conf, iou)
        stats["edgecnn"] += len(ours)
        stats["reference"] += len(ref)
        pairs = sorted(((_iou(a["box"], b["box"]), i, j) for i, a in enumerate(ours) for j, b in enumerate(ref)),
                       reverse=True)  # fmt: skip
        used_a, used_b = set(), set()
        for value, i, j in pairs:
            if value < 0.5 or i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            matched += 1
            box_ious.append(value)
            d = np.linalg.norm(ours[i]["keypoints"][:, :2] - ref[j]["keypoints"][:, :2], axis=1)
            dists += d.tolist()
            score_diffs.append(float(np.abs(ours[i]["keypoints"][:, 2] - ref[j]["keypoints"][:, 2]).max()))
        if labels is not None:
            h, w = frame.shape[:2]
            dataset["images"].append({"id": image_id, "width": w, "height": h})
            for row in _labels(labels / f"{image.stem}.txt", w, h):
                k = row[4:].reshape(17, 3)
                dataset["annotations"].append({
                    "id": len(dataset["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                    "bbox": row[:4].tolist(), "area": float(row[2] * row[3]), "iscrowd": 0,
                    "keypoints": k.ravel().tolist(), "num_keypoints": int((k[:, 2] > 0).sum()),
                })  # fmt: skip
            for name, people in (("edgecnn", ours), ("reference", ref)):
                results[name] += [
                    {"image_id": image_id, "category_id": 1, "score": p["score"],
                     "keypoints": p["keypoints"].ravel().tolist()}
                    for p in people
                ]  # fmt: skip
    stats.update(
        matched=matched,
        mean_box_iou=round(float(np.mean(box_ious)), 4) if box_ious else None,
        mean_keypoint_px=round(float(np.mean(dists)), 3) if dists else None,
        max_keypoint_px=round(float(np.max(dists)), 3) if dists else None,
        max_keypoint_score_diff=round(max(score_diffs), 4) if score_diffs else None,
    )
    if labels is not None:
        for name in ("edgecnn", "reference"):
            figures = oks_ap(dataset, results[name])
            stats[f"{name}_oks_ap"] = figures.ap_pct
            stats[f"{name}_oks_ap50"] = figures.ap50_pct
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.45)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = sorted(p for m in args.models for p in ([m] if m.is_file() else m.rglob("*.tflite")))
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".png", ".bmp"))
    rows = [compare(m, images, args.labels, args.conf, args.iou) for m in models]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'model':42} {'edgecnn':>7} {'ref':>4} {'match':>5} {'boxIoU':>7} {'kpt px':>7} {'max px':>7} {'max ds':>7}"
    if args.labels:
        head += f" {'AP ours':>8} {'AP ref':>7} {'AP50 ours':>9} {'AP50 ref':>8}"
    print(f"{len(images)} images, conf {args.conf}, NMS IoU {args.iou}")
    print(head)
    for r in rows:
        line = (f"{r['model']:42} {r['edgecnn']:>7} {r['reference']:>4} {r['matched']:>5} {r['mean_box_iou'] or 0:>7.4f} "
                f"{r['mean_keypoint_px'] or 0:>7.3f} {r['max_keypoint_px'] or 0:>7.3f} {r['max_keypoint_score_diff'] or 0:>7.4f}")  # fmt: skip
        if args.labels:
            line += (f" {r['edgecnn_oks_ap']:>8.2f} {r['reference_oks_ap']:>7.2f} {r['edgecnn_oks_ap50']:>9.2f} "
                     f"{r['reference_oks_ap50']:>8.2f}")  # fmt: skip
        if r.get("invalid_frames"):
            line += f"  ({r['invalid_frames']} frames of NaN outputs refused)"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
