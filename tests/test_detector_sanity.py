"""Hostile detectors and results that cannot be right (issue #24, round two).

- An SSD whose ``TFLite_Detection_PostProcess`` op has no options (or damaged ones) used to kill every
  command with SIGSEGV; now the structural check refuses it before an interpreter exists: one
  ``edgecnn: error:`` line in predict, inspect, bench, eval, run and ``service install``.
- Results that cannot be right (NaN, inf, scores of 34, boxes with no area, classes outside the model's,
  an SSD with class and score outputs swapped, a classifier scoring all zeros) are one error in predict;
  ``run`` drops and counts a single odd frame and stops only when the model always does it.
- Labels that do not fit a detector's class count: one check, one wording, before the first frame.

The SSDs are the real ones of ``tests/detectors.py``, edited through the schema's object API; the models
with odd outputs are tiny float graphs built here (``tests/odd_outputs.py``).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.errors import InvalidResult, ModelError
from edgecnn.model import open_model
from edgecnn.modelfile import parse_model
from edgecnn.predict.files import predict
from tests.conftest import error_lines, run_cli
from tests.detectors import CLASSES, make_scene
from tests.odd_outputs import (
    ODD_OPTIONS,
    ODD_OPTIONS_MESSAGE,
    SIZE,
    e2e_values,
    fixed_output_tflite,
    swap_ssd_classes_and_scores,
    with_postprocess_options,
    yolo_values,
)


def _one_error(result, *needles: str, code: int = 3) -> str:
    lines = [line for line in error_lines(result.stderr) if line.startswith("edgecnn: error:")]
    assert result.code == code and len(lines) == 1, (result.code, result.stderr)
    assert lines[0].startswith("edgecnn: error: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _png(folder: Path, image: np.ndarray, name: str = "scene.png") -> Path:
    path = folder / name
    cv2.imwrite(str(path), image)
    return path


def _all_classes_scene() -> np.ndarray:
    """A 96x96 scene holding every class (seeded), so an SSD reports class ids 0, 1 and 2."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        scene = make_scene(rng)
        if {b.label for b in scene.boxes} == {0, 1, 2}:
            return scene.image
    raise AssertionError("no scene with all three classes")


# --- 1. the postprocess op's options ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssd_data(detectors) -> bytes:
    return detectors["ssd_tf1"].read_bytes()


@pytest.mark.parametrize("name", sorted(ODD_OPTIONS))
def test_damaged_postprocess_options_are_refused_before_any_interpreter(ssd_data, name):
    data = with_postprocess_options(ssd_data, ODD_OPTIONS[name])
    with pytest.raises(ModelError, match="TFLite_Detection_PostProcess") as caught:
        parse_model(data)
    assert ODD_OPTIONS_MESSAGE[name] in str(caught.value)
    # The untouched options pass (the same edit path, identity).
    assert parse_model(with_postprocess_options(ssd_data, lambda o: o)).postprocess_options().num_classes == 3


def test_ssd_without_options_is_one_line_in_every_command(ssd_data, tmp_path):
    """The crash reproducer: every command that opens the model says the same line (was exit 139)."""
    model = tmp_path / "no_options.tflite"
    model.write_bytes(with_postprocess_options(ssd_data, ODD_OPTIONS["no options"]))
    image = _png(tmp_path, _all_classes_scene())
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    cv2.imwrite(str(data / "images" / "a.png"), _all_classes_scene())
    (data / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (data / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    seen = set()
    for argv in (
        ["predict", model, image],
        ["inspect", model],
        ["inspect", model, "--target", "edgetpu"],
        ["bench", "run", model, "--runs", "2", "--warmup", "1"],
        ["eval", model, data],
        ["run", "--model", model, "--source", image],
    ):
        line = _one_error(run_cli(*argv), str(model), "has no options")
        seen.add(line.split(": ", 2)[2])
    assert len(seen) == 1, seen  # the same words everywhere


def test_service_install_refuses_what_predict_refuses(ssd_data, tmp_path):
    root = tmp_path / "img"
    for folder in ("etc/systemd/system/multi-user.target.wants", "var/lib", "var/log", "usr/bin"):
        (root / folder).mkdir(parents=True)
    before = sorted(p for p in root.rglob("*"))
    model = tmp_path / "no_options.tflite"
    model.write_bytes(with_postprocess_options(ssd_data, ODD_OPTIONS["no options"]))
    result = run_cli("service", "install", "door", "--model", model, "--source", "demo", "--root", root)
    _one_error(result, "--model", "has no options", code=2)
    assert sorted(root.rglob("*")) == before  # nothing half-written
    # Open the way run will: a labels file that predict refuses is refused here too, naming --labels.
    good = tmp_path / "good.tflite"
    good.write_bytes(ssd_data)
    labels = tmp_path / "short.txt"
    labels.write_text("square\n")
    config = tmp_path / "door.toml"
    config.write_text(f'model = "{good}"\nsource = "demo"\nlabels = "{labels}"\n')
    result = run_cli("service", "install", "door", "--config", config, "--root", root)
    _one_error(result, "labels", "1 labels for a model with 3 classes", code=7)
    assert sorted(root.rglob("*")) == before


# --- 2. results that cannot be right ---------------------------------------------------------------------


ODD_MODELS = {
    # name: (output values, part of the one error line)
    "yolo score 34": (yolo_values(s0=34.0), "outside 0..1"),
    "yolo NaN score": (yolo_values(s0=float("nan")), "NaN or infinite"),
    "yolo inf box": (yolo_values(cx=float("inf")), "NaN or infinite"),
    "e2e NaN class": (e2e_values(cls=float("nan")), "NaN or infinite class ids"),
    "e2e inf class": (e2e_values(cls=float("inf")), "NaN or infinite class ids"),
    "e2e class 1e9": (e2e_values(cls=1e9), "class id 1e+09"),
    "e2e inverted box": (e2e_values(x1=0.6, x2=0.2), "inverted corners"),
    "e2e negative score": (e2e_values(score=-3.0), "outside 0..1"),
    "classifier all zeros": (np.zeros((1, 10), np.float32), "all 10 scores zero"),
}


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd_outputs")
    paths = {}
    for name, (values, _) in ODD_MODELS.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.tflite"
        paths[name].write_bytes(fixed_output_tflite(values))
    paths["yolo zero-area box"] = folder / "yolo_zero_area.tflite"
    paths["yolo zero-area box"].write_bytes(fixed_output_tflite(yolo_values(w=0.0)))
    paths["yolo ok"] = folder / "yolo_ok.tflite"
    paths["yolo ok"].write_bytes(fixed_output_tflite(yolo_values()))
    paths["e2e class 7"] = folder / "e2e_class_7.tflite"
    paths["e2e class 7"].write_bytes(fixed_output_tflite(e2e_values(cls=7.0)))
    # Sane on dark frames; scores of 5.9 on bright ones.
    paths["yolo odd when bright"] = folder / "yolo_odd_when_bright.tflite"
    paths["yolo odd when bright"].write_bytes(
        fixed_output_tflite(yolo_values(), bright=yolo_values(cx=0, cy=0, w=0, h=0, s0=5.0, s1=0, s2=0))
    )
    return paths


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("frames")
    return {
        "dark": _png(folder, np.full((SIZE, SIZE, 3), 20, np.uint8), "dark.png"),
        "bright": _png(folder, np.full((SIZE, SIZE, 3), 240, np.uint8), "bright.png"),
    }


def test_sane_fixed_model_gives_its_object(odd, frames):
    objects = predict(odd["yolo ok"], [frames["dark"]]).results[0].objects
    assert [(o.id, round(o.score, 3)) for o in objects] == [(0, 0.9)]
    x1, y1, x2, y2 = objects[0].box
    assert x2 - x1 == pytest.approx(0.3 * SIZE, abs=0.5) and y2 - y1 == pytest.approx(0.3 * SIZE, abs=0.5)


def test_a_box_with_no_area_is_dropped_and_said_once(odd, frames, caplog):
    # Quantized end-to-end exports collapse a few boxes a frame to zero width (a real YOLO26 full-integer
    # export does): no object, one warning per model, no error.
    model = open_model(odd["yolo zero-area box"])
    image = cv2.imread(str(frames["dark"]))
    with caplog.at_level(logging.WARNING):
        assert model.process(image).result.objects == []
        assert model.process(image).result.objects == []
    said = [r.getMessage() for r in caplog.records if "no area" in r.getMessage()]
    assert len(said) == 1 and "dropped" in said[0]


@pytest.mark.parametrize("name", sorted(ODD_MODELS))
def test_results_that_cannot_be_right_are_one_error_and_no_warning(odd, frames, name):
    model = open_model(odd[name])
    image = cv2.imread(str(frames["dark"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning (overflow, invalid cast) fails the test
        with pytest.raises(InvalidResult) as caught:
            model.process(image)
    assert ODD_MODELS[name][1] in str(caught.value)


@pytest.mark.parametrize("name", ["yolo score 34", "e2e NaN class", "classifier all zeros"])
def test_predict_cli_says_it_in_one_line(odd, frames, name):
    _one_error(run_cli("predict", odd[name], frames["dark"]), str(odd[name]), ODD_MODELS[name][1])


def test_class_ids_are_checked_against_the_model_s_classes(odd, frames, tmp_path):
    # Without labels an end-to-end model's class count is unknown: 7 is shown as it is.
    objects = predict(odd["e2e class 7"], [frames["dark"]]).results[0].objects
    assert [o.label for o in objects] == ["7"]
    # Its labels say there are 3 classes: class 7 cannot be right.
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    _one_error(
        run_cli("predict", odd["e2e class 7"], frames["dark"], "--labels", labels), "class id 7", "3 classes"
    )


def test_ssd_with_class_and_score_outputs_swapped(detectors, tmp_path):
    model = tmp_path / "swapped.tflite"
    model.write_bytes(swap_ssd_classes_and_scores(detectors["ssd_tf1"].read_bytes()))
    image = _png(tmp_path, _all_classes_scene())
    assert predict(detectors["ssd_tf1"], [image]).results[0].objects  # the original finds objects here
    _one_error(run_cli("predict", model, image), str(model), "swapped")
    # Whatever the scene holds: on a plain background too, where nothing scores over --min-score.
    plain = _png(tmp_path, np.full((96, 96, 3), 120, np.uint8), "plain.png")
    assert not predict(detectors["ssd_tf1"], [plain]).results[0].objects
    _one_error(run_cli("predict", model, plain), str(model), "swapped")


def test_eval_stops_on_a_model_whose_results_cannot_be_right(odd, frames, tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    (data / "images" / "a.png").write_bytes(frames["dark"].read_bytes())
    (data / "labels" / "a.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    (data / "classes.txt").write_text("a\nb\nc\n")
    out = tmp_path / "eval.json"
    _one_error(
        run_cli("eval", odd["yolo score 34"], data, "-o", out), str(odd["yolo score 34"]), "outside 0..1"
    )
    assert not out.exists()
    result = run_cli("eval", odd["yolo ok"], data, "--json")  # the same data with a sane model: measured
    assert result.code == 0, result.stderr


def _run_folder(tmp_path: Path, frames: dict[str, Path], order: str) -> Path:
    folder = tmp_path / f"frames_{order}"
    folder.mkdir()
    for i, kind in enumerate(order):
        (folder / f"{i:03d}.png").write_bytes(frames["dark" if kind == "d" else "bright"].read_bytes())
    return folder


def test_run_drops_and_counts_a_single_odd_frame(odd, frames, tmp_path):
    folder = _run_folder(tmp_path, frames, "ddbdd")
    out = tmp_path / "results.jsonl"
    result = run_cli("run", "--model", odd["yolo odd when bright"], "--source", folder, "--jsonl", out)
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and all(r["objects"][0]["score"] == pytest.approx(0.9) for r in records)
    assert "dropped 1 invalid results" in result.stdout, result.stdout  # the run summary
    warned = [line for line in result.stderr.splitlines() if "dropped frame" in line]
    assert len(warned) == 1 and "outside 0..1" in warned[0], result.stderr
    assert not [line for line in error_lines(result.stderr) if line.startswith("edgecnn: error")]


def test_run_stops_with_the_error_when_the_model_always_does_it(odd, frames, tmp_path):
    from edgecnn.sanity import INVALID_STREAK

    # Every frame odd, fewer than the streak: the source ends with no valid frame, which is the same error.
    few = _run_folder(tmp_path, frames, "bbb")
    _one_error(run_cli("run", "--model", odd["yolo odd when bright"], "--source", few), "all 3 frames")
    # A long source of odd frames stops after INVALID_STREAK of them, not at its end.
    many = _run_folder(tmp_path, frames, "b" * (INVALID_STREAK + 5))
    _one_error(
        run_cli("run", "--model", odd["yolo odd when bright"], "--source", many),
        f"{INVALID_STREAK} frames in a row",
    )


# --- 3. labels that do not fit ---------------------------------------------------------------------------


def _labels(tmp_path: Path, count: int, *, background: bool = False) -> Path:
    path = tmp_path / f"labels_{count}_{background}.txt"
    path.write_text(("???\n" if background else "") + "".join(f"class{i}\n" for i in range(count)))
    return path


@pytest.mark.parametrize("model", ["yolo_float", "ssd_tf1", "ssd_int8"])
def test_labels_that_do_not_fit_a_detector(detectors, tmp_path, model):
    image = _png(tmp_path, _all_classes_scene())
    path = detectors[model]
    # One more line than classes: a warning naming both counts, and the run goes on.
    result = run_cli("predict", path, image, "--labels", _labels(tmp_path, 4))
    assert result.code == 0, result.stderr
    warning = [line for line in error_lines(result.stderr) if "warning" in line]
    assert len(warning) == 1 and "has 4 labels for 3 classes" in warning[0], result.stderr
    # Far too many (more than twice) or too few: an error before the first frame, the same words.
    for count in (7, 1000, 2, 0):
        labels = _labels(tmp_path, count)
        result = run_cli("predict", path, image, "--labels", labels)
        if count == 0:
            _one_error(result, "empty", code=4)
            continue
        _one_error(result, f"has {count} labels for a model with 3 classes", "--labels", code=4)
    # The TF Object Detection API's background line is not a class.
    result = run_cli("predict", path, image, "--labels", _labels(tmp_path, 3, background=True))
    assert result.code == 0 and not error_lines(result.stderr), result.stderr


def test_short_embedded_labels_show_a_number_instead_of_ending_a_run(detectors, tmp_path):
    """Labels inside the model that end early: a warning, then the class shows as its number (a run
    no longer ends mid-stream the first time an unlisted class shows)."""
    from tests.detectors import with_label_file

    raw = detectors["ssd_tf1"].read_bytes()
    end = raw.index(b"PK\x03\x04")  # the appended label file (tests/detectors.with_label_file)
    model = tmp_path / "short_labels.tflite"
    model.write_bytes(with_label_file(raw[:end], "???\nsquare\n"))
    image = _png(tmp_path, _all_classes_scene())
    result = run_cli("predict", model, image, "--json")
    assert result.code == 0, result.stderr
    labels = {o["label"] for o in json.loads(result.stdout)["results"][0]["objects"]}
    assert labels <= {"square", "1", "2"} and labels & {"1", "2"}, labels
    warning = [line for line in error_lines(result.stderr) if "warning" in line]
    assert len(warning) == 1 and "has 1 labels for 3 classes: 2 are missing" in warning[0], result.stderr
