"""The task options, declared once: what a user can tell a task's decoder, and the output filter.

Each :class:`TaskOption` carries the option's key (its TOML key and keyword argument), type, default,
range and help. Everything that takes a task option reads it from here:

- ``edgecnn run`` and its TOML config / ``service install``: :class:`edgecnn.run.options.RunOptions`
  declares each one as a field made by :func:`edgecnn.run.options.task_field` from this declaration, so
  the CLI flag (``edgecnn.cli._app.run_flag``), the config file's check and the service installer see the
  same type, range, default and help;
- ``edgecnn predict``, ``bench`` and ``eval`` take the same flags (``run_flag(key)``) and build a
  :class:`DecodeOptions`, whose construction is the one range check of a library call's values.

Two options compare scores and are told apart by name (they were one ``--min-score`` before):

- ``object_threshold`` (``--object-threshold``): the detector keeps objects scoring at least this
  (YOLO pose and seg keep their people and objects by it, MoveNet its one pose by its mean keypoint
  score) (default :data:`DEFAULT_OBJECT_THRESHOLD`, in every command but ``eval``, whose mAP needs
  nearly every detection: ``edgecnn.eval``);
- ``min_score`` (``--min-score``): the output filter, after decoding: only results whose score (the top
  class; the best object) is at least this are output (``run``'s lines, JSONL, MQTT; ``predict``'s
  images). Default 0: every result.

``top_k`` is the classes per result of a classifier (default 1 everywhere). ``eval``'s k of top-k accuracy
is another thing with another name (``--accuracy-k``, ``edgecnn.eval.evaluate``).

This module imports nothing heavy: the service installer reads it on a machine without OpenCV or NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from edgecnn.errors import UsageError

# The most objects per frame anyone may ask for, with --max-detections or in a model's
# TFLite_Detection_PostProcess op (edgecnn.postprocess_op checks the op's option against it).
MAX_DETECTIONS = 10_000
# Frigate's default threshold (Ultralytics' predict default conf is 0.25).
DEFAULT_OBJECT_THRESHOLD = 0.4
# NMS IoU threshold of YOLO layouts when --iou is not given. Ultralytics' predict default is 0.7, per class;
# 0.45 (its val/older default, and YOLOv5's) drops more overlapping boxes of one class.
DEFAULT_IOU = 0.45


@dataclass(frozen=True)
class TaskOption:
    """One task option: key (``top_k``), value type, default, inclusive range (None: open), help, flags."""

    key: str
    kind: type  # int, float, bool, or list (of label names)
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    flags: tuple[str, ...] = ()  # CLI spellings; empty: --KEY-WITH-DASHES
    tasks: tuple[str, ...] = ()  # the tasks that read it (empty: every task; the output filter)

    @property
    def flag(self) -> str:
        """The spelling error messages name (``--top-k``)."""
        return (self.flags or ("--" + self.key.replace("_", "-"),))[0].split("/")[0]

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``"must be between 1 and 1000, got 0."``), or None. None fits."""
        if value is None or self.kind not in (int, float):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}."
        if self.kind is int and not isinstance(value, int):
            return f"must be an integer, got {value!r}."
        low, high = self.low, self.high
        finite = not isinstance(value, float) or math.isfinite(value)
        if finite and (low is None or value >= low) and (high is None or value <= high):
            return None
        return f"must be between {low:g} and {high:g}, got {value!r}."


TOP_K = TaskOption(
    "top_k",
    int,
    1,
    "Classifiers: at most this many classes per result (default 1; classes scoring exactly 0 are left out).",
    low=1,
    high=1000,
    flags=("--top-k", "-k"),
    tasks=("classify",),
)
OBJECT_THRESHOLD = TaskOption(
    "object_threshold",
    float,
    DEFAULT_OBJECT_THRESHOLD,
    f"Detectors (and YOLO pose/seg; MoveNet's pose): keep objects scoring at least this (default "
    f"{DEFAULT_OBJECT_THRESHOLD:g}). Which results are output is --min-score.",
    low=0.0,
    high=1.0,
    tasks=("detect", "pose", "segment"),
)
MIN_SCORE = TaskOption(
    "min_score",
    float,
    0.0,
    "Only output results whose score (the top class; the best object) is at least this (default 0: all). "
    "A detector's object threshold is --object-threshold.",
    low=0.0,
    high=1.0,
)
MAX_DETECTIONS_OPTION = TaskOption(
    "max_detections",
    int,
    100,
    "Detectors (and YOLO pose/seg): at most this many objects per frame (default 100).",
    low=1,
    high=MAX_DETECTIONS,
    tasks=("detect", "pose", "segment"),
)
CLASSES = TaskOption(
    "classes",
    list,
    None,
    "Detectors (and YOLO pose/seg): keep only these labels, comma-separated (person,car).",
    tasks=("detect", "pose", "segment"),
)
IOU = TaskOption(
    "iou",
    float,
    None,
    f"YOLO detectors (and YOLO pose/seg): NMS IoU threshold, 0.01 to 1: a box overlapping a better one of "
    f"its class by more is dropped (default {DEFAULT_IOU:g}; Ultralytics' is 0.7). Not used by SSD models "
    "(NMS in their TFLite_Detection_PostProcess op) or end-to-end [1, N, 6] models (NMS done in the model).",
    low=0.01,
    high=1.0,
    tasks=("detect", "pose", "segment"),
)
AGNOSTIC = TaskOption(
    "agnostic",
    bool,
    False,
    "YOLO detectors (and YOLO pose/seg): class-agnostic NMS (overlapping boxes of different classes "
    "suppress each other; default: per class, as Ultralytics). Not used by SSD or end-to-end models (NMS "
    "inside the model).",
    flags=("--agnostic/--no-agnostic",),
    tasks=("detect", "pose", "segment"),
)

# Every task option, by key, in the order help and docs show them.
TASK_OPTIONS: dict[str, TaskOption] = {
    o.key: o for o in (TOP_K, OBJECT_THRESHOLD, MIN_SCORE, MAX_DETECTIONS_OPTION, CLASSES, IOU, AGNOSTIC)
}


def parse_classes(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``"person,car"`` or ``["person", "car"]`` -> ``("person", "car")``; None or empty -> None (all)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    return names or None


@dataclass(frozen=True)
class DecodeOptions:
    """What a user can tell a decoder; each task reads the fields it knows and ignores the others.

    Field names are the :data:`TASK_OPTIONS` keys and the defaults theirs. Building one checks every
    value against its declaration (a :class:`UsageError` naming the flag), so a library call is refused
    with the words the CLI uses and no decoder checks a range again. ``classes`` may be given as
    ``"person,car"`` or a list; it is stored as a tuple (None: every class).
    """

    top_k: int = TOP_K.default
    object_threshold: float = OBJECT_THRESHOLD.default
    max_detections: int = MAX_DETECTIONS_OPTION.default
    classes: tuple[str, ...] | None = CLASSES.default
    iou: float | None = IOU.default  # None: DEFAULT_IOU, and the user did not ask (SSD decoders warn if set)
    agnostic: bool = AGNOSTIC.default

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", parse_classes(self.classes))
        for f in fields(self):
            problem = TASK_OPTIONS[f.name].problem(getattr(self, f.name))
            if problem is not None:
                raise UsageError(f"{TASK_OPTIONS[f.name].flag} {problem}")

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | object) -> DecodeOptions:
        """The decode options among ``values``: a mapping (a command's flags) or an object's attributes
        (a RunOptions). Other keys are ignored; a value of None is not given (the declared default)."""
        get = values.get if isinstance(values, Mapping) else lambda key: getattr(values, key, None)
        given = {f.name: get(f.name) for f in fields(cls)}
        return cls(**{k: v for k, v in given.items() if v is not None})


def check_min_score(value: float) -> float:
    """The output filter's value, checked against its declaration (UsageError naming ``--min-score``)."""
    problem = MIN_SCORE.problem(value)
    if problem is not None:
        raise UsageError(f"{MIN_SCORE.flag} {problem}")
    return float(value)
