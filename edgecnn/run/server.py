"""``--serve HOST:PORT``: health, latest result, Prometheus metrics and an MJPEG preview over HTTP.

Endpoints: ``/healthz`` (200 while frames flow, 503 while starting, stalled or reconnecting), ``/latest``
(the last result as JSON; 503 before the first), ``/metrics`` (Prometheus text format from this run's
registry), ``/stream.mjpg`` (``multipart/x-mixed-replace`` JPEGs with the result drawn, each part with
an ``X-Edgecnn-Result`` header describing that result) and ``/`` (a page showing both, its text read from
the very stream part it shows).

A device on a network meets clients that connect and say nothing, send half a request, vanish mid-response
or arrive fifty at once. The standard library's ``ThreadingHTTPServer`` starts a thread per connection with
no limit (1,000 idle sockets are 1,000 threads, an outage on a 1 GB Pi), has no read timeout and a listen
backlog of 5. So the HTTP parsing stays the standard library's (:class:`_Handler` is a
``BaseHTTPRequestHandler``) and only the connection handling in front of it is ours:

- one thread accepts and *parks* connections in a selector until their request head has arrived
  (:class:`_Parked`), so idle sockets and half-sent requests cost a file descriptor, not a thread; a
  silent socket is closed after :data:`IDLE_TIMEOUT_S`, a partial request :data:`READ_TIMEOUT_S` after
  its first byte, and past ``max_connections`` the oldest waiting one is closed to make room (it has no
  complete request, so nothing is lost), which keeps ``/healthz`` answering while a thousand idle
  sockets are open; a request head over :data:`MAX_HEAD_BYTES` is answered ``431`` from that thread
  (the rest of it read and dropped for :data:`DRAIN_S`, so the answer is not lost to a reset);
- a fixed pool of worker threads runs the handlers on requests already read, each socket with a
  :data:`READ_TIMEOUT_S` send timeout, so a stalled reader ends instead of holding a worker forever;
- at most ``max_viewers`` ``/stream.mjpg`` clients (they hold a worker each); beyond that, and when every
  worker is busy and the queue is full, the answer is ``503`` with ``Retry-After``;
- a client that disconnects early is a debug line, not a traceback.

Access control (:mod:`edgecnn.run.access`): with a token, ``/``, ``/latest`` and ``/stream.mjpg`` (and with
``token_all`` every path) need ``Authorization: Bearer TOKEN``, the ``edgecnn_token`` cookie, or a
``?token=`` link that sets the cookie.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import queue
import selectors
import shutil
import socket
import socketserver
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from edgecnn.errors import UsageError
from edgecnn.run.access import Access
from edgecnn.run.live import LiveState
from edgecnn.run.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from edgecnn.run.cameras import CameraDirectory
    from edgecnn.run.clips import ClipStore

log = logging.getLogger("edgecnn.run")

BOUNDARY = "edgecnnframe"
RESULT_HEADER = "X-Edgecnn-Result"  # per-part header of /stream.mjpg: the caption of the frame's result
# The page is a package data file (edgecnn/run/page.html), read once; ``__SOURCE__`` is filled per request.
PAGE = resources.files("edgecnn.run").joinpath("page.html").read_text(encoding="utf-8")
# What a browser gets instead of the JSON 401: how to give the token (``__PROBLEM__``, ``__ADDRESS__``).
TOKEN_PAGE = resources.files("edgecnn.run").joinpath("token.html").read_text(encoding="utf-8")


class Exposition(Protocol):
    """What ``/metrics`` serves: one run's :class:`RunMetrics`, or every camera's with a ``camera`` label."""

    def exposition(self) -> bytes: ...


READ_TIMEOUT_S = 5.0  # a request must arrive, and a response be taken, within this (per socket operation)
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed without a thread
RETRY_AFTER_S = 2
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass(frozen=True)
class ServerLimits:
    """What one ``--serve`` endpoint may hold at once; the defaults fit a 1 GB Pi and a few dashboards."""

    workers: int = 8  # threads for ordinary requests (/latest, /metrics, /healthz, /)
    max_viewers: int = 8  # /stream.mjpg clients; each holds a thread of its own while it watches
    queue_size: int = 64  # requests read and waiting for a worker
    max_connections: int = 1024  # sockets open at once, parked ones included
    backlog: int = 128  # the kernel's listen queue (the stdlib's 5 drops SYNs under 50 clients)


MAX_HEAD_BYTES = 16 * 1024  # request line + headers; a GET from a browser is well under 2 KB
DRAIN_S = 1.0  # after a 431, how long the rest of an oversized head is read and dropped before closing
_TOO_LARGE_BODY = json.dumps(
    {"error": f"request line and headers over {MAX_HEAD_BYTES // 1024} KiB: send fewer or shorter headers"}
).encode()
TOO_LARGE = (
    (
        f"HTTP/1.0 {HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE.value} {HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE.phrase}\r\n"
        "Server: edgecnn\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n"
        f"Content-Length: {len(_TOO_LARGE_BODY) + 1}\r\n\r\n"
    ).encode()
    + _TOO_LARGE_BODY
    + b"\n"
)


def _head_end(head: bytes | bytearray) -> int | None:
    """Where the request head ends (just past its blank line), or None while it has not ended."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := head.find(sep)) >= 0]
    return min(ends) if ends else None


class _Parked:
    """A connection waiting for its request head, read without a thread as bytes arrive.

    Only the framing is looked at here (the blank line that ends a GET's head, which has no body); the
    request itself is parsed by ``BaseHTTPRequestHandler`` from these bytes. A head must complete within
    :data:`READ_TIMEOUT_S` of its first byte (slowloris), a silent connection within :data:`IDLE_TIMEOUT_S`.
    """

    __slots__ = ("address", "deadline", "draining", "head", "too_large")

    def __init__(self, address: Any, deadline: float) -> None:
        self.address, self.deadline, self.head = address, deadline, bytearray()
        self.too_large = False  # the head passed MAX_HEAD_BYTES: answer 431, not a reset
        self.draining = False  # 431 sent: reading (and dropping) what the client still sends, until it closes

    def receive(self, conn: socket.socket) -> bool | None:
        """True: head complete; False: give up (closed, reset, too long); None: wait for more."""
        try:
            data = conn.recv(MAX_HEAD_BYTES)
        except BlockingIOError:
            return None
        except OSError:
            return False
        if not data:
            return False
        if self.draining:
            return None
        if not self.head:
            self.deadline = min(self.deadline, time.monotonic() + READ_TIMEOUT_S)
        self.head += data
        end = _head_end(self.head)
        if end is not None and end <= MAX_HEAD_BYTES:
            return True
        if end is not None or len(self.head) > MAX_HEAD_BYTES:
            self.too_large = True
            return False
        return None

    def refuse_too_large(self, conn: socket.socket) -> None:
        """Answer 431 and stop sending; the caller keeps the socket parked, draining, until the client closes
        (or :data:`DRAIN_S`). Closing with the rest of the client's headers unread would make the kernel
        send a reset, which can destroy the 431 before the client reads it."""
        try:
            conn.send(TOO_LARGE)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.head = bytearray()
        self.draining = True
        self.deadline = time.monotonic() + DRAIN_S


class _Server(socketserver.TCPServer):
    """Binds and listens like the standard library; :meth:`serve` replaces its thread-per-request loop."""

    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        live: LiveState,
        metrics: Exposition,
        stream_fps: float,
        limits: ServerLimits,
        access: Access,
        clips: ClipStore | None = None,
        cameras: CameraDirectory | None = None,
    ) -> None:
        self.clips, self.cameras = clips, cameras
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.request_queue_size = limits.backlog
        self.live, self.metrics, self.limits, self.access = live, metrics, limits, access
        self.stream_interval = 1.0 / stream_fps
        self.stopping = threading.Event()
        self.viewers = threading.BoundedSemaphore(limits.max_viewers)
        self._work: queue.Queue[tuple[socket.socket, _Parked] | None] = queue.Queue(limits.queue_size)
        self._threads: list[threading.Thread] = []
        super().__init__(address, _Handler)  # type: ignore[arg-type]  # built by _worker, with the head

    # -- connection handling -------------------------------------------------------------------------
    def serve(self) -> None:
        """Accept and park connections; hand each to the worker pool once its request head has arrived."""
        for i in range(self.limits.workers + self.limits.max_viewers):
            thread = threading.Thread(target=self._worker, name=f"http-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        parked: OrderedDict[socket.socket, _Parked] = OrderedDict()  # oldest first
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ, None)
            while not self.stopping.is_set():
                for key, _ in selector.select(timeout=0.1):
                    if key.data is None:
                        self._accept(selector, parked)
                        continue
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    state = parked[conn]
                    done = state.receive(conn)
                    if done is False and state.too_large and not state.draining:
                        log.debug(
                            "http %s: request head over %d bytes: 431", state.address[0], MAX_HEAD_BYTES
                        )
                        state.refuse_too_large(conn)  # stays parked while the rest is drained
                        parked.move_to_end(conn)
                        continue
                    if done is not None:
                        selector.unregister(conn)
                        parked.pop(conn)
                        if done:
                            self._dispatch(conn, state)
                        else:
                            conn.close()
                now = time.monotonic()
                for conn in [c for c, state in parked.items() if state.deadline <= now]:
                    state = parked.pop(conn)
                    log.debug("http %s: no complete request in time, closed", state.address[0])
                    selector.unregister(conn)
                    conn.close()
            for conn in parked:
                conn.close()
        for _ in self._threads:
            self._work.put(None)

    def _accept(self, selector: selectors.BaseSelector, parked: OrderedDict[socket.socket, _Parked]) -> None:
        try:
            conn, address = self.socket.accept()
        except OSError:  # the client gave up between select and accept; or out of descriptors
            return
        if len(parked) >= self.limits.max_connections:
            old, state = parked.popitem(last=False)
            log.debug("http %s: closed the oldest waiting connection to make room", state.address[0])
            selector.unregister(old)
            old.close()
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ, address)
        parked[conn] = _Parked(address, time.monotonic() + IDLE_TIMEOUT_S)

    def _dispatch(self, conn: socket.socket, state: _Parked) -> None:
        conn.setblocking(True)
        try:
            self._work.put_nowait((conn, state))
        except queue.Full:
            # Every worker busy and the queue full: answer 503 from this thread (the request is already
            # read, so this cannot block for more than a send timeout), or drop the connection.
            conn.settimeout(0.2)
            try:
                _Busy(conn, state.address, self, bytes(state.head))
            except Exception as exc:  # a client that cannot even take a 503
                log.debug("http %s: overloaded, dropped (%s)", state.address[0], exc)
            finally:
                self.shutdown_request(conn)

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            conn, state = item
            try:
                _Handler(conn, state.address, self, bytes(state.head))
            except Exception:  # handle_error decides how loud
                self.handle_error(conn, state.address)
            finally:
                self.shutdown_request(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is routine; anything else is one warning (traceback with EDGECNN_DEBUG)."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, _DISCONNECTS) or (isinstance(exc, OSError) and exc.errno in (32, 104, 110)):
            log.debug("http %s: client went away (%s)", client_address[0], type(exc).__name__)
        else:
            log.warning("http %s: %s: %s", client_address[0], type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=1.0)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edgecnn"
    protocol_version = "HTTP/1.0"
    timeout = READ_TIMEOUT_S  # StreamRequestHandler sets it on the socket: a stalled reader ends

    def __init__(self, request: socket.socket, address: Any, server: _Server, head: bytes) -> None:
        self._head = head  # read by the server's parking loop; BaseRequestHandler handles in __init__
        super().__init__(request, address, server)

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BytesIO(self._head)  # the whole request (GET/HEAD have no body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s " + format, self.client_address[0], *args)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, (json.dumps(data) + "\n").encode(), "application/json", headers)

    def _busy(self, what: str) -> None:
        self._json(
            HTTPStatus.SERVICE_UNAVAILABLE,
            {"error": f"{what}; try again shortly"},
            {"Retry-After": str(RETRY_AFTER_S)},
        )

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        decision = self.server.access.check(path, query, self.headers)
        if not decision.allowed:
            if _wants_html(self.headers.get("Accept", "")):  # a browser: a page saying how to get in
                page = TOKEN_PAGE.replace(
                    "__PROBLEM__", _escape(decision.reason[:1].upper() + decision.reason[1:])
                )
                page = page.replace("__ADDRESS__", _escape(self._address()))
                self._send(
                    HTTPStatus.UNAUTHORIZED, page.encode(), "text/html; charset=utf-8", decision.headers
                )
            else:
                self._json(HTTPStatus.UNAUTHORIZED, {"error": decision.reason}, decision.headers)
            return
        if decision.redirect is not None:  # a ?token= login: set the cookie, drop the token from the URL
            self._send(
                HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": decision.redirect, **decision.headers}
            )
            return
        if path == "/clips" or path.startswith("/clips/"):
            self._clips(path)
            return
        live = self.server.live
        cameras = self.server.cameras
        if cameras is not None:  # several cameras: /, /healthz and /camera/NAME/... (edgecnn.run.cameras)
            routed = cameras.route(path)
            if routed is None:
                self._json(
                    HTTPStatus.NOT_FOUND, {"error": f"no such camera in {path}", "cameras": cameras.names}
                )
                return
            if isinstance(routed, tuple):
                status, content_type, answer = routed
                self._send(status, answer, content_type)
                return
            live, path = routed.live, routed.path
        if path == "/healthz":
            healthy, body = live.health()
            self._json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)
        elif path == "/latest":
            latest = live.latest()
            if latest is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "no result yet"})
            else:
                self._json(HTTPStatus.OK, latest)
        elif path == "/events":  # ?n=N: the newest N (at most 100), oldest first
            limit = _count(query, "n", 100)
            self._json(HTTPStatus.OK, {"events": live.events(limit)})
        elif path == "/metrics":
            self._send(HTTPStatus.OK, self.server.metrics.exposition(), CONTENT_TYPE)
        elif path == "/stream.mjpg":
            if not self.server.viewers.acquire(blocking=False):
                self._busy(f"at most {self.server.limits.max_viewers} preview viewers at once")
                return
            try:
                self._stream(live)
            finally:
                self.server.viewers.release()
        elif path in ("/", "/index.html"):
            page = PAGE.replace("__SOURCE__", _escape(live.source))
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        else:
            self._json(
                HTTPStatus.NOT_FOUND,
                {
                    "error": f"no such endpoint {path}",
                    "endpoints": ["/", "/healthz", "/latest", "/events", "/metrics", "/stream.mjpg"],
                },
            )

    def _address(self) -> str:
        """This server's page as the client addressed it (its Host header), for the token page's link."""
        host = self.headers.get("Host", "")
        if not host:
            name, port = self.server.server_address[:2]
            host = f"{name!s}:{port}"
        return f"http://{host}/"

    def _clips(self, path: str) -> None:
        """``/clips``: the event clips in the folder, newest first; ``/clips/FILE``: one of them."""
        store = self.server.clips
        if store is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "no clips: this run records none (--clips DIR)"})
            return
        if path in ("/clips", "/clips/"):
            clips = [c.to_dict() for c in reversed(store.list())]
            self._json(HTTPStatus.OK, {"folder": str(store.folder), "clips": clips})
            return
        from urllib.parse import unquote

        found = store.find(unquote(path[len("/clips/") :]))
        try:
            file = found.open("rb") if found is not None else None
        except OSError:  # deleted by retention since it was listed
            file = None
        if found is None or file is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such clip {path}: see /clips"})
            return
        kinds = {".jpg": "image/jpeg", ".avi": "video/x-msvideo", ".mp4": "video/mp4"}
        with file:  # streamed: a two-minute clip is tens of MB, more than a Pi should hold per request
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kinds.get(found.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(os.fstat(file.fileno()).st_size))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                shutil.copyfileobj(file, self.wfile, 256 * 1024)

    def _stream(self, live: LiveState | None = None) -> None:
        live = live or self.server.live
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command == "HEAD":
            return
        seq = 0
        stopping = self.server.stopping
        while not stopping.is_set():
            got = live.wait_preview(seq, timeout=0.5)
            if got is None:
                if live.closed:
                    break
                continue
            seq, jpeg, result = got
            # The caption of the result drawn on this JPEG rides in the part's own header, so the page
            # shows the text of the very frame on screen (an <img> ignores it; a browser's fetch reads it).
            extra = f"{RESULT_HEADER}: {result}\r\n" if result else ""
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n{extra}\r\n"
            ).encode()
            try:
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
            except OSError:
                log.debug("http %s: preview viewer went away", self.client_address[0])
                return
            if stopping.wait(self.server.stream_interval):
                break


class _Busy(_Handler):
    """Reads the request (briefly) and answers 503 with Retry-After: the server's way of saying "full"."""

    timeout = 0.2

    def do_GET(self) -> None:
        self._busy("the server is at its connection limit")


def _count(query: str, key: str, default: int) -> int:
    """A whole number query parameter (``n=20``), ``default`` when absent or not a number."""
    from urllib.parse import parse_qs

    values = parse_qs(query).get(key)
    if values and values[-1].isascii() and values[-1].isdigit():
        return min(int(values[-1]), default)
    return default


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _wants_html(accept: str) -> bool:
    """The client takes ``text/html`` (a browser's navigation), per its Accept header; ``*/*`` (curl,
    scripts, the page's own fetches) keeps the JSON answer."""
    for item in accept.split(","):
        kind, _, params = item.strip().partition(";")
        q = params.strip()
        if kind.strip().lower() in ("text/html", "application/xhtml+xml") and q.replace(" ", "") != "q=0":
            return True
    return False


class RunServer:
    """The HTTP endpoint in a background thread; ``address`` is the bound (host, port) (port 0 picks one)."""

    def __init__(
        self,
        host: str,
        port: int,
        live: LiveState,
        metrics: Exposition,
        *,
        stream_fps: float = 15.0,
        limits: ServerLimits | None = None,
        access: Access | None = None,
        clips: ClipStore | None = None,
        cameras: CameraDirectory | None = None,
    ) -> None:
        try:
            self._server = _Server(
                (host, port),
                live,
                metrics,
                stream_fps,
                limits or ServerLimits(),
                access or Access(),
                clips=clips,
                cameras=cameras,
            )
        except OSError as exc:
            raise UsageError(
                f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Pick a free port (--serve 127.0.0.1:8081) "
                "or stop what is using it."
            ) from exc
        self._thread = threading.Thread(target=self._server.serve, name="http", daemon=True)

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
        self._server.live.close()
        for live in self._server.cameras.lives.values() if self._server.cameras is not None else ():
            live.close()
        self._server.stopping.set()
        self._thread.join(timeout=2.0)
        self._server.stop()
        self._server.server_close()
