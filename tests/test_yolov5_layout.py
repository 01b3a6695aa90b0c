"""YOLOv5's own TFLite export output ``[1, N, 5+nc]`` (cx, cy, w, h, objectness, class scores) told apart from
YOLOv8/11's ``[1, N, 4+nc]`` and decoded by YOLOv5's rule (score = objectness x class), on constant-output
models with known boxes: float (boxes normalised, as YOLOv5's TF export writes them, or in pixels), full
int8 and uint8 (YOLOv5's full-integer export has a uint8 output, which is no class map either)."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pytest

from edgecnn.model import open_model
from edgecnn.modelfile import read_model
from edgecnn.tasks import DecodeOptions
from edgecnn.tasks.detect import YoloDecoder, Yolov5Decoder, boxes_per_cell
from tests.conftest import error_lines, run_cli
from tests.const_models import constant_model, quantize, with_ultralytics_metadata

INPUT = 64  # the constant models' input size
BOXES = 3 * (8 * 8 + 4 * 4 + 2 * 2)  # YOLOv5: 3 anchors per cell of strides 8, 16, 32 (25200 at 640)
NAMES = ["circle", "square", "cat"]
# (cx, cy, w, h in input pixels, objectness, class scores): the two objects, then rows that must not show
ROWS = [
    ((20, 30, 10, 16), 0.9, (0.05, 0.1, 0.8)),  # cat, 0.72
    ((45, 12, 8, 8), 0.6, (0.9, 0.02, 0.01)),  # circle, 0.54
    ((21, 30, 10, 16), 0.8, (0.05, 0.1, 0.75)),  # the cat again a pixel away, 0.6: NMS drops it
    ((50, 50, 6, 6), 0.3, (0.1, 0.99, 0.1)),  # a confident square of low objectness: 0.297
    ((10, 50, 6, 6), 0.95, (0.3, 0.2, 0.1)),  # an object of no confident class: 0.285
]
# frame 96x128 letterboxed into 64x64: scale 0.5, 8 rows of padding at the top
EXPECTED = [  # label, score, box in frame pixels
    ("cat", 0.72, ((20 - 5) / 0.5, (30 - 8 - 8) / 0.5, (20 + 5) / 0.5, (30 + 8 - 8) / 0.5)),
    ("circle", 0.54, ((45 - 4) / 0.5, (12 - 4 - 8) / 0.5, (45 + 4) / 0.5, (12 + 4 - 8) / 0.5)),
]


def _output(boxes: int = BOXES, *, pixels: bool = False) -> np.ndarray:
    out = np.zeros((1, boxes, 5 + len(NAMES)), np.float32)
    out[0, :, :4] = np.array([32, 32, 4, 4]) / INPUT  # every other anchor: a small box seeing nothing
    for row, (box, objectness, classes) in zip(range(7, 7 + len(ROWS)), ROWS, strict=True):
        out[0, row, :4] = np.array(box) / INPUT
        out[0, row, 4] = objectness
        out[0, row, 5:] = classes
    if pixels:
        out[0, :, :4] *= INPUT
    return out


def _model(tmp_path, kind: str, *, boxes: int = BOXES, names: list[str] | None = None):
    out = _output(boxes, pixels=kind == "pixels")
    if kind == "int8":
        scale, zero = 1 / 255, -128
        data = constant_model([quantize(out, scale, zero)], size=(INPUT, INPUT), quantization=[(scale, zero)])
    elif kind == "uint8":  # what YOLOv5's full-integer export writes (uint8 in and out)
        scale, zero = 1 / 255, 0
        data = constant_model(
            [quantize(out, scale, zero, np.uint8)], size=(INPUT, INPUT), input_dtype=np.uint8,
            quantization=[(scale, zero)],
        )  # fmt: skip
    else:
        data = constant_model([out], size=(INPUT, INPUT))
    if names is not None:
        data = with_ultralytics_metadata(
            data, task="detect", names=dict(enumerate(names)), imgsz=[INPUT, INPUT]
        )
    path = tmp_path / f"yolov5_{kind}_{boxes}.tflite"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["float", "pixels", "int8", "uint8"])
def test_yolov5_output_gives_objectness_times_class_and_known_boxes(tmp_path, kind):
    labels = tmp_path / "labels.txt"  # YOLOv5's export carries no names: users pass --labels
    labels.write_text("\n".join(NAMES) + "\n")
    model = open_model(_model(tmp_path, kind), labels=labels)
    assert model.task == "detect" and isinstance(model.decoder, Yolov5Decoder)
    assert model.decoder.class_count == 3 and model.decoder.letterbox
    result = model.process(np.zeros((96, 128, 3), np.uint8)).result
    # int8: objectness and class are each within half a step of 1/255; a box side within a step of 64 px
    # (0.25 input px, 0.5 frame px) on each of centre and size
    exact = kind in ("float", "pixels")
    assert [o.label for o in result.objects] == [e[0] for e in EXPECTED]
    assert [o.id for o in result.objects] == [2, 0]
    assert [o.score for o in result.objects] == pytest.approx(
        [e[1] for e in EXPECTED], abs=1e-5 if exact else 0.005
    )
    for got, (_, _, box) in zip(result.objects, EXPECTED, strict=True):
        assert got.box == pytest.approx(box, abs=1e-3 if exact else 1.0)


def test_object_threshold_applies_to_the_product_not_the_class_score(tmp_path):
    model = open_model(_model(tmp_path, "int8"), decode=DecodeOptions(object_threshold=0.25))
    found = model.process(np.zeros((64, 64, 3), np.uint8)).result.objects
    # 0.297 and 0.285 now pass; the square's class score 0.99 alone never made it an object at 0.4
    assert [o.id for o in found] == [2, 0, 1, 0]
    assert [o.score for o in found] == pytest.approx([0.72, 0.54, 0.297, 0.285], abs=0.005)


def test_layout_told_by_the_box_count_for_the_input(tmp_path):
    for size, v5, v8 in ((320, 6300, 2100), (640, 25200, 8400)):
        path = tmp_path / f"grid{size}.tflite"
        path.write_bytes(constant_model([np.zeros((1, 1, 6), np.float32)], size=(size, size)))
        mf = read_model(path)
        assert (boxes_per_cell(mf, v5), boxes_per_cell(mf, v8), boxes_per_cell(mf, v8 + 1)) == (3, 1, None)


def test_labels_tell_the_layout_when_the_box_count_fits_no_grid(tmp_path):
    # 50 boxes of 8 values fit no grid for 64x64: 3 names are 5+nc (YOLOv5), 4 names are 4+nc (YOLOv8)
    v5 = open_model(_model(tmp_path, "float", boxes=50, names=NAMES))
    assert isinstance(v5.decoder, Yolov5Decoder)
    assert v5.process(np.zeros((64, 64, 3), np.uint8)).result.labels() == ["cat", "circle"]
    (tmp_path / "v8").mkdir()
    v8 = open_model(_model(tmp_path / "v8", "float", boxes=50, names=[*NAMES, "star"]))
    assert type(v8.decoder) is YoloDecoder and v8.decoder.class_count == 4


def test_yolov8_output_of_the_same_size_still_reads_four_box_rows(tmp_path):
    # [1, 4+nc, 84]: one box per cell at 64x64 is YOLOv8's, class 2 at row 6 stays class 2
    out = np.zeros((1, 4 + 3, 84), np.float32)
    out[0, :4] = (np.array([32, 32, 4, 4]) / INPUT)[:, None]
    out[0, :4, 5], out[0, 6, 5] = np.array([20, 30, 10, 16]) / INPUT, 0.8
    path = tmp_path / "yolov8.tflite"
    path.write_bytes(constant_model([out], size=(INPUT, INPUT)))
    model = open_model(path)
    assert type(model.decoder) is YoloDecoder and model.decoder.class_count == 3
    found = model.process(np.zeros((64, 64, 3), np.uint8)).result.objects
    assert [(o.id, round(o.score, 4)) for o in found] == [(2, 0.8)]
    assert found[0].box == pytest.approx((15, 22, 25, 38), abs=1e-3)


def test_inspect_names_the_layout_and_predict_reads_it(tmp_path):
    path = _model(tmp_path, "uint8")
    shown = run_cli("inspect", path)
    assert shown.code == 0, shown.stderr
    assert f"YOLOv5 [1, {BOXES}, 8] (5+nc" in shown.stdout and "objectness" in shown.stdout
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((96, 128, 3), np.uint8))
    result = run_cli("predict", path, image, "--labels", labels, "--json")
    assert result.code == 0 and not error_lines(result.stderr), result.stderr
    objects = json.loads(result.stdout)["results"][0]["objects"]
    assert [(o["label"], round(o["score"], 2)) for o in objects] == [("cat", 0.72), ("circle", 0.54)]


def test_yolov5_exports_meta_txt_gives_the_names(tmp_path):
    # YOLOv5's export.py (with tflite_support) attaches str({'stride': ..., 'names': ...}) as meta.txt
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        archive.writestr("meta.txt", str({"stride": 32, "names": dict(enumerate(NAMES))}))
    path = tmp_path / "yolov5_meta.tflite"
    path.write_bytes(_model(tmp_path, "int8").read_bytes() + sink.getvalue())
    model = open_model(path)
    assert isinstance(model.decoder, Yolov5Decoder) and model.decoder.labels == NAMES
    assert model.process(np.zeros((64, 64, 3), np.uint8)).result.labels() == ["cat", "circle"]
