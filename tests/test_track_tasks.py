"""Tracking follows every result with boxes, whatever its task: YOLO pose, MoveNet, YOLO seg, not only detectors.

The models are real TFLite graphs whose boxes follow the bright figures of the input (tests/moving_models.py),
run on generated videos of two figures walking through the middle of the frame in opposite directions:
``edgecnn run`` in a real process writes a ``track_id`` beside each pose and in each YOLO seg object, stable
across frames, and the crossings as events; the tracking stage driven with the decoded results of the real
model counts a crossing once however the figure dithers on the line; the overlay draws IDs on pose and seg
frames; a classifier's and a class map's results pass through untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.model import open_model
from edgecnn.run.options import RunOptions
from edgecnn.track.spec import parse_line
from edgecnn.track.stage import Tracked, TrackStage
from tests.conftest import run_cli
from tests.const_models import constant_model
from tests.moving_models import figures_frame, following_model, walking_frames
from tests.run_support import http_get, serving, wait_until, write_video
from tests.test_run_mqtt import broker, needs_broker, subscribers  # noqa: F401  # fixtures

FRAMES = 35  # the top figure's left edge walks 4 -> 106 px of a 128 px frame, 3 px a frame, at 10 fps
SIZE = 128
MIDDLE = "0.5,0,0.5,1"  # drawn top to bottom: left to right is "out", right to left "in"


def _fail(problem: str) -> ValueError:
    return ValueError(problem)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("following")
    paths = {}
    for kind in ("pose", "seg", "movenet"):
        paths[kind] = folder / f"following_{kind}.tflite"
        paths[kind].write_bytes(following_model(kind))
    return paths


@pytest.fixture(scope="module")
def walking_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("walk") / "walk.avi", walking_frames(FRAMES, SIZE), fps=10)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _ids_by_band(items: list[list[dict]]) -> tuple[dict[int, set], int]:
    """The track IDs seen per band (0: top, 1: bottom, by the box's centre) and how many items had none."""
    seen: dict[int, set] = {0: set(), 1: set()}
    untracked = 0
    for frame in items:
        assert len(frame) == 2  # both figures, every frame
        for item in frame:
            assert "track_id" in item  # in every record, None until its track is confirmed
            if item["track_id"] is None:
                untracked += 1
            else:
                seen[int((item["box"][1] + item["box"][3]) / 2 >= SIZE / 2)].add(item["track_id"])
    return seen, untracked


@pytest.mark.parametrize(("kind", "key"), [("pose", "poses"), ("seg", "objects")])
def test_run_writes_stable_track_ids_and_crossings_for_pose_and_seg(
    models, walking_video, tmp_path, kind, key
):
    results, events = tmp_path / "results.jsonl", tmp_path / "events.jsonl"
    result = run_cli(
        "run", models[kind], "--source", walking_video, "--jsonl", results, "--events", events,
        "--line", MIDDLE, "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    rows = _records(results)
    assert len(rows) == FRAMES and all(r["task"] == ("pose" if kind == "pose" else "segment") for r in rows)
    seen, untracked = _ids_by_band([r[key] for r in rows])
    # One ID per figure for the whole walk (no switch, no fragment); the two differ.
    assert len(seen[0]) == len(seen[1]) == 1 and seen[0] != seen[1], seen
    assert untracked <= 2 * 2  # the first frames only, before each track is confirmed (min_hits 2)
    assert all("track" in r["latency_ms"] for r in rows)
    crossings = _records(events)
    assert sorted((e["type"], e["direction"], e["track_id"]) for e in crossings) == sorted(
        [("cross", "out", *seen[0]), ("cross", "in", *seen[1])]
    )
    assert rows[-1]["counts"] == {"lines": {"line1": {"in": 1, "out": 1}}, "zones": {}}


def test_movenet_is_tracked_by_the_box_around_its_keypoints(models, tmp_path):
    video = write_video(tmp_path / "one.avi", walking_frames(FRAMES, SIZE, bands=1), fps=10)
    results, events = tmp_path / "results.jsonl", tmp_path / "events.jsonl"
    result = run_cli(
        "run", models["movenet"], "--source", video, "--jsonl", results, "--events", events, "--line", MIDDLE,
        "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    rows = _records(results)
    ids = [r["poses"][0]["track_id"] for r in rows]
    assert "box" not in rows[0]["poses"][0]  # MoveNet's records stay as they were, plus the ID
    assert ids[:1] == [None] and set(ids[2:]) == {1}
    assert [(e["type"], e["direction"], e["track_id"]) for e in _records(events)] == [("cross", "out", 1)]


def _stage() -> TrackStage:
    return TrackStage([parse_line(MIDDLE, 1, _fail)])


def _apply(stage: TrackStage, result, i: int):
    return stage.apply(result, size=(SIZE, SIZE), time_s=i / 10, timestamp=1000 + i / 10, frame=i)


def test_a_pose_dithering_on_the_line_crosses_once(models):
    """The real model's decoded poses through the stage: the top figure walks to the line, dithers on it
    (its box's bottom centre 1-2 px either side, less than min_distance), then walks on; the bottom one
    stands still. One crossing, "out", by the walker's track; its ID never changes."""
    model = open_model(models["pose"])
    walk = [4 + 3 * i for i in range(17)] + [53, 55, 53, 55, 52, 56, 53, 55] + [58 + 3 * i for i in range(15)]
    stage = _stage()
    events, ids = [], []
    for i, x in enumerate(walk):
        result = model.process(figures_frame([(0, x), (1, 100)], SIZE)).result
        assert sorted(round(p.box[0]) for p in result.poses) == sorted([x, 100])  # the model follows them
        step = _apply(stage, result, i)
        assert isinstance(step.output, Tracked) and step.ms is not None
        events += step.events
        walker = [p for p in step.output.to_json()["poses"] if p["box"][1] < SIZE / 2]
        ids.append(walker[0]["track_id"])
    assert [(e.type, e.direction, e.line) for e in events] == [("cross", "out", "line1")]
    assert events[0].track_id == ids[-1] and set(ids[2:]) == {ids[-1]}
    assert stage.scene.counts()["lines"] == {"line1": {"in": 0, "out": 1}}
    assert stage.tracks_total == {"person": 2}


def test_pose_and_seg_frames_are_drawn_with_their_ids(models):
    for kind in ("pose", "seg"):
        model = open_model(models[kind])
        stage = _stage()
        for i in range(4):
            frame = figures_frame([(0, 30 + 3 * i), (1, 80)], SIZE)
            step = _apply(stage, model.process(frame).result, i)
        tracked = step.output
        assert isinstance(tracked, Tracked) and tracked.track_ids == (1, 2)
        plain, drawn = np.zeros((SIZE, SIZE, 3), np.uint8), np.zeros((SIZE, SIZE, 3), np.uint8)
        tracked.inner.draw(plain)
        tracked.draw(drawn)
        # "#1" sits in the walker's box's bottom-left corner (x1 = 39, y2 = 56); the middle line is drawn.
        label = np.abs(drawn[44:56, 40:60].astype(int) - plain[44:56, 40:60].astype(int)).sum(axis=2)
        assert np.count_nonzero(label > 100) > 20, kind
        assert np.abs(drawn[100:120, 64].astype(int) - (0, 220, 255)).sum(axis=1).max() < 60, kind
        assert np.abs(plain[100:120, 64].astype(int)).max() == 0  # the task's own drawing has no line


def test_a_classifier_and_a_class_map_pass_through_untouched(tmp_path, caplog):
    from edgecnn.bench.runner import time_track

    scores = np.linspace(0, 1, 10, dtype=np.float32)[None]
    (tmp_path / "classify.tflite").write_bytes(constant_model([scores]))
    class_map = np.zeros((1, 32, 32), np.uint8)
    class_map[0, 8:24, 8:24] = 1
    (tmp_path / "map.tflite").write_bytes(constant_model([class_map]))
    for name, task in (("classify", "classify"), ("map", "segment")):
        model = open_model(tmp_path / f"{name}.tflite")
        assert model.task == task
        stage = _stage()
        for i in range(3):
            result = model.process(np.zeros((SIZE, SIZE, 3), np.uint8)).result
            step = _apply(stage, result, i)
            assert step.output is result and step.ms is None and not step.events
            assert "track_id" not in json.dumps(step.output.to_json())
        assert time_track(model, None, runs=3)[0].size == 0  # bench: no track stage to time
    assert "this model's results have no boxes" in caplog.text  # said once per stage, with a line set


def test_latest_carries_track_ids_of_seg_objects_while_serving(models, walking_video):
    options = RunOptions(
        model=models["seg"], source=str(walking_video), loop=True, serve="127.0.0.1:0", lines=[MIDDLE],
        quiet=True,
    )  # fmt: skip
    with serving(options) as base:
        wait_until(lambda: len(json.loads(http_get(base + "/events")[2])["events"]) >= 2)
        latest = wait_until(
            lambda: (
                (got := json.loads(http_get(base + "/latest")[2]))["objects"]
                and all(o["track_id"] is not None for o in got["objects"])
                and got
            )
        )
        assert latest["task"] == "segment" and len(latest["objects"]) == 2
        assert {"in", "out"} <= {
            d for line in latest["counts"]["lines"].values() for d, n in line.items() if n
        }


@needs_broker
def test_pose_results_and_events_over_mqtt_carry_track_ids(models, walking_video, broker, subscribers):  # noqa: F811
    from edgecnn.run.pipeline import run

    sub = subscribers(broker.port, "edgecnn/hall/#")
    run(RunOptions(model=models["pose"], source=str(walking_video), lines=[MIDDLE], quiet=True,
                   mqtt={"host": f"127.0.0.1:{broker.port}", "topic": "edgecnn/hall"}))  # fmt: skip
    wait_until(lambda: len(sub.on("events")) >= 2, timeout=10)
    crossings = [json.loads(m.payload) for m in sub.on("events")]
    assert sorted(e["direction"] for e in crossings) == ["in", "out"]
    results = [json.loads(m.payload) for m in sub.on("result")]
    last = results[-1]["poses"]
    assert {p["track_id"] for p in last} == {e["track_id"] for e in crossings}


def test_bench_times_the_track_stage_of_pose_and_seg_models(models):
    from edgecnn.bench.runner import time_track

    frame = figures_frame([(0, 30), (1, 80)], SIZE)
    for kind in ("pose", "seg", "movenet"):
        samples, objects = time_track(
            open_model(models[kind]),
            frame if kind != "movenet" else figures_frame([(0, 30)], SIZE, bands=1),
            runs=10,
        )
        assert samples.size == 10 and objects == (1 if kind == "movenet" else 2), kind
