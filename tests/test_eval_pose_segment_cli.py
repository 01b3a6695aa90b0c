"""Pose and segmentation through ``edgecnn eval``: the task modules' evaluator hooks pick the evaluator, its
dataset layout (a COCO-keypoints .json; a folder with masks/ and images/) and its fixed decode options,
through the library function and the CLI, on Coral's MoveNet and DeepLab and on a constant class map whose
figures are known by hand."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.eval.evaluate import evaluate
from tests.conftest import error_lines, run_cli
from tests.const_models import constant_model
from tests.test_eval_pose_segment import DEEPLAB, MOVENET, PASCAL, _keypoints_file
from tests.test_segment import _regions, _yolo_seg

CORAL_BIRD = DEEPLAB.parent / "bird_segmentation.bmp"
CORAL_BIRD_MASK = DEEPLAB.parent / "bird_segmentation_mask.bmp"


def _with_empty_image(tmp_path):
    """Coral's squat with its reference person, plus a black image where nobody is."""
    path, doc = _keypoints_file(tmp_path)
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((240, 320, 3), np.uint8))
    doc["images"].append({"id": 2, "file_name": "empty.png", "width": 320, "height": 240})
    path.write_text(json.dumps(doc))
    return path


def test_eval_measures_movenet_by_oks_ap_through_the_pose_task(tmp_path):
    report = evaluate(MOVENET, _with_empty_image(tmp_path))
    assert report.task == "pose" and report.images == 2 and report.people == 1
    # The evaluator's decode options keep nearly every pose (object threshold 0.001), as AP needs: the
    # black image's pose (mean keypoint score 0.04 measured, under the 0.4 default) is reported: a false
    # positive scored under the real one, so AP stays 100.
    assert report.poses == 2
    assert report.headline == ("OKS AP", pytest.approx(100.0))


def test_eval_cli_on_a_keypoints_file_and_its_gate(tmp_path):
    path = _with_empty_image(tmp_path)
    out = run_cli("eval", MOVENET, path, "--json", "-q")
    assert out.code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["task"] == "pose" and doc["poses"] == 2
    assert doc["figures"]["ap_pct"] == pytest.approx(100.0) and doc["figures"]["ap50_pct"] == pytest.approx(
        100.0
    )
    # Every keypoint 150 px right of the truth: no pose is near enough, and --fail-under says so.
    moved = json.loads(path.read_text())
    moved["annotations"][0]["keypoints"] = [
        v + 150 if i % 3 == 0 else v for i, v in enumerate(moved["annotations"][0]["keypoints"])
    ]
    path.write_text(json.dumps(moved))
    gate = run_cli("eval", MOVENET, path, "-q", "--fail-under", "50")
    assert gate.code == 1
    assert error_lines(gate.stderr) == ["edgecnn: error: OKS AP 0.00% is below --fail-under 50%."]


def test_pose_eval_refuses_another_layout_and_against_in_one_line(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "images").mkdir()
    out = run_cli("eval", MOVENET, tmp_path, "-q")
    assert out.code == 2 and len(error_lines(out.stderr)) == 1 and "Traceback" not in out.stderr
    assert "is a pose model and" in out.stderr and "a COCO-keypoints .json file" in out.stderr
    path = _with_empty_image(tmp_path / "masks")
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(MOVENET.read_bytes())
    out = run_cli("eval", MOVENET, path, "--against", twin, "-q")
    assert out.code == 2 and "--against is not offered for pose models" in out.stderr


def _bird_dataset(tmp_path):
    data = tmp_path / "birds"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    bird = cv2.imread(str(CORAL_BIRD))
    truth = cv2.imread(str(CORAL_BIRD_MASK), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(data / "images" / "bird.png"), bird)
    cv2.imwrite(str(data / "masks" / "bird.png"), truth)
    cv2.imwrite(str(data / "images" / "flipped.jpg"), bird[:, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    cv2.imwrite(str(data / "masks" / "flipped.png"), truth[:, ::-1])
    return data


def test_eval_cli_measures_deeplab_on_a_mask_folder(tmp_path):
    data = _bird_dataset(tmp_path)
    out = run_cli("eval", DEEPLAB, data, "--labels", PASCAL, "--json", "-q")
    assert out.code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["task"] == "segment" and doc["images"] == 2 and doc["data"] == str(data)
    # Measured: pixel accuracy 97.0%, bird IoU 86.7% (test_eval_pose_segment.py: the same through the
    # library on PNGs; the flipped image is a JPEG here).
    assert doc["figures"]["pixel_accuracy_pct"] > 95.0
    bird = next(c for c in doc["figures"]["per_class"] if c["label"] == "bird")
    assert bird["iou_pct"] > 78.0
    table = run_cli("eval", DEEPLAB, data, "--labels", PASCAL, "-q", "--fail-under", "50")
    assert table.code == 1 and "pixel accuracy" in table.stdout and "bird" in table.stdout
    assert error_lines(table.stderr)[0].startswith("edgecnn: error: mean IoU ")


def test_deeplab_against_a_second_build_and_images_chosen_by_the_masks(tmp_path):
    data = _bird_dataset(tmp_path)
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(DEEPLAB.read_bytes())
    report = evaluate(DEEPLAB, data, labels=PASCAL, against=twin)
    assert report.comparison is not None and report.agreement_pct == pytest.approx(100.0)
    assert report.comparison.figures == report.figures
    # --images: the masks choose the images (a shared folder may hold more, as PASCAL VOC's JPEGImages).
    shared = tmp_path / "JPEGImages"
    (data / "images").rename(shared)
    cv2.imwrite(str(shared / "unlabelled.png"), np.zeros((32, 32, 3), np.uint8))
    chosen = evaluate(DEEPLAB, data, labels=PASCAL, images=shared)
    assert chosen.images == 2 and chosen.figures == report.figures
    (data / "masks" / "extra.png").write_bytes((data / "masks" / "bird.png").read_bytes())
    out = run_cli("eval", DEEPLAB, data, "--images", shared, "-q")
    assert out.code == 4 and error_lines(out.stderr) == [
        f"edgecnn: error: {data / 'masks' / 'extra.png'} has no image in {shared} (looked for extra.*): "
        "add it or remove the mask."
    ]
    out = run_cli("eval", DEEPLAB, data, "-q")  # no images/ and no --images
    assert out.code == 4 and "has masks/ but no images/ folder" in out.stderr


def test_known_class_map_gives_the_figures_worked_out_by_hand(tmp_path):
    """A constant class map (road and car rectangles on background) against truth that calls the road
    background: over the 32x64 frame, background 1600 predicted / 1856 true pixels, road 256 / 0, car
    192 / 192. IoU: background 1600 / 1856 = 86.2069%, road 0, car 100; mean 62.069%; pixel accuracy
    (1600 + 192) / 2048 = 87.5%. A 4-row band of 255 would change nothing it covers: it is ignored."""
    model = tmp_path / "map.tflite"
    model.write_bytes(constant_model([_regions()[None].astype(np.int32)], size=(64, 64)))
    labels = tmp_path / "labels.txt"
    labels.write_text("background\nroad\ncar\n")
    predicted = np.kron(_regions(), np.ones((2, 4), np.int64)).astype(np.uint8)  # 16x16 cells on 32x64
    truth = np.where(predicted == 1, 0, predicted).astype(np.uint8)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    cv2.imwrite(str(data / "images" / "a.png"), np.zeros((32, 64, 3), np.uint8))
    cv2.imwrite(str(data / "masks" / "a.png"), truth)
    figures = evaluate(model, data, labels=labels).figures
    assert {c.label: c.iou_pct for c in figures.per_class} == pytest.approx(
        {"background": 100 * 1600 / 1856, "road": 0.0, "car": 100.0}
    )
    assert figures.mean_iou_pct == pytest.approx((100 * 1600 / 1856 + 100) / 3, abs=1e-3)
    assert figures.pixel_accuracy_pct == pytest.approx(87.5)
    banded = truth.copy()
    banded[:4] = 255  # rows 0-3 are background in both: ignoring them takes 256 right pixels away
    cv2.imwrite(str(data / "masks" / "a.png"), banded)
    assert evaluate(model, data, labels=labels).figures.pixel_accuracy_pct == pytest.approx(
        100 * (1792 - 256) / (2048 - 256)
    )


def test_yolo_seg_is_refused_by_the_mask_evaluator_in_one_line(tmp_path):
    path, _ = _yolo_seg(tmp_path)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    cv2.imwrite(str(data / "images" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    cv2.imwrite(str(data / "masks" / "a.png"), np.zeros((64, 64), np.uint8))
    with pytest.raises(UsageError, match=r"is a YOLO seg model \(instance masks\)"):
        evaluate(path, data)
