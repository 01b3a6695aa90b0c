"""Generated frames for demos and tests without a camera: ``--source demo`` (alias ``synthetic:digits``).

Each frame shows one large white digit centred on black, the digit changing every ``hold`` frames, so a
digits model has something to classify and the preview stream shows a changing label.
:func:`digit_frame` and :func:`write_video` turn real (held-out) digit images into a camera-sized video
file, for ``edgecnn demo`` and the tests.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import InputError


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


def digit_frame(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """A BGR frame with a small grey digit image (e.g. 28x28) scaled to the full height and centred.

    White ink on black, like the training digits: a digits model classifies it after ``--crop center``.
    """
    gray = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    side = min(width, height)
    big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_LINEAR)
    frame = np.zeros((height, width), np.uint8)
    x, y = (width - side) // 2, (height - side) // 2
    frame[y : y + side, x : x + side] = big
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def write_video(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """Write ``frames`` (BGR or gray, all one size) as MJPG in an .avi, atomically; return the path.

    MJPG/.avi is the combination OpenCV's bundled FFmpeg writes and reads back everywhere. The file is
    written under a temporary name beside ``path`` and renamed, so a reader never sees half a video.
    """
    target = Path(path)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise InputError(f"No frames to write to {target}: pass at least one frame.")
    h, w = first.shape[:2]
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix or ".avi", dir=target.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
        if not writer.isOpened():
            raise InputError(
                f"OpenCV cannot write an MJPG video to {target}: check the folder is writable and the "
                "name ends in .avi."
            )
        try:
            for frame in itertools.chain([first], it):
                writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        finally:
            writer.release()
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a video is as readable as any file we write
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


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
