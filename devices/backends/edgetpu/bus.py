"""Edge TPUs on the bus, from sysfs and devfs alone (nothing is opened or loaded).

A hint for messages and ``edgecnn devices``: whether libedgetpu can actually use a device is what the
crash-contained probe finds out (``probe.probe_edgetpu``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Coral USB Accelerator: Global Unichip's ID until the runtime loads the firmware, Google's after.
EDGETPU_USB_IDS = {
    ("1a6e", "089a"): "unprogrammed",  # before first use: no firmware loaded yet
    ("18d1", "9302"): "ready",  # after libedgetpu has pushed the firmware
}


@dataclass(frozen=True)
class EdgeTPUDevice:
    """One Edge TPU seen on the bus (not necessarily usable: see the ``edgetpu_runtime`` diagnosis)."""

    kind: str  # "usb" or "pci"
    path: str  # sysfs folder of the USB device, or the /dev/apex_N node
    vendor_id: str | None = None
    product_id: str | None = None
    state: str | None = None  # usb: "unprogrammed" (1a6e:089a) or "ready" (18d1:9302)
    usb_speed_mbps: int | None = None  # 5000 = USB 3; 480 = USB 2, which runs the Coral several times slower

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_line(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    return text.replace("\x00", "").strip() or None


def find_edgetpus(sysfs_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[EdgeTPUDevice]:
    """Edge TPUs on this machine, from the bus alone (nothing is opened or loaded).

    USB: every ``<sysfs_root>/bus/usb/devices/*`` whose ``idVendor:idProduct`` is ``1a6e:089a`` (a Coral USB
    Accelerator before the runtime first loaded its firmware) or ``18d1:9302`` (after). PCIe/M.2: the
    ``<dev_root>/apex_*`` nodes the gasket/apex driver creates. Order: USB by sysfs name, then PCIe.
    Reusable by anything that must say which TPU hardware exists before trying libedgetpu.
    """
    found: list[EdgeTPUDevice] = []
    usb_root = sysfs_root / "bus" / "usb" / "devices"
    for dev in sorted(usb_root.glob("*")):
        vendor = (_read_line(dev / "idVendor") or "").lower()
        product = (_read_line(dev / "idProduct") or "").lower()
        state = EDGETPU_USB_IDS.get((vendor, product))
        if state is None:
            continue
        speed = _read_line(dev / "speed")
        try:
            speed_mbps = int(float(speed)) if speed else None
        except ValueError:
            speed_mbps = None
        found.append(EdgeTPUDevice("usb", str(dev), vendor, product, state, speed_mbps))
    for node in sorted(dev_root.glob("apex_*")):
        found.append(EdgeTPUDevice("pci", str(node)))
    return found
