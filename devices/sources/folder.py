"""A folder of images, read in name order: handy for replaying captured stills through ``edgecnn run``.

A single image file is the same source with one image. Each frame names its file (:attr:`Frame.origin`),
so outputs can say which still a result is for.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgecnn.errors import InputError, SourceError
from edgecnn.images import list_images, read_image

log = logging.getLogger("edgecnn.sources")


class FolderGrabber:
    """The images of ``folder`` in name order, or the one image when ``folder`` is an image file."""

    def __init__(self, folder: Path, fps: float | None = None, *, loop: bool = False) -> None:
        self.folder = folder
        self.origin: str | None = None  # the file of the image grab() returned last
        self.loop = loop
        self._fps = fps
        self._files: list[Path] = []
        self._next = 0
        self._read_any = False  # read at least one image since the last start of the folder

    @property
    def fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        try:
            self._files = [self.folder] if self.folder.is_file() else list_images(self.folder)
        except InputError as exc:
            raise SourceError(str(exc)) from exc
        self._next = 0
        self._read_any = False

    def grab(self) -> np.ndarray | None:
        """The next readable image; an unreadable file is skipped with a warning, not fatal.

        With ``loop`` the folder starts again at its end, unless a whole pass read nothing.
        """
        for _ in range(2 if self.loop else 1):
            while self._next < len(self._files):
                path = self._files[self._next]
                self._next += 1
                try:
                    image = read_image(path)
                except InputError as exc:
                    if self.folder.is_file():  # the source is this one image: nothing to skip to
                        raise SourceError(str(exc)) from exc
                    log.warning("skipping %s", exc)
                    continue
                self._read_any = True
                self.origin = str(path)
                return image
            if not self.loop or not self._read_any:  # with loop, a pass that read nothing stops it
                return None
            self._next, self._read_any = 0, False
        return None

    def close(self) -> None:
        self._files = []
