"""The backend registry (edgecnn.devices.backends): keys, typed addresses, lazy import, ``auto``, sandbox needs.

Real models from tests/data/coral; this machine has no Edge TPU and no libedgetpu, so the Edge TPU
backend fails here exactly as on a machine without a Coral, which is what ``auto`` must survive.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edgecnn.devices import backends
from edgecnn.devices.backends import (
    BACKENDS,
    DeviceKind,
    DeviceSpec,
    SandboxNeeds,
    get_backend,
    parse_device,
    sandbox_needs,
    select_backend,
)
from edgecnn.errors import DeviceError, EdgeTPUNotFound, UsageError
from edgecnn.metadata import read_metadata
from edgecnn.model import open_model
from edgecnn.modelfile import ModelFile, read_model
from edgecnn.runtime import get_runtime
from tests.conftest import MOBILENET, MOBILENET_EDGETPU


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("cpu", DeviceSpec(DeviceKind.CPU)),
        ("AUTO", DeviceSpec(DeviceKind.AUTO)),
        ("edgetpu", DeviceSpec(DeviceKind.EDGETPU)),
        ("edgetpu:usb:1", DeviceSpec(DeviceKind.EDGETPU, "usb:1")),
        ("edgetpu:pci", DeviceSpec(DeviceKind.EDGETPU, "pci")),
        ("edgetpu::0", DeviceSpec(DeviceKind.EDGETPU, ":0")),
    ],
)
def test_device_grammar(value, spec):
    parsed = parse_device(value)
    assert parsed == spec and str(parsed) == value.lower()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gpu", "Unknown device 'gpu': use cpu, edgetpu, auto"),
        ("edgetpu:usb2", "Bad Edge TPU device 'edgetpu:usb2'"),
        ("edgetpu:", "Bad Edge TPU device 'edgetpu:'"),
        ("cpu:1", "cpu takes no address"),
        ("auto:usb", "auto takes no address"),
    ],
)
def test_bad_devices_name_the_fix(value, message):
    with pytest.raises(UsageError, match=message):
        parse_device(value)


def test_unknown_backend_is_rejected_by_the_factory():
    with pytest.raises(UsageError, match="Unknown backend 'hailo'"):
        get_backend("hailo")


def test_the_cpu_path_never_imports_edge_tpu_code():
    code = (
        "import sys\n"
        "from edgecnn.model import open_model\n"
        f"clf = open_model({str(MOBILENET)!r}, device='cpu')\n"
        "assert clf.device == 'cpu'\n"
        "print(sorted(m for m in sys.modules if m.startswith('edgecnn.devices.backends.edgetpu')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_auto_picks_the_cpu_for_a_cpu_model():
    mf = read_model(MOBILENET)
    sel = select_backend(mf, "auto", runtime=get_runtime(), meta=read_metadata(mf))
    assert (sel.device, sel.delegates, sel.fallback) == ("cpu", [], None)


def test_auto_falls_back_to_the_cpu_twin_when_no_edge_tpu_works(tmp_path, caplog):
    shutil.copy(MOBILENET, tmp_path / "m.tflite")
    shutil.copy(MOBILENET_EDGETPU, tmp_path / "m_edgetpu.tflite")
    mf = read_model(tmp_path / "m_edgetpu.tflite")
    with caplog.at_level(logging.WARNING):
        sel = select_backend(mf, "auto", runtime=get_runtime(), meta=read_metadata(mf))
    assert sel.fallback == tmp_path / "m.tflite" and sel.device == "cpu"
    assert "--device auto: no Edge TPU works here, running the CPU model" in caplog.text
    (tmp_path / "m.tflite").unlink()
    with pytest.raises(EdgeTPUNotFound, match="no Edge TPU works here"):
        select_backend(mf, "auto", runtime=get_runtime(), meta=read_metadata(mf))


class _Recorder:
    """A backend a test registers under a new key: one class, one registry line, nothing else."""

    key = "recorder"
    description = "records what it was asked"
    hardware = "recorder"
    calls: ClassVar[list[str]] = []

    def parse_address(self, address: str | None, value: str) -> str | None:
        return address

    def claims(self, model_file: ModelFile) -> bool:
        return True

    def delegates(
        self, model_file: ModelFile, address: str | None, runtime: Any, *, probe: bool
    ) -> list[Any]:
        self.calls.append(f"delegates {address}")
        raise DeviceError("no recorder attached")

    def cpu_fallback(self, model_file: ModelFile, meta: Any) -> Path | None:
        return MOBILENET

    def unavailable(self, model_file: ModelFile, cause: DeviceError) -> DeviceError:
        return cause

    def diagnose(self, sysfs_root: Path, dev_root: Path) -> dict[str, Any] | None:
        return {"summary": "recorder: nothing attached"}

    def sandbox(self) -> SandboxNeeds:
        return SandboxNeeds(["DeviceAllow=/dev/recorder rw"])


def test_a_new_backend_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(BACKENDS, "recorder", f"{__name__}:_Recorder")
    monkeypatch.setattr(backends, "_loaded", {})
    assert parse_device("recorder:3") == DeviceSpec("recorder", "3")
    with pytest.raises(DeviceError, match="no recorder attached"):
        open_model(MOBILENET, device="recorder:3")
    clf = open_model(MOBILENET, device="auto")  # tried, failed, fell back to its CPU model
    assert clf.device == "cpu" and _Recorder.calls == ["delegates 3", "delegates None"]
    assert "DeviceAllow=/dev/recorder rw" in sandbox_needs("auto").dropin


def test_sandbox_needs_follow_the_device():
    assert sandbox_needs("cpu") == SandboxNeeds()
    tpu = sandbox_needs("edgetpu:usb")
    assert "DeviceAllow=char-usb_device rw" in tpu.dropin and tpu.udev_rule == "99-edgecnn-coral.rules"
    assert tpu.udev_rule_text and "18d1" in tpu.udev_rule_text and sandbox_needs("auto") == tpu


def test_edgetpu_options_are_typed_and_round_trip():
    from edgecnn.devices.backends.edgetpu.backend import EdgeTPUOptions

    assert EdgeTPUOptions.parse("usb:1", "edgetpu:usb:1") == EdgeTPUOptions("usb", 1)
    assert EdgeTPUOptions.parse(":0", "edgetpu::0") == EdgeTPUOptions(None, 0)
    assert [str(EdgeTPUOptions.parse(a, a)) for a in ("usb", "pci:2", ":3")] == ["usb", "pci:2", ":3"]


def test_devices_lists_the_registered_backends():
    import json

    from tests.conftest import run_cli

    result = run_cli("devices", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["backends"] == list(BACKENDS) == ["cpu", "edgetpu"]


def test_the_cpu_twin_comes_from_the_backend_that_claims_the_model(tmp_path):
    """model.py names the CPU build in its "compiled for the Edge TPU" error by asking the registry, which
    asks the backend claiming the model; a CPU model has none, and no Edge TPU twin beside it is none."""
    shutil.copy(MOBILENET, tmp_path / "m.tflite")
    shutil.copy(MOBILENET_EDGETPU, tmp_path / "m_edgetpu.tflite")
    tpu = read_model(tmp_path / "m_edgetpu.tflite")
    assert backends.cpu_fallback(tpu, read_metadata(tpu)) == tmp_path / "m.tflite"
    cpu = read_model(tmp_path / "m.tflite")
    assert backends.cpu_fallback(cpu, read_metadata(cpu)) is None
    (tmp_path / "m.tflite").unlink()
    assert backends.cpu_fallback(tpu, read_metadata(tpu)) is None


def test_the_runtime_names_no_backend_module():
    """edgecnn/model.py reaches backends only through the registry (edgecnn.devices.backends)."""
    import ast

    import edgecnn.model

    tree = ast.parse(Path(edgecnn.model.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "edgecnn.devices.backends" in imported
    assert not [m for m in imported if m.startswith("edgecnn.devices.backends.")]
