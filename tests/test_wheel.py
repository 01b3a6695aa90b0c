"""The built wheel is the runtime: installed without extras into a fresh venv, it predicts.

This is what a Raspberry Pi gets from `pip install edgecnn`: no TensorFlow, and converters/devices/systemd
inside the `edgecnn` package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CAT, MOBILENET, ROOT

# Builds the wheel and pip-installs it into a fresh venv (about 30 s): `make test-fast` leaves it to `make test`.
pytestmark = pytest.mark.slow


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ]
    )
    (path,) = out.glob("edgecnn-*.whl")
    return path


def test_wheel_contains_subpackages_and_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "edgecnn/cli/__init__.py",
        "edgecnn/converters/__init__.py",
        "edgecnn/devices/backends/edgetpu/delegate.py",
        "edgecnn/systemd/__init__.py",
        "edgecnn/devices/sources/demo_digits.png",
        "edgecnn/demo/shapes_detector.tflite",  # the demo counts with it
        "edgecnn/run/page.html",
        "edgecnn/run/token.html",  # read when the server module loads: a wheel without it cannot serve
    ):
        assert expected in names
    assert not any(n.startswith(("converters/", "devices/", "systemd/", "tests/")) for n in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    requires = [
        line
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist")
    ]
    runtime = [r for r in requires if "extra ==" not in r]
    assert not any("tensorflow" in r for r in runtime), runtime


def test_wheel_predicts_in_fresh_venv_without_train_extra(wheel, tmp_path, coral):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)])
    listed = _run([str(py), "-m", "pip", "list", "--format=json"]).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert "tensorflow" not in installed and "tensorflow-cpu" not in installed and "keras" not in installed
    exe = env_dir / "bin" / "edgecnn"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = _run([str(exe), "predict", str(MOBILENET), str(CAT), "--json"], env=env, cwd=tmp_path)
    assert json.loads(out.stdout)["results"][0]["classes"][0]["label"] == "tiger cat"
    # The demo source reads its digits from package data: it must be in the wheel and found there.
    out = _run([str(exe), "run", str(MOBILENET), "--source", "demo", "--max-frames", "2", "--quiet"], env=env)
    assert "summary: 2 frames" in out.stdout
    version = _run([str(exe), "--version"], env=env, cwd=tmp_path).stdout
    assert version.startswith("edgecnn ")
