"""How many objects per frame: one bound (edgecnn.tasks.MAX_DETECTIONS) for the user's --max-detections and
for what a model's TFLite_Detection_PostProcess op asks of the runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from flatbuffers import flexbuffers

from edgecnn.errors import UsageError
from edgecnn.tasks import MAX_DETECTIONS, DecodeOptions
from tests.conftest import error_lines, run_cli
from tests.model_mutations import load, pack


def _with_postprocess_options(source: Path, target: Path, **changes: int) -> Path:
    """``source`` (an SSD) with its NMS op's FlexBuffer options changed, through the schema's object API."""
    model = load(source.read_bytes())
    changed = 0
    for op in model.subgraphs[0].operators:
        if op.customOptions is not None:
            options = flexbuffers.Loads(bytes(np.asarray(op.customOptions, dtype=np.uint8)))
            options.update(changes)
            op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), dtype=np.uint8)
            changed += 1
    assert changed == 1
    target.write_bytes(pack(model))
    return target


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), np.full((96, 96, 3), 128, np.uint8))
    return path


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_detections": 2**31 - 1}, "max_detections is 2147483647, it must be 1..10000"),
        ({"max_detections": 200, "max_classes_per_detection": 100}, "max_classes_per_detection is 100"),
        ({"max_detections": 0}, "max_detections is 0, it must be 1..10000"),
    ],
)
def test_a_model_asking_for_absurd_detections_is_one_clear_line(detectors, tmp_path, image, changes, words):
    """Was: ``Cannot prepare MODEL: RuntimeError``, the runtime's failure without a reason."""
    model = _with_postprocess_options(detectors["ssd_int8"], tmp_path / "ssd_absurd.tflite", **changes)
    result = run_cli("predict", model, image)
    assert result.code == 3, result.stderr
    (line,) = error_lines(result.stderr)
    assert words in line and "TFLite_Detection_PostProcess" in line, line
    assert not line.endswith("RuntimeError") and "Traceback" not in result.stderr


def test_a_model_within_the_bound_still_runs(detectors, tmp_path, image):
    model = _with_postprocess_options(detectors["ssd_int8"], tmp_path / "ssd_50.tflite", max_detections=50)
    result = run_cli("predict", model, image, "--json")
    assert result.code == 0, result.stderr


def test_the_library_refuses_the_same_bound(detectors, image):
    from edgecnn.predict.files import predict

    with pytest.raises(
        UsageError, match=rf"--max-detections must be between 1 and {MAX_DETECTIONS}, got 2147483647"
    ):
        predict(detectors["ssd_int8"], [image], decode=DecodeOptions(max_detections=2**31 - 1))


def test_every_declaration_of_the_bound_is_the_same():
    """run/TOML (edgecnn.run.options, kept free of numpy so it cannot import the constant) and predict's
    flag state the bound as a number: they must be the constant's."""
    from typer.main import get_command

    from edgecnn.cli import app
    from edgecnn.run.options import run_option

    assert run_option("max_detections").spec.high == MAX_DETECTIONS
    predict = get_command(app).commands["predict"]  # type: ignore[attr-defined]
    (param,) = [p for p in predict.params if "--max-detections" in p.opts]
    assert param.max == MAX_DETECTIONS  # type: ignore[attr-defined]
