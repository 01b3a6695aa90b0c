"""Whether a run's source is open, and what to do when it fails: the reconnect half of the run loop.

A source that fails to open, errors or stalls either ends the run (no ``--reconnect``: the SourceError
propagates) or is retried with capped exponential backoff. The backoff grows with consecutive failures and
resets on the first frame; a repeated failure logs one short line instead of the full explanation again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecnn.devices.sources import FrameSource
from edgecnn.errors import SourceError, one_line
from edgecnn.run.live import LiveState
from edgecnn.run.notify import Notifier
from edgecnn.run.options import RunOptions
from edgecnn.run.stats import RunStats

if TYPE_CHECKING:
    from edgecnn.run.metrics import RunMetrics

log = logging.getLogger("edgecnn.run")  # the run loop's logger, as in edgecnn.run.pipeline


@dataclass
class SourceLink:
    """The reconnect state of one source; the loop asks :meth:`connect` until it is :attr:`connected`."""

    source: FrameSource
    opts: RunOptions
    stats: RunStats
    notifier: Notifier
    metrics: RunMetrics | None
    live: LiveState | None
    clock: Callable[[], float]
    stop: threading.Event
    deadline: float | None
    connected: bool = False
    failures: int = 0  # consecutive failed opens/losses: drives the backoff
    last_message: str = ""
    last_seen: float = 0.0  # clock() of the last frame (or of the open): the stall timer
    wait_start: float = 0.0  # perf_counter() since which the loop waits for the next frame

    def connect(self) -> None:
        """Open the source (counting a reconnect after a failure); on failure, back off or raise."""
        if self.failures:
            self.stats.reconnects += 1
            if self.metrics is not None:
                self.metrics.reconnects.inc()
            if self.live is not None:
                self.live.reconnects = self.stats.reconnects
        try:
            self.source.open()
        except SourceError as exc:
            self.failed(exc)
            return
        self.connected = True
        if self.failures:
            log.info("%s is back after %d attempt(s)", self.source.name, self.failures)
        if self.metrics is not None:
            self.metrics.source_up.set(1)
        self.last_seen = self.clock()
        self.wait_start = time.perf_counter()

    def lost(self, exc: SourceError) -> None:
        """An open source errored or stalled: close it, then back off (or raise without --reconnect)."""
        self.source.close()
        self.connected = False
        self.failed(exc)

    def check_stall(self) -> None:
        """No frame this slice: a source silent for longer than ``stall_timeout`` counts as lost."""
        timeout = self.opts.stall_timeout
        if self.clock() - self.last_seen > timeout:
            self.lost(
                SourceError(
                    f"No frame from {self.source.name} for {timeout:g} s: the source stalled "
                    "(camera hung, stream stuck)."
                )
            )

    def got_frame(self) -> None:
        """A frame arrived: the next failure starts the backoff from the beginning."""
        self.failures = 0
        self.last_message = ""

    def failed(self, exc: SourceError) -> None:
        """Without ``--reconnect`` re-raise ``exc``; else log, report and wait out the backoff."""
        opts = self.opts
        if self.metrics is not None:
            self.metrics.source_up.set(0)
        if not opts.reconnect:
            raise exc
        self.failures += 1
        delay = min(opts.backoff_max, opts.backoff_initial * 2 ** (self.failures - 1))
        if self.deadline is not None:
            delay = max(0.0, min(delay, self.deadline - self.clock()))
        message = one_line(exc)
        name = self.source.name
        if message == self.last_message:  # the full explanation was logged on the first attempt
            log.warning("%s still unavailable; retrying in %.1f s (attempt %d).", name, delay, self.failures)
        else:
            log.warning("%s Retrying in %.1f s (attempt %d, --reconnect).", message, delay, self.failures)
        self.last_message = message
        if self.live is not None:
            self.live.set_status("reconnecting", message)
        self.notifier.status(f"reconnecting to {name} (attempt {self.failures})")
        self.stop.wait(delay)
