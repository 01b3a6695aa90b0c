"""Which detection belongs to which track: box overlap as the cost, the optimal one-to-one assignment.

The assignment is :func:`lap.lapjv` (Jonker-Volgenant, BSD, needs only NumPy; the solver ByteTrack
itself uses), with ``cost_limit`` so that a pair costing more than the threshold is never forced
together. See docs/tracking.md for why ``lap`` and not SciPy.
"""

from __future__ import annotations

import numpy as np

NO_MATCH = 1e6  # cost of a pair that must never be matched (different labels)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` intersection over union of two sets of corner boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a, bt = a[:, :, None], b.T[None, :, :]  # (N, 4, 1) against (1, 4, M)
    w = np.minimum(a[:, 2], bt[:, 2]) - np.maximum(a[:, 0], bt[:, 0])
    h = np.minimum(a[:, 3], bt[:, 3]) - np.maximum(a[:, 1], bt[:, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (bt[:, 2] - bt[:, 0]) * (bt[:, 3] - bt[:, 1])
    union = area_a + area_b - inter
    return inter / np.maximum(union, 1e-9)


def expand(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Corner boxes grown by ``margin`` times their width and height on every side (C-BIoU's buffered
    boxes: overlap survives motion of up to about a box size per frame)."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] - margin * wh, boxes[:, 2:] + margin * wh], axis=1)


def assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal pairs (row, column) costing at most ``limit``, and the rows and columns left unmatched."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    import lap  # imported here: a run with tracking off never loads it

    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    rows_to, cols_to = x.tolist(), y.tolist()  # Python ints: iterating NumPy scalars is slow
    pairs = [(i, j) for i, j in enumerate(rows_to) if j >= 0]
    return pairs, [i for i, j in enumerate(rows_to) if j < 0], [j for j, i in enumerate(cols_to) if i < 0]
