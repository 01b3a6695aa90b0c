"""Generated frames for demos and tests without a camera: ``--source demo`` (alias ``synthetic:digits``).

Each frame shows one handwritten digit filling the frame, the digit changing every ``hold`` frames, so a
digits model has something to classify and the preview stream shows a changing label. The digits come
from ``demo_digits.png`` beside this module: three samples per digit of scikit-learn's 8x8 digits (the
UCI handwritten digits set, CC BY 4.0), the set the seed model learns, written by
``tools/make_demo_digits.py``. Font-rendered digits were tried first: the seed model named only 6 or 7
of 10, which made a working pipeline look broken. Stretching the 8x8 image over the whole frame is what
the default preprocessing (squash to the model's input) undoes exactly.

:func:`digit_frame` and :func:`write_video` turn real (held-out) digit images into a camera-sized video
file, for ``edgecnn demo`` and the tests.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from edgecnn.atomic import atomic_path
from edgecnn.errors import InputError

DEMO_VARIANTS = 3  # handwritten samples per digit in demo_digits.png


@functools.cache
def demo_sprite() -> np.ndarray:
    """The 8x8 digits sheet: 8 px column block per digit, 8 px row block per variant, grey 0..255."""
    data = resources.files("edgecnn.devices.sources").joinpath("demo_digits.png").read_bytes()
    sheet = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if sheet is None or sheet.shape != (8 * DEMO_VARIANTS, 80):
        raise InputError("The demo digits image shipped with edgecnn is damaged: reinstall edgecnn.")
    return sheet


def render_digit(digit: int, width: int, height: int, variant: int = 0) -> np.ndarray:
    """A BGR frame showing handwritten ``digit`` (sample ``variant``) stretched over the whole frame."""
    v = variant % DEMO_VARIANTS
    small = demo_sprite()[8 * v : 8 * v + 8, 8 * digit : 8 * digit + 8]
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


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


MIN_VIDEO_SIDE = 16


def write_video(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """Write ``frames`` (BGR or gray, all one size) as MJPG in an .avi, atomically; return the path.

    MJPG/.avi is the combination OpenCV's bundled FFmpeg writes and reads back everywhere. The file is
    written under a temporary name beside ``path`` and renamed (:func:`~edgecnn.atomic.atomic_path`, 0644),
    so a reader never sees half a video. Sizes OpenCV 5.0's writer mishandles are refused first: frames
    under 16 px a side can corrupt its heap and abort the process (6x8 does), an odd side is silently cut
    to even, and a frame of another size is dropped with only a warning.
    """
    target = Path(path)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise InputError(f"No frames to write to {target}: pass at least one frame.")
    h, w = first.shape[:2]
    _check_video_size(target, w, h)
    with atomic_path(target, suffix=target.suffix or ".avi") as tmp:  # OpenCV picks the container by name
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
        if not writer.isOpened():
            raise InputError(
                f"OpenCV cannot write an MJPG video to {target}: check the folder is writable and the "
                "name ends in .avi."
            )
        try:
            for index, frame in enumerate(itertools.chain([first], it)):
                if frame.shape[:2] != (h, w):
                    raise InputError(
                        f"Frame {index} for {target} is {frame.shape[1]}x{frame.shape[0]}, the first was {w}x{h}: "
                        "a video's frames must all be one size."
                    )
                writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        finally:
            writer.release()
    return target


def _check_video_size(target: Path, width: int, height: int) -> None:
    if width < MIN_VIDEO_SIDE or height < MIN_VIDEO_SIDE or width % 2 or height % 2:
        raise InputError(
            f"Cannot write {width}x{height} frames to {target}: OpenCV's MJPG writer needs an even width and "
            f"height of at least {MIN_VIDEO_SIDE} px (resize or pad the frames)."
        )


class DigitsGrabber:
    """An endless live source cycling 0..9, then the next handwriting variant; pacing to ``fps`` is done
    by the capture thread."""

    origin: str | None = None  # frames come from no file

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, hold: int = 10) -> None:
        self.width, self.height, self._fps, self.hold = width, height, fps, hold
        self.count = 0
        # Only the frame on show: a digit is held for ``hold`` frames, so it is rendered once per digit,
        # and the source never holds more than one frame (a cache of all 30 was 27 MB of a served run).
        self._shown: tuple[tuple[int, int], np.ndarray] | None = None

    @property
    def fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        self.count = 0

    def grab(self) -> np.ndarray | None:
        shown = self.count // self.hold
        key = (shown % 10, (shown // 10) % DEMO_VARIANTS)
        self.count += 1
        if self._shown is None or self._shown[0] != key:
            digit, variant = key
            self._shown = (key, render_digit(digit, self.width, self.height, variant))
        return self._shown[1].copy()  # each frame is a new array, like a camera's

    def close(self) -> None:
        self._shown = None
