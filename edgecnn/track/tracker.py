"""ByteTrack-style multi-object tracking: detections in, stable track IDs out.

Per frame (:meth:`Tracker.update`):

1. every track's box is predicted to this frame's time (:mod:`edgecnn.track.kalman`, ``dt`` from the
   frames' timestamps);
2. **high-score** detections (``score >= high_score``) are matched to confirmed tracks, those seen last
   frame and those lost within the buffer, by box overlap (:mod:`edgecnn.track.match`);
3. **low-score** detections are matched to the confirmed tracks still unmatched that were seen last
   frame, with a stricter overlap: a half-hidden person whose score dropped keeps its track instead of
   breaking it (ByteTrack's point), while low-score clutter never starts or steals a track;
4. tentative tracks (seen fewer than ``min_hits`` times) are matched to the high-score detections left,
   on boxes grown by half their size (a new track has no velocity yet, and a fast object at a low frame
   rate moves most of its width between frames); one that misses a frame is dropped, so a one-frame false
   positive never gets an ID;
5. a tentative track confirmed this frame takes the ID of a confirmed track left unmatched whose predicted
   box overlaps its box, both grown as in 4 (same label, best pairs): an object back from behind a pillar
   or from under another, whose prediction drifted while its visible box shrank and so missed stage 2's
   plain overlap. Only a track confirmed on ``min_hits`` detections resumes one, so a one-frame false
   positive beside a hidden object never takes its track over (measured on benchmarks/tracking.py:
   matching lost tracks to single detections on grown boxes did, and cost ID switches);
6. high-score detections still unmatched start tentative tracks; confirmed tracks unmatched for more than
   ``buffer_s`` **seconds** end.

A detection and a track of different labels are never matched: measured on benchmarks/tracking.py's
videos, class-agnostic association (ByteTrack's) gave a circle entering the frame the ID of a triangle
that had just left there (IDF1 0.94 -> 0.79 at 10 fps). IDs are handed out at confirmation, from 1, so a
false positive never burns one. The buffer is a time, not a frame count: at the measured rate
(:attr:`Tracker.fps`, from the timestamps) it is :attr:`Tracker.buffer_frames` frames, so one setting
holds IDs through the same occlusion at 4 fps on a Pi and at 30 on a desktop.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgecnn.track import kalman
from edgecnn.track.match import NO_MATCH, assign, expand, iou

TRAIL_POINTS = 16  # box centres kept per track for the overlay's trail
DEFAULT_INTERVAL_S = 1 / 30  # assumed frame interval until two timestamps have been seen
# A tentative track has no velocity yet, and at 5 fps a car moves most of its width between frames: it is
# matched on boxes grown by half their size each side (C-BIoU, Yang et al. 2023). Confirmed tracks are not:
# measured on benchmarks/tracking.py, grown boxes let them jump to a false positive beside a missed object.
BUFFER_MARGIN = 0.5


@dataclass(frozen=True)
class TrackerOptions:
    high_score: float = 0.5  # detections scoring at least this start tracks and match first
    match_iou: float = 0.2  # overlap a high-score detection needs with a track's predicted box
    low_match_iou: float = 0.5  # overlap a low-score detection needs (stricter: it may be clutter)
    min_hits: int = 2  # detections before a track is confirmed and gets an ID
    buffer_s: float = 2.0  # seconds a confirmed track survives unmatched (occlusion, missed detections)


@dataclass(eq=False, slots=True)
class Track:
    """One followed object. ``id`` is 0 until the track is confirmed."""

    label: str
    score: float
    state: np.ndarray  # (5, 4) Kalman state, see edgecnn.track.kalman
    first_seen: float
    last_seen: float
    id: int = 0
    hits: int = 1
    lost: bool = False  # not matched this frame (the box is a prediction)
    row: int = -1  # this frame's row in the tracker's predicted boxes
    trail: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=TRAIL_POINTS))

    @property
    def confirmed(self) -> bool:
        return self.id > 0

    @property
    def box(self) -> tuple[float, float, float, float]:
        cx, cy, w, h = self.state[kalman.POS]
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame did to the tracks."""

    ids: list[int | None]  # per detection, in input order: its confirmed track's ID, or None
    tracks: list[Track]  # confirmed tracks matched this frame (their box is the filtered one)
    boxes: np.ndarray  # (len(tracks), 4) their filtered boxes, corners in pixels
    started: list[Track]  # tracks confirmed this frame (each appears once in a run)
    ended: list[Track]  # confirmed tracks that ran out of buffer this frame
    lost: list[Track]  # confirmed tracks unmatched this frame but still buffered


class Tracker:
    """Tracks of one camera. Not thread-safe: one per pipeline, called from its frame loop.

    The Kalman states of all tracks live in one ``(N, 5, 4)`` array whose rows follow :attr:`tracks`; each
    :attr:`Track.state` is a view of its row, so a frame predicts and corrects every track with a few
    whole-array operations and nothing is stacked or copied back per track. The array is rebuilt only on
    frames where tracks start or end.
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []  # confirmed (tracked or lost) and tentative
        self.next_id = 1
        self.last_time: float | None = None
        self.interval = DEFAULT_INTERVAL_S  # measured seconds between frames (moving average)
        self._measured = False
        self._codes: dict[str, int] = {}  # label -> a number, so label checks are one array comparison
        self._states = kalman.stack([])  # row k: the state of tracks[k] (whose .state is a view of it)
        self._track_codes = np.zeros(0, dtype=np.int64)  # row k: the label code of tracks[k]
        self._rows_of: list[Track] = []  # the tracks the rows were built for (in order)

    @property
    def fps(self) -> float:
        """The measured frame rate (from the timestamps; 30 until two frames were seen)."""
        return 1.0 / self.interval

    @property
    def buffer_frames(self) -> int:
        """The buffer in frames at the measured rate (what ByteTrack's ``track_buffer`` would be)."""
        return max(1, math.ceil(self.options.buffer_s * self.fps))

    def _step(self, timestamp: float) -> tuple[float, float]:
        """(seconds since the last frame, this frame's time). A timestamp that is not a number, repeats
        or goes back (a clock step) counts as one measured interval after the last frame."""
        last = self.last_time
        if last is None:
            now = timestamp if math.isfinite(timestamp) else 0.0
            self.last_time = now
            return self.interval, now
        if not math.isfinite(timestamp) or not last < timestamp:
            self.last_time = last + self.interval
            return self.interval, self.last_time
        dt = timestamp - last
        self.interval = dt if not self._measured else 0.9 * self.interval + 0.1 * dt
        self._measured = True
        self.last_time = timestamp
        return dt, timestamp

    def _rows(self) -> None:
        """Lay the states of :attr:`tracks` out as rows of one array again (after tracks started or ended)."""
        tracks = self.tracks
        self._states = kalman.stack([t.state for t in tracks])
        self._track_codes = np.array([self._codes[t.label] for t in tracks], dtype=np.int64)
        for row, (t, state) in enumerate(zip(tracks, self._states, strict=True)):  # iterating: the row views
            t.state, t.row = state, row
        self._rows_of = list(tracks)

    def update(
        self,
        boxes: np.ndarray | Sequence[Sequence[float]],
        scores: Sequence[float],
        labels: Sequence[str],
        timestamp: float,
    ) -> TrackUpdate:
        """One frame's detections (``(N, 4)`` corner boxes in pixels, scores, labels) at ``timestamp``
        seconds (any clock that moves forward with the frames)."""
        opts = self.options
        dt, timestamp = self._step(timestamp)
        det_boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        det_scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        det_labels = list(labels)
        tracks = self.tracks
        if tracks != self._rows_of:  # tracks changed from outside since the last frame
            self._rows()
        states = self._states
        kalman.predict(states, dt)  # in place: every Track.state (a view of its row) moves with it
        codes = self._codes
        det_code_list = [codes.setdefault(label, len(codes)) for label in det_labels]
        # One overlap matrix for the frame (tracks x detections), labels that differ never matched; the
        # association stages take their blocks of it.
        cost = np.zeros((len(tracks), len(det_scores)))
        if len(tracks) and len(det_scores):
            cost = 1.0 - iou(kalman.boxes(states), det_boxes)
            if len(codes) > 1:
                det_codes = np.array(det_code_list, dtype=np.int64)
                cost[self._track_codes[:, None] != det_codes[None, :]] = NO_MATCH  # labels never mix
        high = np.flatnonzero(det_scores >= opts.high_score).tolist()
        low = np.flatnonzero(det_scores < opts.high_score).tolist()
        confirmed = [row for row, t in enumerate(tracks) if t.id > 0]
        tentative = [row for row, t in enumerate(tracks) if t.id == 0]
        matches: list[tuple[int, int]] = []  # (track row, detection)

        pairs, left_tracks, left_high = _match(cost, confirmed, high, opts.match_iou)
        matches += pairs
        recent = [
            row for row in left_tracks if not tracks[row].lost
        ]  # ByteTrack: low scores only keep live tracks
        pairs, _, _ = _match(cost, recent, low, opts.low_match_iou)
        matches += pairs
        pairs, left_high = _match_grown(states, det_boxes, cost, tentative, left_high, opts.match_iou)
        matches += pairs

        ids: list[int | None] = [None] * len(det_scores)
        matched_rows = {row for row, _ in matches}
        unmatched = [row for row in confirmed if row not in matched_rows]
        matched_tracks, corrected = self._correct(matches, det_boxes, det_scores, timestamp)
        confirming = [k for k, t in enumerate(matched_tracks) if t.id == 0 and t.hits >= opts.min_hits]
        absorbed = self._resume(confirming, matched_tracks, corrected, unmatched)
        started: list[Track] = []
        for k in confirming:
            t = matched_tracks[k]
            if t.id == 0:
                t.id, self.next_id = self.next_id, self.next_id + 1
                started.append(t)
        for (_row, i), t in zip(matches, matched_tracks, strict=True):
            if t.id:
                ids[i] = t.id
        shown = [k for k, t in enumerate(matched_tracks) if t.id]

        kept: list[Track] = []
        ended: list[Track] = []
        lost: list[Track] = []
        for row, t in enumerate(tracks):
            if row in matched_rows:
                kept.append(t)
            elif row in absorbed:
                continue  # a lost track whose object came back as a new track: that track carries its ID on
            elif t.id == 0:
                continue  # a tentative track that missed a frame: noise, gone without an ID
            elif timestamp - t.last_seen > opts.buffer_s:
                ended.append(t)
            else:
                if not t.lost:  # unseen: keep moving, but stop growing or shrinking (ByteTrack does the same)
                    t.state[kalman.VEL, 2:] = 0.0
                t.lost = True
                kept.append(t)
                lost.append(t)
        for i in left_high:
            track = self._start(det_boxes[i], det_scores[i], det_labels[i], timestamp)
            kept.append(track)
            if opts.min_hits <= 1:
                track.id, self.next_id = self.next_id, self.next_id + 1
                started.append(track)
                ids[i] = track.id
        self.tracks = kept
        if len(kept) != len(tracks) or left_high:  # tracks started or ended: new rows
            self._rows()
        else:
            self._rows_of = kept
        return TrackUpdate(
            ids=ids,
            tracks=[matched_tracks[k] for k in shown],
            boxes=kalman.boxes(corrected[shown]) if shown else np.zeros((0, 4)),
            started=started,
            ended=ended,
            lost=lost,
        )

    def _correct(
        self,
        matches: list[tuple[int, int]],
        det_boxes: np.ndarray,
        det_scores: np.ndarray,
        timestamp: float,
    ) -> tuple[list[Track], np.ndarray]:
        """Kalman-update every matched track (row) with its detection (one batched update over those rows
        of the state array); the tracks and their new states."""
        if not matches:
            return [], np.zeros((0, 5, 4))
        rows = [row for row, _ in matches]
        index = [i for _, i in matches]
        states = kalman.update(kalman.take(self._states, rows), kalman.xyxy_to_cxcywh(det_boxes[index]))
        self._states[rows] = states
        scores = det_scores[index].tolist()
        centres = states[:, kalman.POS, :2].tolist()
        tracks = [self.tracks[row] for row in rows]
        for t, score, centre in zip(tracks, scores, centres, strict=True):
            t.score = score
            t.hits += 1
            t.last_seen = timestamp
            t.lost = False
            t.trail.append((centre[0], centre[1]))
        return tracks, states

    def _resume(
        self, confirming: list[int], matched: list[Track], corrected: np.ndarray, unmatched: list[int]
    ) -> set[int]:
        """Give tracks confirmed this frame (``confirming``, indices into ``matched``) the ID of an unmatched
        confirmed track (rows ``unmatched``) whose predicted box overlaps theirs, both grown by
        ``BUFFER_MARGIN``, by at least ``match_iou`` (same label; the best pairs): an object that came back
        from behind something, or from under another, whose prediction drifted while it was half hidden.
        Done at confirmation, not on the first detection, so a one-frame false positive beside a lost track
        never takes it over. The rows whose IDs moved on."""
        if not confirming or not unmatched:
            return set()
        tracks = self.tracks
        overlap = iou(
            expand(kalman.boxes(kalman.take(self._states, unmatched)), BUFFER_MARGIN),
            expand(kalman.boxes(kalman.take(corrected, confirming)), BUFFER_MARGIN),
        )
        cost = 1.0 - overlap
        if len(self._codes) > 1:  # labels never mix (one label seen so far: nothing to check)
            for r, row in enumerate(unmatched):
                for c, k in enumerate(confirming):
                    if tracks[row].label != matched[k].label:
                        cost[r, c] = NO_MATCH
        pairs, _, _ = assign(cost, 1.0 - self.options.match_iou)
        absorbed = set()
        for r, c in pairs:
            old, new = tracks[unmatched[r]], matched[confirming[c]]
            new.id, new.first_seen = old.id, old.first_seen
            new.trail = deque([*old.trail, *new.trail], maxlen=TRAIL_POINTS)  # the trail runs on
            absorbed.add(unmatched[r])
        return absorbed

    @staticmethod
    def _start(box: np.ndarray, score: float, label: str, timestamp: float) -> Track:
        state = kalman.initiate_box(box)
        track = Track(label, float(score), state, first_seen=timestamp, last_seen=timestamp)
        track.trail.append((float(state[kalman.POS, 0]), float(state[kalman.POS, 1])))
        return track


def _match_grown(
    states: np.ndarray,
    det_boxes: np.ndarray,
    cost: np.ndarray,
    rows: list[int],
    dets: list[int],
    min_iou: float,
) -> tuple[list[tuple[int, int]], list[int]]:
    """Optimal pairs of track ``rows`` and detections ``dets`` whose boxes, grown by ``BUFFER_MARGIN`` of
    their size each side, overlap by at least ``min_iou`` (pairs the frame's ``cost`` forbids stay
    forbidden); the pairs and the detections left over."""
    if not rows or not dets:
        return [], list(dets)
    grown = 1.0 - iou(
        expand(kalman.boxes(kalman.take(states, rows)), BUFFER_MARGIN), expand(det_boxes[dets], BUFFER_MARGIN)
    )
    grown[cost.take(rows, axis=0).take(dets, axis=1) == NO_MATCH] = NO_MATCH  # labels never mix
    found, _, cols = assign(grown, 1.0 - min_iou)
    return [(rows[r], dets[c]) for r, c in found], [dets[c] for c in cols]


def _match(
    cost: np.ndarray, rows: list[int], dets: list[int], min_iou: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal pairs of track ``rows`` and detections ``dets`` (a block of the frame's ``cost`` matrix)
    overlapping by at least ``min_iou``; the rows and detections left over."""
    if not rows or not dets:
        return [], list(rows), list(dets)
    pairs, left_rows, left_cols = assign(cost.take(rows, axis=0).take(dets, axis=1), 1.0 - min_iou)
    return (
        [(rows[r], dets[c]) for r, c in pairs],
        [rows[r] for r in left_rows],
        [dets[c] for c in left_cols],
    )
