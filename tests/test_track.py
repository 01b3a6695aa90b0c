"""The tracker on scripted detections: IDs through gaps, low scores, crossings; new IDs after the buffer."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.track.tracker import Tracker, TrackerOptions


def box(cx: float, cy: float, w: float = 40, h: float = 60) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def run(
    tracker: Tracker, frames: list[list[tuple[list[float], float, str]]], fps: float
) -> list[list[int | None]]:
    """Feed ``frames`` (each a list of (box, score, label)) at ``fps``; the IDs per frame."""
    out = []
    for n, dets in enumerate(frames):
        boxes = np.array([d[0] for d in dets]).reshape(-1, 4)
        update = tracker.update(boxes, [d[1] for d in dets], [d[2] for d in dets], 1000.0 + n / fps)
        out.append(update.ids)
    return out


def walker(n: int, fps: float, *, start=(50.0, 100.0), speed=(60.0, 0.0), gaps=(), score=0.9, label="person"):
    """One object walking at ``speed`` pixels per second; frames in ``gaps`` have no detection."""
    frames = []
    for i in range(n):
        t = i / fps
        frames.append(
            [] if i in gaps else [(box(start[0] + speed[0] * t, start[1] + speed[1] * t), score, label)]
        )
    return frames


def merge(*scenes):
    return [[d for part in parts for d in part] for parts in zip(*scenes, strict=True)]


@pytest.mark.parametrize("fps", [5, 10, 30])
def test_two_objects_keep_their_ids(fps):
    n = 4 * fps
    scene = merge(walker(n, fps, start=(50, 80)), walker(n, fps, start=(400, 300), speed=(-50, 10)))
    ids = run(Tracker(), scene, fps)
    # Confirmed on the second frame (min_hits 2); from then on each walker has one ID.
    assert ids[0] == [None, None]
    assert all(frame == [1, 2] for frame in ids[1:])


@pytest.mark.parametrize("fps", [5, 10, 30])
def test_id_survives_missed_detections_shorter_than_the_buffer(fps):
    gap = set(range(fps, fps + int(1.5 * fps)))  # 1.5 s without a detection (default buffer 2 s)
    ids = run(Tracker(), walker(3 * fps, fps, gaps=gap), fps)
    seen = {i for frame in ids for i in frame if i is not None}
    assert seen == {1}
    assert ids[-1] == [1]


@pytest.mark.parametrize("fps", [5, 30])
def test_back_after_the_buffer_is_a_new_id(fps):
    gap = set(range(fps, fps + int(1.6 * fps)))  # 1.6 s away, buffer 1 s
    tracker = Tracker(TrackerOptions(buffer_s=1.0))
    ids = run(tracker, walker(4 * fps, fps, speed=(20, 0), gaps=gap), fps)
    before = {i for frame in ids[:fps] for i in frame if i}
    after = {i for frame in ids[fps + len(gap) + 1 :] for i in frame if i}
    assert before == {1} and after == {2}
    assert tracker.buffer_frames == fps  # the 1 s buffer at the measured rate


def test_buffer_is_seconds_at_the_measured_rate():
    """The same 0.9 s gap keeps the ID at 5 fps (4 frames) and at 30 fps (27 frames) with a 1 s buffer."""
    for fps in (5, 30):
        gap = set(range(fps, fps + int(0.9 * fps)))
        ids = run(Tracker(TrackerOptions(buffer_s=1.0)), walker(3 * fps, fps, gaps=gap), fps)
        assert {i for frame in ids for i in frame if i} == {1}, fps


def test_one_frame_false_positive_never_gets_an_id():
    fps = 10
    scene = walker(20, fps)
    scene[5] = [*scene[5], (box(300, 300), 0.95, "person")]
    ids = run(Tracker(), scene, fps)
    assert {i for frame in ids for i in frame if i} == {1}
    assert ids[5][1] is None


def test_low_scores_keep_a_track_but_never_start_one():
    fps = 10
    scene = walker(30, fps)
    for i in range(10, 20):  # half hidden: the detector's score drops below high_score
        ((b, _, label),) = scene[i]
        scene[i] = [(b, 0.3, label)]
    scene = merge(scene, walker(30, fps, start=(300, 300), speed=(0, 0), score=0.3))  # low-score clutter
    tracker = Tracker()
    ids = run(tracker, scene, fps)
    assert all(frame[0] == 1 for frame in ids[1:])
    assert all(frame[1] is None for frame in ids)
    assert tracker.next_id == 2


def test_crossing_paths_keep_ids():
    """Two walkers cross, overlapping for a few frames, and come out with the IDs they went in with."""
    fps = 10
    n = 40
    a = walker(n, fps, start=(50, 100), speed=(100, 0))
    b = walker(n, fps, start=(450, 115), speed=(-100, 0))
    ids = run(Tracker(), merge(a, b), fps)
    assert all(frame == [1, 2] for frame in ids[1:])


def test_labels_are_never_mixed():
    fps = 10
    a = walker(20, fps, label="person")
    b = walker(20, fps, start=(52, 100), label="dog")  # the same place, another label
    tracker = Tracker()
    ids = run(tracker, merge(a, b), fps)
    assert ids[-1] == [1, 2]
    assert sorted(t.label for t in tracker.tracks) == ["dog", "person"]


def test_bad_timestamps_count_as_one_interval():
    tracker = Tracker()
    for t in (10.0, 10.1, 10.1, 9.0, float("nan"), 10.4):
        update = tracker.update(np.array([box(100, 100)]), [0.9], ["car"], t)
    assert update.ids == [1]
    assert tracker.fps == pytest.approx(10, rel=0.5)


def shrinking_then_gone(fps: int = 10) -> list[list[tuple[list[float], float, str]]]:
    """A 30 px shape moving right at 45 px/s that slides under another: for three frames its visible box (down to half)
    loses 5 px more of its leading edge each frame (the box's centre slows and the box narrows, so the
    filter's velocity drops), for three it is not seen at all, then it comes out whole where it really is."""
    frames = []
    for i in range(40):
        x1 = 20 + 45 * i / fps
        if 20 <= i < 23:
            frames.append([([x1, 50, x1 + 30 - 5 * (i - 19), 80], 0.9, "triangle")])
        elif 23 <= i < 26:
            frames.append([])
        else:
            frames.append([([x1, 50, x1 + 30, 80], 0.9, "triangle")])
    return frames


def test_an_object_back_from_under_another_keeps_its_id():
    """Its prediction drifted behind it while it was half hidden, too far for the first stage's overlap:
    the track it starts when it comes back is confirmed with the lost track's ID, which is counted once."""
    tracker = Tracker()
    started: list[int] = []
    ids = []
    trail: list[tuple[float, float]] = []
    for n, dets in enumerate(shrinking_then_gone()):
        boxes = np.array([d[0] for d in dets]).reshape(-1, 4)
        update = tracker.update(boxes, [d[1] for d in dets], [d[2] for d in dets], n / 10)
        started += [t.id for t in update.started]
        ids.append(update.ids)
        if n > 26 and update.ids == [1] and not trail:
            trail = list(update.tracks[0].trail)  # the frame it got its ID back
            newest = float(boxes[0, 0] + boxes[0, 2]) / 2
    assert {i for frame in ids for i in frame if i} == {1}
    assert ids[-1] == [1] and started == [1] and tracker.next_id == 2
    (track,) = tracker.tracks
    assert track.first_seen == 0.0  # the object's own track, not a new one
    # Its trail runs on: centres from before it slid under (x < 130), then the new ones up to this frame.
    assert len(trail) == 16 and trail[0][0] < 130 and abs(trail[-1][0] - newest) < 3, trail


def test_a_false_positive_beside_a_lost_track_never_takes_it():
    """While an object is hidden, a one-frame false positive of its label appears a box-height from where
    it is predicted (in reach of grown boxes): it never gets the lost track's ID (a lost track is resumed
    only by a track confirmed on two detections), and the object, back where it was heading, keeps it."""
    fps = 10
    scene = walker(40, fps, start=(50, 200), speed=(50, 0), gaps=set(range(10, 20)))
    scene[15] = [(box(50 + 50 * 1.5, 200 - 50), 0.9, "person")]  # 50 px above the hidden walker
    ids = run(Tracker(), scene, fps)
    assert ids[15] == [None]
    assert {i for frame in ids for i in frame if i} == {1}
    assert ids[-1] == [1]


def test_high_score_sets_what_starts_a_track():
    """A walker detected at 0.3 throughout: never an ID at the default high score (0.5), one from its second
    detection when the high score is 0.25."""
    fps = 10
    scene = walker(10, fps, score=0.3)
    assert {i for frame in run(Tracker(), scene, fps) for i in frame if i} == set()
    ids = run(Tracker(TrackerOptions(high_score=0.25)), scene, fps)
    assert ids[0] == [None] and all(frame == [1] for frame in ids[1:])
