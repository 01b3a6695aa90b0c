"""The CPU backend: TFLite's built-in kernels (XNNPACK where the runtime has it), no delegate, no device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.devices.backends import SandboxNeeds
from edgecnn.errors import DeviceError, UsageError

if TYPE_CHECKING:
    from edgecnn.metadata import ModelMetadata
    from edgecnn.modelfile import ModelFile
    from edgecnn.runtime import Runtime


class CPUBackend:
    key = "cpu"
    description = "TFLite built-in kernels"
    hardware = "CPU"

    def parse_address(self, address: str | None, value: str) -> str | None:
        raise UsageError(f"Bad device {value!r}: cpu takes no address; use cpu (and --threads N).")

    def claims(self, model_file: ModelFile) -> bool:
        return not model_file.is_edgetpu

    def delegates(
        self, model_file: ModelFile, address: str | None, runtime: Runtime, *, probe: bool
    ) -> list[Any]:
        return []

    def cpu_fallback(self, model_file: ModelFile, meta: ModelMetadata) -> Path | None:
        return None

    def unavailable(self, model_file: ModelFile, cause: DeviceError) -> DeviceError:
        return cause

    def diagnose(self, sysfs_root: Path, dev_root: Path) -> dict[str, Any] | None:
        return None

    def sandbox(self) -> SandboxNeeds:
        return SandboxNeeds()
