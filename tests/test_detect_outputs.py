"""Detectors through the outputs that are not files: MQTT (a real broker) and config/service keys."""

from __future__ import annotations

import dataclasses
import json
import re

from edgecnn.run.config import load_run_config, validate_run_options
from edgecnn.run.pipeline import decode_options
from tests.conftest import error_lines, run_cli
from tests.detectors import make_scenes
from tests.run_support import wait_until, write_video
from tests.test_run_mqtt import broker, needs_broker, subscribers  # noqa: F401  # fixtures


@needs_broker
def test_mqtt_results_carry_objects_like_jsonl(broker, subscribers, detectors, tmp_path):  # noqa: F811
    video = write_video(tmp_path / "shapes.avi", [s.image for s in make_scenes(12, seed=31)])
    sub = subscribers(broker.port, "edgecnn/det/#")
    jsonl = tmp_path / "r.jsonl"
    result = run_cli(
        "run", detectors["yolo_int8"], "--source", video, "--jsonl", jsonl, "--classes", "circle,triangle",
        "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-topic", "edgecnn/det",
    )  # fmt: skip
    assert result.code == 0 and not error_lines(result.stderr), result.stderr
    wait_until(lambda: [m.payload for m in sub.on("availability")][-1:] == ["offline"], timeout=20)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 12 and sub.results() == records
    labels = {o["label"] for r in records for o in r["objects"]}
    assert labels and labels <= {"circle", "triangle"}
    # the human line says what was seen: "#1 frame 0: 1 object: circle (best 1.00)   infer ..."
    assert re.search(
        r"^#1 frame 0: (\d+ objects?: .+ \(best \d\.\d\d\)|no objects)   infer", result.stdout, re.M
    )


def test_config_file_takes_detector_keys(tmp_path, detectors):
    config = tmp_path / "door.toml"
    config.write_text(
        f'model = "{detectors["ssd_tf1"]}"\nsource = "demo"\nobject_threshold = 0.6\nmax_detections = 5\n'
        'classes = ["circle"]\n'
    )
    opts = validate_run_options(load_run_config(config))
    assert opts.object_threshold == 0.6
    options = decode_options(dataclasses.replace(opts, track=False))
    assert (options.object_threshold, options.max_detections, options.classes) == (0.6, 5, ("circle",))
    # With tracking on (the default) the detector reads down to --track-low-score for the tracker's
    # second stage; what is output under 0.6 is only what a track matched (tests/test_run_track_low.py).
    assert decode_options(opts).object_threshold == opts.track_low_score == 0.1
    config.write_text(f'model = "{detectors["ssd_tf1"]}"\nclasses = 3\n')
    result = run_cli("run", "--config", config)
    lines = error_lines(result.stderr)
    assert result.code == 7 and len(lines) == 1 and "classes must be a list of label names" in lines[0]
