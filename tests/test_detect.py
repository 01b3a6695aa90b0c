"""Object detection end to end on real detectors built in the session (tests/detectors.py)."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from edgecnn.errors import ModelError, ModelInvokeError, UsageError
from edgecnn.inspect.contents import inspect_model
from edgecnn.metadata import parse_labels, read_metadata
from edgecnn.model import open_model
from edgecnn.modelfile import read_model
from edgecnn.predict.files import predict
from edgecnn.preprocess import InputSpec, prepare
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import run
from edgecnn.tasks import DecodeOptions
from tests.conftest import error_lines, run_cli
from tests.detectors import CLASSES, make_scenes, recall
from tests.run_support import write_video

LAYOUTS = [
    "yolo_float",
    "yolo_int8",
    "yolo_channels_last",
    "e2e_float",
    "ssd_tf1",
    "ssd_tf2",
    "ssd_signature",
    "ssd_int8",
]
DECODERS = {
    "yolo_float": "YOLO [1, 7, 144]",
    "yolo_int8": "YOLO [1, 7, 144]",
    "yolo_channels_last": "YOLO [1, 144, 7]",
    "e2e_float": "end-to-end [1, 20, 6]",
    "ssd_tf1": "TFLite_Detection_PostProcess outputs (TF1 order)",
    "ssd_tf2": "TFLite_Detection_PostProcess outputs (TF2 order)",
    "ssd_signature": "TFLite_Detection_PostProcess outputs (signature names)",
    "ssd_int8": "TFLite_Detection_PostProcess outputs (TF1 order)",
}


@pytest.fixture(scope="module")
def held_out_images(detectors, tmp_path_factory):
    folder = tmp_path_factory.mktemp("held_out")
    paths = []
    for i, scene in enumerate(detectors.held_out):
        path = folder / f"scene{i:03d}.png"
        cv2.imwrite(str(path), scene.image)
        paths.append(path)
    return paths


@pytest.mark.parametrize("layout", LAYOUTS)
def test_predict_finds_90_percent_of_held_out_objects(detectors, held_out_images, layout):
    report = predict(detectors[layout], held_out_images)
    assert report.task == "detect" and report.decoder.startswith(DECODERS[layout])
    hits = total = 0
    for result, scene in zip(report.results, detectors.held_out, strict=True):
        h, t = recall(scene.boxes, [(o.label, o.box) for o in result.objects])
        hits += h
        total += t
        assert all(o.score >= 0.4 for o in result.objects)
    assert total >= 100
    assert hits / total >= 0.9, f"{layout}: {hits}/{total} objects found"


def test_three_ssd_orders_decode_to_the_same_objects(detectors):
    image = detectors.held_out[0].image
    found = []
    for layout in ("ssd_tf1", "ssd_tf2", "ssd_signature"):
        model = open_model(detectors[layout])
        found.append(model.process(image).result.objects)
    assert found[0] and found[0] == found[1] == found[2]


def test_unknown_ssd_order_is_one_clear_error(detectors, tmp_path):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), detectors.held_out[0].image)
    result = run_cli("predict", detectors["ssd_scrambled"], image)
    assert result.code == 3, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "in an order edgecnn does not know" in lines[0] and "[1, 10, 4]" in lines[0]


def test_ultralytics_metadata_gives_labels_task_and_letterbox(detectors):
    meta = read_metadata(read_model(detectors["yolo_int8"]))
    assert meta.source == "ultralytics" and meta.task == "detect" and meta.letterbox is True
    assert meta.labels == list(CLASSES) and meta.provenance["imgsz"] == [96, 96]
    model = open_model(detectors["yolo_int8"])
    assert model.spec.letterbox and model.spec.dtype == np.int8 and model.labels == list(CLASSES)


def test_yolo_without_metadata_still_detects_with_class_ids(detectors, tmp_path):
    from edgecnn.modelfile import with_metadata

    mf = read_model(detectors["yolo_float"])
    mf.appended = {}  # drop the appended zip holding Ultralytics' metadata.json
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(with_metadata(mf, "other", b"x"))
    assert read_metadata(read_model(plain)).source == "defaults"
    objects = open_model(plain).process(detectors.held_out[0].image).result.objects
    assert objects and {o.label for o in objects} <= {"0", "1", "2"}


def test_question_mark_label_map_is_shifted_past_background(detectors):
    meta = read_metadata(read_model(detectors["ssd_tf1"]))
    assert meta.source == "tflite-support" and meta.labels[0] == "???"
    model = open_model(detectors["ssd_tf1"])
    assert model.decoder.labels == list(CLASSES)
    labels = {o.label for o in model.process(detectors.held_out[0].image).result.objects}
    assert labels and labels <= set(CLASSES)


def test_id_prefixed_label_file_with_gaps(detectors, tmp_path):
    # Coral's coco_labels.txt style: "id  name", ids with gaps.
    assert parse_labels("0  square\n2  triangle\n") == ["square", "1", "triangle"]
    labels = tmp_path / "coco_labels.txt"
    labels.write_text("0  square\n2  triangle\n")
    # ssd_int8 carries its own id-prefixed file (0..2, no gaps); --labels overrides it.
    assert open_model(detectors["ssd_int8"]).labels == list(CLASSES)
    report = predict(detectors["ssd_int8"], [_png(tmp_path, detectors.held_out[0].image)], labels=labels)
    names = {o.label for o in report.results[0].objects}
    assert names and names <= {"square", "1", "triangle"}


def test_label_file_shorter_than_class_ids_is_one_clear_error(detectors, tmp_path):
    # Refused before the first frame, in the same words for every layout (edgecnn.sanity.check_labels):
    # the SSD's class count is its postprocess op's num_classes, YOLO's its 4 + nc rows.
    labels = tmp_path / "short.txt"
    labels.write_text("square\n")
    image = _png(tmp_path, _scene_with_all_classes())
    for model in ("ssd_tf1", "yolo_float"):
        result = run_cli("predict", detectors[model], image, "--labels", labels)
        lines = error_lines(result.stderr)
        assert result.code == 4 and len(lines) == 1, result.stderr
        assert (
            f"Labels file {labels} has 1 labels for a model with 3 classes" in lines[0]
            and "--labels" in lines[0]
        )


def test_object_threshold_max_detections_and_classes(detectors, tmp_path):
    image = _png(tmp_path, _scene_with_all_classes())
    low = DecodeOptions(object_threshold=0.05)
    everything = predict(detectors["yolo_float"], [image], decode=low).results[0].objects
    default = predict(detectors["yolo_float"], [image]).results[0].objects
    # Compared with the same model's default output, so no assertion depends on how well it was trained.
    assert len(everything) >= len(default) >= 1
    assert (
        predict(detectors["yolo_float"], [image], decode=DecodeOptions(max_detections=1)).results[0].objects
        == default[:1]
    )
    only = (
        predict(detectors["yolo_float"], [image], decode=DecodeOptions(classes="circle,square"))
        .results[0]
        .objects
    )
    assert only == [o for o in default if o.label in {"circle", "square"}]
    with pytest.raises(
        UsageError, match=r"--classes person: not a label of .*\(labels: square, circle, triangle\)"
    ):
        predict(detectors["yolo_float"], [image], decode=DecodeOptions(classes="person"))


def test_cli_predict_prints_objects_and_json_boxes_in_image_pixels(detectors, tmp_path):
    # Not square: letterboxed for YOLO. The CLI must give exactly what the library's decode gives for the same
    # files, and over 20 scenes its boxes (in pixels of each 160x96 image) must find the drawn shapes: at least
    # 80% at IoU >= 0.5 (the session models find 94-96% of square scenes; letterboxing costs them a little).
    scenes = make_scenes(20, seed=99, width=160, height=96)
    images = [_png(tmp_path, scene.image) for scene in scenes]
    result = run_cli("predict", detectors["yolo_int8"], *images, "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["task"] == "detect" and all(r["width"] == 160 and r["height"] == 96 for r in data["results"])
    reference = predict(detectors["yolo_int8"], images)
    hits = total = 0
    for record, expected, scene in zip(data["results"], reference.results, scenes, strict=True):
        assert record["image"] == expected.image
        assert [o["label"] for o in record["objects"]] == [o.label for o in expected.objects]
        for got, want in zip(record["objects"], expected.objects, strict=True):
            np.testing.assert_allclose(got["box"], want.box, atol=0.051)  # JSON rounds to 0.1 px
            assert got["score"] == pytest.approx(want.score, abs=1e-4)
        h, t = recall(scene.boxes, [(o["label"], tuple(o["box"])) for o in record["objects"]])
        hits += h
        total += t
    assert hits / total >= 0.8, f"{hits}/{total} objects found in letterboxed 160x96 scenes"
    first = next(r for r in data["results"] if r["objects"])
    text = run_cli("predict", detectors["yolo_int8"], first["image"])
    assert text.code == 0 and "box " in text.stdout and first["objects"][0]["label"] in text.stdout


def test_letterbox_transform_maps_input_pixels_to_the_frame():
    details = {"shape": [1, 96, 96, 3], "dtype": np.float32, "quantization": (0.0, 0)}
    from edgecnn.metadata import ModelMetadata

    spec = InputSpec.from_details(details, ModelMetadata(mean=0.0, std=255.0), letterbox=True)
    frame = np.zeros((100, 200, 3), np.uint8)
    tensor, t = prepare(frame, spec)
    assert tensor.shape == (1, 96, 96, 3)
    assert (t.scale_x, t.scale_y, t.pad_x, t.pad_y) == (0.48, 0.48, 0.0, 24.0)
    # the grey border Ultralytics pads with, the image itself in the middle
    assert tensor[0, 0, 0, 0] == pytest.approx(114 / 255) and tensor[0, 48, 48, 0] == 0
    box = t.to_frame(np.array([[0.0, 24.0, 96.0, 72.0]], np.float32))
    np.testing.assert_allclose(box, [[0, 0, 200, 100]])
    crop = InputSpec.from_details(details, ModelMetadata(mean=0.0, std=255.0), crop="center")
    _, t = prepare(frame, crop)
    np.testing.assert_allclose(t.to_frame(np.array([[0.0, 0.0, 96.0, 96.0]])), [[50, 0, 150, 100]])


@pytest.mark.parametrize(("layout", "size"), [("yolo_int8", (128, 96)), ("ssd_tf2", (96, 96))])
def test_run_on_a_generated_video_finds_90_percent(detectors, tmp_path, layout, size):
    width, height = size
    scenes = make_scenes(40, seed=7, width=width, height=height)
    video = write_video(tmp_path / "shapes.avi", [s.image for s in scenes], fps=30)
    out = tmp_path / "objects.jsonl"
    summary = run(RunOptions(model=detectors[layout], source=str(video), jsonl=str(out), quiet=True))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.frames == len(scenes) == len(records) and "postprocess" in summary.mean_ms
    hits = total = 0
    for record, scene in zip(records, scenes, strict=True):
        assert record["task"] == "detect" and record["summary"]
        assert record["latency_ms"]["postprocess"] > 0
        h, t = recall(scene.boxes, [(o["label"], tuple(o["box"])) for o in record["objects"]])
        hits += h
        total += t
    assert hits / total >= 0.9, f"{layout}: {hits}/{total}"


def test_on_change_fires_when_the_set_of_labels_changes(detectors, tmp_path):
    # The expected events come from the same model's own decode of the very frames run reads back from the
    # video (MJPG-compressed), so the test checks --on-change, not how lucky this machine's training was.
    rng = np.random.default_rng(3)
    blank = rng.integers(90, 150, (96, 96, 3), dtype=np.uint8)
    circle = blank.copy()
    cv2.circle(circle, (48, 48), 14, (40, 200, 40), -1, cv2.LINE_AA)
    both = circle.copy()
    cv2.rectangle(both, (8, 8), (32, 32), (40, 40, 220), -1)
    frames = [blank] * 3 + [circle] * 3 + [both] * 3 + [circle] * 3
    video = write_video(tmp_path / "change.avi", frames)
    out = tmp_path / "changes.jsonl"
    run(
        RunOptions(
            model=detectors["yolo_float"], source=str(video), jsonl=str(out), quiet=True, on_change=True
        )
    )
    keys = [
        sorted({o["label"] for o in json.loads(line)["objects"]}) for line in out.read_text().splitlines()
    ]
    model = open_model(detectors["yolo_float"])
    capture = cv2.VideoCapture(str(video))
    expected: list[list[str]] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        labels = sorted({o.label for o in model.process(frame).result.objects if o.score >= 0.4})
        if not expected or expected[-1] != labels:
            expected.append(labels)
    capture.release()
    assert keys == expected
    assert len(expected) >= 3, f"the model saw too few changes in four scenes: {expected}"


def test_inspect_shows_task_decoder_and_the_cpu_postprocess_note(detectors):
    report = inspect_model(detectors["ssd_int8"], target="edgetpu")
    assert report.task == "detect" and "TF1 order" in report.decoder
    check = report.extra["edgetpu"]
    assert any("TFLite_Detection_PostProcess" in n and "expected" in n for n in check.notes)
    assert not any("TFLite_Detection_PostProcess" in p for p in check.problems)
    result = run_cli("inspect", detectors["yolo_int8"])
    assert result.code == 0 and "task: detect  (decoder: YOLO [1, 7, 144]" in result.stdout


def test_bench_reports_postprocess_apart_from_invoke(detectors):
    from edgecnn.bench.runner import format_result, run_bench

    result = run_bench(detectors["yolo_int8"], runs=5, warmup=1)
    config = result.results[0]
    assert config.task == "detect" and config.postprocess_ms is not None and config.postprocess_ms["p50"] > 0
    assert "postprocess (detect, apart from invoke)" in format_result(result)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("two_heads", "[1, 5] FLOAT32, [1, 10] FLOAT32"),
    ],
)
def test_outputs_of_no_supported_task_are_one_clear_error(odd_models, tmp_path, kind, needle):
    with pytest.raises(ModelError, match="no edgecnn task decodes"):
        open_model(odd_models[kind])
    image = _png(tmp_path, np.zeros((32, 32, 3), np.uint8))
    result = run_cli("predict", odd_models[kind], image)
    lines = error_lines(result.stderr)
    assert result.code == 3 and len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert inspect_model(odd_models[kind]).task.startswith("unsupported: ")


def test_raw_scores_without_softmax_or_labels_warn_once(odd_models, caplog):
    with caplog.at_level(logging.WARNING):
        model = open_model(odd_models["embedding"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "neither a softmax nor labelled: scores are raw" in warnings[0]
    assert model.task == "classify"


def test_nan_scores_are_one_clear_error(odd_models, tmp_path):
    image = _png(tmp_path, np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ModelInvokeError, match="NaN"):
        open_model(odd_models["nan_yolo"]).process(np.zeros((32, 32, 3), np.uint8))
    result = run_cli("predict", odd_models["nan_yolo"], image)
    lines = error_lines(result.stderr)
    assert result.code == 3 and len(lines) == 1 and "NaN or infinite" in lines[0], result.stderr


def test_boxes_out_of_range_are_reported(detectors):
    from edgecnn.tasks.detect import SSDDecoder

    decoder = SSDDecoder(read_model(detectors["ssd_tf1"]), open_model(detectors["ssd_tf1"]).interpreter, None,
                         DecodeOptions())  # fmt: skip
    with pytest.raises(ModelInvokeError, match="boxes out of range"):
        decoder._check_normalised(np.array([[0.1, 0.2, 7.5, 0.9]], np.float32))


def test_detection_result_draws_boxes_on_the_preview(detectors):
    from edgecnn.run.live import render_preview
    from edgecnn.run.results import FrameResult

    scene = detectors.held_out[0]
    result = open_model(detectors["yolo_float"]).process(scene.image).result
    frame = FrameResult(1, 0, 0.0, result, 0, 0, 0, 0, 0)
    jpeg = cv2.imdecode(
        np.frombuffer(render_preview(scene.image, frame, quality=95), np.uint8), cv2.IMREAD_COLOR
    )
    x1, y1, _x2, y2 = (round(v) for v in result.objects[0].box)
    changed = np.abs(jpeg.astype(int) - scene.image.astype(int)).sum(axis=2) > 60
    assert changed[y1 : y2 + 1, x1].mean() > 0.5  # the box's left edge is drawn
    assert frame.to_dict()["objects"][0]["label"] == result.objects[0].label
    assert frame.summary().startswith(f"{len(result.objects)} object")


def _png(folder, image) -> str:
    path = folder / f"image{len(list(folder.glob('image*.png')))}.png"
    cv2.imwrite(str(path), image)
    return str(path)


def _scene_with_all_classes() -> np.ndarray:
    """A generated scene (not seen in training) holding one object of each class."""
    for scene in make_scenes(200, seed=11):
        if sorted(b.label for b in scene.boxes) == [0, 1, 2]:
            return scene.image
    raise AssertionError("no generated scene holds all three classes")


def test_served_run_exposes_objects_per_label_and_latest(detectors, tmp_path):
    import threading

    from prometheus_client.parser import text_string_to_metric_families

    from edgecnn.run.pipeline import Pipeline
    from tests.run_support import http_get, wait_until

    scenes = make_scenes(30, seed=21)
    video = write_video(tmp_path / "served.avi", [s.image for s in scenes], fps=10)
    pipeline = Pipeline(
        RunOptions(
            model=detectors["ssd_tf1"], source=str(video), realtime=True, serve="127.0.0.1:0", quiet=True
        )
    )
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        assert pipeline.serving.wait(60)
        host, port = pipeline.server_address
        base = f"http://{host}:{port}"
        wait_until(lambda: json.loads(http_get(base + "/latest")[2]).get("n", 0) >= 5)
        latest = json.loads(http_get(base + "/latest")[2])
        assert latest["task"] == "detect" and latest["objects"] and latest["summary"].endswith(")")
        assert all(len(o["box"]) == 4 for o in latest["objects"])
        body = http_get(base + "/metrics")[2].decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        seen = {
            s.labels["label"]: s.value
            for s in families["edgecnn_objects"].samples
            if s.name.endswith("_total")
        }
        assert set(seen) <= set(CLASSES) and sum(seen.values()) >= 5
        assert families["edgecnn_postprocess_seconds"].type == "histogram"
    finally:
        pipeline.stop()
        thread.join(20)
    assert not thread.is_alive()


def test_task_declared_in_edgecnn_metadata_wins(detectors, digits_model, tmp_path):
    from edgecnn.metadata import ModelMetadata, embed_metadata

    assert read_metadata(read_model(digits_model.tflite)).task == "classify"  # edgecnn convert writes it
    declared = tmp_path / "declared.tflite"
    declared.write_bytes(embed_metadata(read_model(detectors["yolo_float"]), ModelMetadata(task="classify")))
    with pytest.raises(ModelError, match=r"declared a classifier but has outputs \[1, 7, 144\]"):
        open_model(declared)
    declared.write_bytes(embed_metadata(read_model(detectors["yolo_float"]), ModelMetadata(task="pose")))
    with pytest.raises(ModelError, match=r"declared a pose model but its outputs \[1, 7, 144\] FLOAT32"):
        open_model(declared)  # YOLO-shaped, but no kpt_shape says which rows are keypoints
    declared.write_bytes(embed_metadata(read_model(detectors["yolo_float"]), ModelMetadata(task="obb")))
    with pytest.raises(
        ModelError, match=r"is a 'obb' model \(edgecnn metadata; outputs \[1, 7, 144\] FLOAT32\)"
    ):
        open_model(declared)


def test_fleet_status_shows_the_task_summary():
    from edgecnn.fleet.status import _describe_result

    latest = {"task": "detect", "objects": [], "summary": "2 objects: car, person (best 0.91)"}
    assert _describe_result(latest) == "2 objects: car, person (best 0.91)"
    assert _describe_result({"classes": [{"label": "tiger cat", "score": 0.71}]}) == "tiger cat 0.71"


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        ((1, 84, 8400), "yolo"),  # YOLOv8/11 COCO export
        ((1, 8400, 84), "yolo-channels-last"),
        ((1, 300, 6), "e2e"),  # YOLOv10/26 end-to-end
        ((1, 1, 17, 3), None),  # pose keypoints
        ((1, 1001), None),  # classifier scores
        ((1, 4, 4), None),
    ],
)
def test_output_shapes_pick_the_detection_layout(shape, layout):
    from edgecnn.modelfile import TensorInfo
    from edgecnn.tasks.detect import _yolo_layout

    assert _yolo_layout([TensorInfo("out", shape, shape, "FLOAT32")]) == layout
