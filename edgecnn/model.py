"""Open a model for inference: parse it, read its metadata, pick the delegate, build the interpreter.

:func:`open_classifier` is the one way the runtime (predict, run, bench) gets an interpreter, so every
command reports the same errors for the same bad input.
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
from edgecnn.devices.backends import DeviceSpec, parse_device, select_backend
from edgecnn.errors import EdgeTPUNotFound, ModelError, ModelInvokeError
from edgecnn.metadata import ModelMetadata, read_labels_file, read_metadata
from edgecnn.modelfile import EDGETPU_CUSTOM_OP, ModelFile, read_model
from edgecnn.preprocess import InputSpec, to_tensor
from edgecnn.runtime import Runtime, get_runtime
from edgecnn.sanity import check_finite, check_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    classes: list[Class]
    preprocess_ms: float
    inference_ms: float

    @property
    def top(self) -> Class:
        return self.classes[0]


def cpu_twin_path(model_file: ModelFile, meta: ModelMetadata) -> Path | None:
    """The CPU build beside an Edge TPU model (the Edge TPU backend's fallback rule)."""
    from edgecnn.devices.backends.edgetpu.backend import cpu_twin

    return cpu_twin(model_file, meta)


@dataclass
class Classifier:
    """A ready-to-run model: call :meth:`classify` per frame."""

    model_file: ModelFile
    meta: ModelMetadata
    labels: list[str] | None
    interpreter: Any
    runtime: Runtime
    device: str  # what actually runs it: "cpu" or "edgetpu[:...]"
    threads: int | None
    load_ms: float
    spec: InputSpec
    crop: str | None = None
    _probabilities: bool | None = field(default=None, repr=False)

    @property
    def path(self) -> Path | None:
        return self.model_file.path

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        return to_tensor(frame_bgr, self.spec)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run one inference and return scores as probabilities."""
        adapters.set_input(self.interpreter, tensor)
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise ModelInvokeError(f"Inference failed in {self.model_file.path}: {_first_line(exc)}") from exc
        scores = check_finite(adapters.output_scores(self.interpreter), self.model_file.path)
        if self._probabilities is None:
            if self.meta.outputs in ("probabilities", "logits"):
                self._probabilities = self.meta.outputs == "probabilities"
            else:
                self._probabilities = (
                    self.model_file.output_from_softmax() or adapters.looks_like_probabilities(scores)
                )
        return scores if self._probabilities else adapters.softmax(scores)

    def classify(self, frame_bgr: np.ndarray, top_k: int = 1) -> Prediction:
        t0 = time.perf_counter()
        tensor = self.preprocess(frame_bgr)
        t1 = time.perf_counter()
        scores = self.infer(tensor)
        t2 = time.perf_counter()
        return Prediction(adapters.top_k(scores, top_k, self.labels), (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unresolved_custom_op(exc: BaseException) -> str | None:
    text = str(exc)
    marker = "unresolved custom op: "
    if marker in text:
        return text.split(marker, 1)[1].split()[0].rstrip(".")
    return None


def open_classifier(
    model: str | os.PathLike[str] | ModelFile,
    *,
    device: str | DeviceSpec = "cpu",
    threads: int | None = None,
    labels: str | os.PathLike[str] | None = None,
    crop: str | None = None,
    runtime: Runtime | None = None,
    probe: bool = True,
) -> Classifier:
    """Load ``model`` on ``device`` (cpu, edgetpu[:usb|:pci|...], auto).

    ``auto`` uses the Edge TPU for a model compiled for it when one works, otherwise it warns and runs the
    CPU twin beside the file; ``probe=False`` skips the crash-containing Edge TPU probe.
    """
    start = time.perf_counter()
    model_file = model if isinstance(model, ModelFile) else read_model(model)
    spec_device = parse_device(device)
    meta = read_metadata(model_file)
    runtime = runtime or get_runtime()
    selection = select_backend(model_file, spec_device, runtime=runtime, meta=meta, probe=probe)
    if selection.fallback is not None:  # auto: the accelerator failed, its CPU twin runs instead
        return open_classifier(
            selection.fallback, device="cpu", threads=threads, labels=labels, crop=crop, runtime=runtime
        )
    delegates, used = selection.delegates, selection.device

    try:
        interpreter = runtime.interpreter_class(
            model_content=model_file.data, num_threads=threads, experimental_delegates=delegates or None
        )
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        op = _unresolved_custom_op(exc)
        if op == EDGETPU_CUSTOM_OP:
            twin = cpu_twin_path(model_file, meta)
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
        raise ModelInvokeError(f"Cannot prepare {model_file.path}: {_first_line(exc)}") from exc

    label_list = read_labels_file(labels) if labels else meta.labels
    classes = int(np.prod(interpreter.get_output_details()[0]["shape"]))
    source = f"Labels file {labels}" if labels else f"The labels embedded in {model_file.path}"
    label_list = check_labels(label_list, classes, source=source, user_file=bool(labels))
    details = interpreter.get_input_details()
    if len(details) != 1:
        raise ModelError(
            f"{model_file.path} has {len(details)} inputs; edgecnn classifies single-input models."
        )
    spec = InputSpec.from_details(details[0], meta, crop=crop)
    out = interpreter.get_output_details()
    if np.dtype(out[0]["dtype"]).name not in ("uint8", "int8", "float32", "int16"):
        raise ModelError(f"Unsupported output dtype {np.dtype(out[0]['dtype']).name} in {model_file.path}.")
    load_ms = (time.perf_counter() - start) * 1e3
    return Classifier(
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
    )
