"""OpenCV ``VideoCapture`` backends: camera index (V4L2 on Linux), video file, stream URL.

Opening errors are turned into one line that names the device and the likely causes, because "can't open
camera by index" is what users see most on a Raspberry Pi: the user is not in the ``video`` group, another
program holds the device, or the camera is a CSI ribbon camera that Raspberry Pi OS Bookworm only exposes
through libcamera (``--source picamera2``).

Every capture is held to the image pixel budget (``EDGECNN_MAX_IMAGE_PIXELS``, see :mod:`edgecnn.images`):
a few-KB MJPG file can announce 8000x8000 frames, and its first ``read()`` then costs 460 MB of RSS. Opening
costs nothing of the sort (FFmpeg learns the size from the codec headers without decoding a picture, even when
the container's own header lies), so the size the capture reports after ``open`` is checked before the first
frame is decoded; every decoded frame is checked too, for streams that grow later or report no size.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import platform

import cv2
import numpy as np

from edgecnn.errors import InputError, SourceError
from edgecnn.images import fits_budget, opencv_log_level, too_many_pixels

log = logging.getLogger("edgecnn.sources")

# OpenCV's FFmpeg backend honours these (milliseconds) so a dead stream cannot block read() forever.
STREAM_OPEN_TIMEOUT_MS = 5000
STREAM_READ_TIMEOUT_MS = 5000


def quiet_opencv() -> contextlib.AbstractContextManager[None]:
    """Silence OpenCV's own WARN lines while probing: our error message says it better, in one line."""
    return opencv_log_level(cv2.utils.logging.LOG_LEVEL_ERROR)


def video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def camera_open_error(index: int) -> SourceError:
    """Explain why camera ``index`` did not open, from what /dev shows, in one line."""
    if platform.system() != "Linux":
        return SourceError(
            f"Cannot open camera {index}: no camera at that index, or another program is using it. "
            "Try another --camera index, or close the other program."
        )
    device = f"/dev/video{index}"
    found = ", ".join(video_devices()) or "none"
    csi = "a Raspberry Pi CSI ribbon camera is not a V4L2 index on Bookworm: use --source picamera2"
    if not os.path.exists(device):
        return SourceError(
            f"Cannot open camera {index}: {device} does not exist (video devices here: {found}). "
            f"Check the --camera index and that the camera is plugged in; {csi}; "
            "if the device exists but fails, add your user to the video group (sudo usermod -aG video $USER) "
            "and close other programs using it."
        )
    if not os.access(device, os.R_OK | os.W_OK):
        return SourceError(
            f"Cannot open camera {index}: no permission to use {device}. Add your user to the video group "
            "(sudo usermod -aG video $USER, then log out and in), or run the service as a user in that group."
        )
    return SourceError(
        f"Cannot open camera {index} ({device}): the device is busy or is not a capture device. "
        f"Close other programs using it (fuser -v {device}), try another --camera index; {csi}."
    )


class CaptureGrabber:
    """One ``cv2.VideoCapture`` connection. ``kind`` is camera, file or url (decides errors and end-of-stream)."""

    origin: str | None = None  # camera, stream or video frames: a stream, not files of their own

    def __init__(
        self,
        target: int | str,
        kind: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = False,
    ) -> None:
        self.target = target
        self.kind = kind
        self.loop = loop and kind == "file"
        self.width, self.height, self.requested_fps = width, height, fps
        self.cap: cv2.VideoCapture | None = None
        self._fps: float | None = None
        self.frames = 0

    @property
    def fps(self) -> float | None:
        return self._fps

    def _describe(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else str(self.target)

    def open(self) -> None:
        with quiet_opencv():
            if self.kind == "camera":
                api = cv2.CAP_V4L2 if platform.system() == "Linux" else cv2.CAP_ANY
                cap = cv2.VideoCapture(int(self.target), api)
            elif self.kind == "url":
                cap = cv2.VideoCapture(
                    str(self.target),
                    cv2.CAP_FFMPEG,
                    [
                        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                        STREAM_OPEN_TIMEOUT_MS,
                        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                        STREAM_READ_TIMEOUT_MS,
                    ],
                )
            else:
                cap = cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            cap.release()
            if self.kind == "camera":
                raise camera_open_error(int(self.target))
            if self.kind == "url":
                raise SourceError(
                    f"Cannot open stream {self.target}: check the URL, that the server is up and reachable, "
                    "and that it serves a format FFmpeg reads (RTSP, HTTP MJPEG, HLS)."
                )
            raise SourceError(
                f"Cannot open video {self.target}: not a video OpenCV can decode "
                "(try an .mp4/.avi/.mkv with H.264 or MJPG, or a folder of images)."
            )
        if self.kind == "camera":
            self._request_format(cap)
        too_large = self._size_error(
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        )
        if too_large is not None:  # refused before a single frame is decoded
            cap.release()
            raise too_large
        rate = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(rate) if rate and 0 < rate < 1000 else None
        self.cap = cap

    def _request_format(self, cap: cv2.VideoCapture) -> None:
        """Ask the camera for --width/--height/--fps; drivers pick the nearest mode, so log what we got."""
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        if self.width or self.height or self.requested_fps:
            got = (
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                cap.get(cv2.CAP_PROP_FPS),
            )
            log.info("camera %s delivers %dx%d at %.1f fps", self.target, *got)

    def _size_error(self, width: int, height: int) -> InputError | None:
        """The refusal for frames over the pixel budget, or None (also for an unknown size, 0x0: then the
        decoded frame is checked)."""
        if width <= 0 or height <= 0 or fits_budget(width, height):
            return None
        if self.kind == "camera":
            fix = "ask it for a smaller mode (--width 1280 --height 720)"
        elif self.kind == "url":
            fix = "have the stream sent at a smaller size"
        else:
            fix = "re-encode it smaller (ffmpeg -i IN -vf scale=1280:-2 OUT)"
        return too_many_pixels(self._describe(), fix, frames=(width, height))

    def _checked(self, image: np.ndarray) -> np.ndarray:
        too_large = self._size_error(image.shape[1], image.shape[0])
        if too_large is not None:
            raise too_large
        self.frames += 1
        return image

    def grab(self) -> np.ndarray | None:
        if self.cap is None:
            raise SourceError(f"{self._describe()} is not open.")
        ok, image = self.cap.read()
        if ok and image is not None:
            return self._checked(image)
        if self.kind == "file":
            if self.frames == 0:
                raise SourceError(f"{self.target} opened but no frame could be decoded from it.")
            if self.loop:  # rewind; some containers cannot seek, so reopen when that fails
                if not self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    self.close()
                    self.open()
                ok, image = self.cap.read() if self.cap is not None else (False, None)
                if ok and image is not None:
                    return self._checked(image)
            return None
        if self.kind == "camera":
            raise SourceError(
                f"Camera {self.target} stopped delivering frames (unplugged, or taken by another program)."
            )
        raise SourceError(f"Stream {self.target} stopped delivering frames (connection dropped or ended).")

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
