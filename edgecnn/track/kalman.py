"""A constant-velocity Kalman filter on box centre and size, batched over every track of a frame.

The state of one track is four independent (position, velocity) pairs, one per box coordinate
(centre x, centre y, width, height). With diagonal process and measurement noise, as SORT and ByteTrack
use, the 8x8 filter splits exactly into four 2x2 filters, so a track's whole state fits in a ``(5, 4)``
array: rows ``pos``, ``vel`` and the covariance terms ``p00``, ``p01``, ``p11`` (symmetric), one column
per coordinate. A frame's tracks stack into ``(N, 5, 4)`` and predict/update are a handful of
element-wise NumPy operations whatever N is, where a Python loop over 8x8 matrices costs a millisecond.

At a frame's 20 tracks NumPy's cost is per call, and a call on a strided view costs two to four times one
on a contiguous block. So the functions work on the quantities (``state.transpose(1, 0, 2)``: pos, vel,
...), and :func:`stack` lays states out with that order in memory: ``(N, 5, 4)`` to index, ``(5, N, 4)``
underneath, every quantity one contiguous ``(N, 4)`` block. Any ``(N, 5, 4)`` array works, only slower.

Time is in seconds, not frames: ``dt`` is the measured interval between the frames' timestamps, so the
same filter serves a Pi at 4 fps and a desktop at 30 (Ultralytics' and ByteTrack's filters step once per
frame and so assume the rate they were tuned at). Noise scales with the box size, so near and far
objects are filtered alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POS, VEL, P00, P01, P11 = range(5)

# Tuned on benchmarks/tracking.py. Units: box sizes (mean of width and height) and seconds.
ACCEL_NOISE = 2.0  # random acceleration, sizes per second squared (a walker turning, a car braking)
POS_NOISE = 0.3  # random position walk, sizes per square root of a second (boxes that breathe)
MEASURE_NOISE = 0.05  # detector box jitter, in sizes (ByteTrack's 1/20 of the height)
INIT_VEL_STD = 2.0  # velocity uncertainty of a new track, sizes per second


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners to centres and sizes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(boxes)  # written in place: a frame calls these a few times, concatenate costs more
    wh = np.subtract(boxes[:, 2:], boxes[:, :2], out=out[:, 2:])
    np.add(boxes[:, :2], wh / 2, out=out[:, :2])
    return out


# Corners from a centre and a size, as centre + (-1/2, +1/2) x size: halving is exact, so this is
# centre - size / 2 and centre + size / 2 to the bit, in two NumPy calls instead of four.
_HALVES = np.array([[-0.5], [0.5]])


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centres and sizes to corners."""
    pairs = boxes.reshape(-1, 2, 2)  # (centre x, y), (width, height)
    return (pairs[:, :1] + _HALVES * pairs[:, 1:]).reshape(-1, 4)


def _size(measure: np.ndarray) -> np.ndarray:
    """``(N,)`` noise scale: the mean of width and height, never below one pixel."""
    return np.maximum((measure[..., 2] + measure[..., 3]) * 0.5, 1.0)


def initiate(measure: np.ndarray) -> np.ndarray:
    """New states ``(N, 5, 4)`` at the measured ``(N, 4)`` centre/size boxes, standing still."""
    n = len(measure)
    size = _size(measure)[:, None]
    state = np.zeros((n, 5, 4))
    state[:, POS] = measure
    state[:, P00] = (2 * MEASURE_NOISE * size) ** 2
    state[:, P11] = (INIT_VEL_STD * size) ** 2
    return state


def initiate_box(box: np.ndarray) -> np.ndarray:
    """The new state ``(5, 4)`` of one track at the corner box ``box``: what ``initiate(xyxy_to_cxcywh(box))``
    gives, operation for operation in Python floats (so to the bit), without a dozen NumPy calls on one
    box (the tracker starts tracks one at a time)."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64).reshape(4).tolist()
    w, h = x2 - x1, y2 - y1
    cx, cy = x1 + w / 2, y1 + h / 2
    size = (w + h) * 0.5
    size = size if not size < 1.0 else 1.0  # np.maximum(size, 1.0), NaN included
    p00, p11 = 2 * MEASURE_NOISE * size, INIT_VEL_STD * size
    p00, p11 = p00 * p00, p11 * p11
    return np.array([[cx, cy, w, h], [0.0] * 4, [p00] * 4, [0.0] * 4, [p11] * 4])


def stack(states: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 5, 4)`` states from ``N`` ``(5, 4)`` ones, laid out quantity by quantity (see the module)."""
    if not states:
        return np.zeros((5, 0, 4)).transpose(1, 0, 2)
    return np.ascontiguousarray(np.array(states).transpose(1, 0, 2)).transpose(1, 0, 2)


def take(state: np.ndarray, rows: list[int]) -> np.ndarray:
    """The ``rows`` of ``(N, 5, 4)`` states, a copy laid out as :func:`stack` does (``take``: indexing the
    middle axis with a list would lay the copy out track by track)."""
    return state.transpose(1, 0, 2).take(rows, axis=1).transpose(1, 0, 2)


# The lower bound of a box after a prediction: sizes never below one pixel, centres anywhere.
_FLOOR = np.array([-np.inf, -np.inf, 1.0, 1.0])


def predict(state: np.ndarray, dt: float) -> np.ndarray:
    """States ``dt`` seconds later, computed in place in ``state`` (pass a copy to keep the old one) and
    returned. Sizes never go below one pixel.

    The three covariance terms move together, as one ``(3, N, 4)`` block per operation; each element is
    computed in the order of the textbook form (``p00 += 2 dt p01 + dt^2 p11 + q a``, ``p01 += dt p11 +
    q b``, ``p11 += q c``; the zero coefficients add exact zeros), so the result is the same to the bit."""
    m = state.transpose(1, 0, 2)  # (5, N, 4): pos, vel, p00, p01, p11
    size = _size(m[POS])
    q = (size * size)[:, None]  # noise variances scale with the box size squared
    # Continuous white-noise acceleration (the standard constant-velocity model) plus a position walk.
    accel = ACCEL_NOISE**2
    coef = np.array(
        [
            [2 * dt, 0.0, 0.0],  # times p01, for p00, p01, p11
            [dt * dt, dt, 0.0],  # times p11
            [accel * dt**3 / 3 + (POS_NOISE**2) * dt, accel * dt**2 / 2, accel * dt],  # times q
        ]
    )[:, :, None, None]
    change = coef[0] * m[P01]
    change += coef[1] * m[P11]
    change += coef[2] * q
    m[P00:] += change
    pos = m[POS]
    pos += m[VEL] * dt
    np.maximum(pos, _FLOOR, out=pos)
    return state


def update(state: np.ndarray, measure: np.ndarray) -> np.ndarray:
    """States ``(N, 5, 4)`` corrected by the matched measurements ``(N, 4)``, in place, and returned.

    The gains of position and velocity (``k0 = p00 / s``, ``k1 = p01 / s``) and what they change are
    ``(2, N, 4)`` blocks, one operation each."""
    m = state.transpose(1, 0, 2)
    size = _size(measure)[:, None]
    s = m[P00] + (MEASURE_NOISE * MEASURE_NOISE) * size * size
    gain = m[P00:P11] / s  # k0, k1
    innovation = measure - m[POS]
    m[POS:P00] += gain * innovation  # pos += k0 (z - pos), vel += k1 (z - pos)
    m[P11] -= gain[1] * m[P01]
    m[P00:P11] *= 1 - gain[0]  # p00, p01 times (1 - k0)
    return state


def boxes(state: np.ndarray) -> np.ndarray:
    """The states' boxes as ``(N, 4)`` corners."""
    return cxcywh_to_xyxy(state[:, POS])
