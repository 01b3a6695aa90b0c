"""`edgecnn convert`: the session's real digits run, converted and checked through the device runtime."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from edgecnn.errors import ConversionError
from edgecnn.metadata import read_metadata
from edgecnn.model import open_model
from edgecnn.modelfile import read_model
from edgecnn.train import load_dataset
from tests.conftest import error_lines, run_cli

SEED_INT8_OPS = [
    ("CONV_2D", 3, 2),
    ("MAX_POOL_2D", 2, 2),
    ("RESHAPE", 1, 1),
    ("FULLY_CONNECTED", 4, 2),
    ("SOFTMAX", 2, 1),
]


def _ops(path):
    return [(op.name, op.version, op.count) for op in read_model(path).operators()]


def test_int8_seed_model_is_static_batch1_with_the_expected_ops(digits_model):
    mf = read_model(digits_model.tflite)
    assert _ops(digits_model.tflite) == SEED_INT8_OPS
    names = {op.name for op in mf.operators()}
    assert not names & {"SHAPE", "STRIDED_SLICE", "PACK"}
    (inp,) = mf.inputs
    assert inp.shape == inp.shape_signature == (1, 28, 28, 1) and inp.dtype == "INT8"
    assert mf.outputs[0].shape_signature == (1, 10) and mf.outputs[0].dtype == "INT8"
    for graph in mf.model.subgraphs:
        for tensor in graph.tensors:
            signature = tensor.shapeSignature if tensor.shapeSignature is not None else []
            assert all(d >= 0 for d in signature), tensor.name


def test_metadata_round_trip(digits_model, digits_run):
    meta = read_metadata(read_model(digits_model.tflite))
    assert meta.source == "edgecnn"
    assert meta.labels == [str(i) for i in range(10)]
    assert (meta.colour, meta.mean, meta.std, meta.resize, meta.outputs) == (
        "GRAY",
        0.0,
        255.0,
        "bilinear",
        "probabilities",
    )
    prov = meta.provenance
    keras_sha = hashlib.sha256((digits_run / "model.keras").read_bytes()).hexdigest()
    assert prov["source_sha256"] == keras_sha and prov["source_model"] == "model.keras"
    assert prov["dataset"] == "digits" and prov["architecture"] == "seed" and prov["tool"] == "edgecnn 0.1.0"
    assert prov["quantization"] == "int8" and prov["calibration"]["samples"] == 200
    report = json.loads((digits_run / "conversion_report.json").read_text())
    assert prov["verification"] == report["verification"]
    assert report["metadata"]["provenance"]["verification"] == report["verification"]


def test_verification_figures_are_measured_on_held_out_images(digits_model, digits_run):
    import keras

    report = json.loads((digits_run / "conversion_report.json").read_text())
    v = report["verification"]
    data = load_dataset("digits")
    assert v["samples"] == len(data.y_test) and "held-out" in v["source"]
    assert report["calibration"]["source"] == "digits (training split)"
    assert 0.9 < v["float_accuracy"] <= 1 and 0.9 < v["converted_accuracy"] <= 1
    assert v["top1_agreement"] >= 0.97 and v["mean_abs_score_diff"] < 0.05
    assert v["accuracy_drop_pp"] == pytest.approx(
        (v["float_accuracy"] - v["converted_accuracy"]) * 100, abs=0.01
    )
    sizes = report["sizes"]
    assert sizes["output_bytes"] == digits_model.tflite.stat().st_size
    assert sizes["output_vs_float32"] == pytest.approx(
        sizes["output_bytes"] / sizes["float32_tflite_bytes"], abs=1e-3
    )
    assert sizes["output_vs_float32"] <= 0.3

    # Recompute independently: Keras on (pixel / 255), the int8 file through the runtime on raw pixels.
    model = keras.models.load_model(digits_run / "model.keras", compile=False)
    float_top = model.predict(data.x_test.astype(np.float32) / 255.0, verbose=0).argmax(axis=1)
    clf = open_model(digits_model.tflite)
    int8_top = np.array([clf.classify(im[..., 0]).top.id for im in data.x_test])
    assert np.mean(float_top == int8_top) == pytest.approx(v["top1_agreement"], abs=1e-4)
    assert np.mean(int8_top == data.y_test) == pytest.approx(v["converted_accuracy"], abs=1e-4)
    assert np.mean(float_top == data.y_test) == pytest.approx(v["float_accuracy"], abs=1e-4)


def test_cli_convert_then_predict_classifies_digit_images(digits_run, tmp_path):
    out_model = tmp_path / "out" / "digits_int8.tflite"
    result = run_cli(
        "convert", digits_run / "model.keras", "-o", out_model, "--min-agreement", "95", "--json"
    )
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["output"] == str(out_model) and out_model.is_file()
    assert (tmp_path / "out" / "conversion_report.json").is_file()
    assert [(o["name"], o["version"], o["count"]) for o in report["operators"]] == SEED_INT8_OPS

    data = load_dataset("digits")
    paths, truth = [], []
    for digit in range(10):
        index = int(np.flatnonzero(data.y_test == digit)[0])
        path = tmp_path / f"digit_{digit}.png"
        assert cv2.imwrite(str(path), data.x_test[index])
        paths.append(path)
        truth.append(str(digit))
    predicted = run_cli("predict", out_model, *paths, "--json", "--top-k", "1")
    assert predicted.code == 0, predicted.stderr
    labels = [r["classes"][0]["label"] for r in json.loads(predicted.stdout)["results"]]
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) >= 9, labels


@pytest.mark.parametrize(
    ("quantize", "io", "input_dtype", "max_ratio"),
    [
        ("float16", None, "FLOAT32", 0.6),
        ("dynamic", None, "FLOAT32", 0.3),
        ("float32", None, "FLOAT32", 1.01),
        ("int8", "uint8", "UINT8", 0.3),
    ],
)
def test_other_quantizations_and_io_types(digits_run, tmp_path, quantize, io, input_dtype, max_ratio):
    from edgecnn.converters.pipeline import convert

    report = convert(
        digits_run / "model.keras",
        output=tmp_path / f"m_{quantize}.tflite",
        quantize=quantize,
        io=io,
        calibration_samples=100,
    )
    mf = read_model(report.output)
    assert mf.inputs[0].dtype == input_dtype and mf.inputs[0].shape_signature == (1, 28, 28, 1)
    assert report.sizes["output_vs_float32"] <= max_ratio
    assert report.verification.top1_agreement >= 0.97
    assert read_metadata(mf).provenance["quantization"] == quantize
    if io == "uint8":
        # uint8 <-> int8 at both ends: the list (QUANTIZE, CONV_2D v3, ... SOFTMAX v2).
        assert [(o.name, o.version, o.count) for o in mf.operators()] == [("QUANTIZE", 1, 2), *SEED_INT8_OPS]
    clf = open_model(report.output)
    data = load_dataset("digits")
    hits = sum(
        clf.classify(im[..., 0]).top.id == label
        for im, label in zip(data.x_test[:50], data.y_test[:50], strict=True)
    )
    assert hits >= 45


def test_min_agreement_fails_and_keeps_no_output(digits_run, tmp_path):
    # Calibrating on black frames sets useless int8 ranges: verification catches it.
    black = tmp_path / "black"
    black.mkdir()
    for i in range(10):
        cv2.imwrite(str(black / f"b{i}.png"), np.zeros((28, 28), np.uint8))
    out_model = tmp_path / "bad.tflite"
    result = run_cli(
        "convert",
        digits_run / "model.keras",
        "-o",
        out_model,
        "--calibration",
        black,
        "--min-agreement",
        "90",
    )
    assert result.code == 10, result.stderr
    (line,) = error_lines(result.stderr)
    assert "is below --min-agreement 90%" in line and "bad.tflite was not written" in line
    assert not out_model.exists() and not (tmp_path / "conversion_report.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["black"]  # no temp files either


@pytest.mark.slow  # runs TensorFlow
def test_layer_without_int8_kernel_is_named():
    import keras

    from edgecnn.converters.calibration import representative_dataset
    from edgecnn.converters.keras_to_tflite import fixed_batch, to_tflite

    class Wave(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3),
            Wave(name="wave"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    samples = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    with pytest.raises(ConversionError, match=r"layer 'wave' \(SIN\) in float"):
        to_tflite(fixed_batch(model), representative=representative_dataset(samples, 0.0, 255.0))


@pytest.fixture(scope="module")
def flat_model(tmp_path_factory):
    """A Keras model whose input is a flat vector, saved as .keras: not an image classifier."""
    import keras

    path = tmp_path_factory.mktemp("flat") / "flat.keras"
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    model.save(path)
    return path


def test_convert_error_paths_are_one_line(digits_run, flat_model, tmp_path):
    keras_model = digits_run / "model.keras"
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    cv2.imwrite(str(broken / "ok.png"), np.zeros((28, 28), np.uint8))
    (broken / "bad.png").write_bytes(b"not an image at all")
    cases = [
        (["missing.keras"], 3, "Keras model not found: missing.keras"),
        ([keras_model, "--calibration", empty], 4, "No images in calibration folder"),
        ([keras_model, "--calibration", tmp_path / "nowhere"], 4, "no such folder, and not a dataset name"),
        ([keras_model, "--calibration", broken], 4, "Cannot decode"),
        ([flat_model, "--calibration", "digits"], 10, "Wrong input shape (None, 784)"),
        ([keras_model, "--quantize", "float16", "--io", "uint8"], 2, "--io uint8 needs --quantize int8"),
        ([keras_model, "-o", tmp_path / "model.bin"], 2, "must end in .tflite"),
    ]
    for args, code, needle in cases:
        result = (
            run_cli("convert", *args, "-o", tmp_path / "out" / "m.tflite")
            if "-o" not in args
            else run_cli("convert", *args)
        )
        assert result.code == code, (args, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and needle in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
