"""Read images from disk with OpenCV, with errors that say which file and why.

A PNG of a few hundred KB can claim 20000x20000 pixels and decode to 1.2 GB (2.4 GB RSS with the copies),
which on a 1 GB Raspberry Pi is the OOM killer, not an error. OpenCV refuses, before decoding, any image
with more pixels than ``OPENCV_IO_MAX_IMAGE_PIXELS``, a limit it reads once when cv2 is imported; edgecnn
sets it (in ``edgecnn/__init__.py``, so it precedes every cv2 import) to :data:`DEFAULT_MAX_PIXELS` or to
``EDGECNN_MAX_IMAGE_PIXELS`` from the environment. Images are then normalised to 8-bit gray or BGR, whatever
bit depth or channel count the file had.

Video files, streams and cameras (``edgecnn.devices.sources.opencv``) get no help from that limit (OpenCV's
video decoders ignore it), so they check the frame size the capture reports after opening, before the first
frame is decoded, against the same budget and refuse with the same message (:func:`too_many_pixels`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import InputError
from edgecnn.nativelog import decoder_chatter_filtered
from edgecnn.safeio import FileKind, read_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

# 50 megapixels decode to 150 MB as BGR: more than any camera frame or photo a classifier needs (it resizes
# to a few hundred pixels), and still well inside a 1 GB Pi beside the model, the runtime and the camera.
DEFAULT_MAX_PIXELS = 50_000_000


def max_pixels() -> int:
    """The pixel budget in effect: what OpenCV was told when it was imported (see the module docstring)."""
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS))
    except ValueError:
        return DEFAULT_MAX_PIXELS


def fits_budget(width: int, height: int) -> bool:
    """Whether a ``width`` x ``height`` image or video frame is within :func:`max_pixels`."""
    return width * height <= max_pixels()


def too_many_pixels(what: str, fix: str, *, frames: tuple[int, int] | None = None) -> InputError:
    """The one refusal for anything bigger than the pixel budget: a still image (``frames`` None: OpenCV
    refused it from the header without saying the size), or a video, stream or camera whose frames are
    ``frames`` = (width, height). ``fix`` is what to do about this kind of input."""
    budget = max_pixels()
    if frames is None:
        claim = f"has more than {budget:,} pixels, the image budget"
    else:
        width, height = frames
        claim = f"has {width}x{height} frames ({width * height:,} pixels), more than the {budget:,}-pixel image budget"
    return InputError(
        f"{what} {claim} that keeps decoding within a 1 GB Raspberry Pi ({budget * 3 / 1e6:,.0f} MB as BGR): "
        f"{fix}, or set EDGECNN_MAX_IMAGE_PIXELS=N to change the budget."
    )


def _too_large(p: Path) -> InputError:
    return too_many_pixels(str(p), "resize it first")


@contextlib.contextmanager
def opencv_log_level(level: int) -> Iterator[None]:
    """OpenCV's own log level lowered to ``level`` for the block, unless ``EDGECNN_DEBUG`` is set: where our
    error message says the same thing in one line, OpenCV's WARN lines only add noise."""
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    logging_api = cv2.utils.logging
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(level)
    try:
        yield
    finally:
        logging_api.setLogLevel(previous)


@contextlib.contextmanager
def quiet_decoder() -> Iterator[None]:
    """A damaged file makes OpenCV log an imdecode_ line and libpng print its own: our one-line InputError
    says the same, so both stay out of the terminal (``EDGECNN_DEBUG=1`` shows them)."""
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    with opencv_log_level(cv2.utils.logging.LOG_LEVEL_SILENT), decoder_chatter_filtered():
        yield


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """8-bit BGR (3 channels) or grayscale (2-D) array; :class:`InputError` for anything else."""
    p = Path(path)
    data = np.frombuffer(read_bytes(p, FileKind.IMAGE), dtype=np.uint8)
    try:
        with quiet_decoder():
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:
        # imdecode returns None for bad data; it raises only when the header asks for more pixels than the
        # budget (validateInputImageSize), before allocating anything.
        raise _too_large(p) from None
    if image is None or image.size == 0:
        raise InputError(f"Cannot decode {p} as an image: pass a JPEG, PNG, BMP or WebP file.")
    if not fits_budget(image.shape[1], image.shape[0]):  # cv2 was imported before edgecnn set the limit
        raise _too_large(p)
    return _to_8bit(image)


def _to_8bit(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF, float TIFF/EXR: stretch so the brightest value is 255
        values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        image = cv2.convertScaleAbs(values, alpha=255.0 / max(1.0, float(np.abs(values).max())))
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1 or channels == 2:  # gray, gray + alpha
            image = np.ascontiguousarray(image[:, :, 0])
        elif channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        elif channels != 3:
            raise InputError(f"An image with {channels} channels is not a photo: pass gray, BGR or BGRA.")
    return image


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"Not a directory: {p}.")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise InputError(f"No images in {p}: put .jpg/.png/.bmp files there.")
    return files


def expand_images(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` with every folder replaced by the images in it (sorted by name), files kept in order."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        out.extend(list_images(p) if p.is_dir() else [p])
    return out
