"""CSI cameras through ``picamera2`` (libcamera): on Raspberry Pi OS Bookworm they are not plain V4L2 indexes.

picamera2 is not on PyPI in a form that works in a plain venv: it comes from apt (``python3-picamera2``)
with libcamera's Python bindings, so it is imported lazily and only here.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from edgecnn.errors import SourceError
from edgecnn.images import fits_budget, too_many_pixels

INSTALL_HINT = (
    "On Raspberry Pi OS install it with `sudo apt install python3-picamera2`, and create the venv with "
    "`python3 -m venv --system-site-packages` so the venv can see it (pip cannot install libcamera)."
)


def import_picamera2() -> Any:
    try:
        module = importlib.import_module("picamera2")
    except ImportError as exc:
        raise SourceError(
            f"--source picamera2 needs the picamera2 module, which is not importable here ({exc}). {INSTALL_HINT}"
        ) from exc
    return module


class Picamera2Grabber:
    """Frames as BGR arrays: picamera2's ``RGB888`` format is laid out B, G, R in memory (OpenCV order)."""

    origin: str | None = None  # frames come from no file

    def __init__(
        self,
        camera: int = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        self.camera = camera
        self.size = (width or 640, height or 480)
        self.requested_fps = fps
        self.cam: Any = None

    @property
    def fps(self) -> float | None:
        return self.requested_fps

    def open(self) -> None:
        if not fits_budget(*self.size):  # picamera2 delivers the size asked for: refuse it before asking
            raise too_many_pixels(
                f"picamera2 camera {self.camera}",
                "ask for a smaller --width/--height (e.g. 1280x720)",
                frames=self.size,
            )
        module = import_picamera2()
        cameras = module.Picamera2.global_camera_info()
        if len(cameras) <= self.camera:
            raise SourceError(
                f"picamera2 found {len(cameras)} CSI camera(s), so camera {self.camera} does not exist. "
                "Check the ribbon cable and that `rpicam-hello --list-cameras` lists it; a USB webcam "
                "is a V4L2 device: use --camera N."
            )
        try:
            cam = module.Picamera2(self.camera)
            controls = {"FrameRate": float(self.requested_fps)} if self.requested_fps else {}
            config = cam.create_video_configuration(
                main={"size": self.size, "format": "RGB888"}, controls=controls
            )
            cam.configure(config)
            cam.start()
        except SourceError:
            raise
        except Exception as exc:  # libcamera raises RuntimeError and friends; say which camera
            raise SourceError(
                f"picamera2 could not start camera {self.camera}: {exc}. Another program may hold it "
                "(only one process can use a CSI camera), or the user lacks access to /dev/media* and "
                "/dev/video* (add it to the video group)."
            ) from exc
        self.cam = cam

    def grab(self) -> np.ndarray | None:
        if self.cam is None:
            raise SourceError(f"picamera2 camera {self.camera} is not open.")
        try:
            image = self.cam.capture_array("main")
        except Exception as exc:
            raise SourceError(f"picamera2 camera {self.camera} stopped delivering frames: {exc}") from exc
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        return np.ascontiguousarray(image)

    def close(self) -> None:
        cam, self.cam = self.cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
