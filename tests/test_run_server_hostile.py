"""``--serve`` against hostile clients and the network: disconnects, idle and partial requests, floods,
too many viewers, and the token that a non-loopback bind needs. Real sockets, real ``edgecnn run`` processes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from edgecnn.errors import UsageError
from edgecnn.run.access import COOKIE, Access, resolve_access
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import Pipeline
from edgecnn.run.server import ServerLimits
from tests.conftest import MOBILENET, error_lines, run_cli
from tests.run_support import wait_until
from tests.test_run_process import start_run

TOKEN = "s3cret-token-for-the-tests-0123456789"


def http_get(url: str, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """(status, lower-case headers, body); a 200 stream's body is not read (it never ends)."""
    hostport, _, path = url.removeprefix("http://").partition("/")
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/" + path, headers=headers or {})
        resp = conn.getresponse()
        endless = resp.status == 200 and "multipart" in (resp.getheader("Content-Type") or "")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, b"" if endless else resp.read()
    finally:
        conn.close()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture
def served_process(coral):
    """``edgecnn run`` on demo frames with --serve on a free loopback port; yields (proc, base, err)."""
    started: list = []

    def start(*extra: str) -> tuple:
        proc, _out, err = start_run(
            str(MOBILENET), "--source", "demo", "--fps", "30", "-q", "--serve", *extra
        )
        started.append(proc)
        serving = err.wait_for(lambda line: line.startswith("serving http://"))
        return proc, serving.split()[1].rstrip("/"), err

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except Exception:
                proc.kill()
                proc.wait()


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def test_disconnects_idle_sockets_and_partial_requests_leave_no_traceback(served_process):
    proc, base, err = served_process("127.0.0.1:0")
    wait_until(lambda: http_get(base + "/healthz")[0] == 200)
    baseline = _threads(proc.pid)
    for _ in range(40):  # gone before the response is written
        s = _connect(base)
        s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        s.close()
        s = _connect(base)
        s.sendall(b"GET /latest HTTP/1.0\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        s.close()
    idle = [_connect(base) for _ in range(300)]  # connect and say nothing
    partial = [_connect(base) for _ in range(30)]
    for s in partial:
        s.sendall(b"GET /latest HTTP/1.1\r\nHost: x\r\n")  # never finished
    t0 = time.perf_counter()
    assert http_get(base + "/healthz")[0] == 200  # answers while 330 sockets hang around
    healthz_s = time.perf_counter() - t0
    threads = _threads(proc.pid)
    time.sleep(6)  # past the read timeout: the partial requests are closed by the server
    closed = 0
    for s in partial:
        s.settimeout(3)
        with contextlib.suppress(ConnectionResetError):
            s.recv(1024)  # b"" (EOF) once the server has given up on the request; TimeoutError if not
        closed += 1
    for s in idle + partial:
        s.close()
    assert healthz_s < 2.0
    assert threads <= baseline + 2, (baseline, threads)  # the pool is fixed: no thread per socket
    assert closed == len(partial)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    stderr = err.text()
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr[-3000:]
    assert not [line for line in error_lines(stderr) if "error" in line or "warning" in line], stderr[-2000:]


def _read_all(s: socket.socket, timeout: float = 5.0) -> bytes:
    """What the server sends until it closes its side (a reset after that is fine: the answer was read)."""
    s.settimeout(timeout)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("how", "size"),
    [
        ("complete", 20 * 1024),  # one header of 20 KiB, then the blank line
        ("complete", 200 * 1024),  # more than a socket buffer's worth: the server must keep reading
        ("unfinished", 40 * 1024),  # 40 KiB and no end in sight, the socket left open
        ("many_small", 20 * 1024),  # 400 ordinary headers: the head, not one line, is what is counted
    ],
)
def test_a_request_head_over_16_kib_gets_431_not_a_reset(served_process, how, size):
    proc, base, err = served_process("127.0.0.1:0")
    wait_until(lambda: http_get(base + "/healthz")[0] == 200)
    if how == "many_small":
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Filler-%03d: %s\r\n" % (i, b"v" * 32) for i in range(size // 48)
        )
    else:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n"
    s = _connect(base)
    sender = threading.Thread(target=s.sendall, args=(head + (b"\r\n" if how != "unfinished" else b""),))
    sender.start()
    answer = _read_all(s)
    sender.join(timeout=10)
    s.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.0 431 Request Header Fields Too Large", answer[:200]
    body = rest.partition(b"\r\n\r\n")[2]
    assert "16 KiB" in json.loads(body)["error"]
    assert http_get(base + "/healthz")[0] == 200  # and the server carries on
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "Traceback" not in err.text()


def test_a_head_just_under_16_kib_is_served():
    from edgecnn.run.server import MAX_HEAD_BYTES, _head_end

    head = b"GET / HTTP/1.0\r\nX: " + b"a" * (MAX_HEAD_BYTES - 100) + b"\r\n\r\n"
    assert _head_end(head) == len(head) <= MAX_HEAD_BYTES
    assert _head_end(b"GET / HTTP/1.0\r\n") is None


def test_viewers_beyond_the_limit_get_503_with_retry_after(coral):
    pipeline = Pipeline(
        RunOptions(model=MOBILENET, source="demo", fps=30, serve="127.0.0.1:0", quiet=True),
        server_limits=ServerLimits(max_viewers=2),
    )
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    assert pipeline.serving.wait(60)
    host, port = pipeline.server_address
    viewers = []
    try:
        for _ in range(2):
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/stream.mjpg")
            resp = conn.getresponse()
            assert resp.status == 200
            viewers.append((conn, resp))
        status, headers, body = http_get(f"http://{host}:{port}/stream.mjpg")
        assert status == 503 and headers["retry-after"] == "2"
        assert "at most 2 preview viewers" in json.loads(body)["error"]
        conn, resp = viewers.pop()
        resp.close()  # the response holds the socket open until it is closed too
        conn.close()
        wait_until(lambda: http_get(f"http://{host}:{port}/stream.mjpg", timeout=2)[0] == 200, timeout=10)
    finally:
        for conn, resp in viewers:
            resp.close()
            conn.close()
        pipeline.stop()
        thread.join(10)


def test_one_jpeg_encode_per_frame_for_all_viewers(monkeypatch):
    import numpy as np

    from edgecnn.run import live as live_module

    calls = []
    real = live_module.render_preview
    monkeypatch.setattr(live_module, "render_preview", lambda *a, **k: calls.append(1) or real(*a, **k))
    state = live_module.LiveState(source="x", stall_timeout=5)
    with state._lock:
        state._image, state._seq = np.zeros((32, 32, 3), np.uint8), 1
    got: list = []
    viewers = [threading.Thread(target=lambda: got.append(state.wait_preview(0, 1.0))) for _ in range(8)]
    for v in viewers:
        v.start()
    for v in viewers:
        v.join()
    assert len(got) == 8 and len({g[1] for g in got}) == 1
    assert len(calls) == 1


# -- access control -----------------------------------------------------------------------------------


def test_non_loopback_bind_needs_a_token(coral):
    with pytest.raises(UsageError, match="--serve-token TOKEN"):
        resolve_access(
            "0.0.0.0", token=None, token_file=None, token_all=False, insecure=False, serve="0.0.0.0:8080"
        )
    assert (
        resolve_access(
            "0.0.0.0", token=None, token_file=None, token_all=False, insecure=True, serve="x"
        ).token
        is None
    )
    assert (
        resolve_access("::1", token=None, token_file=None, token_all=False, insecure=False, serve="x").token
        is None
    )
    with pytest.raises(UsageError, match="must be 16 to 1024 characters"):
        resolve_access("0.0.0.0", token="short", token_file=None, token_all=False, insecure=False, serve="x")
    result = run_cli("run", MOBILENET, "--source", "demo", "--serve", "0.0.0.0:0", "--max-frames", "1")
    assert result.code == 2
    [line] = error_lines(result.stderr)
    assert line.startswith(
        "edgecnn: error: --serve: serving on 0.0.0.0:0 makes the camera preview and results reachable from the "
        "network: protect them with --serve-token TOKEN (or EDGECNN_SERVE_TOKEN, or serve_token_file in the "
        "config; `edgecnn service install` generates one), or pass --serve-insecure to accept the risk."
    )


def test_token_protects_preview_and_results_but_not_health(served_process, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    proc, base, err = served_process("0.0.0.0:0", "--serve-token-file", str(token_file))
    base = base.replace("0.0.0.0", "127.0.0.1")
    wait_until(lambda: http_get(base + "/healthz")[0] == 200)
    assert http_get(base + "/metrics")[0] == 200
    for path in ("/", "/latest", "/stream.mjpg"):
        status, headers, body = http_get(base + path)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
        assert "Authorization: Bearer TOKEN" in json.loads(body)["error"]
    wait_until(lambda: http_get(base + "/latest", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200)
    assert http_get(base + "/latest", headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    # Browser login: ?token= answers 303 with the cookie and a clean URL; the cookie then works alone.
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/?token={TOKEN}")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 303 and resp.getheader("Location") == "/"
    cookie = resp.getheader("Set-Cookie")
    assert cookie.startswith(f"{COOKIE}={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _headers, page = http_get(base + "/", headers={"Cookie": f"{COOKIE}={TOKEN}"})
    assert status == 200 and b"<html" in page
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert TOKEN not in err.text()  # never logged


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def test_a_browser_without_the_token_gets_a_page_saying_how_to_give_it(served_process):
    """A browser opening a protected preview saw raw JSON; it gets a small HTML page now (still 401, still
    WWW-Authenticate), while scripts (Accept */* or JSON) keep the JSON answer."""
    proc, base, _err = served_process("0.0.0.0:0", "--serve-token", TOKEN)
    base = base.replace("0.0.0.0", "127.0.0.1")
    status, headers, body = http_get(base + "/", headers={"Accept": BROWSER_ACCEPT})
    assert status == 401 and headers["content-type"] == "text/html; charset=utf-8"
    assert headers["www-authenticate"].startswith("Bearer")
    page = body.decode()
    host = base.removeprefix("http://")
    assert f"<code>http://{host}/?token=TOKEN</code>" in page  # the address this browser used
    assert "--serve-token" in page and "/etc/edgecnn/NAME.token" in page and "Bearer TOKEN" in page
    assert TOKEN not in page
    # A wrong ?token= link says so; an ill-meant Host header is shown escaped, never as markup.
    status, _headers, body = http_get(
        base + "/?token=not-the-token-not-the-token", headers={"Accept": "text/html", "Host": "<b>x</b>"}
    )
    assert status == 401 and b"is not this server&#x27;s" in body and b"http://&lt;b&gt;x&lt;/b&gt;/" in body
    for accept in ("*/*", "application/json", "text/html;q=0"):
        status, headers, body = http_get(base + "/latest", headers={"Accept": accept})
        assert status == 401 and headers["content-type"] == "application/json", accept
        assert "Authorization: Bearer TOKEN" in json.loads(body)["error"]
    status, _headers, body = http_get(
        base + "/", headers={"Accept": BROWSER_ACCEPT, "Cookie": f"{COOKIE}={TOKEN}"}
    )
    assert status == 200 and b"stream.mjpg" in body
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_token_all_protects_health_and_metrics():
    from email.message import Message

    access = Access(token=TOKEN, token_all=True)
    assert not access.check("/healthz", "", Message()).allowed
    assert not access.check("/metrics", "", Message()).allowed
    headers = Message()
    headers["Authorization"] = f"Bearer {TOKEN}"
    assert access.check("/metrics", "", headers).allowed
    assert Access(token=TOKEN).check("/healthz", "", Message()).allowed
    bad_cookie = Message()
    bad_cookie["Cookie"] = '"unbalanced'
    assert not access.check("/", "", bad_cookie).allowed  # a cookie the parser refuses is no cookie


def test_constant_time_comparison_is_used():
    import inspect

    from edgecnn.run import access

    assert "hmac.compare_digest" in inspect.getsource(access.Access._matches)


def test_token_file_problems_are_one_line(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = run_cli(
        "run",
        MOBILENET,
        "--source",
        "demo",
        "--serve",
        "0.0.0.0:0",
        "--serve-token-file",
        empty,
        "--max-frames",
        "1",
    )
    assert result.code == 2 and "must be 16 to 1024 characters" in error_lines(result.stderr)[0]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run_cli(
        "run", MOBILENET, "--source", "demo", "--serve", "0.0.0.0:0", "--serve-token-file", fifo, timeout=30
    )
    assert result.code != 0 and "is a FIFO" in error_lines(result.stderr)[0]
    assert Path(fifo).exists()


BAD_TOKENS = [
    ("semicolon", TOKEN + ";x", "';'"),  # ends the cookie: the browser's cookie never matched
    ("quote", '"' + TOKEN + '"', "'\"'"),
    ("non-ascii", TOKEN + "é", "'é'"),
    ("space", TOKEN[:20] + " " + TOKEN[20:], "' '"),
    ("tab", TOKEN + "\tx", "'\\t'"),
    ("plus", TOKEN + "+x", "'+'"),  # ?token=a+b reads as "a b"
    ("long", "a" * 1025, "16 to 1024"),
]


@pytest.mark.parametrize(("how", "token", "needle"), BAD_TOKENS, ids=[b[0] for b in BAD_TOKENS])
def test_a_token_that_cannot_travel_is_refused_at_start(tmp_path, how, token, needle, coral):
    """A token that a cookie, a URL or a header would mangle is one line at start-up, not a preview whose
    cookie login always fails. Given by flag, environment and file alike (real processes)."""
    base = ["run", MOBILENET, "--source", "demo", "--serve", "0.0.0.0:0", "--max-frames", "1"]
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    ways = [
        ("--serve-token", run_cli(*base, "--serve-token", token, timeout=60)),
        # EDGECNN_SERVE_TOKEN is the flag's envvar: typer passes it as --serve-token
        ("--serve-token", run_cli(*base, env={"EDGECNN_SERVE_TOKEN": token}, timeout=60)),
        (f"the token in {token_file}", run_cli(*base, "--serve-token-file", token_file, timeout=60)),
    ]
    for where, result in ways:
        assert result.code == 2, (where, result.stderr)
        (line,) = error_lines(result.stderr)
        assert where in line and "must be 16 to 1024 characters from A-Z, a-z, 0-9" in line, line
        assert needle in line, line
        assert token not in line and TOKEN not in line  # a token is never echoed back


def test_every_generated_token_is_accepted():
    from edgecnn.run.access import check_token, new_token

    for _ in range(200):
        token = new_token()
        assert check_token(token, "t") == token


def test_a_full_queue_answers_503_with_retry_after_without_blocking():
    """Every worker busy and the queue full: the accept thread itself answers 503 (the request is read)."""
    import socket as socketmod

    from edgecnn.run.live import LiveState
    from edgecnn.run.metrics import RunMetrics
    from edgecnn.run.server import _Parked, _Server

    live = LiveState(source="x", stall_timeout=5)
    metrics = RunMetrics(model="m", device="cpu", source="x", fps=live.fps)
    server = _Server(("127.0.0.1", 0), live, metrics, 15.0, ServerLimits(queue_size=1), Access())
    try:
        server._work.put_nowait(None)  # no worker runs: the queue stays full
        ours, theirs = socketmod.socketpair()
        state = _Parked(("127.0.0.1", 1), time.monotonic() + 10)
        state.head += b"GET /latest HTTP/1.0\r\n\r\n"
        t0 = time.perf_counter()
        server._dispatch(ours, state)
        assert time.perf_counter() - t0 < 1.0
        theirs.settimeout(2)
        answer = b""
        while chunk := theirs.recv(4096):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 503") and b"Retry-After: 2" in head
        assert b"connection limit" in body
        theirs.close()
    finally:
        server.server_close()
