"""What the run loop does with one frame: infer, count, publish, output, account, tell systemd.

Split out of :class:`~edgecnn.run.pipeline.Pipeline` so that the loop itself only decides *whether* there
is a frame (see :mod:`edgecnn.run.reconnect`) and *when* to stop; this module never branches on the task or
the backend (the model's decoder and the sinks do).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgecnn.devices.sources import FrameSource
from edgecnn.devices.sources.base import Frame
from edgecnn.errors import InvalidResult
from edgecnn.model import Inference, Model
from edgecnn.run.live import LiveState
from edgecnn.run.notify import Notifier
from edgecnn.run.options import RunOptions
from edgecnn.run.outputs import OutputClosed, ResultFilter, ResultSink
from edgecnn.run.results import FrameResult
from edgecnn.run.stats import RunStats
from edgecnn.sanity import INVALID_STREAK

if TYPE_CHECKING:
    from edgecnn.run.metrics import RunMetrics
    from edgecnn.track.stage import TrackStage

log = logging.getLogger("edgecnn.run")

STATUS_EVERY_S = 10.0

# A stage that sees every processed frame with its result and may annotate the result (the camera's name,
# the clip it starts): edgecnn.run.clips.ClipRecorder.tap. Called on the inference thread: must be quick.
FrameTap = Callable[[np.ndarray, FrameResult], FrameResult]


class FrameHandler:
    """Handles each frame of one run; :meth:`handle` returns why the run must stop, or ``None``."""

    def __init__(
        self,
        opts: RunOptions,
        *,
        source: FrameSource,
        model: Model,
        sinks: list[ResultSink],
        stats: RunStats,
        notifier: Notifier,
        metrics: RunMetrics | None,
        live: LiveState | None,
        clock: Callable[[], float],
        taps: list[FrameTap] | None = None,
        tracking: TrackStage | None = None,
    ) -> None:
        self.opts, self.source, self.model, self.sinks = opts, source, model, sinks
        self.taps = taps or []
        self.tracking = tracking
        self.stats, self.notifier, self.metrics, self.live, self.clock = stats, notifier, metrics, live, clock
        self.result_filter = ResultFilter(
            every=opts.every, min_score=opts.min_score, on_change=opts.on_change
        )
        self.last_watchdog = self.last_status = 0.0
        self.invalid_streak = 0
        self.last_invalid: str | None = None  # the message only: a traceback would hold the frame
        self._logged: set[str] = set()

    def handle(self, frame: Frame, wait_start: float) -> tuple[float, str | None]:
        """Run ``frame`` through every step; return ``clock()`` after its outputs and the stop reason."""
        t_got = time.perf_counter()
        try:
            pred = self.model.process(frame.image)
        except InvalidResult as exc:
            self._invalid(frame, exc)
            return self.clock(), None
        self.invalid_streak = 0
        result = self._result(frame, pred, wait_start, t_got)
        for tap in self.taps:
            result = tap(frame.image, result)
        self._count_dropped()
        if self.live is not None:
            self.live.publish(frame.image, result)
        if self.metrics is not None:
            self.metrics.observe(result)
        output_closed = self._emit(result)
        now = self.clock()
        self._account(now, result, pred, t_got)
        self._notify(now, result.n)
        if output_closed:
            return now, "output closed"
        if self.opts.max_frames is not None and result.n >= self.opts.max_frames:
            return now, "max-frames"
        return now, None

    def _invalid(self, frame: Frame, exc: InvalidResult) -> None:
        """A frame whose result cannot be right: dropped and counted (the summary's ``invalid``, the
        ``edgecnn_frames_invalid`` metric), logged once per kind of problem; :data:`INVALID_STREAK` of them
        in a row is the model, not the frame: the run stops with the error."""
        self.stats.invalid += 1
        self.invalid_streak += 1
        self.last_invalid = str(exc)
        if self.metrics is not None:
            self.metrics.invalid.inc()
        if self.invalid_streak >= INVALID_STREAK:
            raise InvalidResult(
                f"{exc} ({self.invalid_streak} frames in a row gave results that cannot be right)"
            )
        kind = str(exc).split(":")[0]
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("dropped frame %s, its result cannot be right: %s", frame.index, exc)
        else:
            log.debug("dropped frame %s: %s", frame.index, exc)

    def check_some_valid(self) -> None:
        """At the end of a run: frames that all came out invalid mean a broken model, as in predict."""
        if self.stats.frames == 0 and self.last_invalid is not None:
            raise InvalidResult(
                f"{self.last_invalid} (all {self.stats.invalid} frames gave results that cannot be right)"
            )

    def _result(self, frame: Frame, pred: Inference, wait_start: float, t_got: float) -> FrameResult:
        output, track_ms = pred.result, None
        if self.tracking is not None:
            step = self.tracking.apply(
                pred.result,
                size=(frame.image.shape[1], frame.image.shape[0]),
                time_s=track_time(self.source, frame),
                timestamp=frame.timestamp,
                frame=frame.index,
                image=frame.image,
            )
            output, track_ms = step.output, step.ms
        t_done = time.perf_counter()
        return FrameResult(
            n=self.stats.frames + 1,
            frame=frame.index,
            timestamp=frame.timestamp,
            output=output,
            track_ms=track_ms,
            capture_wait_ms=(t_got - wait_start) * 1e3,
            preprocess_ms=pred.preprocess_ms,
            inference_ms=pred.inference_ms,
            total_ms=(t_done - wait_start) * 1e3,
            age_ms=(t_done - frame.captured) * 1e3,
            postprocess_ms=pred.postprocess_ms,
            file=frame.origin,
        )

    def _count_dropped(self) -> None:
        """Frames a live source dropped since the last result (it keeps only the newest)."""
        stats = self.stats
        dropped = getattr(self.source, "dropped", 0)
        if dropped != stats.dropped:
            if self.metrics is not None:
                self.metrics.dropped.inc(max(0, dropped - stats.dropped))
            stats.dropped = dropped
        if self.live is not None:
            self.live.dropped = dropped

    def _emit(self, result: FrameResult) -> bool:
        """Hand an accepted result to every sink; True when an output's reader went away (stop cleanly)."""
        if not self.result_filter.accept(result):
            return False
        try:
            for sink in self.sinks:
                sink.emit(result)
        except OutputClosed as closed:
            log.debug("%s was closed by its reader; stopping", closed)
            return True
        return False

    def _account(self, now: float, result: FrameResult, pred: Inference, t_got: float) -> None:
        self.stats.add(
            now,
            wait_ms=result.capture_wait_ms,
            preprocess_ms=pred.preprocess_ms,
            inference_ms=pred.inference_ms,
            total_ms=result.total_ms,
            busy_ms=(time.perf_counter() - t_got) * 1e3,
            age_ms=result.age_ms,
            postprocess_ms=pred.postprocess_ms,
            track_ms=result.track_ms,
        )

    def _notify(self, now: float, n: int) -> None:
        """systemd: READY after the first result, the watchdog ping, a status line every 10 s."""
        notifier, stats = self.notifier, self.stats
        if n == 1:
            notifier.ready(f"{self.model.decoder.verb} {self.source.name}")
            self.last_status = now
        watchdog_every = notifier.watchdog_interval
        if watchdog_every is not None and now - self.last_watchdog >= watchdog_every:
            notifier.watchdog()
            self.last_watchdog = now
        if notifier.enabled and now - self.last_status >= STATUS_EVERY_S:
            notifier.status(
                f"{stats.fps():.1f} fps, {n} frames, {stats.dropped} dropped, {stats.reconnects} reconnects"
            )
            self.last_status = now


def track_time(source: FrameSource, frame: Frame) -> float:
    """The clock tracking measures motion, buffers and dwell with: a file's own time (frame number over its
    frame rate) when it is read as fast as it decodes, else the capture time. A video analysed at 200 fps
    still moves at its recorded speed, so its tracks and dwell times are those of the scene."""
    fps = getattr(source, "fps", None)
    if not source.live and isinstance(fps, (int, float)) and fps > 0:
        return frame.index / float(fps)
    return frame.timestamp
