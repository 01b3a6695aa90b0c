"""The ``edgecnn run`` loop: frames in, task results (classes, objects) out, observable and restartable.

Capture runs in the source's own thread (see ``edgecnn.devices.sources``), so decoding the next frame
overlaps inference on this one. This loop owns everything else: the reconnect policy (capped exponential
backoff when ``reconnect`` is on, a one-line error otherwise), the stall detector (no frame for
``stall_timeout`` seconds counts as a lost source, so nothing ever hangs silently), outputs, the HTTP
endpoint's state, systemd notifications, and the summary. Stopping (``stop_event``, set by SIGTERM/SIGINT
in the CLI) is checked between frames: the frame in flight is finished, outputs are flushed, and the
summary is returned.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgecnn.devices.sources import FrameSource, SourceEnded, open_source, parse_source
from edgecnn.errors import SourceError
from edgecnn.model import Model, open_model
from edgecnn.run.config import option_error, parse_serve, serve_access, validate_run_options
from edgecnn.run.handler import FrameHandler
from edgecnn.run.live import LiveState
from edgecnn.run.notify import Notifier
from edgecnn.run.options import RunOptions
from edgecnn.run.outputs import ResultSink, build_sinks
from edgecnn.run.reconnect import SourceLink
from edgecnn.run.stats import RunStats, RunSummary
from edgecnn.tasks import DecodeOptions

if TYPE_CHECKING:
    from edgecnn.run.clips import ClipRecorder
    from edgecnn.run.handler import FrameTap
    from edgecnn.run.metrics import RunMetrics
    from edgecnn.run.mqtt import MqttSink
    from edgecnn.run.server import RunServer, ServerLimits
    from edgecnn.track.stage import EventListener, TrackStage

log = logging.getLogger("edgecnn.run")

READ_SLICE_S = 0.1  # longest wait for a frame before re-checking stop, deadline and stall


@dataclass
class _Outputs:
    """What a run started besides its sinks, so that :meth:`Pipeline._finish` stops exactly that."""

    mqtt: MqttSink | None = None
    metrics: RunMetrics | None = None
    server: RunServer | None = None
    clips: ClipRecorder | None = None


class Pipeline:
    """One run. Build it, then call :meth:`run` (blocking); :meth:`stop` or ``stop_event`` ends it.

    Injection points for tests and embedding: ``source`` (any :class:`FrameSource`), ``model``
    (an opened model), ``sinks`` (added to the ones ``options`` ask for), ``clock`` (monotonic seconds for
    duration, stall and fps), ``env`` (for ``NOTIFY_SOCKET``/``WATCHDOG_USEC``). When ``options.serve`` is
    set, :attr:`serving` is set once the HTTP endpoint listens and :attr:`server_address` is its address.
    """

    def __init__(
        self,
        options: RunOptions,
        *,
        source: FrameSource | None = None,
        model: Model | None = None,
        sinks: Sequence[ResultSink] = (),
        clock: Callable[[], float] = time.monotonic,
        stop_event: threading.Event | None = None,
        env: Mapping[str, str] | None = None,
        server_limits: ServerLimits | None = None,
        taps: Sequence[FrameTap] = (),
        live: LiveState | None = None,
        metrics: RunMetrics | None = None,
        camera: str | None = None,
        clips: ClipRecorder | None = None,
        track_listeners: Sequence[EventListener] = (),
    ) -> None:
        # taps, live, metrics: a camera of a multi-camera run (edgecnn.run.cameras), whose HTTP endpoint,
        # metrics registry and clips belong to the run: this pipeline publishes to them, starts no server.
        # clips: that camera's recorder (the run closes it); track_listeners: the run's events file.
        self._clips = clips
        self._track_listeners = list(track_listeners)
        self._taps = list(taps)
        self._shared_live, self._shared_metrics = live, metrics
        self.camera = camera
        self.options = options
        self._server_limits = server_limits
        self.clock = clock
        self.stop_event = stop_event or threading.Event()
        self.serving = threading.Event()
        self.server_address: tuple[str, int] | None = None
        self.live: LiveState | None = None
        self.tracking: TrackStage | None = None  # set by run() unless --no-track
        self._source = source
        self._model = model
        self._extra_sinks = list(sinks)
        self._env = env

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> RunSummary:
        opts = self.options
        validate_run_options(opts, check_model=self._model is None, check_source=self._source is None)
        model = self._open_model()
        model_name = Path(model.path).name if model.path else str(opts.model)
        source = self._open_source()
        log.info(
            "%s: %s with %s on %s (%s)",
            model.task,
            source.name,
            model_name,
            model.device,
            model.runtime.describe(),
        )
        from edgecnn.track.outputs import close_all, open_tracking  # tracking, lines, zones: edgecnn.track

        self.tracking, track_outputs = open_tracking(opts, self.stop_event)  # events file, snapshots
        if self.tracking is not None:
            self.tracking.camera = self.camera
            self.tracking.listeners.extend(self._track_listeners)
        try:
            sinks: list[ResultSink] = [*build_sinks(opts, self.stop_event), *self._extra_sinks]
        except BaseException:
            close_all(track_outputs)
            raise
        sinks += track_outputs  # closed with the sinks
        stats = RunStats(self.clock())  # --duration and "first result after" count from here, model loaded
        notifier = Notifier(self._env)
        outputs = _Outputs()
        stopped = "error"
        try:
            self._start_clips(outputs)
            self._start_outputs(outputs, sinks, source, model, model_name)
            stopped = self._loop(source, model, sinks, stats, notifier, outputs.metrics)
        finally:
            summary = self._finish(outputs, sinks, source, model, model_name, stats, notifier, stopped)
        return summary

    def _open_model(self) -> Model:
        opts = self.options
        crop = None if opts.crop in (None, "none") else opts.crop
        return self._model or open_model(
            opts.model,  # type: ignore[arg-type]  # validated: a model path is set
            device=opts.device,
            threads=opts.threads,
            labels=opts.labels,
            crop=crop,
            decode=decode_options(opts),
        )

    def _open_source(self) -> FrameSource:
        """The injected source, or the one ``options`` name (not opened yet: the loop opens it)."""
        if self._source is not None:
            return self._source
        opts = self.options
        spec = parse_source(opts.source, camera=opts.camera)
        return open_source(
            spec,
            width=opts.width,
            height=opts.height,
            fps=opts.fps,
            realtime=opts.realtime,
            loop=opts.loop,
        )

    def _start_outputs(
        self,
        outputs: _Outputs,
        sinks: list[ResultSink],
        source: FrameSource,
        model: Model,
        model_name: str,
    ) -> None:
        """MQTT (connects in the background) and, with ``serve``, the live state, metrics and HTTP server."""
        opts = self.options
        if opts.mqtt:  # imported only for MQTT: a run without it does not pay for the module
            from edgecnn.run.mqtt import open_mqtt_sink

            outputs.mqtt = open_mqtt_sink(opts, lambda key, problem: option_error(opts, key, problem))
        if outputs.mqtt is not None:  # connects in the background: a broker that is down delays nothing
            sinks.append(outputs.mqtt)
            if self.tracking is not None:  # PREFIX/events, retained PREFIX/counts, Home Assistant discovery
                from edgecnn.track.outputs import attach_mqtt

                attach_mqtt(self.tracking, outputs.mqtt)
        if self._shared_live is not None:  # a camera of a multi-camera run: the run serves
            self.live, outputs.metrics = self._shared_live, self._shared_metrics
            self._watch_tracking(outputs.metrics)
            return
        if opts.serve is None:
            return
        from edgecnn.run.metrics import RunMetrics
        from edgecnn.run.server import RunServer

        self.live = LiveState(
            source=source.name,
            stall_timeout=opts.stall_timeout,
            clock=self.clock,
            model=model_name,
            device=model.device,
        )
        metrics = outputs.metrics = RunMetrics(
            model=model_name, device=model.device, source=source.name, fps=self.live.fps
        )
        host, port = parse_serve(opts.serve)
        if outputs.mqtt is not None:
            metrics.watch_mqtt(outputs.mqtt.counts)
        store = None
        if outputs.clips is not None:
            from edgecnn.run.clips import ClipCollector

            recorder = outputs.clips
            store = recorder.store
            metrics.registry.register(ClipCollector([recorder], store))
            self.live.health_extras["clips"] = recorder.health
        self._watch_tracking(metrics)
        server = outputs.server = RunServer(
            host, port, self.live, metrics, access=serve_access(opts), limits=self._server_limits, clips=store
        )
        server.start()
        self.server_address = server.address
        log.info("serving %s  (/healthz /latest /events /metrics /stream.mjpg)", server.url)
        self.serving.set()

    def _watch_tracking(self, metrics: RunMetrics | None) -> None:
        """The track stage's counts in ``/metrics`` and its last events in ``/events``."""
        if self.tracking is None or self.live is None:
            return
        if metrics is not None:
            metrics.watch_tracking(self.tracking)  # crossings, zone occupancy, tracks per label
        self.tracking.listeners.append(self.live)  # /events: the last events

    def _start_clips(self, outputs: _Outputs) -> None:
        """Clips of this camera: the run's recorder for a camera of a multi-camera run, else with
        ``--clips`` one of its own; its frames tapped from the loop. With lines or zones, their events
        (cross, enter, dwell) start the clips (:class:`edgecnn.run.clips.EventClips`)."""
        recorder = self._clips
        if recorder is None:
            from edgecnn.run.clips import ClipSettings

            settings = ClipSettings.from_options(self.options)
            if settings is None:
                return
            from edgecnn.run.clips import ClipRecorder, ClipStore

            store = ClipStore(settings)
            store.open()
            recorder = outputs.clips = ClipRecorder("", settings, store)
        self._taps.append(recorder.tap)
        if self.tracking is not None and not self.tracking.scene.empty:
            from edgecnn.run.clips import EventClips

            self.tracking.clips = EventClips(recorder)

    def _finish(
        self,
        outputs: _Outputs,
        sinks: list[ResultSink],
        source: FrameSource,
        model: Model,
        model_name: str,
        stats: RunStats,
        notifier: Notifier,
        stopped: str,
    ) -> RunSummary:
        """Stop whatever started (also after an error): close the source, flush, summarise, close outputs."""
        notifier.stopping()
        try:
            source.close()
        except Exception as exc:  # closing must not hide why we stopped
            log.debug("closing source: %s", exc)
        end = self.clock()
        # Flush MQTT (bounded wait) before the summary so its counts are final.
        mqtt_counts = outputs.mqtt.finish().to_dict() if outputs.mqtt is not None else None
        summary = stats.summary(
            model=model_name,
            device=model.device,
            source=source.name,
            end=end,
            stopped=stopped,
            mqtt=mqtt_counts,
        )
        if self.camera is not None:
            summary = dataclasses.replace(summary, camera=self.camera)
        shown = summary if (stopped != "error" or stats.frames or stats.reconnects) else None
        if outputs.clips is not None:
            outputs.clips.close()
        if self.live is not None and self._shared_live is None:
            self.live.close()
        for sink in sinks:
            try:
                sink.close(shown)
            except Exception as exc:
                log.warning("closing output %s failed: %s", type(sink).__name__, exc)
        if outputs.server is not None:
            outputs.server.stop()
        notifier.close()
        return summary

    def _loop(
        self,
        source: FrameSource,
        model: Model,
        sinks: list[ResultSink],
        stats: RunStats,
        notifier: Notifier,
        metrics: RunMetrics | None,
    ) -> str:
        """Open, read, infer, output until a stop condition; return why it stopped.

        The source's open/lost/stalled state and its backoff live in :class:`SourceLink`; what happens to a
        frame in :class:`FrameHandler`. This loop only orders them and checks the stop conditions.
        """
        opts = self.options
        clock, stop = self.clock, self.stop_event
        deadline = None if opts.duration is None else stats.start + opts.duration
        handler = FrameHandler(
            opts,
            source=source,
            model=model,
            sinks=sinks,
            stats=stats,
            notifier=notifier,
            metrics=metrics,
            live=self.live,
            clock=clock,
            taps=self._taps,
            tracking=self.tracking,
        )
        link = SourceLink(
            source, opts, stats, notifier, metrics, self.live, clock, stop, deadline, last_seen=clock()
        )
        link.wait_start = time.perf_counter()
        stopped = self._frames(source, link, handler, stop, deadline)
        if stopped != "signal":
            handler.check_some_valid()
        return stopped

    def _frames(
        self,
        source: FrameSource,
        link: SourceLink,
        handler: FrameHandler,
        stop: threading.Event,
        deadline: float | None,
    ) -> str:
        clock = self.clock
        while True:
            if stop.is_set():
                return "signal"
            if deadline is not None and clock() >= deadline:
                return "duration"
            if not link.connected:
                link.connect()
                continue
            try:
                frame = source.read(READ_SLICE_S)
            except SourceEnded:
                return "end of source"
            except SourceError as exc:
                link.lost(exc)
                continue
            if frame is None:
                link.check_stall()
                continue
            link.got_frame()
            link.last_seen, stopped = handler.handle(frame, link.wait_start)
            if stopped is not None:
                return stopped
            link.wait_start = time.perf_counter()


def decode_options(opts: RunOptions) -> DecodeOptions:
    """The task options of a run (:mod:`edgecnn.tasks.options`): ``--top-k`` for classifiers;
    ``--object-threshold``, ``--max-detections``, ``--classes``, ``--iou``, ``--agnostic`` for detectors.
    (``--min-score``, the output filter, is the result filter's: :class:`edgecnn.run.outputs.ResultFilter`.)

    With tracking on, the threshold is ``min(--object-threshold, --track-low-score)``: ByteTrack's second
    stage needs the low-score detections the user's threshold drops (a half-hidden object), and the track
    stage then outputs only those a track matched (:attr:`edgecnn.track.stage.TrackStage.publish_threshold`).
    It is lowered for every model, and only decoders whose results carry boxes read it (detectors, YOLO
    pose and seg, MoveNet: each result implements :class:`edgecnn.tasks.Keepable`); a classifier (top-k)
    and a class-map segmentation never read ``object_threshold``, so their results do not change. NMS keeps
    a box by the better boxes only, so the objects over the threshold are the same ones either way."""
    options = DecodeOptions.from_values(opts)
    if opts.track and opts.track_low_score < options.object_threshold:
        options = dataclasses.replace(options, object_threshold=opts.track_low_score)
    return options


def run(
    options: RunOptions,
    *,
    source: FrameSource | None = None,
    model: Model | None = None,
    sinks: Sequence[ResultSink] = (),
    clock: Callable[[], float] = time.monotonic,
    stop_event: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
) -> RunSummary:
    """Run the model on frames from ``options``' source (or ``source``) until it ends, a limit is hit, or
    ``stop_event`` is set; return the summary. Raises SourceError when the source cannot be opened or is
    lost and ``options.reconnect`` is off, and the model/usage errors of :func:`open_model`.
    """
    return Pipeline(
        options,
        source=source,
        model=model,
        sinks=sinks,
        clock=clock,
        stop_event=stop_event,
        env=env,
    ).run()
