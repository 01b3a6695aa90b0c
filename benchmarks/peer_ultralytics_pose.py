"""Do ``edgecnn predict`` and Ultralytics' own ``predict`` find the same people, with the same keypoints,
with the same YOLO pose TFLite export?

Usage (with the separate Ultralytics virtualenv's Python, see ``peer_ultralytics.py``)::

    benchmarks/.venv-ultralytics/bin/python benchmarks/peer_ultralytics_pose.py MODEL|DIR... --images IMAGE|DIR...
        [--edgecnn .venv/bin/edgecnn] [--conf 0.25] [--iou 0.45] [--max-det 300] [--match-iou 0.5]
        [--round-ultralytics-input] [--json]

The detect comparison (``peer_ultralytics.py``) for pose: every model runs on every image through
Ultralytics (``YOLO(model, task="pose").predict(..., conf, iou, max_det, device="cpu")``) and through
``edgecnn predict --json --object-threshold CONF --max-detections MAX_DET [--iou IOU]``. People are matched
per image as objects are there (greedily by box IoU, a pair counts at IoU >= ``--match-iou``). Per model the
table shows the people matched and those only one tool found, the share of Ultralytics' people matched,
the mean box IoU, the mean and largest distance between the matched people's keypoints (pixels of the
image, all 17 keypoints, visible or not), the largest keypoint score difference and the largest person
score difference. Keypoints in ``edgecnn predict --json`` are rounded to 0.1 px and scores to 0.001, so
identical people show a distance of up to ~0.07 px.

A frame whose outputs hold NaN (the dynamic-range ``*_int8`` exports write some) is refused by edgecnn, one
error for the whole ``predict``; the images are then run one by one, the refused ones are counted and left
out of the comparison, and what Ultralytics reported on them is not scored.

``--round-ultralytics-input`` is the same diagnostic as in ``peer_ultralytics.py``: Ultralytics' LiteRT
backend truncates its int8 input cast, edgecnn rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_ultralytics import (
    Found,
    _plain_env,
    match,
    model_kind,
    run_comparison,
)

Keypoint = tuple[float, float, float]  # x, y in pixels of the image, score


@dataclass(frozen=True)
class Person(Found):
    keypoints: tuple[Keypoint, ...] = ()


def keypoint_distances(a: Person, b: Person) -> list[float]:
    """Pixel distance between the same keypoint of two people, keypoint by keypoint."""
    if len(a.keypoints) != len(b.keypoints):
        raise ValueError(f"{len(a.keypoints)} keypoints against {len(b.keypoints)}")
    return [math.hypot(p[0] - q[0], p[1] - q[1]) for p, q in zip(a.keypoints, b.keypoints, strict=True)]


@dataclass
class PoseFigures:
    model: str
    kind: str
    input: str
    decoder: str = ""
    images: int = 0
    refused: list[str] = field(default_factory=list)  # frames edgecnn refused (NaN outputs)
    matched: int = 0
    only_ultralytics: int = 0
    only_edgecnn: int = 0
    iou_sum: float = 0.0
    keypoints: int = 0
    distance_sum: float = 0.0
    max_distance: float = 0.0
    max_keypoint_score_diff: float = 0.0
    max_score_diff: float = 0.0
    error: str | None = None

    def add_image(self, theirs: list[Person], ours: list[Person], match_iou: float) -> None:
        """Match one image's people and add them up."""
        pairs, only_t, only_o = match(list(ours), list(theirs), match_iou)
        self.images += 1
        self.matched += len(pairs)
        self.only_ultralytics += len(only_t)
        self.only_edgecnn += len(only_o)
        for ti, oi, value in pairs:
            t, o = theirs[ti], ours[oi]
            self.iou_sum += value
            distances = keypoint_distances(t, o)
            self.keypoints += len(distances)
            self.distance_sum += sum(distances)
            self.max_distance = max([self.max_distance, *distances])
            score_diffs = [abs(p[2] - q[2]) for p, q in zip(t.keypoints, o.keypoints, strict=True)]
            self.max_keypoint_score_diff = max([self.max_keypoint_score_diff, *score_diffs])
            self.max_score_diff = max(self.max_score_diff, abs(t.score - o.score))

    @property
    def matched_share(self) -> float | None:
        total = self.matched + self.only_ultralytics
        return self.matched / total if total else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.matched if self.matched else None

    @property
    def mean_distance(self) -> float | None:
        return self.distance_sum / self.keypoints if self.keypoints else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["iou_sum"], out["distance_sum"]
        out.update(mean_iou=self.mean_iou, matched_share=self.matched_share, mean_distance=self.mean_distance)
        return out


def _edgecnn_people(record: dict[str, Any]) -> list[Person]:
    return [
        Person(
            0,
            str(p["label"]),
            float(p["score"]),
            tuple(p["box"]),
            tuple((float(x), float(y), float(s)) for x, y, s in p["keypoints"].values()),
        )
        for p in record["poses"]
    ]


def run_edgecnn(
    edgecnn: str, model: Path, images: list[Path], args: argparse.Namespace, with_iou: bool
) -> tuple[str, dict[str, list[Person]]]:
    cmd = [edgecnn, "predict", str(model), *map(str, images), "--json"]
    cmd += ["--object-threshold", str(args.conf), "--max-detections", str(args.max_det)]
    if with_iou:
        cmd += ["--iou", str(args.iou)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_plain_env())
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip() or done.stdout.strip()).splitlines()[-1])
    report = json.loads(done.stdout)
    people = {str(Path(r["image"]).resolve()): _edgecnn_people(r) for r in report["results"]}
    return str(report.get("decoder", "")), people


def run_ultralytics(model: Path, images: list[Path], args: argparse.Namespace) -> dict[str, list[Person]]:
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="pose")
    found: dict[str, list[Person]] = {}
    for image in images:  # one at a time: the exports take batch 1
        (result,) = yolo.predict(
            str(image), conf=args.conf, iou=args.iou, max_det=args.max_det, device="cpu", verbose=False
        )
        boxes, names = result.boxes, result.names
        keypoints = result.keypoints.data.tolist() if result.keypoints is not None else [[]] * len(boxes)
        found[str(image)] = [
            Person(int(c), str(names[int(c)]), float(s), tuple(box), tuple(tuple(k) for k in kpts))
            for box, s, c, kpts in zip(
                boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), keypoints, strict=True
            )
        ]
    return found


def compare(model: Path, images: list[Path], args: argparse.Namespace, with_iou: bool) -> PoseFigures:
    kind, shape = model_kind(model)
    figures = PoseFigures(str(model), kind, shape)
    try:
        figures.decoder, ours = run_edgecnn(args.edgecnn, model, images, args, with_iou)
    except RuntimeError as whole:  # maybe one frame refused: run them one by one to know which
        ours = {}
        for image in images:
            try:
                figures.decoder, one = run_edgecnn(args.edgecnn, model, [image], args, with_iou)
                ours.update(one)
            except RuntimeError:
                figures.refused.append(str(image))
        if not ours:
            figures.error = f"edgecnn: {whole}"
            return figures
    try:
        theirs = run_ultralytics(model, images, args)
    except Exception as exc:  # a file Ultralytics cannot run is one row, not the end of the comparison
        figures.error = f"ultralytics: {type(exc).__name__}: {exc}"
        return figures
    for image in map(str, images):
        if image not in figures.refused:
            figures.add_image(theirs.get(image, []), ours.get(image, []), args.match_iou)
    return figures


def print_table(rows: list[PoseFigures], args: argparse.Namespace, with_iou: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"edgecnn vs Ultralytics predict, pose: conf {args.conf:g}, NMS IoU {args.iou:g}"
        f"{'' if with_iou else ' (Ultralytics only: this edgecnn has no --iou)'}, match IoU >= {args.match_iou:g}"
        f"{'; Ultralytics int8 input rounded' if args.round_ultralytics_input else ''}"
    )
    for name in ("model", "kind", "input", "images", "refused", "matched", "only Ultr.", "only edgecnn",
                 "matched %", "mean box IoU", "kpt px mean", "kpt px max", "max |kpt score diff|",
                 "max |score diff|"):  # fmt: skip
        table.add_column(name, justify="left" if name in {"model", "kind", "input"} else "right")
    for r in rows:
        if r.error:
            table.add_row(Path(r.model).name, r.kind, r.input, *["-"] * 10, f"error: {r.error}")
            continue
        share, mean_iou, mean_px = r.matched_share, r.mean_iou, r.mean_distance
        table.add_row(
            Path(r.model).name,
            r.kind,
            r.input,
            str(r.images),
            str(len(r.refused)),
            str(r.matched),
            str(r.only_ultralytics),
            str(r.only_edgecnn),
            "-" if share is None else f"{100 * share:.1f}",
            "-" if mean_iou is None else f"{mean_iou:.4f}",
            "-" if mean_px is None else f"{mean_px:.3f}",
            f"{r.max_distance:.2f}",
            f"{r.max_keypoint_score_diff:.4f}",
            f"{r.max_score_diff:.4f}",
        )
    Console(width=220).print(table)


def main(argv: list[str] | None = None) -> int:
    return run_comparison(argv, __doc__ or "", compare, print_table, things="people", pair="a pair of people")


if __name__ == "__main__":
    sys.exit(main())
