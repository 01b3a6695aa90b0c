"""Write a file so that readers see the old one or the whole new one, never half of either.

Every file edgecnn produces goes through here: a temp file beside the target (same filesystem, so the
rename is atomic), its mode set explicitly (``mkstemp`` makes 0600, which would hide a model, a chart or a
unit file from the service user or a colleague), flushed to disk, then renamed over the target. On any
failure the temp file is removed and the old target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_MODE = 0o644


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, suffix: str = ".tmp", mode: int = DEFAULT_MODE
) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that insists on a file name (Keras, matplotlib, tarfile,
    OpenCV); when the block ends without error it is given ``mode``, synced and renamed to ``path``.

    ``suffix`` lets writers that pick a format from the name (``.keras``, ``.avi``) see the right one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = DEFAULT_MODE) -> Path:
    """Write ``data`` to ``path`` atomically with ``mode`` (0644 unless told): a crash never leaves half
    a model behind."""
    target = Path(path)
    with atomic_path(target, mode=mode) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return target
