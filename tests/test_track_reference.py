"""The tracker's batched arithmetic and the scene's shortcuts decide exactly what straightforward code decides.

Tracking a frame is many small NumPy calls, so edgecnn.track batches them: the Kalman filter of every track
in one array laid out quantity by quantity, IoU for all pairs at once, the assignment solver skipped when
nothing conflicts, zones tested only for the tracks near them. Here the same ``Tracker`` runs once as
shipped and once with its arithmetic swapped for plain textbook code (a 2x2 Kalman filter per track and
coordinate with matrices, IoU and grown boxes pair by pair, ``lap.lapjv`` on the whole cost matrix), and a
straightforward scene (every track against every line and zone, point by point, the rules of
docs/tracking.md) follows the reference run. On generated scenes (crossing paths, occlusions, dropped and
jittered detections, low scores, false positives, two labels, and a crowded one where tracks come and go
and boxes overlap), the IDs, the events and the counts must be the same, and the boxes agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import lap
import numpy as np
import pytest

from edgecnn.track import kalman
from edgecnn.track import tracker as tracker_module
from edgecnn.track.events import Scene
from edgecnn.track.geometry import resolve_zone
from edgecnn.track.kalman import ACCEL_NOISE, INIT_VEL_STD, MEASURE_NOISE, P00, P01, P11, POS, POS_NOISE, VEL
from edgecnn.track.spec import ANCHORS, LineSpec, ZoneSpec, parse_line, parse_zone
from edgecnn.track.tracker import Tracker

W, H = 640, 480
PILLARS = ((150, 200), (450, 490))  # x ranges where objects are hidden

# -- the reference arithmetic -------------------------------------------------------------------------------


def ref_predict(state: np.ndarray, dt: float) -> np.ndarray:
    """x' = F x, P' = F P F^T + Q, per track and coordinate (continuous white-noise acceleration plus a
    position walk, both scaled by the box size squared)."""
    a, b = ACCEL_NOISE**2, POS_NOISE**2
    f = np.array([[1.0, dt], [0.0, 1.0]])
    for track in state:
        size = max((track[POS, 2] + track[POS, 3]) / 2, 1.0)
        q = size * size * np.array([[a * dt**3 / 3 + b * dt, a * dt**2 / 2], [a * dt**2 / 2, a * dt]])
        for c in range(4):
            x = f @ np.array([track[POS, c], track[VEL, c]])
            p = f @ np.array([[track[P00, c], track[P01, c]], [track[P01, c], track[P11, c]]]) @ f.T + q
            track[POS, c], track[VEL, c] = x
            track[P00, c], track[P01, c], track[P11, c] = p[0, 0], p[0, 1], p[1, 1]
        track[POS, 2:] = np.maximum(track[POS, 2:], 1.0)
    return state


def ref_update(state: np.ndarray, measure: np.ndarray) -> np.ndarray:
    """K = P H^T / (H P H^T + R), x += K (z - H x), P = (I - K H) P, with H = [1, 0]."""
    h = np.array([[1.0, 0.0]])
    for track, z in zip(state, measure, strict=True):
        r = (MEASURE_NOISE * max((z[2] + z[3]) / 2, 1.0)) ** 2
        for c in range(4):
            x = np.array([[track[POS, c]], [track[VEL, c]]])
            p = np.array([[track[P00, c], track[P01, c]], [track[P01, c], track[P11, c]]])
            k = p @ h.T / (h @ p @ h.T + r)
            x = x + k * (z[c] - x[0, 0])
            p = (np.eye(2) - k @ h) @ p
            track[POS, c], track[VEL, c] = x[:, 0]
            track[P00, c], track[P01, c], track[P11, c] = p[0, 0], p[0, 1], p[1, 1]
    return state


def ref_initiate_box(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    size = max((w + h) / 2, 1.0)
    state = np.zeros((5, 4))
    state[POS] = [x1 + w / 2, y1 + h / 2, w, h]
    state[P00] = (2 * MEASURE_NOISE * size) ** 2
    state[P11] = (INIT_VEL_STD * size) ** 2
    return state


def ref_boxes(state: np.ndarray) -> np.ndarray:
    return np.array(
        [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for cx, cy, w, h in state[:, POS]]
    ).reshape(-1, 4)


def ref_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a):
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            out[i, j] = inter / max(union, 1e-9)
    return out


def ref_expand(boxes: np.ndarray, margin: float) -> np.ndarray:
    return np.array(
        [[x1 - margin * (x2 - x1), y1 - margin * (y2 - y1), x2 + margin * (x2 - x1), y2 + margin * (y2 - y1)]
         for x1, y1, x2, y2 in boxes]
    ).reshape(-1, 4)  # fmt: skip


def ref_assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The solver on the whole matrix, every time."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    return (
        [(i, j) for i, j in enumerate(x.tolist()) if j >= 0],
        [i for i, j in enumerate(x.tolist()) if j < 0],
        [j for j, i in enumerate(y.tolist()) if i < 0],
    )


# -- the reference scene -------------------------------------------------------------------------------------


@dataclass
class _Stay:
    inside: int = 0
    outside: int = 0
    since: float | None = None
    entered: bool = False
    dwelt: bool = False


@dataclass
class _Memory:
    sides: dict[int, int] = field(default_factory=dict)
    counted: set[tuple[int, int]] = field(default_factory=set)
    stays: dict[int, _Stay] = field(default_factory=dict)  # zone -> stay, in the order they began


def _inside(polygon: list[tuple[float, float]], x: float, y: float) -> bool:
    """Even-odd rule: a ray to the right crosses the boundary an odd number of times."""
    odd = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            odd = not odd
    return odd


class ReferenceScene:
    """Every confirmed track of the frame against every line and zone, one at a time: anchors held inside
    the frame; a crossing once clear of the line by the minimum distance while level with the segment,
    once per track, line and direction; a zone entered and left after ``inertia`` frames, a dwell once per
    stay; a track that ends leaves its zones in the order it went in."""

    def __init__(self, lines: list[LineSpec], zones: list[ZoneSpec]) -> None:
        self.lines, self.zones = lines, zones
        self.memory: dict[int, _Memory] = {}
        self.crossings: dict[tuple[str, str, str], int] = {}

    def _pixels(self, points, fractions: bool) -> list[tuple[float, float]]:
        return [(x * W, y * H) if fractions else (x, y) for x, y in points]

    def step(self, tracks, ended, timestamp: float, frame: int) -> list[tuple[Any, ...]]:
        events: list[tuple[Any, ...]] = []
        boxes = {t.id: ref_boxes(t.state[None])[0] for t in tracks}

        def anchor(t, kind: str) -> tuple[float, float]:
            x1, y1, x2, y2 = boxes[t.id]
            fx, fy = ANCHORS[kind]
            x, y = x1 + fx * (x2 - x1), y1 + fy * (y2 - y1)
            return min(max(x, 0.0), W), min(max(y, 0.0), H)  # held inside the frame

        for index, line in enumerate(self.lines):
            (ax, ay), (bx, by) = self._pixels(line.points, line.fractions)
            least = line.min_distance * min(W, H) if line.min_distance <= 1 else line.min_distance
            length = math.hypot(bx - ax, by - ay)
            for t in tracks:
                if line.labels is not None and t.label not in line.labels:
                    continue
                memory = self.memory.setdefault(t.id, _Memory())
                px, py = anchor(t, line.anchor)
                distance = ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / length
                along = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / length**2
                if not 0 <= along <= 1:
                    memory.sides.pop(index, None)  # round the end of the segment: forget the side
                    continue
                if abs(distance) < least:
                    continue
                side = 1 if distance > 0 else -1
                before = memory.sides.get(index)
                memory.sides[index] = side
                direction = 0 if side > 0 else 1
                if before is not None and before != side and (index, direction) not in memory.counted:
                    memory.counted.add((index, direction))
                    key = (line.name, line.directions[direction], t.label)
                    self.crossings[key] = self.crossings.get(key, 0) + 1
                    events.append(("cross", frame, t.id, t.label, line.name, line.directions[direction]))
        for index, zone in enumerate(self.zones):
            polygon = self._pixels(zone.points, zone.fractions)
            for t in tracks:
                if zone.labels is not None and t.label not in zone.labels:
                    continue
                memory = self.memory.setdefault(t.id, _Memory())
                now = _inside(polygon, *anchor(t, zone.anchor))
                stay = memory.stays.get(index)
                if stay is None and not now:
                    continue
                stay = memory.stays.setdefault(index, _Stay())
                if now:
                    stay.inside, stay.outside = stay.inside + 1, 0
                    stay.since = timestamp if stay.since is None else stay.since
                    if not stay.entered and stay.inside >= zone.inertia:
                        stay.entered, stay.dwelt = True, False
                        events.append(("enter", frame, t.id, t.label, zone.name, None))
                    seconds = timestamp - stay.since
                    if stay.entered and not stay.dwelt and zone.dwell is not None and seconds >= zone.dwell:
                        stay.dwelt = True
                        events.append(("dwell", frame, t.id, t.label, zone.name, seconds))
                else:
                    stay.outside, stay.inside = stay.outside + 1, 0
                    if not stay.entered:
                        stay.since = None
                    elif stay.outside >= zone.inertia:
                        events.append(("exit", frame, t.id, t.label, zone.name, timestamp - stay.since))
                        del memory.stays[index]
        for t in ended:
            memory = self.memory.pop(t.id, None)
            for index, stay in (memory.stays if memory else {}).items():
                if stay.entered:
                    seconds = None if stay.since is None else timestamp - stay.since
                    events.append(("exit", frame, t.id, t.label, self.zones[index].name, seconds))
        return events


# -- scenes --------------------------------------------------------------------------------------------------


def walkers(fps: int, seed: int) -> list[list[tuple[np.ndarray, float, str]]]:
    """Ten objects of two labels for 12 s: paths that cross, one standing, two pillars to pass behind,
    10 % of detections dropped, 3 % jitter, one in ten scored low, false positives (as
    benchmarks/tracking.py's simulated scene)."""
    rng = np.random.default_rng(1000 * seed + fps)
    objects = []
    for k in range(10):
        label = "car" if k % 3 == 0 else "person"
        w, h = (90.0, 60.0) if label == "car" else (42.0, 95.0)
        start = np.array([rng.choice([-20.0, W + 20.0]), rng.uniform(60, H - 40)])
        speed = np.array([(1 if start[0] < 0 else -1) * rng.uniform(30, 110), rng.uniform(-15, 15)])
        if k == 9:
            start, speed = np.array([300.0, 200.0]), np.zeros(2)  # stands in the zones
        objects.append((label, w, h, start, speed, rng.uniform(0, 6)))
    frames = []
    for i in range(12 * fps):
        t, found = i / fps, []
        for label, w, h, start, speed, t0 in objects:
            if t < t0:
                continue
            cx, cy = start + speed * (t - t0)
            behind = any(x1 <= cx <= x2 for x1, x2 in PILLARS)
            if not (0 <= cx < W and 0 <= cy < H) or behind or rng.random() < 0.1:
                continue  # out of the frame, behind a pillar or missed
            size = np.array([w, h, w, h])
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) + rng.normal(0, 0.03, 4) * size
            score = rng.uniform(0.2, 0.45) if rng.random() < 0.1 else rng.uniform(0.55, 0.95)
            found.append((box, float(score), label))
        for _ in range(rng.poisson(0.3)):
            x, y = rng.uniform(0, W - 60), rng.uniform(0, H - 90)
            score = rng.uniform(0.5, 0.7) if rng.random() < 0.2 else rng.uniform(0.1, 0.4)
            found.append((np.array([x, y, x + 45, y + 90]), float(score), "person"))
        frames.append(found)
    return frames


def crowd(objects: int, frames: int) -> list[list[tuple[np.ndarray, float, str]]]:
    """benchmarks/tracking.py's cost scene: boxes that overlap (the solver's path), jump back when they
    reach an edge (tracks end and start), a third of them scored low."""
    rng = np.random.default_rng(1)
    starts = rng.uniform([0, 0], [W - 40, H - 80], (objects, 2))
    speeds = rng.uniform(-3, 3, (objects, 2))
    labels = ["car" if k % 4 == 0 else "person" for k in range(objects)]
    out = []
    for i in range(frames):
        xy = (starts + speeds * (i % 200)) % [W - 40, H - 80]
        boxes = np.concatenate([xy, xy + np.array([40, 80])], axis=1) + rng.normal(0, 1, (objects, 4))
        scores = rng.uniform(0.3, 0.95, objects)
        out.append([(boxes[k], float(scores[k]), labels[k]) for k in range(objects)])
    return out


def specs() -> tuple[list[LineSpec], list[ZoneSpec]]:
    """Lines and zones that use every option: label filters, anchors, no minimum distance, pixels and
    fractions, zones that overlap (a track that ends leaves them in the order it entered), inertia 1 to 5."""

    def fail(problem: str) -> Exception:
        return ValueError(problem)

    gate = {"name": "gate", "points": [[0.5, 1.0], [0.5, 0.0]]}
    road = {"name": "road", "points": [[0, 250], [640, 230]], "labels": ["car"]}
    door = {"name": "door", "points": [[100, 40], [500, 430]], "anchor": "centre", "min_distance": 0}
    yard = {"name": "yard", "points": [[0.1, 0.1], [0.6, 0.1], [0.6, 0.6], [0.1, 0.6]], "dwell": 1.5}
    bay = {"name": "bay", "points": [[0.3, 0.2], [0.9, 0.3], [0.7, 0.95], [0.2, 0.8], [0.25, 0.5]],
           "inertia": 1, "labels": ["person"], "dwell": 0.5}  # fmt: skip
    east = {"name": "east", "points": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], "anchor": "top-centre",
            "inertia": 5, "dwell": 3}  # fmt: skip
    lines = [parse_line(spec, k, fail) for k, spec in enumerate([gate, road, door], 1)]
    zones = [parse_zone(spec, k, fail) for k, spec in enumerate([yard, bay, east], 1)]
    return lines, zones


# -- the comparison ------------------------------------------------------------------------------------------


def shipped(frames, fps: float) -> list[dict[str, Any]]:
    tracker, lines, zones = Tracker(), *specs()
    scene, out = Scene(lines, zones), []
    for n, found in enumerate(frames):
        boxes = np.array([d[0] for d in found]).reshape(-1, 4)
        update = tracker.update(boxes, [d[1] for d in found], [d[2] for d in found], n / fps)
        events = scene.step(update.tracks, update.ended, size=(W, H), timestamp=n / fps, frame=n,
                            boxes=update.boxes)  # fmt: skip
        out.append({
            "ids": update.ids, "started": [t.id for t in update.started], "ended": [t.id for t in update.ended],
            "lost": [t.id for t in update.lost], "boxes": update.boxes,
            "events": [(e.type, e.frame, e.track_id, e.label, e.line or e.zone,
                        e.direction if e.type == "cross" else e.seconds) for e in events],
            "crossings": dict(scene.crossings),
        })  # fmt: skip
    return out


def reference(frames, fps: float, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    with monkeypatch.context() as patch:
        for module, name, function in [
            (kalman, "predict", ref_predict), (kalman, "update", ref_update), (kalman, "boxes", ref_boxes),
            (kalman, "initiate_box", ref_initiate_box), (tracker_module, "iou", ref_iou),
            (tracker_module, "expand", ref_expand), (tracker_module, "assign", ref_assign),
        ]:  # fmt: skip
            patch.setattr(module, name, function)
        tracker, lines, zones = Tracker(), *specs()
        scene, out = ReferenceScene(lines, zones), []
        for n, found in enumerate(frames):
            boxes = np.array([d[0] for d in found]).reshape(-1, 4)
            update = tracker.update(boxes, [d[1] for d in found], [d[2] for d in found], n / fps)
            events = scene.step(update.tracks, update.ended, n / fps, n)
            out.append({
                "ids": update.ids, "started": [t.id for t in update.started],
                "ended": [t.id for t in update.ended], "lost": [t.id for t in update.lost],
                "boxes": update.boxes,
                "events": events, "crossings": dict(scene.crossings),
            })  # fmt: skip
    return out


def same(fast: list[dict[str, Any]], slow: list[dict[str, Any]]) -> None:
    assert len(fast) == len(slow)
    for n, (a, b) in enumerate(zip(fast, slow, strict=True)):
        for key in ("ids", "started", "ended", "lost", "crossings"):
            assert a[key] == b[key], (n, key)
        np.testing.assert_allclose(a["boxes"], b["boxes"], rtol=0, atol=1e-6, err_msg=f"frame {n}")
        assert [e[:5] for e in a["events"]] == [e[:5] for e in b["events"]], n
        for x, y in zip(a["events"], b["events"], strict=True):
            assert x[5] == y[5] if not isinstance(x[5], float) else x[5] == pytest.approx(y[5], abs=1e-9)


@pytest.mark.parametrize(("fps", "seed"), [(5, 0), (10, 1), (30, 2)])
def test_walkers_give_the_reference_ids_and_events(fps, seed, monkeypatch):
    frames = walkers(fps, seed)
    fast = shipped(frames, fps)
    same(fast, reference(frames, fps, monkeypatch))
    kinds = {e[0] for frame in fast for e in frame["events"]}
    assert kinds == {"cross", "enter", "exit", "dwell"}, kinds  # every rule was exercised
    assert len({i for frame in fast for i in frame["ids"] if i is not None}) >= 6


def test_a_crowd_gives_the_reference_ids_and_events(monkeypatch):
    frames = crowd(20, 300)
    fast = shipped(frames, 30)
    same(fast, reference(frames, 30, monkeypatch))
    assert sum(len(frame["started"]) for frame in fast) > 30  # tracks came and went
    assert sum(len(frame["ended"]) for frame in fast) > 20
    assert sum(len(frame["events"]) for frame in fast) > 50


def test_zone_inside_is_contains():
    """The scene's polygon test in floats (after a bounding box) and the array form agree on every point,
    including points on edges and corners of integer polygons."""
    rng = np.random.default_rng(5)
    for k in range(400):
        corners = int(rng.integers(3, 9))
        if k % 2:
            polygon, points = rng.integers(0, 20, (corners, 2)) * 8.0, rng.integers(-2, 22, (300, 2)) * 8.0
        else:
            polygon, points = rng.uniform(0, 640, (corners, 2)), rng.uniform(-50, 700, (300, 2))
        points[:4] = [[np.nan, 5], [5, np.nan], [-np.inf, 5], [np.inf, 5]]
        zone = resolve_zone(ZoneSpec("z", tuple(map(tuple, polygon.tolist())), fractions=False), (W, H))
        assert (
            zone.inside(points[:, 0].tolist(), points[:, 1].tolist())
            == np.flatnonzero(zone.contains(points)).tolist()
        )
