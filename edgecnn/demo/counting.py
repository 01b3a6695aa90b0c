"""The demo's counting step: scripted shapes cross a line, ``edgecnn run`` tracks and counts them.

The scene is generated (nothing downloaded): :data:`SHAPES` move in straight lines across a 160x120 grey
frame, each crossing the vertical middle once, four left to right and two right to left. They are the
shapes, colours and sizes the bundled detector (``shapes_detector.tflite``, see
``shapes_detector.md`` beside it) was trained on, so it finds them in every frame and the count is
exactly the scripted one. The run is the real pipeline (:func:`edgecnn.run.pipeline.run`, what
``edgecnn run MODEL --source crossing.avi --line 0.5,0,0.5,1 --events crossing_events.jsonl`` does), with
tracking on as for any detector.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edgecnn.errors import EdgecnnError

DETECTOR = "shapes_detector.tflite"
WIDTH, HEIGHT = 160, 120  # the detector letterboxes it to 96x72: shapes of 28-30 px become 17-18 px
FPS = 10.0
SECONDS = 8.0
LINE = "0.5,0,0.5,1"  # drawn top to bottom: left to right is "out", right to left "in"
_COLOURS = {"square": (40, 40, 220), "circle": (40, 200, 40), "triangle": (220, 60, 40)}  # BGR


@dataclass(frozen=True)
class Shape:
    label: str  # square, circle or triangle
    size: int  # pixels
    start: tuple[float, float]  # top-left corner at t0
    speed: float  # pixels per second along x (negative: right to left)
    t0: float  # seconds into the video when it starts moving (off-frame until then)

    def corner(self, t: float) -> tuple[int, int]:
        return round(self.start[0] + self.speed * max(0.0, t - self.t0)), round(self.start[1])

    @property
    def direction(self) -> str:
        return "out" if self.speed > 0 else "in"


# Never two shapes of one label on one row at once, never two crossing the line in the same frame.
SHAPES = (
    Shape("square", 28, (-30, 8), 50, 0.0),
    Shape("triangle", 30, (-30, 46), 45, 0.6),
    Shape("square", 28, (-30, 84), 55, 1.2),
    Shape("circle", 30, (170, 10), -45, 2.4),
    Shape("triangle", 30, (170, 80), -50, 3.0),
    Shape("square", 28, (-30, 46), 50, 3.6),
)


@dataclass
class CountFigures:
    """What the counting step scripted, and what ``edgecnn run`` counted (from its events file)."""

    video: str
    frames: int
    shapes: int  # how many shapes cross the line
    expected: dict[str, int]  # crossings per direction, as scripted
    counted: dict[str, int]  # crossing events per direction, as written by edgecnn run
    tracks: int  # distinct track IDs in the results
    command: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.counted == self.expected


def detector_path() -> contextlib.AbstractContextManager[Path]:
    """The bundled shapes detector as a real file (``with detector_path() as model: ...``)."""
    return resources.as_file(resources.files("edgecnn.demo") / DETECTOR)


def frame_at(t: float) -> np.ndarray:
    """The scene at ``t`` seconds: a fixed noisy grey background and every shape where it is by then."""
    import cv2

    noise = np.random.default_rng(0).integers(90, 150, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image: np.ndarray = cv2.GaussianBlur(noise, (3, 3), 0)
    for s in SHAPES:
        x1, y1 = s.corner(t)
        x2, y2, size, colour = x1 + s.size, y1 + s.size, s.size, _COLOURS[s.label]
        if s.label == "square":
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
        elif s.label == "circle":
            cv2.circle(image, (x1 + size // 2, y1 + size // 2), size // 2, colour, -1, cv2.LINE_AA)
        else:
            pts = np.array([[x1 + size // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=np.int32)
            cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
    return image


def render_crossing_video(out: Path) -> Path:
    """``out/crossing.avi``: :data:`SECONDS` of the scene at :data:`FPS` (MJPG)."""
    from edgecnn.devices.sources.synthetic import write_video

    frames = (frame_at(i / FPS) for i in range(round(SECONDS * FPS)))
    return write_video(out / "crossing.avi", frames, fps=FPS)


def count_crossings(out: Path, *, stream: TextIO) -> CountFigures:
    """Render the scene, run it through ``edgecnn run`` with tracking and a line, read back the events.

    The run's own summary lines go to ``stream``.
    """
    from edgecnn.run.options import RunOptions
    from edgecnn.run.pipeline import run

    video = render_crossing_video(out)
    events_path, results_path = out / "crossing_events.jsonl", out / "crossing.jsonl"
    with detector_path() as model, contextlib.redirect_stdout(stream):
        run(
            RunOptions(
                model=model,
                source=str(video),
                lines=[LINE],
                events=events_path,
                jsonl=str(results_path),
                quiet=True,
            )
        )
    try:
        events = [json.loads(line) for line in events_path.read_text(encoding="utf-8").splitlines() if line]
        results = [json.loads(line) for line in results_path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        raise EdgecnnError(f"Cannot read what edgecnn run wrote to {out}: {exc}.") from exc
    crossings = Counter(e["direction"] for e in events if e["type"] == "cross")
    expected = Counter(s.direction for s in SHAPES)
    return CountFigures(
        video=str(video),
        frames=len(results),
        shapes=len(SHAPES),
        expected={d: expected[d] for d in ("in", "out")},
        counted={d: crossings[d] for d in ("in", "out")},
        tracks=len({o["track_id"] for r in results for o in r["objects"]} - {None}),
        command=f"edgecnn run {DETECTOR} --source {video.name} --line {LINE} --events {events_path.name}",
        events=events,
    )
