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
5. high-score detections still unmatched start tentative tracks; confirmed tracks unmatched for more than
   ``buffer_s`` **seconds** end.

A detection and a track of different labels are never matched. IDs are handed out at confirmation, from 1,
so a false positive never burns one. The buffer is a time, not a frame count: at the measured rate
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


@dataclass(eq=False)
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
    """Tracks of one camera. Not thread-safe: one per pipeline, called from its frame loop."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []  # confirmed (tracked or lost) and tentative
        self.next_id = 1
        self.last_time: float | None = None
        self.interval = DEFAULT_INTERVAL_S  # measured seconds between frames (moving average)
        self._measured = False
        self._codes: dict[str, int] = {}  # label -> a number, so label checks are one array comparison

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
        predicted = np.zeros((0, 4))
        states = np.zeros((0, 5, 4))
        if tracks:
            states = kalman.predict(np.stack([t.state for t in tracks]), dt)
            predicted = kalman.boxes(states)
            for row, (t, s) in enumerate(zip(tracks, states, strict=True)):
                t.state, t.row = s, row
        codes = self._codes
        det_codes = np.array([codes.setdefault(label, len(codes)) for label in det_labels], dtype=np.int64)
        high = np.flatnonzero(det_scores >= opts.high_score).tolist()
        low = np.flatnonzero(det_scores < opts.high_score).tolist()
        confirmed = [t for t in tracks if t.id > 0]
        tentative = [t for t in tracks if t.id == 0]
        matches: list[tuple[Track, int]] = []

        def match(
            candidates: list[Track], dets: list[int], min_iou: float, margin: float = 0.0
        ) -> tuple[list[tuple[Track, int]], list[Track], list[int]]:
            return self._match(candidates, dets, predicted, det_boxes, det_codes, min_iou, margin)

        pairs, left_tracks, left_high = match(confirmed, high, opts.match_iou)
        matches += pairs
        recent = [t for t in left_tracks if not t.lost]  # ByteTrack: low scores only keep live tracks
        pairs, _, _ = match(recent, low, opts.low_match_iou)
        matches += pairs
        pairs, _, left_high = match(tentative, left_high, opts.match_iou, BUFFER_MARGIN)
        matches += pairs

        ids: list[int | None] = [None] * len(det_scores)
        matched_tracks, corrected = self._correct(matches, states, det_boxes, det_scores, timestamp)
        started: list[Track] = []
        for t in matched_tracks:
            if t.id == 0 and t.hits >= opts.min_hits:
                t.id, self.next_id = self.next_id, self.next_id + 1
                started.append(t)
        for t, i in matches:
            if t.id:
                ids[i] = t.id
        shown = [k for k, t in enumerate(matched_tracks) if t.id]

        matched_set = set(matched_tracks)
        kept: list[Track] = []
        ended: list[Track] = []
        lost: list[Track] = []
        for t in tracks:
            if t in matched_set:
                kept.append(t)
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
        return TrackUpdate(
            ids=ids,
            tracks=[matched_tracks[k] for k in shown],
            boxes=kalman.boxes(corrected[shown]) if shown else np.zeros((0, 4)),
            started=started,
            ended=ended,
            lost=lost,
        )

    def _match(
        self,
        tracks: list[Track],
        dets: list[int],
        predicted: np.ndarray,
        det_boxes: np.ndarray,
        det_codes: np.ndarray,
        min_iou: float,
        margin: float = 0.0,
    ) -> tuple[list[tuple[Track, int]], list[Track], list[int]]:
        """Optimal pairs of ``tracks`` (their predicted boxes, rows of ``predicted``) and detections
        ``dets`` overlapping by at least ``min_iou``; tracks and detections left over."""
        if not tracks or not dets:
            return [], list(tracks), list(dets)
        track_boxes, found = predicted[[t.row for t in tracks]], det_boxes[dets]
        if margin:
            track_boxes, found = expand(track_boxes, margin), expand(found, margin)
        cost = 1.0 - iou(track_boxes, found)
        track_codes = np.array([self._codes[t.label] for t in tracks], dtype=np.int64)
        cost[track_codes[:, None] != det_codes[dets][None, :]] = NO_MATCH  # labels never mix
        pairs, rows, cols = assign(cost, 1.0 - min_iou)
        return (
            [(tracks[r], dets[c]) for r, c in pairs],
            [tracks[r] for r in rows],
            [dets[c] for c in cols],
        )

    @staticmethod
    def _correct(
        matches: list[tuple[Track, int]],
        predicted: np.ndarray,
        det_boxes: np.ndarray,
        det_scores: np.ndarray,
        timestamp: float,
    ) -> tuple[list[Track], np.ndarray]:
        """Kalman-update every matched track with its detection (one batched update over the rows of the
        frame's ``predicted`` states); the tracks and their new states."""
        if not matches:
            return [], np.zeros((0, 5, 4))
        tracks = [t for t, _ in matches]
        index = [i for _, i in matches]
        states = kalman.update(predicted[[t.row for t in tracks]], kalman.xyxy_to_cxcywh(det_boxes[index]))
        scores = det_scores[index].tolist()
        centres = states[:, kalman.POS, :2].tolist()
        for t, s, score, centre in zip(tracks, states, scores, centres, strict=True):
            t.state = s
            t.score = score
            t.hits += 1
            t.last_seen = timestamp
            t.lost = False
            t.trail.append((centre[0], centre[1]))
        return tracks, states

    @staticmethod
    def _start(box: np.ndarray, score: float, label: str, timestamp: float) -> Track:
        state = kalman.initiate(kalman.xyxy_to_cxcywh(box))[0]
        track = Track(label, float(score), state, first_seen=timestamp, last_seen=timestamp)
        track.trail.append((float(state[kalman.POS, 0]), float(state[kalman.POS, 1])))
        return track
