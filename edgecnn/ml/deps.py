"""Import the heavy training stack on demand, with an install hint instead of a bare ImportError.

TensorFlow, Keras, scikit-learn and matplotlib come with the ``[train]`` extra only: the device never has
them, and importing TensorFlow costs seconds, so nothing imports them at module level.
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import ModuleType

from edgecnn.errors import RuntimeMissing
from edgecnn.nativelog import native_chatter_filtered

_HINT = "Install the training extra on a desktop or server: pip install 'edgecnn[train]'"


def tensorflow() -> ModuleType:
    # Keep TensorFlow's C++ log lines (oneDNN notices, harmless tf.data NodeDef "errors") out of the user's
    # terminal: real failures still surface as Python exceptions. EDGECNN_DEBUG=1 shows everything. The
    # variable covers what TensorFlow logs after import; the import's own lines need the fd-level filter.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if os.environ.get("EDGECNN_DEBUG") else "3")
    quiet = contextlib.nullcontext() if "tensorflow" in sys.modules else native_chatter_filtered()
    try:
        with quiet:  # only the first import loads the native libraries
            import tensorflow as tf
    except ImportError as exc:
        raise RuntimeMissing(f"TensorFlow is not installed ({exc.name}). {_HINT}.") from exc
    return tf


def keras() -> ModuleType:
    tensorflow()  # same log settings, and Keras 3 needs a backend
    try:
        import keras
    except ImportError as exc:
        raise RuntimeMissing(f"Keras is not installed ({exc.name}). {_HINT}.") from exc
    return keras


def sklearn_digits() -> tuple[object, object]:
    """scikit-learn's bundled 8x8 digits (images 0..16, targets): shipped inside the wheel, no download."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise RuntimeMissing(f"scikit-learn is not installed ({exc.name}). {_HINT}.") from exc
    digits = load_digits()
    return digits.images, digits.target
