"""Results that cannot be right: refuse them (or warn) instead of printing them as if they were.

Small functions any task decoder or command calls on what it is about to report, so predict, run, bench
and eval apply one rule: non-finite scores are an error, a labels list that does not fit the class count is
a warning that says how many are missing or extra, and an error when it is clearly another model's (empty,
or off by more than a factor of ten).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from edgecnn.errors import InputError, ModelInvokeError

log = logging.getLogger(__name__)

# Coral's and TF Hub's ImageNet models have 1001 outputs (class 0 is "background") and label files of
# 1000 or 1001 lines both exist; off by more than this factor is a labels file meant for another model.
_CLEARLY_WRONG = 10


def check_finite(values: np.ndarray, model: str | os.PathLike[str] | None) -> np.ndarray:
    """``values`` if every one is finite, else :class:`ModelInvokeError` naming the model.

    NaN or inf out of a model means a broken model (a quantization scale of 0, a float model fed values it
    overflows on), never a score worth printing.
    """
    if values.size and not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise ModelInvokeError(
            f"{model or 'The model'} produced {bad} NaN or infinite output values of {values.size}: the model "
            "is broken (check its output quantization and re-export it)."
        )
    return values


def check_labels(labels: list[str] | None, classes: int, *, source: str, user_file: bool) -> list[str] | None:
    """``labels`` checked against the model's class count (``source`` names them in messages).

    ``user_file`` marks a ``--labels`` file: clearly wrong ones are then an error (the user can pass the
    right file); labels embedded in the model only ever warn, as the model works without them.
    """
    if labels is None:
        return None
    n = len(labels)
    if n == classes or classes <= 0:
        return labels
    clearly_wrong = n == 0 or n * _CLEARLY_WRONG < classes or n > classes * _CLEARLY_WRONG
    if clearly_wrong and user_file:
        raise InputError(
            f"{source} has {n} labels for a model with {classes} classes: it is meant for another model. "
            "Pass the labels file made for this model, or leave out --labels to use the model's own."
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
