"""The pose and segmentation evaluators, called directly: OKS AP by pycocotools on a COCO-keypoints file
made here from Coral's reference keypoints, and mean IoU / pixel accuracy against label mask folders."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from edgecnn.errors import InputError
from edgecnn.eval.pose import evaluate_pose, oks_ap
from edgecnn.eval.segment import confusion, evaluate_segmentation, figures
from edgecnn.model import open_model
from edgecnn.tasks.pose import COCO_KEYPOINTS, SKELETON
from tests.conftest import CORAL

MOVENET = CORAL / "movenet_single_pose_lightning_ptq.tflite"
SQUAT = CORAL / "squat.bmp"
DEEPLAB = CORAL / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
PASCAL = CORAL / "pascal_voc_segmentation_labels.txt"


def _keypoints_file(tmp_path, shift: float = 0.0):
    """A COCO-keypoints file for squat.bmp whose person is Coral's reference keypoints (+ ``shift`` px)."""
    image = cv2.imread(str(SQUAT))
    h, w = image.shape[:2]
    cv2.imwrite(str(tmp_path / "squat.png"), image)
    with (CORAL / "movenet_single_pose_lightning_ptq_reference.csv").open() as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["keypoint_id"]))
    xy = np.array([[float(r["keypoint_x"]) * w + shift, float(r["keypoint_y"]) * h] for r in rows])
    x1, y1 = xy.min(axis=0) - 20
    x2, y2 = xy.max(axis=0) + 20
    doc = {
        "images": [{"id": 1, "file_name": "squat.png", "width": w, "height": h}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "keypoints": [v for x, y in xy for v in (float(x), float(y), 2)],
                "num_keypoints": 17,
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float((x2 - x1) * (y2 - y1)),
                "iscrowd": 0,
            }
        ],
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": list(COCO_KEYPOINTS),
                "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
            }
        ],
    }
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps(doc))
    return path, doc


def test_oks_ap_is_100_for_the_truth_itself_and_0_far_from_it(tmp_path):
    _, doc = _keypoints_file(tmp_path)
    truth = doc["annotations"][0]["keypoints"]
    exact = [{"image_id": 1, "category_id": 1, "keypoints": truth, "score": 0.9}]
    assert oks_ap(doc, exact).ap_pct == pytest.approx(100.0)
    far = [v + 150 if i % 3 == 0 else v for i, v in enumerate(truth)]  # every keypoint 150 px right
    assert oks_ap(doc, [{**exact[0], "keypoints": far}]).ap_pct == 0.0


def test_movenet_oks_ap_on_coral_reference_keypoints(tmp_path):
    path, _ = _keypoints_file(tmp_path)
    report = evaluate_pose(open_model(MOVENET), path)
    # MoveNet here and Coral's reference differ by at most 0.03 of the image (test_pose.py), small for a
    # person of this size: OKS passes every threshold (measured AP 100). Moving the truth right drops it
    # step by step (measured: 20 px AP 60, 40 px AP 10 with AP50 still 100, 60 px and more 0).
    assert report.images == 1 and report.people == 1 and report.poses == 1
    assert report.figures.ap_pct == pytest.approx(100.0) and report.figures.ap50_pct == pytest.approx(100.0)
    assert report.headline == ("OKS AP", 100.0) and report.to_dict()["figures"]["ap50_pct"] == 100.0
    model = open_model(MOVENET)
    moved = {
        shift: evaluate_pose(model, _keypoints_file(tmp_path, shift=shift)[0]).figures
        for shift in (20, 40, 120)
    }
    assert 30 < moved[20].ap_pct < 90 and moved[40].ap_pct < moved[20].ap_pct and moved[40].ap50_pct == 100.0
    assert moved[120].ap50_pct == 0.0


def test_pose_eval_refuses_a_file_without_keypoints(tmp_path):
    path, doc = _keypoints_file(tmp_path)
    del doc["categories"][0]["keypoints"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="one category with a 'keypoints' list"):
        evaluate_pose(open_model(MOVENET), path)


def test_confusion_and_figures_on_known_masks():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 2, 7]], np.uint8)  # 7: no class of 3
    matrix = confusion(truth, pred, 3)
    result = figures(matrix, ["background", "road", "car"])
    ious = {c.label: c.iou_pct for c in result.per_class}
    # background: 3 right, 1 predicted as road, 1 car predicted as background: 3 / 5; road 4 / 5; car 1 / 2
    assert ious == pytest.approx({"background": 60.0, "road": 80.0, "car": 50.0})
    assert result.mean_iou_pct == pytest.approx((60 + 80 + 50) / 3)
    assert result.pixel_accuracy_pct == pytest.approx(100 * 8 / 10)  # 255 pixels ignored
    with pytest.raises(InputError):
        confusion(truth, pred[:2], 3)


def test_deeplab_mean_iou_and_pixel_accuracy_on_a_mask_folder(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    bird = cv2.imread(str(CORAL / "bird_segmentation.bmp"))
    truth = cv2.imread(str(CORAL / "bird_segmentation_mask.bmp"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(images / "bird.png"), bird)
    cv2.imwrite(str(masks / "bird.png"), truth)
    cv2.imwrite(str(images / "flipped.png"), bird[:, ::-1])
    cv2.imwrite(str(masks / "flipped.png"), truth[:, ::-1])
    report = evaluate_segmentation(open_model(DEEPLAB, labels=PASCAL), images, masks)
    assert report.images == 2 and report.headline[0] == "mean IoU"
    # Measured: pixel accuracy 97.0%, bird IoU 86.7%, mean IoU 30.7% (background 97.6; the edge pixels the
    # mask calls classes 1-2 and the "dog" and "horse" the model sees score 0).
    assert report.figures.pixel_accuracy_pct > 95.0
    bird_iou = next(c for c in report.figures.per_class if c.label == "bird").iou_pct
    assert bird_iou is not None and bird_iou > 78.0
    assert 0 < report.figures.mean_iou_pct < bird_iou  # the few edge pixels of classes 1-2 drag it down

    (masks / "flipped.png").unlink()
    with pytest.raises(InputError, match=r"flipped\.png has no mask"):
        evaluate_segmentation(open_model(DEEPLAB, labels=PASCAL), images, masks)
