"""``edgecnn bench formats``: the session's seed model on digits, converted to four formats, measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.bench.formats import FORMATS, compare_formats
from edgecnn.errors import UsageError
from tests.conftest import error_lines, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seed_keras(digits_run: Path) -> Path:
    """The session's short `edgecnn train` run on digits (formats writes nothing beside it)."""
    return digits_run / "model.keras"


def test_formats_side_by_side(seed_keras, tmp_path):
    out_dir = tmp_path / "formats"
    result = run_cli(
        "bench", "formats", seed_keras, "--dataset", "digits", "--runs", "5", "--out-dir", out_dir, "--json",
        timeout=600,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    # Progress names the format on every line; TensorFlow's retracing warnings stay hidden.
    for number, fmt in enumerate(FORMATS, 1):
        assert f"[{number}/{len(FORMATS)}] {fmt}: converting" in result.stderr, result.stderr
    assert "retracing" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    rows = {r["format"]: r for r in data["rows"]}
    assert list(rows) == list(FORMATS)
    sizes = {k: r["size_bytes"] for k, r in rows.items()}
    # float16 halves the weights, dynamic and int8 quarter them
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["dynamic"] < 0.35 * sizes["float32"] and sizes["int8"] < 0.35 * sizes["float32"]
    assert rows["float32"]["size_vs_float32"] == pytest.approx(1.0, abs=0.02)
    assert rows["int8"]["input_dtype"] == "int8" and rows["float32"]["input_dtype"] == "float32"
    assert data["samples"] > 100 and "held-out" in data["held_out"]
    for r in rows.values():
        assert 0 < r["median_ms"] <= r["p99_ms"]
        assert r["accuracy"] is not None and 0 <= r["accuracy"] <= 1
        assert Path(r["path"]).is_file() and Path(r["path"]).parent == out_dir
    # float32 TFLite is the Keras model: same top-1 on (nearly) every held-out image
    assert rows["float32"]["agreement"] >= 0.99
    assert rows["float32"]["accuracy"] == pytest.approx(rows["float32"]["keras_accuracy"], abs=0.01)
    assert rows["float32"]["speedup_vs_float32"] == 1.0
    # the trained model is good, and int8 keeps (nearly) all of it
    assert rows["float32"]["accuracy"] > 0.8
    assert rows["int8"]["accuracy"] >= rows["float32"]["accuracy"] - 0.05


def test_formats_rejects_unknown_format(seed_keras):
    with pytest.raises(UsageError, match="Unknown format"):
        compare_formats(seed_keras, dataset="digits", formats=("float64",))


def test_formats_unknown_dataset_is_one_clear_line(seed_keras):
    result = run_cli(
        "bench", "formats", seed_keras, "--dataset", "no-such-dataset", "--runs", "3", timeout=300
    )
    assert result.code != 0
    [line] = error_lines(result.stderr)
    assert "no-such-dataset" in line and "Traceback" not in result.stderr
