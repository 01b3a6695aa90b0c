"""Events from tracks: a line crossed (``cross`` with its direction), a zone entered (``enter``), left
(``exit``) or stayed in too long (``dwell``); and the running counts behind them.

:class:`Scene` holds the lines and zones of one camera and, per track, where it was: the side of each line
it was last seen clearly on, and for each zone how many frames in a row it has been inside or outside.

- A **crossing** is the anchor changing side while level with the segment, counted only once it is
  ``min_distance`` past the line: a box whose anchor jitters on the line never counts, and each track
  counts at most once per line and direction (so an object that dithers across and back is one "in" and
  one "out", never a stream of them). A track that leaves the segment's extent (walks round its end)
  forgets its side.
- A **zone** is entered after ``inertia`` frames inside in a row and left after ``inertia`` frames outside
  (or when its track ends); ``dwell`` fires once per stay, ``dwell`` seconds after the first frame inside.

Counts: crossings per (line, direction, label) since the start, and occupancy (objects inside now) per
(zone, label). Only confirmed tracks matched this frame move states; a track lost for a frame keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.track import kalman
from edgecnn.track.geometry import Line, Zone, anchor_points, resolve_line, resolve_zone
from edgecnn.track.spec import LineSpec, ZoneSpec
from edgecnn.track.tracker import Track

EVENT_TYPES = ("cross", "enter", "exit", "dwell")


@dataclass(frozen=True)
class Event:
    type: str  # cross, enter, exit, dwell
    timestamp: float  # the frame's time (Unix seconds for a camera)
    frame: int  # the frame's index in its source
    track_id: int
    label: str
    score: float  # the track's latest detection score
    line: str | None = None
    zone: str | None = None
    direction: str | None = None  # cross: which of the line's directions
    seconds: float | None = None  # dwell and exit: time in the zone so far
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the track's box, pixels
    snapshot: str | None = None  # with --snapshots: the JPEG's file name in that folder
    camera: str | None = None  # the camera's name in a multi-camera run ([[cameras]]); None: the only one
    clip: str | None = None  # with --clips: the clip this event started or extended (under the clips folder)

    def to_json(self) -> dict[str, Any]:
        """The event's record (the events file, MQTT ``.../events``, ``/events``)."""
        record: dict[str, Any] = {
            **({"camera": self.camera} if self.camera is not None else {}),
            "timestamp": round(self.timestamp, 6),
            "type": self.type,
            "frame": self.frame,
            "track_id": self.track_id,
            "label": self.label,
            "score": round(self.score, 6),
        }
        for key in ("line", "zone", "direction"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.seconds is not None:
            record["seconds"] = round(self.seconds, 3)
        record["box"] = [round(v, 1) for v in self.box]
        if self.snapshot is not None:
            record["snapshot"] = self.snapshot
        if self.clip is not None:
            record["clip"] = self.clip
        return record


@dataclass(slots=True)
class _InZone:
    """One track's stay in one zone (from its first frame inside until it has left)."""

    order: int  # when the stay began, scene-wide: a track that ends leaves its zones in this order
    inside: int = 0  # frames in a row inside
    outside: int = 0  # frames in a row outside
    since: float | None = None  # time of the first frame inside (this stay)
    entered: bool = False
    dwelt: bool = False


class Scene:
    """Lines and zones of one camera and the state of every track against them; :meth:`step` per frame.

    The state is kept per line and per zone, keyed by track ID (the side of the line a track was last seen
    clearly on; a track's stay in a zone), so a frame's work for a zone is its tracks inside and its stays,
    not every track: at 20 objects and a few lines and zones the per-track Python, not the geometry, was
    most of a frame's cost."""

    def __init__(self, lines: Sequence[LineSpec] = (), zones: Sequence[ZoneSpec] = ()) -> None:
        self.line_specs, self.zone_specs = list(lines), list(zones)
        self.size: tuple[int, int] | None = None
        self.lines: list[Line] = []
        self.zones: list[Zone] = []
        # Per line: track ID -> the side (-1/+1) it was last seen clearly on.
        self._sides: list[dict[int, int]] = [{} for _ in self.line_specs]
        self._counted: list[set[tuple[int, int]]] = [set() for _ in self.line_specs]  # (track ID, direction)
        self._stays: list[dict[int, _InZone]] = [{} for _ in self.zone_specs]  # track ID -> its stay
        self._stays_begun = 0
        self.crossings: dict[tuple[str, str, str], int] = {}  # (line, direction, label) -> count
        self.occupancy: dict[tuple[str, str], int] = {}  # (zone, label) -> objects inside now
        for z in self.zone_specs:
            self.occupancy.setdefault((z.name, "all"), 0)

    @property
    def empty(self) -> bool:
        return not self.line_specs and not self.zone_specs

    def _resolve(self, size: tuple[int, int]) -> None:
        if size != self.size:
            self.size = size
            self.lines = [resolve_line(s, size) for s in self.line_specs]
            self.zones = [resolve_zone(s, size) for s in self.zone_specs]

    def step(
        self,
        tracks: Sequence[Track],
        ended: Sequence[Track],
        *,
        size: tuple[int, int],
        timestamp: float,
        frame: int,
        boxes: np.ndarray | None = None,
    ) -> list[Event]:
        """The events of one frame: ``tracks`` are the confirmed tracks matched in it (``boxes``, when
        given, their boxes: :attr:`TrackUpdate.boxes`), ``ended`` those the tracker let go (they exit their
        zones); ``size`` is the frame's (width, height)."""
        if self.empty:
            return []
        self._resolve(size)
        events: list[Event] = []
        if tracks:
            if boxes is None:
                boxes = kalman.boxes(np.stack([t.state for t in tracks]))
            ids = [t.id for t in tracks]
            anchors: dict[str, np.ndarray] = {}
            for index, line in enumerate(self.lines):
                points = _anchors(anchors, boxes, line.spec.anchor, size)
                self._lines(index, line, tracks, ids, points, timestamp, frame, events)
            if self.zones:
                lists: dict[str, tuple[list[float], list[float]]] = {}
                frame_rows = {tid: k for k, tid in enumerate(ids)}
                for index, zone in enumerate(self.zones):
                    anchor = zone.spec.anchor
                    if anchor not in lists:
                        xy = _anchors(anchors, boxes, anchor, size).T
                        lists[anchor] = xy[0].tolist(), xy[1].tolist()
                    inside = zone.inside(*lists[anchor])
                    self._zones(index, zone, tracks, frame_rows, inside, timestamp, frame, events)
        for t in ended:
            for sides in self._sides:
                sides.pop(t.id, None)
            for counted in self._counted:
                counted.discard((t.id, 0))
                counted.discard((t.id, 1))
            stays = [(stays.pop(t.id), index) for index, stays in enumerate(self._stays) if t.id in stays]
            for in_zone, index in sorted(stays, key=lambda stay: stay[0].order):
                if in_zone.entered:
                    events.append(self._exit(index, t, in_zone, timestamp, frame))
        return events

    def _lines(
        self,
        index: int,
        line: Line,
        tracks: Sequence[Track],
        ids: list[int],
        points: np.ndarray,
        timestamp: float,
        frame: int,
        events: list[Event],
    ) -> None:
        spec = line.spec
        labels, min_distance = spec.labels, line.min_distance
        sides, counted = self._sides[index], self._counted[index]
        signed, level = line.sides(points)
        for k, (tid, distance, within) in enumerate(zip(ids, signed.tolist(), level.tolist(), strict=True)):
            if labels is not None and tracks[k].label not in labels:
                continue
            if not within:
                sides.pop(tid, None)
                continue
            if abs(distance) < min_distance:
                continue  # on the line, or jitter around it: no clear side
            side = 1 if distance > 0 else -1
            before = sides.get(tid)
            if before == side:
                continue
            sides[tid] = side
            if before is None:
                continue
            direction = 0 if side > 0 else 1  # left -> right of a->b is the first direction
            if (tid, direction) in counted:
                continue
            counted.add((tid, direction))
            t = tracks[k]
            name = spec.directions[direction]
            key = (spec.name, name, t.label)
            self.crossings[key] = self.crossings.get(key, 0) + 1
            events.append(
                Event(
                    "cross",
                    timestamp,
                    frame,
                    t.id,
                    t.label,
                    t.score,
                    line=spec.name,
                    direction=name,
                    box=t.box,
                )
            )

    def _zones(
        self,
        index: int,
        zone: Zone,
        tracks: Sequence[Track],
        frame_rows: dict[int, int],
        inside: list[int],
        timestamp: float,
        frame: int,
        events: list[Event],
    ) -> None:
        """One zone's frame: the tracks inside it now and those with a stay in it (counting frames outside),
        in frame order."""
        spec = zone.spec
        stays = self._stays[index]
        if spec.labels is not None:
            inside = [k for k in inside if tracks[k].label in spec.labels]
        visit = set(inside)
        visit.update(k for tid in stays if (k := frame_rows.get(tid)) is not None)
        if not visit:
            return
        now_inside = set(inside)
        for k in sorted(visit):
            t = tracks[k]
            z = stays.get(t.id)
            if z is None:  # first frame inside (visited only if inside)
                z = stays[t.id] = _InZone(self._stays_begun)
                self._stays_begun += 1
            if k in now_inside:
                z.inside, z.outside = z.inside + 1, 0
                if z.since is None:
                    z.since = timestamp
                if not z.entered and z.inside >= spec.inertia:
                    z.entered, z.dwelt = True, False
                    self._occupy(spec.name, t.label, 1)
                    events.append(
                        Event("enter", timestamp, frame, t.id, t.label, t.score, zone=spec.name, box=t.box)
                    )
                if z.entered and not z.dwelt and spec.dwell is not None and timestamp - z.since >= spec.dwell:
                    z.dwelt = True
                    events.append(
                        Event("dwell", timestamp, frame, t.id, t.label, t.score, zone=spec.name,
                              seconds=timestamp - z.since, box=t.box)
                    )  # fmt: skip
            else:
                z.outside, z.inside = z.outside + 1, 0
                if not z.entered:
                    z.since = None
                elif z.outside >= spec.inertia:
                    events.append(self._exit(index, t, z, timestamp, frame))
                    del stays[t.id]

    def _exit(self, index: int, t: Track, z: _InZone, timestamp: float, frame: int) -> Event:
        name = self.zone_specs[index].name
        self._occupy(name, t.label, -1)
        z.entered = False
        seconds = None if z.since is None else timestamp - z.since
        return Event("exit", timestamp, frame, t.id, t.label, t.score, zone=name, seconds=seconds, box=t.box)

    def _occupy(self, zone: str, label: str, change: int) -> None:
        self.occupancy[(zone, label)] = self.occupancy.get((zone, label), 0) + change
        self.occupancy[(zone, "all")] = self.occupancy.get((zone, "all"), 0) + change

    def counts(self) -> dict[str, Any]:
        """``{"lines": {name: {direction: n}}, "zones": {name: n inside}}``, every line and zone listed."""
        lines: dict[str, dict[str, int]] = {s.name: dict.fromkeys(s.directions, 0) for s in self.line_specs}
        for (name, direction, _label), n in self.crossings.items():
            lines[name][direction] += n
        zones = {s.name: self.occupancy.get((s.name, "all"), 0) for s in self.zone_specs}
        return {"lines": lines, "zones": zones}


def _anchors(
    cache: dict[str, np.ndarray], boxes: np.ndarray, anchor: str, size: tuple[int, int]
) -> np.ndarray:
    """The anchor points of ``boxes``, computed once per anchor kind and frame, kept inside the frame: a
    filtered box of an object cut by the frame edge reaches a pixel or two past it, and its anchor there
    would be beyond the end of a line drawn to that edge (never counted) or outside a zone drawn to it."""
    found = cache.get(anchor)
    if found is None:
        found = anchor_points(boxes, anchor)  # a new array: clipped in place (np.clip costs twice as much)
        found = cache[anchor] = np.minimum(np.maximum(found, 0.0, out=found), size, out=found)
    return found
