"""What the HTTP endpoints read while the pipeline runs: latest result and frame, health, frame rate.

The pipeline writes, HTTP handler threads read; one lock guards it all and every operation is O(1), so
serving never slows inference. The preview JPEG is encoded on demand by the first stream client that
wants a frame and shared with the others (exactly one encode per frame: the others wait for it), so nobody
pays for encoding when nobody watches and five viewers cost what one does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edgecnn.run.results import FrameResult

FPS_WINDOW_S = 5.0


def render_preview(image: np.ndarray, result: FrameResult | None, quality: int = 80) -> bytes:
    """JPEG of ``image`` with the top label and score drawn in a bar across the top."""
    frame = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
    if result is not None:
        text = f"{result.top.label}  {result.top.score:.2f}"
        _h, w = frame.shape[:2]
        scale = max(0.5, w / 800)
        thickness = max(1, round(scale * 2))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(frame, (0, 0), (min(w, tw + 16), th + base + 12), (0, 0, 0), -1)
        cv2.putText(
            frame, text, (8, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), thickness, cv2.LINE_AA
        )
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - imencode fails only on invalid arrays
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


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
        self._jpeg: tuple[int, bytes] | None = None
        self._encoding = threading.Lock()  # one encode per frame, however many viewers ask at once
        self._last_frame: float | None = None
        self._times: deque[float] = deque(maxlen=1000)
        self.frames = 0
        self.reconnects = 0
        self.dropped = 0
        self.closed = False

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
        return status == "ok", body

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            result = self._result
        if result is None:
            return None
        data = result.to_dict()
        data["source"] = self.source
        data["summary"] = result.summary()  # the page's one line; each result type says what it is
        return data

    def wait_preview(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """Wait for a frame newer than sequence number ``after``; return (seq, jpeg) or None on timeout/close."""
        with self._lock:
            if self._seq <= after and not self.closed:
                self._lock.wait(timeout)
            if self.closed or self._seq <= after or self._image is None:
                return None
            seq, image, result = self._seq, self._image, self._result
            cached = self._jpeg
        if cached is not None and cached[0] >= seq:
            return cached
        with self._encoding:  # the first viewer encodes; the others wait here and take its JPEG
            with self._lock:
                cached = self._jpeg
            if cached is not None and cached[0] >= seq:
                return cached
            jpeg = (seq, render_preview(image, result))
            with self._lock:
                if self._jpeg is None or self._jpeg[0] < seq:
                    self._jpeg = jpeg
        return jpeg
