"""Tracking inside ``edgecnn run``: a detector trained in the session on a video of shapes crossing a line.

Real model (tests/detectors.py), real video file, real pipeline, real HTTP server and MQTT broker: track IDs
in the JSONL records, exact crossing events in the events file, counts in ``/latest``, ``/events``,
``/metrics`` and on MQTT; classifiers and ``--no-track`` untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import run
from tests.conftest import MOBILENET, error_lines, run_cli
from tests.run_support import http_get, numbered_frame, serving, wait_until, write_video
from tests.test_run_mqtt import broker, needs_broker, subscribers  # noqa: F401  # fixtures
from tests.test_service import _image_root, needs_systemctl
from tests.track_scenes import Mover, frames_of

# Three shapes (square, triangle, square) crossing the middle of a 160x120 frame left to right, one after
# the other, at 10 fps for 5 s. The line 0.5,0,0.5,1 is drawn top to bottom: left to right is "out".
MOVERS = [
    Mover(1, 0, 28, (-30, 8), (50, 0), 0.0),
    Mover(2, 2, 30, (-30, 46), (45, 0), 0.6),
    Mover(3, 0, 28, (-30, 84), (55, 0), 1.2),
]


@pytest.fixture(scope="module")
def crossing_video(tmp_path_factory) -> Path:
    frames, _ = frames_of(MOVERS, [], fps=10, seconds=5)
    return write_video(tmp_path_factory.mktemp("track") / "crossing.avi", frames, fps=10)


@pytest.fixture(scope="module")
def detector(detectors) -> Path:
    return detectors["yolo_float"]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_three_shapes_crossing_give_three_events_and_stable_ids(detector, crossing_video, tmp_path):
    results, events = tmp_path / "results.jsonl", tmp_path / "events.jsonl"
    summary = run(
        RunOptions(
            model=detector,
            source=str(crossing_video),
            jsonl=str(results),
            events=events,
            lines=["0.5,0,0.5,1"],
            zones=["0,0,0.5,0,0.5,1,0,1"],  # the left half
            quiet=True,
        )
    )
    crossings = [e for e in records(events) if e["type"] == "cross"]
    assert [(e["line"], e["direction"]) for e in crossings] == [("line1", "out")] * 3
    assert sorted(e["label"] for e in crossings) == ["square", "square", "triangle"]
    assert len({e["track_id"] for e in crossings}) == 3
    zone_events = [(e["type"], e["track_id"]) for e in records(events) if e["type"] != "cross"]
    assert sorted(t for t, _ in zone_events) == ["enter"] * 3 + ["exit"] * 3  # each left the left half
    # Times are the video's own (frame / 10 fps), not the wall clock of a run that takes a fraction of a
    # second: each shape spends 1.4-1.9 s of video in the left half.
    stays = [e["seconds"] for e in records(events) if e["type"] == "exit"]
    assert all(1.2 < s < 2.2 for s in stays), stays
    rows = records(results)
    ids = {o["track_id"] for r in rows for o in r["objects"]} - {None}
    assert ids == {1, 2, 3}  # three objects, three IDs: no switch, no fragment
    assert rows[-1]["counts"] == {"lines": {"line1": {"in": 0, "out": 3}}, "zones": {"zone1": 0}}
    assert all("track" in r["latency_ms"] for r in rows)
    assert "track" in summary.mean_ms


def test_no_track_leaves_records_as_they_were(detector, crossing_video, tmp_path):
    results = tmp_path / "results.jsonl"
    summary = run(
        RunOptions(model=detector, source=str(crossing_video), jsonl=str(results), track=False, quiet=True)
    )
    rows = records(results)
    assert any(r["objects"] for r in rows)
    assert all("track_id" not in o for r in rows for o in r["objects"])
    assert all("counts" not in r and "track" not in r["latency_ms"] for r in rows)
    assert "track" not in summary.mean_ms


def test_a_classifier_passes_through_untouched(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i) for i in range(5)])
    results = tmp_path / "results.jsonl"
    summary = run(RunOptions(model=MOBILENET, source=str(video), jsonl=str(results), quiet=True))
    rows = records(results)
    assert len(rows) == 5 and all("classes" in r and "track" not in r["latency_ms"] for r in rows)
    assert "track" not in summary.mean_ms


def test_latest_events_and_metrics_while_serving(detector, crossing_video):
    options = RunOptions(
        model=detector, source=str(crossing_video), loop=True, serve="127.0.0.1:0", lines=["0.5,0,0.5,1"],
        quiet=True,
    )  # fmt: skip
    with serving(options) as base:

        def events() -> list[dict]:
            return json.loads(http_get(base + "/events")[2])["events"]

        # The video loops: the first pass's three crossings, then the next pass's (new tracks, new IDs).
        wait_until(lambda: len(events()) >= 3)
        first = events()[:3]
        assert [e["direction"] for e in first] == ["out"] * 3
        assert len(json.loads(http_get(base + "/events?n=2")[2])["events"]) == 2
        latest = json.loads(http_get(base + "/latest")[2])
        assert latest["counts"]["lines"]["line1"]["out"] >= 3
        assert all("track_id" in o for o in latest["objects"])
        metrics = http_get(base + "/metrics")[2].decode()
        assert 'edgecnn_line_crossings_total{direction="out",label="square",line="line1"}' in metrics
        assert 'edgecnn_tracks_total{label="triangle"}' in metrics
        assert "edgecnn_track_seconds_count" in metrics


@needs_broker
def test_events_and_retained_counts_over_mqtt(detector, crossing_video, broker, subscribers):  # noqa: F811
    sub = subscribers(broker.port, "edgecnn/door/#")
    run(RunOptions(model=detector, source=str(crossing_video), lines=["0.5,0,0.5,1"], quiet=True,
                   mqtt={"host": f"127.0.0.1:{broker.port}", "topic": "edgecnn/door"}))  # fmt: skip
    wait_until(lambda: len(sub.on("events")) >= 3, timeout=10)
    crossings = [json.loads(m.payload) for m in sub.on("events")]
    assert [(e["type"], e["direction"]) for e in crossings] == [("cross", "out")] * 3
    counts = [json.loads(m.payload) for m in sub.on("counts")]
    assert counts[-1] == {"lines": {"line1": {"in": 0, "out": 3}}, "zones": {}}
    late = subscribers(broker.port, "edgecnn/door/counts")  # retained: a new subscriber gets the counts
    wait_until(lambda: late.on("counts"), timeout=10)
    assert json.loads(late.on("counts")[-1].payload)["lines"]["line1"]["out"] == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--line", "1,2,3"], "--line: line 1: use 2 points"),
        (["--zone", "0,0,1,1"], "--zone: zone 1: use at least 3 points"),
        (["--no-track", "--line", "0,0,1,1"], "counting and events need tracking"),
        (["--track-buffer", "-1"], "must be between 0 and 3600"),
        (["--track-min-hits", "0"], "'--track-min-hits': must be between 1 and 1000, got 0"),
        (["--track-min-hits", "2.5"], "--track-min-hits"),
        (["--track-high-score", "1.5"], "'--track-high-score': must be between 0 and 1, got 1.5"),
        (["--track-high-score", "nan"], "'--track-high-score': must be between 0 and 1"),
    ],
)
def test_bad_flags_are_one_line(args, words, tmp_path, coral):
    result = run_cli("run", MOBILENET, "--source", "demo", *args)
    assert result.code == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and words in lines[0], result.stderr


def first_ids(rows: list[dict]) -> dict[int, int]:
    """Track ID -> the frame it first appears in."""
    first: dict[int, int] = {}
    for r in rows:
        for o in r["objects"]:
            if o["track_id"] is not None:
                first.setdefault(o["track_id"], r["frame"])
    return first


def test_min_hits_sets_when_ids_appear(detector, crossing_video, tmp_path):
    """--track-min-hits N: an object gets its ID on its Nth detection in a row (1: the first), through a
    real run; the shapes are the same objects whatever N, so each still counts once."""
    firsts = {}
    for hits in (1, 4):
        results, events = tmp_path / f"results{hits}.jsonl", tmp_path / f"events{hits}.jsonl"
        run(RunOptions(model=detector, source=str(crossing_video), jsonl=str(results), events=events,
                       lines=["0.5,0,0.5,1"], track_min_hits=hits, quiet=True))  # fmt: skip
        rows = records(results)
        # the first detection that may start a track (scoring at least --track-high-score, 0.5)
        first_seen = next(r["frame"] for r in rows if any(o["score"] >= 0.5 for o in r["objects"]))
        firsts[hits] = first_ids(rows)
        assert len(firsts[hits]) == 3, firsts  # three shapes, three IDs
        assert [e["direction"] for e in records(events) if e["type"] == "cross"] == ["out"] * 3
        if hits == 1:
            assert firsts[1][1] == first_seen  # an ID on that first detection
    # Each shape's ID comes at least three frames later when four detections are needed instead of one.
    assert all(firsts[4][i] >= firsts[1][i] + 3 for i in (1, 2, 3)), firsts


def test_tracker_options_in_config_and_camera_tables(tmp_path, coral):
    from edgecnn.errors import ConfigError
    from edgecnn.run.config import load_run_config, validate_run_options

    config = tmp_path / "door.toml"
    config.write_text(
        f'model = "{MOBILENET}"\ntrack_min_hits = 3\ntrack_high_score = 0.6\n'
        '[[cameras]]\nname = "door"\nsource = "demo"\ntrack_min_hits = 1\ntrack_high_score = 0.4\n'
    )
    opts = validate_run_options(load_run_config(config))
    assert (opts.track_min_hits, opts.track_high_score) == (3, 0.6)
    assert opts.cameras is not None
    assert (opts.cameras[0]["track_min_hits"], opts.cameras[0]["track_high_score"]) == (1, 0.4)
    for bad, words in (
        ("track_min_hits = 0", r"track_min_hits \(--track-min-hits\): must be between 1 and 1000, got 0"),
        ("track_min_hits = 2.5", "track_min_hits must be an integer, got float 2.5"),
        ("track_high_score = 2", r"track_high_score \(--track-high-score\): must be between 0 and 1, got 2"),
    ):
        config.write_text(f'model = "{MOBILENET}"\nsource = "demo"\n{bad}\n')
        with pytest.raises(ConfigError, match=words):
            validate_run_options(load_run_config(config))


def test_config_tables(tmp_path, coral):
    from edgecnn.errors import ConfigError
    from edgecnn.run.config import load_run_config, validate_run_options

    config = tmp_path / "door.toml"
    config.write_text(
        f'model = "{MOBILENET}"\nsource = "demo"\nevents = "events.jsonl"\n'
        '[[lines]]\nname = "gate"\npoints = [[0.5, 0], [0.5, 1]]\nlabels = ["person"]\n'
        '[[zones]]\nname = "bench"\npoints = [0.1, 0.1, 0.4, 0.1, 0.4, 0.4]\ndwell = 30\n'
    )
    opts = validate_run_options(load_run_config(config))
    assert opts.events == tmp_path / "events.jsonl"  # relative to the file, like every path
    assert opts.lines == [{"name": "gate", "points": [[0.5, 0], [0.5, 1]], "labels": ["person"]}]
    config.write_text(config.read_text().replace("dwell = 30", "dwel = 30"))
    with pytest.raises(
        ConfigError,
        match=r"door.toml: zones \(--zone\): zone 1: unknown key 'dwel' \(did you mean 'dwell'\?\)",
    ):
        validate_run_options(load_run_config(config))


@needs_systemctl
def test_service_install_carries_lines_zones_and_the_events_file(tmp_path):
    import tomllib

    from edgecnn.errors import ConfigError
    from edgecnn.service.install import install_service

    root = _image_root(tmp_path)
    base = tmp_path / "door.toml"
    base.write_text(
        f'model = "{MOBILENET}"\ncamera = 0\nevents = "/var/log/edgecnn/door-events.jsonl"\n'
        '[[lines]]\nname = "gate"\npoints = [0.5, 0, 0.5, 1]\n'
        '[[zones]]\nname = "bench"\npoints = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]\ndwell = 30\n'
    )
    install_service("door", config=base, root=root)
    written = tomllib.loads((root / "etc/edgecnn/door.toml").read_text())
    assert written["events"] == "/var/log/edgecnn/door-events.jsonl"
    assert written["lines"] == [{"name": "gate", "points": [0.5, 0, 0.5, 1]}]
    assert written["zones"][0]["dwell"] == 30
    base.write_text(f'model = "{MOBILENET}"\ncamera = 0\nevents = "/home/pi/events.jsonl"\n')
    with pytest.raises(ConfigError, match=r"events .*only under /var/log/edgecnn"):
        install_service("door", config=base, root=root)


def test_overlay_draws_lines_zones_ids_and_trails():
    import cv2
    import numpy as np

    from edgecnn.run.live import render_preview
    from edgecnn.run.results import FrameResult
    from edgecnn.tasks.detect import Detections, Object
    from edgecnn.track.spec import parse_line, parse_zone
    from edgecnn.track.stage import Tracked, TrackStage

    def fail(problem):
        return ValueError(problem)

    stage = TrackStage([parse_line("0.5,0,0.5,1", 1, fail)], [parse_zone("0,0,0.3,0,0.3,0.3", 1, fail)])
    image = np.full((120, 160, 3), 128, np.uint8)
    for i in range(6):  # a square walking right, 4 px a frame
        box = (20.0 + 4 * i, 60.0, 48.0 + 4 * i, 88.0)
        step = stage.apply(Detections([Object(0, "square", 0.9, box)]), size=(160, 120), time_s=i / 10,
                           timestamp=1000 + i / 10, frame=i)  # fmt: skip
    assert isinstance(step.output, Tracked) and step.output.track_ids == (1,)
    assert step.output.to_json()["objects"][0]["track_id"] == 1
    result = FrameResult(6, 5, 1000.5, step.output)

    drawn = cv2.imdecode(
        np.frombuffer(render_preview(image, result, quality=100), np.uint8), cv2.IMREAD_COLOR
    )
    line_pixels = drawn[100:118, 80].astype(int)  # the line x = 80, below the labels (JPEG: near its colour)
    assert np.all(np.abs(line_pixels - (0, 220, 255)).sum(axis=1) < 100)
    zone_edge = drawn[20, 46:51].astype(int)  # the zone's right edge, x = 48: 1 px, blurred by JPEG
    assert (zone_edge[:, 0] - zone_edge[:, 2]).max() > 60  # bluish (the zone colour is BGR 255, 200, 0)
    plain = cv2.imdecode(
        np.frombuffer(
            render_preview(image, FrameResult(6, 5, 0.0, step.output.inner), quality=100), np.uint8
        ),
        cv2.IMREAD_COLOR,
    )
    assert np.abs(plain[100:118, 79:82].astype(int) - 128).max() < 20  # without tracking: no line drawn
    # The "#1" label sits in the box's bottom-left corner (rows above y2 = 88, from x1 = 40).
    label = np.abs(drawn[78:88, 41:56].astype(int) - plain[78:88, 41:56].astype(int)).sum(axis=2)
    assert np.count_nonzero(label > 100) > 20


def test_snapshots_one_jpeg_per_event_and_retention(detector, crossing_video, tmp_path):
    import cv2

    events, folder = tmp_path / "events.jsonl", tmp_path / "snaps"
    run(RunOptions(model=detector, source=str(crossing_video), events=events, lines=["0.5,0,0.5,1"], quiet=True,
                   snapshots=folder, snapshots_keep=2))  # fmt: skip
    named = [e["snapshot"] for e in records(events)]
    assert len(named) == 3 and len(set(named)) == 3
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(named)[-2:]  # the newest two
    image = cv2.imread(str(folder / kept[-1]))
    assert image is not None and image.shape == (120, 160, 3)
    assert not list(folder.glob("*.tmp*"))  # written atomically: no temp file left behind


def test_snapshot_folder_stays_under_its_size_limit(tmp_path):
    import numpy as np

    from edgecnn.track.events import Event
    from edgecnn.track.snapshots import Snapshots

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # noise: JPEGs of some 60 kB
    (tmp_path / "notes.txt").write_text("not a snapshot: never counted or deleted\n")
    snaps = Snapshots(tmp_path, keep=1000, max_bytes=200_000)
    for i in range(12):
        snaps.write(image, [Event("enter", 1000.0 + i, i, 1, "person", 0.9, zone="z", box=(10, 10, 50, 90))])
        if i % 4 == 3:
            snaps.close()  # waits for the writes (a new writer per batch: at most 8 frames may wait)
            snaps = Snapshots(tmp_path, keep=1000, max_bytes=200_000)
    snaps.close()
    files = list(tmp_path.glob("*-snapshot.jpg"))
    assert sum(p.stat().st_size for p in files) <= 200_000
    assert 1 <= len(files) < 12
    assert max(files).name.startswith("19700101-001651.000-f000011")  # the newest is kept
    assert (tmp_path / "notes.txt").exists()


@needs_broker
def test_home_assistant_discovery_of_the_counts(detector, crossing_video, broker, subscribers):  # noqa: F811
    run(RunOptions(model=detector, source=str(crossing_video), lines=["0.5,0,0.5,1"], zones=["0,0,0.5,0,0.5,1"],
                   quiet=True, mqtt={"host": f"127.0.0.1:{broker.port}", "topic": "edgecnn/door",
                                     "discovery": True}))  # fmt: skip
    late = subscribers(broker.port, "homeassistant/#")  # retained: found after the run
    wait_until(lambda: len(late.messages) >= 3, timeout=10)
    configs = {m.topic: json.loads(m.payload) for m in late.messages}
    assert all(m.retain for m in late.messages)
    assert sorted(configs) == [
        "homeassistant/sensor/edgecnn_door/line_line1_in/config",
        "homeassistant/sensor/edgecnn_door/line_line1_out/config",
        "homeassistant/sensor/edgecnn_door/zone_zone1/config",
    ]
    out = configs["homeassistant/sensor/edgecnn_door/line_line1_out/config"]
    assert out["state_topic"] == "edgecnn/door/counts"
    assert out["availability_topic"] == "edgecnn/door/availability"
    assert out["value_template"] == '{{ value_json.lines["line1"]["out"] }}'
    assert out["state_class"] == "total_increasing" and out["unique_id"] == "edgecnn_door_line_line1_out"
    zone = configs["homeassistant/sensor/edgecnn_door/zone_zone1/config"]
    assert zone["value_template"] == '{{ value_json.zones["zone1"] }}'


@needs_broker
def test_no_discovery_unless_asked(detector, crossing_video, broker, subscribers):  # noqa: F811
    run(RunOptions(model=detector, source=str(crossing_video), lines=["0.5,0,0.5,1"], quiet=True,
                   mqtt={"host": f"127.0.0.1:{broker.port}", "topic": "edgecnn/door"}))  # fmt: skip
    late = subscribers(broker.port, "#")
    wait_until(lambda: late.on("counts"), timeout=10)  # the retained counts arrive...
    assert not [m for m in late.messages if m.topic.startswith("homeassistant/")]  # ...no configs


def test_fleet_status_carries_the_counts(detector, crossing_video):
    """What `edgecnn fleet status` reads from a device's /latest: the counts (JSON) and the summary (table)."""
    from edgecnn.fleet.status import _instance

    options = RunOptions(model=detector, source=str(crossing_video), loop=True, serve="127.0.0.1:0",
                         lines=["0.5,0,0.5,1"], quiet=True)  # fmt: skip
    with serving(options) as base:

        def crossed() -> bytes | None:
            status, _, body = http_get(base + "/latest")
            counts = json.loads(body).get("counts") if status == 200 else None
            return body if counts and counts["lines"]["line1"]["out"] >= 3 else None

        latest = wait_until(crossed)
    service = {"name": "door", "active": "active", "sub_state": "running", "serve": ":8080"}
    inst = _instance(service, {"door/latest": latest.decode()}, systemd_running=True)
    assert inst.counts is not None and inst.counts["lines"]["line1"]["out"] >= 3
    assert inst.last_result is not None and "line1 in 0 out" in inst.last_result


def test_cli_line_and_events(detector, crossing_video, tmp_path):
    events = tmp_path / "events.jsonl"
    result = run_cli(
        "run", str(detector), "--source", str(crossing_video), "--line", "0.5,0,0.5,1", "--line", "0,0.5,1,0.5",
        "--events", str(events), "-q",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    crossings = [(e["line"], e["direction"]) for e in records(events)]
    assert crossings.count(("line1", "out")) == 3 and all(line == "line1" for line, _ in crossings)
    assert "summary: 50 frames" in result.stdout


def test_bench_times_the_track_stage_for_detectors(detectors, tmp_path, coral):
    import cv2

    from edgecnn.bench.results import load_result, save_result
    from edgecnn.bench.runner import format_result, run_bench

    images = tmp_path / "images"
    images.mkdir()
    for i, scene in enumerate(detectors.held_out[:3]):
        cv2.imwrite(str(images / f"{i}.png"), scene.image)
    result = run_bench(detectors["yolo_float"], runs=20, warmup=1, images=images)
    (row,) = result.results
    assert row.track_ms is not None and row.track_ms["p50"] > 0
    assert row.track_objects == len(detectors.held_out[0].boxes)  # the first image's objects, all found
    assert "track (" in format_result(result)
    saved = save_result(result, tmp_path / "bench.json")
    assert load_result(saved).results[0].track_objects == row.track_objects
    classifier = run_bench(MOBILENET, runs=5, warmup=1).results[0]
    assert classifier.track_ms is None and classifier.track_objects is None


@pytest.mark.parametrize("layout", ["yolo_int8", "yolo_channels_last", "e2e_float", "ssd_tf1", "ssd_int8"])
def test_every_detector_layout_is_tracked(detectors, crossing_video, tmp_path, layout):
    """Tracking reads boxes from the result, whatever layout decoded them: the same three crossings."""
    events = tmp_path / "events.jsonl"
    run(RunOptions(model=detectors[layout], source=str(crossing_video), events=events, lines=["0.5,0,0.5,1"],
                   quiet=True))  # fmt: skip
    crossings = records(events)
    assert [e["direction"] for e in crossings] == ["out"] * 3
    assert len({e["track_id"] for e in crossings}) == 3
