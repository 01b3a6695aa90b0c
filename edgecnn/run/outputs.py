"""Where results go: a list of sinks behind one small protocol, with one filter in front of them.

Built in: human-readable lines (a stream's are throttled, saying how many were not shown; stills and
``--on-change`` events are all printed) and JSON Lines. A new destination (the MQTT publisher of a
later issue) is one more class with ``emit``/``close`` added to the list by :func:`build_sinks` or passed
to :func:`edgecnn.run.pipeline.run` as ``sinks=``. ``/latest``, ``/metrics`` and the preview stream are
not sinks: they see every frame, unfiltered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from edgecnn.errors import OutputError
from edgecnn.run.options import RunOptions
from edgecnn.run.results import FrameResult
from edgecnn.run.stats import RunSummary, format_summary

log = logging.getLogger("edgecnn.run")
_STDOUT_LOCK = threading.Lock()


class OutputClosed(Exception):
    """The reader of an output went away (``edgecnn run --jsonl - | head``). Not an error: the run ends
    the way a signal ends it, with the summary on whatever stream is still open."""


class _Output:
    """A text stream results go to, flushed per write. The first failed write is reported and ends the
    output: a closed pipe as :class:`OutputClosed`, anything else (full disk, lost network share) as one
    line naming the output. Later writes, the summary included, are skipped."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self.stream, self.name = stream, name
        self.failed = False

    def write(self, text: str) -> None:
        if self.failed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.failed = True
            _silence(self.stream)
            raise OutputClosed(self.name) from None
        except OSError as exc:
            self.failed = True
            raise OutputError(
                f"Cannot write results to {self.name}: {exc.strerror or exc}. "
                "Free space or choose another output.",
                exc.errno,
            ) from exc


def _silence(stream: IO[str]) -> None:
    """Point a broken pipe's descriptor at /dev/null so Python's final flush of it does not print
    "Exception ignored ... BrokenPipeError" on exit (the recipe in Python's signal module docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


@runtime_checkable
class ResultSink(Protocol):
    """Receives the results that pass ``--every``/``--min-score``/``--on-change``.

    ``emit`` is called on the inference thread for each passing result: it must be quick (buffer or
    hand off to its own thread if it does I/O that can block); it raises :class:`OutputClosed` when its
    reader went away, which ends the run cleanly. ``close`` is called once on shutdown, with the run's
    summary (``None`` when the run failed before it started); it must flush.
    """

    def emit(self, result: FrameResult) -> None: ...

    def close(self, summary: RunSummary | None) -> None: ...


class ResultFilter:
    """``--every N`` (every Nth processed frame), then ``--min-score`` (the result's score: top class, best
    object), then ``--on-change`` (the result's key differs from the last one emitted: the top label, the
    set of labels present)."""

    _UNSET = object()

    def __init__(self, *, every: int = 1, min_score: float = 0.0, on_change: bool = False) -> None:
        self.every, self.min_score, self.on_change = every, min_score, on_change
        self._last_key: Hashable = self._UNSET

    def accept(self, result: FrameResult) -> bool:
        if self.every > 1 and result.n % self.every:
            return False
        if result.score < self.min_score:
            return False
        if self.on_change:
            key = result.key
            if key == self._last_key:
                return False
            self._last_key = key
        return True


def format_line(result: FrameResult, fps: float | None = None, skipped: int = 0) -> str:
    rate = f"  {fps:.1f} fps" if fps else ""
    more = f"  (+{skipped} not shown)" if skipped else ""
    where = Path(result.file).name if result.file is not None else f"frame {result.frame}"
    if result.camera is not None:
        where = f"{result.camera} {where}"
    return f"#{result.n} {where}: {result.output.line()}   infer {result.inference_ms:.2f} ms{rate}{more}"


def format_not_shown(count: int, interval: float) -> str:
    """The last human line of a throttled run: how many results the lines left out, and where they all are."""
    noun = "result" if count == 1 else "results"
    return (
        f"{count} {noun} not shown (printing at most {1 / interval:.3g} lines per second; "
        "--jsonl FILE records every result)"
    )


class HumanSink:
    """One line per result, the summary on close.

    A stream (camera, video, demo) is throttled to one line per ``interval`` seconds: a line says how many
    results before it were left out, and on close the last result left out is printed and then the total
    not shown. Some results are never left out: stills (a result naming its ``file``: one line per image)
    and, with ``every_result`` (``--on-change``: each result is a change the user asked to see), all.
    ``quiet`` keeps only the summary. Writes to ``stream`` (stdout, or stderr when JSONL goes to stdout).
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        interval: float = 0.5,
        quiet: bool = False,
        every_result: bool = False,
        clock=time.monotonic,
    ) -> None:
        self.stream, self.interval, self.quiet, self.clock = stream, interval, quiet, clock
        self.every_result = every_result
        self._last: float | None = None
        self._skipped = 0  # left out since the last line
        self.not_shown = 0  # left out in the whole run
        self._held: tuple[FrameResult, float] | None = None  # the newest result left out, and when
        self._first: float | None = None
        self._first_n = 0
        self._out = _Output(stream, "standard error" if stream is sys.stderr else "standard output")

    def emit(self, result: FrameResult) -> None:
        if self.quiet:
            return
        now = self.clock()
        throttled = not self.every_result and result.file is None and self.interval > 0
        if throttled and self._last is not None and now - self._last < self.interval:
            self._skipped += 1
            self.not_shown += 1
            self._held = (result, now)
            return
        self._write(result, now)

    def _write(self, result: FrameResult, now: float) -> None:
        if self._first is None:
            self._first, self._first_n = now, result.n
        # Processed frames per second since the first line (n counts frames, shown or not).
        fps = (result.n - self._first_n) / (now - self._first) if now > self._first else None
        self._out.write(format_line(result, fps, self._skipped) + "\n")
        self._last, self._skipped, self._held = now, 0, None

    def close(self, summary: RunSummary | None) -> None:
        with contextlib.suppress(OutputClosed):
            if self._held is not None:  # the stream's last result: the output ends with the final state
                result, received = self._held
                self._skipped -= 1
                self.not_shown -= 1
                self._write(result, received)
            if self.not_shown:
                self._out.write(format_not_shown(self.not_shown, self.interval) + "\n")
            self._out.write(format_summary(summary) + "\n" if summary else "")


class JsonlSink:
    """One JSON object per line, flushed per line so ``tail -f`` and log shippers see results at once.

    A file is opened for appending: a restarted service adds to its log instead of wiping it. The path
    goes through :func:`edgecnn.atomic.open_append` (FIFOs and devices as streams, nothing replaced).
    """

    def __init__(self, target: str, stop: threading.Event | None = None) -> None:
        self.target = target
        if target == "-":
            self.stream: IO[str] = sys.stdout
            self._owned = False
        else:
            from edgecnn.atomic import open_append

            # A regular file is appended to; a FIFO with no reader is refused at once (not waited for,
            # which would block before SIGTERM is handled); a device is written as a stream.
            # With ``stop`` (the run's stop event), a FIFO whose reader stalls cannot keep SIGTERM waiting.
            self.stream = open_append(Path(target).expanduser(), what="--jsonl results", stop=stop)
            self._owned = True
        self._out = _Output(self.stream, "standard output" if target == "-" else target)

    def emit(self, result: FrameResult) -> None:
        line = json.dumps(result.to_dict(), separators=(",", ":")) + "\n"
        if self._owned:
            self._out.write(line)
        else:  # standard output, which several cameras of one run may share: whole lines only
            with _STDOUT_LOCK:
                self._out.write(line)

    def close(self, summary: RunSummary | None) -> None:
        if (
            self._out.failed
        ):  # a write already failed and was reported: the buffered line cannot go out either
            if self._owned:
                with contextlib.suppress(OSError):
                    self.stream.close()
            return
        try:
            self.stream.flush()
        finally:
            if self._owned:
                self.stream.close()


def build_sinks(options: RunOptions, stop: threading.Event | None = None) -> list[ResultSink]:
    """The sinks ``options`` ask for: JSONL if ``jsonl``, and always the human lines/summary sink.
    ``stop`` is the run's stop event: output streams stop waiting for a stalled reader once it is set."""
    sinks: list[ResultSink] = []
    if options.jsonl is not None:
        sinks.append(JsonlSink(options.jsonl, stop))
    human_stream = sys.stderr if options.jsonl == "-" else sys.stdout
    sinks.append(
        HumanSink(
            human_stream,
            interval=options.human_interval,
            quiet=options.quiet,
            every_result=options.on_change,  # a change event is never left out
        )
    )
    return sinks
