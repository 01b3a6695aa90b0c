"""``--camera N`` / ``--source ...`` parsed into a :class:`SourceSpec`, and the factory that opens it.

Parsing needs neither OpenCV nor a camera, so configuration files can be validated at install time
(``edgecnn service``) on a machine where the camera is busy or absent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from edgecnn.errors import SourceError

if TYPE_CHECKING:
    from edgecnn.devices.sources.base import FrameSource

DEMO_NAMES = ("demo", "synthetic:digits")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_PICAMERA = re.compile(r"picamera2(?::([0-9]+))?")  # fullmatch: no trailing newline, ASCII digits
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class SourceKind(str, Enum):
    CAMERA = "camera"
    FILE = "file"
    URL = "url"
    FOLDER = "folder"
    PICAMERA2 = "picamera2"
    SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    target: str  # path, URL, camera index as text, or the generator's name
    index: int = 0  # camera number for camera / picamera2

    @property
    def live(self) -> bool:
        return self.kind not in (SourceKind.FILE, SourceKind.FOLDER)

    def describe(self) -> str:
        if self.kind is SourceKind.CAMERA:
            return f"camera {self.index}"
        if self.kind is SourceKind.PICAMERA2:
            return f"picamera2 camera {self.index}"
        if self.kind is SourceKind.SYNTHETIC:
            return f"synthetic:{self.target}"
        return self.target


def parse_source(source: str | int | None = None, *, camera: int | None = None) -> SourceSpec:
    """Classify a ``--source`` value (or ``--camera N``); raise SourceError naming what is wrong.

    Reserved names: ``demo`` / ``synthetic:digits`` (generated frames), ``picamera2[:N]``. A plain number
    is a camera index. ``scheme://...`` is a stream URL. Anything else must be an existing video file or
    image folder (use ``./demo`` for a file that happens to be called ``demo``).
    """
    if source is not None and camera is not None:
        raise SourceError("Give either --camera N or --source, not both.")
    if source is None:
        index = 0 if camera is None else camera
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise SourceError(f"Camera index must be a number >= 0, got {index!r}.")
        return SourceSpec(SourceKind.CAMERA, str(index), index)
    if isinstance(source, int) and not isinstance(source, bool):
        return parse_source(None, camera=source)
    text = str(source).strip()
    if not text:
        raise SourceError("Empty --source: give a camera index, a video file, a folder, a URL or demo.")
    if text.isascii() and text.isdigit():  # '²' and '٣' are digits to str.isdigit, not camera numbers
        return SourceSpec(SourceKind.CAMERA, text, int(text))
    if text.lower() in DEMO_NAMES:
        return SourceSpec(SourceKind.SYNTHETIC, "digits")
    if text.lower().startswith("synthetic:"):
        raise SourceError(
            f"Unknown generated source {text!r}: the one there is is synthetic:digits (or demo)."
        )
    match = _PICAMERA.fullmatch(text.lower())
    if match:
        return SourceSpec(SourceKind.PICAMERA2, text, int(match.group(1) or 0))
    url = _URL.match(text)
    if url:
        scheme = url.group(1).lower()
        if scheme == "file":
            return parse_source(text[len("file://") :])
        if scheme not in URL_SCHEMES:
            raise SourceError(
                f"Unsupported stream URL scheme {scheme!r} in {text}: use one of {', '.join(URL_SCHEMES)}."
            )
        return SourceSpec(SourceKind.URL, text)
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        return SourceSpec(SourceKind.FOLDER, str(path))
    if path.is_file():
        return SourceSpec(SourceKind.FILE, str(path))
    if path.exists():
        raise SourceError(f"{path} is neither a video file nor a folder of images.")
    raise SourceError(
        f"Source {text!r} not found: give a video file, an image folder, a stream URL (rtsp://, http://), "
        "a camera index (--camera N), picamera2 or demo."
    )


def open_source(
    spec: SourceSpec,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    realtime: bool = False,
    loop: bool = False,
) -> FrameSource:
    """Build the (not yet opened) frame source for ``spec``; call ``open()`` on it to start capturing.

    Live sources keep only the newest frame. Files and folders deliver every frame in order, unless
    ``realtime``: then they are paced at their own frame rate (folders: ``fps``, default 30) and behave
    like a live source, dropping what the consumer cannot keep up with. ``loop`` starts a file or folder
    again at its end (other sources never end on their own).
    """
    from edgecnn.devices.sources.base import ThreadedSource
    from edgecnn.images import IMAGE_SUFFIXES

    name = spec.describe()
    if spec.kind is SourceKind.CAMERA:
        from edgecnn.devices.sources.opencv import CaptureGrabber

        return ThreadedSource(
            name,
            lambda: CaptureGrabber(spec.index, "camera", width=width, height=height, fps=fps),
            live=True,
            mode="latest",
        )
    if spec.kind is SourceKind.URL:
        from edgecnn.devices.sources.opencv import CaptureGrabber

        return ThreadedSource(name, lambda: CaptureGrabber(spec.target, "url"), live=True, mode="latest")
    if spec.kind is SourceKind.FILE and Path(spec.target).suffix.lower() in IMAGE_SUFFIXES:
        from edgecnn.devices.sources.folder import FolderGrabber

        return ThreadedSource(  # one still, not a one-frame video: its frame names the file
            name,
            lambda: FolderGrabber(Path(spec.target), fps, loop=loop),
            live=False,
            mode="latest" if realtime else "ordered",
            pace_fps=(fps or 30.0) if realtime else None,
        )
    if spec.kind is SourceKind.FILE:
        from edgecnn.devices.sources.opencv import CaptureGrabber

        return ThreadedSource(
            name,
            lambda: CaptureGrabber(spec.target, "file", loop=loop),
            live=False,
            mode="latest" if realtime else "ordered",
            pace_fps=fps if realtime else None,
            pace_from_source=realtime,
        )
    if spec.kind is SourceKind.FOLDER:
        from edgecnn.devices.sources.folder import FolderGrabber

        return ThreadedSource(
            name,
            lambda: FolderGrabber(Path(spec.target), fps, loop=loop),
            live=False,
            mode="latest" if realtime else "ordered",
            pace_fps=(fps or 30.0) if realtime else None,
        )
    if spec.kind is SourceKind.PICAMERA2:
        from edgecnn.devices.sources.picamera import Picamera2Grabber

        return ThreadedSource(
            name,
            lambda: Picamera2Grabber(spec.index, width=width, height=height, fps=fps),
            live=True,
            mode="latest",
        )
    from edgecnn.devices.sources.synthetic import DigitsGrabber

    rate = fps or 30.0
    return ThreadedSource(
        name,
        lambda: DigitsGrabber(width or 640, height or 480, rate),
        live=True,
        mode="latest",
        pace_fps=rate,
    )
