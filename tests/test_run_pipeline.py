"""The run pipeline on real videos and real models: frame-by-frame results, outputs, limits, device auto."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from edgecnn.adapters import Class
from edgecnn.devices.sources import open_source, parse_source
from edgecnn.errors import SourceError, UsageError
from edgecnn.model import open_model
from edgecnn.run.options import RunOptions
from edgecnn.run.outputs import ResultFilter
from edgecnn.run.pipeline import Pipeline, run
from edgecnn.run.results import FrameResult
from edgecnn.tasks.classify import Classification
from tests.conftest import MOBILENET, MOBILENET_EDGETPU, error_lines, run_cli
from tests.run_support import digit_frame, numbered_frame, write_video


class Collect:
    """A result sink (the Protocol's two methods) that keeps what it is given."""

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.summaries: list = []

    def emit(self, result: FrameResult) -> None:
        self.results.append(result)

    def close(self, summary) -> None:
        self.summaries.append(summary)


@pytest.fixture(scope="module")
def digits_video(digits_model, tmp_path_factory):
    """640x480 frames, each showing one held-out digit the model reads confidently from the 28x28 image."""
    clf = open_model(digits_model.tflite)
    chosen = []
    for image, label in zip(digits_model.images, digits_model.labels, strict=True):
        pred = clf.classify(image).top
        if pred.id == int(label) and pred.score > 0.8:
            chosen.append((image, int(label)))
        if len(chosen) == 30:
            break
    assert len({label for _, label in chosen}) >= 8, "the held-out set should cover most digits"
    path = tmp_path_factory.mktemp("video") / "digits.avi"
    write_video(path, [digit_frame(image) for image, _ in chosen])
    return path, [label for _, label in chosen]


def test_digits_video_is_classified_frame_by_frame(digits_model, digits_video, tmp_path):
    video, labels = digits_video
    out = tmp_path / "results.jsonl"
    options = RunOptions(
        model=digits_model.tflite, source=str(video), crop="center", top_k=3, jsonl=str(out), quiet=True
    )
    summary = run(options)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(len(labels)))
    assert [int(r["classes"][0]["label"]) for r in records] == labels
    assert all(1 <= len(r["classes"]) <= 3 for r in records)  # classes scoring exactly 0 are left out
    assert any(len(r["classes"]) == 3 for r in records)
    assert set(records[0]["latency_ms"]) == {
        "capture_wait",
        "preprocess",
        "inference",
        "postprocess",
        "total",
        "age",
    }
    assert summary.frames == len(labels) and summary.stopped == "end of source" and summary.dropped == 0
    assert summary.latency_ms["p50"] > 0 and summary.inference_ms["p99"] >= summary.inference_ms["p50"]


def test_cli_jsonl_to_stdout_and_lines_to_stderr(digits_model, digits_video):
    video, labels = digits_video
    result = run_cli("run", digits_model.tflite, "--source", video, "--crop", "center", "--jsonl", "-")
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [int(r["classes"][0]["label"]) for r in records] == labels
    assert "summary:" in result.stderr and f"{len(labels)} frames" in result.stderr
    assert not error_lines(result.stderr)


def test_cli_human_output_and_max_frames(digits_model, digits_video):
    video, labels = digits_video
    result = run_cli("run", digits_model.tflite, "--source", video, "--crop", "center", "--max-frames", "5")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"#1 frame 0: {labels[0]} ")
    assert "summary: 5 frames" in result.stdout and "stopped: max-frames" in result.stdout


def test_quiet_prints_only_the_summary(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i) for i in range(8)])
    result = run_cli("run", MOBILENET, "--source", video, "--quiet")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("summary: 8 frames")


def test_filters_reduce_output_but_not_latest(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i) for i in range(12)])
    every = Collect()
    run(RunOptions(model=MOBILENET, source=str(video), every=4, quiet=True), sinks=[every])
    assert [r.n for r in every.results] == [4, 8, 12]
    assert every.summaries[0].frames == 12
    none = Collect()
    run(RunOptions(model=MOBILENET, source=str(video), min_score=1.0, quiet=True), sinks=[none])
    assert none.results == [] and none.summaries[0].frames == 12


def _result(n: int, label: str, score: float) -> FrameResult:
    return FrameResult(n, n - 1, 0.0, Classification([Class(int(label), label, score)]), 0, 0, 0, 0, 0)


def test_result_filter_rules():
    f = ResultFilter(on_change=True, min_score=0.5)
    labels = [("1", 0.9), ("1", 0.9), ("2", 0.4), ("2", 0.9), ("2", 0.8), ("1", 0.7)]
    passed = [
        r.top.label for r in (_result(i + 1, lab, s) for i, (lab, s) in enumerate(labels)) if f.accept(r)
    ]
    assert passed == ["1", "2", "1"]
    g = ResultFilter(every=2)
    assert [n for n in range(1, 7) if g.accept(_result(n, "0", 1.0))] == [2, 4, 6]


def test_device_auto_with_edgetpu_model_falls_back_to_cpu_twin(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i, 256, 256) for i in range(5)])
    collected = Collect()
    summary = run(
        RunOptions(model=MOBILENET_EDGETPU, source=str(video), device="auto", quiet=True), sinks=[collected]
    )
    assert summary.device == "cpu" and summary.model == MOBILENET.name
    assert summary.frames == 5 and len(collected.results) == 5


def test_cli_device_auto_with_edgetpu_model(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i, 256, 256) for i in range(3)])
    result = run_cli("run", MOBILENET_EDGETPU, "--source", video, "--device", "auto")
    assert result.code == 0, result.stderr
    assert "summary: 3 frames" in result.stdout and "on cpu" in result.stdout
    assert any("CPU model" in line for line in error_lines(result.stderr))  # the fallback is announced


def test_duration_limits_a_live_source(coral):
    summary = run(RunOptions(model=MOBILENET, source="demo", duration=0.5, fps=50, quiet=True))
    assert summary.stopped == "duration" and summary.frames > 0


def test_stop_event_ends_the_run_and_returns_the_summary(coral):
    stop = threading.Event()
    sink = Collect()

    class StopAfterThree(Collect):
        def emit(self, result):
            super().emit(result)
            if result.n == 3:
                stop.set()

    stopper = StopAfterThree()
    summary = run(
        RunOptions(model=MOBILENET, source="demo", quiet=True), sinks=[sink, stopper], stop_event=stop
    )
    assert summary.stopped == "signal" and summary.frames == 3 and len(sink.results) == 3
    assert sink.summaries == [summary]


def test_injected_source_and_lost_source_without_reconnect(coral):
    class Flaky:
        """A live source that delivers two frames and then loses its device."""

        name, live, dropped = "flaky camera", True, 0

        def __init__(self):
            self.count = 0

        def open(self):
            pass

        def read(self, timeout):
            from edgecnn.devices.sources import Frame

            self.count += 1
            if self.count > 2:
                raise SourceError("flaky camera stopped delivering frames (unplugged).")
            return Frame(np.zeros((64, 64, 3), np.uint8), self.count, 0.0, 0.0)

        def close(self):
            pass

    sink = Collect()
    with pytest.raises(SourceError, match="unplugged"):
        run(RunOptions(model=MOBILENET, quiet=True), source=Flaky(), sinks=[sink])
    assert len(sink.results) == 2 and sink.summaries[0].frames == 2  # outputs flushed, summary shown


def test_pipeline_validates_before_opening_anything(tmp_path):
    with pytest.raises(UsageError, match="No model"):
        Pipeline(RunOptions(source="demo")).run()


def test_realtime_flag_counts_drops(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i) for i in range(40)], fps=200)
    source = open_source(parse_source(str(video)), realtime=True)

    class Slow(Collect):
        def emit(self, result):
            super().emit(result)
            threading.Event().wait(0.05)  # a slow output: 10x slower than the file's 200 fps

    sink = Slow()
    summary = run(RunOptions(model=MOBILENET, quiet=True), source=source, sinks=[sink])
    assert summary.dropped > 0 and summary.frames + summary.dropped == 40
