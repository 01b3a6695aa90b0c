"""The task seam: one module per task (classify, detect, pose, segment) turns a model's raw outputs into a result.

Everything after the interpreter (predict, the run pipeline, JSONL/MQTT/``/latest``, metrics, the preview,
bench, fleet status) sees only :class:`TaskResult` and :class:`Decoder`; none of it knows which task runs.
Adding a task is one module with the functions of :class:`TaskModule` plus one line in :data:`TASKS`;
its optional ``evaluator()`` (:class:`Evaluator`) is how ``edgecnn eval`` measures it, a result with boxes
implements :class:`Trackable` (what ``run``'s tracking follows), and the options a user can give its
decoder are declared once in :mod:`edgecnn.tasks.options`.

Which task a model has is read from it: edgecnn metadata's ``task``, Ultralytics' ``task``, else each
registered module in :data:`INFERENCE_ORDER` is asked whether the outputs look like its own
(MoveNet keypoints, class maps, ``TFLite_Detection_PostProcess``, YOLO-shaped tensors, ``[1, N]``
scores). A model no module claims (several unrelated outputs, an int64 that is no class map) is one :class:`ModelError`
naming its output shapes (:func:`unsupported_message`, the same line in every command), never a
meaningless result. ``bench`` times such a model anyway: it opens it with ``require_task=False`` and gets
an :class:`Undecodable` decoder, which has nothing to decode and says so.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgecnn.errors import ModelError, UsageError
from edgecnn.tasks.options import MAX_DETECTIONS as MAX_DETECTIONS  # re-exported: declared with the options
from edgecnn.tasks.options import DecodeOptions as DecodeOptions

if TYPE_CHECKING:  # kept out at run time: the task options are read by the light config check
    import numpy as np

    from edgecnn.metadata import ModelMetadata
    from edgecnn.model import Model
    from edgecnn.modelfile import ModelFile, TensorInfo
    from edgecnn.preprocess import Transform

# Task name -> module. The module provides the TaskModule functions below.
TASKS: dict[str, str] = {
    "classify": "edgecnn.tasks.classify",
    "detect": "edgecnn.tasks.detect",
    "pose": "edgecnn.tasks.pose",
    "segment": "edgecnn.tasks.segment",
}
# The order modules are asked to claim a model without a declared task (most specific first).
INFERENCE_ORDER = ("pose", "segment", "detect", "classify")


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
        """Draw the result onto a BGR frame in place (the preview stream, ``predict --save``)."""
        ...


@runtime_checkable
class Trackable(Protocol):
    """A task result whose items have boxes, which ``run``'s tracking stage (:mod:`edgecnn.track.stage`)
    follows across frames, whatever the task: detections' objects, poses, YOLO seg's objects. The stage
    asks these two questions and nothing else, so it (and every output after it) never branches on the
    task; a result without them (a classification) passes through untouched."""

    def track_items(self) -> Sequence[Any] | None:
        """One entry per record of :meth:`TaskResult.to_json` that :meth:`track_records` returns, in the
        same order: an item with ``box`` (x1, y1, x2, y2 frame pixels), ``label`` and ``score``, or None
        for a record without a box this frame. None altogether when results of this kind never carry
        boxes (a class-map segmentation): then tracking, lines and zones do not apply to it."""
        ...

    def track_records(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The records of ``data`` (what :meth:`TaskResult.to_json` returned) that :meth:`track_items`
        lines up with (``objects``, ``poses``): the stage writes each one's ``track_id`` into them."""
        ...


@runtime_checkable
class Keepable(Protocol):
    """A :class:`Trackable` result that can keep a subset of its items. With tracking on, ``run``'s decoder
    reads below ``--object-threshold`` (down to ``--track-low-score``, so the tracker's second stage sees
    the low-score detections) and the stage keeps the items over the threshold plus those a track matched
    (:meth:`keep`); the rest never reach an output. Every result whose decoder reads ``object_threshold``
    implements it (detections, poses, YOLO seg), so nothing after the stage sees what the user's
    threshold left out; one that does not is published whole."""

    def keep(self, indices: Sequence[int]) -> Any:
        """The same kind of result with only the items at ``indices`` (positions in :meth:`Trackable.track_items`,
        ascending), in their order; everything derived from the items (a segmentation's class map and
        areas) made from those alone."""
        ...


def detailed_json(result: TaskResult) -> dict[str, Any]:
    """The task's keys for one image's report (``predict --json``): :meth:`TaskResult.to_json` (what every
    frame of ``run`` carries, kept small), plus what a task keeps for single images only (segment: each
    mask as RLE), through the result's optional ``detailed_json`` method."""
    detailed = getattr(result, "detailed_json", None)
    return detailed() if callable(detailed) else result.to_json()


class Decoder(Protocol):
    """Built once per model by its task module; :meth:`decode` runs per frame after ``invoke()``."""

    task: str
    name: str  # how the outputs are read, for ``inspect`` (e.g. "YOLO [1, 4+nc, N] + OpenCV NMS")
    letterbox: bool  # the input wants aspect-preserving resize with padding
    class_count: int  # classes the outputs score, for checking a labels file (0: the task checks its own)
    verb: str  # what a running service says it does: "classifying", "detecting"
    decodes: bool  # False only for Undecodable (a model no task decodes, opened for timing)

    def decode(self, interpreter: Any, transform: Transform) -> TaskResult: ...


class Evaluator(Protocol):
    """How ``edgecnn eval`` measures models of one task: what a task module's ``evaluator()`` returns
    (a module of the ``eval`` stage in practice, :func:`stage_evaluator`: ``edgecnn.eval.classify``,
    ``edgecnn.eval.detect``, ``edgecnn.eval.pose``, ``edgecnn.eval.segment``).

    ``eval`` finds the model's task, asks the task module for its evaluator, checks the dataset's layout
    against :attr:`LAYOUTS`, opens the model(s) with the user's :class:`DecodeOptions` updated by
    :attr:`DECODE`, and hands them to :meth:`evaluate_model`. It knows no task by name.
    """

    LAYOUTS: tuple[str, ...]  # dataset layouts it reads, as edgecnn.eval.datasets.dataset_format names them
    EXPECTS: str  # those layouts in words, for the mismatch error: "class folders (DATA/<label>/*.jpg)"
    DECODE: Mapping[str, Any]  # decode options it fixes (detect: nearly every detection, for mAP)

    def evaluate_model(
        self,
        data: str | os.PathLike[str],
        model: Model,
        *,
        against: Model | None,
        options: Any,  # edgecnn.eval.evaluate.EvalOptions
        progress: Callable[[int, int], None] | None,  # edgecnn.eval.progress.ProgressFn
    ) -> Any:
        """Measure ``model`` (and ``against``, a second build, on the same decoded images) on ``data``:
        an ``edgecnn.eval.report.EvalReport`` (typed loosely here: the core imports no stage)."""
        ...


class TaskModule(Protocol):
    """What a task module provides. ``evaluator`` is optional: a task without it runs everywhere but in
    ``eval``, which refuses its models with one line (:func:`task_evaluator`)."""

    NAME: str
    DESCRIPTION: str  # what a model of this task is, in words: "image classifier", "object detector"

    # Optional: OUTPUT_DTYPES, output dtypes this task reads beyond DECODED_DTYPES (segment: int64 maps).

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

    def evaluator(self) -> Evaluator:
        """Optional: this task's evaluator, imported when called (eval's code stays out of predict and run)."""
        ...


def task_module(name: str) -> TaskModule:
    try:
        module_name = TASKS[name]
    except KeyError:
        raise ModelError(
            f"Unsupported task {name!r}: edgecnn runs {', '.join(TASKS)} models. "
            "Use a model for one of these (oriented boxes and others are not supported yet)."
        ) from None
    return importlib.import_module(module_name)  # type: ignore[return-value]


def shapes(tensors: list[TensorInfo]) -> str:
    return ", ".join(f"{list(t.shape)} {t.dtype}" for t in tensors)


# Output dtypes the task decoders read (an int64 argmax map, strings or bools are no task's).
DECODED_DTYPES = ("UINT8", "INT8", "INT16", "FLOAT32")
NO_TASK = "none"  # the task of a model no task decodes (bench results say it)


def find_task(model_file: ModelFile, meta: ModelMetadata) -> str | None:
    """The task that decodes the model's outputs, or None when none does: declared in its metadata, else
    the first module in INFERENCE_ORDER that claims it. Outputs of a dtype the task does not read (strings,
    bools; int64 except as segment's class map) are no task's."""
    if meta.task:
        return meta.task if meta.task in TASKS and _reads_dtypes(meta.task, model_file) else None
    for name in INFERENCE_ORDER:
        if _reads_dtypes(name, model_file) and task_module(name).claims(model_file, meta):
            return name
    return None


def _reads_dtypes(name: str, model_file: ModelFile) -> bool:
    known = DECODED_DTYPES + tuple(getattr(task_module(name), "OUTPUT_DTYPES", ()))
    return all(t.dtype.upper() in known for t in model_file.outputs)


def unsupported_message(model_file: ModelFile, meta: ModelMetadata) -> str:
    """The one line every command gives for a model no task decodes (predict, run, eval refuse it with it;
    inspect shows it; bench records that it timed invoke() only)."""
    where = model_file.path or "the model"
    outputs = shapes(model_file.outputs)
    subject = f"has outputs {outputs}"
    if meta.task and meta.task not in TASKS:  # declared: Ultralytics pose/segment, or another tool's task
        subject = f"is a {meta.task!r} model ({meta.source} metadata; outputs {outputs})"
    return (
        f"{where} {subject} that no edgecnn task decodes: "
        "predict, run and eval need a classify model ([1, N] scores), a detect model "
        "(TFLite_Detection_PostProcess; YOLO [1, 4+nc, N] or [1, N, 6]), a pose model (MoveNet [1, 1, 17, 3]; "
        "YOLO pose) or a segment model (class map [1, H, W]; scores [1, H, W, C]; YOLO seg); "
        "`edgecnn bench` still times it (invoke only)."
    )


def choose_task(model_file: ModelFile, meta: ModelMetadata) -> str:
    """The model's task (:func:`find_task`); a :class:`ModelError` (:func:`unsupported_message`) when none."""
    task = find_task(model_file, meta)
    if task is None:
        raise ModelError(unsupported_message(model_file, meta))
    return task


@dataclass
class Undecodable:
    """The decoder of a model no task decodes, for timing only: ``bench`` times its ``invoke()`` and
    records :attr:`name`; :attr:`decodes` is False, so nothing times or calls :meth:`decode`."""

    reason: str  # unsupported_message(): what decode() raises
    task: str = NO_TASK
    name: str = "invoke only: no edgecnn task decodes these outputs"
    letterbox: bool = False
    class_count: int = 0
    verb: str = "invoking"
    decodes: bool = False

    def decode(self, interpreter: Any, transform: Transform) -> TaskResult:
        raise ModelError(self.reason)


def describe_model(model_file: ModelFile, meta: ModelMetadata) -> str:
    """What the model does, in words (``object detector``), from its task; raises like :func:`choose_task`."""
    return task_module(choose_task(model_file, meta)).DESCRIPTION


def open_decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions | None = None,
    *,
    require_task: bool = True,
) -> Decoder:
    """The task's decoder. A model no task decodes is a :class:`ModelError`, or with ``require_task=False``
    (timing only) an :class:`Undecodable`; so is, then, one whose declared task's decoder refuses its
    outputs (metadata saying ``classify`` over YOLO tensors): timing needs no decoder."""
    task = find_task(model_file, meta)
    if task is None:
        if require_task:
            raise ModelError(unsupported_message(model_file, meta))
        return Undecodable(unsupported_message(model_file, meta))
    try:
        return task_module(task).decoder(model_file, meta, interpreter, labels, options or DecodeOptions())
    except ModelError as exc:
        if require_task:
            raise
        return Undecodable(str(exc))


def stage_evaluator(module: str) -> Any:
    """What a task module's ``evaluator()`` returns: its evaluator, a module of the ``eval`` stage, imported
    by name when ``eval`` calls the hook. The runtime core imports no stage (``tests/test_layout.py``): eval
    depends on the tasks, never the reverse, so a task names the module that measures it, as :data:`TASKS`
    names the task modules, and ``predict``/``run`` never load evaluation code."""
    if not module.startswith("edgecnn.eval."):
        raise ValueError(f"{module!r} is not a module of edgecnn.eval")
    return importlib.import_module(module)


def evaluators() -> list[str]:
    """The registered tasks whose module provides an evaluator (``edgecnn eval`` measures their models)."""
    return [name for name in TASKS if hasattr(task_module(name), "evaluator")]


def task_evaluator(task: str, where: object = "the model") -> Evaluator:
    """The evaluator of ``task``; a :class:`UsageError` (one line) when its module provides none."""
    hook = getattr(task_module(task), "evaluator", None)
    if hook is None:
        raise UsageError(
            f"{where} is a {task} model and edgecnn eval has no evaluator for {task} models: "
            f"it measures {', '.join(evaluators())} models (`edgecnn predict` and `edgecnn bench` run it)."
        )
    return hook()  # type: ignore[no-any-return]
