"""The preview page in a real browser: Debian's headless Chromium, driven over its DevTools protocol.

``edgecnn run --serve`` classifies a generated video in real time; the page at ``/`` must show the latest
result's summary line, the model, device and fps, and turn to "stopped" once the run has ended. Skips, and
says why, only where Chromium is not installed (``tools/system-deps`` installs it as root).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import MOBILENET

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (tools/system-deps installs Debian's chromium as root)",
)
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

    def read(self) -> dict:
        self.next_id += 1
        call = {"id": self.next_id, "method": "Runtime.evaluate"}
        self.ws.send(json.dumps({**call, "params": {"expression": READ_PAGE, "returnByValue": True}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                value = message.get("result", {}).get("result", {}).get("value")
                return json.loads(value) if value else {}

    def wait_for(self, test, timeout: float, what: str) -> dict:
        deadline, state = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            state = self.read()
            if state and test(state):
                return state
            time.sleep(0.2)
        raise AssertionError(f"the page never showed {what}; last seen: {state}")

    def close(self) -> None:
        self.ws.close()


def test_preview_page_shows_the_result_and_then_stopped(tmp_path, coral):
    clip = _video(tmp_path, seconds=8)
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgecnn",
            "run",
            str(MOBILENET),
            "--source",
            str(clip),
            "--realtime",
            "--serve",
            "127.0.0.1:0",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    browser = None
    try:
        url = _wait_line(run.stderr, SERVING, 60, "'serving http://...'").group(1)
        _drain(run.stderr)
        browser = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = int(_wait_line(browser.stderr, DEVTOOLS, 60, "'DevTools listening'").group(2))
        _drain(browser.stderr)
        page = Page(port, url)
        try:
            live = page.wait_for(lambda s: s["state"] == "live" and s["age"], 30, "a live result")
            assert live["viewport"]
            assert re.fullmatch(r".+ \d\.\d{3}", live["label"]), live  # the /latest "summary" line
            assert re.fullmatch(r"frame \d+, \d+\.\d s ago", live["age"]), live
            assert live["model"] == MOBILENET.name and live["device"] == "cpu", live
            assert float(live["fps"]) > 0, live
            assert run.wait(timeout=60) == 0  # the video ends: so does the run, and its server
            ended = page.wait_for(lambda s: s["state"].startswith("stopped"), 30, '"stopped"')
            assert ended["label"] and "when the run stopped" in ended["age"], ended
        finally:
            page.close()
    finally:
        for proc in (browser, run):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
