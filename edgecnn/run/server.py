"""``--serve HOST:PORT``: health, latest result, Prometheus metrics and an MJPEG preview over HTTP.

Endpoints: ``/healthz`` (200 while frames flow, 503 while starting, stalled or reconnecting), ``/latest``
(the last result as JSON; 503 before the first), ``/metrics`` (Prometheus text format from this run's
registry), ``/stream.mjpg`` (``multipart/x-mixed-replace`` JPEGs with the label drawn) and ``/`` (a page
showing both). The standard library's threading server is enough for a handful of clients; it binds
127.0.0.1 unless told otherwise, since there is no authentication.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.run.live import LiveState
from edgecnn.run.metrics import CONTENT_TYPE, RunMetrics

log = logging.getLogger("edgecnn.run")

BOUNDARY = "edgecnnframe"
# The page is a package data file (edgecnn/run/page.html), read once; ``__SOURCE__`` is filled per request.
PAGE = resources.files("edgecnn.run").joinpath("page.html").read_text(encoding="utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # stream clients must not keep the process alive on shutdown
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], live: LiveState, metrics: RunMetrics, stream_fps: float
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.live, self.metrics = live, metrics
        self.stream_interval = 1.0 / stream_fps
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edgecnn"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s " + format, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, (json.dumps(data) + "\n").encode(), "application/json")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        live = self.server.live
        if path == "/healthz":
            healthy, body = live.health()
            self._json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)
        elif path == "/latest":
            latest = live.latest()
            if latest is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "no result yet"})
            else:
                self._json(HTTPStatus.OK, latest)
        elif path == "/metrics":
            self._send(HTTPStatus.OK, self.server.metrics.exposition(), CONTENT_TYPE)
        elif path == "/stream.mjpg":
            self._stream()
        elif path in ("/", "/index.html"):
            page = PAGE.replace("__SOURCE__", _escape(live.source))
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        else:
            self._json(
                HTTPStatus.NOT_FOUND,
                {
                    "error": f"no such endpoint {path}",
                    "endpoints": ["/", "/healthz", "/latest", "/metrics", "/stream.mjpg"],
                },
            )

    def _stream(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command == "HEAD":
            return
        seq = 0
        stopping = self.server.stopping
        while not stopping.is_set():
            got = self.server.live.wait_preview(seq, timeout=0.5)
            if got is None:
                if self.server.live.closed:
                    break
                continue
            seq, jpeg = got
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            try:
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                return  # the viewer went away
            if stopping.wait(self.server.stream_interval):
                break


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class RunServer:
    """The HTTP endpoint in a background thread; ``address`` is the bound (host, port) (port 0 picks one)."""

    def __init__(
        self, host: str, port: int, live: LiveState, metrics: RunMetrics, *, stream_fps: float = 15.0
    ) -> None:
        try:
            self._server = _Server((host, port), live, metrics, stream_fps)
        except OSError as exc:
            raise UsageError(
                f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Pick a free port (--serve 127.0.0.1:8081) "
                "or stop what is using it."
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.live.close()
        if self._thread.is_alive():
            self._server.shutdown()  # blocks until serve_forever returns: only call it when it runs
        self._server.server_close()
        self._thread.join(timeout=1.0)
