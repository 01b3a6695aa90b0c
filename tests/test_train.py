"""`edgecnn train`: real (short) training runs on digits and on an image folder written with OpenCV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.errors import InputError, UsageError
from edgecnn.train import load_dataset, train
from tests.conftest import digits_dataset, error_lines, run_cli

COLOURS_BGR = {"red": (30, 30, 220), "green": (40, 200, 40), "blue": (220, 60, 30)}


def make_colour_folder(root: Path, per_class: int = 16, seed: int = 0, size: int = 48) -> Path:
    """DIR/<colour>/*.png|jpg: one class per colour, random shapes on a noisy grey background.

    Classes differ by colour only, so a model that swapped RGB and BGR anywhere would confuse red and blue.
    """
    rng = np.random.default_rng(seed)
    for name, bgr in COLOURS_BGR.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(90, 150, (size, size, 1), dtype=np.uint8).repeat(3, axis=2)
            centre = tuple(int(c) for c in rng.integers(14, size - 14, 2))
            radius = int(rng.integers(8, 14))
            if i % 2:
                cv2.circle(image, centre, radius, bgr, thickness=-1)
            else:
                x, y = centre
                cv2.rectangle(image, (x - radius, y - radius), (x + radius, y + radius), bgr, thickness=-1)
            suffix = ".png" if i % 3 else ".jpg"
            assert cv2.imwrite(str(folder / f"{name}_{i:03d}{suffix}"), image)
    return root


def test_digits_run_writes_model_labels_metrics_and_curves(digits_run):
    files = sorted(p.name for p in digits_run.iterdir() if p.is_file())
    assert {"model.keras", "labels.txt", "metrics.json", "curves.png"} <= set(files)
    assert not [f for f in files if f.startswith(".") or f.endswith(".tmp")], files  # no temp leftovers
    assert (digits_run / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    metrics = json.loads((digits_run / "metrics.json").read_text())
    acc = metrics["accuracy"]
    assert 0.9 < acc["test"] <= 1 and 0.9 < acc["train"] <= 1 and 0.8 < acc["validation"] <= 1
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == metrics["dataset"]["test"]
    assert acc["test"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-4)
    assert set(metrics["per_class_accuracy"]) == {str(i) for i in range(10)}
    assert metrics["preprocessing"] == {
        "colour": "GRAY",
        "mean": 0.0,
        "std": 255.0,
        "resize": "bilinear",
        "input_shape": [28, 28, 1],
    }
    assert metrics["epochs_run"] == 5 and len(metrics["history"]["val_accuracy"]) == 5
    curves = cv2.imread(str(digits_run / "curves.png"))
    assert curves is not None and curves.shape[0] > 200 and curves.shape[1] > 400


def test_seed_model_matches_the_issue_architecture(digits_run):
    import keras

    model = keras.models.load_model(digits_run / "model.keras", compile=False)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert [layer.filters for layer in model.layers if hasattr(layer, "filters")] == [32, 64]
    assert model.layers[5].units == 64 and model.layers[6].units == 10
    assert tuple(model.input_shape) == (None, 28, 28, 1)


def test_digits_images_match_the_shared_scaling():
    data = load_dataset("digits")
    images, labels = digits_dataset()
    assert data.x_train.shape[1:] == (28, 28, 1) and data.x_train.dtype == np.uint8
    # Every loaded image is one of conftest's digits_dataset() images (same 255/16 scaling and resize).
    assert any(np.array_equal(data.x_test[0, ..., 0], im) for im in images[labels == data.y_test[0]])
    assert len(data.x_train) + len(data.x_test) == len(images)


@pytest.mark.slow  # runs TensorFlow
def test_same_seed_same_run_with_augmentation(tmp_path):
    runs = [
        train(output=tmp_path / name, epochs=1, limit=100, seed=3, augment=True, verbose=0) for name in "ab"
    ]
    history = [json.loads((tmp_path / n / "metrics.json").read_text())["history"] for n in "ab"]
    assert history[0] == history[1] and len(history[0]["loss"]) == 1
    assert runs[0].test_accuracy == runs[1].test_accuracy
    assert runs[0].confusion_matrix == runs[1].confusion_matrix


@pytest.mark.slow  # runs TensorFlow
def test_image_folder_rgb_run_converts_and_predicts_through_the_runtime(tmp_path):
    from edgecnn.converters.pipeline import convert
    from edgecnn.metadata import read_metadata
    from edgecnn.modelfile import read_model

    folder = make_colour_folder(tmp_path / "colours")
    report = train(
        output=tmp_path / "run",
        dataset=str(folder),
        epochs=12,
        early_stopping=False,
        input_size=32,
        verbose=0,
    )
    assert report.labels == ["blue", "green", "red"] and report.input_shape == [32, 32, 3]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["preprocessing"]["colour"] == "RGB" and metrics["preprocessing"]["resize"] == "area"
    result = convert(tmp_path / "run" / "model.keras", output=tmp_path / "run" / "colours_int8.tflite")
    meta = read_metadata(read_model(result.output))
    assert meta.colour == "RGB" and meta.labels == ["blue", "green", "red"] and meta.resize == "area"
    assert result.verification.top1_agreement >= 0.9

    fresh = make_colour_folder(tmp_path / "fresh", per_class=2, seed=99, size=64)  # unseen, other size
    images = sorted(fresh.glob("*/*"))
    out = run_cli("predict", result.output, *images, "--json", "--top-k", "1")
    assert out.code == 0, out.stderr
    predicted = [r["classes"][0]["label"] for r in json.loads(out.stdout)["results"]]
    truth = [Path(p).parent.name for p in images]
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= len(truth) - 1, (predicted, truth)


@pytest.mark.slow  # runs TensorFlow
def test_mobile_architecture_maps_to_the_edge_tpu():
    from edgecnn.converters.calibration import representative_dataset
    from edgecnn.converters.keras_to_tflite import fixed_batch, to_tflite
    from edgecnn.devices.backends.edgetpu.static_check import predict_compilation
    from edgecnn.modelfile import parse_model
    from edgecnn.train.architectures import build_model

    model = build_model("mobile", (32, 32, 3), 3)
    samples = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    mf = parse_model(
        to_tflite(fixed_batch(model), representative=representative_dataset(samples, 0.0, 255.0))
    )
    names = {op.name for op in mf.operators()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= names
    check = predict_compilation(mf)
    assert check.compatible and check.cpu == 0, check.problems


@pytest.mark.slow  # runs TensorFlow
def test_train_cli_shows_keras_progress_and_prints_json(tmp_path):
    out = run_cli("train", "--limit", "100", "--epochs", "2", "-o", tmp_path / "run", "--json")
    assert out.code == 0, out.stderr
    data = json.loads(out.stdout)  # stdout is only the JSON document
    assert data["epochs_run"] == 2 and data["train_samples"] + data["validation_samples"] == 100
    assert "Epoch 1/2" in out.stderr and "Epoch 2/2" in out.stderr and "val_accuracy" in out.stderr
    assert "Warning" not in out.stderr, out.stderr
    assert "oneDNN" not in out.stderr and "absl" not in out.stderr, out.stderr  # TensorFlow's import chatter
    assert Path(data["files"]["model"]).is_file()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--dataset", "nope"], 2, "Unknown dataset 'nope'"),
        (["--input-size", "9"], 2, "--input-size 9 is too small for the seed architecture"),
        (["--arch", "mobile", "--input-size", "16"], 2, "too small for the mobile architecture"),
    ],
)
def test_train_usage_errors_are_one_line(tmp_path, args, code, needle):
    out = run_cli("train", *args, "-o", tmp_path / "run")
    assert out.code == code, out.stderr
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow  # runs TensorFlow
def test_keras_dataset_unavailable_offline_says_where_to_put_it(tmp_path):
    # An empty Keras cache and a proxy on a closed port: the real download path runs and fails at once,
    # and this test can never download anything even on a machine with internet.
    env = {
        "KERAS_HOME": str(tmp_path / "keras"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    out = run_cli("train", "--dataset", "mnist", "-o", tmp_path / "run", env=env)
    assert out.code == 9, out.stderr
    (line,) = error_lines(out.stderr)
    assert "Dataset mnist is not in the Keras cache and could not be downloaded" in line
    assert "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz and save it as" in line
    assert str(tmp_path / "keras" / "datasets" / "mnist.npz") in line and "--dataset digits" in line
    assert not (tmp_path / "run").exists()


def test_image_folder_errors(tmp_path):
    single = tmp_path / "single"
    make_colour_folder(single, per_class=2)
    for extra in ("green", "blue"):
        for f in (single / extra).iterdir():
            f.unlink()
        (single / extra).rmdir()
    with pytest.raises(InputError, match="needs at least two"):
        load_dataset(str(single))
    empty_class = make_colour_folder(tmp_path / "empty_class", per_class=2)
    (empty_class / "purple").mkdir()
    with pytest.raises(InputError, match=r"without images.*purple"):
        load_dataset(str(empty_class))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        train(output=tmp_path / "file", epochs=1)


def test_training_modules_import_without_tensorflow():
    probe = (
        "import sys, edgecnn.train, edgecnn.converters.pipeline, edgecnn.devices.backends.edgetpu.static_check, "
        "edgecnn.cli.train, edgecnn.cli.convert\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
