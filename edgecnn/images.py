"""Read images from disk with OpenCV, with errors that say which file and why."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import InputError
from edgecnn.nativelog import decoder_chatter_filtered

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@contextlib.contextmanager
def quiet_decoder() -> Iterator[None]:
    """A damaged file makes OpenCV log an imdecode_ line and libpng print its own: our one-line InputError
    says the same, so both stay out of the terminal (``EDGECNN_DEBUG=1`` shows them)."""
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    logging_api = cv2.utils.logging
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        with decoder_chatter_filtered():
            yield
    finally:
        logging_api.setLogLevel(previous)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """BGR (or grayscale) uint8 array."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"Image not found: {p}. Check the path.")
    if p.is_dir():
        raise InputError(f"{p} is a directory: pass image files (jpg, png, bmp, ...).")
    data = np.fromfile(p, dtype=np.uint8)
    with quiet_decoder():
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"Cannot decode {p} as an image: pass a JPEG, PNG, BMP or WebP file.")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
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
