"""Delegates by name: ``cpu``, ``edgetpu`` (with pycoral's device grammar) and ``auto``.

The Edge TPU library is loaded lazily and only through :func:`load_edgetpu_delegate`, so that the crash
containment in ``edgecnn.devices.backends.edgetpu.probe`` guards the one path production uses.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from edgecnn.errors import DeviceError, EdgeTPUNotFound, UsageError

# pycoral/utils/edgetpu.py: the library name per OS.
EDGETPU_SHARED_LIB = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}
EDGETPU_LIB_ENV = "EDGECNN_EDGETPU_LIB"
_TPU_DEVICE = re.compile(r"^(usb|pci)?(:\d+)?$")


class DeviceKind(str, Enum):
    CPU = "cpu"
    EDGETPU = "edgetpu"
    AUTO = "auto"


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed ``--device`` value: ``cpu``, ``auto``, ``edgetpu`` or ``edgetpu:usb``/``:usb:0``/``:pci:1``/``::0``."""

    kind: DeviceKind
    tpu: str | None = None  # pycoral device string: usb, usb:N, pci, pci:N, :N, or None for the first

    def __str__(self) -> str:
        return self.kind.value if self.tpu is None else f"{self.kind.value}:{self.tpu}"


def parse_device(value: str | DeviceKind | DeviceSpec) -> DeviceSpec:
    if isinstance(value, DeviceSpec):
        return value
    if isinstance(value, DeviceKind):
        return DeviceSpec(value)
    text = value.strip().lower()
    name, _, rest = text.partition(":")
    try:
        kind = DeviceKind(name)
    except ValueError:
        raise UsageError(
            f"Unknown device {value!r}: use cpu, edgetpu, auto, or edgetpu:usb, edgetpu:usb:N, edgetpu:pci, edgetpu:pci:N."
        ) from None
    if not rest:
        return DeviceSpec(kind)
    if kind is DeviceKind.CPU or not _TPU_DEVICE.match(rest) or rest == "":
        raise UsageError(
            f"Bad Edge TPU device {value!r}: after 'edgetpu:' use usb, usb:N, pci, pci:N or :N (pycoral's grammar)."
        )
    return DeviceSpec(kind, rest)


def edgetpu_library() -> str:
    """The library the loader will open: ``EDGECNN_EDGETPU_LIB`` or the per-OS name."""
    override = os.environ.get(EDGETPU_LIB_ENV)
    if override:
        return override
    try:
        return EDGETPU_SHARED_LIB[platform.system()]
    except KeyError:
        raise DeviceError(f"The Edge TPU is not supported on {platform.system()}.") from None


def load_edgetpu_delegate(runtime: Any, tpu: str | None = None) -> Any:
    """Load libedgetpu through the runtime's ``load_delegate`` (may crash the process on a bad pairing)."""
    library = edgetpu_library()
    options = {"device": tpu} if tpu else {}
    try:
        # dlopen first: a missing library then fails cleanly, without the runtime's half-built Delegate
        # object printing an "Exception ignored in __del__" traceback on its way out.
        if not hasattr(ctypes.CDLL(library), "tflite_plugin_create_delegate"):
            raise EdgeTPUNotFound(
                f"{library} is not an Edge TPU delegate library (it exports no tflite_plugin_create_delegate): "
                f"point {EDGETPU_LIB_ENV} at libedgetpu.so.1 or unset it, or run the CPU model with --device cpu."
            )
        return runtime.load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as exc:
        raise EdgeTPUNotFound(
            f"No Edge TPU could be opened ({library}{' device ' + tpu if tpu else ''}: {exc}). "
            "Plug in the Coral and install libedgetpu1-std, or run the CPU model with --device cpu."
        ) from exc
