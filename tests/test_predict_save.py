"""``predict --save DIR``: every task's result drawn on its image (classes, boxes, keypoints, masks), one
file per image under its own name, written atomically; a bad folder is one line and nothing written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgecnn.errors import OutputError
from edgecnn.predict.files import predict
from tests.conftest import CAT, CORAL, MOBILENET, error_lines, run_cli
from tests.const_models import constant_model, with_ultralytics_metadata

MOVENET = CORAL / "movenet_single_pose_lightning_ptq.tflite"
SQUAT = CORAL / "squat.bmp"
DEEPLAB = CORAL / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
BIRD = CORAL / "bird_segmentation.bmp"


def _detector(tmp_path):
    """A YOLO detector (constant outputs) that finds one "cat" at input pixels 16..48 of 64."""
    out = np.zeros((1, 4 + 2, 80), np.float32)
    out[0, :4, 0], out[0, 4, 0] = np.array([32, 32, 32, 32]) / 64, 0.9
    path = tmp_path / "detector.tflite"
    data = constant_model([out], size=(64, 64))
    path.write_bytes(with_ultralytics_metadata(data, task="detect", names={"0": "cat", "1": "dog"}))
    return path


def _changed(saved: np.ndarray, original: np.ndarray) -> np.ndarray:
    return np.abs(saved.astype(int) - original.astype(int)).max(axis=2) > 20


@pytest.mark.parametrize("task", ["classify", "detect", "pose", "segment"])
def test_save_writes_each_image_with_its_result_drawn(tmp_path, task):
    model, image = {
        "classify": (MOBILENET, CAT),
        "detect": (_detector(tmp_path), CAT),
        "pose": (MOVENET, SQUAT),
        "segment": (DEEPLAB, BIRD),
    }[task]
    out = tmp_path / "annotated"
    report = predict(model, [image], save=out)
    assert report.task == task
    saved_path = out / image.name
    assert report.results[0].saved == str(saved_path) and sorted(p.name for p in out.iterdir()) == [
        image.name
    ]
    saved, original = cv2.imread(str(saved_path)), cv2.imread(str(image))
    assert saved.shape == original.shape
    changed = _changed(saved, original)
    result = report.results[0].output
    if task == "classify":  # the label bar across the top
        assert changed[:40].mean() > 0.2 and not changed[100:].any()
    elif task == "detect":  # the box: the cat image letterboxed, object at input 16..48 -> frame pixels
        x1, y1, x2, y2 = (round(v) for v in result.objects[0].box)
        assert changed[y1 + 5 : y2 - 5, x1].mean() > 0.9 and changed[y1 + 5 : y2 - 5, x2].mean() > 0.9
        assert not changed[y2 + 10 :].any()
    elif task == "pose":  # a dot on each keypoint the model is sure of
        for k in result.poses[0].keypoints:
            if k.score >= 0.3:
                assert changed[round(k.y), round(k.x)], k
    else:  # the bird's pixels tinted, the background's not
        bird = result.mask == 3
        assert changed[bird].mean() > 0.5 and changed[result.mask == 0].mean() < 0.01


def test_save_from_the_cli_names_repeated_file_names_apart(tmp_path):
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    for p in (first, second):
        p.parent.mkdir()
        cv2.imwrite(str(p), cv2.imread(str(SQUAT)))
    out = tmp_path / "out"
    result = run_cli("predict", MOVENET, first, second, "--save", out, "--json")
    assert result.code == 0, result.stderr
    saved = [r["saved"] for r in json.loads(result.stdout)["results"]]
    assert saved == [str(out / "x.png"), str(out / "x_2.png")]
    assert sorted(p.name for p in out.iterdir()) == ["x.png", "x_2.png"]  # no temp files left behind
    again = run_cli("predict", MOVENET, first, "--save", out)  # overwritten in place, same name
    assert again.code == 0 and f"-> {out / 'x.png'}" in again.stdout


def test_save_into_a_file_is_one_line_and_writes_nothing(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = run_cli("predict", MOVENET, SQUAT, "--save", target)
    lines = error_lines(result.stderr)
    assert result.code != 0 and len(lines) == 1 and "is a file" in lines[0], result.stderr
    with pytest.raises(OutputError, match="not a folder"):  # the library says it too
        predict(MOVENET, [SQUAT], save=target)
    assert target.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
