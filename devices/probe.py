"""What this machine is and can do, read from procfs/sysfs/devfs (``edgecnn devices``, ``edgecnn bench``).

Every probe takes the roots it reads (``proc``, ``sys``, ``dev``, ``etc``) so tests can point it at a fake
tree built in a temporary folder: ``probe_device(root=tmp_path)`` reads ``tmp_path/proc/cpuinfo``,
``tmp_path/sys/bus/usb/devices/...`` and so on. A probe that cannot read its path returns ``None`` (or an
empty list) instead of failing: a container has no ``/sys/class/thermal`` zones, a desktop has no
``vcgencmd``, and "unknown" is an honest answer there.

Facts about the running interpreter (Python version, TFLite runtime) come from the process itself.
"""

from __future__ import annotations

import logging
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.devices.backends.edgetpu.bus import EdgeTPUDevice, find_edgetpus

log = logging.getLogger(__name__)

VCGENCMD_TIMEOUT_S = 5.0

# Bits of ``vcgencmd get_throttled`` (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    0: "under-voltage",
    1: "arm-frequency-capped",
    2: "throttled",
    3: "soft-temperature-limit",
}
_OCCURRED_SHIFT = 16  # bits 16-19 are the same four conditions, "has occurred since boot"

# ARM "CPU part" numbers (implementer 0x41) for boards whose cpuinfo has no "model name".
_ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78",
    "0xc07": "Cortex-A7",
    "0xb76": "ARM1176",
}
# Thermal zone types that measure the SoC/CPU, preferred over battery or chassis sensors.
_CPU_ZONE_HINTS = ("cpu", "soc", "x86_pkg", "k10temp", "coretemp", "tctl")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _read_line(path: Path) -> str | None:
    text = _read_text(path)
    if text is None:
        return None
    # device-tree strings end with NUL
    return text.replace("\x00", "").strip() or None


@dataclass(frozen=True)
class Camera:
    path: str  # /dev/videoN
    name: str | None  # driver-given name from sysfs (e.g. "HD Pro Webcam C920", "rp1-cfe")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Throttling:
    """Decoded ``vcgencmd get_throttled``: conditions active now and ones that occurred since boot."""

    raw: str  # e.g. "0x50000"
    now: list[str]
    since_boot: list[str]

    @property
    def active(self) -> bool:
        return bool(self.now)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


@dataclass
class DeviceProbe:
    """Everything ``edgecnn devices`` reports; saved inside every bench result to name the machine."""

    name: str  # short label for tables: the board, else the CPU model
    board: str | None
    cpu_model: str | None
    arch: str
    cores: int | None
    memory_mb: int | None
    os: str | None
    kernel: str | None
    hostname: str | None
    python: str
    runtime: str | None  # "ai-edge-litert 2.3.0", or None when no TFLite runtime is installed
    runtime_name: str | None
    runtime_version: str | None
    governor: str | None  # "performance", "ondemand", ... (comma-joined when cores differ)
    temperature_c: float | None
    throttling: Throttling | None
    edgetpus: list[EdgeTPUDevice] = field(default_factory=list)
    cameras: list[Camera] = field(default_factory=list)
    edgetpu_runtime: dict[str, Any] | None = None  # libedgetpu diagnosis (the Edge TPU backend's)
    backends: list[str] = field(default_factory=list)  # the registry's keys (edgecnn.devices.backends)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["throttling"] = self.throttling.to_dict() if self.throttling else None
        return data


# --- individual probes ------------------------------------------------------------------------------


def read_board(proc_root: Path, sysfs_root: Path) -> str | None:
    """Board name from the device tree (Raspberry Pi, Coral Dev Board); ``None`` on PCs."""
    for path in (
        proc_root / "device-tree" / "model",
        sysfs_root / "firmware" / "devicetree" / "base" / "model",
    ):
        value = _read_line(path)
        if value:
            return value
    return None


def _cpuinfo_fields(proc_root: Path) -> tuple[dict[str, str], int]:
    """First value of each ``key : value`` field in cpuinfo, and the number of ``processor`` entries."""
    text = _read_text(proc_root / "cpuinfo") or ""
    fields: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            processors += 1
        fields.setdefault(key, value.strip())
    return fields, processors


def read_cpu_model(proc_root: Path) -> str | None:
    """``model name`` on x86; on ARM the core type from ``CPU part`` (cpuinfo has no model name there)."""
    fields, _ = _cpuinfo_fields(proc_root)
    for key in ("model name", "Processor", "cpu model"):
        if fields.get(key):
            return fields[key]
    part = fields.get("CPU part", "").lower()
    if fields.get("CPU implementer", "").lower() == "0x41" and part in _ARM_PARTS:
        return _ARM_PARTS[part]
    return fields.get("Hardware") or None


def read_cores(proc_root: Path, sysfs_root: Path) -> int | None:
    """Online CPUs from ``/sys/devices/system/cpu/online`` ("0-3"), else cpuinfo's processor count."""
    online = _read_line(sysfs_root / "devices" / "system" / "cpu" / "online")
    if online:
        count = 0
        try:
            for part in online.split(","):
                lo, _, hi = part.partition("-")
                count += int(hi or lo) - int(lo) + 1
            return count
        except ValueError:
            pass
    _, processors = _cpuinfo_fields(proc_root)
    return processors or None


def read_memory_mb(proc_root: Path) -> int | None:
    text = _read_text(proc_root / "meminfo") or ""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) // 1024 if match else None


def read_os(etc_root: Path) -> str | None:
    """``PRETTY_NAME`` from os-release (``/etc/os-release``, else ``/usr/lib/os-release``)."""
    for path in (etc_root / "os-release", etc_root.parent / "usr" / "lib" / "os-release"):
        text = _read_text(path)
        if text is None:
            continue
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip("\"'")
        return values.get("PRETTY_NAME") or values.get("NAME")
    return None


def read_governor(sysfs_root: Path) -> str | None:
    """The cpufreq governor of the online CPUs: one name, or a comma-joined set when cores differ."""
    cpu_dir = sysfs_root / "devices" / "system" / "cpu"
    governors = set()
    for path in sorted(cpu_dir.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        value = _read_line(path)
        if value:
            governors.add(value)
    return ",".join(sorted(governors)) or None


def read_temperature(sysfs_root: Path) -> float | None:
    """SoC/CPU temperature in °C from ``/sys/class/thermal/thermal_zone*/temp`` (millidegrees).

    A zone whose type names the CPU or SoC is preferred (``cpu-thermal`` on a Pi, ``x86_pkg_temp`` on
    Intel); otherwise the hottest readable zone, since throttling follows the hottest sensor.
    """
    zones = []
    for zone in sorted((sysfs_root / "class" / "thermal").glob("thermal_zone*")):
        raw = _read_line(zone / "temp")
        try:
            celsius = int(raw) / 1000.0 if raw is not None else None
        except ValueError:
            celsius = None
        if celsius is None:
            continue
        zone_type = (_read_line(zone / "type") or "").lower()
        zones.append((any(h in zone_type for h in _CPU_ZONE_HINTS), celsius))
    if not zones:
        return None
    preferred = [c for is_cpu, c in zones if is_cpu]
    return round(max(preferred or [c for _, c in zones]), 1)


def decode_throttled(value: int) -> Throttling:
    now = [name for bit, name in THROTTLE_BITS.items() if value & (1 << bit)]
    since = [name for bit, name in THROTTLE_BITS.items() if value & (1 << (bit + _OCCURRED_SHIFT))]
    return Throttling(raw=hex(value), now=now, since_boot=since)


def find_vcgencmd(path_env: str | None = None) -> str | None:
    """``vcgencmd`` on PATH (``path_env`` replaces ``$PATH`` for the lookup), or ``None``."""
    return shutil.which("vcgencmd", path=path_env)


def read_throttling(vcgencmd: str | None) -> Throttling | None:
    """Run ``vcgencmd get_throttled`` (Raspberry Pi firmware) and decode it; ``None`` if it cannot run."""
    if not vcgencmd:
        return None
    try:
        proc = subprocess.run(
            [vcgencmd, "get_throttled"],
            capture_output=True,
            text=True,
            timeout=VCGENCMD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("vcgencmd get_throttled failed: %s", exc)
        return None
    if proc.returncode != 0:
        log.debug("vcgencmd get_throttled exited %s: %s", proc.returncode, proc.stderr.strip())
        return None
    match = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", proc.stdout)
    if not match:
        return None
    return decode_throttled(int(match.group(1), 0))


def _video_index(path: Path) -> int:
    digits = path.name[len("video") :]
    return int(digits) if digits.isascii() and digits.isdigit() else 1 << 30


def find_cameras(dev_root: Path = Path("/dev"), sysfs_root: Path = Path("/sys")) -> list[Camera]:
    """``/dev/videoN`` nodes with their V4L2 names (``/sys/class/video4linux/videoN/name``).

    On a Raspberry Pi some nodes are the ISP and codecs (``pispbe``, ``rpivid``, ``bcm2835-codec``), not
    cameras: the names tell them apart, so they are listed rather than guessed away.
    """
    nodes = sorted((p for p in dev_root.glob("video*") if _video_index(p) != 1 << 30), key=_video_index)
    return [
        Camera(str(node), _read_line(sysfs_root / "class" / "video4linux" / node.name / "name"))
        for node in nodes
    ]


def _runtime_fields() -> tuple[str | None, str | None, str | None]:
    from edgecnn.errors import RuntimeMissing
    from edgecnn.runtime import get_runtime

    try:
        runtime = get_runtime()
    except RuntimeMissing:
        return None, None, None
    return runtime.describe(), runtime.name, runtime.version


def backend_diagnoses(sysfs_root: Path, dev_root: Path) -> dict[str, dict[str, Any]]:
    """What each registered backend says about itself here (the Edge TPU: libedgetpu and its pairing)."""
    from edgecnn.devices.backends import BACKENDS, get_backend

    found = {key: get_backend(key).diagnose(sysfs_root, dev_root) for key in BACKENDS}
    return {key: value for key, value in found.items() if value is not None}


def edgetpu_runtime_diagnosis(sysfs_root: Path, dev_root: Path) -> dict[str, Any] | None:
    """libedgetpu's state, as the Edge TPU backend diagnoses itself (loads? version? pairing?)."""
    return backend_diagnoses(sysfs_root, dev_root).get("edgetpu")


def _backend_keys() -> list[str]:
    from edgecnn.devices.backends import BACKENDS

    return list(BACKENDS)


def probe_device(
    root: Path = Path("/"),
    *,
    path_env: str | None = None,
    diagnose_edgetpu: bool = True,
) -> DeviceProbe:
    """Probe the machine whose ``proc``, ``sys``, ``dev`` and ``etc`` live under ``root``.

    ``path_env`` replaces ``$PATH`` when looking for ``vcgencmd``; ``diagnose_edgetpu=False`` skips the
    libedgetpu diagnosis (which looks at this machine's libraries, not at ``root``).
    """
    root = Path(root)
    proc_root, sysfs_root, dev_root, etc_root = root / "proc", root / "sys", root / "dev", root / "etc"
    board = read_board(proc_root, sysfs_root)
    cpu_model = read_cpu_model(proc_root)
    arch = _read_line(proc_root / "sys" / "kernel" / "arch") or platform.machine() or "unknown"
    runtime, runtime_name, runtime_version = _runtime_fields()
    governor = read_governor(sysfs_root)
    is_pi = bool(board and board.startswith("Raspberry Pi"))
    throttling = read_throttling(find_vcgencmd(path_env)) if is_pi else None
    edgetpus = find_edgetpus(sysfs_root, dev_root)
    warnings = []
    if governor and governor != "performance":
        warnings.append(
            f"CPU governor is {governor!r}, not 'performance': latency varies with the clock. For benchmarks: "
            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
        )
    if throttling and (throttling.now or throttling.since_boot):
        warnings.append(
            f"The Pi reports throttling ({throttling.raw}: now {throttling.now or 'none'}, since boot "
            f"{throttling.since_boot or 'none'}): use the official power supply and a heatsink or fan."
        )
    for tpu in edgetpus:
        if tpu.kind == "usb" and tpu.usb_speed_mbps is not None and tpu.usb_speed_mbps < 5000:
            warnings.append(
                f"The Coral USB at {tpu.path} runs at {tpu.usb_speed_mbps} Mb/s (USB 2): plug it into a "
                "blue USB 3 port for full speed."
            )
    diagnosis = edgetpu_runtime_diagnosis(sysfs_root, dev_root) if diagnose_edgetpu else None
    return DeviceProbe(
        name=board or cpu_model or arch,
        board=board,
        cpu_model=cpu_model,
        arch=arch,
        cores=read_cores(proc_root, sysfs_root),
        memory_mb=read_memory_mb(proc_root),
        os=read_os(etc_root),
        kernel=_read_line(proc_root / "sys" / "kernel" / "osrelease"),
        hostname=_read_line(proc_root / "sys" / "kernel" / "hostname"),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        runtime=runtime,
        runtime_name=runtime_name,
        runtime_version=runtime_version,
        governor=governor,
        temperature_c=read_temperature(sysfs_root),
        throttling=throttling,
        edgetpus=edgetpus,
        cameras=find_cameras(dev_root, sysfs_root),
        edgetpu_runtime=diagnosis,
        backends=_backend_keys(),
        warnings=warnings,
    )


def format_probe(probe: DeviceProbe) -> str:
    """Human-readable ``edgecnn devices`` output."""

    def show(value: Any, unit: str = "") -> str:
        return "unknown" if value is None else f"{value}{unit}"

    lines = [
        f"machine      {probe.name}",
        f"board        {show(probe.board)}",
        f"cpu          {show(probe.cpu_model)} ({probe.arch}, {show(probe.cores)} cores)",
        f"memory       {show(probe.memory_mb, ' MB')}",
        f"os           {show(probe.os)} (kernel {show(probe.kernel)})",
        f"python       {probe.python} ({sys.executable})",
        f"runtime      {probe.runtime or 'none: pip install ai-edge-litert'}",
        f"governor     {show(probe.governor)}",
        f"temperature  {show(probe.temperature_c, ' °C')}",
    ]
    if probe.throttling is not None:
        t = probe.throttling
        lines.append(
            f"throttling   {t.raw} (now: {', '.join(t.now) or 'none'}; since boot: {', '.join(t.since_boot) or 'none'})"
        )
    else:
        lines.append("throttling   unknown (vcgencmd reads it on a Raspberry Pi)")
    if probe.edgetpus:
        for tpu in probe.edgetpus:
            detail = f"{tpu.vendor_id}:{tpu.product_id} {tpu.state}" if tpu.kind == "usb" else ""
            if tpu.usb_speed_mbps:
                detail += f", {tpu.usb_speed_mbps} Mb/s"
            lines.append(f"edge tpu     {tpu.kind} {tpu.path} {detail}".rstrip())
    else:
        lines.append("edge tpu     none (looked for USB 1a6e:089a / 18d1:9302 and /dev/apex_*)")
    if probe.edgetpu_runtime is not None:
        lines.append(f"libedgetpu   {_summarize_diagnosis(probe.edgetpu_runtime)}")
    if probe.backends:
        lines.append(f"backends     {', '.join(probe.backends)} (--device auto picks one per model)")
    if probe.cameras:
        for cam in probe.cameras:
            lines.append(f"camera       {cam.path} {cam.name or ''}".rstrip())
    else:
        lines.append("camera       none (/dev/video*)")
    lines += [f"warning: {w}" for w in probe.warnings]
    return "\n".join(lines)


def _summarize_diagnosis(diag: dict[str, Any]) -> str:
    """One line from the libedgetpu diagnosis, whatever fields it carries."""
    for key in ("summary", "verdict", "message"):
        if isinstance(diag.get(key), str) and diag[key]:
            return str(diag[key])
    parts = [f"{k}={v}" for k, v in diag.items() if isinstance(v, (str, int, float, bool)) and v is not None]
    return ", ".join(parts[:6]) or "no details"
