"""Native libraries' chatter (TensorFlow, absl, the TFLite converter) kept out of the user's terminal.

TensorFlow 2.16+ logs through absl before it reads ``TF_CPP_MIN_LOG_LEVEL`` (tensorflow/tensorflow#100442),
and the TFLite converter prints its settings from C++: neither can be silenced from Python. While a block
runs, file descriptor 2 goes to a temporary file; afterwards every line that is not known chatter is
written to the real stderr, so a genuine native error still reaches the user. ``EDGECNN_DEBUG=1`` passes
everything through untouched.

Only for blocks that load no delegate: a process that crashes inside the block would lose what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Informational lines only: absl/TF INFO and WARNING records, and the converter's and LiteRT's banners.
CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] "
    r"|fully_quantize: \d+, inference_type: "
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\."
)


def is_chatter(line: str) -> bool:
    return CHATTER.match(line) is not None


@contextlib.contextmanager
def native_chatter_filtered() -> Iterator[None]:
    """Capture fd 2 for the block, then replay all but :data:`CHATTER` lines to the real stderr."""
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
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_chatter(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
