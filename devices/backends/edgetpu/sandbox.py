"""What a systemd service needs to reach a Coral, and the udev rule that gives it the device.

The unit template is hardened (no devices, no netlink); an instance that may open an Edge TPU gets a
drop-in with exactly these lines, and the udev rule (``99-edgecnn-coral.rules``, shipped in
``edgecnn.devices``) puts both USB ids and ``/dev/apex_N`` in the ``plugdev`` group.
"""

from __future__ import annotations

from importlib import resources

UDEV_RULE = "99-edgecnn-coral.rules"
DROPIN = [
    "# Coral Edge TPU: USB through libusb (which needs netlink for its hotplug monitor), PCIe as",
    f"# /dev/apex_N; {UDEV_RULE} gives both to the plugdev group.",
    "SupplementaryGroups=plugdev",
    "DeviceAllow=char-usb_device rw",
    "DeviceAllow=char-apex rw",
    "RestrictAddressFamilies=AF_NETLINK",
]
DROPIN_MARKER = "char-usb_device"  # a drop-in holding this line belongs to an instance that uses the Coral


def udev_rule_text() -> str:
    return resources.files("edgecnn.devices").joinpath(UDEV_RULE).read_text(encoding="utf-8")
