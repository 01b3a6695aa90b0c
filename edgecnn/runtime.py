"""Find the TFLite interpreter this machine has, and say which one it is.

Order: ai-edge-litert (maintained, wheels up to Python 3.13 on aarch64), tflite-runtime (stops at Python
3.11), then full TensorFlow's ``tf.lite`` as a last resort with a warning: on a Raspberry Pi TensorFlow costs
seconds of start-up and hundreds of MB, so we never pick it silently.
``EDGECNN_RUNTIME=ai_edge_litert|tflite_runtime|tensorflow`` forces one (diagnostics, tests).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import RuntimeMissing, UsageError
from edgecnn.nativelog import quiet_cpu_interpreter

log = logging.getLogger(__name__)

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


@dataclass(frozen=True)
class Runtime:
    """The interpreter module picked: ``Interpreter`` and ``load_delegate`` come from it."""

    name: str  # distribution-like name: ai-edge-litert, tflite-runtime, tensorflow
    module: str  # the module the classes came from
    version: str
    interpreter_class: Any
    load_delegate: Any

    def describe(self) -> str:
        return f"{self.name} {self.version}"


def _load(name: str) -> Runtime:
    if name == "ai_edge_litert":
        mod = importlib.import_module("ai_edge_litert.interpreter")
        version = getattr(importlib.import_module("ai_edge_litert"), "__version__", "unknown")
        return Runtime(
            "ai-edge-litert",
            "ai_edge_litert.interpreter",
            version,
            quiet_cpu_interpreter(mod.Interpreter),
            mod.load_delegate,
        )
    if name == "tflite_runtime":
        mod = importlib.import_module("tflite_runtime.interpreter")
        version = getattr(importlib.import_module("tflite_runtime"), "__version__", "unknown")
        return Runtime(
            "tflite-runtime",
            "tflite_runtime.interpreter",
            version,
            quiet_cpu_interpreter(mod.Interpreter),
            mod.load_delegate,
        )
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return Runtime(
            "tensorflow",
            "tensorflow.lite",
            tf.__version__,
            quiet_cpu_interpreter(tf.lite.Interpreter),
            tf.lite.experimental.load_delegate,
        )
    raise UsageError(f"Unknown TFLite runtime {name!r}: choose one of {', '.join(RUNTIMES)}.")


@functools.cache
def get_runtime(prefer: str | None = None) -> Runtime:
    """Return the first importable runtime (or the one ``prefer``/``EDGECNN_RUNTIME`` names)."""
    forced = prefer or os.environ.get("EDGECNN_RUNTIME") or None
    if forced:
        try:
            return _load(forced)
        except ImportError as exc:
            raise RuntimeMissing(
                f"TFLite runtime {forced!r} (from EDGECNN_RUNTIME) is not importable: {exc}. "
                "Install it or unset EDGECNN_RUNTIME."
            ) from exc
    for name in RUNTIMES:
        try:
            runtime = _load(name)
        except ImportError:
            continue
        if name == "tensorflow":
            log.warning(
                "Using full TensorFlow's tf.lite: install ai-edge-litert (pip install ai-edge-litert) for a "
                "faster start and a smaller footprint."
            )
        return runtime
    raise RuntimeMissing(
        "No TFLite runtime found: pip install ai-edge-litert (Python 3.10-3.13), "
        "or tflite-runtime on Python <= 3.11."
    )
