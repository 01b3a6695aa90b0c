"""A constant-velocity Kalman filter on box centre and size, batched over every track of a frame.

The state of one track is four independent (position, velocity) pairs, one per box coordinate
(centre x, centre y, width, height). With diagonal process and measurement noise, as SORT and ByteTrack
use, the 8x8 filter splits exactly into four 2x2 filters, so a track's whole state fits in a ``(5, 4)``
array: rows ``pos``, ``vel`` and the covariance terms ``p00``, ``p01``, ``p11`` (symmetric), one column
per coordinate. A frame's tracks stack into ``(N, 5, 4)`` and predict/update are a handful of
element-wise NumPy operations whatever N is: about 20 µs for 20 tracks, where a Python loop over 8x8
matrices costs a millisecond.

Time is in seconds, not frames: ``dt`` is the measured interval between the frames' timestamps, so the
same filter serves a Pi at 4 fps and a desktop at 30 (Ultralytics' and ByteTrack's filters step once per
frame and so assume the rate they were tuned at). Noise scales with the box size, so near and far
objects are filtered alike.
"""

from __future__ import annotations

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
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + wh / 2, wh], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


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


def predict(state: np.ndarray, dt: float) -> np.ndarray:
    """States ``dt`` seconds later, computed in place in ``state`` (pass a copy to keep the old one) and
    returned. Sizes never go below one pixel."""
    size = _size(state[:, POS])[:, None]
    q = size * size  # noise variances scale with the box size squared
    pos, vel, p00, p01, p11 = (state[:, k] for k in range(5))
    pos += vel * dt
    # Continuous white-noise acceleration (the standard constant-velocity model) plus a position walk.
    p00 += (2 * dt) * p01 + (dt * dt) * p11 + q * ((ACCEL_NOISE**2) * dt**3 / 3 + (POS_NOISE**2) * dt)
    p01 += dt * p11 + q * ((ACCEL_NOISE**2) * dt**2 / 2)
    p11 += q * ((ACCEL_NOISE**2) * dt)
    np.maximum(pos[:, 2:], 1.0, out=pos[:, 2:])
    return state


def update(state: np.ndarray, measure: np.ndarray) -> np.ndarray:
    """States ``(N, 5, 4)`` corrected by the matched measurements ``(N, 4)``, in place, and returned."""
    size = _size(measure)[:, None]
    pos, vel, p00, p01, p11 = (state[:, k] for k in range(5))
    s = p00 + (MEASURE_NOISE * MEASURE_NOISE) * size * size
    k0, k1 = p00 / s, p01 / s
    innovation = measure - pos
    pos += k0 * innovation
    vel += k1 * innovation
    p11 -= k1 * p01
    scale = 1 - k0
    p00 *= scale
    p01 *= scale
    return state


def boxes(state: np.ndarray) -> np.ndarray:
    """The states' boxes as ``(N, 4)`` corners."""
    return cxcywh_to_xyxy(state[:, POS])
