"""The HTTP endpoint of ``edgecnn run --serve``, exercised over real loopback sockets."""

from __future__ import annotations

import http.client
import json
import threading

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgecnn.errors import UsageError
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import Pipeline
from tests.conftest import MOBILENET
from tests.run_support import http_get, wait_until


@pytest.fixture
def served(coral):
    """A pipeline on generated frames, serving on a free loopback port, run in a thread."""
    pipeline = Pipeline(
        RunOptions(model=MOBILENET, source="demo", fps=30, serve="127.0.0.1:0", quiet=True, top_k=2)
    )
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(summary=pipeline.run()), daemon=True)
    thread.start()
    assert pipeline.serving.wait(60), "server did not start"
    host, port = pipeline.server_address
    yield pipeline, f"http://{host}:{port}"
    pipeline.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert box["summary"].stopped == "signal"


def metrics(base: str) -> dict:
    status, headers, body = http_get(base + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def test_healthz_latest_metrics(served):
    _pipeline, base = served
    wait_until(lambda: http_get(base + "/healthz")[0] == 200)
    status, headers, body = http_get(base + "/healthz")
    health = json.loads(body)
    assert health["status"] == "ok" and health["source"] == "synthetic:digits" and health["frames"] >= 1
    wait_until(lambda: json.loads(http_get(base + "/latest")[2]).get("n", 0) >= 5)
    status, headers, body = http_get(base + "/latest")
    latest = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert len(latest["classes"]) == 2 and latest["latency_ms"]["inference"] > 0

    families = metrics(base)
    frames = families["edgecnn_frames"]
    assert frames.type == "counter"
    assert next(s.value for s in frames.samples if s.name == "edgecnn_frames_total") >= 5
    histogram = families["edgecnn_inference_seconds"]
    assert histogram.type == "histogram"
    count = next(s.value for s in histogram.samples if s.name == "edgecnn_inference_seconds_count")
    inf_bucket = next(s for s in histogram.samples if s.labels.get("le") == "+Inf")
    assert count >= 5 and inf_bucket.value == count
    assert families["edgecnn_fps"].samples[0].value > 0
    assert families["edgecnn_source_up"].samples[0].value == 1
    assert families["edgecnn_reconnects"].type == "counter"
    assert families["edgecnn_frames_dropped"].type == "counter"
    info = families["edgecnn_run_info"].samples[0].labels
    assert info["model"] == MOBILENET.name and info["source"] == "synthetic:digits"
    assert "python_gc_objects_collected" not in families  # an own registry, not the global one


def test_stream_mjpg_sends_labelled_jpegs(served):
    pipeline, _base = served
    host, port = pipeline.server_address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200
    content_type = resp.getheader("Content-Type")
    assert content_type.startswith("multipart/x-mixed-replace")
    boundary = content_type.split("boundary=")[1].encode()
    images = []
    while len(images) < 2:
        line = resp.fp.readline()
        if line.strip() != b"--" + boundary:
            continue
        headers = {}
        while line := resp.fp.readline().strip():
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = resp.fp.read(int(headers["content-length"]))
        images.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    conn.close()
    assert all(image.shape == (480, 640, 3) for image in images)
    # The label is drawn in green on a black bar at the top-left; the demo frame itself is white on black.
    bar = images[0][:20, :200]
    assert (bar[..., 1].astype(int) - bar[..., 2].astype(int)).max() > 100


def test_each_stream_part_carries_the_caption_of_the_result_drawn_on_it(served):
    """The page's text comes from the stream part's X-Edgecnn-Result header, so it must describe the very
    picture of that part: rebuilt from the caption alone (the demo source's frame N, the top class and
    score as drawn), the JPEG is byte for byte the one served. The caption holds every top-k class."""
    from edgecnn.adapters import Class
    from edgecnn.devices.sources.synthetic import render_digit
    from edgecnn.run.live import render_preview
    from edgecnn.run.results import FrameResult
    from edgecnn.tasks.classify import Classification

    pipeline, base = served
    host, port = pipeline.server_address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    parts = []
    while len(parts) < 4:
        if not resp.fp.readline().startswith(b"--"):
            continue
        headers = {}
        while line := resp.fp.readline().strip():
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        parts.append((json.loads(headers["x-edgecnn-result"]), resp.fp.read(int(headers["content-length"]))))
    conn.close()
    assert len({caption["frame"] for caption, _ in parts}) == len(parts)  # four different frames
    for caption, jpeg in parts:
        shown = [item.rsplit(" ", 1) for item in caption["text"].split("  ")]
        assert 1 <= len(shown) <= 2 and caption["summary"].startswith(shown[0][0])  # --top-k 2
        f = caption["frame"]
        frame = render_digit((f // 10) % 10, 640, 480, (f // 100) % 3)  # the demo source's frame f
        drawn = Classification([Class(0, shown[0][0], float(shown[0][1]))])
        result = FrameResult(
            n=caption["n"], frame=f, timestamp=0.0, output=drawn, capture_wait_ms=0, preprocess_ms=0,
            inference_ms=0, total_ms=0, age_ms=0,
        )  # fmt: skip
        assert render_preview(frame, result) == jpeg, caption
    latest = json.loads(http_get(base + "/latest")[2])
    assert latest["line"].count("  ") == len(latest["classes"]) - 1  # /latest's stand-in text: all top-k


def test_index_page_and_unknown_path(served):
    _pipeline, base = served
    status, headers, body = http_get(base + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'"stream.mjpg"' in body and b"latest" in body
    status, _, body = http_get(base + "/nope")
    assert status == 404 and "/healthz" in json.loads(body)["endpoints"]


def test_latest_is_503_before_the_first_frame(coral):
    gate = threading.Event()

    class Waiting:
        name, live, dropped = "gated camera", True, 0

        def open(self):
            pass

        def read(self, timeout):
            gate.wait(timeout)
            return None

        def close(self):
            pass

    pipeline = Pipeline(
        RunOptions(model=MOBILENET, serve="127.0.0.1:0", quiet=True, stall_timeout=60), source=Waiting()
    )
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        assert pipeline.serving.wait(60)
        host, port = pipeline.server_address
        status, _, body = http_get(f"http://{host}:{port}/latest")
        assert status == 503 and json.loads(body)["status"] == "no result yet"
        status, _, body = http_get(f"http://{host}:{port}/healthz")
        assert status == 503 and json.loads(body)["status"] == "starting"
    finally:
        pipeline.stop()
        gate.set()
        thread.join(10)


def test_port_in_use_is_a_clear_error(coral):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"Cannot serve on 127.0.0.1:{port}"):
            Pipeline(RunOptions(model=MOBILENET, source="demo", serve=f"127.0.0.1:{port}", quiet=True)).run()
