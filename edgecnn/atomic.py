"""Write outputs: a regular file so that readers see the old one or the whole new one, a device or a FIFO
as a stream, anything else refused. Nothing but a regular file is ever renamed over.

Every file edgecnn produces goes through here (:func:`check_output` decides, :func:`atomic_path`,
:func:`write_atomic` and :func:`open_append` write):

- a regular file or a new path: a temp file beside the target (same filesystem, so the rename is atomic),
  its mode set explicitly (``mkstemp`` makes 0600, which would hide a model, a chart or a unit file from the
  service user or a colleague), flushed to disk, then renamed over the target. On any failure the temp file
  is removed and the old target is left as it was. A symbolic link to a regular file is followed (the file
  it names is replaced, the link stays), unless the caller writes into a tree it does not own
  (``symlinks=False``: ``service install --root`` into an image, where a link points into the image);
- a character device (``/dev/null``, a terminal) or a FIFO, named directly or through a link: opened for
  writing and written in place, never renamed over (renaming over ``/dev/null`` as root breaks the
  system). A FIFO is opened with ``O_NONBLOCK``, so one with no reader is refused at once ("no reader on
  FIFO") instead of blocking before any signal handler exists; a write error (``ENOSPC`` from
  ``/dev/full``, a reader that went away) is one error line. Callers that must have a real file (the
  service's unit and config files) pass ``streams=False`` and get these refused;
- ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N``: the process's own descriptor,
  duplicated (so a redirect's file offset is shared with what the command prints, and a redirected file is
  never replaced through ``/proc``);
- a directory, block device or socket: refused with one line. ``-`` is refused too: only ``--jsonl``
  takes it (for standard output); other outputs print to standard output with ``--json``.

Problems are :class:`~edgecnn.errors.OutputError` (an :class:`~edgecnn.errors.InputError`, exit 4, and an
:class:`OSError` for callers that tolerate a failed write), refusals and write failures alike.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from edgecnn.errors import OutputError

DEFAULT_MODE = 0o644

_STREAM_FLAGS = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
# The process's own descriptors, by the names shells and /proc give them.
_OWN_FD = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/thread-self/fd|proc/(\d+)/fd)/(\d+)$")
_STD_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


@dataclass(frozen=True)
class OutputTarget:
    """What an output path is, decided before anything is written."""

    path: Path  # as the user named it (messages say this)
    real: Path  # where a regular file is written: ``path`` with a symbolic link followed
    stream: bool  # a character device, FIFO or own descriptor: written in place, never renamed over
    fifo: bool = False
    fd: int | None = None  # one of this process's descriptors (/dev/stdout, /dev/fd/N)


def _describe(mode: int) -> str:
    from edgecnn.safeio import _describe as describe  # the names read errors use, for the same kinds

    return describe(mode)


def _cannot(what: str, path: Path, exc: OSError) -> OutputError:
    if isinstance(exc, OutputError):  # ours already (it is an OSError too): keep its message
        return exc
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += " (check the folder and its permissions)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free some space or choose another place)"
    return OutputError(f"Cannot write the {what} to {path}: {reason}.", exc.errno)


def _own_fd(path: Path) -> int | None:
    """The descriptor ``path`` names when it is one of this process's own (``/dev/stdout``, ``/dev/fd/3``)."""
    text = os.path.normpath(os.path.abspath(path))
    if text in _STD_NAMES:
        return _STD_NAMES[text]
    match = _OWN_FD.match(text)
    if match is None or (match.group(1) is not None and int(match.group(1)) != os.getpid()):
        return None
    return int(match.group(2))


def check_output(
    path: str | os.PathLike[str],
    *,
    what: str = "output",
    streams: bool = True,
    symlinks: bool = True,
) -> OutputTarget:
    """Decide how ``path`` is written (see the module docstring), or raise one :class:`~edgecnn.errors.OutputError` line.

    Cheap and side-effect free: commands call it before long work so a bad ``-o`` fails at once.
    """
    p = Path(path)
    if str(path) == "-":
        raise OutputError(
            f"'-' (standard output) is not taken as the {what}: pass a file name (./- for a file named '-'), "
            "or print to standard output with --json where the command has it."
        )
    fd = _own_fd(p) if streams else None
    if fd is not None:
        return OutputTarget(p, p, True, fd=fd)
    try:
        info = os.lstat(p)
    except FileNotFoundError:
        return OutputTarget(p, p, False)
    except OSError as exc:
        raise _cannot(what, p, exc) from None
    real, via = p, ""
    if stat.S_ISLNK(info.st_mode):
        if not symlinks:
            raise OutputError(
                f"{p} is a symbolic link (to {os.readlink(p)}), not a regular file: remove it, then write "
                f"the {what} again."
            )
        real = Path(os.path.realpath(p))
        try:
            info = os.stat(p)
        except FileNotFoundError:  # a dangling link: the file it names is created, as open() would
            return OutputTarget(p, real, False)
        except OSError as exc:
            raise _cannot(what, p, exc) from None
        via = f" (through the link {p})"
        if stat.S_ISREG(info.st_mode):
            return OutputTarget(p, real, False)
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return OutputTarget(p, real, False)
    if streams and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return OutputTarget(p, p, True, fifo=stat.S_ISFIFO(mode))
    allowed = "a regular file, a character device (/dev/null) or a FIFO" if streams else "a regular file"
    raise OutputError(
        f"{real if via else p} is {_describe(mode)}{via}: the {what} can only be written to {allowed}; "
        "pass a file name."
    )


def _open_stream(target: OutputTarget, what: str) -> int:
    """A blocking descriptor open for writing on the device, FIFO or own descriptor ``target`` names."""
    if target.fd is not None:
        for stream in (sys.stdout, sys.stderr):  # what was printed before comes before what we write
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            return os.dup(target.fd)
        except OSError as exc:
            raise _cannot(what, target.path, exc) from None
    try:
        # O_NONBLOCK: a FIFO with no reader fails with ENXIO now instead of blocking this process (before
        # it handles SIGTERM) until some reader comes.
        fd = os.open(target.path, _STREAM_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENXIO and target.fifo:
            raise OutputError(
                f"No reader on FIFO {target.path}: start the program that reads it first, or pass a file "
                f"name for the {what}.",
                errno.ENXIO,
            ) from None
        raise _cannot(what, target.path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # replaced since check_output looked
            raise OutputError(f"{target.path} changed while being opened for the {what}: try again.")
        os.set_blocking(fd, True)  # a slow reader slows us down; it does not lose lines
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes | memoryview, what: str, path: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise _cannot(what, path, exc) from None


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _still_replaceable(target: OutputTarget, what: str) -> None:
    """Right before the rename: the target is still absent or a regular file (not swapped for a device)."""
    try:
        info = os.lstat(target.real)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _cannot(what, target.path, exc) from None
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(
            f"{target.real} became {_describe(info.st_mode)} while the {what} was being written: "
            "it was left alone; pass a file name."
        )


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str],
    *,
    suffix: str = ".tmp",
    mode: int = DEFAULT_MODE,
    what: str = "output",
    streams: bool = True,
    symlinks: bool = True,
) -> Iterator[Path]:
    """A temp path for a writer that insists on a file name (Keras, matplotlib, tarfile, OpenCV); when the
    block ends without error it is given ``mode``, synced and renamed to ``path``.

    When ``path`` is a device or FIFO the temp file lives in the temp folder instead and its bytes are
    written to the stream (opened before the block runs, so a FIFO with no reader fails first).
    ``suffix`` lets writers that pick a format from the name (``.keras``, ``.avi``) see the right one.
    """
    target = check_output(path, what=what, streams=streams, symlinks=symlinks)
    if target.stream:
        fd = _open_stream(target, what)
        try:
            with tempfile.TemporaryDirectory(prefix="edgecnn-out.") as folder:
                staged = Path(folder) / f"output{suffix}"
                staged.touch()
                yield staged
                with open(staged, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        _write_all(fd, chunk, what, target.path)
        finally:
            os.close(fd)
        return
    real = target.real
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=suffix, dir=real.parent)
        os.close(fd)
    except OSError as exc:
        raise _cannot(what, target.path, exc) from None
    try:
        yield Path(tmp)
        try:
            os.chmod(tmp, mode)
            _fsync(tmp)
            _still_replaceable(target, what)
            os.replace(tmp, real)
        except OSError as exc:
            raise _cannot(what, target.path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    mode: int = DEFAULT_MODE,
    *,
    what: str = "output",
    streams: bool = True,
    symlinks: bool = True,
) -> Path:
    """Write ``data`` to ``path`` atomically with ``mode`` (0644 unless told): a crash never leaves half
    a model behind. A device or FIFO gets ``data`` written to it instead (see the module docstring)."""
    target = check_output(path, what=what, streams=streams, symlinks=symlinks)
    if target.stream:
        fd = _open_stream(target, what)
        try:
            _write_all(fd, data, what, target.path)
        finally:
            os.close(fd)
        return target.path
    with atomic_path(target.real, mode=mode, what=what, streams=False) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise _cannot(what, target.path, exc) from None
    return target.path


def output_folder(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """``path`` as a folder to write files into, created if missing (a link to a folder is followed); a
    device, FIFO or file there is one :class:`~edgecnn.errors.OutputError` line, not a ``FileExistsError``.
    The files inside still go through :func:`write_atomic` / :func:`atomic_path`."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _cannot(what, p, exc) from None
    if mode is not None and not stat.S_ISDIR(mode):
        kind = "a regular file" if stat.S_ISREG(mode) else _describe(mode)
        raise OutputError(f"{p} is {kind}, not a folder: pass a folder for the {what}.")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot(what, p, exc) from None
    return p


class StoppableStream:
    """A text stream on a FIFO or device whose writes wait for the reader only while ``stop`` is not set.

    A reader that stops reading (a paused log shipper) fills the pipe; a plain blocking ``write`` would then
    hold the thread in the kernel through SIGTERM (Python's handler runs and the write is retried, PEP 475),
    so ``edgecnn run`` would never stop. Here the descriptor stays non-blocking and a full pipe is waited
    on in short ``select`` slices: once ``stop`` is set, the write gives up with :class:`BrokenPipeError`
    (the output ends as if its reader had left) and the run finishes.
    """

    SLICE_S = 0.2

    def __init__(self, fd: int, stop: threading.Event) -> None:
        self._fd, self._stop = fd, stop
        self.closed = False

    def write(self, text: str) -> int:
        view = memoryview(text.encode("utf-8"))
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                if self._stop.is_set():
                    raise BrokenPipeError(
                        errno.EPIPE, "the reader stopped reading while the run stopped"
                    ) from None
                select.select([], [self._fd], [], self.SLICE_S)
        return len(text)

    def flush(self) -> None:
        pass  # every write went to the descriptor already

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)


def open_append(
    path: str | os.PathLike[str], *, what: str = "output", stop: threading.Event | None = None
) -> IO[str]:
    """A text stream that appends to ``path`` (a log such as ``--jsonl``: a restart adds to it), line
    buffered by the caller's flushes. A regular file is opened for appending, never replaced; a device or
    FIFO is opened as in :func:`write_atomic` (a FIFO with no reader is refused at once). With ``stop``, a
    device or FIFO is a :class:`StoppableStream`: a reader that stops reading cannot hold the writer past
    ``stop``."""
    target = check_output(path, what=what)
    try:
        if target.stream:
            fd = _open_stream(target, what)
            if stop is None:
                return os.fdopen(fd, "w", encoding="utf-8")
            os.set_blocking(fd, False)
            return cast(IO[str], StoppableStream(fd, stop))
        return open(target.real, "a", encoding="utf-8")
    except OSError as exc:
        raise _cannot(what, target.path, exc) from None


__all__ = [
    "DEFAULT_MODE",
    "OutputTarget",
    "StoppableStream",
    "atomic_path",
    "check_output",
    "open_append",
    "output_folder",
    "write_atomic",
]
