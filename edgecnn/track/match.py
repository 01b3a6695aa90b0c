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
    """Optimal pairs (row, column) costing at most ``limit``, and the rows and columns left unmatched.

    Two shortcuts, both exact: a row or column with no pair within ``limit`` is unmatched in every optimal
    assignment (matching it costs more than leaving it), so only the rows and columns with candidates go
    to the solver (a frame's lost tracks and far-away detections never do); and when no row or column has
    two candidates (objects apart, the usual frame) each candidate pair is the assignment, with no solver.
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    near = cost <= limit
    per_row, per_col = near.sum(axis=1), near.sum(axis=0)
    if per_row.max() <= 1 and per_col.max() <= 1 and not (cost == limit).any():
        found_rows, found_cols = np.nonzero(near)  # row-major: pairs in row order, as lapjv's
        pairs = list(zip(found_rows.tolist(), found_cols.tolist(), strict=True))
    else:
        import lap  # imported here: a run with tracking off never loads it

        live_rows, live_cols = np.flatnonzero(per_row), np.flatnonzero(per_col)
        _, x, _ = lap.lapjv(cost[live_rows][:, live_cols], extend_cost=True, cost_limit=limit)
        row_of, col_of = live_rows.tolist(), live_cols.tolist()  # Python ints: NumPy scalars are slow
        pairs = [(row_of[i], col_of[j]) for i, j in enumerate(x.tolist()) if j >= 0]
    matched_rows, matched_cols = {i for i, _ in pairs}, {j for _, j in pairs}
    return (
        pairs,
        [i for i in range(rows) if i not in matched_rows],
        [j for j in range(cols) if j not in matched_cols],
    )
