"""``edgecnn demo`` / ``make demo``: the whole pipeline in quick mode, into a temporary folder.

Quick mode trains 2 epochs on 300 images, so the figures are poor but real: every number in the report is
checked against the artifact it came from (conversion reports, bench files, the run's JSONL rescored here
against the labels of the video), never against a constant.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edgecnn.bench.results import load_result
from edgecnn.demo import MARKER, DemoReport, demo, format_report, prepare_output
from edgecnn.demo.counting import SHAPES, detector_path
from edgecnn.errors import UsageError
from edgecnn.modelfile import read_model
from tests.conftest import error_lines, run_cli

STEP_LINES = [f"[{i}/7]" for i in range(1, 8)]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoReport, Path, str]:
    out = tmp_path_factory.mktemp("demo") / "runs" / "demo"
    progress = io.StringIO()
    report = demo(output=out, quick=True, seconds=1.5, progress=progress)
    return report, out, progress.getvalue()


def test_quick_demo_writes_every_artifact(quick_demo):
    report, out, _ = quick_demo
    expected = [
        MARKER, "model.keras", "labels.txt", "metrics.json", "curves.png", "model_int8.tflite",
        "model_float32.tflite", "conversion_report.json", "conversion_report_float32.json",
        "bench_float32.json", "bench_int8.json", "digits.avi", "digits_video.json", "run.jsonl", "run.log",
        "demo.json", "samples", "crossing.avi", "crossing.jsonl", "crossing_events.jsonl",
    ]  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert json.loads((out / "demo.json").read_text()) == json.loads(json.dumps(report.to_dict()))
    assert all(Path(path).is_file() for path in report.files.values()), report.files
    assert read_model(out / "model_int8.tflite").inputs[0].dtype.lower() == "int8"
    assert read_model(out / "model_float32.tflite").inputs[0].dtype.lower() == "float32"


def test_accuracy_and_sizes_come_from_the_conversion_reports(quick_demo):
    report, out, _ = quick_demo
    metrics = json.loads((out / "metrics.json").read_text())
    int8 = json.loads((out / "conversion_report.json").read_text())
    f32 = json.loads((out / "conversion_report_float32.json").read_text())
    assert report.keras_test_accuracy == metrics["accuracy"]["test"]
    assert report.test_samples == metrics["dataset"]["test"]
    assert report.int8.test_accuracy == int8["verification"]["converted_accuracy"]
    assert report.float32.test_accuracy == f32["verification"]["converted_accuracy"]
    assert report.int8_agreement == int8["verification"]["top1_agreement"]
    assert report.verification_samples == int8["verification"]["samples"]
    assert int8["verification"]["source"] and "test" in int8["verification"]["source"].lower()
    # Two epochs are far from 98%, but far above chance (10%) too: a broken pipeline lands near chance.
    assert report.int8.test_accuracy is not None and report.int8.test_accuracy > 0.3
    assert report.int8.size_bytes == (out / "model_int8.tflite").stat().st_size
    assert report.float32.size_bytes == (out / "model_float32.tflite").stat().st_size
    assert report.int8.size_bytes < report.float32.size_bytes / 2  # int8 weights: about a quarter


def test_bench_figures_are_the_saved_bench_results(quick_demo):
    report, out, _ = quick_demo
    for figures, name in ((report.float32, "float32"), (report.int8, "int8")):
        saved = load_result(out / f"bench_{name}.json")  # validates the schema
        assert saved.model.name == f"model_{name}.tflite"
        lat = saved.results[0].latency_ms
        assert (figures.latency_p50_ms, figures.latency_p99_ms) == (lat.p50, lat.p99)
        assert figures.bench_runs == saved.results[0].runs == 30
        assert 0 < lat.p50 <= lat.p99


def test_edgetpu_check_passes_for_the_seed_cnn(quick_demo):
    report, _, progress = quick_demo
    assert report.edgetpu["compatible"] is True
    assert report.edgetpu["cpu"] == 0 and report.edgetpu["mapped"] >= 5
    assert report.edgetpu["verdict"].startswith("edgetpu: compatible")
    assert report.edgetpu["verdict"] in progress


def test_video_shows_held_out_digits_at_camera_size(quick_demo):
    report, out, _ = quick_demo
    info = json.loads((out / "digits_video.json").read_text())
    cap = cv2.VideoCapture(str(out / "digits.avi"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == len(info["labels"]) == report.run.video_frames
    assert frames[0].shape == (480, 640, 3)
    assert set(info["labels"]) <= set(range(10)) and len(set(info["labels"])) >= 8
    assert "test split" in info["source"]


def test_run_step_is_scored_from_its_jsonl(quick_demo):
    report, out, progress = quick_demo
    labels = json.loads((out / "digits_video.json").read_text())["labels"]
    records = [json.loads(line) for line in (out / "run.jsonl").read_text().splitlines()]
    run = report.run
    assert run.classified == len(records) > 0
    rescored = sum(r["classes"][0]["label"] == str(labels[r["frame"]]) for r in records)
    assert run.correct == rescored
    assert run.accuracy == pytest.approx(rescored / len(records), abs=1e-4)
    assert run.dropped == records[-1]["frame"] + 1 - len(records)
    assert run.fps > 0 and run.latency_p50_ms is not None and run.latency_p50_ms > 0
    # The service answered while the run was going.
    assert run.healthz["status"] == "ok" and run.healthz["source"].endswith("digits.avi")
    assert run.latest["classes"][0]["label"] in {str(d) for d in range(10)}
    assert run.url.startswith("http://127.0.0.1:")
    # The child's own output reached the progress stream and run.log.
    assert "summary:" in progress and "summary:" in (out / "run.log").read_text()


def test_counting_step_counts_every_scripted_crossing(quick_demo):
    """The scene is scripted and the shapes are the detector's own training shapes: the count is exact
    (no margin), per direction, one event per shape, each shape its own track."""
    report, out, progress = quick_demo
    count = report.counting
    events = [json.loads(line) for line in (out / "crossing_events.jsonl").read_text().splitlines()]
    crossings = [e for e in events if e["type"] == "cross"]
    assert count.shapes == len(SHAPES) == 6
    assert count.expected == {"in": 2, "out": 4}  # what SHAPES script: 2 right to left, 4 left to right
    assert count.counted == {"in": sum(e["direction"] == "in" for e in crossings),
                             "out": sum(e["direction"] == "out" for e in crossings)}  # fmt: skip
    assert count.counted == count.expected and count.exact
    assert sorted(e["label"] for e in crossings) == sorted(s.label for s in SHAPES)
    assert len({e["track_id"] for e in crossings}) == len(SHAPES) == count.tracks
    results = [json.loads(line) for line in (out / "crossing.jsonl").read_text().splitlines()]
    assert count.frames == len(results) == 80
    assert results[-1]["counts"] == {"lines": {"line1": {"in": 2, "out": 4}}, "zones": {}}
    assert "counted in 2 out 4; scripted in 2 out 4" in progress
    assert "in 2 out 4 (exact)" in format_report(report) and "6 cross events" in format_report(report)


def test_the_bundled_detector_is_the_documented_one():
    """Shipped as package data, read with no flags: the tests' shapes detector in the YOLO layout."""
    with detector_path() as model:
        info = read_model(model)
        assert model.stat().st_size < 300_000
    assert info.inputs[0].dtype.lower() == "int8" and list(info.inputs[0].shape) == [1, 96, 96, 3]


def test_progress_and_summary_table(quick_demo):
    report, out, progress = quick_demo
    positions = [progress.index(step) for step in STEP_LINES]
    assert positions == sorted(positions)
    assert "Epoch 1/2" in progress  # Keras' own progress is shown
    table = format_report(report)
    for text in ("test accuracy", "model size", "latency p50 / p99", "end-to-end", "Edge TPU check"):
        assert text in table
    assert f"{report.int8.test_accuracy:.2%}" in table and f"{report.run.fps:.1f} fps" in table
    assert f"{report.int8.latency_p50_ms:.3f} / {report.int8.latency_p99_ms:.3f} ms" in table
    assert f"artifacts in {out}/" in table and "quick mode" in table


def test_prepare_output_replaces_only_a_previous_demo(tmp_path):
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / MARKER).write_text("x")
    (previous / "stale.tflite").write_bytes(b"old")
    prepare_output(previous)
    assert sorted(p.name for p in previous.iterdir()) == [MARKER]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not written by edgecnn demo"):
        prepare_output(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"

    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_output(empty)
    assert (empty / MARKER).is_file()


def test_cli_reruns_into_the_same_folder_with_json(quick_demo, tmp_path):
    """A second demo into a demo folder replaces it; with --json, stdout is one JSON document."""
    _, first_out, _ = quick_demo
    out = tmp_path / "demo"
    out.mkdir()
    (out / MARKER).write_text("x")
    (out / "stale.txt").write_text("from an older demo")
    result = run_cli("demo", "--quick", "--seconds", "1", "--out", out, "--json", timeout=300)
    assert result.code == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["output"] == str(out) and data["quick"] is True
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in first_out.iterdir())
    assert "[7/7]" in result.stderr and "[7/7]" not in result.stdout
    # Each bench is reported once (the demo's own line, not also the bench's progress line).
    assert result.stderr.count("float32  p50") == 1 and result.stderr.count("int8     p50") == 1
    assert "thread: median" not in result.stderr, result.stderr
    latest = next(line for line in result.stderr.splitlines() if "/latest  -> " in line)
    shown = latest.split("/latest  -> ", 1)[1]
    assert shown.endswith("…") or json.loads(shown), latest  # cut at a word, and says so
    assert "INFO: Created TensorFlow Lite" not in result.stderr


def test_cli_refuses_a_foreign_folder_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("demo", "--out", tmp_path)
    assert result.code == UsageError.exit_code
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "not written by edgecnn demo" in lines[0] and "--out" in lines[0]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_python_m_edgecnn_demo_is_the_cli_command():
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn.demo", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "--out" in proc.stdout and "Example: edgecnn demo" in proc.stdout


def test_suggested_live_command_serves_until_stopped(quick_demo):
    report, _, _ = quick_demo
    text = format_report(report)
    suggested = next(line for line in text.splitlines() if line.strip().startswith("edgecnn run "))
    assert "--loop" in suggested and "--serve 127.0.0.1:8080" in suggested and "Ctrl-C" in text
