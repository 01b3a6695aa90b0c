"""Inputs are normalised as the model says and quantized with the input tensor's OWN scale and zero point.

The models are built here with TensorFlow's converter: one small classifier (per-channel mean brightness ->
4 classes) in several variants that all compute the same function of the pixels. Full-integer variants are
calibrated on ranges that are NOT [0, 1], so their int8 input quantization is not (1/255, -128) and feeding
``pixel - 128`` (what edgecnn did for every int8 input) is measurably wrong. NMS options are checked on a
model whose YOLO output is a constant with known boxes.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest

from edgecnn.adapters import dequantize
from edgecnn.errors import ConfigError
from edgecnn.inspect.contents import format_report, inspect_model
from edgecnn.metadata import TFLITE_SUPPORT_NAME, read_metadata
from edgecnn.model import open_model
from edgecnn.modelfile import parse_model, read_model, with_metadata
from edgecnn.predict.files import predict
from edgecnn.preprocess import prepare
from edgecnn.tasks import DecodeOptions
from tests.conftest import CAT, MOBILENET, error_lines, run_cli
from tests.detectors import with_ultralytics_metadata

pytestmark = pytest.mark.slow

SIZE = 16
WEIGHTS = np.array([[8, -8, 0, 0], [0, 8, -8, 0], [0, 0, 8, -8]], dtype=np.float32)
BIAS = np.array([0, 0, 4, -4], dtype=np.float32)


def _images(count: int = 24, seed: int = 3) -> list[np.ndarray]:
    """BGR images at the input size (no resize: the tensor is the pixels' own normalisation)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        base = rng.integers(0, 256, size=3)
        noise = rng.integers(-40, 41, size=(SIZE, SIZE, 3))
        images.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    images.append(np.zeros((SIZE, SIZE, 3), np.uint8))
    images.append(np.full((SIZE, SIZE, 3), 255, np.uint8))
    return images


def _classifier(tf: Any, to_unit: Any) -> Any:
    """softmax(mean over pixels of ``to_unit(x)`` (the [0, 1] image) @ W + b)."""

    @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    def model(x: Any) -> Any:
        unit = to_unit(x)
        return tf.nn.softmax(tf.matmul(tf.reduce_mean(unit, axis=[1, 2]), WEIGHTS) + BIAS)

    return model.get_concrete_function()


def _convert(tf: Any, fn: Any, calibration: tuple[float, float] | None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], tf.Module())
    if calibration is not None:
        low, high = calibration
        rng = np.random.default_rng(0)

        def representative() -> Any:
            for _ in range(32):
                yield [rng.uniform(low, high, size=(1, SIZE, SIZE, 3)).astype(np.float32)]
            yield [np.full((1, SIZE, SIZE, 3), low, np.float32)]
            yield [np.full((1, SIZE, SIZE, 3), high, np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def tflite_support_normalisation(data: bytes, mean: list[float], std: list[float]) -> bytes:
    """``data`` with TFLite Support metadata holding the input's NormalizationOptions, written with the
    metadata schema's generated object API (the code edgecnn reads it with)."""
    from edgecnn._vendor import tflite_metadata_schema as tfs

    options = tfs.NormalizationOptionsT()
    options.mean, options.std = mean, std
    unit = tfs.ProcessUnitT()
    unit.optionsType, unit.options = tfs.ProcessUnitOptions.NormalizationOptions, options
    tensor = tfs.TensorMetadataT()
    tensor.name, tensor.processUnits = "image", [unit]
    graph = tfs.SubGraphMetadataT()
    graph.inputTensorMetadata = [tensor]
    root = tfs.ModelMetadataT()
    root.name, root.subgraphMetadata = "test classifier", [graph]
    builder = flatbuffers.Builder(256)
    builder.Finish(root.Pack(builder), file_identifier=b"M001")
    return with_metadata(parse_model(data), TFLITE_SUPPORT_NAME, bytes(builder.Output()))


def ultralytics_classifier(data: bytes) -> bytes:
    """What Ultralytics' export appends (``metadata.json`` in a zip) for a classifier; detectors use
    ``tests.detectors.with_ultralytics_metadata``."""
    meta = {
        "author": "Ultralytics",
        "task": "classify",
        "imgsz": [SIZE, SIZE],
        "names": dict(enumerate("abcd")),
    }
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        archive.writestr("metadata.json", json.dumps(meta))
    return data + sink.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("input_quant")
    unit = _classifier(tf, lambda x: x)  # expects [0, 1]
    pixels = _classifier(tf, lambda x: x / 255.0)  # divides by 255 inside: expects 0-255
    signed = _classifier(tf, lambda x: x * 0.5 + 0.5)  # expects [-1, 1]
    odd = _convert(tf, unit, (-0.5, 1.5))  # expects [0, 1], calibrated on [-0.5, 1.5]
    built = {
        "float": _convert(tf, unit, None),
        "odd": odd,
        "odd_ultralytics": ultralytics_classifier(odd),
        "odd_support": tflite_support_normalisation(odd, [0.0], [255.0]),
        "pixels": _convert(tf, pixels, (0.0, 255.0)),
        "signed_support": tflite_support_normalisation(_convert(tf, signed, (-2.0, 2.0)), [127.5], [127.5]),
    }
    paths = {}
    for name, data in built.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


# (model, where the normalisation comes from, the real value a pixel p must become)
CASES = [
    ("odd", "default", lambda p: p / 255.0),
    ("odd_ultralytics", "ultralytics", lambda p: p / 255.0),
    ("odd_support", "tflite-support", lambda p: p / 255.0),
    ("pixels", "tensor-range", lambda p: p),
    ("signed_support", "tflite-support", lambda p: (p - 127.5) / 127.5),
]


@pytest.mark.parametrize(("name", "source", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_tensor_dequantizes_to_the_normalised_pixels(models, name, source, expected):
    model = open_model(models[name])
    details = model.interpreter.get_input_details()[0]
    scale, zero_point = details["quantization"]
    assert details["dtype"] == np.int8
    # The point of these models: their input quantization is not the (1/255, -128) that pixel - 128 assumes.
    assert abs(scale - 1 / 255) > 1e-4 or zero_point != -128 or name == "pixels"
    norm = model.spec.normalisation
    assert norm.source == source and norm.raw == (name == "pixels")  # scale 1, zero point -128: pixel - 128
    for image in _images(6):
        tensor, _ = prepare(image, model.spec)
        rgb = image[..., ::-1].astype(np.float32)
        real = dequantize(tensor[0], scale, zero_point)
        assert np.abs(real - expected(rgb)).max() <= scale * 0.5 + 1e-6  # rounding: half a step
        if name != "pixels":  # what edgecnn used to feed: pixel - 128, read back through the same scale
            old = dequantize((rgb - 128).astype(np.int8), scale, zero_point)
            assert np.abs(old - expected(rgb)).max() > 10 * scale


@pytest.mark.parametrize("name", ["odd", "odd_ultralytics", "odd_support", "pixels", "signed_support"])
def test_predict_on_the_int8_model_agrees_with_the_float_model(models, name, tmp_path):
    images = []
    for i, image in enumerate(_images()):
        images.append(tmp_path / f"{i:02}.png")
        import cv2

        cv2.imwrite(str(images[-1]), image)
    floats = predict(models["float"], images, decode=DecodeOptions(top_k=4))
    ints = predict(models[name], images, decode=DecodeOptions(top_k=4))
    assert ints.to_dict()["input_normalisation"] == inspect_model(models[name]).input_normalisation["rule"]
    worst = 0.0
    agree = 0
    for f, q in zip(floats.results, ints.results, strict=True):
        fs = {c.id: c.score for c in f.output.classes}
        qs = {c.id: c.score for c in q.output.classes}
        # top-k lists leave out classes that score exactly 0 (an int8 softmax gives many): those read as 0
        worst = max(worst, max(abs(fs.get(k, 0.0) - qs.get(k, 0.0)) for k in fs.keys() | qs.keys()))
        agree += f.output.classes[0].id == q.output.classes[0].id
    # int8 softmax outputs are steps of 1/256, the inputs add half a step of their own, and the int8 graph
    # its error: measured 0.020-0.025, and 0.073 for the model that divides by 255 inside (its input is
    # exact: pixel - 128 at scale 1). A wrong input rule moves probabilities by 0.3 and more.
    assert worst <= 0.1, f"{name}: largest probability difference {worst:.3f}"
    assert agree >= len(images) - 1  # a near-tie may flip


def test_inspect_prints_the_rule(models):
    report = inspect_model(models["odd_ultralytics"])
    norm = report.input_normalisation
    assert norm["source"] == "ultralytics" and norm["dtype"] == "int8" and norm["raw_pixels"] is False
    assert norm["mean"] == [0.0] * 3 and norm["std"] == [255.0] * 3
    line = next(x for x in format_report(report).splitlines() if x.startswith("input normalisation:"))
    assert f"zero point {norm['zero_point']}" in line and "Ultralytics pixel/255" in line
    assert "quantized with the tensor's scale/zero point" in line
    result = run_cli("inspect", models["odd"], "--json")
    assert result.code == 0, result.stderr
    shown = json.loads(result.stdout)["input_normalisation"]
    assert shown["source"] == "default" and "pixel/255 assumed" in shown["rule"]
    assert "[0, 255]" in inspect_model(models["pixels"]).input_normalisation["rule"]


def test_the_reported_ultralytics_full_integer_input():
    # yolov8n_full_integer_quant.tflite: int8 input, scale 0.018658, zero point -14, pixel/255 expected.
    from edgecnn.metadata import ModelMetadata
    from edgecnn.preprocess import InputSpec

    details = {"shape": [1, 8, 8, 3], "dtype": np.int8, "quantization": (0.018658, -14)}
    meta = ModelMetadata(mean=0.0, std=255.0, norm_source="ultralytics", task="detect", letterbox=True)
    spec = InputSpec.from_details(details, meta, letterbox=True)
    image = np.tile(np.array([0, 128, 255], np.uint8), (8, 8, 1))  # B, G, R
    tensor, _ = prepare(image, spec)
    assert tensor[0, 0, 0].tolist() == [40, 13, -14]  # R 255 -> 1.0, G 128 -> 0.502, B 0 -> 0.0
    assert "int8 scale 0.018658 zero point -14; Ultralytics pixel/255" in spec.normalisation.rule


def test_coral_uint8_model_keeps_raw_pixels_from_its_tflite_support_metadata():
    meta = read_metadata(read_model(MOBILENET))
    assert (meta.mean, meta.std, meta.norm_source) == ([127.5], [127.5], "tflite-support")
    model = open_model(MOBILENET)
    norm = model.spec.normalisation
    assert norm.raw and norm.source == "tflite-support" and "raw pixels" in norm.rule
    image = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    tensor, _ = prepare(image, model.spec)
    assert np.array_equal(tensor[0], image[..., ::-1])


def test_unreadable_tflite_support_metadata_is_one_error(tmp_path):
    garbled = with_metadata(read_model(MOBILENET), TFLITE_SUPPORT_NAME, b"\xff\xff\xff\x7fM001" + bytes(8))
    path = tmp_path / "garbled.tflite"
    path.write_bytes(garbled)
    result = run_cli("predict", path, CAT)
    lines = error_lines(result.stderr)
    assert result.code != 0 and "Traceback" not in result.stderr
    assert len(lines) == 1 and "TFLite Support metadata (TFLITE_METADATA) is unreadable" in lines[0]


def test_session_yolo_int8_input_follows_its_own_quantization(detectors):
    # Calibrated on generated scenes whose brightest value is below 1: scale 1/260, zero point -128, so
    # pixel - 128 (what was fed before) reads 2 % dark; Ultralytics' pixel/255 is quantized with that scale.
    model = open_model(detectors["yolo_int8"])
    details = model.interpreter.get_input_details()[0]
    scale, zero_point = details["quantization"]
    norm = model.spec.normalisation
    assert norm.source == "ultralytics" and not norm.raw and zero_point == -128 and scale < 1 / 256
    image = np.random.default_rng(2).integers(
        0, 256, (model.spec.height, model.spec.width, 3), dtype=np.uint8
    )
    tensor, _ = prepare(image, model.spec)
    real = dequantize(tensor[0], scale, zero_point)
    expected = np.minimum(image[..., ::-1] / 255.0, scale * (127 - zero_point))  # the top end clips at 127
    assert np.abs(real - expected).max() <= scale * 0.5 + 1e-6


# --- NMS options ------------------------------------------------------------------------------------

# Boxes in input pixels (cx, cy, w, h) of a 64x64 input and one score per class (3 classes).
NMS_SIZE = 64
ROWS = [
    ((20, 20, 20, 20), (0.9, 0.0, 0.0)),  # A: class 0
    ((22, 20, 20, 20), (0.0, 0.8, 0.0)),  # B: class 1, IoU with A 0.82: only agnostic NMS merges them
    ((44, 44, 20, 20), (0.0, 0.0, 0.9)),  # C: class 2
    ((50, 44, 20, 20), (0.0, 0.0, 0.7)),  # D: class 2, IoU with C 0.54: dropped at 0.45, kept at 0.7
]


def _constant_yolo(tf: Any, table: list[Any] = ROWS) -> bytes:
    rows = np.array([[*box, *scores] for box, scores in table], dtype=np.float32)
    rows[:, :4] /= NMS_SIZE  # normalised, as Ultralytics' TFLite export
    const = rows.T[None]  # [1, 4 + 3, len(table)]
    const = np.concatenate([const, np.zeros((1, 7, 8), np.float32)], axis=2)  # N > 7 rows

    @tf.function(input_signature=[tf.TensorSpec((1, NMS_SIZE, NMS_SIZE, 3), tf.float32)])
    def model(x: Any) -> Any:
        return const + 0.0 * tf.reduce_mean(x)

    return _convert(tf, model.get_concrete_function(), None)


@pytest.fixture(scope="module")
def nms_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import cv2
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("nms")
    path = folder / "yolo_const.tflite"
    path.write_bytes(with_ultralytics_metadata(_constant_yolo(tf), imgsz=NMS_SIZE, names=("a", "b", "c")))
    image = folder / "frame.png"
    cv2.imwrite(str(image), np.zeros((NMS_SIZE, NMS_SIZE, 3), np.uint8))
    return path, image


def _found(path: Path, image: Path, **options: Any) -> list[tuple[str, float]]:
    report = predict(path, [image], decode=DecodeOptions(object_threshold=0.5, **options))
    return sorted((o.label, round(o.score, 2)) for o in report.results[0].output.objects)


def test_iou_and_agnostic_change_suppression(nms_model):
    path, image = nms_model
    assert _found(path, image) == [("a", 0.9), ("b", 0.8), ("c", 0.9)]  # per class, IoU 0.45: D goes
    assert _found(path, image, iou=0.7) == [("a", 0.9), ("b", 0.8), ("c", 0.7), ("c", 0.9)]
    assert _found(path, image, agnostic=True) == [("a", 0.9), ("c", 0.9)]
    assert _found(path, image, agnostic=True, iou=0.9) == [("a", 0.9), ("b", 0.8), ("c", 0.7), ("c", 0.9)]
    assert "class-agnostic, IoU 0.7" in open_model(path, decode=_options(iou=0.7, agnostic=True)).decoder.name


def _crowd(tmp_path: Path, crowd: list) -> tuple[Path, Path]:
    """A constant YOLO model of classes a, b, c giving ``crowd``'s candidates, and a black frame for it."""
    import cv2
    import tensorflow as tf

    path = tmp_path / "crowd.tflite"
    path.write_bytes(
        with_ultralytics_metadata(_constant_yolo(tf, crowd), imgsz=NMS_SIZE, names=("a", "b", "c"))
    )
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((NMS_SIZE, NMS_SIZE, 3), np.uint8))
    return path, image


def test_max_detections_keeps_the_best_objects_after_nms_not_the_best_candidates_before(tmp_path):
    # Six near-identical candidates for one object outscore a second object. Capping the candidates that
    # enter NMS (OpenCV's top_k) found one object with --max-detections 3; NMS first, then the cap: two.
    crowd = [((20 + i * 0.2, 20, 20, 20), (0.95 - i * 0.01, 0.0, 0.0)) for i in range(6)]
    crowd.append(((46, 46, 16, 16), (0.6, 0.0, 0.0)))
    path, image = _crowd(tmp_path, crowd)
    assert _found(path, image, max_detections=3) == [("a", 0.6), ("a", 0.95)]
    assert _found(path, image, max_detections=1) == [("a", 0.95)]
    assert _found(path, image, max_detections=3, agnostic=True) == [("a", 0.6), ("a", 0.95)]


def test_classes_choose_candidates_before_the_max_detections_cap(tmp_path):
    # Three separate class-a objects outscore one class-b object. With --max-detections 2 the cap kept two
    # a's and --classes b, applied after it, found nothing; as Ultralytics' classes=, the class filter now
    # picks the candidates NMS and the cap see.
    crowd = [((10 + i * 20, 10, 14, 14), (0.9 - i * 0.05, 0.0, 0.0)) for i in range(3)]
    crowd.append(((46, 46, 14, 14), (0.0, 0.6, 0.0)))
    path, image = _crowd(tmp_path, crowd)
    assert _found(path, image, max_detections=2) == [("a", 0.85), ("a", 0.9)]
    assert _found(path, image, max_detections=2, classes=("b",)) == [("b", 0.6)]
    assert _found(path, image, max_detections=1, classes=("a", "b")) == [("a", 0.9)]
    assert _found(path, image, max_detections=2, classes=("b",), agnostic=True) == [("b", 0.6)]


def _options(**kwargs: Any) -> Any:
    from edgecnn.tasks import DecodeOptions

    return DecodeOptions(**kwargs)


def test_iou_flags_reach_predict_run_and_config(nms_model, tmp_path):
    path, image = nms_model
    result = run_cli("predict", path, image, "--object-threshold", "0.5", "--agnostic", "--json")
    assert result.code == 0, result.stderr
    labels = sorted(o["label"] for o in json.loads(result.stdout)["results"][0]["objects"])
    assert labels == ["a", "c"]
    bad = run_cli("predict", path, image, "--iou", "0")
    assert bad.code != 0 and "--iou" in bad.stderr
    out = tmp_path / "run.jsonl"
    config = tmp_path / "run.toml"
    config.write_text(
        f'model = "{path}"\nsource = "{image.parent}"\njsonl = "{out}"\nobject_threshold = 0.5\niou = 0.7\n'
        "max_frames = 1\nquiet = true\n"
    )
    result = run_cli("run", "--config", config)
    assert result.code == 0, result.stderr
    objects = json.loads(out.read_text().splitlines()[0])["objects"]
    assert len(objects) == 4  # iou 0.7 keeps C and D
    from edgecnn.run.config import load_run_config, validate_run_options

    config.write_text(f'model = "{path}"\niou = 1.5\n')
    with pytest.raises(ConfigError, match="iou"):
        validate_run_options(load_run_config(config))


def test_iou_on_a_model_with_nms_inside_warns(detectors, caplog):
    with caplog.at_level(logging.WARNING, logger="edgecnn"):
        open_model(detectors["ssd_tf1"], decode=_options(iou=0.6))
    assert any("do not apply" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgecnn"):
        open_model(detectors["ssd_tf1"])
    assert not any("do not apply" in r.getMessage() for r in caplog.records)


def test_eval_uses_iou(nms_model, tmp_path):
    # All four constant boxes are true objects: per class at IoU 0.45 NMS drops D, at 0.7 it keeps it.
    from edgecnn.eval.evaluate import evaluate

    path, image = nms_model
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "frame.png").write_bytes(image.read_bytes())
    rows = [
        f"{scores.index(max(scores))} {' '.join(f'{v / NMS_SIZE:g}' for v in box)}" for box, scores in ROWS
    ]
    (tmp_path / "labels" / "frame.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    default = evaluate(path, tmp_path).model
    loose = evaluate(path, tmp_path, iou=0.7).model
    assert loose.map50_pct == pytest.approx(100.0) and default.map50_pct < 95
