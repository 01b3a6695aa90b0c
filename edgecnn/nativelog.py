"""Native libraries' chatter (TensorFlow, absl, the TFLite converter) kept out of the user's terminal.

TensorFlow 2.16+ logs through absl before it reads ``TF_CPP_MIN_LOG_LEVEL`` (tensorflow/tensorflow#100442),
and the TFLite converter prints its settings from C++: neither can be silenced from Python. While a block
runs, file descriptor 2 goes to a temporary file; afterwards every line that is not known chatter is
written to the real stderr, so a genuine native error still reaches the user. ``EDGECNN_DEBUG=1`` passes
everything through untouched.

That capture is only for blocks that load no delegate: a process that crashes inside the block would
lose what it wrote. :func:`quiet_cpu_interpreter` filters ``allocate_tensors()`` (where LiteRT prints its
XNNPACK banner) of interpreters created without delegates that way; an Edge TPU interpreter, whose
delegate may crash the process, goes through :func:`native_chatter_streamed` instead: a small separate
process filters fd 2 line by line as it is written, so whatever the library prints before it dies still
reaches the terminal (the banner used to appear on every ``--device edgetpu`` run and beside its errors).
:func:`decoder_chatter_filtered` covers only an image decode.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
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


# The filter process of native_chatter_streamed: copies stdin to stdout line by line, without the lines
# argv[1] (a regular expression) matches; flushes each line, so nothing waits in it when the parent dies.
_STREAM_FILTER = """
import re, sys
chatter = re.compile(sys.argv[1])
out = sys.stdout.buffer
for raw in sys.stdin.buffer:
    if not chatter.match(raw.decode("utf-8", "replace")):
        out.write(raw)
        out.flush()
"""


@contextlib.contextmanager
def native_chatter_streamed(pattern: re.Pattern[str] = CHATTER) -> Iterator[None]:
    """Filter fd 2 for the block through a separate process, so a crash inside it loses nothing.

    What native code writes goes through a pipe to a tiny Python process that passes every line but the
    ``pattern`` ones straight on to the real stderr. If this process dies in the block (a delegate's
    segfault), the filter reads to the end of the pipe and forwards all of it. Costs a process start
    (tens of ms), so it is for blocks that load a delegate; :func:`native_chatter_filtered` for the rest.
    """
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _STREAM_FILTER, pattern.pattern],
            stdin=subprocess.PIPE,
            stdout=saved,
            stderr=saved,
        )
    except OSError:  # no process to spare: unfiltered is better than nothing
        os.close(saved)
        yield
        return
    assert proc.stdin is not None
    os.dup2(proc.stdin.fileno(), 2)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        proc.stdin.close()  # the filter sees the end of its input, forwards the rest and exits
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a child of the block still holds the pipe open
            proc.kill()
            proc.wait()


def decoder_chatter_filtered() -> contextlib.AbstractContextManager[None]:
    """For one image decode: libpng/libjpeg/OpenCV lines about a damaged file stay out of the terminal."""
    return native_chatter_filtered(DECODER_CHATTER)


def quiet_cpu_interpreter(interpreter_class: Any) -> Any:
    """``interpreter_class`` whose ``allocate_tensors()`` hides LiteRT's "Created ... XNNPACK delegate" banner.

    The banner is printed by the first ``allocate_tensors()`` (not the constructor), also when a delegate
    takes part of the graph (XNNPACK gets the rest). Without ``experimental_delegates`` the allocation is
    captured in-process (:func:`native_chatter_filtered`); with a delegate (the Edge TPU), which could crash
    the process mid-allocation, it is filtered by a separate process (:func:`native_chatter_streamed`) so a
    crash loses nothing.
    """

    class QuietInterpreter(interpreter_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._edgecnn_delegates = bool(kwargs.get("experimental_delegates"))
            super().__init__(*args, **kwargs)

        def allocate_tensors(self) -> Any:
            quiet = native_chatter_streamed if self._edgecnn_delegates else native_chatter_filtered
            with quiet():
                return super().allocate_tensors()

    QuietInterpreter.__name__ = QuietInterpreter.__qualname__ = interpreter_class.__name__
    QuietInterpreter.__module__ = interpreter_class.__module__
    return QuietInterpreter
