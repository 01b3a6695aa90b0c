"""Per-run statistics and the summary printed on exit (frames, fps, latency percentiles, drops, reconnects).

A service runs for weeks, so latencies are kept in a fixed-size uniform reservoir sample rather than a
growing list: percentiles are exact for runs shorter than the reservoir and a close estimate after.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RESERVOIR_SIZE = 20_000


class Reservoir:
    """Uniform sample of at most ``size`` values (Algorithm R), seeded so runs are reproducible."""

    def __init__(self, size: int = RESERVOIR_SIZE, seed: int = 0) -> None:
        self.size = size
        self.count = 0
        self.total = 0.0
        self.values = array("d")
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.size:
                self.values[slot] = value

    def percentiles(self, qs: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
        if not self.values:
            return {f"p{q:g}": 0.0 for q in qs}
        found = np.percentile(np.frombuffer(self.values, dtype=np.float64), qs)
        return {f"p{q:g}": round(float(v), 3) for q, v in zip(qs, found, strict=True)}

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass(frozen=True)
class RunSummary:
    model: str
    device: str
    source: str
    frames: int
    dropped: int
    reconnects: int
    duration_s: float
    fps: float  # processed frames per second, first result to last
    first_frame_s: float | None  # run start to first processed frame
    latency_ms: dict[str, float]  # capture to result, p50/p90/p99
    inference_ms: dict[str, float]  # infer() alone: p50/p90/p99
    mean_ms: dict[str, float]  # mean per stage: capture_wait, preprocess, inference, postprocess, other
    stopped: str  # why the run ended: end of source, max-frames, duration, signal, output closed, error
    mqtt: dict[str, Any] | None = None  # with --mqtt: published, dropped, queued, connects, connected
    invalid: int = 0  # frames dropped because their result could not be right (edgecnn.sanity)
    camera: str | None = None  # the camera's name in a multi-camera run (edgecnn.run.cameras)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunStats:
    """Accumulates what :class:`RunSummary` reports; times come from the pipeline's clock."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.frames = 0
        self.dropped = 0
        self.invalid = 0
        self.reconnects = 0
        self.first_result: float | None = None
        self.last_result: float | None = None
        self.age = Reservoir()
        self.inference = Reservoir()
        self.wait_sum = 0.0
        self.preprocess_sum = 0.0
        self.postprocess_sum = 0.0
        self.other_sum = 0.0
        self.track_sum = 0.0
        self.tracked = 0  # frames that went through the track stage

    def add(
        self,
        now: float,
        *,
        wait_ms: float,
        preprocess_ms: float,
        inference_ms: float,
        total_ms: float,
        busy_ms: float,
        age_ms: float,
        postprocess_ms: float = 0.0,
        track_ms: float | None = None,
    ) -> None:
        """One processed frame. ``busy_ms``: time from having the frame to being ready for the next one
        (preprocess, inference, postprocess, outputs); what is not one of those stages is Python overhead."""
        self.frames += 1
        if self.first_result is None:
            self.first_result = now
        self.last_result = now
        self.age.add(age_ms)
        self.inference.add(inference_ms)
        self.wait_sum += wait_ms
        self.preprocess_sum += preprocess_ms
        self.postprocess_sum += postprocess_ms
        if track_ms is not None:
            self.track_sum += track_ms
            self.tracked += 1
        self.other_sum += max(
            0.0, busy_ms - preprocess_ms - inference_ms - postprocess_ms - (track_ms or 0.0)
        )

    def fps(self) -> float:
        if self.frames < 2 or self.first_result is None or self.last_result is None:
            return 0.0
        span = self.last_result - self.first_result
        return (self.frames - 1) / span if span > 0 else 0.0

    def summary(
        self,
        *,
        model: str,
        device: str,
        source: str,
        end: float,
        stopped: str,
        mqtt: dict[str, Any] | None = None,
    ) -> RunSummary:
        n = max(1, self.frames)
        return RunSummary(
            model=model,
            device=device,
            source=source,
            frames=self.frames,
            dropped=self.dropped,
            reconnects=self.reconnects,
            duration_s=round(end - self.start, 3),
            fps=round(self.fps(), 2),
            first_frame_s=None if self.first_result is None else round(self.first_result - self.start, 3),
            latency_ms=self.age.percentiles(),
            inference_ms=self.inference.percentiles(),
            mean_ms={
                "capture_wait": round(self.wait_sum / n, 3),
                "preprocess": round(self.preprocess_sum / n, 3),
                "inference": round(self.inference.mean, 3),
                "postprocess": round(self.postprocess_sum / n, 3),
                **({"track": round(self.track_sum / self.tracked, 3)} if self.tracked else {}),
                "other": round(self.other_sum / n, 3),
            },
            stopped=stopped,
            mqtt=mqtt,
            invalid=self.invalid,
        )


def format_summary(s: RunSummary) -> str:
    lat, inf = s.latency_ms, s.inference_ms
    first = "n/a" if s.first_frame_s is None else f"{s.first_frame_s:.2f} s"
    mqtt = []
    if s.mqtt is not None:
        m = s.mqtt
        mqtt.append(
            f"  mqtt: published {m['published']}  dropped {m['dropped']}  connects {m['connects']}"
            + ("" if m["connects"] else "  (never connected to the broker)")
        )
    named = f"camera {s.camera} " if s.camera else ""
    return "\n".join(
        [
            f"{named}summary: {s.frames} frames in {s.duration_s:.1f} s ({s.fps:.1f} fps) from {s.source}, "
            f"model {s.model} on {s.device}; stopped: {s.stopped}",
            f"  latency ms (capture to result)  p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f};  "
            f"inference p50 {inf['p50']:.2f}  p90 {inf['p90']:.2f}  p99 {inf['p99']:.2f}",
            f"  dropped {s.dropped}  reconnects {s.reconnects}  first result after {first}",
            *(
                [f"  dropped {s.invalid} invalid results (frames whose outputs cannot be right)"]
                if s.invalid
                else []
            ),
            *mqtt,
        ]
    )
