"""The preview page in a real browser: Debian's headless Chromium, driven over its DevTools protocol.

``edgecnn run --serve`` classifies a generated video in real time; the page at ``/`` must show the latest
result's summary line, the model, device and fps, and turn to "stopped" once the run has ended. Skips, and
says why, only where Chromium is not installed (``tools/system-deps`` installs it as root).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MOBILENET

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,  # starts Chromium and a real-time run: `make test-fast` leaves it to `make test`
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (tools/system-deps installs Debian's chromium as root)",
    ),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]
DEVTOOLS = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")
SERVING = re.compile(r"serving (http://127\.0\.0\.1:\d+/)")
READ_PAGE = (
    "JSON.stringify({state: document.getElementById('state').textContent,"
    " label: document.getElementById('label').textContent, age: document.getElementById('age').textContent,"
    " model: document.getElementById('model').textContent, device: document.getElementById('device').textContent,"
    " fps: document.getElementById('fps').textContent,"
    " frame: document.getElementById('label').dataset.frame || '',"
    " text_from: document.getElementById('label').dataset.from || '',"
    " picture: document.getElementById('stream').src.slice(0, 5),"
    " width: document.getElementById('stream').naturalWidth,"
    " viewport: !!document.querySelector('meta[name=viewport]')})"
)


def _video(tmp: Path, seconds: float) -> Path:
    from edgecnn.devices.sources.synthetic import render_digit, write_video

    frames = [render_digit(i // 15 % 10, 320, 240) for i in range(int(seconds * 30))]
    return write_video(tmp / "clip.avi", frames, fps=30)


def _wait_line(stream, pattern: re.Pattern[str], timeout: float, what: str) -> re.Match[str]:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        match = pattern.search(line)
        if match:
            return match
    raise AssertionError(f"no {what} line within {timeout} s:\n{''.join(seen)}")


def _drain(stream) -> None:
    """Keep reading a child's stderr so it never blocks on a full pipe."""
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


class Page:
    """One tab, read with Runtime.evaluate over the page's DevTools websocket (websocket-client)."""

    def __init__(self, devtools_port: int, url: str) -> None:
        import websocket

        request = urllib.request.Request(f"http://127.0.0.1:{devtools_port}/json/new?{url}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            target = json.load(response)
        self.ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=10, suppress_origin=True
        )
        self.next_id = 0

    def read(self, expression: str = READ_PAGE) -> dict:
        self.next_id += 1
        call = {"id": self.next_id, "method": "Runtime.evaluate"}
        self.ws.send(json.dumps({**call, "params": {"expression": expression, "returnByValue": True}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                value = message.get("result", {}).get("result", {}).get("value")
                return json.loads(value) if value else {}

    def wait_for(self, test, timeout: float, what: str, expression: str = READ_PAGE) -> dict:
        deadline, state = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            state = self.read(expression)
            if state and test(state):
                return state
            time.sleep(0.2)
        raise AssertionError(f"the page never showed {what}; last seen: {state}")

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def _served_in_browser(
    run_args: list[str], profile: Path
) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """A real ``edgecnn run ... --serve 127.0.0.1:0`` and a headless Chromium beside it: (the run, the
    preview's URL, the DevTools port). Both are killed on the way out, whatever the test did."""
    run = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "run", *run_args, "--serve", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    browser = None
    try:
        url = _wait_line(run.stderr, SERVING, 60, "'serving http://...'").group(1)
        _drain(run.stderr)
        browser = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        port = int(_wait_line(browser.stderr, DEVTOOLS, 60, "'DevTools listening'").group(2))
        _drain(browser.stderr)
        yield run, url, port
    finally:
        for proc in (browser, run):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_preview_page_shows_the_result_and_then_stopped(tmp_path, coral):
    clip = _video(tmp_path, seconds=8)
    run_args = [str(MOBILENET), "--source", str(clip), "--realtime", "--quiet", "--top-k", "3",
                "--jsonl", str(tmp_path / "results.jsonl")]  # fmt: skip
    with _served_in_browser(run_args, tmp_path / "profile") as (run, url, port):
        page = Page(port, url)
        try:
            live = page.wait_for(
                lambda s: s["state"] == "live" and s["age"] and s["picture"] == "blob:", 30, "a live result"
            )
            assert live["viewport"] and live["width"] == 320, live  # the stream's JPEG, read by fetch
            assert re.fullmatch(r"frame \d+, \d+\.\d s ago", live["age"]), live
            seen = [live] + [page.read() for _ in range(5)]
            assert live["model"] == MOBILENET.name and live["device"] == "cpu", live
            assert float(live["fps"]) > 0, live
            assert run.wait(timeout=60) == 0  # the video ends: so does the run, and its server
            ended = page.wait_for(lambda s: s["state"].startswith("stopped"), 30, '"stopped"')
            assert ended["label"] and "when the run stopped" in ended["age"], ended
            # The text shown with a frame is that frame's result, all --top-k 3 classes, as run wrote it.
            records = {}
            for line in (tmp_path / "results.jsonl").read_text().splitlines():
                record = json.loads(line)
                records[record["frame"]] = "  ".join(
                    f"{c['label']} {c['score']:.2f}" for c in record["classes"]
                )
            for state in seen:
                assert state["text_from"] == "stream", state  # the part that also held the picture
                assert state["label"] == records[int(state["frame"])], state
            assert max(len(state["label"].split("  ")) for state in seen) == 3
        finally:
            page.close()


def test_a_browser_without_the_token_reads_how_to_give_it(tmp_path, coral):
    """A token-protected preview opened in a browser shows a page saying what to do, not raw JSON; the
    ?token= link it describes then shows the preview itself."""
    token = "browser-test-token-0123456789abcdef"
    read_body = "JSON.stringify({title: document.title, text: document.body ? document.body.innerText : ''})"
    run_args = [str(MOBILENET), "--source", "demo", "--fps", "10", "--quiet", "--serve-token", token]
    with _served_in_browser(run_args, tmp_path / "profile") as (_run, url, port):
        page = Page(port, url)
        try:
            shown = page.wait_for(lambda s: "token" in s.get("title", ""), 30, "the token page", read_body)
            assert f"{url}?token=TOKEN" in shown["text"] and "--serve-token" in shown["text"], shown
            assert '"error"' not in shown["text"], shown
        finally:
            page.close()
        page = Page(port, f"{url}?token={token}")
        try:
            live = page.wait_for(lambda s: s["state"] == "live", 30, "the preview after ?token=")
            assert live["label"] and live["model"] == MOBILENET.name, live
        finally:
            page.close()
