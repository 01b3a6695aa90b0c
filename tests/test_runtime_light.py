"""The device path never imports TensorFlow, even where it is installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import CAT, MOBILENET

PROBE = f"""
import sys
import edgecnn.cli
from edgecnn.inspect.contents import inspect_model
from edgecnn.predict.files import predict
inspect_model({str(MOBILENET)!r})
report = predict({str(MOBILENET)!r}, [{str(CAT)!r}])
assert report.results[0].classes[0].label == "tiger cat"
heavy = sorted(m for m in ("tensorflow", "keras", "sklearn", "matplotlib") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_runtime_path_imports_no_tensorflow(coral):
    import importlib.util

    assert importlib.util.find_spec("tensorflow") is not None, (
        "TensorFlow must be installed for this test to mean something"
    )
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_runtime_reports_its_name(monkeypatch):
    from edgecnn.runtime import get_runtime

    get_runtime.cache_clear()
    runtime = get_runtime()
    assert runtime.name == "ai-edge-litert" and runtime.version[0].isdigit()


FALLBACK = f"""
import logging, sys
sys.modules["ai_edge_litert.interpreter"] = None  # as if its interpreter were unavailable (the schema stays)
sys.modules["tflite_runtime"] = None
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from edgecnn.predict.files import predict
report = predict({str(MOBILENET)!r}, [{str(CAT)!r}])
print("RUNTIME", report.runtime)
print("LABEL", report.results[0].classes[0].label)
"""


@pytest.mark.slow  # runs TensorFlow's own interpreter
def test_falls_back_to_tf_lite_with_a_warning_when_no_litert(coral):
    out = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "RUNTIME tensorflow" in out.stdout and "LABEL tiger cat" in out.stdout
    assert "install ai-edge-litert" in out.stderr


def test_no_runtime_at_all_is_one_clear_error(coral):
    code = FALLBACK.replace(
        'sys.modules["tflite_runtime"] = None',
        'sys.modules["tflite_runtime"] = None\nsys.modules["tensorflow"] = None',
    )
    code = code.replace(
        "from edgecnn.predict.files import predict",
        f"from edgecnn.cli import main\nsys.argv = ['edgecnn', 'predict', {str(MOBILENET)!r}, {str(CAT)!r}]\nmain()",
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 8
    assert "edgecnn: error: No TFLite runtime found: pip install ai-edge-litert" in out.stderr
    assert "Traceback" not in out.stderr
