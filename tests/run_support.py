"""Helpers for the ``edgecnn run`` tests: real videos, a real MJPEG HTTP server, HTTP on loopback."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

# The package's own helpers (edgecnn demo uses them too): re-exported for the tests.
from edgecnn.devices.sources.synthetic import digit_frame, write_video
from edgecnn.httpget import free_port, http_get

__all__ = [
    "LineReader",
    "MjpegServer",
    "digit_frame",
    "free_port",
    "http_get",
    "numbered_frame",
    "serving",
    "wait_until",
    "write_video",
]


def numbered_frame(i: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A flat grey frame whose brightness encodes ``i`` (steps of 8 survive JPEG), for order checks."""
    return np.full((height, width, 3), (i * 8) % 256, np.uint8)


@contextlib.contextmanager
def serving(options: Any) -> Iterator[str]:
    """``edgecnn run`` with ``serve`` (``options``: RunOptions) in a thread of this process, as long as the
    block lasts: yields its base URL once it serves, then stops the pipeline and waits for the thread."""
    from edgecnn.run.pipeline import Pipeline

    pipeline = Pipeline(options)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        assert pipeline.serving.wait(30)
        host, port = pipeline.server_address  # type: ignore[misc]
        yield f"http://{host}:{port}"
    finally:
        pipeline.stop()
        thread.join(30)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


class MjpegServer:
    """An HTTP MJPEG camera on 127.0.0.1, like an IP camera's /stream.mjpg; stop() drops every client."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 30.0, port: int = 0) -> None:
        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.fps = fps
        self.port = port
        self.served = 0
        self.paused = threading.Event()  # set: connections stay open but no frame is sent (a stalled camera)
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while not owner._stop.is_set():
                    if owner.paused.is_set():
                        owner._stop.wait(0.05)
                        continue
                    jpeg = owner.jpegs[i % len(owner.jpegs)]
                    part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    try:
                        self.wfile.write(part + jpeg + b"\r\n")
                    except OSError:
                        return
                    owner.served += 1
                    i += 1
                    owner._stop.wait(1.0 / owner.fps)

        self._stop.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class LineReader:
    """Reads a subprocess pipe in a thread so tests can wait for a line without blocking forever."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)
            self._queue.put(line)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching line within {timeout} s; got: {''.join(self.lines)[-2000:]}"
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(line):
                return line

    def text(self, proc: subprocess.Popen[str] | None = None) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)
