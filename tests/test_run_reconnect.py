"""Sources that cannot be opened or go away: one-line errors, or reconnects with backoff and 503s meanwhile."""

from __future__ import annotations

import json
import threading

import pytest

from edgecnn.devices.sources import open_source, parse_source
from edgecnn.errors import SourceError
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import Pipeline, run
from tests.conftest import MOBILENET, error_lines, run_cli
from tests.run_support import MjpegServer, http_get, numbered_frame, wait_until


def test_camera_99_fails_fast_with_the_causes(coral):
    result = run_cli("run", MOBILENET, "--camera", "99")
    assert result.code == 6
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error: Cannot open camera 99:")
    for words in ("/dev/video99", "--source picamera2", "video group", "other programs"):
        assert words in lines[0]
    assert "Traceback" not in result.stderr and "summary:" not in result.stdout


def test_camera_99_with_reconnect_retries_until_duration_and_exits_0(coral):
    result = run_cli("run", MOBILENET, "--camera", "99", "--reconnect", "--duration", "3")
    assert result.code == 0, result.stderr
    warnings = [line for line in error_lines(result.stderr) if line.startswith("edgecnn: warning:")]
    assert len(warnings) >= 2  # every attempt is logged
    assert "Cannot open camera 99" in warnings[0] and "Retrying in 0.5 s (attempt 1" in warnings[0]
    assert "attempt 2" in warnings[1]
    summary = result.stdout
    assert "summary: 0 frames" in summary and "stopped: duration" in summary
    reconnects = int(summary.split("reconnects ")[1].split()[0])
    assert reconnects >= 1


def test_stream_that_disappears_reconnects_then_recovers(coral):
    camera = MjpegServer([numbered_frame(i, 320, 240) for i in range(10)], fps=30).start()
    options = RunOptions(
        model=MOBILENET,
        source=camera.url,
        reconnect=True,
        serve="127.0.0.1:0",
        quiet=True,
        stall_timeout=2.0,
        backoff_initial=0.1,
        backoff_max=0.4,
    )
    pipeline = Pipeline(options)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(summary=pipeline.run()), daemon=True)
    thread.start()
    try:
        assert pipeline.serving.wait(60)
        host, port = pipeline.server_address
        health = f"http://{host}:{port}/healthz"

        def state():
            status, _, body = http_get(health)
            return status, json.loads(body)

        wait_until(lambda: state()[0] == 200 and state()[1]["frames"] >= 5)
        camera.stop()  # the IP camera goes away: its stream ends and new connections are refused
        _, body = wait_until(lambda: (s := state())[0] == 503 and s[1]["reconnects"] >= 1 and s)
        assert body["status"] == "reconnecting" and "127.0.0.1" in body["detail"]
        frames_before = body["frames"]
        camera.start()  # same port: the camera comes back
        _, body = wait_until(lambda: (s := state())[0] == 200 and s[1]["frames"] > frames_before + 5 and s)
        assert body["status"] == "ok"
        metrics = http_get(f"http://{host}:{port}/metrics")[2].decode()
        assert "edgecnn_source_up 1.0" in metrics
    finally:
        pipeline.stop()
        thread.join(15)
        camera.stop()
    assert not thread.is_alive()
    summary = box["summary"]
    assert summary.reconnects >= 1 and summary.stopped == "signal" and summary.frames > 10


def test_stream_that_disappears_without_reconnect_is_an_error(coral):
    camera = MjpegServer([numbered_frame(i, 320, 240) for i in range(10)], fps=30).start()
    errors: list[BaseException] = []
    got_frames = threading.Event()

    class Watch:
        def emit(self, result):
            if result.n == 3:
                got_frames.set()

        def close(self, summary):
            pass

    def target():
        try:
            run(RunOptions(model=MOBILENET, source=camera.url, quiet=True), sinks=[Watch()])
        except SourceError as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert got_frames.wait(60)
    camera.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert errors and "stopped delivering frames" in str(errors[0]) and camera.url in str(errors[0])


class Stuck:
    """A camera driver that opens and then never returns a frame (the hang the stall detector is for)."""

    name, live, dropped = "stuck camera", True, 0

    def __init__(self):
        self.opens = 0

    def open(self):
        self.opens += 1

    def read(self, timeout):
        threading.Event().wait(timeout)
        return None

    def close(self):
        pass


def test_stalled_source_is_an_error_not_a_hang(coral):
    with pytest.raises(SourceError, match=r"No frame from stuck camera for 0\.3 s"):
        run(RunOptions(model=MOBILENET, quiet=True, stall_timeout=0.3), source=Stuck())


def test_stalled_source_with_reconnect_reopens(coral):
    stuck = Stuck()
    summary = run(
        RunOptions(
            model=MOBILENET, quiet=True, stall_timeout=0.2, reconnect=True, duration=1.5, backoff_initial=0.05
        ),
        source=stuck,
    )
    assert stuck.opens >= 2 and summary.reconnects == stuck.opens - 1 and summary.stopped == "duration"


def test_url_that_refuses_connections(coral):
    camera = MjpegServer([numbered_frame(0)]).start()
    url = camera.url
    camera.stop()
    with pytest.raises(SourceError, match=r"Cannot open stream http://127\.0\.0\.1"):
        open_source(parse_source(url)).open()
