"""The classification evaluator: top-1/top-k accuracy, per-class accuracy and a confusion matrix over a
``DATA/<label>/`` folder, for one model or two compared image by image.

Scoring is a pure function of (true label, ranked predicted labels) pairs so tests can check the figures
without a model; :func:`evaluate_classification` only decodes each image once and feeds every model.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import InputError
from edgecnn.eval.classfolders import ClassFolders, read_class_folders
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import ReportMixin
from edgecnn.images import read_image
from edgecnn.model import Model

OTHER = "(other)"  # confusion-matrix column for predictions outside the dataset's classes

# The Evaluator protocol (edgecnn.tasks.Evaluator), reached through edgecnn.tasks.classify.evaluator().
LAYOUTS = ("folders",)
EXPECTS = "class folders (DATA/<label>/*.jpg)"
DECODE: dict[str, Any] = {}  # the user's decode options as given (top-k accuracy asks for its own k)


@dataclass(frozen=True)
class ClassAccuracy:
    label: str
    images: int
    top1_correct: int
    top1_pct: float


@dataclass(frozen=True)
class ConfusionMatrix:
    """``counts[i][j]``: images of ``rows[i]`` whose top-1 was ``columns[j]`` (the last column is OTHER)."""

    rows: list[str]
    columns: list[str]
    counts: list[list[int]]


@dataclass(frozen=True)
class ClassificationScore:
    """Figures for one model; percentages are 0-100."""

    model: str
    device: str
    runtime: str
    labels_source: str
    images: int
    top_k: int  # k actually used: at most the number of classes the model has
    top1_pct: float
    topk_pct: float
    per_class: list[ClassAccuracy]
    confusion: ConfusionMatrix
    median_inference_ms: float


@dataclass(frozen=True)
class Disagreement:
    """An image on which the two models' top-1 labels differ: the ones to look at first."""

    image: str
    folder: str
    model: str  # the evaluated model's top-1 label
    against: str  # the --against model's top-1 label


@dataclass(frozen=True)
class ClassificationComparison:
    """Image-by-image comparison of the evaluated model with the ``--against`` model."""

    agreement_pct: float  # images where both models' top-1 labels are the same
    top1_difference_pts: float  # evaluated minus against, in percentage points
    disagreements: int
    disagreeing_images: list[Disagreement]


@dataclass(frozen=True)
class ClassificationReport(ReportMixin):
    task: str
    data: str
    model: ClassificationScore
    against: ClassificationScore | None
    comparison: ClassificationComparison | None

    @property
    def headline(self) -> tuple[str, float]:
        """The figure ``--fail-under`` gates on: top-1 accuracy of the evaluated model."""
        return "top-1 accuracy", self.model.top1_pct

    def tables(self) -> list[Any]:
        """Rich tables for a terminal: summary, per class and the confusion matrix."""
        from edgecnn.eval.tables import classification_tables

        return classification_tables(self)  # type: ignore[return-value]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def score_predictions(
    truth: Sequence[str], ranked: Sequence[Sequence[str]], classes: Sequence[str], k: int
) -> tuple[float, float, list[ClassAccuracy], ConfusionMatrix]:
    """Top-1 %, top-k %, per-class accuracy and confusion matrix from ranked label predictions.

    A prediction is right when its label equals the folder name, so a model whose label list repeats a name
    (ImageNet's two "crane" classes) counts either id as right.
    """
    index = {c: i for i, c in enumerate(classes)}
    columns = [*classes, OTHER]
    counts = [[0] * len(columns) for _ in classes]
    top1 = topk = 0
    per_total = dict.fromkeys(classes, 0)
    per_right = dict.fromkeys(classes, 0)
    for label, predicted in zip(truth, ranked, strict=True):
        first = predicted[0]
        counts[index[label]][index.get(first, len(classes))] += 1
        per_total[label] += 1
        if first == label:
            top1 += 1
            per_right[label] += 1
        if label in predicted[:k]:
            topk += 1
    per_class = [
        ClassAccuracy(c, per_total[c], per_right[c], _pct(per_right[c], per_total[c])) for c in classes
    ]
    n = len(truth)
    return _pct(top1, n), _pct(topk, n), per_class, ConfusionMatrix(list(classes), columns, counts)


def _label_list(clf: Model) -> list[str]:
    if clf.labels:
        return list(clf.labels)
    classes = int(clf.interpreter.get_output_details()[0]["shape"][-1])
    return [str(i) for i in range(classes)]


def _num_classes(clf: Model) -> int:
    return int(clf.interpreter.get_output_details()[0]["shape"][-1])


def _labels_source(clf: Model, labels_flag: bool) -> str:
    if labels_flag:
        return "--labels"
    return clf.meta.source if clf.labels else "none (class ids)"


def _check_labels(dataset: ClassFolders, clf: Model, which: str) -> None:
    known = set(_label_list(clf))
    missing = [c for c in dataset.classes if c not in known]
    if missing:
        raise InputError(
            f"Folder {dataset.root / missing[0]} matches no label of the {which} model {clf.path}: "
            "both models must use the same labels (pass --labels FILE for the evaluated model)."
        )


def evaluate_classification(
    data: str | os.PathLike[str],
    classifier: Model,
    *,
    against: Model | None = None,
    top_k: int = 5,
    labels_flag: bool = False,
    progress: ProgressFn | None = None,
) -> ClassificationReport:
    """Classify every image of ``DATA/<label>/`` with ``classifier`` (and ``against``) and score it.

    Every folder name is checked against the labels of both models before the first inference, so a typo
    costs nothing; an unreadable image stops the run with its path (no report is produced).
    """
    dataset = read_class_folders(data, _label_list(classifier))
    if against is not None:
        _check_labels(dataset, against, "--against")
    models = [classifier] if against is None else [classifier, against]
    ks = [min(top_k, _num_classes(m)) for m in models]
    ranked: list[list[list[str]]] = [[] for _ in models]
    times: list[list[float]] = [[] for _ in models]
    total = len(dataset.images)
    for n, item in enumerate(dataset.images, 1):
        frame = read_image(item.path)
        for m, clf in enumerate(models):
            pred = clf.classify(frame, top_k=ks[m])
            times[m].append(pred.inference_ms)
            ranked[m].append([c.label for c in pred.classes])
        if progress is not None:
            progress(n, total)
    truth = [item.label for item in dataset.images]
    scores = []
    for m, clf in enumerate(models):
        top1, topk, per_class, confusion = score_predictions(truth, ranked[m], dataset.classes, ks[m])
        scores.append(
            ClassificationScore(
                model=str(clf.path),
                device=clf.device,
                runtime=clf.runtime.describe(),
                labels_source=_labels_source(clf, labels_flag and m == 0),
                images=total,
                top_k=ks[m],
                top1_pct=top1,
                topk_pct=topk,
                per_class=per_class,
                confusion=confusion,
                median_inference_ms=round(statistics.median(times[m]), 3),
            )
        )
    comparison = None
    if against is not None:
        differ = [
            Disagreement(str(item.path), item.label, a[0], b[0])
            for item, a, b in zip(dataset.images, ranked[0], ranked[1], strict=True)
            if a[0] != b[0]
        ]
        comparison = ClassificationComparison(
            agreement_pct=_pct(total - len(differ), total),
            top1_difference_pts=round(scores[0].top1_pct - scores[1].top1_pct, 4),
            disagreements=len(differ),
            disagreeing_images=differ,
        )
    return ClassificationReport(
        task="classify",
        data=str(dataset.root),
        model=scores[0],
        against=scores[1] if against is not None else None,
        comparison=comparison,
    )


def evaluate_model(
    data: str | os.PathLike[str],
    model: Model,
    *,
    against: Model | None,
    options: Any,
    progress: ProgressFn | None = None,
) -> ClassificationReport:
    """The evaluator's entry point (:class:`edgecnn.tasks.Evaluator`); ``options`` is an ``EvalOptions``."""
    return evaluate_classification(
        data,
        model,
        against=against,
        top_k=options.accuracy_k,
        labels_flag=options.labels_flag,
        progress=progress,
    )
