"""The task options (edgecnn/tasks/options.py): declared once, read alike by predict, run/TOML, bench and
eval; the detector's threshold (--object-threshold) and the output filter (--min-score) are two options with
one default meaning in every command."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

from edgecnn.errors import UsageError
from edgecnn.predict.files import predict
from edgecnn.run.options import RunOptions, check_value, run_option
from edgecnn.run.pipeline import decode_options, run
from edgecnn.tasks import DecodeOptions
from edgecnn.tasks.options import DEFAULT_OBJECT_THRESHOLD, TASK_OPTIONS
from tests.conftest import CAT, CORAL, MOBILENET, run_cli
from tests.detectors import make_scenes


def test_run_declares_each_task_option_as_the_declaration_says():
    """RunOptions' fields (the run flags, the TOML keys, service install) are made from the declarations."""
    for key, declared in TASK_OPTIONS.items():
        opt = run_option(key)
        assert (opt.default, opt.spec.low, opt.spec.high, opt.spec.help) == (
            declared.default,
            declared.low,
            declared.high,
            declared.help,
        ), key
        assert opt.flag == declared.flag and opt.kind is declared.kind, key


def test_decode_defaults_are_the_declared_ones_in_every_reader():
    """predict() and bench with no options, run with none and a DecodeOptions() all decode alike; with
    tracking on (run's default) the decoder reads down to --track-low-score (0.1) and the track stage
    outputs only the objects under --object-threshold that a track matched (tests/test_run_track_low.py)."""
    declared = {k: o.default for k, o in TASK_OPTIONS.items() if k != "min_score"}
    untracked = decode_options(RunOptions(track=False))
    assert dataclass_values(DecodeOptions()) == dataclass_values(untracked) == declared
    assert untracked.object_threshold == DEFAULT_OBJECT_THRESHOLD == 0.4 and untracked.top_k == 1
    tracked = decode_options(RunOptions())
    assert RunOptions().track_low_score == 0.1
    assert dataclass_values(tracked) == {**declared, "object_threshold": 0.1}


def dataclass_values(options: DecodeOptions) -> dict[str, object]:
    return {k: getattr(options, k) for k in TASK_OPTIONS if k != "min_score"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("top_k", 0),
        ("top_k", 1001),
        ("object_threshold", 1.5),
        ("object_threshold", -0.1),
        ("object_threshold", float("nan")),
        ("max_detections", 0),
        ("max_detections", 10_001),
        ("iou", 0.0),
        ("iou", float("inf")),
    ],
)
def test_a_library_call_is_refused_with_the_words_of_the_flag_and_the_file(key, value):
    """The one range: DecodeOptions (predict(), bench, eval) refuses what a run flag or TOML key refuses,
    in the same words."""
    problem = check_value(run_option(key), value)
    assert problem is not None
    with pytest.raises(UsageError) as error:
        DecodeOptions(**{key: value})
    assert str(error.value) == f"{TASK_OPTIONS[key].flag} {problem}"


def test_the_declarations_stay_light_for_the_installer():
    code = (
        "import sys\n"
        "import edgecnn.tasks.options, edgecnn.run.options\n"
        "print(sorted(m for m in ('numpy', 'cv2', 'ai_edge_litert') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _scene_folder(tmp_path, count: int):
    """``count`` generated scenes of one to three shapes (seed 7), as PNG files in ``tmp_path/scenes``."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i, scene in enumerate(make_scenes(count, seed=7)):
        cv2.imwrite(str(folder / f"s{i}.png"), scene.image)
    return folder


@pytest.fixture
def scene_folder(tmp_path):
    return _scene_folder(tmp_path, 4)


def _run_objects(model, folder, tmp_path, **options):
    out = tmp_path / f"run{len(list(tmp_path.glob('run*.jsonl')))}.jsonl"
    run(RunOptions(model=model, source=str(folder), jsonl=str(out), quiet=True, **options))
    return [_detected(r["objects"]) for r in map(json.loads, out.read_text().splitlines())]


def _detected(objects):
    """What the detector said of each object (run's records add a ``track_id``, None without --track)."""
    return [{k: o[k] for k in ("id", "label", "score", "box")} for o in objects]


def _predict_objects(model, folder, **options):
    report = predict(model, [folder], decode=DecodeOptions(**options))
    return [r.to_dict()["objects"] for r in report.results]


@pytest.mark.parametrize("threshold", [None, 0.0, 0.7])
def test_object_threshold_means_the_same_in_predict_and_run(detectors, scene_folder, tmp_path, threshold):
    """Not given: 0.4 in both (run's 0 once meant 0.4). 0 keeps every scored object in both."""
    given = {} if threshold is None else {"object_threshold": threshold}
    # The float build: its scores are never exactly 0, so a threshold of 0 keeps more than 0.4 does.
    by_run = _run_objects(detectors["yolo_float"], scene_folder, tmp_path, **given)
    by_predict = _predict_objects(detectors["yolo_float"], scene_folder, **given)
    assert by_run == by_predict and len(by_run) == 4
    floor = DEFAULT_OBJECT_THRESHOLD if threshold is None else threshold
    assert all(o["score"] >= floor for objects in by_run for o in objects)
    if threshold == 0.0:  # more than the default keeps: the threshold was not replaced by 0.4
        default = _predict_objects(detectors["yolo_float"], scene_folder)
        assert sum(map(len, by_run)) > sum(map(len, default))


def test_min_score_filters_results_and_leaves_objects_alone(detectors, tmp_path):
    """--min-score drops whole results (frames, images) whose best object scores less; the objects of the
    results it keeps are the detector's, down to --object-threshold."""
    folder = _scene_folder(tmp_path, 8)
    model = detectors["yolo_float"]  # float scores: objects never tie, as int8's steps of 1/256 make them
    low = {"object_threshold": 0.1}
    every = _predict_objects(model, folder, **low)
    bests = [objects[0]["score"] for objects in every if objects]
    # The cut, chosen from what this machine's training gave: halfway down from a result's best score to the
    # highest score under it (its own next object's, or another result's best), with a result whose best is
    # under it. So the cut drops a result, and keeps one that holds an object scoring less than the cut.
    cuts = []
    for objects in every:
        if len(objects) > 1 and any(b < objects[0]["score"] for b in bests):
            best = objects[0]["score"]
            below = max(
                [o["score"] for o in objects[1:] if o["score"] < best] + [b for b in bests if b < best]
            )
            cuts.append((best + below) / 2)
    assert cuts, every  # eight scenes of one to three shapes, seen down to 0.1: some hold two objects
    cut = min(cuts)
    kept = [objects for objects in every if objects and objects[0]["score"] >= cut]
    assert 0 < len(kept) < len(bests) and any(o["score"] < cut for objects in kept for o in objects)
    report = predict(model, [folder], decode=DecodeOptions(**low), min_score=cut)
    assert [r.to_dict()["objects"] for r in report.results] == kept
    assert _run_objects(model, folder, tmp_path, min_score=cut, **low) == kept


def test_predict_min_score_on_a_classifier(coral):
    """A classifier's result scores its top class: --min-score leaves out the images below, nothing else."""
    images = [CAT, CORAL / "mnist_nine.bmp"]
    every = predict(MOBILENET, images).results
    tops = sorted(r.classes[0].score for r in every)
    assert tops[0] < tops[1]
    kept = predict(MOBILENET, images, min_score=tops[1]).results
    assert [r.to_dict()["classes"] for r in kept] == [
        r.to_dict()["classes"] for r in every if r.classes[0].score == tops[1]
    ]


def test_cli_flags_are_the_same_in_predict_run_and_bench(detectors, scene_folder, tmp_path):
    model = detectors["yolo_int8"]
    flags = ["--object-threshold", "0.6", "--max-detections", "2", "--classes", "circle,square"]
    predicted = run_cli("predict", model, scene_folder, "--json", *flags)
    assert predicted.code == 0, predicted.stderr
    out = tmp_path / "r.jsonl"
    ran = run_cli("run", model, "--source", scene_folder, "--jsonl", out, "-q", *flags)
    assert ran.code == 0, ran.stderr
    objects = [r["objects"] for r in json.loads(predicted.stdout)["results"]]
    assert objects == [_detected(json.loads(line)["objects"]) for line in out.read_text().splitlines()]
    assert all(len(o) <= 2 and {x["label"] for x in o} <= {"circle", "square"} for o in objects)
    benched = run_cli("bench", model, "--runs", "2", "--warmup", "0", "--json", *flags)
    assert benched.code == 0, benched.stderr
    for command in (["predict", model, CAT], ["run", model, "--source", scene_folder], ["bench", model]):
        bad = run_cli(*command, "--object-threshold", "2")
        assert bad.code == 2 and "--object-threshold" in bad.stderr and "between 0 and 1" in bad.stderr


def test_eval_accuracy_k_is_its_own_option_and_top_k_its_old_spelling(coral, tmp_path):
    (tmp_path / "tiger cat").mkdir()
    cv2.imwrite(str(tmp_path / "tiger cat" / "cat.png"), cv2.imread(str(CAT)))
    new = run_cli("eval", MOBILENET, tmp_path, "--accuracy-k", "3", "--json", "-q")
    old = run_cli("eval", MOBILENET, tmp_path, "--top-k", "3", "--json", "-q")
    assert new.code == old.code == 0, new.stderr + old.stderr
    assert json.loads(new.stdout)["model"]["top_k"] == json.loads(old.stdout)["model"]["top_k"] == 3
    both = run_cli("eval", MOBILENET, tmp_path, "--accuracy-k", "3", "--top-k", "2")
    assert both.code != 0 and "--top-k is the old spelling of --accuracy-k" in both.stderr
