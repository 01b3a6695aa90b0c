"""``--loop``: a video file or an image folder starts again at its end, so a demo clip serves until stopped."""

from __future__ import annotations

import cv2
import numpy as np

from edgecnn.devices.sources.folder import FolderGrabber
from edgecnn.devices.sources.opencv import CaptureGrabber
from edgecnn.devices.sources.synthetic import render_digit, write_video
from tests.conftest import MOBILENET, run_cli


def _clip(tmp_path, frames=5):
    return write_video(tmp_path / "clip.avi", [render_digit(i, 64, 48) for i in range(frames)], fps=30)


def test_file_loops_and_stops_without_loop(tmp_path):
    clip = _clip(tmp_path)
    once = CaptureGrabber(str(clip), "file")
    once.open()
    count = 0
    while once.grab() is not None:
        count += 1
    assert count == 5
    looped = CaptureGrabber(str(clip), "file", loop=True)
    looped.open()
    frames = [looped.grab() for _ in range(12)]
    assert all(f is not None for f in frames) and looped.frames == 12
    # the 6th frame is the first one again
    assert np.abs(frames[5].astype(int) - frames[0].astype(int)).mean() < 3
    looped.close()
    once.close()


def test_folder_loops_and_a_folder_of_broken_images_ends(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        cv2.imwrite(str(good / f"{i}.png"), render_digit(i, 16, 16))
    folder = FolderGrabber(good, loop=True)
    folder.open()
    assert all(folder.grab() is not None for _ in range(7))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    stuck = FolderGrabber(broken, loop=True)
    stuck.open()
    assert stuck.grab() is None  # no endless spin over files that never decode


def test_run_loop_classifies_past_the_end_of_the_file(tmp_path, coral):
    clip = _clip(tmp_path)
    result = run_cli("run", MOBILENET, "--source", clip, "--loop", "--max-frames", 12, "--jsonl", "-", "-q")
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 12
    assert "stopped: max-frames" in result.stderr


def test_looped_clip_serves_past_its_end_until_interrupted(tmp_path, coral):
    """The demo's suggested live command: a 1 s clip with --loop --realtime --serve runs until Ctrl-C."""
    import json
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    clip = write_video(tmp_path / "clip.avi", [render_digit(i % 10, 64, 48) for i in range(30)], fps=30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "run", str(MOBILENET), "--source", str(clip), "--realtime",
         "--loop", "--serve", "127.0.0.1:0", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = None
        while url is None:
            line = proc.stderr.readline()
            assert line, "edgecnn run ended before serving"
            match = re.search(r"serving (http://\S+/)", line)
            url = match.group(1) if match else None
        time.sleep(2.5)  # well past the end of the 1 s clip
        assert proc.poll() is None, "the run ended at the end of the clip"
        with urllib.request.urlopen(url + "healthz", timeout=5) as response:
            health = json.load(response)
        assert health["status"] == "ok" and health["frames"] > 45, health
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = re.search(r"^summary: (\d+) frames .*; stopped: (\S+)$", out + err, re.MULTILINE)
    assert summary and int(summary.group(1)) > 45 and summary.group(2) == "signal", out + err
