"""Pose estimation: raw outputs -> people, each with COCO's 17 named keypoints (x, y in pixels of the
original frame, and a score), and for YOLO a box.

Two layouts, each a decoder chosen once per model from its outputs:

- **MoveNet single-pose** (Coral's zoo, TF Hub): one output ``[1, 1, 17, 3]`` of (y, x, score) per
  keypoint, normalised to the input. One person per frame; the pose's score is the mean of its keypoints'
  (as Coral's examples rank it), and a pose under ``--object-threshold`` is no pose.
- **Ultralytics YOLO pose** (``yolov8n-pose``, ``yolo11n-pose``): one output ``[1, 4+nc+K*D, N]``
  (cx, cy, w, h, class scores, then K keypoints of x, y and, with D = 3, a visibility score), its
  ``kpt_shape`` [K, D] read from Ultralytics' metadata, float or full-integer. Boxes and NMS are the
  detector's (:class:`edgecnn.tasks.detect.YoloDecoder`: same threshold, IoU and quantized fast path);
  this module reads the keypoint rows of the columns it keeps.

Keypoints go back to frame pixels through the same :class:`~edgecnn.preprocess.Transform` as boxes (crop,
stretch or letterbox). A model whose decoder is a custom op stock LiteRT lacks (PoseNet's
``PosenetDecoderOp``) is refused when its interpreter is built, with one line naming the op
(:func:`edgecnn.model.open_model`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from edgecnn.errors import InvalidResult, ModelError
from edgecnn.metadata import ModelMetadata, ultralytics_metadata
from edgecnn.modelfile import ModelFile
from edgecnn.preprocess import Transform
from edgecnn.sanity import check_finite
from edgecnn.tasks import DecodeOptions, shapes, stage_evaluator
from edgecnn.tasks import detect as _detect

log = logging.getLogger(__name__)

NAME = "pose"
DESCRIPTION = "pose estimator"  # what the model does, in words (the service's Description=)
DRAW_MIN_SCORE = 0.3  # keypoints under this are not drawn (Coral's and Ultralytics' examples hide them too)

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# COCO's skeleton (person_keypoints' "skeleton", 0-based): the limbs drawn between keypoints.
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
    (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
_LIMB = (255, 128, 0)  # BGR
_POINT = (0, 255, 255)


@dataclass(frozen=True)
class Keypoint:
    name: str
    x: float  # pixels of the original frame
    y: float
    score: float  # 1.0 when the model gives none (YOLO with kpt_shape [K, 2])


@dataclass(frozen=True)
class Pose:
    score: float
    keypoints: tuple[Keypoint, ...]
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 (YOLO); None for MoveNet
    label: str = "person"
    id: int = 0


@dataclass(frozen=True)
class Poses:
    poses: list[Pose]  # best first
    task: str = field(default=NAME, init=False)

    @property
    def top(self) -> Pose | None:
        return self.poses[0] if self.poses else None

    @property
    def score(self) -> float:
        return self.poses[0].score if self.poses else 0.0

    @property
    def key(self) -> Hashable:
        return len(self.poses)  # --on-change: a person came or went

    def labels(self) -> list[str]:
        return [p.label for p in self.poses]

    def to_json(self) -> dict[str, Any]:
        """``poses``: score, box (YOLO) and ``keypoints`` {name: [x, y, score]}: about 1 KB a person."""
        return {
            "poses": [
                {
                    "label": p.label,
                    "score": round(p.score, 4),
                    **({"box": [round(v, 1) for v in p.box]} if p.box is not None else {}),
                    "keypoints": {
                        k.name: [round(k.x, 1), round(k.y, 1), round(k.score, 3)] for k in p.keypoints
                    },
                }
                for p in self.poses
            ]
        }

    def track_items(self) -> list[Pose | None]:
        """Each pose with its box (:class:`edgecnn.tasks.Trackable`): YOLO's own, MoveNet's the box around
        its keypoints (:func:`keypoint_box`); None for a pose with too few keypoints seen to have one."""
        return [p if p.box is not None else _with_keypoint_box(p) for p in self.poses]

    def track_records(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return list(data["poses"])

    def keep(self, indices: Sequence[int]) -> Poses:
        """The poses at ``indices`` (:class:`edgecnn.tasks.Keepable`)."""
        return Poses([self.poses[i] for i in indices])

    def summary(self) -> str:
        if not self.poses:
            return "no poses"
        seen = sum(1 for k in self.poses[0].keypoints if k.score >= DRAW_MIN_SCORE)
        people = f"{len(self.poses)} pose{'s' if len(self.poses) != 1 else ''}"
        return f"{people} (best {self.score:.2f}, {seen}/{len(self.poses[0].keypoints)} keypoints)"

    def line(self) -> str:
        return self.summary()

    def lines(self) -> list[str]:
        if not self.poses:
            return ["  no poses"]
        out = []
        for i, p in enumerate(self.poses):
            box = f"  box {', '.join(f'{v:.0f}' for v in p.box)}" if p.box is not None else ""
            out.append(f"  pose {i}  {p.label} {p.score:.4f}{box}")
            out.extend(f"    {k.name:<15} {k.x:7.1f} {k.y:7.1f}  {k.score:.3f}" for k in p.keypoints)
        return out

    def draw(self, image: np.ndarray) -> None:
        """Limbs between keypoints both over :data:`DRAW_MIN_SCORE`, the keypoints, and YOLO's boxes."""
        h, w = image.shape[:2]
        thickness = max(1, round(min(w, h) / 200))
        boxes = [_detect.Object(p.id, p.label, p.score, p.box) for p in self.poses if p.box is not None]
        if boxes:
            _detect.Detections(boxes).draw(image)
        for p in self.poses:
            points = [(round(k.x), round(k.y)) if k.score >= DRAW_MIN_SCORE else None for k in p.keypoints]
            if len(points) == len(COCO_KEYPOINTS):
                for a, b in SKELETON:
                    if points[a] is not None and points[b] is not None:
                        cv2.line(image, points[a], points[b], _LIMB, thickness, cv2.LINE_AA)  # type: ignore[arg-type]
            for point in points:
                if point is not None:
                    cv2.circle(image, point, thickness + 2, _POINT, -1, cv2.LINE_AA)


def keypoint_box(keypoints: tuple[Keypoint, ...]) -> tuple[float, float, float, float] | None:
    """The box around the keypoints scoring at least :data:`DRAW_MIN_SCORE` (the ones drawn), or None
    when fewer than two are or they span no area: what tracking follows for a pose without a box
    (MoveNet). Its bottom edge is the lowest keypoint seen (the ankles of a standing person), where a
    counting line's default anchor, the bottom centre, is judged."""
    seen = [(k.x, k.y) for k in keypoints if k.score >= DRAW_MIN_SCORE]
    if len(seen) < 2:
        return None
    xs, ys = zip(*seen, strict=True)
    box = (min(xs), min(ys), max(xs), max(ys))
    return box if box[2] > box[0] and box[3] > box[1] else None


def _with_keypoint_box(pose: Pose) -> Pose | None:
    box = keypoint_box(pose.keypoints)
    return replace(pose, box=box) if box is not None else None


# --- which layout ------------------------------------------------------------------------------------


def _movenet(model_file: ModelFile) -> bool:
    outputs = model_file.outputs
    return len(outputs) == 1 and tuple(outputs[0].shape) == (1, 1, len(COCO_KEYPOINTS), 3)


def _kpt_shape(model_file: ModelFile) -> tuple[int, int] | None:
    """Ultralytics' ``kpt_shape`` [K, D] (D = 2: x, y; 3: x, y, visibility), None when absent."""
    ultra = ultralytics_metadata(model_file.appended)
    value = ultra.get("kpt_shape") if ultra else None
    if value is None:
        return None
    try:
        k, d = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ModelError(
            f"{model_file.path or 'the model'}: Ultralytics metadata 'kpt_shape' is {value!r}, not [K, 2] or "
            "[K, 3]. Re-export the model."
        ) from None
    if k < 1 or d not in (2, 3):
        raise ModelError(
            f"{model_file.path or 'the model'}: Ultralytics metadata 'kpt_shape' is {[k, d]}: expected [K, 2] "
            "or [K, 3]. Re-export the model."
        )
    return k, d


def claims(model_file: ModelFile, meta: ModelMetadata) -> bool:
    """MoveNet's ``[1, 1, 17, 3]``; YOLO pose declares its task in its metadata (never inferred: its
    output is YOLO-shaped, and only ``kpt_shape`` tells keypoints from classes)."""
    return _movenet(model_file)


def _names(count: int) -> tuple[str, ...]:
    return COCO_KEYPOINTS if count == len(COCO_KEYPOINTS) else tuple(f"kpt{i}" for i in range(count))


def _keypoints(
    names: tuple[str, ...], xy: np.ndarray, scores: np.ndarray, transform: Transform
) -> tuple[Keypoint, ...]:
    """``xy`` [K, 2] in input pixels -> frame pixels (clipped to the frame, as boxes are)."""
    frame = transform.to_frame(np.concatenate([xy, xy], axis=1))[:, :2]
    return tuple(
        Keypoint(name, float(x), float(y), float(s))
        for name, (x, y), s in zip(names, frame, scores, strict=True)
    )


class MoveNetDecoder:
    task = NAME
    letterbox = False  # MoveNet's examples stretch the frame to 192x192
    class_count = 0
    verb = "estimating poses"
    decodes = True

    def __init__(self, model_file: ModelFile, options: DecodeOptions) -> None:
        self.where = str(model_file.path or "the model")
        # --object-threshold (edgecnn.tasks.options, checked there): a pose scoring less is no pose.
        self.threshold = float(options.object_threshold)
        self.name = f"MoveNet single-pose {list(model_file.outputs[0].shape)} (y, x, score per COCO keypoint)"
        self.labels: list[str] | None = None

    def decode(self, interpreter: Any, transform: Transform) -> Poses:
        raw = _detect._read(interpreter, 0).reshape(-1, 3)
        check_finite(raw, self.where)
        scores = raw[:, 2]
        if float(scores.min()) < 0 or float(scores.max()) > 1:
            raise InvalidResult(
                f"{self.where} produced keypoint scores {float(scores.min()):.3g}..{float(scores.max()):.3g}, "
                "outside 0..1: its output is not MoveNet's (y, x, score). Check it with `edgecnn inspect`."
            )
        score = float(scores.mean())
        if score < self.threshold:
            return Poses([])
        xy = raw[:, 1::-1] * np.array([transform.input_width, transform.input_height], np.float32)
        return Poses([Pose(score, _keypoints(COCO_KEYPOINTS, xy, scores, transform))])


class YoloPoseDecoder(_detect.YoloDecoder):
    """Boxes, scores and NMS as the detector's; then the keypoint rows of the kept columns only."""

    verb = "estimating poses"

    def __init__(
        self,
        model_file: ModelFile,
        interpreter: Any,
        labels: list[str] | None,
        options: DecodeOptions,
        kpt_shape: tuple[int, int],
        *,
        channels_last: bool,
    ) -> None:
        k, d = kpt_shape
        super().__init__(
            model_file, interpreter, labels, options, channels_last=channels_last, extra_rows=k * d
        )
        self.task = NAME
        self.kpt_shape = kpt_shape
        self.names = _names(k)
        self.name = self.name.replace("class scores)", f"class scores, {k}x{d} keypoints)")

    def decode(self, interpreter: Any, transform: Transform) -> Poses:  # type: ignore[override]
        with np.errstate(all="ignore"):
            xyxy, scores, ids, columns, normalised = self.select(interpreter, transform)
            found, rows = self._indexed_objects(xyxy, scores, ids, transform)
            raw = self.raw_output(interpreter)
            kpts = self.dequantized(raw[4 + self.class_count :, columns[rows]])  # [K*D, n]: a copy
            del raw
            k, d = self.kpt_shape
            kpts = kpts.T.reshape(-1, k, d)
            check_finite(kpts, self.where)
            xy = kpts[..., :2]
            if normalised:
                xy = xy * np.array([transform.input_width, transform.input_height], np.float32)
            vis = kpts[..., 2] if d == 3 else np.ones(kpts.shape[:2], np.float32)
            poses = [
                Pose(o.score, _keypoints(self.names, xy[i], vis[i], transform), o.box, o.label, o.id)
                for i, o in enumerate(found.objects)
            ]
        return Poses(poses)


def _not_applied(where: str, name: str, options: DecodeOptions) -> None:
    """Say so when detection options are given to a layout without boxes to filter or NMS to run."""
    if options.iou is not None or options.agnostic or options.classes:
        log.warning("--iou, --agnostic and --classes do not apply to %s (%s): ignored.", where, name)


def decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions,
) -> MoveNetDecoder | YoloPoseDecoder:
    if _movenet(model_file):
        movenet = MoveNetDecoder(model_file, options)
        _not_applied(movenet.where, movenet.name, options)
        return movenet
    kpt_shape = _kpt_shape(model_file)
    layout = _detect._yolo_layout(model_file.outputs)
    if kpt_shape is not None and layout in ("yolo", "yolo-channels-last"):
        dec = YoloPoseDecoder(
            model_file, interpreter, labels, options, kpt_shape, channels_last=layout == "yolo-channels-last"
        )
        if meta.letterbox is not None:
            dec.letterbox = bool(meta.letterbox)
        return dec
    raise ModelError(
        f"{model_file.path or 'the model'} is declared a pose model but its outputs {shapes(model_file.outputs)} "
        "fit no pose layout edgecnn reads (MoveNet [1, 1, 17, 3]; YOLO pose [1, 4+nc+K*3, N] with Ultralytics' "
        "kpt_shape metadata). Re-export it in one of these."
    )


def evaluator() -> Any:
    """How ``edgecnn eval`` measures pose models: OKS AP on a COCO-keypoints file (:mod:`edgecnn.eval.pose`)."""
    return stage_evaluator("edgecnn.eval.pose")
