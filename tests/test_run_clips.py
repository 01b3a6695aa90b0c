"""Event clips (``--clips``): pre-roll, post-roll, extension, snapshots, retention, and a disk that fails.

The videos are generated: the noisy grey backgrounds the test detectors were trained on, with a red square
(the detector's ``square``) in chosen frames. The detector finds it in every such frame and in no other
(checked by the first test through the JSONL), so which frames a clip must hold is known exactly.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from edgecnn.run.clips import Clip, ClipSettings, ClipStore
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import run
from tests.conftest import error_lines, run_cli
from tests.run_support import http_get, wait_until, write_video

FPS = 15


def square_video(path: Path, frames: int, square: set[int], seed: int = 0) -> Path:
    """``frames`` frames at 15 fps; those in ``square`` show a red square the detector finds."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(frames):
        image = cv2.GaussianBlur(rng.integers(90, 150, (96, 96, 3), dtype=np.uint8), (3, 3), 0)
        if i in square:
            cv2.rectangle(image, (30, 30), (58, 58), (40, 40, 220), -1)
        images.append(image)
    return write_video(path, images, fps=FPS)


def red(image: np.ndarray) -> bool:
    return int(((image[:, :, 2] > 180) & (image[:, :, 0] < 100)).sum()) > 50


def read_clip(path: Path) -> list[bool]:
    """Whether each frame of a clip shows the square (the clip decoded with OpenCV, as a viewer would)."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    shown = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        shown.append(red(frame))
    capture.release()
    return shown


def test_clip_holds_pre_roll_event_and_post_roll(detectors, tmp_path):
    video = square_video(tmp_path / "door.mp4", 75, set(range(30, 45)))  # square from 2.0 s to 3.0 s
    clips, jsonl = tmp_path / "clips", tmp_path / "results.jsonl"
    result = run_cli(
        "run", detectors["yolo_int8"], "--source", video, "--realtime", "-q", "--jsonl", jsonl,
        "--clips", clips, "--clip-labels", "square", "--clip-pre", "1", "--clip-post", "1",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    processed = [r["frame"] for r in records]  # a loaded machine may drop a frame, as a camera would
    assert len(processed) >= 60
    seen = [r["frame"] for r in records if r["objects"]]
    assert seen == [
        f for f in processed if 30 <= f < 45
    ]  # the detector is exact: the clip's content is known
    started = [r for r in records if "clip" in r]
    assert [r["frame"] for r in started] == [seen[0]]
    names = started[0]["clip"]
    files = sorted(p.name for p in clips.iterdir())
    assert files == sorted([names["video"], names["snapshot"]])  # no .part file left, nothing else
    shown = read_clip(clips / names["video"])
    # What the clip must hold, from the capture times of the processed frames: 1 s before the first
    # sighting, the sighting, 1 s after the last one (a frame either way where a boundary falls).
    times = {r["frame"]: r["timestamp"] for r in records}
    start, end = times[seen[0]], times[seen[-1]]
    pre = [f for f in processed if start - 1 <= times[f] < start]
    post = [f for f in processed if end < times[f] <= end + 1]
    assert len(pre) >= 12 and len(post) >= 12  # about 15 each at 15 fps
    assert abs(len(shown) - (len(pre) + len(seen) + len(post))) <= 2, (len(shown), len(pre), len(post))
    first = shown.index(True)
    assert abs(first - len(pre)) <= 2, shown  # the pre-roll: frames from before the square appeared
    assert shown[first : first + len(seen)] == [True] * len(seen)
    assert not any(shown[first + len(seen) :]) and abs(len(shown) - first - len(seen) - len(post)) <= 1, shown
    snapshot = cv2.imread(str(clips / names["snapshot"]))
    assert snapshot is not None and red(snapshot)


def test_event_that_goes_on_extends_one_clip_and_a_later_one_starts_another(detectors, tmp_path):
    # Two sightings 0.5 s apart (less than --clip-post): one clip; a third 3 s later: a clip of its own.
    square = set(range(15, 20)) | set(range(27, 32)) | set(range(90, 95))
    video = square_video(tmp_path / "yard.mp4", 120, square)
    clips, jsonl = tmp_path / "clips", tmp_path / "results.jsonl"
    result = run_cli(
        "run", detectors["yolo_int8"], "--source", video, "--realtime", "-q", "--jsonl", jsonl,
        "--clips", clips, "--clip-pre", "0.5", "--clip-post", "1",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    processed = [r["frame"] for r in records]
    seen = [r["frame"] for r in records if r["objects"]]
    assert seen == [f for f in processed if f in square]
    started = [r for r in records if "clip" in r]
    assert [r["frame"] for r in started] == [seen[0], min(f for f in seen if f >= 90)]
    first, second = (read_clip(clips / r["clip"]["video"]) for r in started)
    # 0.5 s pre-roll + frames 15..31 + 1 s post: about 8 + 17 + 15 frames, both sightings in one clip.
    assert 34 <= len(first) <= 43, len(first)
    assert sum(first) == len([f for f in seen if f < 90])
    assert 23 <= len(second) <= 31 and sum(second) == len([f for f in seen if f >= 90]), (
        len(second),
        sum(second),
    )


def test_listing_and_retention_by_size_and_age(tmp_path):
    folder = tmp_path / "clips"
    (folder / "door").mkdir(parents=True)
    now = time.time()
    for i, age_days in enumerate([10, 3, 2, 1]):  # one too old, three within a week
        video = folder / "door" / f"door-{i}.avi"
        video.write_bytes(b"v" * 1000)
        video.with_suffix(".jpg").write_bytes(b"j" * 100)
        os.utime(video, (now - age_days * 86400, now - age_days * 86400))
    (folder / "door" / ".door-9.part.avi").write_bytes(b"half")  # a crashed run's unfinished clip
    settings = ClipSettings(folder=folder, max_total_bytes=2500, max_age_s=7 * 86400)
    store = ClipStore(settings)
    store.open()
    # door-0 is past the age; door-1 goes so the rest fit in 2500 bytes (1100 each); the part file is gone.
    assert [c.video for c in store.list()] == ["door/door-2.avi", "door/door-3.avi"]
    assert sorted(p.name for p in (folder / "door").iterdir()) == [
        "door-2.avi", "door-2.jpg", "door-3.avi", "door-3.jpg",
    ]  # fmt: skip
    new = folder / "door" / "door-4.avi"
    new.write_bytes(b"v" * 1000)
    store.add(Clip("door", "door/door-4.avi", None, now, 1.0, 15, 1000))
    assert [c.video for c in store.list()] == ["door/door-3.avi", "door/door-4.avi"]
    assert not (folder / "door" / "door-2.jpg").exists() and store.deleted == 3
    assert store.find("door/door-4.avi") == new and store.find("../etc/passwd") is None


def test_full_disk_stops_recording_and_inference_goes_on(detectors, tmp_path):
    """Less free space than --clip-min-free-mb (here: more than any disk has) is a full disk: no clip,
    every frame still processed, and /healthz and /metrics say that recording stopped."""
    from tests.test_run_process import start_run

    video = square_video(tmp_path / "door.mp4", 60, set(range(10, 50)))
    clips = tmp_path / "clips"
    proc, out, err = start_run(
        str(detectors["yolo_int8"]), "--source", str(video), "--realtime", "--serve", "127.0.0.1:0",
        "--clips", str(clips), "--clip-min-free-mb", "9000000", "-q",
    )  # fmt: skip
    try:
        serving = err.wait_for(lambda line: line.startswith("serving http://"))
        base = serving.split()[1].rstrip("/")
        warning = err.wait_for(lambda line: "recording stopped" in line)
        assert "disk full" in warning and "MB free" in warning
        body = wait_until(lambda: (b := json.loads(http_get(base + "/healthz")[2]))["clips"]["failed"] and b)
        assert body["status"] == "ok"  # inference goes on: the run is healthy, its clips are not
        assert body["clips"]["recording"] is False and "disk full" in body["clips"]["detail"]
        metrics = http_get(base + "/metrics")[2].decode()
        assert "edgecnn_clips_recording 0.0" in metrics and "edgecnn_clips_written_total 0.0" in metrics
        assert json.loads(http_get(base + "/clips")[2])["clips"] == []
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    summary = out.text()
    frames, dropped = (
        int(summary.split("summary: ")[1].split()[0]),
        int(summary.split("dropped ")[1].split()[0]),
    )
    assert frames + dropped == 60 and frames >= 50  # every frame processed (or dropped as by a camera)
    assert list(clips.iterdir()) == []
    assert len([line for line in error_lines(err.text()) if "recording stopped" in line]) == 1


def test_folder_that_fails_mid_run_stops_recording_not_the_run(detectors, tmp_path, caplog):
    """The clips folder replaced by a file while the run goes (a lost mount, a full card): the clip
    cannot be written, the run processes every frame, and the clip's final name never appears."""
    video = square_video(tmp_path / "door.mp4", 60, set(range(20, 30)))
    clips = tmp_path / "clips"
    seen: list[int] = []

    class BreakFolder:
        def emit(self, result):
            seen.append(result.frame)
            if result.frame == 5:  # the folder exists and is empty: the run opened it
                clips.rmdir()
                clips.write_text("not a folder")

        def close(self, summary):
            pass

    summary = run(
        RunOptions(model=detectors["yolo_int8"], source=str(video), quiet=True, clips=str(clips)),
        sinks=[BreakFolder()],
    )
    assert summary.frames == 60 and seen == list(range(60))
    assert clips.read_text() == "not a folder"
    stopped = [r.getMessage() for r in caplog.records if "recording stopped" in r.getMessage()]
    assert len(stopped) == 1 and f"cannot use {clips}" in stopped[0], stopped


def test_clip_options_are_checked_before_the_run(tmp_path, coral):
    from tests.conftest import MOBILENET

    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run_cli("run", MOBILENET, "--source", "demo", "--clips", afile)
    assert result.code != 0 and error_lines(result.stderr) == [
        f"edgecnn: error: --clips: {afile} is not a folder: name a folder for the clips (it is created)."
    ]
    result = run_cli("run", MOBILENET, "--source", "demo", "--clips", tmp_path / "c", "--clip-format", "mkv")
    assert result.code != 0 and "--clip-format: use avi or mp4, got 'mkv'." in result.stderr
    result = run_cli("run", MOBILENET, "--source", "demo", "--clips", tmp_path / "c", "--clip-pre", "-1")
    assert result.code != 0 and "--clip-pre" in result.stderr and "between 0 and 60" in result.stderr


def test_avi_clip_holds_the_ring_jpegs_as_they_are_and_takes_odd_frames(tmp_path):
    """An .avi clip (MJPG) muxes the JPEG each frame was encoded to once, for the ring: the file holds
    those very JPEGs (an encoder writing the frames again would not). A frame of another
    size (the camera changed resolution) or a gray one mid-clip is still written, at the clip's size."""
    from edgecnn.run.clips import ClipRecorder
    from edgecnn.run.results import FrameResult
    from edgecnn.tasks.classify import Class, Classification

    rng = np.random.default_rng(1)
    frames = [
        cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0) for _ in range(25)
    ]
    frames[16] = cv2.resize(frames[16], (80, 60))  # the camera changed resolution
    frames[17] = cv2.cvtColor(frames[17], cv2.COLOR_BGR2GRAY)
    settings = ClipSettings(
        folder=tmp_path / "clips", labels=frozenset({"cat"}), pre_s=0.95, post_s=0.45, queue_frames=64
    )
    store = ClipStore(settings)
    store.open()
    recorder = ClipRecorder("door", settings, store)
    t0 = time.time()
    for i, image in enumerate(frames):
        label = "cat" if 10 <= i < 15 else "dog"  # the event: frames 10-14; 0.45 s after: 15-18
        result = FrameResult(i + 1, i, t0 + i * 0.1, Classification([Class(0, label, 0.9)]))
        recorder.tap(image, result)
    recorder.close()
    (clip,) = store.list()
    capture = cv2.VideoCapture(str(settings.folder / clip.video))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1])
    assert clip.frames == len(decoded) == 9 + 5 + 4  # pre-roll 1-9, the event 10-14, post-roll 15-18
    # Each colour frame of the clip's size is in the file as the very JPEG the ring holds (encoded once).
    avi = (settings.folder / clip.video).read_bytes()
    quality = [cv2.IMWRITE_JPEG_QUALITY, settings.quality]
    for i in [*range(1, 16), 18]:
        assert cv2.imencode(".jpg", frames[i], quality)[1].tobytes() in avi, i
    assert all(frame.shape == (48, 64, 3) for frame in decoded)
    gray = decoded[17 - 1]
    assert np.abs(gray.astype(int) - frames[17][:, :, None]).mean() < 4  # the gray frame, as colour
