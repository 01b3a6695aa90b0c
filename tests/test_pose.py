"""Pose through the task seam: Coral's MoveNet against its reference keypoints, YOLO pose layouts (float,
full-integer, channels-last) built as constant-output models whose keypoints must land at known frame
pixels through the letterbox, PoseNet's custom decoder op refused in one line, and every command."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from edgecnn.errors import ModelInvokeError
from edgecnn.inspect.contents import inspect_model
from edgecnn.model import open_model
from edgecnn.predict.files import predict
from edgecnn.tasks.pose import COCO_KEYPOINTS
from tests.conftest import CORAL, error_lines, run_cli
from tests.const_models import constant_model, quantize, with_ultralytics_metadata

MOVENET = CORAL / "movenet_single_pose_lightning_ptq.tflite"
SQUAT = CORAL / "squat.bmp"
REFERENCE = CORAL / "movenet_single_pose_lightning_ptq_reference.csv"
INPUT = 64  # the constant models' input size
K = len(COCO_KEYPOINTS)


def _reference() -> np.ndarray:
    """[17, 3]: x, y normalised, score, in keypoint order."""
    with REFERENCE.open() as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["keypoint_id"]))
    return np.array(
        [[float(r["keypoint_x"]), float(r["keypoint_y"]), float(r["keypoint_score"])] for r in rows]
    )


def test_movenet_on_squat_matches_coral_reference_keypoints():
    ref = _reference()
    report = predict(MOVENET, [SQUAT])
    result = report.results[0]
    assert report.task == "pose" and report.decoder.startswith("MoveNet single-pose")
    (pose,) = result.output.poses
    assert [k.name for k in pose.keypoints] == list(COCO_KEYPOINTS)
    got = np.array([[k.x / result.width, k.y / result.height, k.score] for k in pose.keypoints])
    # Coral's reference comes from another runtime and resizer: positions agree within 0.04 of the image
    # (measured 0.030 in x, 0.026 in y, stretched bilinear resize); the quantized scores step in ~0.07s and
    # move more between resizers: their mean difference stays under 0.25 (measured 0.18).
    assert np.abs(got[:, :2] - ref[:, :2]).max() < 0.04
    assert np.abs(got[:, 2] - ref[:, 2]).mean() < 0.25
    assert pose.score == pytest.approx(got[:, 2].mean())
    record = result.to_dict()
    assert set(record["poses"][0]["keypoints"]) == set(COCO_KEYPOINTS)


def _yolo_pose_output(channels_last: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """[1, 4+1+17*3, N] (normalised, as Ultralytics' TFLite export): two people, a duplicate of the first
    (NMS drops it) and a weak candidate (under --object-threshold); and each person's keypoints in input pixels."""
    n = 64  # more candidates than rows, as every real export (8400 columns) has
    out = np.zeros((4 + 1 + K * 3, n), np.float32)
    people = [((20, 24, 16, 30), 0.9), ((44, 36, 14, 20), 0.7)]
    kpts = []
    rng = np.random.default_rng(0)
    for col, ((cx, cy, w, h), score) in enumerate(people):
        out[:4, col] = np.array([cx, cy, w, h]) / INPUT
        out[4, col] = score
        xy = np.stack(
            [rng.uniform(cx - w / 2, cx + w / 2, K), rng.uniform(cy - h / 2, cy + h / 2, K)], axis=1
        )
        kpts.append(xy)
        out[5::3, col] = xy[:, 0] / INPUT
        out[6::3, col] = xy[:, 1] / INPUT
        out[7::3, col] = np.linspace(0.2, 1.0, K)
    out[:, 2] = out[:, 0]
    out[0, 2] += 1 / INPUT  # a duplicate a pixel away, weaker
    out[4, 2] = 0.6
    out[:4, 3], out[4, 3] = np.array([50, 10, 8, 8]) / INPUT, 0.1
    out = out[None]
    return (out.transpose(0, 2, 1).copy() if channels_last else out), kpts


def _pose_model(tmp_path, *, int8: bool = False, channels_last: bool = False):
    out, kpts = _yolo_pose_output(channels_last)
    if int8:
        scale, zero = 1 / 255, -128  # 0..1 in one int8 quantization, as a full-integer export has
        data = constant_model([quantize(out, scale, zero)], size=(INPUT, INPUT), quantization=[(scale, zero)])
    else:
        data = constant_model([out], size=(INPUT, INPUT))
    meta = {"task": "pose", "names": {"0": "person"}, "kpt_shape": [K, 3], "imgsz": [INPUT, INPUT]}
    path = tmp_path / f"yolo_pose_{'int8' if int8 else 'float'}{'_cl' if channels_last else ''}.tflite"
    path.write_bytes(with_ultralytics_metadata(data, **meta))
    return path, kpts


@pytest.mark.parametrize(("int8", "channels_last"), [(False, False), (True, False), (False, True)])
def test_yolo_pose_keypoints_land_in_frame_pixels_through_the_letterbox(tmp_path, int8, channels_last):
    model_path, kpts = _pose_model(tmp_path, int8=int8, channels_last=channels_last)
    model = open_model(model_path)
    assert model.task == "pose" and "17x3 keypoints" in model.decoder.name and model.decoder.letterbox
    frame = np.zeros((96, 128, 3), np.uint8)  # letterboxed into 64x64: scale 0.5, 8 rows of padding top
    result = model.process(frame).result
    assert [p.score for p in result.poses] == pytest.approx([0.9, 0.7], abs=0.01)  # duplicate, weak: gone
    for pose, xy in zip(result.poses, kpts, strict=True):
        expected = np.stack([xy[:, 0] / 0.5, (xy[:, 1] - 8) / 0.5], axis=1)
        got = np.array([[k.x, k.y] for k in pose.keypoints])
        # float: exact up to float32; int8: a step of 1/255 of the 64-pixel input is 0.5 frame pixels
        assert np.abs(got - expected).max() < (0.6 if int8 else 1e-3)
        assert [k.score for k in pose.keypoints] == pytest.approx(np.linspace(0.2, 1.0, K), abs=0.01)
        x1, y1, x2, y2 = pose.box  # the keypoints were drawn inside each box
        assert x1 - 0.6 <= got[:, 0].min() and got[:, 0].max() <= x2 + 0.6
        assert y1 - 0.6 <= got[:, 1].min() and got[:, 1].max() <= y2 + 0.6
    assert result.labels() == ["person", "person"] and result.key == 2


def test_object_threshold_and_max_detections_apply_to_yolo_pose(tmp_path):
    from edgecnn.tasks import DecodeOptions

    model_path, _ = _pose_model(tmp_path)
    one = open_model(model_path, decode=DecodeOptions(object_threshold=0.8)).process(
        np.zeros((64, 64, 3), np.uint8)
    )
    assert len(one.result.poses) == 1
    capped = open_model(model_path, decode=DecodeOptions(max_detections=1)).process(
        np.zeros((64, 64, 3), np.uint8)
    )
    assert [p.score for p in capped.result.poses] == pytest.approx([0.9])


def test_kpt_shape_that_does_not_fit_the_output_is_one_line(tmp_path):
    out, _ = _yolo_pose_output()
    bad = tmp_path / "bad.tflite"
    meta = {"task": "pose", "names": {"0": "person"}, "kpt_shape": [20, 3]}  # 60 rows > 51 after the box
    bad.write_bytes(with_ultralytics_metadata(constant_model([out], size=(INPUT, INPUT)), **meta))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    result = run_cli("predict", bad, image)
    lines = error_lines(result.stderr)
    assert result.code != 0 and len(lines) == 1 and "no room for class scores" in lines[0], result.stderr


def test_posenet_decoder_custom_op_is_one_line_naming_it(tmp_path):
    model = tmp_path / "posenet.tflite"
    model.write_bytes(
        constant_model(
            [np.zeros((1, 10, 17, 2), np.float32)], size=(INPUT, INPUT), custom_op="PosenetDecoderOp"
        )
    )
    with pytest.raises(ModelInvokeError, match="PosenetDecoderOp"):
        open_model(model)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    result = run_cli("predict", model, image)
    lines = error_lines(result.stderr)
    assert result.code != 0 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "custom op 'PosenetDecoderOp'" in lines[0], lines


def test_pose_through_inspect_predict_and_run_on_a_video(tmp_path):
    shown = run_cli("inspect", MOVENET)
    assert shown.code == 0 and "task: pose  (decoder: MoveNet single-pose" in shown.stdout, shown.stdout
    assert inspect_model(MOVENET).task == "pose"

    predicted = run_cli("predict", MOVENET, SQUAT, "--json")
    assert predicted.code == 0, predicted.stderr
    record = json.loads(predicted.stdout)["results"][0]
    assert record["poses"][0]["label"] == "person" and len(record["poses"][0]["keypoints"]) == K

    video = tmp_path / "squat.avi"
    frame = cv2.imread(str(SQUAT))
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frame.shape[1], frame.shape[0])
    )
    for _ in range(5):
        writer.write(frame)
    writer.release()
    out = tmp_path / "poses.jsonl"
    ran = run_cli("run", "--model", MOVENET, "--source", video, "--jsonl", out)
    assert ran.code == 0, ran.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5 and {r["task"] for r in records} == {"pose"}
    for r in records:  # compact: keypoints, no more than a couple of KB a frame
        assert len(r["poses"]) == 1 and len(json.dumps(r)) < 2500
        nose = r["poses"][0]["keypoints"]["nose"]
        assert abs(nose[0] / frame.shape[1] - _reference()[0, 0]) < 0.05  # MJPG's loss moves it little


def test_bench_times_pose_postprocess_apart(tmp_path):
    from edgecnn.bench.runner import run_bench

    model_path, _ = _pose_model(tmp_path, int8=True)
    config = run_bench(model_path, runs=5, warmup=1).results[0]
    assert config.task == "pose" and config.postprocess_ms is not None and config.postprocess_ms["p50"] > 0


def test_detection_options_given_to_movenet_are_said_to_be_ignored(caplog):
    import logging

    from edgecnn.tasks import DecodeOptions

    with caplog.at_level(logging.WARNING):
        open_model(MOVENET, decode=DecodeOptions(iou=0.5))
    assert [r.message for r in caplog.records if "do not apply" in r.message] == [
        f"--iou, --agnostic and --classes do not apply to {MOVENET} (MoveNet single-pose [1, 1, 17, 3] "
        "(y, x, score per COCO keypoint)): ignored."
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        open_model(MOVENET)
    assert not caplog.records
