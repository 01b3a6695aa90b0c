"""Output sinks and run statistics: throttled lines, JSONL records, percentiles that stay bounded."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os

import pytest

from edgecnn.adapters import Class
from edgecnn.run.options import RunOptions
from edgecnn.run.outputs import HumanSink, JsonlSink, ResultSink, build_sinks
from edgecnn.run.results import FrameResult
from edgecnn.run.stats import Reservoir, RunStats, format_summary
from edgecnn.tasks.classify import Classification


def result(n: int, label: str = "7", score: float = 0.9) -> FrameResult:
    return FrameResult(
        n, n - 1, 1700000000.0 + n, Classification([Class(int(label), label, score)]), 0.5, 0.2, 0.1, 0.9, 3.0
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_human_lines_are_throttled_and_count_what_was_skipped():
    out, clock = io.StringIO(), Clock()
    sink = HumanSink(out, interval=0.5, clock=clock)
    for n in range(1, 11):  # ten results in 0.9 s
        sink.emit(result(n))
        clock.now += 0.1
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "#1 frame 0: 7 0.90   infer 0.10 ms"
    assert lines[1].startswith("#6 frame 5: 7 0.90") and lines[1].endswith("(+4 not shown)")
    assert "10.0 fps" in lines[1]


def test_quiet_human_sink_prints_only_the_summary():
    out = io.StringIO()
    sink = HumanSink(out, quiet=True)
    sink.emit(result(1))
    stats = RunStats(0.0)
    stats.add(1.0, wait_ms=1, preprocess_ms=1, inference_ms=1, total_ms=3, busy_ms=2.5, age_ms=4)
    summary = stats.summary(model="m.tflite", device="cpu", source="camera 0", end=2.0, stopped="signal")
    sink.close(summary)
    assert out.getvalue() == format_summary(summary) + "\n"


def test_jsonl_file_is_appended_one_object_per_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"earlier": true}\n')
    sink = JsonlSink(str(path))
    sink.emit(result(1))
    sink.emit(result(2, "3", 0.5))
    sink.close(None)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0] == {"earlier": True}
    assert records[2]["classes"] == [{"id": 3, "label": "3", "score": 0.5}] and records[2]["frame"] == 1
    assert records[1]["latency_ms"] == {
        "capture_wait": 0.5,
        "preprocess": 0.2,
        "inference": 0.1,
        "postprocess": 0.0,
        "total": 0.9,
        "age": 3.0,
    }


def test_sinks_follow_the_protocol_and_options():
    sinks = build_sinks(RunOptions(jsonl="-"))
    assert all(isinstance(s, ResultSink) for s in sinks)
    assert [type(s).__name__ for s in sinks] == ["JsonlSink", "HumanSink"]
    assert [type(s).__name__ for s in build_sinks(RunOptions())] == ["HumanSink"]


def test_reservoir_is_exact_when_small_and_bounded_when_large():
    small = Reservoir(size=1000)
    for v in range(1, 101):
        small.add(float(v))
    assert small.percentiles() == {"p50": 50.5, "p90": 90.1, "p99": 99.01}
    big = Reservoir(size=500)
    for v in range(100_000):
        big.add(float(v % 100))
    assert len(big.values) == 500 and big.count == 100_000
    assert big.percentiles()["p50"] == pytest.approx(50, abs=8)
    assert big.mean == pytest.approx(49.5)


def test_summary_fps_and_stages():
    stats = RunStats(10.0)
    for i in range(11):
        stats.add(
            11.0 + i * 0.1, wait_ms=2, preprocess_ms=1, inference_ms=3, total_ms=6, busy_ms=4.5, age_ms=5
        )
    stats.dropped, stats.reconnects = 4, 1
    s = stats.summary(model="m", device="cpu", source="demo", end=13.0, stopped="duration")
    assert s.fps == pytest.approx(10.0) and s.first_frame_s == 1.0 and s.duration_s == 3.0
    assert s.mean_ms == {
        "capture_wait": 2.0,
        "preprocess": 1.0,
        "inference": 3.0,
        "postprocess": 0.0,
        "other": 0.5,
    }
    text = format_summary(s)
    assert "11 frames in 3.0 s (10.0 fps)" in text and "dropped 4  reconnects 1" in text


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_failed_result_write_is_an_output_error_and_ends_the_output():
    """A full disk is the output's problem, not the input's: OutputError (exit 4, the InputError family)."""
    from edgecnn.errors import OutputError

    full = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115  # closed below, its failed buffer dropped
    try:
        sink = HumanSink(full, interval=0.0)
        with pytest.raises(OutputError, match="No space left on device") as caught:
            sink.emit(result(1))
        assert caught.value.errno == errno.ENOSPC
        sink.emit(result(2))  # the output ended at its first failed write: nothing more is tried
    finally:
        with contextlib.suppress(OSError):  # close() flushes the unwritten line again
            full.close()
