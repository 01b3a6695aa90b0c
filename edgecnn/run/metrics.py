"""Prometheus metrics of one run, in a registry of its own (never the process-global one).

A registry per run keeps tests and library callers that run several pipelines in one process from
colliding on metric names, and keeps Python's default process/GC collectors out of the scrape unless
asked for.

No ``*_created`` series: prometheus_client adds one per counter and histogram (the Unix time the series
began), which the text format turns into a gauge beside every counter; Prometheus finds counter resets
without it, and it doubles what a scrape carries. The switch is prometheus_client's and process-wide
(like ``PROMETHEUS_DISABLE_CREATED_SERIES=true``), so it is thrown where edgecnn's metrics are defined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from edgecnn import __version__
from edgecnn.run.results import FrameResult

if TYPE_CHECKING:
    from edgecnn.run.mqtt import MqttCounts
    from edgecnn.track.stage import TrackStage

# Seconds: from 0.25 ms (a tiny int8 model on a desktop) to 2 s (a big model on a Pi Zero).
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST

disable_created_metrics()  # see the module docstring


class RunMetrics:
    def __init__(self, *, model: str, device: str, source: str, fps: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("edgecnn_frames", "Frames processed (any task).", registry=r)
        self.dropped = Counter(
            "edgecnn_frames_dropped",
            "Frames the source dropped because inference was still busy.",
            registry=r,
        )
        self.invalid = Counter(
            "edgecnn_frames_invalid",
            "Frames dropped because the model's result could not be right (NaN, scores outside 0..1, ...).",
            registry=r,
        )
        self.reconnects = Counter(
            "edgecnn_reconnects", "Attempts to reopen a lost or unavailable source.", registry=r
        )
        self.inference = Histogram(
            "edgecnn_inference_seconds",
            "Time in infer(): set input, invoke, read output.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.frame_time = Histogram(
            "edgecnn_frame_seconds",
            "Pipeline time per frame: capture wait, preprocess, inference, outputs.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fps = Gauge("edgecnn_fps", "Processed frames per second over the last 5 s.", registry=r)
        self.fps.set_function(fps)
        self.source_up = Gauge(
            "edgecnn_source_up", "1 while the source is open and delivering frames.", registry=r
        )
        self.last_frame = Gauge(
            "edgecnn_last_frame_timestamp_seconds",
            "Unix time of the last processed frame's capture.",
            registry=r,
        )
        self.top_score = Gauge(
            "edgecnn_top_score",
            "Score of the last frame's result: its top class, or its best object (0 with none).",
            registry=r,
        )
        self.objects = Counter(
            "edgecnn_objects",
            "Things seen per label: each detection in each frame (an object seen in 30 frames counts 30; "
            "edgecnn_tracks_total counts distinct objects), or the top class of a classified frame.",
            ["label"],
            registry=r,
        )
        self.postprocess = Histogram(
            "edgecnn_postprocess_seconds",
            "Time decoding outputs into a result: top-k, or NMS and box mapping for detectors.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.track = Histogram(
            "edgecnn_track_seconds",
            "Time tracking objects and checking lines and zones, per frame with boxes.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        Info("edgecnn_run", "What this run runs: model, device, source, version.", registry=r).info(
            {"model": model, "device": device, "source": source, "version": __version__}
        )

    def observe(self, result: FrameResult) -> None:
        self.frames.inc()
        self.inference.observe(result.inference_ms / 1e3)
        self.frame_time.observe(result.total_ms / 1e3)
        self.postprocess.observe(result.postprocess_ms / 1e3)
        self.last_frame.set(result.timestamp)
        self.top_score.set(result.score)
        for label in result.output.labels():
            self.objects.labels(label).inc()
        if result.track_ms is not None:
            self.track.observe(result.track_ms / 1e3)

    def watch_tracking(self, stage: TrackStage) -> None:
        """Expose the track stage's counts (read at scrape time): crossings, zone occupancy, tracks."""
        self.registry.register(_TrackCollector(stage))

    def watch_mqtt(self, counts: Callable[[], MqttCounts]) -> None:
        """Expose the MQTT sink's counts (read at scrape time from its threads' own counters)."""
        self.registry.register(_MqttCollector(counts))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _MqttCollector(Collector):
    def __init__(self, counts: Callable[[], MqttCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        c = self._counts()
        yield CounterMetricFamily(
            "edgecnn_mqtt_published",
            "Results the MQTT broker acknowledged (QoS 1) or that were written to it (QoS 0).",
            value=c.published,
        )
        yield CounterMetricFamily(
            "edgecnn_mqtt_dropped",
            "Results lost: pushed out of the full queue while the broker was away, or unsent at exit.",
            value=c.dropped,
        )
        yield CounterMetricFamily(
            "edgecnn_mqtt_connects", "Connections made to the MQTT broker.", value=c.connects
        )
        yield GaugeMetricFamily(
            "edgecnn_mqtt_connected", "1 while connected to the MQTT broker.", value=int(c.connected)
        )
        yield GaugeMetricFamily("edgecnn_mqtt_queued", "Results waiting for the MQTT broker.", value=c.queued)


class _TrackCollector(Collector):
    """Tracking's counts, copied at scrape time (a dict copy is atomic under the GIL)."""

    def __init__(self, stage: TrackStage) -> None:
        self._stage = stage

    def collect(self) -> Iterator[Metric]:
        stage = self._stage
        crossings = CounterMetricFamily(
            "edgecnn_line_crossings",
            "Objects that crossed a counting line, per line, direction and label.",
            labels=["line", "direction", "label"],
        )
        for (line, direction, label), n in sorted(dict(stage.scene.crossings).items()):
            crossings.add_metric([line, direction, label], n)
        yield crossings
        zones = GaugeMetricFamily(
            "edgecnn_zone_objects",
            'Objects inside a zone now, per zone and label (label "all": every label).',
            labels=["zone", "label"],
        )
        for (zone, label), n in sorted(dict(stage.scene.occupancy).items()):
            zones.add_metric([zone, label], n)
        yield zones
        tracks = CounterMetricFamily(
            "edgecnn_tracks", "Distinct objects followed (confirmed tracks), per label.", labels=["label"]
        )
        for label, n in sorted(dict(stage.tracks_total).items()):
            tracks.add_metric([label], n)
        yield tracks
