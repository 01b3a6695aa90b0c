"""Which detection belongs to which track: box overlap as the cost, the optimal one-to-one assignment.

The assignment is :func:`lap.lapjv` (Jonker-Volgenant, BSD, needs only NumPy; the solver ByteTrack
itself uses), with ``cost_limit`` so that a pair costing more than the threshold is never forced
together. See docs/tracking.md for why ``lap`` and not SciPy.
"""

from __future__ import annotations

import numpy as np

NO_MATCH = 1e6  # cost of a pair that must never be matched (different labels)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` intersection over union of two sets of corner boxes.

    Coordinates as contiguous columns (a NumPy call on a strided view costs several times one on a
    contiguous block, and at a frame's 20 boxes the per-call cost is all there is), every ``(N, M)``
    intermediate reused in place."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = np.ascontiguousarray(a.T)[:, :, None]  # (N, 1) each
    bx1, by1, bx2, by2 = np.ascontiguousarray(b.T)  # (M,) each
    w = np.minimum(ax2, bx2)
    w -= np.maximum(ax1, bx1)
    h = np.minimum(ay2, by2)
    h -= np.maximum(ay1, by1)
    np.maximum(w, 0.0, out=w)
    np.maximum(h, 0.0, out=h)
    w *= h  # the intersections
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union -= w
    np.maximum(union, 1e-9, out=union)
    return np.divide(w, union, out=w)


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
    A pair costing exactly ``limit`` (matched or not, the same total) goes to the solver, which decides.
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    found_rows, found_cols = np.nonzero(cost <= limit)  # row-major: pairs in row order, as lapjv's
    row_list, col_list = found_rows.tolist(), found_cols.tolist()  # Python ints: NumPy scalars are slow
    live_rows, live_cols = set(row_list), set(col_list)
    if (
        len(live_rows) == len(row_list)
        and len(live_cols) == len(col_list)
        and limit not in cost[found_rows, found_cols].tolist()
    ):
        pairs = list(zip(row_list, col_list, strict=True))
        matched_rows, matched_cols = live_rows, live_cols
    else:
        import lap  # imported here: a run with tracking off never loads it

        row_of, col_of = sorted(live_rows), sorted(live_cols)
        x, _ = lap.lapjv(cost[row_of][:, col_of], extend_cost=True, cost_limit=limit, return_cost=False)
        pairs = [(row_of[i], col_of[j]) for i, j in enumerate(x.tolist()) if j >= 0]
        matched_rows, matched_cols = {i for i, _ in pairs}, {j for _, j in pairs}
    return (
        pairs,
        [i for i in range(rows) if i not in matched_rows],
        [j for j in range(cols) if j not in matched_cols],
    )
