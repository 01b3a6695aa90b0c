"""JPEG snapshots of events (``--snapshots DIR``): the frame with the event's object boxed and named, one
file per event, written atomically (:func:`edgecnn.atomic.write_atomic`: a reader never sees half a JPEG).

Encoding and writing happen on a thread of their own: ``write_atomic`` syncs each file to disk, which on
a Pi's SD card can take longer than a frame, and inference never waits for it. At most
:data:`QUEUE_FRAMES` frames wait to be written; an event beyond that gets no snapshot (logged once).

The folder never fills the disk: after each write the oldest snapshots are deleted until at most
``keep`` files and ``max_bytes`` bytes remain (only files this module names, ``*-snapshot.jpg``, are
counted or deleted). A snapshot that cannot be written (full disk, folder removed) is logged once and
skipped: the event itself still goes out, and the run goes on.

Names sort by time: ``20261205-014512.345-f000123-cross-t7-snapshot.jpg`` (capture time UTC, frame,
event type, track); the event's record names its file (``"snapshot"``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.track.events import Event

log = logging.getLogger("edgecnn.run")

SUFFIX = "-snapshot.jpg"
QUEUE_FRAMES = 8  # frames with events waiting to be written


def snapshot_name(event: Event) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(event.timestamp))
    millis = int((event.timestamp % 1) * 1000)
    return f"{stamp}.{millis:03d}-f{event.frame:06d}-{event.type}-t{event.track_id}{SUFFIX}"


class Snapshots:
    """Writes and prunes the snapshots of one run's events, in the background; also a result sink, so the
    run's end (:meth:`close`) waits for the last ones."""

    def __init__(
        self, folder: Path, *, keep: int = 100, max_bytes: int = 100 * 2**20, quality: int = 85
    ) -> None:
        from edgecnn.atomic import output_folder

        self.folder = output_folder(folder, what="--snapshots folder")
        self.keep, self.max_bytes, self.quality = keep, max_bytes, quality
        self._failed = self._told_full = False
        self._queue: queue.Queue[tuple[np.ndarray, list[Event]] | None] = queue.Queue(QUEUE_FRAMES)
        self._worker = threading.Thread(target=self._work, name="edgecnn-snapshots", daemon=True)
        self._worker.start()

    def write(self, image: np.ndarray, events: Sequence[Event]) -> None:
        """Queue one JPEG per event of this frame (the frame is the pipeline's and never changed after)."""
        try:
            self._queue.put_nowait((image, list(events)))
        except queue.Full:
            if not self._told_full:
                self._told_full = True
                log.warning("event snapshots fall behind the events (disk too slow): some are skipped")

    def emit(self, result: Any) -> None:
        """Results are not this output's business (the ResultSink side only waits for the writes)."""

    def close(self, summary: Any = None) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._write(*item)
            except Exception as exc:  # a snapshot must never take the run down
                log.warning("event snapshot failed: %s", exc)

    def _write(self, image: np.ndarray, events: Sequence[Event]) -> None:
        """One JPEG per event (its box drawn on a copy of ``image``), then prune the folder."""
        import cv2

        from edgecnn.atomic import write_atomic
        from edgecnn.errors import OutputError

        for event in events:
            frame = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
            x1, y1, x2, y2 = (round(v) for v in event.box)
            cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 0, 255), 2)
            where = event.line or event.zone or ""
            text = f"#{event.track_id} {event.label} {event.type} {where} {event.direction or ''}".strip()
            cv2.putText(frame, text, (max(0, x1), max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1,
                        cv2.LINE_AA)  # fmt: skip
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            try:
                if not ok:  # pragma: no cover - imencode fails only on invalid arrays
                    raise OutputError("JPEG encoding failed")
                write_atomic(self.folder / snapshot_name(event), data.tobytes(), what="event snapshot",
                             streams=False, symlinks=False)  # fmt: skip
            except OutputError as exc:
                if not self._failed:
                    log.warning("event snapshots are not being written: %s", exc)
                self._failed = True
                return
        self.prune()

    def prune(self) -> None:
        """Delete the oldest snapshots until at most ``keep`` files and ``max_bytes`` bytes remain."""
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                    found.append((entry.name, entry.stat(follow_symlinks=False).st_size))
        found.sort()  # names sort by capture time
        total = sum(size for _, size in found)
        while found and (len(found) > self.keep or total > self.max_bytes):
            name, size = found.pop(0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / name)
            total -= size
