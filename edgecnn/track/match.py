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
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal pairs (row, column) costing at most ``limit``, and the rows and columns left unmatched."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    import lap  # imported here: a run with tracking off never loads it

    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    pairs = [(i, int(j)) for i, j in enumerate(x) if j >= 0]
    return pairs, [i for i, j in enumerate(x) if j < 0], [j for j, i in enumerate(y) if i < 0]
