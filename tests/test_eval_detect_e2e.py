"""``edgecnn eval`` on real detectors trained in this session (``tests/detectors.py``): held-out generated
scenes with known boxes, written as a YOLO folder and as a COCO file, scored through the task seam.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edgecnn.errors import InputError
from edgecnn.eval.evaluate import evaluate
from tests.conftest import error_lines, run_cli

pytestmark = pytest.mark.slow


def write_yolo(root: Path, scenes, classes) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    for i, scene in enumerate(scenes):
        h, w = scene.image.shape[:2]
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), scene.image)
        (root / "labels" / f"{i:03d}.txt").write_text(
            "".join(
                f"{b.label} {(b.x1 + b.x2) / 2 / w!r} {(b.y1 + b.y2) / 2 / h!r} {(b.x2 - b.x1) / w!r} {(b.y2 - b.y1) / h!r}\n"
                for b in scene.boxes
            )
        )
    return root


def write_coco(root: Path, scenes, classes) -> Path:
    (root / "images").mkdir(parents=True)
    doc: dict = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)],
    }
    for i, scene in enumerate(scenes):
        h, w = scene.image.shape[:2]
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), scene.image)
        doc["images"].append({"id": i, "file_name": f"{i:03d}.png", "width": w, "height": h})
        for b in scene.boxes:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": i,
                    "category_id": b.label + 1,
                    "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                    "area": (b.x2 - b.x1) * (b.y2 - b.y1),
                    "iscrowd": 0,
                }
            )
    (root / "annotations.json").write_text(json.dumps(doc))
    return root / "annotations.json"


@pytest.fixture(scope="module")
def datasets(detectors, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("eval_det")
    scenes = detectors.held_out
    return write_yolo(base / "yolo", scenes, detectors.classes), write_coco(
        base / "coco", scenes, detectors.classes
    )


@pytest.mark.parametrize("layout", ["yolo_float", "ssd_tf1"])
def test_trained_detector_scores_above_0_8_the_same_from_both_formats(detectors, datasets, layout):
    yolo, coco = (evaluate(detectors[layout], data) for data in datasets)
    assert yolo.task == coco.task == "detect"
    assert yolo.model.map50_pct > 80, yolo.model
    assert (yolo.model.map50_pct, yolo.model.map50_95_pct) == (coco.model.map50_pct, coco.model.map50_95_pct)
    assert yolo.model.matched_by == "label" and yolo.model.images == len(detectors.held_out)
    assert 0 < yolo.model.map50_95_pct < yolo.model.map50_pct


def test_int8_against_float_through_the_cli(detectors, datasets, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli(
        "eval", detectors["yolo_int8"], datasets[1], "--against", detectors["yolo_float"], "--json", "-o", out
    )
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == json.loads(out.read_text())
    int8, flt, cmp = doc["model"], doc["against"], doc["comparison"]
    assert int8["map50_pct"] > 70 and flt["map50_pct"] > 80
    assert cmp["map50_difference_pts"] == pytest.approx(int8["map50_pct"] - flt["map50_pct"], abs=1e-3)
    assert 50 < cmp["agreement_pct"] <= 100

    achieved = evaluate(detectors["yolo_float"], datasets[0]).model.map50_95_pct
    assert run_cli("eval", detectors["yolo_float"], datasets[0], "--fail-under", str(achieved - 1)).code == 0
    gate = run_cli("eval", detectors["yolo_float"], datasets[0], "--fail-under", str(achieved + 1), "-q")
    assert gate.code == 1
    assert error_lines(gate.stderr) == [
        f"edgecnn: error: mAP@0.5:0.95 {achieved:.2f}% is below --fail-under {achieved + 1:g}%."
    ]


def test_detector_with_class_folders_or_bad_labels_is_one_line(detectors, datasets, tmp_path):
    folders = tmp_path / "folders" / "square"
    folders.mkdir(parents=True)
    cv2.imwrite(str(folders / "a.png"), detectors.held_out[0].image)
    result = run_cli("eval", detectors["yolo_float"], folders.parent)
    assert result.code == 2 and "is a detect model" in error_lines(result.stderr)[0]

    broken = write_yolo(tmp_path / "broken", detectors.held_out[:3], detectors.classes)
    (broken / "labels" / "001.txt").write_text("1 0.5 0.5 0.3\n")
    out = tmp_path / "out.json"
    result = run_cli("eval", detectors["yolo_float"], broken, "-o", out)
    assert result.code == InputError.exit_code
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "001.txt line 1" in lines[0] and not out.exists()
