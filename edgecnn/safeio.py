"""Read files users hand us without hanging, without reading forever, and with one error line.

A device on a shelf is fed files people copy onto it: a path that is a FIFO with no writer blocks a plain
``open()`` forever, and ``/dev/zero`` read with ``read_bytes()`` ends in ``MemoryError`` (or the OOM killer
on a 1 GB Pi). Every command that reads a user-supplied file goes through :func:`read_bytes` /
:func:`read_text` (or :func:`check_file` for files another library opens), which:

- opens with ``O_NONBLOCK`` so a FIFO cannot block, then ``fstat``\\ s the open descriptor (no race with a
  rename) and refuses anything but a regular file by name (FIFO, character/block device, socket, directory);
- refuses a file larger than the cap for its :class:`FileKind` (a model may be hundreds of MB; a labels file
  of 1 GB is not a labels file), and never reads more than cap + 1 bytes even if the file grows meanwhile.

Errors are the typed error of the kind (a model problem is a :class:`~edgecnn.errors.ModelError`, a config
problem a :class:`~edgecnn.errors.ConfigError`, ...), so each command keeps its exit code.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, EdgecnnError, InputError, ModelError, UsageError

MiB = 1 << 20


@dataclass(frozen=True)
class _Kind:
    what: str  # how messages name the file
    cap: int  # bytes
    error: type[EdgecnnError]
    hint: str  # what the user should pass instead


class FileKind(enum.Enum):
    """Kinds of user-supplied file, each with a size cap well above any real file of that kind."""

    MODEL = _Kind("model file", 1024 * MiB, ModelError, "pass the .tflite file itself")
    KERAS = _Kind("Keras model", 2048 * MiB, ModelError, "pass the .keras file written by `edgecnn train`")
    LABELS = _Kind("labels file", 8 * MiB, InputError, "pass a text file with one label per line")
    CONFIG = _Kind("config file", 1 * MiB, ConfigError, "pass a TOML file of run options")
    JSON = _Kind("JSON file", 64 * MiB, InputError, "pass a file written by `edgecnn bench MODEL -o FILE`")
    ANNOTATIONS = _Kind("annotation file", 1024 * MiB, InputError, "pass a COCO JSON or YOLO label file")
    IMAGE = _Kind("image", 256 * MiB, InputError, "pass a JPEG, PNG, BMP or WebP file")
    SECRET = _Kind("secret file", 64 * 1024, ConfigError, "pass a file holding the secret on one line")
    CERTIFICATE = _Kind(
        "CA certificate", 16 * MiB, ConfigError, "pass the PEM file that signed the broker's certificate"
    )
    INVENTORY = _Kind("inventory", 16 * MiB, UsageError, "pass an Ansible inventory file or folder")

    @property
    def what(self) -> str:
        return self.value.what

    @property
    def cap(self) -> int:
        return self.value.cap


_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _describe(mode: int) -> str:
    for test, name in _NOT_REGULAR:
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


def _error(kind: FileKind, message: str) -> EdgecnnError:
    return kind.value.error(message)


def _open(path: Path, kind: FileKind) -> int:
    """A descriptor for a regular file of at most ``kind.cap`` bytes, or the kind's typed error."""
    what = kind.what
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of blocking forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise _error(kind, f"{what[0].upper()}{what[1:]} not found: {path}. Check the path.") from None
    except IsADirectoryError:
        raise _error(kind, f"{path} is a directory, not a {what}: {kind.value.hint}.") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in (errno.EACCES, errno.EPERM):
            reason += " (check its permissions)"
        raise _error(kind, f"Cannot open {what} {path}: {reason}.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _error(
                kind,
                f"{path} is {_describe(info.st_mode)}, not a regular file: {kind.value.hint}.",
            )
        if info.st_size > kind.cap:
            raise _error(
                kind,
                f"{path} is {_size_text(info.st_size)}, more than any {what} should be "
                f"(limit {_size_text(kind.cap)}): {kind.value.hint}.",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_file(path: str | os.PathLike[str], kind: FileKind) -> Path:
    """Check that ``path`` is a regular file within the kind's cap, for files another library opens."""
    p = Path(path)
    os.close(_open(p, kind))
    return p


def file_problem(path: str | os.PathLike[str], kind: FileKind) -> str | None:
    """Why ``path`` is no usable file of ``kind`` (``None``: it is one), for a checker that words its own error.

    "not found" only when nothing is there: a directory, a FIFO or a device is named as what it is (a
    password "file" that is a named pipe is not missing), as is a file too large or unreadable. Nothing
    is read, and a FIFO is never blocked on.
    """
    if not os.path.lexists(path):
        return f"{path} not found"
    try:
        check_file(path, kind)
    except EdgecnnError as exc:
        return str(exc).rstrip(".")
    return None


def read_bytes(path: str | os.PathLike[str], kind: FileKind) -> bytes:
    """All of a regular file, at most ``kind.cap`` bytes; the kind's typed error otherwise."""
    p = Path(path)
    fd = _open(p, kind)
    try:
        os.set_blocking(fd, True)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(8 * MiB, kind.cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > kind.cap:
                raise _error(
                    kind,
                    f"{p} grew past {_size_text(kind.cap)} while being read, more than any {kind.what} "
                    f"should be: {kind.value.hint}.",
                )
    except OSError as exc:
        raise _error(kind, f"Cannot read {kind.what} {p}: {exc.strerror or type(exc).__name__}.") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], kind: FileKind) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a BOM is dropped), with a typed error for other encodings."""
    data = read_bytes(path, kind)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _error(
            kind,
            f"{path} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}): {kind.value.hint}.",
        ) from None


# No real config or bench file nests more than a few levels (a config: table -> mqtt table -> value); a
# generous limit still turns a hostile 50,000-deep array into one error line instead of a RecursionError.
MAX_NESTING = 32


def _too_deep(value: Any, limit: int) -> bool:
    """Whether containers in ``value`` nest deeper than ``limit``, walked with an explicit stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _nesting_error(kind: FileKind, path: str | os.PathLike[str]) -> EdgecnnError:
    return _error(
        kind,
        f"{path} nests arrays or tables more than {MAX_NESTING} levels deep, deeper than any real "
        f"{kind.what}: {kind.value.hint}.",
    )


def loads_toml(text: str, path: str | os.PathLike[str], kind: FileKind = FileKind.CONFIG) -> dict[str, Any]:
    """``tomllib.loads`` with one typed error for bad syntax, absurd numbers and absurd nesting."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise _nesting_error(kind, path) from None
    except ValueError as exc:  # TOMLDecodeError, or e.g. an integer of more than 4300 digits
        raise _error(kind, f"{path}: not valid TOML: {exc}.") from None
    if _too_deep(data, MAX_NESTING):
        raise _nesting_error(kind, path)
    return data


def loads_json(text: str, path: str | os.PathLike[str], kind: FileKind = FileKind.JSON) -> Any:
    """``json.loads`` with one typed error for bad syntax, absurd numbers and absurd nesting."""
    import json

    try:
        data = json.loads(text)
    except RecursionError:
        raise _nesting_error(kind, path) from None
    except ValueError as exc:  # JSONDecodeError, or e.g. an integer of more than 4300 digits
        raise _error(kind, f"{path} is not JSON ({exc}): {kind.value.hint}.") from None
    if _too_deep(data, MAX_NESTING):
        raise _nesting_error(kind, path)
    return data
