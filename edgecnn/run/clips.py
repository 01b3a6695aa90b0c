"""Event clips: a short video of what happened around an event, with the seconds *before* it.

Each camera keeps a ring of its recent frames as JPEG bytes (bounded by ``pre`` seconds and by bytes, so a
4K camera cannot eat the Pi's memory). When an event starts (a frame whose result names one of the chosen
labels, or :meth:`ClipRecorder.trigger` from a tracking stage) a clip is opened: the ring's frames become
its pre-roll, every frame after it is written until ``post`` seconds after the last triggering frame (so
a person who stays keeps one clip growing, up to ``max_clip`` seconds), and a snapshot JPEG with the
result drawn is written beside it.

The inference thread only hands the frame over (:meth:`ClipRecorder.tap`, O(1)); JPEG encoding, OpenCV's
``VideoWriter`` (MJPG in ``.avi``, or ``mp4v`` in ``.mp4``: both work with opencv-python-headless) and the
file system all happen in one worker thread per camera behind a bounded queue. Each frame is JPEG-encoded
once, for the ring; an ``.avi`` clip (MJPG: a JPEG per frame) takes those same JPEGs as they are
(``VIDEOWRITER_PROP_RAW_VIDEO``: FFmpeg muxes, nothing is encoded again), so recording holds no encoder
(about 5 MB per camera recording, measured with ``benchmarks/multicam.py``) and the pre-roll is not decoded
and re-encoded. An OpenCV that cannot mux encoded frames gets the encoding writer, as ``.mp4`` does. When the worker falls
behind, frames are dropped from the clip and counted, never queued without bound and never waited for.

Files appear atomically: a clip is written to a hidden ``.NAME.part.avi`` beside its final name and
renamed when complete (a snapshot goes through :func:`edgecnn.atomic.write_atomic`), so a reader of the
folder or of ``/clips`` never sees half a clip. :class:`ClipStore` keeps the folder within a total size
and an age (oldest clips deleted first). A full disk (less than ``min_free`` left) or a write error stops
recording (inference and every other output go on), shows in ``/healthz`` and ``edgecnn_clips_recording``,
and is tried again after ``retry`` seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edgecnn.errors import OutputError
from edgecnn.run.results import FrameResult

if TYPE_CHECKING:
    from edgecnn.run.options import RunOptions
    from edgecnn.track.events import Event

log = logging.getLogger("edgecnn.run")

FORMATS = {"avi": "MJPG", "mp4": "mp4v"}  # container -> fourcc; both verified with opencv-python-headless
MB = 1024 * 1024
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """A camera name as a folder/file name part: letters, digits, ``_.-`` (others become ``_``)."""
    return _NAME.sub("_", text).strip("._") or "camera"


@dataclass(frozen=True)
class ClipSettings:
    """What ``--clips`` and the ``clip_*`` keys ask for (seconds and bytes as the recorder uses them)."""

    folder: Path
    labels: frozenset[str] = frozenset()  # empty: any label of the result starts a clip
    pre_s: float = 5.0
    post_s: float = 5.0
    max_clip_s: float = 120.0
    buffer_bytes: int = 8 * MB  # per camera: the pre-roll ring's JPEGs
    max_total_bytes: int = 2048 * MB  # the folder's clips and snapshots, all cameras
    max_age_s: float = 7 * 86400.0
    min_free_bytes: int = 64 * MB  # less free space than this on the folder's disk: stop recording
    format: str = "avi"
    quality: int = 80  # JPEG quality of the ring and the snapshot
    queue_frames: int = 4  # raw frames between the inference thread and the clip worker (memory bound)
    retry_s: float = 30.0  # after a failure, how long before recording is tried again

    @classmethod
    def from_options(cls, opts: RunOptions) -> ClipSettings | None:
        if not opts.clips:
            return None
        return cls(
            folder=Path(opts.clips).expanduser(),
            labels=frozenset(opts.clip_labels or ()),
            pre_s=opts.clip_pre,
            post_s=opts.clip_post,
            max_clip_s=opts.clip_max_length,
            buffer_bytes=int(opts.clip_buffer_mb * MB),
            max_total_bytes=int(opts.clip_max_mb * MB),
            max_age_s=opts.clip_max_age_days * 86400.0,
            min_free_bytes=int(opts.clip_min_free_mb * MB),
            format=opts.clip_format,
        )

    @property
    def fourcc(self) -> int:
        return int(cv2.VideoWriter.fourcc(*FORMATS[self.format]))


@dataclass(frozen=True)
class Clip:
    """One finished clip as ``/clips`` lists it (paths relative to the clips folder)."""

    camera: str
    video: str
    snapshot: str | None
    start: float  # Unix time of the first frame (pre-roll included)
    duration_s: float
    frames: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ClipStore:
    """The clips folder of a run (all cameras): what is in it, and keeping it within size and age.

    Scans what earlier runs left (so retention covers them too) and removes crash leftovers (``.*.part.*``).
    Thread-safe: every camera's worker adds and prunes through one lock.
    """

    def __init__(self, settings: ClipSettings) -> None:
        self.settings = settings
        self.folder = settings.folder
        self._lock = threading.Lock()
        self._clips: list[Clip] = []
        self.deleted = 0

    def open(self) -> None:
        """Create the folder (an :class:`OutputError` when it cannot be) and index what is there."""
        from edgecnn.atomic import output_folder

        output_folder(self.folder, what="--clips folder")
        found: list[Clip] = []
        ext = "." + self.settings.format
        for path in self._files():
            if path.name.startswith("."):
                if ".part." in path.name:  # a clip whose run crashed while writing it
                    with contextlib.suppress(OSError):
                        path.unlink()
                continue
            if path.suffix != ext:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            snap = path.with_suffix(".jpg")
            camera = path.parent.name if path.parent != self.folder else ""
            found.append(
                Clip(
                    camera,
                    self._rel(path),
                    self._rel(snap) if snap.exists() else None,
                    st.st_mtime,
                    0.0,
                    0,
                    st.st_size,
                )
            )
        found.sort(key=lambda c: c.start)
        with self._lock:
            self._clips = found
        self.prune()

    def _files(self) -> Iterator[Path]:
        for entry in self.folder.iterdir():
            if entry.is_dir():
                yield from (p for p in entry.iterdir() if p.is_file())
            elif entry.is_file():
                yield entry

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def add(self, clip: Clip) -> None:
        with self._lock:
            self._clips.append(clip)
        self.prune()

    def list(self) -> list[Clip]:
        with self._lock:
            return list(self._clips)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._size(c) for c in self._clips)

    def prune(self, now: float | None = None) -> int:
        """Delete the oldest clips (and their snapshots) until the folder is within size and age."""
        s = self.settings
        now = time.time() if now is None else now
        removed: list[Clip] = []
        with self._lock:
            total = sum(self._size(c) for c in self._clips)
            while self._clips and (total > s.max_total_bytes or now - self._clips[0].start > s.max_age_s):
                clip = self._clips.pop(0)
                total -= self._size(clip)
                removed.append(clip)
        for clip in removed:
            for rel in (clip.video, clip.snapshot):
                if rel:
                    with contextlib.suppress(OSError):
                        (self.folder / rel).unlink()
            log.debug("clips: deleted %s (retention)", clip.video)
        self.deleted += len(removed)
        return len(removed)

    def _size(self, clip: Clip) -> int:
        size = clip.bytes
        if clip.snapshot:
            with contextlib.suppress(OSError):
                size += (self.folder / clip.snapshot).stat().st_size
        return size

    def find(self, rel: str) -> Path | None:
        """The file of a listed clip or snapshot named ``rel`` (nothing else: no path is built from input)."""
        with self._lock:
            for clip in self._clips:
                if rel in (clip.video, clip.snapshot):
                    return self.folder / rel
        return None


@dataclass
class ClipCounts:
    """What a recorder did; read by ``/healthz`` and ``/metrics`` from other threads (ints: atomic)."""

    written: int = 0
    failed: int = 0
    dropped: int = 0  # frames that never reached a clip: the worker's queue was full
    recording: bool = True
    detail: str = ""


_Jpeg = tuple[float, bytes, "tuple[int, int] | None"]  # a ring entry: time, JPEG, size if a colour frame


def _color_size(image: np.ndarray) -> tuple[int, int] | None:
    """The (width, height) of a 3-channel frame, whose JPEG a muxing clip writer takes as it is; None for
    others (gray, BGRA), which are converted and encoded for the clip."""
    return (image.shape[1], image.shape[0]) if image.ndim == 3 and image.shape[2] == 3 else None


@dataclass
class _Item:
    timestamp: float
    image: np.ndarray
    result: FrameResult
    clip: str | None  # the clip this frame belongs to (None: no clip open)
    starts: bool  # the first triggering frame of the clip: its snapshot
    until: float  # the clip ends after this timestamp unless extended


@dataclass
class _Open:
    name: str
    path: Path  # final path
    part: Path  # where it is written
    writer: Any
    size: tuple[int, int]
    raw: bool  # the writer takes the ring's JPEG bytes (MJPG muxed as it is), not frames to encode
    start: float
    last: float
    frames: int = 0
    snapshot: str | None = None
    until: float = 0.0


class ClipRecorder:
    """Clips of one camera. :meth:`tap` is the run loop's hook; :meth:`close` finishes the open clip.

    ``camera`` names the sub-folder and the clip files (``""``: the folder itself, a one-camera run).
    """

    def __init__(self, camera: str, settings: ClipSettings, store: ClipStore) -> None:
        self.camera, self.settings, self.store = camera, settings, store
        self.folder = store.folder / safe_name(camera) if camera else store.folder
        self.counts = ClipCounts()
        self._queue: queue.Queue[_Item | None] = queue.Queue(settings.queue_frames)
        self._clip: str | None = None  # inference side: the open clip's name and when it ends
        self._until = 0.0
        self._started = 0.0
        self._external_until = 0.0  # trigger(): an event from outside (tracking) holds clips open until
        self._starts = False  # a clip was opened: the next tapped frame is its first (and its snapshot)
        self.by_events = False  # True (EventClips): only trigger() starts clips, not the labels in view
        self._failed_at: float | None = None
        self._thread = threading.Thread(target=self._work, name=f"clips-{camera or 'run'}", daemon=True)
        self._thread.start()

    # -- inference thread -----------------------------------------------------------------------------
    def trigger(self, timestamp: float, reason: str = "event", hold_s: float = 0.0) -> dict[str, str] | None:
        """An event from another stage (a tracked object crossed a line, entered a zone) at the frame of
        ``timestamp``: start a clip from that frame, or extend the open one, for ``hold_s`` seconds plus
        ``post``. Returns the clip's files (``video``, ``snapshot``: relative to the clips folder), or
        None while recording is stopped (disk full)."""
        log.debug("clips %s: triggered by %s", self.camera, reason)
        self._external_until = max(self._external_until, timestamp + hold_s)
        self._expire(timestamp)
        return self._open(timestamp)

    def triggers(self, result: FrameResult) -> bool:
        if result.timestamp <= self._external_until:
            return True
        if self.by_events:  # lines or zones: their events start clips, not labels in view
            return False
        labels = self.settings.labels
        return any((not labels) or label in labels for label in result.output.labels())

    def tap(self, image: np.ndarray, result: FrameResult) -> FrameResult:
        """Hand a processed frame to the worker; the frame that starts a clip comes back naming it."""
        t = result.timestamp
        self._expire(t)
        if self.triggers(result):
            self._open(t)
        starts, self._starts = self._starts and self._clip is not None, False
        item = _Item(t, image, result, self._clip, starts, self._until)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.counts.dropped += 1
            if starts:  # a clip's first frame is never the one left out: its name is already in records
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()  # the oldest frame waiting makes room
                with contextlib.suppress(queue.Full):
                    self._queue.put_nowait(item)
        if starts and self._clip is not None:
            return dataclasses.replace(result, clip=self._files(self._clip))
        return result

    def _expire(self, t: float) -> None:
        """The open clip ends ``post`` seconds after its last triggering frame, or at ``max_clip_s``."""
        if self._clip is not None and (t > self._until or t - self._started > self.settings.max_clip_s):
            self._clip = None

    def _open(self, t: float) -> dict[str, str] | None:
        """A triggering frame at ``t``: open a clip (its first frame, the snapshot, is the next tapped) or
        extend the open one; the clip's files, or None while recording is stopped."""
        if not self._can_record():
            return None
        if self._clip is None:
            self._clip, self._started, self._starts = self._new_name(t), t, True
        self._until = max(self._until, t + self.settings.post_s)
        return self._files(self._clip)

    def _files(self, clip: str) -> dict[str, str]:
        return {"video": self._rel(clip + "." + self.settings.format), "snapshot": self._rel(clip + ".jpg")}

    def _rel(self, name: str) -> str:
        return f"{safe_name(self.camera)}/{name}" if self.camera else name

    def _can_record(self) -> bool:
        if self.counts.recording:
            return True
        if self._failed_at is not None and time.time() - self._failed_at >= self.settings.retry_s:
            self.counts.recording, self.counts.detail = True, ""  # try again (the worker re-checks space)
            return True
        return False

    def _new_name(self, t: float) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(t))
        prefix = f"{safe_name(self.camera)}-" if self.camera else ""
        return f"{prefix}{stamp}-{int(t * 1000) % 1000:03d}"

    def close(self, timeout: float = 10.0) -> None:
        """Finish the open clip (its post-roll cut short by the run's end) and stop the worker."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        c = self.counts
        body: dict[str, Any] = {
            "recording": c.recording,
            "written": c.written,
            "failed": c.failed,
            "dropped_frames": c.dropped,
        }
        if c.detail:
            body["detail"] = c.detail
        return body

    # -- worker thread --------------------------------------------------------------------------------
    def _work(self) -> None:
        ring: deque[_Jpeg] = deque()
        ring_bytes = 0
        current: _Open | None = None
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if current is not None and time.time() > current.until + 1.0:  # frames stopped coming
                    self._finish(current)
                    current = None
                continue
            if item is None:
                if current is not None:
                    self._finish(current)
                return
            if current is not None and item.clip != current.name:
                self._finish(current)
                current = None
            if item.clip is not None and current is None and item.starts:
                current = self._start(item, ring)
            ok, jpeg = cv2.imencode(".jpg", item.image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.quality])
            data = jpeg.tobytes() if ok else None
            if current is not None:
                current.until = item.until
                self._write(current, item.image, item.timestamp, data)
            if data is not None:
                ring.append((item.timestamp, data, _color_size(item.image)))
                ring_bytes += len(data)
            horizon = item.timestamp - self.settings.pre_s
            while ring and (ring[0][0] < horizon or ring_bytes > self.settings.buffer_bytes):
                ring_bytes -= len(ring.popleft()[1])

    def _stop_recording(self, detail: str) -> None:
        if self.counts.recording:
            log.warning("clips: recording stopped for %s: %s", self.camera or "the camera", detail)
        self.counts.recording, self.counts.detail = False, detail
        self._failed_at = time.time()

    def _start(self, item: _Item, ring: deque[_Jpeg]) -> _Open | None:
        s = self.settings
        assert item.clip is not None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.folder).free
        except OSError as exc:
            self.counts.failed += 1
            self._stop_recording(f"cannot use {self.folder}: {exc.strerror or exc}")
            return None
        if free < s.min_free_bytes:
            self.counts.failed += 1
            self._stop_recording(
                f"disk full: {free // MB} MB free on {self.folder}, clips need at least "
                f"{s.min_free_bytes // MB} MB (free space or lower clip_max_mb)"
            )
            return None
        path = self.folder / f"{item.clip}.{s.format}"
        part = self.folder / f".{item.clip}.part.{s.format}"
        height, width = item.image.shape[:2]
        rate = _rate(ring, item.timestamp)
        raw_prop: int | None = getattr(cv2, "VIDEOWRITER_PROP_RAW_VIDEO", None)  # none in an old OpenCV
        raw = s.format == "avi" and raw_prop is not None and _color_size(item.image) is not None
        writer = None
        if raw and raw_prop is not None:  # MJPG: the ring's JPEGs are the clip's frames, muxed as they are
            params = [raw_prop, 1]
            writer = cv2.VideoWriter(str(part), cv2.CAP_FFMPEG, s.fourcc, rate, (width, height), params)
            if not writer.isOpened():
                writer.release()
                writer, raw = None, False
        if writer is None:
            writer = cv2.VideoWriter(str(part), s.fourcc, rate, (width, height))
        if not writer.isOpened():
            self.counts.failed += 1
            self._stop_recording(f"cannot write {part}: OpenCV's VideoWriter did not open it")
            with contextlib.suppress(OSError):
                part.unlink()
            return None
        pre_roll = [entry for entry in ring if entry[0] >= item.timestamp - s.pre_s]
        first = pre_roll[0][0] if pre_roll else item.timestamp
        clip = _Open(item.clip, path, part, writer, (width, height), raw, first, item.timestamp)
        clip.until = item.until
        for _, jpeg, size in pre_roll:
            if raw and size == clip.size:
                self._write_jpeg(clip, jpeg, None)
                continue
            frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if frame is not None:
                self._write(clip, frame, None)
        try:
            from edgecnn.atomic import write_atomic
            from edgecnn.run.live import render_preview

            snap = path.with_suffix(".jpg")
            write_atomic(snap, render_preview(item.image, item.result, s.quality), what="clip snapshot")
            clip.snapshot = self.store._rel(snap)
        except OSError as exc:
            self._abandon(clip, f"cannot write the snapshot: {getattr(exc, 'strerror', None) or exc}")
            return None
        return clip

    def _write(
        self, clip: _Open, image: np.ndarray, timestamp: float | None, jpeg: bytes | None = None
    ) -> None:
        """Write a frame: ``jpeg`` (its ring JPEG, when there is one) as it is to a muxing writer."""
        if clip.raw and jpeg is not None and _color_size(image) == clip.size:
            self._write_jpeg(clip, jpeg, timestamp)
            return
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if (image.shape[1], image.shape[0]) != clip.size:  # the camera changed resolution mid-clip
            image = cv2.resize(image, clip.size)
        if clip.raw:  # a gray or BGRA frame, or one of another size: encoded for this clip
            quality = [cv2.IMWRITE_JPEG_QUALITY, self.settings.quality]
            ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, :3]), quality)
            if ok:
                self._write_jpeg(clip, encoded.tobytes(), timestamp)
            return
        clip.writer.write(image[:, :, :3])
        clip.frames += 1
        if timestamp is not None:
            clip.last = timestamp

    def _write_jpeg(self, clip: _Open, jpeg: bytes, timestamp: float | None) -> None:
        clip.writer.write(np.frombuffer(jpeg, np.uint8).reshape(1, -1))
        clip.frames += 1
        if timestamp is not None:
            clip.last = timestamp

    def _abandon(self, clip: _Open, detail: str) -> None:
        clip.writer.release()
        for path in (clip.part, clip.path.with_suffix(".jpg")):
            with contextlib.suppress(OSError):
                path.unlink()
        self.counts.failed += 1
        self._stop_recording(detail)

    def _finish(self, clip: _Open) -> None:
        clip.writer.release()
        try:
            size = clip.part.stat().st_size
            if size == 0:
                raise OutputError("the video file is empty (disk full?)")
            free = shutil.disk_usage(self.folder).free
            if free < self.settings.min_free_bytes // 2:  # the clip may have been cut short by a full disk
                raise OutputError(f"disk full: {free // MB} MB free on {self.folder}")
            os.replace(clip.part, clip.path)
        except OSError as exc:
            self._abandon(clip, f"cannot write {clip.path.name}: {getattr(exc, 'strerror', None) or exc}")
            return
        self.counts.written += 1
        self.store.add(
            Clip(
                camera=self.camera,
                video=self.store._rel(clip.path),
                snapshot=clip.snapshot,
                start=round(clip.start, 3),
                duration_s=round(clip.last - clip.start, 3),
                frames=clip.frames,
                bytes=size,
            )
        )
        log.info("clip %s: %d frames, %.1f s", clip.path, clip.frames, clip.last - clip.start)


# Tracking events that start a clip: something arrived. An exit is the end of an object's stay (its clip is
# the enter's, still open for ``post`` seconds); a dwell is a stay gone on too long.
CLIP_EVENTS = ("cross", "enter", "dwell")


class EventClips:
    """With lines or zones, their events start the camera's clips (not every label in view): the track
    stage (:attr:`edgecnn.track.stage.TrackStage.clips`) hands each frame's events here before the events
    file, ``/events``, MQTT and snapshots see them, and each event that starts or extends a clip comes back
    naming it (``clip``: the video, relative to the clips folder). ``clip_labels``, when set, limits which
    objects' events do."""

    def __init__(self, recorder: ClipRecorder) -> None:
        self.recorder = recorder
        recorder.by_events = True

    def __call__(self, events: list[Event]) -> list[Event]:
        labels = self.recorder.settings.labels
        marked = []
        for event in events:
            if event.type in CLIP_EVENTS and (not labels or event.label in labels):
                where = event.line or event.zone
                files = self.recorder.trigger(
                    event.timestamp, reason=f"{event.type} {where} #{event.track_id}"
                )
                if files is not None:
                    event = dataclasses.replace(event, clip=files["video"])
            marked.append(event)
        return marked


def _rate(ring: deque[_Jpeg], now: float) -> float:
    """Frames per second the clip is played at: what the ring held over its span (the processed rate)."""
    if len(ring) >= 2 and now > ring[0][0]:
        return float(min(60.0, max(1.0, len(ring) / (now - ring[0][0]))))
    return 10.0


class ClipCollector:
    """``/metrics`` series of clip recorders, read at scrape time from their counters."""

    def __init__(self, recorders: list[ClipRecorder], store: ClipStore) -> None:
        self.recorders, self.store = recorders, store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = [r.counts for r in self.recorders]
        yield CounterMetricFamily(
            "edgecnn_clips_written", "Event clips written.", value=sum(c.written for c in counts)
        )
        yield CounterMetricFamily(
            "edgecnn_clips_failed",
            "Event clips not written: disk full, folder not writable, write errors.",
            value=sum(c.failed for c in counts),
        )
        yield CounterMetricFamily(
            "edgecnn_clip_frames_dropped",
            "Frames left out of clips because the clip writer was behind.",
            value=sum(c.dropped for c in counts),
        )
        yield GaugeMetricFamily(
            "edgecnn_clips_recording",
            "1 while clips can be recorded; 0 after a full disk or a write error (retried later).",
            value=int(all(c.recording for c in counts)),
        )
        yield GaugeMetricFamily(
            "edgecnn_clips_bytes",
            "Bytes of clips and snapshots in the clips folder.",
            value=self.store.total_bytes(),
        )
