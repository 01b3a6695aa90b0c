"""One model, several cameras: a shared inference worker with fair round-robin, one frame per camera.

An Edge TPU (and a CPU interpreter) runs one inference at a time and can be opened by one process, so a
multi-camera run opens the model once and every camera's loop hands its preprocessed frame to
:class:`InferenceScheduler`. Each camera keeps its own loop, source, reconnect, outputs and clips exactly
as a one-camera run: it holds a :class:`SharedModel`, a :class:`~edgecnn.model.Model` whose
:meth:`~SharedModel.process` preprocesses in the camera's thread and queues only ``invoke()`` and the
decode for the worker (Frigate's ``RemoteObjectDetector`` idea: the camera code does not know it shares).

Fairness and freshness come from the shape of the queue: a camera has at most one frame waiting (its loop
blocks until the result is back, and a live source meanwhile keeps only its newest frame, dropping and
counting the rest), and the worker serves the waiting cameras in a fixed rotation, so with N cameras
each waits for at most N-1 inferences and a busy camera cannot starve the others. A slow model therefore
drops frames at the sources and never builds a backlog.

The TFLite runtimes release the GIL in ``invoke()``, and OpenCV in resize, so preprocessing of one camera
overlaps the inference of another on a multi-core CPU; threads suffice.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.model import Inference, Model
from edgecnn.preprocess import Transform, prepare


class SchedulerClosed(EdgecnnError):
    """The shared model was closed while a camera still asked for an inference (the run is ending)."""


@dataclass
class _Request:
    tensor: np.ndarray
    decode: Callable[[Any, Transform], Any]
    transform: Transform
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0


class InferenceScheduler:
    """Runs ``model``'s interpreter for every camera from one worker thread, round-robin."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._cond = threading.Condition()
        self._pending: dict[str, _Request] = {}
        self._order: list[str] = []
        self._next = 0
        self._closed = False
        self.served: dict[str, int] = {}  # inferences per camera (fairness, in the benchmark)
        self.busy_s = 0.0  # time the worker spent in invoke + decode
        self._thread = threading.Thread(target=self._work, name="inference", daemon=True)
        self._thread.start()

    def register(self, camera: str) -> None:
        with self._cond:
            if camera not in self._order:
                self._order.append(camera)
                self.served[camera] = 0

    def infer(
        self, camera: str, tensor: np.ndarray, decode: Callable[[Any, Transform], Any], transform: Transform
    ) -> _Request:
        """Queue ``camera``'s frame and wait for it: the request with its result (or error) and timings."""
        request = _Request(tensor, decode, transform)
        with self._cond:
            if self._closed:
                raise SchedulerClosed("the shared model is closed: the run is stopping")
            if camera not in self._order:
                self._order.append(camera)
                self.served[camera] = 0
            self._pending[camera] = request  # one per camera: its loop waits for this one
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _pick(self) -> str:
        """The next camera in rotation after the last one served that has a frame waiting."""
        count = len(self._order)
        for step in range(count):
            i = (self._next + step) % count
            camera = self._order[i]
            if camera in self._pending:
                self._next = (i + 1) % count
                return camera
        raise AssertionError("no pending camera")  # pragma: no cover - called only with one pending

    def _work(self) -> None:
        model = self.model
        while True:
            with self._cond:
                while not self._closed and not self._pending:
                    self._cond.wait()
                if not self._pending:
                    return
                camera = self._pick()
                request = self._pending.pop(camera)
            t0 = time.perf_counter()
            try:
                model.invoke(request.tensor)
                t1 = time.perf_counter()
                request.result = request.decode(model.interpreter, request.transform)
                t2 = time.perf_counter()
                request.inference_ms, request.postprocess_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3
            except BaseException as exc:  # handed to the camera's loop, which decides (InvalidResult, ...)
                request.error = exc
            self.busy_s += time.perf_counter() - t0
            self.served[camera] += 1
            request.done.set()
            if self._closed:
                with self._cond:  # wake whoever still waits: the run is ending
                    for other in self._pending.values():
                        other.error = SchedulerClosed("the shared model is closed: the run is stopping")
                        other.done.set()
                    self._pending.clear()


@dataclass
class SharedModel(Model):
    """A camera's view of a shared model: the same :class:`Model` (its interpreter, labels, input spec),
    its own decoder (the camera's ``min_score``/``classes``), and ``process`` through the scheduler."""

    scheduler: InferenceScheduler = field(default=None, repr=False)  # type: ignore[assignment]
    camera: str = ""

    @classmethod
    def of(cls, model: Model, scheduler: InferenceScheduler, camera: str, decoder: Any) -> SharedModel:
        values = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
        values["decoder"] = decoder
        scheduler.register(camera)
        return cls(**values, scheduler=scheduler, camera=camera)

    def process(self, frame_bgr: np.ndarray) -> Inference:
        t0 = time.perf_counter()
        tensor, transform = prepare(frame_bgr, self.spec)
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        done = self.scheduler.infer(self.camera, tensor, self.decoder.decode, transform)
        return Inference(done.result, transform, preprocess_ms, done.inference_ms, done.postprocess_ms)
