"""The shared atomic writer, one-line error text and HTTP GET that several stages now lean on."""

from __future__ import annotations

import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgecnn.atomic import atomic_path
from edgecnn.errors import one_line
from edgecnn.httpget import get


def test_atomic_path_renames_with_mode_and_suffix(tmp_path):
    target = tmp_path / "sub" / "model.keras"
    with atomic_path(target, suffix=".keras", mode=0o640) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == target.parent
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["model.keras"]


def test_atomic_path_failure_keeps_old_file(tmp_path):
    target = tmp_path / "chart.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]


def test_one_line_collapses_and_falls_back_to_the_type():
    assert one_line(ValueError("bad\n  thing\there")) == "bad thing here"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(OSError("x" * 300), 200) == "x" * 200
    assert one_line("  ") == ""


def test_one_line_can_keep_only_the_first_line():
    exc = RuntimeError("\n  Encountered unresolved custom op: edgetpu-custom-op.\nSee instructions: ...\n")
    assert one_line(exc, first_line=True) == "Encountered unresolved custom op: edgetpu-custom-op."
    assert one_line(exc) == "Encountered unresolved custom op: edgetpu-custom-op. See instructions: ..."
    assert one_line(RuntimeError(" \n "), first_line=True) == "RuntimeError"
    assert one_line("first\nsecond", 3, first_line=True) == "fir"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"y" * 100 if self.path == "/big" else b'{"ok": false}'
        self.send_response(503 if self.path == "/healthz?x=1" else 200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_get_returns_any_status_and_caps_the_body(host):
    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = Server((host, 0), _Handler)
    except OSError:
        pytest.skip(f"{host} is not available here")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        where = f"[{host}]" if ":" in host else host
        base = f"http://{where}:{server.server_address[1]}"
        answer = get(base + "/healthz?x=1")
        assert (answer.status, answer.content_type, answer.body) == (
            503,
            "application/json",
            b'{"ok": false}',
        )
        assert len(get(base + "/big", limit=10).body) == 10
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(OSError):
        get(base + "/healthz", timeout=1)
