"""One processed frame, as every output (lines, JSONL, /latest, MQTT) sees it, whatever the task.

The task's result (:class:`edgecnn.tasks.TaskResult`) carries its own JSON keys (``classes`` or
``objects``), score, change key and one-line summary; this record adds where the frame came from and how
long each stage took. A still read from an image folder or image file names its ``file``: such results are
one per image, not samples of a stream.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from edgecnn.adapters import Class
from edgecnn.tasks import TaskResult


@dataclass(frozen=True)
class FrameResult:
    n: int  # 1-based count of processed frames in this run
    frame: int  # the frame's index in its source (file frame number; gaps = dropped live frames)
    timestamp: float  # wall clock when the frame was captured (Unix seconds)
    output: TaskResult  # the task's result
    capture_wait_ms: float = 0.0  # time the pipeline waited for this frame
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0  # wait + preprocess + inference + postprocess + bookkeeping for this frame
    age_ms: float = 0.0  # capture to result: the latency a viewer of a live source sees
    postprocess_ms: float = 0.0  # outputs -> result (top-k; NMS and box mapping for detectors)
    file: str | None = None  # the image file this frame was read from; None for cameras, streams, videos
    camera: str | None = None  # the camera's name in a multi-camera run ([[cameras]]); None: the only one
    clip: dict[str, str] | None = None  # the event clip this frame starts (video, snapshot: under --clips)
    track_ms: float | None = None  # tracking, lines and zones (edgecnn.track); None when nothing was tracked

    @property
    def task(self) -> str:
        return self.output.task

    @property
    def top(self) -> Any:
        return self.output.top

    @property
    def classes(self) -> list[Class]:
        """The classes of a classification (empty for other tasks)."""
        return list(getattr(self.output, "classes", []))

    @property
    def score(self) -> float:
        return self.output.score

    @property
    def key(self) -> Hashable:
        return self.output.key

    def summary(self) -> str:
        """One line of human text for this frame (the preview page shows it)."""
        return self.output.summary()

    def to_dict(self) -> dict[str, Any]:
        """The JSONL/``/latest``/MQTT record; ``file`` only for stills (a stream's records stay as they were)."""
        return {
            **({"camera": self.camera} if self.camera is not None else {}),
            "timestamp": round(self.timestamp, 6),
            "n": self.n,
            "frame": self.frame,
            **({"file": self.file} if self.file is not None else {}),
            "task": self.output.task,
            **self.output.to_json(),
            "summary": self.output.summary(),
            "latency_ms": {
                "capture_wait": round(self.capture_wait_ms, 3),
                "preprocess": round(self.preprocess_ms, 3),
                "inference": round(self.inference_ms, 3),
                "postprocess": round(self.postprocess_ms, 3),
                **({"track": round(self.track_ms, 3)} if self.track_ms is not None else {}),
                "total": round(self.total_ms, 3),
                "age": round(self.age_ms, 3),
            },
            **({"clip": self.clip} if self.clip is not None else {}),
        }
