"""sd_notify messages received on real unix datagram sockets set as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from edgecnn.devices.sources import Frame
from edgecnn.run.notify import Notifier
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import Pipeline
from tests.conftest import MOBILENET


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock, str(path)
    sock.close()


def receive(sock: socket.socket, until: float) -> list[list[str]]:
    messages = []
    while time.monotonic() < until:
        try:
            messages.append(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            continue
    return messages


class Gated:
    """A live source that delivers frames only while the test keeps its gate open."""

    name, live, dropped = "gated camera", True, 0

    def __init__(self) -> None:
        self.open_gate = threading.Event()
        self.count = 0

    def open(self) -> None:
        pass

    def read(self, timeout: float):
        if not self.open_gate.wait(timeout):
            return None
        time.sleep(0.01)
        self.count += 1
        return Frame(np.zeros((64, 64, 3), np.uint8), self.count, time.time(), time.perf_counter())

    def close(self) -> None:
        pass


def test_ready_after_first_frame_watchdog_while_flowing_stopping_on_exit(notify_socket, coral):
    sock, path = notify_socket
    source = Gated()
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}  # ping every 0.1 s
    pipeline = Pipeline(RunOptions(model=MOBILENET, quiet=True, stall_timeout=60), source=source, env=env)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        before = receive(sock, time.monotonic() + 0.5)
        assert before == []  # no frame yet: not READY, no watchdog
        source.open_gate.set()
        flowing = receive(sock, time.monotonic() + 0.8)
        assert "READY=1" in flowing[0] and any(line.startswith("STATUS=") for line in flowing[0])
        assert sum("WATCHDOG=1" in m for m in flowing) >= 2
        source.open_gate.clear()  # the camera stalls: the watchdog must go quiet so systemd can act
        count = -1
        while count != source.count:  # wait until the last frame in flight is done
            count = source.count
            receive(sock, time.monotonic() + 0.3)
        stalled = receive(sock, time.monotonic() + 0.6)
        assert not any("WATCHDOG=1" in m for m in stalled)
    finally:
        pipeline.stop()
        thread.join(10)
    after = receive(sock, time.monotonic() + 0.3)
    assert ["STOPPING=1", "STATUS=stopping"] in after


def test_abstract_socket_address(coral):
    name = f"edgecnn-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(0.2)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready("classifying")
        assert sock.recv(4096).decode().split("\n") == ["READY=1", "STATUS=classifying"]
        notifier.close()
    finally:
        sock.close()


def test_watchdog_only_for_our_pid_and_no_socket_is_a_noop():
    assert Notifier({"WATCHDOG_USEC": "4000000"}).watchdog_interval == 2.0
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    quiet = Notifier({})
    assert not quiet.enabled and quiet.notify("READY=1") is False
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"})
    assert gone.notify("READY=1") is False  # logged once, never raised


def test_cli_process_notifies_ready_and_stopping(notify_socket, coral):
    sock, path = notify_socket
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = path
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecnn",
            "run",
            str(MOBILENET),
            "--source",
            "demo",
            "--max-frames",
            "5",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    messages = receive(sock, time.monotonic() + 0.3)
    assert messages[0][0] == "READY=1" and messages[-1] == ["STOPPING=1", "STATUS=stopping"]
