"""The service's ExecStart under a real NOTIFY_SOCKET and WATCHDOG_USEC, as systemd runs it.

systemd is not PID 1 here, so this test plays its part: it binds the notification socket with
SO_PASSCRED (as systemd does, to check senders against ``NotifyAccess=main``), starts the command line
of the rendered unit's ``ExecStart=`` with ``WATCHDOG_PID`` set to the service's own PID, waits for
``READY=1`` and ``WATCHDOG=1``, asks ``/healthz`` through ``edgecnn service status``'s client, stops it
with SIGTERM like ``systemctl stop`` and expects ``STOPPING=1`` and a clean exit.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.run.options import RunOptions
from edgecnn.service.install import config_dict, render_config
from edgecnn.service.status import fetch_health, healthz_url
from edgecnn.service.unit import render_unit, unit_settings
from tests.conftest import CAT, MOBILENET
from tests.run_support import free_port

# Sets WATCHDOG_PID to the PID that exec() keeps, as systemd does for the main process.
_LAUNCHER = (
    "import os, sys; os.environ['WATCHDOG_PID'] = str(os.getpid()); os.execv(sys.argv[1], sys.argv[1:])"
)

# The same, after loading the seccomp filters systemd 252 builds from the unit's SystemCallFilter=,
# SystemCallErrorNumber=, SystemCallArchitectures=native, MemoryDenyWriteExecute= and
# RestrictAddressFamilies= (libseccomp through ctypes, as systemd uses libseccomp). argv[1] is a JSON
# document: {"allow": [syscall names], "errno": N, "families": [allowed AF_* numbers]}.
_SANDBOX_LAUNCHER = r"""
import ctypes, json, os, sys
spec = json.loads(sys.argv[1])
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]

class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
ALLOW, EQ, MASKED_EQ = 0x7FFF0000, 4, 7
def errno(n):
    return 0x00050000 | (n & 0xFFFF)
def rule(ctx, action, name, *cmps):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return  # not a syscall on this architecture (systemd skips those too)
    arr = (Cmp * max(1, len(cmps)))(*[Cmp(*c) for c in cmps])
    if lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr) != 0:
        raise SystemExit(f"seccomp rule for {name} failed")
def load(ctx):
    if lib.seccomp_load(ctx) != 0:
        raise SystemExit("seccomp_load failed")

# MemoryDenyWriteExecute=: no W+X mappings, no making memory executable later.
ctx = lib.seccomp_init(ALLOW)
W, X, SHM_EXEC = 0x2, 0x4, 0o100000
rule(ctx, errno(1), "mmap", (2, MASKED_EQ, W | X, W | X))
rule(ctx, errno(1), "mprotect", (2, MASKED_EQ, X, X))
rule(ctx, errno(1), "pkey_mprotect", (2, MASKED_EQ, X, X))
rule(ctx, errno(1), "shmat", (2, MASKED_EQ, SHM_EXEC, SHM_EXEC))
# RestrictAddressFamilies=: other families fail with EAFNOSUPPORT (97).
for family in range(64):
    if family not in spec["families"]:
        rule(ctx, errno(97), "socket", (0, EQ, family, 0))
load(ctx)
# Last, as it forbids seccomp() itself: the SystemCallFilter= allow-list; everything else fails with SystemCallErrorNumber=.
ctx = lib.seccomp_init(errno(spec["errno"]))
for name in spec["allow"]:
    rule(ctx, ALLOW, name)
load(ctx)
os.environ["WATCHDOG_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""
WATCHDOG_USEC = 400_000  # pings every 0.2 s
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
STARTUP_TIMEOUT_S = 90.0  # loading OpenCV and the runtime on a busy 2-core machine


def _video(path: Path, frames: int, fps: float = 30.0) -> Path:
    cat = cv2.resize(cv2.imread(str(CAT)), (128, 128))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (128, 128))
    assert writer.isOpened()
    for i in range(frames):
        frame = cat.copy()
        cv2.putText(frame, str(i), (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        writer.write(frame)
    writer.release()
    return path


def _exec_start_argv(name: str, config: Path) -> list[str]:
    """The rendered unit's ExecStart= for instance ``name``, with the config path pointed at ``config``."""
    unit = render_unit(unit_settings())
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    value = line.removeprefix("ExecStart=").replace("%i", name).replace("%%", "%").replace("$$", "$")
    argv = shlex.split(value)
    assert argv[-2:] == ["--config", f"/etc/edgecnn/{name}.toml"]
    return [*argv[:-1], str(config)]


def _syscall_groups() -> dict[str, list[str]]:
    """Every @group systemd knows, with its members (names and nested @groups)."""
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        text = line.strip()
        if not line.startswith(" ") and text.startswith("@"):
            current = groups.setdefault(text, [])
        elif not line.startswith(" "):
            current = None  # "# Unlisted system calls ..." and the like
        elif current is not None and text and not text.startswith("#"):
            current.append(text)
    return groups


def _expand(entries: list[str], groups: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for entry in entries:
        names |= _expand(groups[entry], groups) if entry.startswith("@") else {entry}
    return names


def _sandbox_spec(unit: str) -> str:
    """What systemd's seccomp filters for this unit contain, from the unit's own settings."""
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key, []).append(value)
    assert settings["MemoryDenyWriteExecute"] == ["yes"] and settings["SystemCallArchitectures"] == ["native"]
    groups = _syscall_groups()
    allow: set[str] = set()
    for value in settings["SystemCallFilter"]:
        if value.startswith("~"):
            allow -= _expand(value[1:].split(), groups)
        else:
            allow |= _expand(value.split(), groups)
    (families,) = settings["RestrictAddressFamilies"]
    (err,) = settings["SystemCallErrorNumber"]
    return json.dumps(
        {
            "allow": sorted(allow),
            "errno": getattr(errno, err),
            "families": [int(getattr(socket, name)) for name in families.split()],
        }
    )


def _libseccomp() -> bool:
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    return True


class NotifySocket:
    """systemd's end of sd_notify: a datagram socket that also learns each sender's PID."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[tuple[int, dict[str, str]]] = []

    def receive(self, timeout: float) -> tuple[int, dict[str, str]] | None:
        self.sock.settimeout(timeout)
        try:
            data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("3i", payload[:12])
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((pid, fields))
        return pid, fields

    def wait_for(
        self, key: str, deadline: float, proc: subprocess.Popen[str]
    ) -> list[tuple[int, dict[str, str]]]:
        seen = []
        while time.monotonic() < deadline:
            got = self.receive(0.2)
            if got is not None:
                seen.append(got)
                if key in got[1]:
                    return seen
            elif proc.poll() is not None:
                break
        _out, err = proc.communicate(timeout=30) if proc.poll() is not None else ("", "")
        raise AssertionError(
            f"no {key} from the service (exit {proc.poll()}); got {self.messages}\n{err[-3000:]}"
        )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "seccomp-like-the-unit"])
def test_exec_start_runs_config_with_ready_watchdog_and_stopping(tmp_path, notify_socket, sandbox):
    if sandbox and (SYSTEMD_ANALYZE is None or not _libseccomp()):
        pytest.skip("needs systemd-analyze (syscall groups) and libseccomp.so.2")
    video = _video(tmp_path / "door.avi", frames=900)  # 30 s at its own pace: SIGTERM comes long before
    port = free_port()
    options = RunOptions(
        model=MOBILENET, source=str(video), realtime=True, quiet=True, serve=f"127.0.0.1:{port}"
    )
    config = tmp_path / "door.toml"
    config.write_text(render_config("door", config_dict(options)))
    exec_start = _exec_start_argv("door", config)
    if sandbox:
        argv = [
            sys.executable,
            "-c",
            _SANDBOX_LAUNCHER,
            _sandbox_spec(render_unit(unit_settings())),
            *exec_start,
        ]
    else:
        argv = [sys.executable, "-c", _LAUNCHER, *exec_start]
    env = {k: v for k, v in os.environ.items() if k not in ("EDGECNN_DEBUG", "WATCHDOG_PID")}
    env.update(NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        start = time.monotonic()
        notify_socket.wait_for("READY", start + STARTUP_TIMEOUT_S, proc)
        for _ in range(3):
            notify_socket.wait_for("WATCHDOG", time.monotonic() + 30, proc)
        health = fetch_health(healthz_url(options.serve))
        assert health.ok, health
        assert proc.poll() is None, "the service ended before systemd stopped it"
        proc.send_signal(signal.SIGTERM)  # systemctl stop
        notify_socket.wait_for("STOPPING", time.monotonic() + 30, proc)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    keys = [k for _pid, fields in notify_socket.messages for k in fields]
    assert keys.index("READY") < keys.index("WATCHDOG") < keys.index("STOPPING")
    # NotifyAccess=main: systemd would ignore anything not sent by the main process.
    assert {pid for pid, _ in notify_socket.messages} == {proc.pid}
    ready = next(fields for _pid, fields in notify_socket.messages if "READY" in fields)
    assert ready["READY"] == "1" and "door.avi" in ready.get("STATUS", "")
    assert np.all([f.get("WATCHDOG", "1") == "1" for _p, f in notify_socket.messages])


_PROBE = r"""
import ctypes, json, os, socket
found = {}
try:
    os.setpriority(os.PRIO_PROCESS, 0, 5)  # @resources, removed by SystemCallFilter=~@resources
    found["setpriority"] = "allowed"
except OSError as exc:
    found["setpriority"] = exc.errno
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
    found["netlink"] = "allowed"
except OSError as exc:
    found["netlink"] = exc.errno
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
addr = libc.mmap(None, 4096, 0x1 | 0x2 | 0x4, 0x02 | 0x20, -1, 0)  # PROT_RWX, MAP_PRIVATE|MAP_ANONYMOUS
found["mmap_wx"] = ctypes.get_errno() if addr in (None, ctypes.c_void_p(-1).value) else "allowed"
found["inet"] = (socket.socket(socket.AF_INET, socket.SOCK_STREAM).close() or "allowed")
print(json.dumps(found))
"""


@pytest.mark.skipif(
    SYSTEMD_ANALYZE is None or not _libseccomp(), reason="needs systemd-analyze and libseccomp.so.2"
)
def test_sandbox_launcher_really_enforces_the_units_filters():
    # The sandboxed run above is only evidence if the filters bite: the same launcher stops what the unit
    # forbids (setpriority from @resources, netlink sockets, W+X memory) and allows what it permits.
    spec = _sandbox_spec(render_unit(unit_settings()))
    proc = subprocess.run(
        [sys.executable, "-c", _SANDBOX_LAUNCHER, spec, sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found == {
        "setpriority": errno.EPERM,
        "netlink": errno.EAFNOSUPPORT,
        "mmap_wx": errno.EPERM,
        "inet": "allowed",
    }
