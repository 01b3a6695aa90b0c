"""``edgecnn service`` against a real systemd as PID 1: a container booted with systemd-nspawn.

The other service tests judge the unit with systemd's offline tools; this one runs it. The container's
root is this machine's own root (read-only bind, with a throw-away overlay on top, private network), so
the ``edgecnn`` under test is the one in this checkout's environment, exactly as ``service install``
renders it into ``ExecStart=``. Inside, systemd runs the hardened unit for real: a transient user in the
``video`` group, the seccomp filters, ``MemoryDenyWriteExecute=``, the device cgroup, ``IPAddressDeny=``,
``ProtectHome=tmpfs`` with the environment bound in, ``Type=notify`` and the watchdog.

Needs root and ``systemd-nspawn`` (Debian: ``apt-get install systemd-container``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MOBILENET, MOBILENET_EDGETPU, ROOT

NSPAWN = shutil.which("systemd-nspawn")
NSENTER = shutil.which("nsenter")
EDGECNN = str(Path(sys.executable).parent / "edgecnn")
BOOT_TIMEOUT_S = 120.0
PORT = 8099

pytestmark = [
    pytest.mark.slow,  # boots a container: about 40 s, so `make test-fast` leaves it to `make test`
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
    pytest.mark.skipif(
        NSPAWN is None or NSENTER is None,
        reason="systemd-nspawn is not installed (apt-get install systemd-container)",
    ),
]


@dataclass
class Container:
    leader: int  # PID of the container's systemd, as seen from here

    def run(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NSENTER, "-t", str(self.leader), "-a", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SYSTEMD_COLORS": "0", "LANG": "C.UTF-8"},
        )

    def ok(self, *argv: str, timeout: float = 180) -> str:
        proc = self.run(*argv, timeout=timeout)
        assert proc.returncode == 0, (
            f"{argv} exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
        return proc.stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` properties; a property listed on several lines has its values joined by "; "."""
        out = self.ok("systemctl", "show", unit, "--property=" + ",".join(props))
        values: dict[str, list[str]] = {}
        for line in out.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values.setdefault(key, []).append(value)
        return {key: "; ".join(v) for key, v in values.items()}

    def wait_until(self, check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        journal = self.run("journalctl", "-u", "edgecnn@door.service", "--no-pager", "-n", "40").stdout
        raise AssertionError(f"timed out waiting for {what}\n{journal}")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    # The mount point lives outside pytest's temp tree and the bind is read-only, so no cleanup of temp
    # folders can ever walk into this machine's root through it.
    mountpoint = Path(tempfile.mkdtemp(prefix="edgecnn-nsroot-"))
    subprocess.run(["mount", "--bind", "/", str(mountpoint)], check=True, timeout=30)
    log = (mountpoint.parent / f"{mountpoint.name}.log").open("w+")
    proc = None
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mountpoint)], check=True, timeout=30)
        proc = subprocess.Popen(
            [
                NSPAWN,
                f"--directory={mountpoint}",
                "--volatile=overlay",
                "--boot",
                "--private-network",
                # The container's /tmp is its own tmpfs: a checkout (its .venv and tests/data with it)
                # living under /tmp, as in a CI clone, must be bound in at the same path.
                f"--bind-ro={ROOT}",
                f"--machine=edgecnn-test-{os.getpid()}",
                "--register=no",
                "--keep-unit",
                "--link-journal=no",
                "--console=pipe",
                "--",
                "--unit=basic.target",  # not this machine's own services (databases and such)
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        leader = None
        while time.monotonic() < deadline and proc.poll() is None:
            kids = _children(proc.pid)
            if kids:
                leader = kids[0]
                state = subprocess.run(
                    [NSENTER, "-t", str(leader), "-a", "systemctl", "is-system-running"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                ).stdout.strip()
                if state in ("running", "degraded"):
                    break
            time.sleep(0.5)
        else:
            log.seek(0)
            pytest.fail(f"the container did not boot (nspawn exit {proc.poll()}):\n{log.read()[-3000:]}")
        assert leader is not None
        yield Container(leader)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # nspawn halts the container
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        log.close()
        if subprocess.run(["umount", str(mountpoint)], timeout=60).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mountpoint)], timeout=60)
        if not os.path.ismount(mountpoint):
            mountpoint.rmdir()
            Path(log.name).unlink(missing_ok=True)


def _install(container: Container, *extra: str) -> dict:
    out = container.ok(
        EDGECNN,
        "service",
        "install",
        "door",
        "--model",
        str(MOBILENET),
        "--source",
        "demo",
        "--serve",
        f"127.0.0.1:{PORT}",
        "--json",
        *extra,
    )
    return json.loads(out)


def test_installed_service_runs_hardened_under_systemd(container):
    report = _install(container)
    assert report["started"] and report["unit"] == "edgecnn@door.service"
    state = container.show("edgecnn@door.service", "ActiveState", "SubState", "MainPID", "StatusText")
    assert state["ActiveState"] == "active" and state["SubState"] == "running", state
    assert state["StatusText"].startswith("classifying")  # READY=1 came with a STATUS=
    # A transient user, not root, with the video group (44 on Debian) among its groups.
    status = container.ok("cat", f"/proc/{state['MainPID']}/status")
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    video = container.ok("getent", "group", "video").split(":")[2]
    assert uid != 0 and video in groups
    seccomp = re.search(r"^Seccomp:\s+(\d+)", status, re.M).group(1)
    assert seccomp == "2"  # filter mode: SystemCallFilter= and friends are in force
    # edgecnn service status: systemd's state plus the instance's /healthz.
    info = json.loads(container.ok(EDGECNN, "service", "status", "door", "--json"))
    assert info["active"] == "active" and info["enabled"] == "enabled"
    assert info["health"]["ok"] is True and info["health"]["status"] == 200
    # The score of the unit systemd has loaded (not the offline reading of a file).
    out = container.ok("systemd-analyze", "security", "--no-pager", "edgecnn@door.service")
    exposure = float(re.search(r"Overall exposure level for edgecnn@door\.service: (\d+\.\d+)", out).group(1))
    assert exposure <= 2.0, out


def test_watchdog_pings_keep_it_alive_and_a_hang_gets_it_restarted(container):
    _install(container)
    # Shorter timings for the test, as a drop-in (the way `systemctl edit` would).
    dropin = "/etc/systemd/system/edgecnn@door.service.d/90-test.conf"
    container.ok(
        "sh",
        "-c",
        f"mkdir -p $(dirname {dropin}) && printf '[Service]\\nWatchdogSec=3s\\nRestartSec=1s\\n' > {dropin}",
    )
    container.ok("systemctl", "daemon-reload")
    container.ok("systemctl", "restart", "edgecnn@door.service")
    first = container.show("edgecnn@door.service", "MainPID", "NRestarts", "WatchdogUSec")
    assert first["WatchdogUSec"] == "3s"
    time.sleep(8)  # more than two watchdog periods: only WATCHDOG=1 pings keep it running
    alive = container.show("edgecnn@door.service", "MainPID", "NRestarts", "ActiveState")
    assert alive["MainPID"] == first["MainPID"] and alive["NRestarts"] == first["NRestarts"], alive
    container.ok("kill", "-STOP", first["MainPID"])  # a hung process stops pinging
    container.wait_until(
        lambda: (
            int(container.show("edgecnn@door.service", "NRestarts")["NRestarts"]) > int(first["NRestarts"])
        ),
        30,
        "the watchdog restart",
    )
    journal = container.ok("journalctl", "-u", "edgecnn@door.service", "--no-pager")
    assert "Watchdog timeout" in journal
    container.ok("rm", dropin)
    container.ok("systemctl", "daemon-reload")


def test_config_error_at_start_fails_once_without_restart_loop(container):
    _install(container)
    dropin = "/etc/systemd/system/edgecnn@door.service.d/90-test.conf"
    container.ok(
        "sh", "-c", f"mkdir -p $(dirname {dropin}) && printf '[Service]\\nRestartSec=1s\\n' > {dropin}"
    )
    container.ok("systemctl", "daemon-reload")
    container.ok("sh", "-c", "echo 'bogus_key = 1' >> /etc/edgecnn/door.toml")
    proc = container.run("systemctl", "restart", "edgecnn@door.service")
    assert proc.returncode != 0
    time.sleep(5)  # RestartSec=1s: a restart (the next failure, really) would have happened by now
    state = container.show("edgecnn@door.service", "ActiveState", "ExecMainStatus", "NRestarts")
    assert state == {"ActiveState": "failed", "ExecMainStatus": "7", "NRestarts": "0"}, state
    journal = container.ok("journalctl", "-u", "edgecnn@door.service", "--no-pager", "-n", "20")
    assert "edgecnn: error: /etc/edgecnn/door.toml: unknown key 'bogus_key'" in journal
    info = json.loads(container.ok(EDGECNN, "service", "status", "door", "--json"))
    assert info["active"] == "failed" and "bogus_key" in info["config_error"]
    container.ok("rm", dropin)
    container.ok("systemctl", "daemon-reload")


def test_edgetpu_instance_starts_with_its_dropin_and_uninstall_cleans_up(container):
    _install(container)
    out = container.ok(
        EDGECNN,
        "service",
        "install",
        "gate",
        "--model",
        str(MOBILENET_EDGETPU),
        "--device",
        "auto",
        "--source",
        "demo",
        "--serve",
        f"127.0.0.1:{PORT + 1}",
    )
    assert "Edge TPU access" in out
    # No Coral here: `auto` falls back to the CPU twin, inside the Edge TPU drop-in's sandbox.
    gate = container.show("edgecnn@gate.service", "ActiveState", "SupplementaryGroups", "DeviceAllow")
    assert gate["ActiveState"] == "active" and "plugdev" in gate["SupplementaryGroups"], gate
    assert "char-usb_device rw" in gate["DeviceAllow"], gate
    listed = json.loads(container.ok(EDGECNN, "service", "list", "--json"))
    assert [(i["name"], i["active"]) for i in listed] == [("door", "active"), ("gate", "active")]
    container.ok(EDGECNN, "service", "uninstall", "gate")
    container.ok(EDGECNN, "service", "uninstall", "door")
    leftovers = container.run(
        "ls",
        "-d",
        "/etc/edgecnn",
        "/var/lib/edgecnn",
        "/var/lib/private/edgecnn",
        "/etc/systemd/system/edgecnn@.service",
        "/etc/udev/rules.d/99-edgecnn-coral.rules",
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout
    units = container.ok("systemctl", "list-units", "edgecnn*", "--all", "--no-legend", "--plain")
    assert units.strip() == "", units


def test_edgetpu_instance_without_network_use_runs_in_a_private_network(container):
    """An Edge TPU instance that neither serves nor publishes gets no network, and libusb still starts.

    libedgetpu finds the Coral with a fresh ``libusb_init`` per attempt (sysfs, not netlink events), so
    a private network namespace is no obstacle; what libusb does need is a netlink socket at init. The
    check runs ``tests/libusb_start.py`` under the address families and network namespace the installed
    unit really has, then without AF_NETLINK, which must fail (so the first run proves something).
    """
    container.ok(
        EDGECNN,
        "service",
        "install",
        "cam",
        "--model",
        str(MOBILENET_EDGETPU),
        "--device",
        "auto",
        "--source",
        "demo",
    )
    unit = "edgecnn@cam.service"
    container.wait_until(
        lambda: container.show(unit, "ActiveState")["ActiveState"] == "active", 60, "edgecnn@cam active"
    )
    props = container.show(unit, "PrivateNetwork", "RestrictAddressFamilies", "DeviceAllow")
    assert props["PrivateNetwork"] == "yes", props
    assert set(props["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_NETLINK"}, props
    assert "char-usb_device rw" in props["DeviceAllow"], props

    def libusb_under(families: str) -> subprocess.CompletedProcess[str]:
        return container.run(
            "systemd-run", "--wait", "--pipe", "--quiet", "-p", "PrivateNetwork=yes",
            "-p", f"RestrictAddressFamilies={families}", sys.executable, str(ROOT / "tests" / "libusb_start.py"),
        )  # fmt: skip

    allowed = libusb_under(props["RestrictAddressFamilies"])
    if allowed.returncode == 77:
        pytest.skip("libusb-1.0 is not installed (apt-get install libusb-1.0-0)")
    assert allowed.returncode == 0 and "libusb started" in allowed.stdout, (allowed.stdout, allowed.stderr)
    denied = libusb_under("AF_UNIX")
    assert denied.returncode != 0 and "libusb_init failed" in denied.stdout, (denied.stdout, denied.stderr)
    container.ok(EDGECNN, "service", "uninstall", "cam")
