"""Detection evaluation: YOLO-txt and COCO JSON readers, and the pycocotools mAP path.

Ground truth is generated here (rectangles at known pixel boxes), written in both formats, and scored with
predictions derived from that truth, so each expected figure follows from COCO's definition: perfect
predictions give 100, predictions for half of the objects give 51/101 (COCO's 101-point recall grid), a
box shifted to IoU 0.62 passes the thresholds 0.50, 0.55, 0.60 of ten.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.errors import InputError, UsageError
from edgecnn.eval.coco_json import read_coco
from edgecnn.eval.detect import Detection, DetectorUnderTest, evaluate_detection
from edgecnn.eval.evaluate import check_gate, evaluate, read_detection_dataset
from edgecnn.eval.yolo_labels import read_yolo
from tests.conftest import error_lines, run_cli

NAMES = ["circle", "square"]
Box = tuple[int, int, int, int, int]  # class id, x1, y1, x2, y2 in pixels


def _scene(seed: int) -> tuple[np.ndarray, list[Box]]:
    """A 100x80 image with 1-4 filled rectangles at integer pixel boxes, one per 50x40 quadrant at most, so
    no two objects overlap (a shifted box then can only match its own object)."""
    rng = np.random.default_rng(seed)
    image = np.full((80, 100, 3), 30, np.uint8)
    boxes: list[Box] = []
    cells = [(0, 0), (50, 0), (0, 40), (50, 40)]
    for k in rng.permutation(4)[: int(rng.integers(1, 5))]:
        cx, cy = cells[int(k)]
        w, h = int(rng.integers(20, 31)), int(rng.integers(16, 27))
        x1, y1 = cx + 2 + int(rng.integers(0, 48 - w - 8)), cy + 2 + int(rng.integers(0, 38 - h))
        cls = int(rng.integers(0, 2))
        cv2.rectangle(image, (x1, y1), (x1 + w - 1, y1 + h - 1), (200, 100 + 50 * cls, 60), -1)
        boxes.append((cls, x1, y1, x1 + w, y1 + h))
    image[0, 0] = (seed % 256, seed // 256, 7)  # distinct pixels: the test detector finds its scene by hash
    return image, boxes


def _write_yolo(
    root: Path, scenes: list[tuple[np.ndarray, list[Box]]], *, names: str = "classes.txt"
) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    if names == "classes.txt":
        (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    elif names == "data.yaml":
        (root / "data.yaml").write_text("path: .\nval: images\nnames:\n  0: circle\n  1: square\n")
    for i, (image, boxes) in enumerate(scenes):
        cv2.imwrite(str(root / "images" / f"s{i:02d}.png"), image)
        h, w = image.shape[:2]
        lines = [
            f"{c} {(x1 + x2) / 2 / w!r} {(y1 + y2) / 2 / h!r} {(x2 - x1) / w!r} {(y2 - y1) / h!r}"
            for c, x1, y1, x2, y2 in boxes
        ]
        (root / "labels" / f"s{i:02d}.txt").write_text("\n".join(lines) + "\n")
    return root


def _write_coco(root: Path, scenes: list[tuple[np.ndarray, list[Box]]]) -> Path:
    (root / "images").mkdir(parents=True)
    doc: dict = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 7 + i, "name": n} for i, n in enumerate(NAMES)],
    }
    for i, (image, boxes) in enumerate(scenes):
        name = f"s{i:02d}.png"
        cv2.imwrite(str(root / "images" / name), image)
        doc["images"].append({"id": 100 + i, "file_name": name, "width": 100, "height": 80})
        for c, x1, y1, x2, y2 in boxes:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": 100 + i,
                    "category_id": 7 + c,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    path = root / "instances_val.json"
    path.write_text(json.dumps(doc))
    return path


def _detector(
    scenes: list[tuple[np.ndarray, list[Box]]],
    change: Callable[[int, int, Box], Sequence[tuple[Box, float]]] = lambda i, j, b: [(b, 0.9)],
    labels: list[str] | None = NAMES,
) -> DetectorUnderTest:
    """Detections derived from the truth of the frame it is given (found by the frame's hash)."""
    truth = {hashlib.sha1(image.tobytes()).hexdigest(): (i, boxes) for i, (image, boxes) in enumerate(scenes)}

    def detect(frame: np.ndarray) -> list[Detection]:
        i, boxes = truth[hashlib.sha1(frame.tobytes()).hexdigest()]
        out = []
        for j, box in enumerate(boxes):
            for (c, x1, y1, x2, y2), score in change(i, j, box):
                label = labels[c] if labels else str(c)
                out.append(Detection(c, label, score, (float(x1), float(y1), float(x2), float(y2))))
        return out

    return DetectorUnderTest("fake.tflite", "cpu", "test", labels, detect)


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, list[Box]]]:
    return [_scene(i) for i in range(12)]


@pytest.fixture(scope="module")
def both(scenes, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("det")
    return _write_yolo(base / "yolo", scenes), _write_coco(base / "coco", scenes)


def test_yolo_and_coco_readers_give_the_same_pixel_boxes(scenes, both):
    yolo, coco = read_yolo(both[0]), read_coco(both[1])
    assert yolo.names == {0: "circle", 1: "square"} and coco.names == {7: "circle", 8: "square"}
    assert len(yolo.samples) == len(coco.samples) == 12
    for (_, boxes), ys, cs in zip(scenes, yolo.samples, coco.samples, strict=True):
        got_y = [(yolo.name(b.class_id), b.x1, b.y1, b.x2, b.y2) for b in ys.pixel_boxes(100, 80)]
        got_c = [(coco.name(b.class_id), b.x1, b.y1, b.x2, b.y2) for b in cs.pixel_boxes(100, 80)]
        want = [(NAMES[c], x1, y1, x2, y2) for c, x1, y1, x2, y2 in boxes]
        assert got_c == want
        assert [(n, *map(round, xy)) for n, *xy in got_y] == want
        assert np.allclose([g[1:] for g in got_y], [w[1:] for w in want], atol=1e-9)


def test_perfect_predictions_score_100_from_both_formats(scenes, both):
    for data in both:
        report = evaluate_detection(read_detection_dataset(data), _detector(scenes))
        assert (report.model.map50_pct, report.model.map50_95_pct) == (100.0, 100.0)
        assert report.model.matched_by == "label"
        assert {c.label: c.ap50_pct for c in report.model.per_class} == {"circle": 100.0, "square": 100.0}


def test_half_the_objects_found_gives_51_of_101(scenes, both):
    everything = [(i, j) for i, (_, boxes) in enumerate(scenes) for j in range(len(boxes))]
    keep: set[tuple[int, int]] = set()  # the first half of each class's objects, found with full precision
    for cls in (0, 1):
        mine = [(i, j) for i, j in everything if scenes[i][1][j][0] == cls]
        keep |= set(mine[: len(mine) // 2])
    detector = _detector(scenes, lambda i, j, b: [(b, 0.9)] if (i, j) in keep else [])
    figures = []
    for data in both:
        report = evaluate_detection(read_detection_dataset(data), detector)
        figures.append((report.model.map50_pct, report.model.map50_95_pct))
        for cls in report.model.per_class:
            found = len(keep & {(i, j) for i, j in everything if NAMES[scenes[i][1][j][0]] == cls.label})
            recall_points = sum(1 for r in np.linspace(0, 1, 101) if r <= found / cls.objects + 1e-12)
            assert cls.ap50_pct == pytest.approx(100 * recall_points / 101, abs=1e-3)
    assert figures[0] == figures[1]
    assert figures[0][0] < 60


def test_shifted_boxes_pass_three_of_ten_iou_thresholds(scenes, both):
    def shift(i, j, box):
        c, x1, y1, x2, y2 = box
        d = (x2 - x1) * 0.38 / 1.62  # IoU = (w - d) / (w + d) = 0.62
        return [((c, x1 + d, y1, x2 + d, y2), 0.9)]

    results = [evaluate_detection(read_detection_dataset(d), _detector(scenes, shift)).model for d in both]
    for r in results:
        assert r.map50_pct == 100.0
        assert r.map50_95_pct == pytest.approx(30.0, abs=1e-3)
    assert results[0].map50_95_pct == results[1].map50_95_pct


def test_matching_by_class_id_without_names_and_wrong_class_is_a_miss(scenes, tmp_path):
    data = _write_yolo(tmp_path / "ids", scenes, names="none")
    flipped = _detector(scenes, lambda i, j, b: [((1 - b[0], *b[1:]), 0.9)], labels=None)
    report = evaluate_detection(read_yolo(data), flipped)
    assert report.model.matched_by == "class id" and report.model.map50_pct == 0.0
    assert evaluate_detection(read_yolo(data), _detector(scenes, labels=None)).model.map50_pct == 100.0


def test_data_yaml_names(scenes, tmp_path):
    assert read_yolo(_write_yolo(tmp_path / "y", scenes[:2], names="data.yaml")).names == {
        0: "circle",
        1: "square",
    }


def test_against_reports_both_and_agreement(scenes, both):
    perfect = _detector(scenes)
    half_scores = _detector(scenes, lambda i, j, b: [(b, 0.9)] if j == 0 else [])
    report = evaluate_detection(read_detection_dataset(both[0]), half_scores, against=perfect)
    assert report.against is not None and report.against.map50_pct == 100.0
    assert report.comparison is not None
    assert report.comparison.map50_difference_pts == pytest.approx(report.model.map50_pct - 100.0)
    assert 0 < report.comparison.agreement_pct < 100
    assert check_gate(report, fail_under=report.model.map50_95_pct + 1)[0].message.startswith("mAP@0.5:0.95 ")
    same = evaluate_detection(read_detection_dataset(both[0]), perfect, against=perfect)
    assert same.comparison.agreement_pct == 100.0


def test_dataset_class_missing_from_model_labels_is_one_error(scenes, both):
    with pytest.raises(InputError, match=r"Class 'square' .*closest labels: 'squares'"):
        evaluate_detection(read_coco(both[1]), _detector(scenes, labels=["circle", "squares"]))


def _break(root: Path, how: str) -> str:
    labels = root / "labels"
    if how == "words":
        (labels / "s00.txt").write_text("0 0.5 0.5 0.2 0.2\ncircle 0.5 0.5 0.1 0.1\n")
        return "s00.txt line 2"
    if how == "fields":
        (labels / "s00.txt").write_text("0 0.5 0.5 0.2\n")
        return "expected 'class cx cy w h'"
    if how == "outside":
        (labels / "s01.txt").write_text("1 0.95 0.5 0.2 0.2\n")
        return "reaches outside the image"
    if how == "class":
        (labels / "s01.txt").write_text("5 0.5 0.5 0.2 0.2\n")
        return "class id 5 is not one of the dataset's classes"
    if how == "orphan":
        (labels / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        return "gone.txt annotates a missing image"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["words", "fields", "outside", "class", "orphan"])
def test_bad_yolo_labels_are_one_line_errors(scenes, tmp_path, how):
    data = _write_yolo(tmp_path / "y", scenes[:3])
    needle = _break(data, how)
    with pytest.raises(InputError, match=re.escape(needle)):
        read_yolo(data)


def _coco_doc(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("missing_image", "names 's00.png', which is not in"),
        ("unknown_image_id", "is for image id 999, which 'images' does not list"),
        ("outside", "reaches outside its 100x80 image"),
        ("category", "category_id 42"),
        ("json", "line 1: not valid JSON"),
        ("bbox", "'bbox' must be [x, y, width, height]"),
        ("duplicate_id", "repeats image id 100"),
        ("nan_bbox", "box [nan, 10, 20, 10] is not finite"),
        ("inf_bbox", "box [10, 10, inf, 10] is not finite"),
        ("parent_dir", "names '../outside.png', which leaves the images folder"),
        ("absolute", "which leaves the images folder"),
        ("huge_int", "a number thousands of digits long"),
        ("huge_width", "give its real width and height"),
    ],
)
def test_bad_coco_annotations_are_one_line_errors(scenes, tmp_path, how, needle):
    path = _write_coco(tmp_path / "c", scenes[:3])
    doc = _coco_doc(path)
    if how == "missing_image":
        (tmp_path / "c" / "images" / "s00.png").unlink()
    elif how == "unknown_image_id":
        doc["annotations"][0]["image_id"] = 999
    elif how == "outside":
        doc["annotations"][0]["bbox"] = [90, 10, 20, 10]
    elif how == "category":
        doc["annotations"][0]["category_id"] = 42
    elif how == "duplicate_id":
        doc["images"][1]["id"] = 100
    elif how == "bbox":
        doc["annotations"][0]["bbox"] = [1, 2, 3]
    elif how == "nan_bbox":  # json writes NaN, and Python's json reads it: mAP 0 instead of an error
        doc["annotations"][0]["bbox"] = [math.nan, 10, 20, 10]
    elif how == "inf_bbox":
        doc["annotations"][0]["bbox"] = [10, 10, math.inf, 10]
    elif how in ("parent_dir", "absolute"):
        outside = tmp_path / "outside.png"  # a real image where the name points: it must not be read
        cv2.imwrite(str(outside), scenes[0][0])
        doc["images"][0]["file_name"] = "../outside.png" if how == "parent_dir" else str(outside)
    elif how == "huge_width":
        doc["images"][0]["width"] = 10**400
    text = "{not json" if how == "json" else json.dumps(doc)
    if how == "huge_int":  # more digits than int() converts (sys.get_int_max_str_digits: 4300)
        text = text.replace('"width": 100', '"width": 1' + "0" * 5000, 1)
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_coco(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_annotation_size_that_disagrees_with_the_image_is_an_error(scenes, tmp_path):
    path = _write_coco(tmp_path / "c", scenes[:2])
    doc = _coco_doc(path)
    doc["images"][0]["width"] = 120
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"is 100x80 pixels but .* says 120x80"):
        evaluate_detection(read_coco(path), _detector(scenes))


def test_cli_classifier_on_a_detection_dataset_is_one_line_and_writes_nothing(digits_model, both, tmp_path):
    out = tmp_path / "out.json"
    for data in both:
        result = run_cli("eval", digits_model.tflite, data, "-o", out)
        assert result.code == UsageError.exit_code
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and "is a classify model" in lines[0] and "pass class folders" in lines[0]
        assert not out.exists()


def test_evaluate_injects_a_detector_for_a_coco_file(scenes, both):
    calls: list[tuple[int, int]] = []
    report = evaluate(
        "unused.tflite", both[1], detector=_detector(scenes), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(n, 12) for n in range(1, 13)]
    assert report.task == "detect" and report.headline == ("mAP@0.5:0.95", 100.0)
    assert report.format == "coco"  # type: ignore[attr-defined]


def test_a_fifo_as_label_file_is_an_error_not_a_hang(scenes, tmp_path):
    import os

    data = _write_yolo(tmp_path / "y", scenes[:2])
    (data / "labels" / "s00.txt").unlink()
    os.mkfifo(data / "labels" / "s00.txt")
    with pytest.raises(InputError, match=r"s00\.txt is a FIFO"):
        read_yolo(data)


def test_coco_images_folder_can_be_elsewhere(scenes, both, tmp_path):
    moved = tmp_path / "annotations" / "val.json"
    moved.parent.mkdir()
    moved.write_text(both[1].read_text())
    with pytest.raises(InputError, match="pass --images DIR"):
        read_detection_dataset(moved)
    dataset = read_detection_dataset(moved, images=both[1].parent / "images")
    assert [s.image for s in dataset.samples] == [
        both[1].parent / "images" / f"s{i:02d}.png" for i in range(12)
    ]
    with pytest.raises(UsageError, match="--images is for COCO"):
        read_detection_dataset(both[0], images=both[1].parent / "images")


def test_eval_is_a_regular_package_so_the_wheel_ships_it():
    import edgecnn.eval

    assert (
        edgecnn.eval.__file__ is not None
    )  # a namespace package (no __init__.py) is left out by find_packages


@pytest.mark.parametrize("how", ["huge_int", "parent_dir", "nan_bbox"])
def test_hostile_coco_files_are_one_line_through_the_cli(scenes, detectors, tmp_path, how):
    """A real ``edgecnn eval`` process: one error line, exit 3 (input), no traceback, no report written."""
    path = _write_coco(tmp_path / "c", scenes[:2])
    text = path.read_text()
    if how == "huge_int":
        text = text.replace('"id": 100', '"id": 1' + "0" * 5000, 1)
    elif how == "parent_dir":
        cv2.imwrite(str(tmp_path / "x.png"), scenes[0][0])
        text = text.replace('"s00.png"', '"../x.png"')
    else:
        doc = json.loads(text)
        doc["annotations"][0]["bbox"][0] = math.nan
        text = json.dumps(doc)
    path.write_text(text)
    out = tmp_path / "report.json"
    result = run_cli("eval", detectors["yolo_float"], path, "-o", out)
    assert result.code == InputError.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"edgecnn: error: {path}"), line
    assert not out.exists()
