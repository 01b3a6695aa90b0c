"""Frame sources for ``edgecnn run``: cameras, files, streams, image folders, picamera2, generated frames.

One protocol (:class:`FrameSource`) for all of them; :func:`parse_source` reads ``--camera``/``--source``
without touching hardware, :func:`open_source` builds the source. Backends import OpenCV or picamera2
only when they are opened, so importing this package stays cheap.
"""

from edgecnn.devices.sources.base import Frame, FrameSource, Grabber, SourceEnded, ThreadedSource
from edgecnn.devices.sources.spec import DEMO_NAMES, SourceKind, SourceSpec, open_source, parse_source

__all__ = [
    "DEMO_NAMES",
    "Frame",
    "FrameSource",
    "Grabber",
    "SourceEnded",
    "SourceKind",
    "SourceSpec",
    "ThreadedSource",
    "open_source",
    "parse_source",
]
