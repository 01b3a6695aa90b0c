"""Generated frames for demos and tests without a camera: ``--source demo`` (alias ``synthetic:digits``).

Each frame shows one large white digit centred on black, the digit changing every ``hold`` frames, so a
digits model has something to classify and the preview stream shows a changing label.
"""

from __future__ import annotations

import cv2
import numpy as np


def render_digit(digit: int, width: int, height: int) -> np.ndarray:
    """A BGR frame with ``digit`` drawn large and centred, white on black."""
    frame = np.zeros((height, width, 3), np.uint8)
    text = str(digit)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = height / 50.0
    thickness = max(2, height // 25)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = ((width - tw) // 2, (height + th) // 2)
    cv2.putText(frame, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return frame


class DigitsGrabber:
    """An endless live source; pacing to ``fps`` is done by the capture thread."""

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, hold: int = 30) -> None:
        self.width, self.height, self._fps, self.hold = width, height, fps, hold
        self.count = 0
        self._cache: dict[int, np.ndarray] = {}

    @property
    def fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        self.count = 0

    def grab(self) -> np.ndarray | None:
        digit = (self.count // self.hold) % 10
        self.count += 1
        if digit not in self._cache:
            self._cache[digit] = render_digit(digit, self.width, self.height)
        return self._cache[digit].copy()  # each frame is a new array, like a camera's

    def close(self) -> None:
        self._cache.clear()
