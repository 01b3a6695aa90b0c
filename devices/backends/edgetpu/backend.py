"""The Edge TPU as a backend of the registry (key ``edgetpu``): the one place the rest of edgecnn meets it.

Opening a model goes through crash containment first (``probe.probe_edgetpu``: a child process loads the
delegate, allocates the model and runs it once, so a libedgetpu that segfaults kills the child, not the
caller), then the production loader (``delegate.load_edgetpu_delegate``). The CPU fallback is the model's
CPU twin: the file its metadata names (``cpu_twin``, written by ``edgecnn convert --edgetpu``), else
``NAME.tflite`` beside ``NAME_edgetpu.tflite`` (Coral's naming).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgecnn.devices.backends import SandboxNeeds
from edgecnn.devices.backends.edgetpu import sandbox
from edgecnn.errors import DeviceError, EdgeTPUNotFound, UsageError

if TYPE_CHECKING:
    from edgecnn.metadata import ModelMetadata
    from edgecnn.modelfile import ModelFile
    from edgecnn.runtime import Runtime

# pycoral/utils/edgetpu.py's device strings: usb, usb:N, pci, pci:N, or :N (the Nth of any kind).
_TPU_DEVICE = re.compile(r"(?P<bus>usb|pci)?(?::(?P<index>[0-9]+))?")  # fullmatch, ASCII digits


@dataclass(frozen=True)
class EdgeTPUOptions:
    """The typed form of the part after ``edgetpu:`` (pycoral's grammar); ``str()`` gives it back."""

    bus: Literal["usb", "pci"] | None = None  # None: either
    index: int | None = None  # None: the first one

    @classmethod
    def parse(cls, address: str, value: str) -> EdgeTPUOptions:
        match = _TPU_DEVICE.fullmatch(address)
        if not address or match is None:
            raise UsageError(
                f"Bad Edge TPU device {value!r}: after 'edgetpu:' use usb, usb:N, pci, pci:N or :N (pycoral's grammar)."
            )
        bus = match.group("bus")
        index = match.group("index")
        return cls("usb" if bus == "usb" else "pci" if bus == "pci" else None, int(index) if index else None)

    def __str__(self) -> str:
        return (self.bus or "") + (f":{self.index}" if self.index is not None else "")


def cpu_twin(model_file: ModelFile, meta: ModelMetadata) -> Path | None:
    """The CPU build beside an Edge TPU model: named in metadata, or NAME.tflite beside NAME_edgetpu.tflite."""
    if model_file.path is None:
        return None
    folder = model_file.path.parent
    names = []
    if meta.cpu_twin:
        names.append(meta.cpu_twin)
    stem = model_file.path.stem
    if stem.endswith("_edgetpu"):
        names.append(stem[: -len("_edgetpu")] + model_file.path.suffix)
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


class EdgeTPUBackend:
    key = "edgetpu"
    description = "Coral Edge TPU (USB or PCIe), for models compiled by edgetpu_compiler"
    hardware = "Edge TPU"

    def parse_address(self, address: str | None, value: str) -> str | None:
        """Validate through :class:`EdgeTPUOptions` and return pycoral's canonical device string."""
        return str(EdgeTPUOptions.parse(address or "", value))

    def claims(self, model_file: ModelFile) -> bool:
        return model_file.is_edgetpu

    def delegates(
        self, model_file: ModelFile, address: str | None, runtime: Runtime, *, probe: bool
    ) -> list[Any]:
        """Unless ``probe`` is False, the crash-contained probe runs first (skipped when it passed before for
        this library, runtime and model); then libedgetpu is loaded into this process."""
        from edgecnn.devices.backends.edgetpu.delegate import load_edgetpu_delegate
        from edgecnn.devices.backends.edgetpu.probe import probe_edgetpu
        from edgecnn.metadata import read_metadata

        if probe:
            twin = cpu_twin(model_file, read_metadata(model_file)) if model_file.is_edgetpu else None
            probe_edgetpu(model_file, address, runtime, cpu_model=twin)
        return [load_edgetpu_delegate(runtime, address)]

    def cpu_fallback(self, model_file: ModelFile, meta: ModelMetadata) -> Path | None:
        return cpu_twin(model_file, meta)

    def unavailable(self, model_file: ModelFile, cause: DeviceError) -> DeviceError:
        return EdgeTPUNotFound(
            f"{model_file.path} is compiled for the Edge TPU and no Edge TPU works here ({cause}). "
            "Attach a Coral, or pass the CPU model (the same name without _edgetpu)."
        )

    def diagnose(self, sysfs_root: Path, dev_root: Path) -> dict[str, Any] | None:
        """libedgetpu as the loader would open it, and its pairing with this runtime (never in-process)."""
        from edgecnn.devices.backends.edgetpu.pairing import diagnose_edgetpu
        from edgecnn.errors import EdgecnnError

        try:
            return diagnose_edgetpu(sysfs_root=sysfs_root, dev_root=dev_root).to_dict()
        except EdgecnnError as exc:
            return {"error": str(exc)}

    def sandbox(self) -> SandboxNeeds:
        return SandboxNeeds(list(sandbox.DROPIN), sandbox.UDEV_RULE, sandbox.udev_rule_text())
