"""What the HTTP endpoints read while the pipeline runs: latest result and frame, health, frame rate.

The pipeline writes, HTTP handler threads read; one lock guards it all and every operation is O(1), so
serving never slows inference. The preview JPEG is encoded on demand by the first stream client that
wants a frame and shared with all of them (one encoder thread, one encode per frame), so nobody pays for
encoding when nobody watches and five viewers cost what one does.

Each preview carries the caption of the result drawn on it (:func:`caption`), taken from the same
(frame, result) pair in the same step, so the page's text can never describe another frame than its
picture.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edgecnn.run.results import FrameResult

FPS_WINDOW_S = 5.0
EVENTS_KEPT = 100  # /events: the newest events, oldest first


def render_preview(
    image: np.ndarray, result: FrameResult | None, quality: int = 80, canvas: np.ndarray | None = None
) -> bytes:
    """JPEG of ``image`` with the result drawn by its task (a label bar, boxes and labels).

    The drawing needs a BGR copy (the frame itself belongs to the pipeline); ``canvas``, when it has the
    frame's shape, is that copy's memory, so an encoder reusing one canvas allocates no frame per JPEG.
    """
    frame = bgr_canvas(image, canvas)
    if image.ndim == 2:
        cv2.cvtColor(image, cv2.COLOR_GRAY2BGR, dst=frame)
    else:
        np.copyto(frame, image[:, :, :3])
    if result is not None:
        result.output.draw(frame)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - imencode fails only on invalid arrays
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def caption(result: FrameResult | None) -> str:
    """What the preview page writes under a frame, as one line of ASCII JSON (an HTTP header value):
    the frame's numbers and the task's full result line (every top-k class; the objects), "" for none."""
    if result is None:
        return ""
    text = {"n": result.n, "frame": result.frame, "text": result.output.line(), "summary": result.summary()}
    return json.dumps(text, ensure_ascii=True, separators=(",", ":"))


def bgr_canvas(image: np.ndarray, canvas: np.ndarray | None) -> np.ndarray:
    """``canvas`` if it can hold a BGR copy of ``image``, else a new array that can."""
    shape = (*image.shape[:2], 3)
    return canvas if canvas is not None and canvas.shape == shape else np.empty(shape, np.uint8)


class LiveState:
    """Shared state of a running pipeline. ``clock`` is the pipeline's clock (monotonic seconds)."""

    def __init__(
        self,
        *,
        source: str,
        stall_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        model: str = "",
        device: str = "",
    ) -> None:
        self.source = source
        self.model, self.device = model, device  # shown by /healthz and the preview page
        self.stall_timeout = stall_timeout
        self.clock = clock
        self._lock = threading.Condition()
        self._status = "starting"
        self._detail = ""
        self._result: FrameResult | None = None
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes, str] | None = None  # (seq, JPEG, caption of the result drawn on it)
        self._encoder: threading.Thread | None = None  # encodes previews while viewers wait
        self._waiting = 0  # viewers waiting for a newer JPEG
        self._last_frame: float | None = None
        self._times: deque[float] = deque(maxlen=1000)
        self.frames = 0
        self.reconnects = 0
        self.dropped = 0
        self.closed = False
        self.health_extras: dict[str, Callable[[], Any]] = {}  # more /healthz keys (clips: recording or not)
        self._events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)

    def publish(self, image: np.ndarray, result: FrameResult) -> None:
        now = self.clock()
        with self._lock:
            self._result, self._image = result, image
            self._seq += 1
            self._last_frame = now
            self._times.append(now)
            self._status, self._detail = "ok", ""
            self.frames = result.n
            self._lock.notify_all()

    def set_status(self, status: str, detail: str = "") -> None:
        with self._lock:
            self._status, self._detail = status, detail
            self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._status = "stopping"
            self._lock.notify_all()

    def fps(self) -> float:
        with self._lock:
            now = self.clock()
            recent = [t for t in self._times if now - t <= FPS_WINDOW_S]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body): healthy while frames flow, i.e. the last one is younger than the stall timeout."""
        with self._lock:
            now = self.clock()
            age = None if self._last_frame is None else now - self._last_frame
            status = self._status
            if status == "ok" and (age is None or age > self.stall_timeout):
                status = "stalled"
            body: dict[str, Any] = {
                "status": status,
                "source": self.source,
                "model": self.model,
                "device": self.device,
                "last_frame_age_s": None if age is None else round(age, 3),
                "frames": self.frames,
                "dropped": self.dropped,
                "reconnects": self.reconnects,
            }
            if self._detail:
                body["detail"] = self._detail
        body["fps"] = round(self.fps(), 2)
        for key, extra in self.health_extras.items():
            body[key] = extra()
        return status == "ok", body

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            result = self._result
        if result is None:
            return None
        data = result.to_dict()  # carries "summary", the task's one-line text
        data["line"] = result.output.line()  # the full result (every top-k class), as run prints it
        data["source"] = self.source
        return data

    def track_step(self, step: Any, stage: Any) -> None:
        """A listener of the track stage (edgecnn.track): keep the newest events for ``/events``."""
        if step.events:
            records = [e.to_json() for e in step.events]
            with self._lock:
                self._events.extend(records)

    def events(self, limit: int = EVENTS_KEPT) -> list[dict[str, Any]]:
        """The newest ``limit`` events, oldest first (``/events``)."""
        with self._lock:
            kept = list(self._events)
        return kept[-limit:] if limit > 0 else []

    def wait_preview(self, after: int, timeout: float) -> tuple[int, bytes, str] | None:
        """Wait for a JPEG of a frame newer than sequence number ``after``: (seq, jpeg, caption of the
        result drawn on it), or None on timeout or close. Viewers only wait; one encoder thread (started by the first viewer) encodes each frame
        once, and only while someone waits, so N viewers cost one encode and one thread's buffers."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._encoder is None and not self.closed:
                self._encoder = threading.Thread(target=self._encode_loop, name="preview-jpeg", daemon=True)
                self._encoder.start()
            self._waiting += 1
            try:
                while not self.closed and (self._jpeg is None or self._jpeg[0] <= after):
                    self._lock.notify_all()  # wake the encoder: someone wants a frame
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._lock.wait(left)
                return None if self.closed else self._jpeg
            finally:
                self._waiting -= 1

    def _encode_loop(self) -> None:
        encoded = 0
        canvas: np.ndarray | None = None  # the BGR copy drawn on, reused while the frame size stays
        while True:
            with self._lock:
                while not self.closed and not (
                    self._waiting and self._seq > encoded and self._image is not None
                ):
                    self._lock.wait(1.0)
                if self.closed:
                    return
                seq, image, result = self._seq, self._image, self._result
            assert image is not None
            canvas = bgr_canvas(image, canvas)
            jpeg = render_preview(image, result, canvas=canvas)
            encoded = seq
            with self._lock:
                self._jpeg = (seq, jpeg, caption(result))
                self._lock.notify_all()
