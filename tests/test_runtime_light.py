"""The device path never imports TensorFlow, even where it is installed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import CAT, MOBILENET

PROBE = f"""
import sys
import edgecnn.cli
from edgecnn.inspection import inspect_model
from edgecnn.predict import predict
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
