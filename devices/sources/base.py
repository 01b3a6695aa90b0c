"""The frame-source protocol and the capture threads shared by every backend.

A backend (:class:`Grabber`) only knows how to open a device, return one frame and close it. The
:class:`ThreadedSource` wrapper runs that grabber in its own thread, so decoding overlaps inference:

* ``latest`` mode (cameras, streams, ``--realtime`` files): only the newest frame is kept; a frame the
  consumer did not take before the next one arrived is dropped and counted. Latency stays at one frame
  when inference is slower than the camera.
* ``ordered`` mode (files, image folders): every frame, in order, through a small bounded buffer (the
  decoder waits for the consumer; nothing is dropped).

The capture thread owns its grabber: it is the only thread that reads from it and closes it, because
OpenCV's ``VideoCapture`` must not be released while another thread is inside ``read()``. A grabber
stuck in a driver call is abandoned (daemon thread) and closes itself when the call returns; a reconnect
builds a fresh grabber, so the two never share state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from edgecnn.errors import EdgecnnError, SourceError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("edgecnn.sources")

# Ordered mode buffers up to this many bytes of decoded frames, and 2 to 4 frames. A waiting consumer is
# woken for each frame. benchmarks/pipeline.py measured both choices against a bare queue.Queue:
# - Waking the consumer once per half-full buffer lost 10-15% of end-to-end fps.
# - A deeper buffer (8+ frames of 640x480) makes glibc return freed frames to the kernel and fault
#   them back in (about 24 page faults per frame).
ORDERED_BUFFER_BYTES = 16 * 1024 * 1024
ORDERED_BUFFER_FRAMES = 4


class SourceEnded(Exception):
    """A finite source (file, image folder) has delivered its last frame. Not an error."""


@dataclass(frozen=True)
class Frame:
    """One captured image: BGR (or grayscale) uint8, never reused by the source after it is handed out."""

    image: np.ndarray
    index: int  # position in the source: frame number of a file, capture counter of a live source
    timestamp: float  # wall clock (time.time()) at capture
    captured: float  # time.perf_counter() at capture, for latency measurements
    # The file this image was read from (an image folder's or an image file's still), so outputs can name
    # it; None for cameras, streams, generated frames and the frames of a video, which are a stream.
    origin: str | None = None


@runtime_checkable
class FrameSource(Protocol):
    """What ``edgecnn run`` reads frames from. Tests inject their own; see :func:`open_source`.

    ``open`` raises :class:`~edgecnn.errors.SourceError` with a one-line reason; it may be called again
    after ``close`` to reconnect. ``read`` waits at most ``timeout`` seconds and returns ``None`` when no
    new frame came in that time, raises :class:`SourceEnded` after the last frame of a finite source, and
    :class:`~edgecnn.errors.SourceError` when a source is lost (unplugged camera, dropped stream).
    """

    name: str
    live: bool

    def open(self) -> None: ...

    def read(self, timeout: float) -> Frame | None: ...

    def close(self) -> None: ...

    @property
    def dropped(self) -> int: ...


class Grabber(Protocol):
    """One backend connection: created fresh for each (re)open and used by one capture thread.

    ``origin`` names the file the image :meth:`grab` returned last came from (image folders and files),
    ``None`` for every other backend; it becomes :attr:`Frame.origin`.
    """

    origin: str | None

    def open(self) -> None: ...

    def grab(self) -> np.ndarray | None:
        """The next frame, or ``None`` at the end of a finite source; raise SourceError when lost."""
        ...

    def close(self) -> None: ...

    @property
    def fps(self) -> float | None:
        """Nominal frame rate (used to pace ``--realtime`` files), if known."""
        ...


class _Session:
    """State of one open connection: the capture thread and what it hands over, under one condition."""

    def __init__(self, mode: Literal["latest", "ordered"]) -> None:
        self.mode = mode
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.slot: Frame | None = None  # latest mode
        self.items: deque[Frame] = deque()  # ordered mode
        self.capacity = 0  # ordered mode: set from the first frame's size
        self.consumer_waiting = False
        self.producer_waiting = False
        self.error: BaseException | None = None
        self.ended = False
        self.thread: threading.Thread | None = None


class ThreadedSource:
    """A :class:`FrameSource` that captures from a :class:`Grabber` in a background thread.

    ``factory`` builds a new grabber per open. ``pace_fps`` delivers frames no faster than that rate
    (``--realtime`` files and folders, generated frames), measured from the first frame;
    ``pace_from_source`` takes the rate from the grabber (a file's own frame rate, else 30).
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], Grabber],
        *,
        live: bool,
        mode: Literal["latest", "ordered"],
        pace_fps: float | None = None,
        pace_from_source: bool = False,
    ) -> None:
        self.name = name
        self.live = live
        self._factory = factory
        self._mode = mode
        self._pace_fps = pace_fps
        self._pace_from_source = pace_from_source
        self._session: _Session | None = None
        self._dropped = 0
        self._next_index = 0
        self.fps: float | None = None  # the open grabber's nominal rate (a file's own), None if unknown

    @property
    def dropped(self) -> int:
        return self._dropped

    def open(self) -> None:
        if self._session is not None:
            self.close()
        grabber = self._factory()
        grabber.open()  # raises SourceError in the caller's thread: no thread to clean up yet
        self.fps = grabber.fps
        session = _Session(self._mode)
        pace = self._pace_fps
        if pace is None and self._pace_from_source:
            pace = grabber.fps or 30.0
        session.thread = threading.Thread(
            target=self._capture, args=(grabber, session, pace), name=f"capture {self.name}", daemon=True
        )
        self._session = session
        session.thread.start()

    def _publish(self, session: _Session, frame: Frame) -> bool:
        with session.cond:
            if session.mode == "latest":
                if session.slot is not None:
                    self._dropped += 1
                session.slot = frame
                session.cond.notify_all()
                return True
            if session.capacity == 0:
                per_frame = max(1, frame.image.nbytes)
                session.capacity = max(2, min(ORDERED_BUFFER_FRAMES, ORDERED_BUFFER_BYTES // per_frame))
            while len(session.items) >= session.capacity:
                if session.stop.is_set():
                    return False
                session.producer_waiting = True
                session.cond.wait(0.1)
            session.producer_waiting = False
            session.items.append(frame)
            if session.consumer_waiting:
                session.cond.notify_all()
            return True

    def _capture(self, grabber: Grabber, session: _Session, pace: float | None) -> None:
        start: float | None = None
        count = 0
        try:
            while not session.stop.is_set():
                image = grabber.grab()
                if image is None:
                    break
                if pace:
                    now = time.perf_counter()
                    if start is None:
                        start = now
                    due = start + count / pace
                    if due > now and session.stop.wait(due - now):
                        break
                count += 1
                frame = Frame(image, self._next_index, time.time(), time.perf_counter(), grabber.origin)
                self._next_index += 1  # only this thread writes it while the session is open
                if not self._publish(session, frame):
                    break
            else:
                return  # stopped by close()
            session.ended = True
        except EdgecnnError as exc:  # already one line that says what to do (SourceError, InputError, ...)
            session.error = exc
        except Exception as exc:  # a backend bug or driver error must still reach the consumer
            session.error = SourceError(f"{self.name} failed: {type(exc).__name__}: {exc}")
        finally:
            try:
                grabber.close()
            except Exception as exc:
                log.debug("closing %s: %s", self.name, exc)
            with session.cond:
                session.cond.notify_all()  # a waiting reader then sees the end or the error

    def read(self, timeout: float) -> Frame | None:
        session = self._session
        if session is None:
            raise SourceError(f"{self.name} is not open.")
        with session.cond:
            if session.mode == "latest":
                if session.slot is None and session.error is None and not session.ended:
                    session.cond.wait(timeout)
                frame, session.slot = session.slot, None
            else:
                if not session.items and session.error is None and not session.ended:
                    session.consumer_waiting = True
                    session.cond.wait(timeout)
                    session.consumer_waiting = False
                frame = session.items.popleft() if session.items else None
                if session.producer_waiting and frame is not None:
                    session.cond.notify_all()
        if frame is not None:
            return frame
        if session.error is not None:
            raise session.error
        if session.ended:
            if self.live:
                raise SourceError(f"{self.name} stopped sending frames (stream ended).")
            raise SourceEnded(self.name)
        return None

    def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.stop.set()
        with session.cond:
            session.cond.notify_all()
        if session.thread is not None and session.thread is not threading.current_thread():
            session.thread.join(timeout=1.0)
            if session.thread.is_alive():
                log.warning("%s: capture thread is stuck in the driver; abandoning it.", self.name)
