"""Every error edgecnn raises on purpose.

The CLI turns any of these into one line on stderr and a non-zero exit (see ``edgecnn.cli``); anything
else is a bug and gets a traceback. Each message names the problem and the fix.

    EdgecnnError                  exit 1 unless a subclass says otherwise
    ├── UsageError                bad option values or combinations (exit 2)
    ├── ModelError                model file missing, not TFLite, truncated, broken (exit 3)
    │   └── ModelInvokeError      the runtime could not prepare or run the model
    │       └── InvalidResult     outputs that cannot be right (NaN, scores outside 0..1, unknown class)
    ├── InputError                unreadable image or video, bad folder (exit 4)
    │   └── OutputError           an output path that cannot be written (also an OSError)
    ├── DeviceError               Edge TPU / delegate / camera problems (exit 5)
    │   ├── EdgeTPUNotFound
    │   └── DelegateCrashed       the delegate probe child died by a signal or hung
    ├── SourceError               a frame source could not be opened or stopped (exit 6)
    ├── ConfigError               instance configuration invalid (exit 7)
    ├── RuntimeMissing            no TFLite runtime / optional extra installed (exit 8)
    ├── TrainingError             dataset unavailable, training failed (exit 9)
    ├── ConversionError           conversion or verification failed (exit 10)
    └── ServiceError              systemd / installer problems (exit 11)
"""

from __future__ import annotations


class EdgecnnError(Exception):
    """Base class: ``str(err)`` is the single line the user sees."""

    exit_code = 1


class UsageError(EdgecnnError):
    exit_code = 2


class ModelError(EdgecnnError):
    exit_code = 3


class ModelInvokeError(ModelError):
    pass


class InvalidResult(ModelInvokeError):
    """One frame's outputs cannot be right. predict and eval stop on it; ``run`` drops and counts the
    frame, and stops only when frames keep coming out invalid (the model, not the frame, is broken)."""


class InputError(EdgecnnError):
    exit_code = 4


class OutputError(InputError, OSError):
    """An output that cannot be written (``edgecnn.atomic``): a directory, socket or FIFO with no reader
    as ``-o``, a full disk. Also an :class:`OSError`, so code that let a failed write pass as one (a probe
    cache in a read-only home) still does."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno  # type: ignore[misc]


class DeviceError(EdgecnnError):
    exit_code = 5


class EdgeTPUNotFound(DeviceError):
    pass


class DelegateCrashed(DeviceError):
    pass


class SourceError(EdgecnnError):
    exit_code = 6


class ConfigError(EdgecnnError):
    exit_code = 7


class RuntimeMissing(EdgecnnError):
    exit_code = 8


class TrainingError(EdgecnnError):
    exit_code = 9


class ConversionError(EdgecnnError):
    exit_code = 10


class ServiceError(EdgecnnError):
    exit_code = 11


def one_line(exc: BaseException | str, limit: int | None = None, *, first_line: bool = False) -> str:
    """``exc`` as one line for an ``edgecnn: error:`` message or a log: whitespace (newlines from a
    library's multi-line message included) collapsed, cut at ``limit`` characters, and the exception's
    type name when it says nothing at all.

    ``first_line`` keeps only the first non-blank line: the TFLite interpreter puts the reason there and
    follows it with a node dump and a link, which would drown the reason in an ``edgecnn: error:`` line.
    """
    raw = str(exc).strip()
    if first_line:
        raw = raw.splitlines()[0] if raw else raw
    text = " ".join(raw.split())
    if limit is not None:
        text = text[:limit]
    return text or (type(exc).__name__ if isinstance(exc, BaseException) else "")
