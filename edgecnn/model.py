"""Open a model for inference: parse it, read its metadata, pick the delegate, build the interpreter,
and pick the task decoder (:mod:`edgecnn.tasks`) its outputs need.

:func:`open_model` is the one way the runtime (predict, run, bench, eval) gets an interpreter, so every
command reports the same errors for the same bad input. :meth:`Model.process` is the per-frame call: preprocess, invoke, decode, each timed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import adapters
from edgecnn.adapters import Class
from edgecnn.devices.backends import DeviceSpec, cpu_fallback, parse_device, select_backend
from edgecnn.errors import EdgeTPUNotFound, ModelError, ModelInvokeError, one_line
from edgecnn.metadata import ModelMetadata, read_labels_file, read_metadata
from edgecnn.modelfile import EDGETPU_CUSTOM_OP, ModelFile, read_model
from edgecnn.preprocess import InputSpec, Transform, prepare
from edgecnn.runtime import Runtime, get_runtime
from edgecnn.sanity import check_labels
from edgecnn.tasks import DecodeOptions, Decoder, TaskResult, open_decoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """A classification with its timings (:meth:`Model.classify`)."""

    classes: list[Class]
    preprocess_ms: float
    inference_ms: float

    @property
    def top(self) -> Class:
        return self.classes[0]


@dataclass(frozen=True)
class Inference:
    """One frame through :meth:`Model.process`: the task's result and the time of each stage."""

    result: TaskResult
    transform: Transform
    preprocess_ms: float  # frame -> input tensor
    inference_ms: float  # set input + invoke()
    postprocess_ms: float  # outputs -> result (dequantize, NMS, box mapping, top-k)


# CPU threads when none are asked for: what TFLite's interpreters do when not told (num_threads=-1 runs
# XNNPACK without a thread pool: invoke() starts no thread), said explicitly so reports can name it.
DEFAULT_THREADS = 1


@dataclass
class Model:
    """A ready-to-run model: call :meth:`process` per frame (any task), or :meth:`classify` for a classifier."""

    model_file: ModelFile
    meta: ModelMetadata
    labels: list[str] | None
    interpreter: Any
    runtime: Runtime
    device: str  # what actually runs it: "cpu" or "edgetpu[:...]"
    threads: int  # CPU threads the interpreter was given (DEFAULT_THREADS when none were asked for)
    load_ms: float
    spec: InputSpec
    crop: str | None = None
    decoder: Decoder = field(default=None, repr=False)  # type: ignore[assignment]  # set by open_model

    @property
    def path(self) -> Path | None:
        return self.model_file.path

    @property
    def task(self) -> str:
        return self.decoder.task

    def prepare(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Transform]:
        """Input tensor and the transform that maps input pixels back to ``frame_bgr``'s."""
        return prepare(frame_bgr, self.spec)

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        return prepare(frame_bgr, self.spec)[0]

    def invoke(self, tensor: np.ndarray) -> None:
        adapters.set_input(self.interpreter, tensor)
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise ModelInvokeError(
                f"Inference failed in {self.model_file.path}: {one_line(exc, first_line=True)}"
            ) from exc

    def process(self, frame_bgr: np.ndarray) -> Inference:
        """Preprocess, invoke, decode one frame: the task's result, boxes in ``frame_bgr``'s pixels."""
        t0 = time.perf_counter()
        tensor, transform = prepare(frame_bgr, self.spec)
        t1 = time.perf_counter()
        self.invoke(tensor)
        t2 = time.perf_counter()
        result = self.decoder.decode(self.interpreter, transform)
        t3 = time.perf_counter()
        return Inference(result, transform, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

    def _scores_decoder(self) -> Any:
        probabilities = getattr(self.decoder, "probabilities", None)
        if probabilities is None:
            raise ModelError(
                f"{self.model_file.path} is a {self.decoder.task} model, not a classifier: "
                "use Model.process (edgecnn predict/run handle every task)."
            )
        return self.decoder

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Classifiers: run one inference and return the scores as probabilities."""
        decoder = self._scores_decoder()
        self.invoke(tensor)
        return decoder.probabilities(self.interpreter)  # type: ignore[no-any-return]

    def classify(self, frame_bgr: np.ndarray, top_k: int = 1) -> Prediction:
        t0 = time.perf_counter()
        tensor = self.preprocess(frame_bgr)
        t1 = time.perf_counter()
        scores = self.infer(tensor)
        t2 = time.perf_counter()
        return Prediction(adapters.top_k(scores, top_k, self.labels), (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def _unresolved_custom_op(exc: BaseException) -> str | None:
    text = str(exc)
    marker = "unresolved custom op: "
    if marker in text:
        return text.split(marker, 1)[1].split()[0].rstrip(".")
    return None


def _allocated_interpreter(
    model_file: ModelFile,
    meta: ModelMetadata,
    runtime: Runtime,
    spec_device: DeviceSpec,
    threads: int,
    delegates: list[Any],
) -> Any:
    """An interpreter with its tensors allocated; what the runtime refuses, said in the user's terms.

    A missing custom op is the usual case: an Edge TPU model on a device that does not use the Edge TPU
    (run its CPU twin), or a model exported with an op this runtime lacks (re-export).
    """
    try:
        interpreter = runtime.interpreter_class(
            model_content=model_file.data, num_threads=threads, experimental_delegates=delegates or None
        )
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        op = _unresolved_custom_op(exc)
        if op == EDGETPU_CUSTOM_OP:
            twin = cpu_fallback(model_file, meta)  # the backend that claims the model names it
            hint = (
                f"run the CPU model {twin}" if twin else "run the CPU model (the same name without _edgetpu)"
            )
            raise EdgeTPUNotFound(
                f"{model_file.path} is compiled for the Edge TPU, which --device {spec_device} does not use: "
                f"attach a Coral and pass --device edgetpu (or auto), or {hint}."
            ) from exc
        if op:
            raise ModelInvokeError(
                f"{model_file.path} uses custom op {op!r} that {runtime.describe()} does not provide: "
                "re-export the model with builtin ops only."
            ) from exc
        reason = one_line(exc, first_line=True)
        if reason == type(exc).__name__:  # the runtime said nothing: say what can be done instead
            reason = (
                f"{runtime.describe()} refused it without giving a reason ({reason}); "
                f"`edgecnn inspect {model_file.path}` shows its ops and tensors: re-export the model"
            )
        raise ModelInvokeError(f"Cannot prepare {model_file.path}: {reason}") from exc
    return interpreter


def _checked_io(interpreter: Any, model_file: ModelFile) -> list[dict[str, Any]]:
    """The one input's details. (Outputs no task decodes, an int64 argmax among them, are the task
    registry's one message: :func:`edgecnn.tasks.unsupported_message`.)"""
    details = interpreter.get_input_details()
    if len(details) != 1:
        raise ModelError(
            f"{model_file.path} has {len(details)} inputs; edgecnn runs single-input image models."
        )
    return details


def open_model(
    model: str | os.PathLike[str] | ModelFile,
    *,
    device: str | DeviceSpec = "cpu",
    threads: int | None = None,
    labels: str | os.PathLike[str] | None = None,
    crop: str | None = None,
    runtime: Runtime | None = None,
    probe: bool = True,
    decode: DecodeOptions | None = None,
    require_task: bool = True,
) -> Model:
    """Load ``model`` on ``device`` (cpu, edgetpu[:usb|:pci|...], auto).

    ``auto`` uses the Edge TPU for a model compiled for it when one works, otherwise it warns and runs the
    CPU twin beside the file; ``probe=False`` skips the crash-containing Edge TPU probe. ``decode`` holds
    the task options (top-k; detection threshold, maximum, classes). A model no task decodes is a
    :class:`ModelError`; with ``require_task=False`` (bench: timing only) it opens with a decoder whose
    ``decodes`` is False.
    """
    start = time.perf_counter()
    model_file = model if isinstance(model, ModelFile) else read_model(model)
    spec_device = parse_device(device)
    meta = read_metadata(model_file)
    runtime = runtime or get_runtime()
    selection = select_backend(model_file, spec_device, runtime=runtime, meta=meta, probe=probe)
    if selection.fallback is not None:  # auto: the accelerator failed, its CPU twin runs instead
        return open_model(
            selection.fallback,
            device="cpu",
            threads=threads,
            labels=labels,
            crop=crop,
            runtime=runtime,
            decode=decode,
            require_task=require_task,
        )
    delegates, used = selection.delegates, selection.device
    threads = DEFAULT_THREADS if threads is None else threads

    interpreter = _allocated_interpreter(model_file, meta, runtime, spec_device, threads, delegates)
    label_list = read_labels_file(labels) if labels else meta.labels
    details = _checked_io(interpreter, model_file)
    decoder = open_decoder(model_file, meta, interpreter, label_list, decode, require_task=require_task)
    # Only the task knows how many classes its outputs hold (a detector's output 0 is boxes), and which
    # lines are classes (a detector drops the TF Object Detection API's leading "???" background line).
    source = f"Labels file {labels}" if labels else f"The labels embedded in {model_file.path}"
    check_labels(
        getattr(decoder, "labels", label_list),
        decoder.class_count,
        source=source,
        user_file=bool(labels),
        background=getattr(decoder, "counts_background", False),
    )
    spec = InputSpec.from_details(details[0], meta, crop=crop, letterbox=decoder.letterbox)
    load_ms = (time.perf_counter() - start) * 1e3
    return Model(
        model_file=model_file,
        meta=meta,
        labels=label_list,
        interpreter=interpreter,
        runtime=runtime,
        device=used,
        threads=threads,
        load_ms=load_ms,
        spec=spec,
        crop=crop,
        decoder=decoder,
    )
