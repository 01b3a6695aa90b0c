"""The task seam: one module per task (classify, detect) turns a model's raw outputs into a result.

Everything after the interpreter (predict, the run pipeline, JSONL/MQTT/``/latest``, metrics, the preview,
bench, fleet status) sees only :class:`TaskResult` and :class:`Decoder`; none of it knows which task runs.
Adding a task is one module with the functions of :class:`TaskModule` plus one line in :data:`TASKS`.

Which task a model has is read from it: edgecnn metadata's ``task``, Ultralytics' ``task``, else each
registered module in :data:`INFERENCE_ORDER` is asked whether the outputs look like its own
(``TFLite_Detection_PostProcess``, YOLO-shaped tensors, ``[1, N]`` scores). A model no module claims
(pose keypoints, segmentation masks, several unrelated outputs) is one :class:`ModelError` naming its
output shapes, never a meaningless result.
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgecnn.errors import ModelError
from edgecnn.metadata import ModelMetadata
from edgecnn.modelfile import ModelFile, TensorInfo
from edgecnn.preprocess import Transform

# Task name -> module. The module provides the TaskModule functions below.
TASKS: dict[str, str] = {
    "classify": "edgecnn.tasks.classify",
    "detect": "edgecnn.tasks.detect",
}
# The order modules are asked to claim a model without a declared task (most specific first).
INFERENCE_ORDER = ("detect", "classify")


@dataclass(frozen=True)
class DecodeOptions:
    """What a user can tell a decoder; each task reads the fields it knows and ignores the others."""

    top_k: int = 1  # classify: classes per result
    min_score: float | None = None  # detect: keep objects scoring at least this (None: the task's default)
    max_detections: int = 100  # detect: at most this many objects per frame
    classes: tuple[str, ...] | None = None  # detect: keep only these labels
    iou: float = 0.45  # detect: NMS overlap threshold (YOLO layouts; SSD's op has its own)
    agnostic: bool = False  # detect: NMS across classes instead of per class


class TaskResult(Protocol):
    """One frame's result, whatever the task. Frozen dataclasses in practice."""

    @property
    def task(self) -> str:
        """The task's name (``classify``, ``detect``), as in JSON records."""
        ...

    @property
    def score(self) -> float:
        """What ``--min-score`` compares: the top class's score, the best object's score (0 with none)."""
        ...

    @property
    def key(self) -> Hashable:
        """What ``--on-change`` compares: the top label, the set of labels present."""
        ...

    @property
    def top(self) -> Any:
        """The best item (a class or an object with ``label`` and ``score``), or None when there is none."""
        ...

    def labels(self) -> list[str]:
        """One label per thing seen (the top class; each object): ``/metrics`` counts them per label."""
        ...

    def to_json(self) -> dict[str, Any]:
        """The task's keys of a JSON record (``classes`` or ``objects``)."""
        ...

    def summary(self) -> str:
        """One short line of human text: ``/latest``'s ``summary`` (the preview page), fleet status."""
        ...

    def line(self) -> str:
        """The result in ``edgecnn run``'s human output lines (may say more than the summary: all top-k)."""
        ...

    def lines(self) -> list[str]:
        """Indented human lines for ``edgecnn predict``."""
        ...

    def draw(self, image: np.ndarray) -> None:
        """Draw the result onto a BGR frame in place (the preview stream)."""
        ...


class Decoder(Protocol):
    """Built once per model by its task module; :meth:`decode` runs per frame after ``invoke()``."""

    task: str
    name: str  # how the outputs are read, for ``inspect`` (e.g. "YOLO [1, 4+nc, N] + OpenCV NMS")
    letterbox: bool  # the input wants aspect-preserving resize with padding
    class_count: int  # classes the outputs score, for checking a labels file (0: the task checks its own)
    verb: str  # what a running service says it does: "classifying", "detecting"

    def decode(self, interpreter: Any, transform: Transform) -> TaskResult: ...


class TaskModule(Protocol):
    NAME: str
    DESCRIPTION: str  # what a model of this task is, in words: "image classifier", "object detector"

    def claims(self, model_file: ModelFile, meta: ModelMetadata) -> bool:
        """True when the model's outputs are this task's (used when the model declares no task)."""
        ...

    def decoder(
        self,
        model_file: ModelFile,
        meta: ModelMetadata,
        interpreter: Any,
        labels: list[str] | None,
        options: DecodeOptions,
    ) -> Decoder: ...


def task_module(name: str) -> TaskModule:
    try:
        module_name = TASKS[name]
    except KeyError:
        raise ModelError(
            f"Unsupported task {name!r}: edgecnn runs {', '.join(TASKS)} models. "
            "Use a model for one of these (pose, segmentation and others are not supported yet)."
        ) from None
    return importlib.import_module(module_name)  # type: ignore[return-value]


def shapes(tensors: list[TensorInfo]) -> str:
    return ", ".join(f"{list(t.shape)} {t.dtype}" for t in tensors)


def choose_task(model_file: ModelFile, meta: ModelMetadata) -> str:
    """The model's task: declared in its metadata, else the first module in INFERENCE_ORDER that claims it."""
    where = model_file.path or "the model"
    if meta.task:
        if meta.task not in TASKS:
            raise ModelError(
                f"{where} is a {meta.task!r} model ({meta.source} metadata; outputs {shapes(model_file.outputs)}): "
                f"edgecnn runs {', '.join(TASKS)} models. Use a model for one of these."
            )
        return meta.task
    for name in INFERENCE_ORDER:
        if task_module(name).claims(model_file, meta):
            return name
    raise ModelError(
        f"{where} has outputs {shapes(model_file.outputs)} that fit no task edgecnn runs: classification "
        "([1, N] scores), detection (TFLite_Detection_PostProcess; YOLO [1, 4+nc, N] or [1, N, 6]). "
        "Pose keypoints, segmentation masks and multi-output models of other kinds are not supported."
    )


def describe_model(model_file: ModelFile, meta: ModelMetadata) -> str:
    """What the model does, in words (``object detector``), from its task; raises like :func:`choose_task`."""
    return task_module(choose_task(model_file, meta)).DESCRIPTION


def open_decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions | None = None,
) -> Decoder:
    task = choose_task(model_file, meta)
    return task_module(task).decoder(model_file, meta, interpreter, labels, options or DecodeOptions())
