"""Videos with known trajectories for tracking: the shapes of tests/detectors.py moving across a frame.

Shared by the tracking tests (tests/test_run_track.py) and ``benchmarks/tracking.py``. Each scene is a list
of :class:`Mover` (a shape moving in a straight line at constant speed for a while) and optional occluders
(background-coloured pillars the shapes pass behind). :func:`render` draws the frame at a time and returns
the truth: every shape at least half visible, with its identity and box.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tests.detectors import _COLOURS, CLASSES

WIDTH, HEIGHT = 160, 120  # letterboxed to 96x72 by the detectors: shapes shrink to 0.6x


@dataclass(frozen=True)
class Mover:
    ident: int  # the true identity
    label: int  # index in CLASSES
    size: int  # pixels
    start: tuple[float, float]  # top-left at t0
    velocity: tuple[float, float]  # pixels per second
    t0: float = 0.0
    t1: float = 1e9

    def box(self, t: float) -> tuple[float, float, float, float] | None:
        if not self.t0 <= t <= self.t1:
            return None
        x = self.start[0] + self.velocity[0] * (t - self.t0)
        y = self.start[1] + self.velocity[1] * (t - self.t0)
        return (x, y, x + self.size, y + self.size)


@dataclass(frozen=True)
class Truth:
    ident: int
    label: str
    box: tuple[float, float, float, float]


def _background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 150, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (3, 3), 0)


def render(
    movers: list[Mover], t: float, occluders: list[tuple[int, int, int, int]] = (), seed: int = 0
) -> tuple[np.ndarray, list[Truth]]:
    """The frame at ``t`` seconds and the truth (shapes inside the frame and at least half visible)."""
    image = _background(seed)
    background = image.copy()
    truth = []
    for m in movers:
        box = m.box(t)
        if box is None:
            continue
        x1, y1 = round(box[0]), round(box[1])
        x2, y2, size = x1 + m.size, y1 + m.size, m.size
        colour = _COLOURS[m.label]
        if m.label == 0:
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
        elif m.label == 1:
            cv2.circle(image, (x1 + size // 2, y1 + size // 2), size // 2, colour, -1, cv2.LINE_AA)
        else:
            pts = np.array([[x1 + size // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=np.int32)
            cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
        visible = _visible(box, occluders)
        inside = max(0.0, min(box[2], WIDTH) - max(box[0], 0)) * max(
            0.0, min(box[3], HEIGHT) - max(box[1], 0)
        )
        if visible >= 0.5 and inside >= 0.75 * m.size * m.size:
            truth.append(Truth(m.ident, CLASSES[m.label], (float(x1), float(y1), float(x2), float(y2))))
    for x1, y1, x2, y2 in occluders:
        image[y1:y2, x1:x2] = background[y1:y2, x1:x2]
    return image, truth


def _visible(box: tuple[float, float, float, float], occluders: list[tuple[int, int, int, int]]) -> float:
    area = (box[2] - box[0]) * (box[3] - box[1])
    hidden = 0.0
    for x1, y1, x2, y2 in occluders:
        hidden += max(0.0, min(box[2], x2) - max(box[0], x1)) * max(0.0, min(box[3], y2) - max(box[1], y1))
    return 1.0 - hidden / area


def crossing_scene() -> tuple[list[Mover], list[tuple[int, int, int, int]]]:
    """Six shapes over 6 s: three cross the middle left to right, one right to left, two cross paths
    (different shapes), one passes behind a pillar; all cross the vertical middle line once."""
    movers = [
        Mover(1, 0, 26, (-30, 10), (45, 0), 0.0, 5.5),  # square, left to right, top
        Mover(2, 1, 28, (170, 45), (-40, 0), 0.5, 6.0),  # circle, right to left
        Mover(3, 2, 28, (-30, 50), (45, 0), 0.8, 6.0),  # triangle, crosses the circle's path
        Mover(4, 0, 26, (-30, 84), (40, 0), 1.5, 6.0),  # square, bottom, behind the pillar
    ]
    occluders = [(100, 80, 112, 120)]  # a pillar on the right, lower third
    return movers, occluders


def frames_of(
    movers: list[Mover], occluders: list[tuple[int, int, int, int]], fps: float, seconds: float, seed: int = 0
) -> tuple[list[np.ndarray], list[list[Truth]]]:
    frames, truths = [], []
    for i in range(round(seconds * fps)):
        image, truth = render(movers, i / fps, occluders, seed)
        frames.append(image)
        truths.append(truth)
    return frames, truths
