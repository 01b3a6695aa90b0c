"""The assignment's shortcuts (no solver when nothing conflicts; only rows and columns with candidates to the
solver otherwise) give what ``lap.lapjv`` gives on the whole matrix; the tracker's states are one array."""

from __future__ import annotations

import lap
import numpy as np

from edgecnn.track.match import NO_MATCH, assign
from edgecnn.track.tracker import Tracker


def _lapjv(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    rows, cols = x.tolist(), y.tolist()
    return (
        [(i, j) for i, j in enumerate(rows) if j >= 0],
        [i for i, j in enumerate(rows) if j < 0],
        [j for j, i in enumerate(cols) if i < 0],
    )


def test_assign_matches_lapjv_on_the_whole_matrix():
    rng = np.random.default_rng(7)
    shortcut = conflicts = 0
    for k in range(3000):
        n, m = (int(v) for v in rng.integers(1, 16, 2))
        cost = rng.uniform(0, 1, (n, m))
        cost[rng.uniform(0, 1, (n, m)) < rng.uniform(0.3, 0.97)] = 1.0  # most pairs: no overlap
        if k % 4 == 0:
            cost[rng.uniform(0, 1, (n, m)) < 0.2] = NO_MATCH  # labels that differ
        limit = float(rng.choice([0.5, 0.8]))
        assert assign(cost, limit) == _lapjv(cost, limit), (cost, limit)
        near = cost <= limit
        if near.sum(axis=1).max() <= 1 and near.sum(axis=0).max() <= 1:
            shortcut += 1
        else:
            conflicts += 1
    assert shortcut > 500 and conflicts > 500  # both paths were exercised


def test_assign_edge_cases():
    assert assign(np.zeros((0, 3)), 0.8) == ([], [], [0, 1, 2])
    assert assign(np.full((2, 2), 1.0), 0.8) == ([], [0, 1], [0, 1])  # nothing within the limit
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])  # row 0 could take either column: the optimum is the cross
    assert assign(cost, 0.8) == _lapjv(cost, 0.8) == ([(0, 1), (1, 0)], [], [])


def test_track_states_are_rows_of_one_array():
    tracker = Tracker()
    boxes = np.array([[10.0, 10, 40, 70], [200, 50, 240, 130], [400, 300, 440, 380]])
    for n in range(5):
        tracker.update(boxes + np.array([3.0 * n, 0, 3.0 * n, 0]), [0.9, 0.9, 0.9], ["a", "b", "a"], n / 10)
    states = tracker._states
    assert [t.id for t in tracker.tracks] == [1, 2, 3]
    assert all(np.shares_memory(t.state, states) and t.state is not states for t in tracker.tracks)
    assert np.allclose([t.box[0] for t in tracker.tracks], [22, 212, 412], atol=1.0)  # moved 3 px a frame
    tracker.update(
        boxes[:2] + np.array([15.0, 0, 15.0, 0]), [0.9, 0.9], ["a", "b"], 0.5
    )  # the third goes unseen
    tracker.update(np.zeros((0, 4)), [], [], 3.0)  # all three gone for longer than the 2 s buffer
    assert tracker.tracks == [] and len(tracker._states) == 0
