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

    The coordinates as contiguous rows, both axes of the intersection in one ``(2, N, M)`` operation each,
    intermediates reused in place: at a frame's 20 boxes NumPy's cost is per call (and a call on a strided
    view costs several times one on a contiguous block), so fewer and simpler calls is faster."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)  # (4, N), (4, M)
    wh = np.minimum(at[2:, :, None], bt[2:, None, :])  # (2, N, M): the intersections' far corners...
    wh -= np.maximum(at[:2, :, None], bt[:2, None, :])  # ... less their near ones: widths and heights
    np.maximum(wh, 0.0, out=wh)
    inter = wh[0]
    inter *= wh[1]
    size_a, size_b = at[2:] - at[:2], bt[2:] - bt[:2]
    union = (size_a[0] * size_a[1])[:, None] + size_b[0] * size_b[1]
    union -= inter
    np.maximum(union, 1e-9, out=union)
    return np.divide(inter, union, out=union)


def expand(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Corner boxes grown by ``margin`` times their width and height on every side (C-BIoU's buffered
    boxes: overlap survives motion of up to about a box size per frame)."""
    corners = boxes.reshape(-1, 2, 2)  # (x1, y1), (x2, y2)
    grow = margin * (corners[:, 1] - corners[:, 0])
    return (corners + _OUTWARD * grow[:, None]).reshape(-1, 4)  # x1 - grow, ..., x2 + grow to the bit


_OUTWARD = np.array([[-1.0], [1.0]])  # the first corner moves back, the second on


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
        live = cost.take(row_of, axis=0).take(col_of, axis=1)  # a third of the time of cost[rows][:, cols]
        x, _ = lap.lapjv(live, extend_cost=True, cost_limit=limit, return_cost=False)
        pairs = [(row_of[i], col_of[j]) for i, j in enumerate(x.tolist()) if j >= 0]
        matched_rows, matched_cols = {i for i, _ in pairs}, {j for _, j in pairs}
    return (
        pairs,
        [i for i in range(rows) if i not in matched_rows],
        [j for j in range(cols) if j not in matched_cols],
    )
