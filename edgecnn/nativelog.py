"""Native libraries' chatter (TensorFlow, absl, the TFLite converter) kept out of the user's terminal.

TensorFlow 2.16+ logs through absl before it reads ``TF_CPP_MIN_LOG_LEVEL`` (tensorflow/tensorflow#100442),
and the TFLite converter prints its settings from C++: neither can be silenced from Python. While a block
runs, file descriptor 2 goes to a temporary file; afterwards every line that is not known chatter is
written to the real stderr, so a genuine native error still reaches the user. ``EDGECNN_DEBUG=1`` passes
everything through untouched.

Only for blocks that load no delegate: a process that crashes inside the block would lose what it wrote.
So :func:`quiet_cpu_interpreter` filters only ``allocate_tensors()`` of interpreters created without
delegates (where LiteRT prints its XNNPACK banner); an Edge TPU interpreter is never filtered, and
:func:`decoder_chatter_filtered` covers only an image decode.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# Informational lines only: absl/TF INFO and WARNING records, and the converter's and LiteRT's banners.
CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] "
    r"|fully_quantize: \d+, inference_type: "
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\."
)
# Image decoders on a damaged file: libpng's own lines and OpenCV's imdecode warning. Our InputError says it.
DECODER_CHATTER = re.compile(
    r"libpng (error|warning): "
    r"|\[ ?(WARN|ERROR):\S+\] global \S*(loadsave|grfmt_\w+|bitstrm)\.cpp"
    r"|Corrupt JPEG data: |Premature end of JPEG file"
)


def is_chatter(line: str, pattern: re.Pattern[str] = CHATTER) -> bool:
    return pattern.match(line) is not None


@contextlib.contextmanager
def native_chatter_filtered(pattern: re.Pattern[str] = CHATTER) -> Iterator[None]:
    """Capture fd 2 for the block, then replay all but ``pattern`` lines (:data:`CHATTER`) to stderr."""
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()  # Python-level writes made inside the block belong to the capture
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = "".join(s for s in text.splitlines(keepends=True) if not is_chatter(s, pattern))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def decoder_chatter_filtered() -> contextlib.AbstractContextManager[None]:
    """For one image decode: libpng/libjpeg/OpenCV lines about a damaged file stay out of the terminal."""
    return native_chatter_filtered(DECODER_CHATTER)


def quiet_cpu_interpreter(interpreter_class: Any) -> Any:
    """``interpreter_class`` whose ``allocate_tensors()`` hides LiteRT's "Created ... XNNPACK delegate" banner.

    Only for interpreters built without ``experimental_delegates``: the banner is printed by the first
    ``allocate_tensors()`` (not the constructor), and a CPU-only allocation has no delegate that could crash
    the process while fd 2 is captured. With a delegate (the Edge TPU) nothing is filtered.
    """

    class QuietInterpreter(interpreter_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._edgecnn_quiet = not kwargs.get("experimental_delegates")
            super().__init__(*args, **kwargs)

        def allocate_tensors(self) -> Any:
            if not self._edgecnn_quiet:
                return super().allocate_tensors()
            with native_chatter_filtered():
                return super().allocate_tensors()

    QuietInterpreter.__name__ = QuietInterpreter.__qualname__ = interpreter_class.__name__
    QuietInterpreter.__module__ = interpreter_class.__module__
    return QuietInterpreter
