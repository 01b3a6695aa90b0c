"""Lines, zones and their events on scripted scenes, through the real tracker: exact counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecnn.errors import ConfigError
from edgecnn.track.events import Scene
from edgecnn.track.spec import parse_all, parse_line, parse_zone
from edgecnn.track.tracker import Tracker

SIZE = (640, 480)
FPS = 10


def fail(key: str, problem: str) -> Exception:
    return ConfigError(f"{key}: {problem}")


def one_fail(problem: str) -> Exception:
    return ConfigError(problem)


def box_at(x: float, bottom: float, w: float = 30, h: float = 60) -> list[float]:
    """A box whose bottom-centre (the default anchor) is at (x, bottom)."""
    return [x - w / 2, bottom - h, x + w / 2, bottom]


def play(
    scene: Scene, paths: list[list[tuple[float, float] | None]], label: str = "person", fps: float = FPS
):
    """Each path gives an anchor point (or None: not detected) per frame; every event, in order."""
    tracker = Tracker()
    events = []
    frames = max(len(p) for p in paths)
    for n in range(frames):
        dets = [p[n] for p in paths if n < len(p) and p[n] is not None]
        boxes = np.array([box_at(*d) for d in dets]).reshape(-1, 4)
        update = tracker.update(boxes, [0.9] * len(dets), [label] * len(dets), n / fps)
        events += scene.step(update.tracks, update.ended, size=SIZE, timestamp=n / fps, frame=n)
    # Let every track run out of buffer (exits from zones) with empty frames.
    for n in range(frames, frames + 1 + int(3 * fps)):
        update = tracker.update(np.zeros((0, 4)), [], [], n / fps)
        events += scene.step(update.tracks, update.ended, size=SIZE, timestamp=n / fps, frame=n)
    return events


def straight(start: tuple[float, float], end: tuple[float, float], frames: int, delay: int = 0):
    return [None] * delay + [
        (start[0] + (end[0] - start[0]) * i / (frames - 1), start[1] + (end[1] - start[1]) * i / (frames - 1))
        for i in range(frames)
    ]


def gate(**extra) -> Scene:
    """A vertical line through the middle, drawn bottom to top: left-to-right motion is "in"."""
    line = parse_line({"name": "gate", "points": [[0.5, 1.0], [0.5, 0.0]], **extra}, 1, one_fail)
    return Scene([line])


@pytest.mark.parametrize("count", [1, 5])
def test_n_objects_crossing_count_n(count):
    scene = gate()
    paths = [straight((100, 100 + 70 * i), (540, 120 + 70 * i), 30, delay=3 * i) for i in range(count)]
    events = play(scene, paths)
    assert [e.type for e in events] == ["cross"] * count
    assert {e.direction for e in events} == {"in"}
    assert len({e.track_id for e in events}) == count
    assert scene.crossings == {("gate", "in", "person"): count}
    assert scene.counts()["lines"] == {"gate": {"in": count, "out": 0}}


def test_the_other_way_is_out():
    scene = gate()
    events = play(scene, [straight((540, 300), (100, 300), 30)])
    assert [(e.type, e.direction, e.line) for e in events] == [("cross", "out", "gate")]


def test_a_jitterer_on_the_line_counts_once():
    """Walks up to the line, stands on it jittering for 5 s (its anchor crosses the geometric line again
    and again, never min_distance past it), then walks on: one crossing."""
    x_line = 320
    jitter = [(x_line + 5 * math.sin(i * 1.3), 300.0) for i in range(50)]
    path = straight((100, 300), (x_line, 300), 15) + jitter + straight((x_line, 300), (560, 300), 15)
    sides = np.sign([p[0] - x_line for p in jitter])
    assert np.count_nonzero(np.diff(sides)) > 20  # the raw anchor does cross the line, many times
    events = play(gate(), [path])
    assert [(e.type, e.direction) for e in events] == [("cross", "in")]


def test_dithering_across_counts_each_direction_once():
    x_line = 320
    dither = [(x_line - 40 * math.cos(i * math.pi / 10), 300.0) for i in range(60)]  # 2 s swings, 40 px
    path = straight((100, 300), (x_line - 40, 300), 10) + dither
    events = play(gate(), [path])
    assert sorted(e.direction for e in events) == ["in", "out"]


def test_walking_round_the_end_of_a_segment_is_no_crossing():
    line = parse_line({"name": "door", "points": [320, 100, 320, 250]}, 1, one_fail)
    scene = Scene([line])
    path = straight((100, 300), (540, 300), 30)  # below the segment's lower end
    assert play(scene, [path]) == []


def test_label_filter():
    scene = gate(labels=["car"])
    assert play(scene, [straight((100, 300), (540, 300), 30)], label="person") == []
    assert len(play(gate(labels=["car"]), [straight((100, 300), (540, 300), 30)], label="car")) == 1


def loading(**extra) -> Scene:
    zone = parse_zone({"name": "loading", "points": [[200, 200], [440, 200], [440, 400], [200, 400]], **extra},
                      1, one_fail)  # fmt: skip
    return Scene([], [zone])


def test_enter_dwell_exit_once_each():
    scene = loading(dwell=3.0)
    # Walks in at 100 px/s (a third of its width per frame), stands 5 s, walks out.
    path = straight((100, 300), (300, 300), 21) + [(300.0, 300.0)] * 50 + straight((300, 300), (600, 300), 31)
    events = play(scene, [path])
    assert [e.type for e in events] == ["enter", "dwell", "exit"]
    enter, dwell, leave = events
    assert dwell.timestamp - enter.timestamp == pytest.approx(3.0 - (3 - 1) / FPS, abs=0.15)
    assert dwell.seconds == pytest.approx(3.0, abs=0.15)
    # First inside at 1.0 s, outside from 8.6 s, left after 3 frames outside (inertia): 7.8 s in the zone.
    assert leave.seconds == pytest.approx(7.8, abs=0.2)
    assert leave.frame == 88
    assert scene.counts()["zones"] == {"loading": 0}


def test_occupancy_while_inside_and_exit_when_the_track_ends():
    scene = loading()
    tracker = Tracker()
    events = []
    for n in range(10):  # standing inside
        update = tracker.update(
            np.array([box_at(300, 300), box_at(350, 350)]), [0.9, 0.9], ["person", "dog"], n / FPS
        )
        events += scene.step(update.tracks, update.ended, size=SIZE, timestamp=n / FPS, frame=n)
    assert scene.counts()["zones"] == {"loading": 2}
    assert scene.occupancy[("loading", "dog")] == 1
    for n in range(10, 40):  # both vanish: their tracks end after the buffer, inside the zone
        update = tracker.update(np.zeros((0, 4)), [], [], n / FPS)
        events += scene.step(update.tracks, update.ended, size=SIZE, timestamp=n / FPS, frame=n)
    assert sorted(e.type for e in events) == ["enter", "enter", "exit", "exit"]
    assert scene.counts()["zones"] == {"loading": 0}


def test_inertia_ignores_a_brush_past():
    scene = loading(inertia=4)
    path = straight((100, 190), (600, 190), 30)  # above the zone...
    path[14] = path[15] = path[16] = (path[15][0], 210.0)  # ...dipping in for three frames
    assert play(scene, [path]) == []


def test_fractions_scale_to_the_frame():
    line = parse_line("0.5,0,0.5,1", 1, one_fail)
    assert line.fractions and line.name == "line1"
    pixels = parse_line("320,0,320,480", 2, one_fail)
    assert not pixels.fractions and pixels.points == ((320.0, 0.0), (320.0, 480.0))
    zone = parse_zone("0.1,0.1,0.9,0.1,0.5,0.9", 1, one_fail)
    assert zone.fractions and len(zone.points) == 3


@pytest.mark.parametrize(
    ("lines", "zones", "message"),
    [
        (["1,2,3"], None, "line 1: use 2 points"),
        (["a,b,c,d"], None, "numbers"),
        (["5,5,5,5"], None, "must differ"),
        ([{"points": [0, 0, 1, 1], "directon": ["a", "b"]}], None, "did you mean 'directions'"),
        ([{"points": [0, 0, 1, 1], "min_distance": -1}], None, "min_distance must be between 0"),
        ([{"points": [0, 0, 1, 1], "anchor": "middle"}], None, "anchor must be one of"),
        ([{"points": [0, 0, 1, 1], "directions": ["in", "in"]}], None, "two different names"),
        (None, ["0,0,1,1"], "zone 1: use at least 3 points"),
        (None, [{"points": [0, 0, 1, 0, 1, 1], "dwell": 0}], "dwell must be between"),
        (None, [{"points": [0, 0, 1, 0, 1, 1], "inertia": 2.5}], "inertia must be an integer"),
        (["0,0,1,1", {"name": "line1", "points": "0,1,1,0"}], None, "line1 is used twice"),
    ],
)
def test_bad_specs_are_one_line(lines, zones, message):
    with pytest.raises(ConfigError, match=message):
        parse_all(lines, zones, fail)


def test_an_object_cut_by_the_frame_edge_crosses_a_line_drawn_to_that_edge():
    """A shape sliding along the bottom of the frame, its box a few pixels past the edge (a detector's box,
    or the filter's, of an object the edge cuts): its anchor is held to the frame, so it is level with a
    line from the bottom edge to the top edge and crosses it, once."""
    scene = gate()
    events = play(scene, [straight((100, SIZE[1] + 3), (540, SIZE[1] + 3), 30)])
    assert [(e.type, e.direction) for e in events] == [("cross", "in")]
