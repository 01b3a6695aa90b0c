"""Tracking, lines and zones as one step of ``edgecnn run``, between the task's decode and the outputs.

The step asks one question of a result, whatever its task: does it carry boxes
(:class:`edgecnn.tasks.Trackable`: its items, each with ``box``, ``label`` and ``score``, and the JSON
records they belong to)? A detector's objects do, whatever the layout or backend; so do poses (YOLO's
boxes, MoveNet's keypoints' box) and YOLO seg's objects. A classifier's or a class map's result does not
and passes through untouched. Nothing downstream branches on the task either: a tracked result
(:class:`Tracked`) is a task result whose JSON has a ``track_id`` in each of those records (and ``counts``
when lines or zones are set) and whose drawing adds IDs, trails, lines and zones.

With tracking on, ``run``'s decoder reads below ``--object-threshold``, down to ``--track-low-score``
(:func:`edgecnn.run.pipeline.decode_options`), so the tracker's second stage sees the low-score detections;
the stage then keeps (:class:`edgecnn.tasks.Keepable`) the items over the threshold and those under it that
a confirmed track matched, so no output ever sees the low-score clutter (:attr:`TrackStage.publish_threshold`).

:meth:`TrackStage.apply` returns a :class:`TrackStep`: the result, the frame's events and how long it took
(the ``track`` stage of the run's timings); its :attr:`~TrackStage.listeners` (the events file, ``/events``,
metrics, MQTT) get each step that has events or new tracks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from edgecnn.tasks import Keepable, Trackable
from edgecnn.track.events import Event, Scene
from edgecnn.track.geometry import Line, Zone
from edgecnn.track.snapshots import Snapshots, snapshot_name
from edgecnn.track.spec import LineSpec, ZoneSpec
from edgecnn.track.tracker import Tracker, TrackerOptions

log = logging.getLogger("edgecnn.run")


@dataclass(frozen=True)
class Tracked:
    """A result with boxes plus what tracking added; the task's own behaviour otherwise (a TaskResult,
    and the inner result's own attributes: ``objects``, ``poses``)."""

    inner: Any  # the task's result (Trackable)
    track_ids: tuple[int | None, ...]  # per item of inner.track_items(): its confirmed track, or None
    items: tuple[Any, ...] = ()  # inner.track_items(): where each ID is drawn (None: no box)
    trails: tuple[tuple[int, tuple[tuple[float, float], ...]], ...] = ()  # (track id, recent centres)
    counts: dict[str, Any] | None = None  # with lines or zones: Scene.counts()
    geometry: tuple[tuple[Line, ...], tuple[Zone, ...]] = ((), ())  # the scene's lines and zones, pixels

    @property
    def task(self) -> str:
        return str(self.inner.task)

    @property
    def score(self) -> float:
        return float(self.inner.score)

    @property
    def key(self) -> Hashable:
        return self.inner.key  # type: ignore[no-any-return]

    @property
    def top(self) -> Any:
        return self.inner.top

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def labels(self) -> list[str]:
        return list(self.inner.labels())

    def to_json(self) -> dict[str, Any]:
        data = dict(self.inner.to_json())
        for record, track_id in zip(self.inner.track_records(data), self.track_ids, strict=False):
            record["track_id"] = track_id
        if self.counts is not None:
            data["counts"] = self.counts
        return data

    def summary(self) -> str:
        return str(self.inner.summary()) + self._counts_text()

    def line(self) -> str:
        return str(self.inner.line()) + self._counts_text()

    def lines(self) -> list[str]:
        return list(self.inner.lines())

    def _counts_text(self) -> str:
        if not self.counts:
            return ""
        parts = [
            f"{name} " + " ".join(f"{d} {n}" for d, n in directions.items())
            for name, directions in self.counts["lines"].items()
        ]
        parts += [f"{name} {n} inside" for name, n in self.counts["zones"].items()]
        return "; " + "; ".join(parts)

    def draw(self, image: np.ndarray) -> None:
        """The task's drawing, then zones, lines with their counts, and each track's ID and trail."""
        import cv2

        self.inner.draw(image)
        h, w = image.shape[:2]
        scale = max(0.4, min(w, h) / 900)
        thickness = max(1, round(min(w, h) / 300))
        counts = self.counts or {"lines": {}, "zones": {}}
        lines, zones = self.geometry
        for zone in zones:
            pts = zone.polygon.round().astype(np.int32)
            cv2.polylines(image, [pts], True, (255, 200, 0), thickness, cv2.LINE_AA)
            text = f"{zone.spec.name}: {counts['zones'].get(zone.spec.name, 0)}"
            _label(image, text, (int(pts[0][0]), int(pts[0][1])), scale, (255, 200, 0))
        for line in lines:
            a, b = (int(line.a[0]), int(line.a[1])), (int(line.b[0]), int(line.b[1]))
            cv2.line(image, a, b, (0, 220, 255), thickness + 1, cv2.LINE_AA)
            seen = counts["lines"].get(line.spec.name, {})
            text = f"{line.spec.name} " + " ".join(f"{d} {seen.get(d, 0)}" for d in line.spec.directions)
            _label(image, text, a, scale, (0, 220, 255))
        for track_id, trail in self.trails:
            if len(trail) > 1:
                pts = np.array(trail).round().astype(np.int32)
                cv2.polylines(image, [pts], False, _colour(track_id), thickness, cv2.LINE_AA)
        for obj, found in zip(self.items, self.track_ids, strict=False):
            if found is not None and obj is not None:
                x1, _, _, y2 = (round(v) for v in obj.box)
                _label(image, f"#{found}", (x1, y2), scale, _colour(found))


def _scores(output: Any, items: Sequence[Any]) -> list[float]:
    """Each item's score; an item without a box this frame (a MoveNet pose with too few keypoints seen)
    has its score in its JSON record only."""
    if any(item is None for item in items):
        return [float(record["score"]) for record in output.track_records(output.to_json())]
    return [float(item.score) for item in items]


def _colour(track_id: int) -> tuple[int, int, int]:
    """A steady colour per ID (golden-ratio hue steps, so neighbours differ)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _label(
    image: np.ndarray, text: str, at: tuple[int, int], scale: float, colour: tuple[int, int, int]
) -> None:
    import cv2

    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = min(max(0, int(at[0])), max(0, image.shape[1] - tw - 4))
    y = min(max(th + base, int(at[1])), image.shape[0] - 1)
    cv2.rectangle(image, (x, y - th - base), (x + tw + 4, y), colour, -1)
    cv2.putText(image, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


@dataclass(frozen=True)
class TrackStep:
    """One frame through the stage."""

    output: Any  # the result to output: a Tracked, or the task's own when it has no boxes
    events: list[Event] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # labels of tracks confirmed this frame
    ms: float | None = None  # time in the stage; None when the result had no boxes (nothing ran)


class EventListener(Protocol):
    """Gets every step with events or new tracks (the events file, ``/events``, metrics, MQTT)."""

    def track_step(self, step: TrackStep, stage: TrackStage) -> None: ...


class TrackStage:
    """Tracker plus lines and zones for one camera."""

    def __init__(
        self,
        lines: Sequence[LineSpec] = (),
        zones: Sequence[ZoneSpec] = (),
        options: TrackerOptions | None = None,
    ) -> None:
        self.tracker = Tracker(options)
        self.scene = Scene(lines, zones)
        self.listeners: list[EventListener] = []
        self.snapshots: Snapshots | None = None  # --snapshots: a JPEG per event, before the listeners
        self.camera: str | None = None  # a camera of a multi-camera run: its events name it
        # --clips with lines or zones: events start clips and come back naming theirs
        # (edgecnn.run.clips.EventClips), before the snapshots and the listeners see them
        self.clips: Callable[[list[Event]], list[Event]] | None = None
        self.tracks_total: dict[str, int] = {}  # label -> confirmed tracks so far (distinct objects)
        # --object-threshold when the decoder reads below it (--track-low-score, so the tracker's second
        # stage sees the low-score detections): items under it are output only when a track matched them.
        # None: every item is output.
        self.publish_threshold: float | None = None
        self._told_no_boxes = False

    def apply(
        self,
        output: Any,
        *,
        size: tuple[int, int],
        time_s: float,
        timestamp: float,
        frame: int,
        image: np.ndarray | None = None,
    ) -> TrackStep:
        """Track ``output``'s objects in a ``(width, height)`` frame at ``time_s`` (seconds on the clock the
        tracker measures motion and dwell with); events carry ``timestamp`` (Unix seconds) and ``frame``.
        ``image`` (the frame) is what event snapshots show."""
        start = time.perf_counter()  # the items too: a MoveNet pose's box is made here
        items = output.track_items() if isinstance(output, Trackable) else None
        if items is None:
            if not self.scene.empty and not self._told_no_boxes:
                self._told_no_boxes = True
                log.warning(
                    "lines and zones count objects, but this model's results have no boxes: nothing to count"
                )
            return TrackStep(output)
        boxed = [i for i, item in enumerate(items) if item is not None]
        objects = [items[i] for i in boxed]
        boxes = np.array([o.box for o in objects], dtype=np.float64).reshape(-1, 4)
        update = self.tracker.update(boxes, [o.score for o in objects], [o.label for o in objects], time_s)
        ids: list[int | None] = [None] * len(items)
        for i, track_id in zip(boxed, update.ids, strict=True):
            ids[i] = track_id
        events = self.scene.step(
            update.tracks, update.ended, size=size, timestamp=time_s, frame=frame, boxes=update.boxes
        )
        if timestamp != time_s or (events and self.camera is not None):
            events = [replace(e, timestamp=timestamp, camera=self.camera) for e in events]
        if events and self.clips is not None:
            events = self.clips(events)
        if events and self.snapshots is not None and image is not None:
            events = [replace(e, snapshot=snapshot_name(e)) for e in events]
            self.snapshots.write(image, events)
        started = [t.label for t in update.started]
        for label in started:
            self.tracks_total[label] = self.tracks_total.get(label, 0) + 1
        if self.publish_threshold is not None:
            output, items, ids = self._published(output, items, ids, self.publish_threshold)
        scene = self.scene
        tracked = Tracked(
            output,
            tuple(ids),
            tuple(items),
            tuple((t.id, tuple(t.trail)) for t in update.tracks),
            None if scene.empty else scene.counts(),
            (tuple(scene.lines), tuple(scene.zones)),
        )
        step = TrackStep(tracked, events, started, (time.perf_counter() - start) * 1e3)
        if events or started:
            for listener in self.listeners:  # a failing output ends the run, as a result sink's does
                listener.track_step(step, self)
        return step

    @staticmethod
    def _published(
        output: Any, items: Sequence[Any], ids: list[int | None], threshold: float
    ) -> tuple[Any, Sequence[Any], list[int | None]]:
        """What is output of a frame decoded below ``threshold``: the items scoring at least it, and those
        under it that a confirmed track matched (ByteTrack's second stage: a half-hidden object keeps its
        box and ID); low-score items no track took (clutter, a tentative track's) are dropped, through the
        result's own :meth:`~edgecnn.tasks.Keepable.keep`, so nothing downstream branches on the task."""
        if not isinstance(output, Keepable):
            return output, items, ids
        scores = _scores(output, items)
        kept = [i for i, found in enumerate(ids) if found is not None or scores[i] >= threshold]
        if len(kept) == len(items):
            return output, items, ids
        return output.keep(kept), [items[i] for i in kept], [ids[i] for i in kept]
