"""The device probe against fake proc/sys/dev/etc trees (a Raspberry Pi 5 with a Coral USB, a plain x86 PC),
and ``edgecnn devices`` on this machine."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from edgecnn.devices.probe import (
    decode_throttled,
    find_cameras,
    find_edgetpus,
    format_probe,
    probe_device,
    read_temperature,
)
from tests.conftest import run_cli

PI5_CPUINFO = (
    "".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
        for i in range(4)
    )
    + "Revision\t: d04170\nSerial\t\t: 7b2d2f14a6c1c0e0\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
)

X86_CPUINFO = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 154\n"
    "model name\t: 12th Gen Intel(R) Core(TM) i7-1260P\nflags\t\t: fpu vme de pse avx2\n\n"
    for i in range(8)
)


def write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def usb_device(root: Path, name: str, vendor: str, product: str, speed: str) -> None:
    for field, value in (("idVendor", vendor), ("idProduct", product), ("speed", speed)):
        write(root, f"sys/bus/usb/devices/{name}/{field}", value + "\n")


def build_pi5(root: Path, *, coral_state: str = "unprogrammed", coral_speed: str = "5000") -> Path:
    """A Raspberry Pi 5 (4 GB, Bookworm, ondemand governor, 61.3 °C) with a Coral USB and a USB webcam."""
    write(root, "proc/device-tree/model", b"Raspberry Pi 5 Model B Rev 1.0\x00")
    write(root, "proc/cpuinfo", PI5_CPUINFO)
    write(root, "proc/meminfo", "MemTotal:        4139984 kB\nMemFree:         3000000 kB\n")
    write(root, "proc/sys/kernel/arch", "aarch64\n")
    write(root, "proc/sys/kernel/osrelease", "6.6.51+rpt-rpi-2712\n")
    write(root, "proc/sys/kernel/hostname", "pi5-kitchen\n")
    write(
        root,
        "etc/os-release",
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n',
    )
    write(root, "sys/devices/system/cpu/online", "0-3\n")
    for i in range(4):
        write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_governor", "ondemand\n")
    write(root, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    write(root, "sys/class/thermal/thermal_zone0/temp", "61300\n")
    # root hubs and a keyboard, then the Coral
    usb_device(root, "usb1", "1d6b", "0002", "480")
    usb_device(root, "usb3", "1d6b", "0003", "5000")
    usb_device(root, "1-1", "046d", "c31c", "1.5")
    vendor, product = ("1a6e", "089a") if coral_state == "unprogrammed" else ("18d1", "9302")
    usb_device(root, "3-1", vendor, product, coral_speed)
    write(root, "sys/bus/usb/devices/3-1:1.0/bInterfaceClass", "ff\n")  # an interface folder: no ids
    cameras = {0: "rp1-cfe", 19: "pispbe", 1: "HD Pro Webcam C920"}
    for index, name in cameras.items():
        write(root, f"dev/video{index}", "")
        write(root, f"sys/class/video4linux/video{index}/name", name + "\n")
    write(root, "dev/media0", "")
    return root


def build_x86(root: Path) -> Path:
    """A plain PC: no device tree, performance governor, x86_pkg_temp zone, no TPU, no camera."""
    write(root, "proc/cpuinfo", X86_CPUINFO)
    write(root, "proc/meminfo", "MemTotal:       16252928 kB\n")
    write(root, "proc/sys/kernel/arch", "x86_64\n")
    write(root, "proc/sys/kernel/hostname", "desk\n")
    write(root, "etc/os-release", 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n')
    write(root, "sys/devices/system/cpu/online", "0-7\n")
    for i in range(8):
        write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_governor", "performance\n")
    write(root, "sys/class/thermal/thermal_zone0/type", "acpitz\n")
    write(root, "sys/class/thermal/thermal_zone0/temp", "27800\n")
    write(root, "sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n")
    write(root, "sys/class/thermal/thermal_zone1/temp", "48000\n")
    usb_device(root, "usb1", "1d6b", "0002", "480")
    usb_device(root, "1-4", "8087", "0026", "12")
    return root


def fake_vcgencmd(bin_dir: Path, output: str, code: int = 0) -> Path:
    """A stand-in for the Pi firmware tool this machine lacks; the probe still runs it as a subprocess."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "vcgencmd"
    script.write_text(f'#!/bin/sh\n[ "$1" = get_throttled ] || exit 2\necho "{output}"\nexit {code}\n')
    script.chmod(0o755)
    return script


def test_pi5_with_coral_usb(tmp_path):
    root = build_pi5(tmp_path / "pi5")
    bin_dir = tmp_path / "bin"
    fake_vcgencmd(bin_dir, "throttled=0x50000")
    probe = probe_device(root, path_env=str(bin_dir), diagnose_edgetpu=False)

    assert probe.name == probe.board == "Raspberry Pi 5 Model B Rev 1.0"
    assert probe.cpu_model == "Cortex-A76"
    assert (probe.arch, probe.cores, probe.memory_mb) == ("aarch64", 4, 4042)
    assert probe.os == "Debian GNU/Linux 12 (bookworm)"
    assert probe.kernel == "6.6.51+rpt-rpi-2712" and probe.hostname == "pi5-kitchen"
    assert probe.governor == "ondemand"
    assert probe.temperature_c == 61.3
    assert probe.throttling is not None
    assert probe.throttling.now == [] and probe.throttling.since_boot == ["under-voltage", "throttled"]
    [tpu] = probe.edgetpus
    assert (tpu.kind, tpu.vendor_id, tpu.product_id, tpu.state) == ("usb", "1a6e", "089a", "unprogrammed")
    assert tpu.usb_speed_mbps == 5000 and tpu.path.endswith("3-1")
    assert [(Path(c.path).name, c.name) for c in probe.cameras] == [
        ("video0", "rp1-cfe"),
        ("video1", "HD Pro Webcam C920"),
        ("video19", "pispbe"),
    ]
    assert any("governor is 'ondemand'" in w for w in probe.warnings)
    assert any("throttling" in w for w in probe.warnings)
    assert not any("USB 2" in w for w in probe.warnings)

    data = json.loads(json.dumps(probe.to_dict()))
    assert data["throttling"] == {
        "raw": "0x50000",
        "now": [],
        "since_boot": ["under-voltage", "throttled"],
        "active": False,
    }
    assert data["edgetpus"][0]["state"] == "unprogrammed"


def test_coral_after_first_use_and_on_usb2(tmp_path):
    root = build_pi5(tmp_path, coral_state="ready", coral_speed="480")
    [tpu] = find_edgetpus(root / "sys", root / "dev")
    assert (tpu.vendor_id, tpu.product_id, tpu.state) == ("18d1", "9302", "ready")
    probe = probe_device(root, path_env=str(tmp_path / "nobin"), diagnose_edgetpu=False)
    assert probe.throttling is None  # no vcgencmd on that PATH
    assert any("480 Mb/s (USB 2)" in w for w in probe.warnings)


def test_pcie_edgetpu_from_apex_nodes(tmp_path):
    write(tmp_path, "dev/apex_0", "")
    write(tmp_path, "dev/apex_1", "")
    found = find_edgetpus(tmp_path / "sys", tmp_path / "dev")
    assert [(t.kind, Path(t.path).name) for t in found] == [("pci", "apex_0"), ("pci", "apex_1")]


def test_vcgencmd_failure_is_unknown_not_an_error(tmp_path):
    root = build_pi5(tmp_path / "pi5")
    fake_vcgencmd(tmp_path / "bin", "VCHI initialization failed", code=255)
    probe = probe_device(root, path_env=str(tmp_path / "bin"), diagnose_edgetpu=False)
    assert probe.throttling is None


def test_throttle_bits_decode():
    t = decode_throttled(0x50005)
    assert t.now == ["under-voltage", "throttled"] and t.active
    assert t.since_boot == ["under-voltage", "throttled"]
    assert decode_throttled(0).to_dict()["active"] is False


def test_plain_x86_host(tmp_path):
    root = build_x86(tmp_path)
    probe = probe_device(root, path_env=str(tmp_path / "nobin"), diagnose_edgetpu=False)
    assert probe.board is None
    assert probe.name == probe.cpu_model == "12th Gen Intel(R) Core(TM) i7-1260P"
    assert (probe.arch, probe.cores, probe.memory_mb) == ("x86_64", 8, 15872)
    assert probe.os == "Ubuntu 24.04.1 LTS"
    assert probe.governor == "performance"
    assert probe.temperature_c == 48.0  # the package sensor, not the ACPI zone
    assert probe.throttling is None
    assert probe.edgetpus == [] and probe.cameras == []
    assert probe.warnings == []


def test_empty_tree_degrades_to_unknown(tmp_path):
    probe = probe_device(tmp_path, diagnose_edgetpu=False)
    assert probe.board is None and probe.cpu_model is None and probe.memory_mb is None
    assert probe.governor is None and probe.temperature_c is None
    assert probe.edgetpus == [] and probe.cameras == []
    assert read_temperature(tmp_path / "sys") is None
    assert find_cameras(tmp_path / "dev", tmp_path / "sys") == []


def test_mixed_governors_are_reported(tmp_path):
    root = build_x86(tmp_path)
    (root / "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor").write_text("powersave\n")
    probe = probe_device(root, diagnose_edgetpu=False)
    assert probe.governor == "performance,powersave"
    assert any("not 'performance'" in w for w in probe.warnings)


def test_devices_json_here_reports_no_edgetpu_and_names_runtime():
    result = run_cli("devices", "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runtime_name"] == "ai-edge-litert" and data["runtime"].startswith("ai-edge-litert ")
    assert data["arch"] == os.uname().machine
    assert data["cores"] == os.cpu_count()
    # This CI machine has no Coral: no USB ids, no /dev/apex_*, and libedgetpu is not installed.
    assert data["edgetpus"] == []
    diagnosis = data["edgetpu_runtime"]
    if "verdict" in diagnosis:  # edgecnn.devices.backends.edgetpu.pairing.diagnose_edgetpu
        assert diagnosis["verdict"] == "not-installed" and diagnosis["library_loads"] is False
        assert diagnosis["tflite_runtime"] == "ai-edge-litert" and diagnosis["devices"] == []
    else:  # the probe's own fallback: does dlopen(libedgetpu) work
        assert diagnosis["loads"] is False and "libedgetpu" in diagnosis["library"]
    assert data["python"].endswith(".".join(map(str, sys.version_info[:3])))


def test_devices_text_output():
    result = run_cli("devices")
    assert result.code == 0, result.stderr
    assert "edge tpu     none" in result.stdout
    assert "runtime      ai-edge-litert" in result.stdout


def test_edgetpu_diagnosis_sees_the_fake_bus(tmp_path):
    """The libedgetpu diagnosis is pointed at the same fake tree, so it reports the Coral found there."""
    from edgecnn.devices.backends.edgetpu import pairing as edgetpu

    if not hasattr(edgetpu, "diagnose_edgetpu"):
        pytest.skip("edgecnn.devices.backends.edgetpu.pairing has no diagnose_edgetpu yet")
    root = build_pi5(tmp_path / "pi5")
    probe = probe_device(root, path_env=str(tmp_path / "nobin"))
    assert probe.edgetpu_runtime is not None
    assert [(d["vendor_id"], d["product_id"]) for d in probe.edgetpu_runtime["devices"]] == [("1a6e", "089a")]
    assert "libedgetpu" in format_probe(probe)
