"""Classification: one ``[1, N]`` output of class scores -> the top k classes.

Scores are reported as probabilities: taken as they are when the model says so (metadata ``outputs``),
when the graph ends in SOFTMAX/LOGISTIC, or when the values look like probabilities; a softmax is applied
otherwise. A model whose output is neither a softmax nor labelled (an embedding extractor, a regression
head) still runs, with a one-line warning that the scores are raw.

Scores that cannot be right are :class:`~edgecnn.errors.InvalidResult` (see :mod:`edgecnn.sanity`): NaN or
inf, probabilities outside 0..1, and an output that is all zeros. The last is no top-1 at 0.0000 (every
class is as likely as any other, so none was seen): a broken model, or one that reads an input it was not
made for, is one clear error in predict and a dropped, counted frame in run.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgecnn import adapters
from edgecnn.adapters import Class
from edgecnn.errors import InvalidResult, ModelError
from edgecnn.metadata import ModelMetadata
from edgecnn.modelfile import ModelFile
from edgecnn.preprocess import Transform
from edgecnn.sanity import check_finite, check_scores
from edgecnn.tasks import DecodeOptions, shapes, stage_evaluator

log = logging.getLogger(__name__)

NAME = "classify"
DESCRIPTION = "image classifier"  # what the model does, in words (the service's Description=)


@dataclass(frozen=True)
class Classification:
    classes: list[Class]
    task: str = field(default=NAME, init=False)

    @property
    def top(self) -> Class:
        return self.classes[0]

    @property
    def score(self) -> float:
        return self.classes[0].score if self.classes else 0.0

    @property
    def key(self) -> Hashable:
        return self.classes[0].label if self.classes else None

    def labels(self) -> list[str]:
        return [self.classes[0].label] if self.classes else []

    def to_json(self) -> dict[str, Any]:
        return {"classes": [{"id": c.id, "label": c.label, "score": round(c.score, 6)} for c in self.classes]}

    def summary(self) -> str:
        """Top label and score, e.g. ``9 0.957``."""
        return f"{self.top.label} {self.top.score:.3f}" if self.classes else ""

    def line(self) -> str:
        return "  ".join(f"{c.label} {c.score:.2f}" for c in self.classes)

    def lines(self) -> list[str]:
        return [f"  {c.score:7.4f}  {c.id:>5}  {c.label}" for c in self.classes]

    def draw(self, image: np.ndarray) -> None:
        """The top label and score in a bar across the top."""
        if not self.classes:
            return
        text = f"{self.top.label}  {self.top.score:.2f}"
        _h, w = image.shape[:2]
        scale = max(0.5, w / 800)
        thickness = max(1, round(scale * 2))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(image, (0, 0), (min(w, tw + 16), th + base + 12), (0, 0, 0), -1)
        cv2.putText(
            image, text, (8, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), thickness, cv2.LINE_AA
        )


def _scores_output(model_file: ModelFile) -> bool:
    """One output with a single dimension larger than 1 (``[1, N]``, ``[1, 1, 1, N]``)."""
    outputs = model_file.outputs
    return len(outputs) == 1 and sum(1 for d in outputs[0].shape if d > 1) <= 1


def claims(model_file: ModelFile, meta: ModelMetadata) -> bool:
    return _scores_output(model_file)


class ScoresDecoder:
    """Output 0 as class scores, top k of them labelled."""

    task = NAME
    letterbox = False
    verb = "classifying"
    decodes = True
    counts_background = True  # 1001-class ImageNet models take 1000-line labels files (sanity.check_labels)

    def __init__(
        self, model_file: ModelFile, meta: ModelMetadata, labels: list[str] | None, options: DecodeOptions
    ) -> None:
        self.labels = labels
        self.path = model_file.path
        self.top_k = options.top_k
        self._probabilities: bool | None = None
        if meta.outputs in ("probabilities", "logits"):
            self._probabilities = meta.outputs == "probabilities"
        self._softmax_graph = model_file.output_from_softmax()
        self.name = f"top-k of {list(model_file.outputs[0].shape)} scores"
        self.class_count = int(np.prod(model_file.outputs[0].shape))
        if self._probabilities is None and not self._softmax_graph and not labels:
            log.warning(
                "%s: output %s is neither a softmax nor labelled: scores are raw, and this may not be a "
                "classifier.",
                model_file.path or "model",
                list(model_file.outputs[0].shape),
            )

    def probabilities(self, interpreter: Any) -> np.ndarray:
        """Scores of the last invoke as probabilities (:class:`InvalidResult` when they cannot be right)."""
        scores = check_finite(adapters.output_scores(interpreter), self.path)
        if scores.size and not scores.any():
            raise InvalidResult(
                f"{self.path or 'The model'} produced all {scores.size} scores zero, so no class is better than "
                "another: the model is broken or was given an input it was not made for (check its "
                "quantization and normalisation with `edgecnn inspect`)."
            )
        if self._probabilities is None:
            self._probabilities = self._softmax_graph or adapters.looks_like_probabilities(scores)
        if self._probabilities:
            check_scores(scores, self.path)
            return scores
        with np.errstate(all="ignore"):
            return adapters.softmax(scores)

    def decode(self, interpreter: Any, transform: Transform, top_k: int | None = None) -> Classification:
        scores = self.probabilities(interpreter)
        return Classification(adapters.top_k(scores, top_k or self.top_k, self.labels))


def decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions,
) -> ScoresDecoder:
    if not _scores_output(model_file):
        raise ModelError(
            f"{model_file.path or 'the model'} is declared a classifier but has outputs "
            f"{shapes(model_file.outputs)}: a classifier has one [1, N] output. Fix the model's task metadata."
        )
    return ScoresDecoder(model_file, meta, labels, options)


def evaluator() -> Any:
    """How ``edgecnn eval`` measures classifiers: accuracy on class folders (:mod:`edgecnn.eval.classify`)."""
    return stage_evaluator("edgecnn.eval.classify")
