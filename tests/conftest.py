"""Shared fixtures: real models and images, never downloads.

``digits_model`` trains the seed CNN on scikit-learn's bundled digits once per session and converts it to
int8 TFLite with edgecnn metadata, so runtime tests classify with a model this project produced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = ROOT / "tests" / "data"
CORAL = TESTDATA / "coral"
MOBILENET = CORAL / "mobilenet_v1_0.25_128_quant.tflite"
MOBILENET_EDGETPU = CORAL / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
BROKEN_MODEL = CORAL / "model_invoking_error.tflite"
CAT = CORAL / "cat.bmp"
MNIST_NINE = CORAL / "mnist_nine.bmp"


# Fixtures that train or build a model with TensorFlow (directly or through tests/detectors.py,
# tests/odd_outputs.py, edgecnn.train, edgecnn.converters, edgecnn.demo). Every test that uses one, however
# indirectly (``item.fixturenames`` is the whole closure), is marked ``slow`` by pytest_collection_modifyitems
# below, so `make test-fast` (``-m "not slow"``) never waits for TensorFlow. tests/test_markers.py fails when a
# fixture in tests/ reaches TensorFlow and is missing here. Tests that run TensorFlow in their own body carry
# ``@pytest.mark.slow`` themselves, and so do the tests whose real processes take many seconds and have no
# faster stand-in: building the wheel (tests/test_wheel.py, one test in tests/test_fleet.py), the booted
# systemd container (tests/test_service_systemd.py) and Chromium (tests/test_preview_browser.py).
SLOW_FIXTURES = frozenset(
    {
        "digits_run",  # conftest: `edgecnn train` on digits
        "digits_model",  # conftest: digits_run converted to int8
        "detectors",  # conftest: tests/detectors.py trains every detector layout
        "odd_models",  # conftest: tests/detectors.py builds odd-output models with TensorFlow
        "flat_model",  # test_convert.py: a Keras model with a flat input
        "models",  # test_input_quantization.py: classifiers converted with TensorFlow
        "nms_model",  # test_input_quantization.py: a constant YOLO built with TensorFlow
        "odd",  # test_detector_sanity.py: tests/odd_outputs.fixed_output_tflite (TensorFlow)
        "fixed_detectors",  # test_fuzz_models.py: the same
        "quick_demo",  # test_demo.py: edgecnn.demo trains and converts
        "yolo_head_exports",  # test_yolo_heads.py: tests/yolo_tf.py builds a YOLOv8-like export
        "v5_exports",  # test_yolo_heads.py: tests/yolo_tf.py builds YOLOv5-style exports
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a fixture from SLOW_FIXTURES (in one place, not per file)."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def coral() -> Path:
    if not MOBILENET.exists():
        pytest.fail(f"test data missing: {CORAL} (it is part of the repository: tests/data/)")
    return CORAL


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
) -> CliResult:
    """Run ``edgecnn`` in a real subprocess of this interpreter."""
    full_env = {k: v for k, v in os.environ.items() if k != "EDGECNN_DEBUG"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def error_lines(stderr: str) -> list[str]:
    """stderr lines that edgecnn wrote (the C++ runtime's own INFO lines are not ours)."""
    return [line for line in stderr.splitlines() if line.startswith("edgecnn:")]


def digits_dataset(size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (0..16) as 28x28 uint8 images (0..255)."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).astype(np.uint8)
    big = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in images])
    return big, digits.target.astype(np.int64)


@dataclass(frozen=True)
class DigitsModel:
    tflite: Path  # int8 TFLite with edgecnn metadata
    images: np.ndarray  # held-out 28x28 uint8 images
    labels: np.ndarray


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (short) `edgecnn train` run on digits: model.keras, labels.txt, metrics.json, curves.png.

    Five epochs without augmentation reach about 95% test accuracy in seconds; fixed seed, so reproducible.
    """
    from edgecnn.train import train

    out = tmp_path_factory.mktemp("digits_run")
    train(output=out, dataset="digits", epochs=5, augment=False, early_stopping=False, verbose=0)
    return out


@pytest.fixture(scope="session")
def digits_model(digits_run: Path) -> DigitsModel:
    """The digits run converted by `edgecnn convert` (int8, labels and GRAY/255 normalization embedded).

    ``images`` are test-split digits: neither training nor calibration saw them.
    """
    from edgecnn.converters.pipeline import convert
    from edgecnn.train import load_dataset

    report = convert(
        digits_run / "model.keras", output=digits_run / "model_int8.tflite", calibration_samples=200
    )
    held_out = load_dataset("digits")  # same seed and split as the run
    return DigitsModel(Path(report.output), held_out.x_test[:200, ..., 0], held_out.y_test[:200])


# Fuzz tests (tests/test_fuzz_*.py): a fixed seed and a bounded budget in CI, more cases locally with
# HYPOTHESIS_PROFILE=local. No example database: a run never depends on an earlier one's files.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the dev extra is not installed: the fuzz tests skip themselves
    pass
else:
    _FUZZ = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("ci", max_examples=60, derandomize=True, **_FUZZ)
    settings.register_profile("local", max_examples=500, **_FUZZ)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how often the static Edge TPU check agreed with the real compiler (tests/test_edgetpu_static_check.py)."""
    module = next((m for n, m in list(sys.modules.items()) if n.endswith("test_edgetpu_static_check")), None)
    agreement = getattr(module, "AGREEMENT", None)
    if agreement:
        exact = sum(agreement.values())
        terminalreporter.write_line(
            f"edgetpu static check vs edgetpu_compiler: {exact} of {len(agreement)} corpus entries exact"
        )
        for name, ok in sorted(agreement.items()):
            terminalreporter.write_line(f"  {'exact' if ok else 'DIFFERS'}  {name}")


@pytest.fixture(scope="session")
def detectors(tmp_path_factory: pytest.TempPathFactory):
    """Real detectors in every layout, trained once per session on generated shapes (about a minute).

    See ``tests/detectors.py``: ``detectors["yolo_int8"]`` is a path, ``detectors.held_out`` scenes with
    their boxes, ``detectors.classes`` the label names. The files are built once per machine and kept in
    the user's cache folder under a name derived from ``tests/detectors.py`` and the TensorFlow version
    (so any change to how they are made builds them afresh); ``EDGECNN_TEST_DETECTORS=DIR`` puts them in
    DIR instead, ``EDGECNN_TEST_DETECTORS=fresh`` builds them in this session's temporary folder.
    """
    import contextlib
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from tests.detectors import build_detectors

    where = os.environ.get("EDGECNN_TEST_DETECTORS")
    if where == "fresh":
        return build_detectors(tmp_path_factory.mktemp("detectors"))
    if where:
        return build_detectors(Path(where))
    source = (ROOT / "tests" / "detectors.py").read_bytes()
    for dist in ("tensorflow", "tensorflow-cpu", "keras"):
        with contextlib.suppress(PackageNotFoundError):
            source += f"{dist} {version(dist)}".encode()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecnn-tests"
    return build_detectors(base / f"detectors-{hashlib.sha256(source).hexdigest()[:12]}")


@pytest.fixture(scope="session")
def odd_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small untrained models: MoveNet-shaped keypoints and an int64 class map (decoded as pose and segment
    since they have task modules), two heads (no task's), an embedding, a NaN YOLO output."""
    from tests.detectors import build_odd_models

    return build_odd_models(tmp_path_factory.mktemp("odd_models"))
