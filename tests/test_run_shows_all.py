"""`edgecnn run` shows what happened: one line per still, every --on-change event, and a count of what a
throttled stream left out. Real processes, real videos and images, the digits model trained in the session."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.adapters import Class
from edgecnn.predict.files import predict
from edgecnn.run.live import LiveState
from edgecnn.run.outputs import HumanSink
from edgecnn.run.results import FrameResult
from edgecnn.tasks.classify import Classification
from tests.conftest import error_lines, run_cli
from tests.run_support import digit_frame, write_video

LINE = re.compile(r"^#(\d+) (.+?): (\S+) ")  # "#3 img_02.png: 7 0.98   infer ..." / "#3 frame 2: ..."
NOT_SHOWN = re.compile(r"^(\d+) results? not shown \(printing at most (\S+) lines per second")
SIZE = (160, 120)  # small frames: decoding stays far quicker than the half second a line is held back


def result_lines(text: str) -> list[re.Match[str]]:
    return [m for m in map(LINE.match, text.splitlines()) if m]


def frames_of(video: Path) -> list[np.ndarray]:
    """The video's frames exactly as OpenCV decodes them (the run decodes them the same way)."""
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def reference_labels(model: Path, images: list[np.ndarray], folder: Path) -> list[str]:
    """Top labels from the library's ``predict`` on these pixels (written losslessly as PNG)."""
    folder.mkdir()
    paths: list[str | Path] = []
    for i, image in enumerate(images):
        path = folder / f"{i:04d}.png"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    report = predict(model, paths, crop="center")
    return [r.output.top.label for r in report.results]


def test_folder_prints_one_line_per_image_naming_it(digits_model, tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    names = [f"shot_{i}.png" for i in range(5)]
    for name, image in zip(names, digits_model.images[:5], strict=True):
        assert cv2.imwrite(str(folder / name), digit_frame(image, *SIZE))
    jsonl = tmp_path / "r.jsonl"
    result = run_cli("run", digits_model.tflite, "--source", folder, "--crop", "center", "--jsonl", jsonl)
    assert result.code == 0, result.stderr
    lines = result_lines(result.stdout)
    assert [(int(m[1]), m[2]) for m in lines] == list(enumerate(names, start=1))  # all 5, each named
    assert "not shown" not in result.stdout
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["file"] for r in records] == [str(folder / name) for name in names]
    expected = reference_labels(
        digits_model.tflite, [cv2.imread(str(folder / n)) for n in names], tmp_path / "ref"
    )
    assert [r["classes"][0]["label"] for r in records] == expected == [m[3] for m in lines]
    assert "summary: 5 frames" in result.stdout and not error_lines(result.stderr)


def test_single_image_file_names_it(digits_model, tmp_path):
    image = tmp_path / "one.png"
    assert cv2.imwrite(str(image), digit_frame(digits_model.images[0], *SIZE))
    result = run_cli("run", digits_model.tflite, "--source", image, "--crop", "center", "--jsonl", "-")
    assert result.code == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["file"] == str(image) and record["frame"] == 0
    assert [m[2] for m in result_lines(result.stderr)] == ["one.png"]


def test_video_is_throttled_and_counts_what_was_not_shown(digits_model, tmp_path):
    frames = [digit_frame(digits_model.images[i % 10], *SIZE) for i in range(90)]
    video = write_video(tmp_path / "clip.avi", frames)
    jsonl = tmp_path / "r.jsonl"
    result = run_cli("run", digits_model.tflite, "--source", video, "--crop", "center", "--jsonl", jsonl)
    assert result.code == 0, result.stderr
    out = result.stdout.splitlines()
    lines = result_lines(result.stdout)
    shown = len(lines)
    tail = NOT_SHOWN.match(out[out.index(next(s for s in out if s.startswith("summary:"))) - 1])
    assert tail is not None, result.stdout  # the line before the summary counts what was left out
    not_shown = int(tail[1])
    assert not_shown > 0 and not_shown + shown == 90, result.stdout
    assert tail[2] == "2"  # the default: a line per half second
    # Each line's "(+k not shown)" counts what was left out before it; together they are the total.
    assert sum(int(k) for k in re.findall(r"\(\+(\d+) not shown\)", result.stdout)) == not_shown
    assert int(lines[0][1]) == 1 and int(lines[-1][1]) == 90  # first and final state are shown
    assert all(m[2].startswith("frame ") for m in lines)  # a stream's frames, not files
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 90 and not any("file" in r for r in records)


def test_on_change_prints_every_change(digits_model, tmp_path):
    # Held-out digits, each held for 5 frames, in an order where the true digit changes at every step.
    picks: list[int] = []
    for i, label in enumerate(digits_model.labels):
        if not picks or label != digits_model.labels[picks[-1]]:
            picks.append(i)
        if len(picks) == 12:
            break
    frames = [digit_frame(digits_model.images[i], *SIZE) for i in picks for _ in range(5)]
    video = write_video(tmp_path / "changes.avi", frames)
    decoded = frames_of(video)
    assert len(decoded) == len(frames)
    labels = reference_labels(digits_model.tflite, decoded, tmp_path / "ref")
    changes = [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]
    assert len(changes) >= 8, labels  # about 95% right on held-out digits: most of the 12 steps change

    jsonl = tmp_path / "r.jsonl"
    result = run_cli(
        "run", digits_model.tflite, "--source", video, "--crop", "center", "--on-change", "--jsonl", jsonl
    )
    assert result.code == 0, result.stderr
    lines = result_lines(result.stdout)
    assert [m[3] for m in lines] == changes, result.stdout  # every change, the last one too
    assert "not shown" not in result.stdout
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["classes"][0]["label"] for r in records] == changes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _result(n: int, file: str | None = None) -> FrameResult:
    return FrameResult(n, n - 1, 0.0, Classification([Class(1, "1", 0.9)]), inference_ms=0.1, file=file)


@pytest.mark.parametrize("every_result", [False, True])
def test_human_sink_never_drops_stills_or_change_events(every_result):
    out, clock = io.StringIO(), Clock()
    sink = HumanSink(out, interval=0.5, clock=clock, every_result=every_result)
    for n in range(1, 4):  # three stills in no time: all shown
        sink.emit(_result(n, f"dir/s{n}.png"))
    clock.now = 1.0  # a stream after them (a line per half second counts their lines too)
    for n in range(4, 14):  # ten stream results in 0.1 s: throttled unless every result counts
        sink.emit(_result(n))
        clock.now += 0.01
    sink.close(None)
    lines = out.getvalue().splitlines()
    assert lines[:3] == [f"#{n} s{n}.png: 1 0.90   infer 0.10 ms" for n in range(1, 4)]
    if every_result:
        assert len(lines) == 13 and "not shown" not in out.getvalue()
    else:  # #4 shown, #5..#12 left out, #13 shown at close, then the count
        assert [m[1] for m in result_lines(out.getvalue())][3:] == ["4", "13"]
        assert lines[-2].endswith("(+8 not shown)")
        assert (
            lines[-1]
            == "8 results not shown (printing at most 2 lines per second; --jsonl FILE records every result)"
        )


def test_records_name_the_file_only_for_stills():
    """JSONL, /latest and MQTT all send ``FrameResult.to_dict()``: a still names its file, a stream does not."""
    still, frame = _result(1, "stills/a.png"), _result(2)
    assert still.to_dict()["file"] == "stills/a.png" and "file" not in frame.to_dict()
    live = LiveState(source="stills", stall_timeout=5.0)
    live.publish(np.zeros((8, 8, 3), np.uint8), still)
    latest = live.latest()
    assert latest is not None and latest["file"] == "stills/a.png"
