"""Inference backends by name: ``cpu``, ``edgetpu``, and ``auto`` that picks one per model.

The pattern is Frigate's detector registry (``frigate/detectors/detector_types.py``): a backend is found by
its key, parses its own typed options from the ``--device`` string (``edgetpu:usb:0`` -> the Edge TPU
backend with ``usb:0``), and is imported only when chosen, so the CPU path never loads Edge TPU code.
Unlike Frigate, nothing outside a backend branches on which backend or model it has: a backend says

- how to probe itself (:meth:`Backend.diagnose`, for ``edgecnn devices``),
- which models it runs (:meth:`Backend.claims`: the Edge TPU claims models compiled for it),
- how to open a model on it (:meth:`Backend.delegates`), and its CPU fallback (:meth:`Backend.cpu_fallback`),
- what its systemd sandbox needs (:meth:`Backend.sandbox`: drop-in lines, a udev rule).

Adding a backend is one module with a class following :class:`Backend` and one line in ``BACKENDS``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgecnn.errors import DeviceError, UsageError

if TYPE_CHECKING:
    from edgecnn.metadata import ModelMetadata
    from edgecnn.modelfile import ModelFile
    from edgecnn.runtime import Runtime

log = logging.getLogger(__name__)

# key -> "module:Class", imported on first use.
BACKENDS: dict[str, str] = {
    "cpu": "edgecnn.devices.backends.cpu:CPUBackend",
    "edgetpu": "edgecnn.devices.backends.edgetpu.backend:EdgeTPUBackend",
}
AUTO = "auto"


class DeviceKind(str, Enum):
    """The built-in ``--device`` names (a backend added to ``BACKENDS`` needs no member here)."""

    CPU = "cpu"
    EDGETPU = "edgetpu"
    AUTO = "auto"


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed ``--device`` value: a backend key (or ``auto``) and the backend's own address, if any.

    ``edgetpu:usb:0`` is ``DeviceSpec(EDGETPU, "usb:0")``; the address grammar belongs to the backend.
    """

    kind: DeviceKind | str  # a DeviceKind for the built-in names, else the registered key
    address: str | None = None  # e.g. pycoral's device string for the Edge TPU: usb, usb:N, pci, pci:N, :N

    @property
    def key(self) -> str:
        """The backend key (or ``auto``) as a plain string."""
        return self.kind.value if isinstance(self.kind, DeviceKind) else self.kind

    @property
    def tpu(self) -> str | None:
        """The Edge TPU device string (pycoral's grammar), or None for the first one."""
        return self.address if self.key == DeviceKind.EDGETPU.value else None

    def __str__(self) -> str:
        return self.key if self.address is None else f"{self.key}:{self.address}"


@dataclass(frozen=True)
class SandboxNeeds:
    """What a systemd unit needs to reach a backend's device: drop-in lines and a udev rule to install."""

    dropin: list[str] = field(default_factory=list)
    udev_rule: str | None = None  # file name under /etc/udev/rules.d
    udev_rule_text: str | None = None


@dataclass(frozen=True)
class Selection:
    """What :func:`select_backend` picked for a model: delegates to build the interpreter with, the device
    string that actually runs it, or a CPU model to open instead (``auto`` when the accelerator fails)."""

    device: str
    delegates: list[Any] = field(default_factory=list)
    fallback: Path | None = None


class Backend(Protocol):
    key: str
    description: str
    hardware: str  # for messages: "Edge TPU"

    def parse_address(self, address: str | None, value: str) -> str | None:
        """Validate the part after ``key:`` (``value`` is the whole ``--device`` for messages)."""
        ...

    def claims(self, model_file: ModelFile) -> bool:
        """Whether ``auto`` should try this backend for ``model_file``."""
        ...

    def delegates(
        self, model_file: ModelFile, address: str | None, runtime: Runtime, *, probe: bool
    ) -> list[Any]:
        """The TFLite delegates that run ``model_file`` here; raises DeviceError when this backend cannot."""
        ...

    def cpu_fallback(self, model_file: ModelFile, meta: ModelMetadata) -> Path | None:
        """A CPU build of ``model_file`` to run instead when this backend does not work."""
        ...

    def unavailable(self, model_file: ModelFile, cause: DeviceError) -> DeviceError:
        """The error for ``auto`` when this backend claims the model, fails, and has no CPU fallback."""
        ...

    def diagnose(self, sysfs_root: Path, dev_root: Path) -> dict[str, Any] | None:
        """What ``edgecnn devices`` reports about this backend (None: nothing to say)."""
        ...

    def sandbox(self) -> SandboxNeeds:
        """What a systemd service running this backend needs beyond the hardened template."""
        ...


_loaded: dict[str, Backend] = {}


def get_backend(key: str | DeviceKind) -> Backend:
    """The backend registered under ``key``, imported on first use; UsageError for unknown keys."""
    name = key.value if isinstance(key, DeviceKind) else key.strip().lower()
    if name not in BACKENDS:
        raise UsageError(f"Unknown backend {key!r}: use {', '.join(BACKENDS)} or {AUTO}.")
    if name not in _loaded:
        module, _, cls = BACKENDS[name].partition(":")
        _loaded[name] = getattr(importlib.import_module(module), cls)()
    return _loaded[name]


def parse_device(value: str | DeviceKind | DeviceSpec) -> DeviceSpec:
    """``cpu``, ``auto``, ``edgetpu``, ``edgetpu:usb``, ``edgetpu:pci:1``, ... -> :class:`DeviceSpec`."""
    if isinstance(value, DeviceSpec):
        return value
    if isinstance(value, DeviceKind):
        return DeviceSpec(value)
    text = value.strip().lower()
    name, sep, rest = text.partition(":")
    if name != AUTO and name not in BACKENDS:
        raise UsageError(
            f"Unknown device {value!r}: use {', '.join(BACKENDS)}, {AUTO}, or edgetpu:usb, edgetpu:usb:N, "
            "edgetpu:pci, edgetpu:pci:N."
        )
    kind: DeviceKind | str = DeviceKind(name) if name in {k.value for k in DeviceKind} else name
    if not sep:
        return DeviceSpec(kind)
    if name == AUTO:
        raise UsageError(f"Bad device {value!r}: auto takes no address; use auto or edgetpu:{rest}.")
    return DeviceSpec(kind, get_backend(name).parse_address(rest, value))


def backends_for(device: str | DeviceSpec | None) -> list[Backend]:
    """The backends an instance with ``device`` may use: one, or all for ``auto`` (CPU last)."""
    if not device:
        return [get_backend(DeviceKind.CPU)]
    spec = parse_device(device)
    if spec.key == AUTO:
        return [get_backend(k) for k in BACKENDS if k != DeviceKind.CPU.value] + [get_backend(DeviceKind.CPU)]
    return [get_backend(spec.key)]


def sandbox_needs(device: str | DeviceSpec | None) -> SandboxNeeds:
    """Everything the backends ``device`` may use need from systemd and udev, merged."""
    dropin: list[str] = []
    rule = text = None
    for backend in backends_for(device):
        needs = backend.sandbox()
        dropin += [line for line in needs.dropin if line not in dropin]
        rule, text = rule or needs.udev_rule, text or needs.udev_rule_text
    return SandboxNeeds(dropin, rule, text)


def select_backend(
    model_file: ModelFile,
    device: str | DeviceSpec,
    *,
    runtime: Runtime,
    meta: ModelMetadata,
    probe: bool = True,
) -> Selection:
    """Pick the backend for ``model_file`` on ``device`` and build its delegates.

    An explicit backend either works or raises its DeviceError. ``auto`` tries each accelerator that claims
    the model (the Edge TPU for an ``_edgetpu`` model); when none works it warns and names the claiming
    backend's CPU fallback (the CPU twin beside the file) for the caller to open instead, and raises when
    there is none.
    """
    spec = parse_device(device)
    if spec.key != AUTO:
        backend = get_backend(spec.key)
        return Selection(str(spec), backend.delegates(model_file, spec.address, runtime, probe=probe))
    failed: list[tuple[Backend, DeviceError]] = []
    for key in BACKENDS:
        backend = get_backend(key)
        if key == DeviceKind.CPU.value or not backend.claims(model_file):
            continue
        try:
            return Selection(key, backend.delegates(model_file, None, runtime, probe=probe))
        except DeviceError as exc:
            failed.append((backend, exc))
    for tried, error in failed:  # no accelerator worked: the first one's CPU build, if it has one
        twin = tried.cpu_fallback(model_file, meta)
        if twin is not None:
            log.warning(
                "--device auto: no %s works here, running the CPU model %s instead. %s",
                tried.hardware,
                twin,
                error,
            )
            return Selection("cpu", fallback=twin)
    if failed:
        first, cause = failed[0]
        raise first.unavailable(model_file, cause) from cause
    return Selection("cpu")


def cpu_fallback(model_file: ModelFile, meta: ModelMetadata) -> Path | None:
    """The CPU build to run instead of ``model_file`` (an Edge TPU model's CPU twin beside it), from the
    first accelerator backend that claims the model and names one; None when none does. Callers that only
    need to say which file would run (an error message) ask here, not a backend module by name."""
    for key in BACKENDS:
        if key == DeviceKind.CPU.value:
            continue
        backend = get_backend(key)
        if backend.claims(model_file):
            twin = backend.cpu_fallback(model_file, meta)
            if twin is not None:
                return twin
    return None


def device_help() -> str:
    """One line naming every backend, for CLI help and error messages."""
    return ", ".join(f"{k} ({get_backend(k).description})" for k in BACKENDS) + f", {AUTO}"


__all__ = [
    "AUTO",
    "BACKENDS",
    "Backend",
    "DeviceKind",
    "DeviceSpec",
    "SandboxNeeds",
    "Selection",
    "backends_for",
    "cpu_fallback",
    "get_backend",
    "parse_device",
    "sandbox_needs",
    "select_backend",
]
