"""Tracking in a multi-camera run, and tracking events starting clips.

A detector trained in the session (tests/detectors.py) watches the scripted video of tests/test_run_track.py
(three shapes crossing the middle, left to right) as two cameras sharing the model: ``door`` with a counting
line, ``yard`` with a zone over the left half. Each camera has its own tracker and scene, every event names
its camera and the clip it started, and the clips are on disk after the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.run.cameras import run_cameras
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import run
from tests.run_support import write_video
from tests.test_run_track import MOVERS
from tests.track_scenes import frames_of


@pytest.fixture(scope="module")
def crossing_video(tmp_path_factory) -> Path:
    frames, _ = frames_of(MOVERS, [], fps=10, seconds=5)
    return write_video(tmp_path_factory.mktemp("track") / "crossing.avi", frames, fps=10)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_camera_counts_its_own_lines_and_events_start_clips(detectors, crossing_video, tmp_path):
    events, results, clips = tmp_path / "events.jsonl", tmp_path / "results.jsonl", tmp_path / "clips"
    summaries = run_cameras(
        RunOptions(
            model=detectors["yolo_float"],
            events=events,
            jsonl=str(results),
            clips=str(clips),
            quiet=True,
            cameras=[
                {"name": "door", "source": str(crossing_video), "lines": ["0.5,0,0.5,1"]},
                {"name": "yard", "source": str(crossing_video), "zones": ["0,0,0.5,0,0.5,1,0,1"]},
            ],
        )
    )
    assert set(summaries) == {"door", "yard"}
    found = records(events)
    door = [e for e in found if e["camera"] == "door"]
    yard = [e for e in found if e["camera"] == "yard"]
    assert len(door) + len(yard) == len(found)  # every event names its camera
    # door: its line only (three crossings, no zone events); yard: its zone only (three stays, no crossing)
    assert [(e["type"], e["line"], e["direction"]) for e in door] == [("cross", "line1", "out")] * 3
    assert sorted(e["type"] for e in yard) == ["enter"] * 3 + ["exit"] * 3
    assert all(e["zone"] == "zone1" for e in yard)
    # A crossing and an entering start (or extend) the camera's clip and name it; an exit does not.
    for e in door + yard:
        if e["type"] == "exit":
            assert "clip" not in e
        else:
            assert e["clip"].startswith(f"{e['camera']}/{e['camera']}-") and e["clip"].endswith(".avi"), e
    for e in door + yard:
        if "clip" in e:
            video = clips / e["clip"]
            assert video.is_file() and video.stat().st_size > 1000, video
    # The results of the frame that started each clip name it too (with its snapshot).
    started = {r["clip"]["video"] for r in records(results) if "clip" in r}
    assert {e["clip"] for e in door + yard if "clip" in e} <= started
    counts = {r["camera"]: r["counts"] for r in records(results) if "counts" in r}
    assert counts["door"] == {"lines": {"line1": {"in": 0, "out": 3}}, "zones": {}}
    assert counts["yard"] == {"lines": {}, "zones": {"zone1": 0}}


def test_one_camera_events_start_clips_not_labels_in_view(detectors, crossing_video, tmp_path):
    """With a line, a run of one camera records around its crossings only: frames in which an object is
    in view but nothing crossed start no clip; each crossing's record names its clip, which exists."""
    events, clips = tmp_path / "events.jsonl", tmp_path / "clips"
    run(
        RunOptions(
            model=detectors["yolo_float"],
            source=str(crossing_video),
            events=events,
            lines=["0.5,0,0.5,1"],
            clips=str(clips),
            clip_pre=0.0,
            clip_post=0.0,
            quiet=True,
        )
    )
    crossings = records(events)
    assert [e["type"] for e in crossings] == ["cross"] * 3
    assert "camera" not in crossings[0]  # a one-camera run's records stay as they were
    for e in crossings:
        assert (clips / e["clip"]).is_file(), e
    # With no pre- or post-roll, a clip holds the frames of its crossings only: at most one per crossing,
    # while objects were in view in nearly all of the 50 frames.
    videos = sorted(clips.glob("*.avi"))
    assert 1 <= len(videos) <= 3
    assert {e["clip"] for e in crossings} == {v.name for v in videos}


def test_events_endpoint_of_several_cameras_merges_them_by_time():
    """``/events`` of a multi-camera run: every camera's newest events, by time; ``/camera/NAME/events``
    that camera's."""
    from edgecnn.run.cameras import CameraDirectory
    from edgecnn.run.live import LiveState
    from edgecnn.track.events import Event
    from edgecnn.track.stage import TrackStep

    lives = {name: LiveState(source=name, stall_timeout=5.0) for name in ("door", "yard")}
    for t, name in [(1.0, "door"), (2.0, "yard"), (3.0, "door"), (4.0, "yard")]:
        event = Event("cross", t, int(t), 1, "person", 0.9, line="line1", direction="in", camera=name)
        lives[name].track_step(TrackStep(None, [event]), None)
    directory = CameraDirectory(lives)
    routed = directory.route("/events")
    assert not isinstance(routed, tuple) and routed is not None
    assert [(e["camera"], e["timestamp"]) for e in routed.live.events(3)] == [
        ("yard", 2.0),
        ("door", 3.0),
        ("yard", 4.0),
    ]
    door = directory.route("/camera/door/events")
    assert not isinstance(door, tuple) and door is not None and door.path == "/events"
    assert [e["timestamp"] for e in door.live.events(10)] == [1.0, 3.0]
