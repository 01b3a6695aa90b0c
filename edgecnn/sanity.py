"""Results that cannot be right: refuse them (or warn) instead of printing them as if they were.

Small functions the task decoders (:mod:`edgecnn.tasks.classify`, :mod:`edgecnn.tasks.detect`) and
:func:`edgecnn.model.open_model` call, so predict, run, bench and eval apply one rule.

Outputs (per frame, :class:`~edgecnn.errors.InvalidResult`): NaN or infinite values; scores outside 0..1
(after dequantizing, with :data:`SCORE_TOLERANCE`), such as an SSD whose class and score outputs are
swapped (scores like 34.0); boxes with no area or inverted corners; class ids outside the model's classes
(known from its outputs: the SSD op's ``num_classes``, YOLO's ``4 + nc`` rows, a classifier's scores; or
from its own labels); a classifier whose scores are all zero (no class is better than another, so none is
reported). predict and eval stop with the one-line error; ``run`` drops such a frame, logs it once and
counts it in its summary, and stops with the error only after :data:`INVALID_STREAK` invalid frames in a
row, or when a source ends without one valid frame (the model, not the frame, is broken).

Labels (once, before the first frame, :func:`check_labels`): the same rule and wording for every task.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from edgecnn.errors import InputError, InvalidResult

log = logging.getLogger(__name__)

# Labels: off by one is the background convention (ImageNet models' 1001 outputs with 1000-line files);
# more lines than classes is a warning up to this factor, an error beyond it for a --labels file.
_FAR_TOO_MANY = 2
SCORE_TOLERANCE = 1e-3  # scores are probabilities: quantization may step a hair past 0 or 1, never more
INVALID_STREAK = 30  # consecutive invalid frames (about a second of camera) that make run stop with the error
# No detector has this many classes; a larger id (when the class count is unknown) is garbage, and would
# not even fit the integers class ids are kept in.
MAX_CLASS_ID = 1 << 16


def check_finite(values: np.ndarray, model: str | os.PathLike[str] | None) -> np.ndarray:
    """``values`` if every one is finite, else :class:`InvalidResult` naming the model.

    NaN or inf out of a model means a broken model (a quantization scale of 0, a float model fed values it
    overflows on), never a score worth printing.
    """
    if values.size and not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise InvalidResult(
            f"{model or 'The model'} produced {bad} NaN or infinite output values of {values.size}: the model "
            "is broken (check its output quantization and re-export it)."
        )
    return values


def check_scores(scores: np.ndarray, model: str | os.PathLike[str] | None, what: str = "scores") -> None:
    """Scores must be probabilities, 0..1 (within :data:`SCORE_TOLERANCE`)."""
    check_finite(scores, model)
    if scores.size:
        low, high = float(scores.min()), float(scores.max())
        if low < -SCORE_TOLERANCE or high > 1 + SCORE_TOLERANCE:
            raise InvalidResult(
                f"{model or 'The model'} produced {what} from {low:.4g} to {high:.4g}, outside 0..1: its outputs "
                "are in an order edgecnn does not know (classes and scores swapped?) or are not probabilities. "
                "Re-export it with the standard outputs."
            )


def check_boxes(
    xyxy: np.ndarray, model: str | os.PathLike[str] | None, *, tolerance: float = 0.0
) -> np.ndarray:
    """Which boxes (x1, y1, x2, y2) have an area: a mask. NaN/inf, or corners inverted by more than
    ``tolerance``, are :class:`InvalidResult`.

    A box with no area is dropped, not an error: quantized outputs collapse small or edge boxes to zero
    width (a real YOLO26 full-integer export gives a few a frame, and Ultralytics reports them). Corners
    the wrong way round by more than a quantization step mean the outputs are misread.
    """
    check_finite(xyxy, model)
    if not len(xyxy):
        return np.ones(0, bool)
    inverted = (xyxy[:, 2] < xyxy[:, 0] - tolerance) | (xyxy[:, 3] < xyxy[:, 1] - tolerance)
    if inverted.any():
        box = ", ".join(f"{v:.4g}" for v in xyxy[int(np.flatnonzero(inverted)[0])])
        raise InvalidResult(
            f"{model or 'The model'} produced {int(inverted.sum())} boxes with inverted corners (e.g. "
            f"{box}): its box outputs are misread or broken. Re-export it and check it with `edgecnn predict`."
        )
    return np.asarray((xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1]), dtype=bool)


def check_class_ids(
    values: np.ndarray, classes: int, model: str | os.PathLike[str] | None, *, integral: bool = False
) -> np.ndarray:
    """Class ids as int64, when each is finite and one of the model's ``classes`` (0: unknown, then any
    id from 0 up to :data:`MAX_CLASS_ID`); else :class:`InvalidResult`. A NaN class is no class 0.
    ``integral``: the outputs hold exact whole numbers (the SSD op writes class indices as floats), so any
    fraction, 0.87 or 0.00002, is a score read as a class (the outputs are swapped)."""
    if not values.size:
        return np.zeros(0, np.int64)
    if not np.isfinite(values).all():
        raise InvalidResult(
            f"{model or 'The model'} produced NaN or infinite class ids: the model is broken or was converted "
            "wrongly; re-export it."
        )
    ids = np.rint(values.astype(np.float64))
    if integral and np.any(ids != values):
        raise InvalidResult(
            f"{model or 'The model'} produced class ids that are not whole numbers (e.g. "
            f"{float(values[np.argmax(np.abs(ids - values))]):.4g}): its class and score outputs are swapped or "
            "misread. Re-export it with the standard outputs."
        )
    limit = classes if classes > 0 else MAX_CLASS_ID
    low, high = float(ids.min()), float(ids.max())
    if low < 0 or high >= limit:
        bad = low if low < 0 else high
        has = f"has {classes} classes (0..{classes - 1})" if classes > 0 else "cannot have"
        raise InvalidResult(
            f"{model or 'The model'} produced class id {bad:.6g}, but it {has}: its outputs are misread or "
            "broken. Re-export it with the standard outputs."
        )
    return ids.astype(np.int64)


def check_labels(
    labels: list[str] | None, classes: int, *, source: str, user_file: bool, background: bool = False
) -> list[str] | None:
    """``labels`` checked against the model's class count (``source`` names them in messages).

    One rule for every task, so one wording: exactly ``classes`` lines is right; more lines is a warning
    naming both counts; with ``background`` (a classifier: ImageNet models score 1001 classes, background
    first, and 1000-line files are common) one line fewer is a warning too (the last class shows as its
    number). A detector's class count never includes a background (the SSD op's ``num_classes`` does not;
    a leading ``???`` line is dropped before this check), so there one line short is too few. Far too many (more than twice the classes), too few to cover the classes, or none is
    another model's file: an error for a ``--labels`` file (the user can pass the right one); labels
    embedded in the model only ever warn (it works without them: a class with no line shows as its number).
    ``classes`` 0 means the task cannot tell (nothing to check).
    """
    if labels is None:
        return None
    n = len(labels)
    if n == classes or classes <= 0:
        return labels
    wrong = n == 0 or n > classes * _FAR_TOO_MANY or n < classes - (1 if background else 0)
    if wrong and user_file:
        raise InputError(
            f"{source} has {n} labels for a model with {classes} classes: it is meant for another model. "
            "Pass the labels file made for this model (one line per class), or leave out --labels to use "
            "the model's own."
        )
    if n < classes:
        log.warning(
            "%s has %d labels for %d classes: %d are missing, so classes %d..%d show as their number.",
            source,
            n,
            classes,
            classes - n,
            n,
            classes - 1,
        )
    else:
        log.warning(
            "%s has %d labels for %d classes: the last %d are never used; is it meant for another model?",
            source,
            n,
            classes,
            n - classes,
        )
    return labels
