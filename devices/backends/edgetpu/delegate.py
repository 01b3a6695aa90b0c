"""The Edge TPU delegate: which library to open (pycoral's per-OS names, ``EDGECNN_EDGETPU_LIB``) and loading it.

The library is loaded lazily and only through :func:`load_edgetpu_delegate`, so that the crash
containment in ``edgecnn.devices.backends.edgetpu.probe`` guards the one path production uses. The
``--device`` grammar (``edgetpu:usb:0``) is the registry's (``edgecnn.devices.backends``) and the
backend's (``edgetpu.backend``).
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

from edgecnn.errors import DeviceError, EdgeTPUNotFound

# pycoral/utils/edgetpu.py: the library name per OS.
EDGETPU_SHARED_LIB = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}
EDGETPU_LIB_ENV = "EDGECNN_EDGETPU_LIB"


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
