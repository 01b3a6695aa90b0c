"""predict and inspect on real third-party and self-made models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgecnn.errors import EdgeTPUNotFound, InputError, ModelError, ModelInvokeError, UsageError
from edgecnn.images import read_image
from edgecnn.inspect.contents import inspect_model
from edgecnn.model import open_model
from edgecnn.predict.files import predict
from edgecnn.tasks import DecodeOptions
from tests.conftest import BROKEN_MODEL, CAT, MNIST_NINE, MOBILENET, MOBILENET_EDGETPU, error_lines, run_cli


def test_mobilenet_cat_is_tiger_cat_with_embedded_labels(coral):
    report = predict(MOBILENET, [CAT], decode=DecodeOptions(top_k=3))
    top = report.results[0].classes[0]
    assert (top.id, top.label) == (283, "tiger cat")
    assert top.score == pytest.approx(0.32, abs=0.02)
    assert report.labels_source == "tflite-support"
    assert report.runtime.startswith("ai-edge-litert")


def test_cli_predict_prints_tiger_cat(coral):
    result = run_cli("predict", MOBILENET, CAT)
    assert result.code == 0, result.stderr
    assert "283  tiger cat" in result.stdout
    result = run_cli("predict", MOBILENET, CAT, "--json", "--top-k", "2")
    data = json.loads(result.stdout)
    assert data["results"][0]["classes"][0]["label"] == "tiger cat"
    assert len(data["results"][0]["classes"]) == 2


_COUNT_THREADS = """
import os, sys
from edgecnn.images import read_image
from edgecnn.model import open_model
kwargs = {} if sys.argv[3] == "default" else {"threads": int(sys.argv[3])}
image = read_image(sys.argv[2])
before = len(os.listdir("/proc/self/task"))
model = open_model(sys.argv[1], **kwargs)
model.process(image)
print(model.threads, len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc (Linux)")
def test_predict_reports_the_threads_the_interpreter_runs_with(coral):
    """``--json`` said ``"threads": null`` without --threads: it reports the count used, which is what the
    runtime really starts (counted in a fresh process: loading and running the model add threads - 1 workers)."""
    assert json.loads(run_cli("predict", MOBILENET, CAT, "--json").stdout)["threads"] == 1
    assert json.loads(run_cli("predict", MOBILENET, CAT, "--json", "--threads", "3").stdout)["threads"] == 3
    assert (
        "(ai-edge-litert"
        in run_cli("predict", MOBILENET, CAT, "--threads", "3").stdout.split(", 3 threads)")[0]
    )
    for asked, reported in (("default", 1), ("3", 3)):
        proc = subprocess.run(
            [sys.executable, "-c", _COUNT_THREADS, str(MOBILENET), str(CAT), asked],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        threads, started = map(int, proc.stdout.split())
        assert (threads, started) == (reported, reported - 1), proc.stdout


def test_labels_flag_overrides_embedded(coral, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"thing{i}" for i in range(1001)))
    report = predict(MOBILENET, [CAT], labels=labels)
    assert report.results[0].classes[0].label == "thing283"
    assert report.labels_source == "--labels"


def test_without_labels_class_ids_are_shown(coral, tmp_path):
    from edgecnn.atomic import write_atomic
    from edgecnn.modelfile import parse_model, with_metadata

    mf = parse_model(MOBILENET.read_bytes())
    mf.appended = {}
    plain = write_atomic(tmp_path / "plain.tflite", with_metadata(mf, "other", b"x"))
    report = predict(plain, [CAT])
    assert report.results[0].classes[0].label == "283"


def test_digits_model_classifies_held_out_digits(digits_model):
    clf = open_model(digits_model.tflite)
    assert clf.spec.colour == "GRAY" and clf.spec.dtype == np.int8
    hits = sum(
        clf.classify(img).top.id == int(lab)
        for img, lab in zip(digits_model.images, digits_model.labels, strict=True)
    )
    assert hits / len(digits_model.labels) > 0.9


def test_mnist_nine_runs_through_gray_path(digits_model, coral):
    # A real MNIST digit (white on black, like digits) goes through colour conversion and resize.
    image = read_image(MNIST_NINE)
    pred = open_model(digits_model.tflite).classify(image, top_k=10)
    assert set(c.id for c in pred.classes) <= set(range(10))
    assert sum(c.score for c in pred.classes) == pytest.approx(1.0, abs=0.05)  # the zeros left out add 0


def test_top_k_shows_no_zero_scores_and_no_more_classes_than_the_model_has(coral, digits_model, tmp_path):
    """A quantized softmax rounds most classes to exactly 0: those are not listed (they read as padding),
    and k above the class count shows the classes there are. The count of classes shown is the count of
    non-zero scores, read from the interpreter independently."""
    clf = open_model(MOBILENET)
    scores = clf.infer(clf.preprocess(read_image(CAT)))
    nonzero = int(np.count_nonzero(scores))
    assert 3 < nonzero < 100  # a clear photo: most of 1001 scores are 0
    shown = predict(MOBILENET, [CAT], decode=DecodeOptions(top_k=1000)).results[0].classes
    assert len(shown) == nonzero and all(c.score > 0 for c in shown)
    assert [c.score for c in shown] == sorted((c.score for c in shown), reverse=True)
    result = run_cli("predict", MOBILENET, CAT, "--top-k", "1000")
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 + nonzero and " 0.0000 " not in result.stdout

    images = []
    for i in range(20):
        path = tmp_path / f"{i:02d}.png"
        cv2.imwrite(str(path), digits_model.images[i])
        images.append(path)
    result = run_cli("predict", digits_model.tflite, *images, "--top-k", "20", "--json")
    assert result.code == 0, result.stderr
    counts = [len(r["classes"]) for r in json.loads(result.stdout)["results"]]
    assert all(1 <= n <= 10 for n in counts), counts
    assert min(counts) < 10  # int8 outputs of confident digits hold zeros: those were the padding
    for r in json.loads(result.stdout)["results"]:
        assert all(c["score"] > 0 for c in r["classes"][1:])


def test_inspect_reports_tensors_ops_labels(coral):
    report = inspect_model(MOBILENET).to_dict()
    assert list(report["inputs"][0]["shape"]) == [1, 128, 128, 3]
    assert report["inputs"][0]["dtype"] == "UINT8" and report["inputs"][0]["dynamic"] is False
    ops = {op["name"]: op for op in report["operators"]}
    assert ops["CONV_2D"]["count"] == 15 and ops["SOFTMAX"]["version"] == 1
    assert report["labels_count"] == 1001 and report["labels_first"][1] == "tench, Tinca tinca"
    assert report["edgetpu_compiled"] is False
    assert inspect_model(MOBILENET_EDGETPU).edgetpu_compiled is True


def test_inspect_quotes_labels_that_hold_commas(coral):
    """ImageNet labels carry synonyms after commas: joined with commas they could not be told apart."""
    result = run_cli("inspect", MOBILENET)
    assert result.code == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("labels:"))
    assert line == (
        'labels: 1001 (tflite-support), first 5: "background", "tench, Tinca tinca", '
        '"goldfish, Carassius auratus", "great white shark, white shark, man-eater, man-eating shark, '
        'Carcharodon carcharias", "tiger shark, Galeocerdo cuvieri", ...'
    )


def test_inspect_cli_json_on_own_model(digits_model):
    result = run_cli("inspect", digits_model.tflite, "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["metadata_source"] == "edgecnn"
    assert data["metadata"]["colour"] == "GRAY" and data["labels_count"] == 10
    assert "edgecnn" in data["flatbuffer_metadata"]


def test_edgetpu_model_without_tpu_says_so(coral):
    with pytest.raises(EdgeTPUNotFound, match="compiled for the Edge TPU") as error:
        open_model(MOBILENET_EDGETPU, device="cpu")
    assert f"or run the CPU model {MOBILENET}." in str(error.value)  # the twin, named by the Edge TPU backend


def test_auto_falls_back_to_cpu_twin(coral, caplog):
    report = predict(MOBILENET_EDGETPU, [CAT], device="auto")
    assert report.device == "cpu"
    assert report.model.endswith("mobilenet_v1_0.25_128_quant.tflite")
    assert report.results[0].classes[0].label == "tiger cat"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["predict", "missing.tflite", str(CAT)], 3, "Model file not found: missing.tflite"),
        (["predict", "missing.tflite", "nope.jpg"], 3, "Model file not found: missing.tflite"),
        (["predict", str(CAT), str(CAT)], 2, "cat.bmp is an image, not a model: the model comes first"),
        (["predict", str(CAT), str(MOBILENET)], 2, "a model: the model comes first: edgecnn predict MODEL"),
        (["predict", str(CAT)], 2, "cat.bmp is an image, not a model: the model comes first"),
        (["predict", str(MOBILENET), "nope.jpg"], 4, "Image not found: nope.jpg"),
        (["predict", str(MOBILENET), str(MOBILENET)], 2, "is a model, not an image: give one model, then"),
        (["predict", str(BROKEN_MODEL), str(CAT)], 3, "custom op 'fake-op-double'"),
        (["predict", str(MOBILENET_EDGETPU), str(CAT)], 5, "compiled for the Edge TPU"),
        (["predict", str(MOBILENET), str(CAT), "--device", "gpu"], 2, "Unknown device 'gpu'"),
        (["inspect", "missing.tflite"], 3, "Model file not found"),
    ],
)
def test_errors_are_one_line_with_exit_code(coral, args, code, needle):
    result = run_cli(*args)
    assert result.code == code, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_model_and_image_the_other_way_round_are_named(coral, tmp_path):
    """The order is told from the files, not only their names: a model renamed .jpg is still a model, an image
    named .tflite is still not one (it fails as a model would); the library says the same as the CLI."""
    renamed_model = tmp_path / "model.jpg"
    renamed_model.write_bytes(MOBILENET.read_bytes())
    result = run_cli("predict", CAT, renamed_model)
    lines = error_lines(result.stderr)
    assert result.code == 2 and len(lines) == 1, result.stderr
    assert f"{CAT} is an image and {renamed_model} a model: the model comes first" in lines[0]
    assert predict(renamed_model, [CAT]).results[0].classes[0].label == "tiger cat"  # given in order, it runs
    not_a_model = tmp_path / "photo.tflite"
    not_a_model.write_bytes(CAT.read_bytes())
    with pytest.raises(ModelError, match="is not a TFLite model"):
        predict(not_a_model, [CAT])
    with pytest.raises(UsageError, match="the model comes first: edgecnn predict MODEL IMAGE"):
        predict(CAT, [not_a_model])


def test_truncated_model_is_reported(coral, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(MOBILENET.read_bytes()[:4000])
    result = run_cli("predict", cut, CAT)
    assert result.code == 3
    assert "truncated or corrupt" in error_lines(result.stderr)[0]


def test_debug_variable_shows_traceback(coral):
    result = run_cli("predict", "missing.tflite", CAT, env={"EDGECNN_DEBUG": "1"})
    assert result.code != 0 and "Traceback" in result.stderr


def test_library_errors_are_typed(coral, tmp_path):
    with pytest.raises(ModelError):
        predict(tmp_path / "x.tflite", [CAT])
    with pytest.raises(InputError):
        predict(MOBILENET, [tmp_path])
    with pytest.raises(UsageError):
        predict(MOBILENET, [])
    with pytest.raises(ModelInvokeError):
        open_model(BROKEN_MODEL)


def test_resize_before_colour_conversion_matches_the_reference_order(coral):
    # to_tensor resizes first (cheap on camera frames); converting first must give the same pixels +-1.
    import cv2

    from edgecnn.metadata import ModelMetadata
    from edgecnn.preprocess import InputSpec, to_tensor

    frame = cv2.resize(read_image(CAT), (640, 480))
    for colour, code, channels in (("GRAY", cv2.COLOR_BGR2GRAY, 1), ("RGB", cv2.COLOR_BGR2RGB, 3)):
        details = {"shape": [1, 28, 28, channels], "dtype": np.uint8, "quantization": (0.0, 0)}
        spec = InputSpec.from_details(details, ModelMetadata(colour=colour))
        reference = cv2.resize(cv2.cvtColor(frame, code), (28, 28), interpolation=cv2.INTER_LINEAR)
        ours = to_tensor(frame, spec).reshape(reference.shape)
        assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1
