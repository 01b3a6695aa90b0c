"""Lines and zones in pixels of one frame size, and the two questions asked of them every frame, for every
object at once: which side of a line is a point on (and how far), is a point inside a polygon.

A spec in fractions (:mod:`edgecnn.track.spec`) becomes pixels when the first frame's size is known
(:func:`resolve_line`, :func:`resolve_zone`); a source whose size changes (a reconnect at another
resolution) is resolved again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgecnn.track.spec import ANCHORS, LineSpec, ZoneSpec

_FRACTIONS = {name: np.array(fractions) for name, fractions in ANCHORS.items()}  # (fx, fy) arrays


def anchor_points(boxes: np.ndarray, anchor: str) -> np.ndarray:
    """``(N, 2)`` points of ``(N, 4)`` corner boxes: the anchor's place on each box."""
    corners = boxes.reshape(-1, 2, 2)  # (x1, y1), (x2, y2): both axes in each NumPy call
    return corners[:, 0] + _FRACTIONS[anchor] * (corners[:, 1] - corners[:, 0])


def _pixels(points: tuple[tuple[float, float], ...], fractions: bool, size: tuple[int, int]) -> np.ndarray:
    array = np.array(points, dtype=np.float64)
    if fractions:
        array *= np.array(size, dtype=np.float64)  # (width, height)
    return array


@dataclass(frozen=True)
class Line:
    spec: LineSpec
    a: np.ndarray  # (2,) first point, pixels
    b: np.ndarray  # (2,) second point
    min_distance: float  # pixels

    @functools.cached_property
    def _direction(self) -> tuple[np.ndarray, float, float, float, float]:
        """(b - a, its x and y as floats, its length, length squared): computed once, used every frame."""
        d = self.b - self.a
        length = float(np.hypot(*d))
        return d, float(d[0]), float(d[1]), length, length * length

    def sides(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance of each point from the line in pixels (> 0: right of a->b as seen on the image,
        which is below a line drawn left to right) and whether the point is level with the segment (its
        projection falls between the two ends), for ``(N, 2)`` points."""
        d, dx, dy, length, length2 = self._direction
        rel = points - self.a
        signed = (dx * rel[:, 1] - dy * rel[:, 0]) / length
        along = (rel @ d) / length2
        return signed, (along >= 0) & (along <= 1)


@dataclass(frozen=True)
class Zone:
    spec: ZoneSpec
    polygon: np.ndarray  # (M, 2) corners, pixels

    @functools.cached_property
    def _edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x1, y1, y2, dx/dy) of the edges that are not horizontal, as column vectors."""
        a, b = self.polygon, np.roll(self.polygon, -1, axis=0)
        keep = a[:, 1] != b[:, 1]
        a, b = a[keep], b[keep]
        slope = (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
        return a[:, :1], a[:, 1:], b[:, 1:], slope[:, None]

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each of ``(N, 2)`` points is inside the polygon (even-odd rule, every edge against
        every point in one array operation)."""
        x1, y1, y2, slope = self._edges
        px, py = points[:, 0], points[:, 1]
        crosses = (y1 > py) != (y2 > py)
        hits = crosses & (px < x1 + (py - y1) * slope)
        return np.count_nonzero(hits, axis=0) % 2 == 1

    @functools.cached_property
    def _edge_list(self) -> tuple[tuple[float, float, float, float], ...]:
        """The edges of :attr:`_edges` as Python floats (x1, y1, y2, dx/dy), for :meth:`inside`."""
        x1, y1, y2, slope = (v[:, 0].tolist() for v in self._edges)
        return tuple(zip(x1, y1, y2, slope, strict=True))

    @functools.cached_property
    def _bounds(self) -> tuple[float, float, float, float]:
        """(x min, y min, x max, y max) of the corners, widened by a millionth of the largest coordinate (a
        rounding error of :meth:`contains` a point beyond the corners can make stays well inside it)."""
        margin = 1e-6 * (1.0 + float(np.abs(self.polygon).max()))
        (x0, y0), (x1, y1) = self.polygon.min(axis=0).tolist(), self.polygon.max(axis=0).tolist()
        return x0 - margin, y0 - margin, x1 + margin, y1 + margin

    def inside(self, xs: list[float], ys: list[float]) -> list[int]:
        """The indices of the points ``(xs[k], ys[k])`` that are inside: :meth:`contains` exactly (the same
        even-odd test, operation by operation), for the few points within the corners' bounding box.

        At a frame's 20 objects and a zone covering a part of it, plain Python over lists is several times
        quicker than the array form: NumPy's cost there is per call, and most points fail the first test."""
        x0, y0, x1, y1 = self._bounds
        edges = self._edge_list
        found = []
        for k, (px, py) in enumerate(zip(xs, ys, strict=True)):
            if not (x0 <= px <= x1 and y0 <= py <= y1):
                continue  # outside the box round the corners, so outside
            odd = False
            for ex, ey1, ey2, slope in edges:
                if (ey1 > py) != (ey2 > py) and px < ex + (py - ey1) * slope:
                    odd = not odd
            if odd:
                found.append(k)
        return found


def resolve_line(spec: LineSpec, size: tuple[int, int]) -> Line:
    """The line in pixels of a ``(width, height)`` frame."""
    a, b = _pixels(spec.points, spec.fractions, size)
    distance = spec.min_distance * min(size) if spec.min_distance <= 1 else spec.min_distance
    return Line(spec, a, b, distance)


def resolve_zone(spec: ZoneSpec, size: tuple[int, int]) -> Zone:
    return Zone(spec, _pixels(spec.points, spec.fractions, size))
