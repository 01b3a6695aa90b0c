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

from tests.detectors import _COLOURS, CLASSES, draw

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


def _background(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 150, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (3, 3), 0)


def _mask(label: int, x1: int, y1: int, size: int, width: int, height: int) -> tuple[np.ndarray, int]:
    """The shape's pixels inside a ``width x height`` frame, and its whole area (as if nothing cut it)."""
    pad = size  # drawn on a frame grown by a shape's size each side, so the cut-off pixels are counted too
    canvas = np.zeros((height + 2 * pad, width + 2 * pad), np.uint8)
    draw(canvas, label, x1 + pad, y1 + pad, size, (255,))
    whole = canvas > 127
    return whole[pad : pad + height, pad : pad + width], int(whole.sum())


def visible_boxes(
    shapes: list[tuple[int, int, int, int]],
    occluders: list[tuple[int, int, int, int]] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
    min_visible: float = 0.5,
) -> list[tuple[float, float, float, float] | None]:
    """Per shape (label, x1, y1, size), drawn in this order (a later one covers an earlier one): the box of
    its pixels a camera sees (inside the frame, not under a later shape, not behind an occluder), or None
    when fewer than ``min_visible`` of its pixels are seen.

    This is the truth a detector can be held to: what it cannot see it cannot find, and what it sees of a
    shape cut by the frame edge, half under another or behind a pillar is the box it can draw."""
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in occluders:
        covered[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
    found: list[tuple[float, float, float, float] | None] = []
    for label, x1, y1, size in reversed(shapes):  # the last drawn is seen whole
        mask, area = _mask(label, x1, y1, size, width, height)
        seen = mask & ~covered
        covered |= mask
        if area == 0 or seen.sum() < min_visible * area:
            found.append(None)
            continue
        ys, xs = np.nonzero(seen)
        found.append((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))
    return found[::-1]


def render(
    movers: list[Mover], t: float, occluders: list[tuple[int, int, int, int]] = (), seed: int = 0
) -> tuple[np.ndarray, list[Truth]]:
    """The frame at ``t`` seconds and the truth: every shape at least half of whose pixels are seen, with
    the box of those pixels (:func:`visible_boxes`)."""
    image = _background(seed)
    background = image.copy()
    shown, shapes = [], []
    for m in movers:
        box = m.box(t)
        if box is None:
            continue
        x1, y1 = round(box[0]), round(box[1])
        draw(image, m.label, x1, y1, m.size, _COLOURS[m.label])
        shown.append(m)
        shapes.append((m.label, x1, y1, m.size))
    for x1, y1, x2, y2 in occluders:
        image[y1:y2, x1:x2] = background[y1:y2, x1:x2]
    truth = [
        Truth(m.ident, CLASSES[m.label], box)
        for m, box in zip(shown, visible_boxes(shapes, occluders), strict=True)
        if box is not None
    ]
    return image, truth


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
