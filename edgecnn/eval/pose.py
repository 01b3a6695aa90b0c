"""The pose evaluator: OKS-based AP (COCO keypoints' AP@0.5:0.95, AP@0.5, AP@0.75, AR) by pycocotools'
``COCOeval(iouType="keypoints")`` on a COCO-keypoints annotation file.

Matching poses to people by object keypoint similarity, the per-keypoint sigmas (COCO's 17) and the
averaging over OKS thresholds are pycocotools'; this module only converts to and from its format. A
model's keypoints are matched to the file's by name (the category's ``keypoints`` list), so a model
listing them in another order still scores right; a keypoint the model does not have counts as missed.
Files with other than COCO's 17 keypoints use a sigma of :data:`OTHER_SIGMA` for each (pycocotools'
sigmas are COCO's).

``edgecnn eval MODEL person_keypoints.json [--images DIR]`` reaches it through the pose task
(:func:`edgecnn.tasks.pose.evaluator`). As for detection mAP, nearly every pose is kept (object threshold
0.001, COCO keypoints' 20 per image): AP integrates over every score threshold. ``--against`` is not
offered for pose yet (one line): evaluate each build.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import InputError, RuntimeMissing, UsageError
from edgecnn.eval.coco_json import _image_path, _leaves_folder
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import ReportMixin
from edgecnn.images import read_image
from edgecnn.safeio import FileKind, read_bytes

if TYPE_CHECKING:
    from edgecnn.model import Model

OTHER_SIGMA = 0.05  # per keypoint, for files whose keypoints are not COCO's 17

# The Evaluator protocol (edgecnn.tasks.Evaluator), reached through edgecnn.tasks.pose.evaluator().
LAYOUTS = ("coco",)
EXPECTS = "a COCO-keypoints .json file (person_keypoints_*.json; images beside it or --images DIR)"
# Poses kept for AP: nearly all (AP integrates over every score threshold) and at most the 20 per image
# COCO's keypoint evaluation reads (its maxDets). Fixed: eval takes no --object-threshold.
DECODE: dict[str, Any] = {"object_threshold": 0.001, "max_detections": 20}


@dataclass(frozen=True)
class OksFigures:
    ap_pct: float  # AP@[OKS 0.5:0.95], COCO keypoints' primary figure
    ap50_pct: float
    ap75_pct: float
    ar_pct: float  # AR@[0.5:0.95], 20 detections per image


@dataclass(frozen=True)
class PoseReport(ReportMixin):
    task: str
    data: str
    model: str
    images: int
    people: int  # annotated people with at least one labelled keypoint (not crowd)
    poses: int  # poses the model reported
    figures: OksFigures
    median_inference_ms: float
    comparison: None = None

    @property
    def headline(self) -> tuple[str, float]:
        return "OKS AP", self.figures.ap_pct

    def tables(self) -> list[Any]:
        from rich.table import Table

        table = Table(title=f"pose: {Path(self.model).name} on {self.data}", title_justify="left")
        table.add_column("")
        table.add_column("value", justify="right")
        for name, value in (
            ("images", str(self.images)),
            ("people", str(self.people)),
            ("poses found", str(self.poses)),
            ("OKS AP@0.5:0.95", f"{self.figures.ap_pct:.2f}%"),
            ("OKS AP@0.5", f"{self.figures.ap50_pct:.2f}%"),
            ("OKS AP@0.75", f"{self.figures.ap75_pct:.2f}%"),
            ("AR@0.5:0.95", f"{self.figures.ar_pct:.2f}%"),
            ("median inference", f"{self.median_inference_ms:.2f} ms"),
        ):
            table.add_row(name, value)
        return [table]


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise RuntimeMissing("Pose AP needs pycocotools: pip install 'edgecnn[eval]'.") from exc
    return COCO, COCOeval


def _pct(value: float) -> float:
    return round(100.0 * max(0.0, float(value)), 4)


def oks_ap(dataset: dict[str, Any], results: Sequence[dict[str, Any]]) -> OksFigures:
    """OKS AP of ``results`` (COCO keypoint results: image_id, category_id, keypoints [x, y, v]*K, score)
    against ``dataset`` (a COCO-keypoints dict: images, annotations with keypoints, categories)."""
    COCO, COCOeval = _pycocotools()
    if not results:
        return OksFigures(0.0, 0.0, 0.0, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(list(results))
        ev = COCOeval(gt, dt, "keypoints")
        count = len(dataset["categories"][0].get("keypoints", []))
        if count != 17:
            ev.params.kpt_oks_sigmas = np.full(count, OTHER_SIGMA)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats  # AP, AP50, AP75, AP medium, AP large, AR, ...
    return OksFigures(_pct(s[0]), _pct(s[1]), _pct(s[2]), _pct(s[5]))


def _read(annotations: Path, images: Path | None) -> tuple[dict[str, Any], list[tuple[int, Path]]]:
    """The annotation file (checked enough for pycocotools) and each image's id and path."""
    try:
        doc = json.loads(read_bytes(annotations, FileKind.ANNOTATIONS))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        raise InputError(f"{annotations} is not valid JSON: pass a COCO-keypoints annotation file.") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise InputError(
            f"{annotations} is not a COCO annotation file: it needs 'images', 'annotations' and 'categories' lists."
        )
    cats = [c for c in doc["categories"] if isinstance(c, dict) and isinstance(c.get("keypoints"), list)]
    if len(cats) != 1:
        raise InputError(
            f"{annotations}: a COCO-keypoints file has one category with a 'keypoints' list (person); "
            f"found {len(cats)}. Pass person_keypoints_*.json or one made like it."
        )
    count = len(cats[0]["keypoints"])
    for i, a in enumerate(doc["annotations"]):
        kp = a.get("keypoints") if isinstance(a, dict) else None
        if not isinstance(kp, list) or len(kp) != 3 * count:
            raise InputError(
                f"{annotations}: annotations[{i}] needs 'keypoints' of {3 * count} numbers (x, y, v for each of "
                f"{count} keypoints): fix the file."
            )
        a.setdefault("iscrowd", 0)
        a.setdefault("num_keypoints", int(sum(1 for v in kp[2::3] if v > 0)))
        if "area" not in a or "bbox" not in a:
            raise InputError(
                f"{annotations}: annotations[{i}] needs 'area' and 'bbox' for OKS: fix the file."
            )
    files = []
    for i, image in enumerate(doc["images"]):
        name = image.get("file_name") if isinstance(image, dict) else None
        if not isinstance(name, str) or _leaves_folder(name) or not isinstance(image.get("id"), int):
            raise InputError(
                f"{annotations}: images[{i}] needs an 'id' and a 'file_name' inside the images folder."
            )
        path = _image_path(annotations, images, name)
        if path is None:
            raise InputError(
                f"{annotations}: images[{i}] names {name!r}, which is not a file: pass --images DIR."
            )
        files.append((int(image["id"]), path))
    return doc, files


def pose_results(result: Any, image_id: int, category_id: int, names: Sequence[str]) -> list[dict[str, Any]]:
    """One image's poses (:class:`edgecnn.tasks.pose.Poses`) as COCO keypoint results, in ``names``' order."""
    out = []
    for pose in result.poses:
        by_name = {k.name: k for k in pose.keypoints}
        flat: list[float] = []
        for name in names:
            k = by_name.get(name)
            flat += [float(k.x), float(k.y), float(k.score)] if k is not None else [0.0, 0.0, 0.0]
        out.append(
            {"image_id": image_id, "category_id": category_id, "keypoints": flat, "score": float(pose.score)}
        )
    return out


def evaluate_pose(
    model: Model,
    annotations: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> PoseReport:
    """Run ``model`` (a pose model) on every image of a COCO-keypoints file and score it by OKS AP."""
    if model.task != "pose":
        raise InputError(f"{model.path} is a {model.task} model: pose AP needs a pose model.")
    path = Path(annotations)
    doc, files = _read(path, Path(images) if images is not None else None)
    category = next(c for c in doc["categories"] if isinstance(c.get("keypoints"), list))
    names = [str(n) for n in category["keypoints"]]
    results: list[dict[str, Any]] = []
    times = []
    for done, (image_id, file) in enumerate(files, 1):
        t0 = time.perf_counter()
        out = model.process(read_image(file))
        times.append(out.inference_ms if out.inference_ms else (time.perf_counter() - t0) * 1e3)
        results += pose_results(out.result, image_id, int(category["id"]), names)
        if progress:
            progress(done, len(files))
    people = sum(1 for a in doc["annotations"] if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0)
    return PoseReport(
        task="pose",
        data=str(path),
        model=str(model.path),
        images=len(files),
        people=people,
        poses=len(results),
        figures=oks_ap(doc, results),
        median_inference_ms=round(statistics.median(times), 3) if times else 0.0,
    )


def evaluate_model(
    data: str | os.PathLike[str],
    model: Model,
    *,
    against: Model | None = None,
    options: Any,
    progress: ProgressFn | None = None,
) -> PoseReport:
    """The evaluator's entry point (:class:`edgecnn.tasks.Evaluator`); ``options`` is an ``EvalOptions``
    (``images``: ``--images``)."""
    if against is not None:
        raise UsageError(
            "--against is not offered for pose models yet: run edgecnn eval on each build and compare OKS AP."
        )
    return evaluate_pose(model, data, images=options.images, progress=progress)
