"""One classified frame, as every output (lines, JSONL, /latest, MQTT) sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecnn.adapters import Class


@dataclass(frozen=True)
class FrameResult:
    n: int  # 1-based count of classified frames in this run
    frame: int  # the frame's index in its source (file frame number; gaps = dropped live frames)
    timestamp: float  # wall clock when the frame was captured (Unix seconds)
    classes: list[Class]
    capture_wait_ms: float  # time the pipeline waited for this frame
    preprocess_ms: float
    inference_ms: float
    total_ms: float  # wait + preprocess + inference + bookkeeping for this frame
    age_ms: float  # capture to result: the latency a viewer of a live source sees

    @property
    def top(self) -> Class:
        return self.classes[0]

    def summary(self) -> str:
        """One line a person reads (the preview page shows it): top label and score, e.g. ``9 0.957``."""
        return f"{self.top.label} {self.top.score:.3f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": round(self.timestamp, 6),
            "n": self.n,
            "frame": self.frame,
            "classes": [{"id": c.id, "label": c.label, "score": round(c.score, 6)} for c in self.classes],
            "latency_ms": {
                "capture_wait": round(self.capture_wait_ms, 3),
                "preprocess": round(self.preprocess_ms, 3),
                "inference": round(self.inference_ms, 3),
                "total": round(self.total_ms, 3),
                "age": round(self.age_ms, 3),
            },
        }
