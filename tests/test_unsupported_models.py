"""Models no task decodes (5 keypoints of no known layout, two heads, an int64 vector): ``bench`` times
them (invoke only) and says so; predict, run and eval refuse them with one identical line; inspect
explains. MoveNet's keypoints and an int64 class map, once refused here, are pose and segment models now."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgecnn.bench.results import load_result
from edgecnn.bench.runner import format_result
from edgecnn.errors import ModelError
from edgecnn.model import open_model
from edgecnn.tasks import NO_TASK
from tests.conftest import error_lines, run_cli
from tests.const_models import constant_model

UNSUPPORTED = {
    "keypoints_5": "[1, 1, 5, 3] FLOAT32",
    "two_heads": "[1, 5] FLOAT32, [1, 10] FLOAT32",
    "int64_vector": "[1, 10] INT64",
}


@pytest.fixture(scope="module")
def unsupported(odd_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unsupported")
    paths = {"two_heads": odd_models["two_heads"]}
    for kind, array in (
        ("keypoints_5", np.full((1, 1, 5, 3), 0.5, np.float32)),
        ("int64_vector", np.arange(10, dtype=np.int64)[None]),
    ):
        paths[kind] = folder / f"{kind}.tflite"
        paths[kind].write_bytes(constant_model([array], size=(32, 32)))
    return paths


@pytest.mark.parametrize(("kind", "task"), [("pose", "pose"), ("segment_int64", "segment")])
def test_keypoints_and_int64_class_maps_once_refused_are_decoded_now(odd_models, kind, task):
    model = open_model(odd_models[kind])
    assert model.task == task
    result = model.process(np.full((32, 32, 3), 200, np.uint8)).result
    assert result.task == task and result.summary()


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_bench_times_a_model_no_task_decodes_invoke_only(unsupported, tmp_path, kind):
    saved = tmp_path / f"{kind}.json"
    result = run_cli("bench", unsupported[kind], "--runs", "20", "--warmup", "2", "--json", "-o", saved)
    assert result.code == 0, result.stderr
    config = json.loads(result.stdout)["results"][0]
    lat = config["latency_ms"]
    assert config["runs"] == 20 and 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert config["task"] == NO_TASK and config["postprocess_ms"] is None
    assert config["decoder"].startswith("invoke only: no edgecnn task decodes")

    loaded = load_result(saved)  # the saved file is a valid schema-1 result
    assert loaded.results[0].task == NO_TASK and loaded.results[0].postprocess_ms is None
    table = format_result(loaded)
    assert "postprocess on cpu x1: not measured, task none (invoke only: no edgecnn task decodes" in table

    report = run_cli("bench", "report", saved, "--json")
    assert report.code == 0, report.stderr
    assert unsupported[kind].name in report.stdout


def test_bench_still_times_postprocess_of_a_decoded_model(odd_models):
    from edgecnn.bench.runner import run_bench

    config = run_bench(odd_models["embedding"], runs=5, warmup=1).results[0]
    assert (
        config.task == "classify" and config.postprocess_ms is not None and config.postprocess_ms["p50"] > 0
    )
    assert config.decoder  # the classify decoder's name, not the invoke-only note


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_unsupported_outputs_are_one_identical_line_in_every_command(unsupported, tmp_path, kind):
    model = unsupported[kind]
    image = tmp_path / "data" / "cat" / "a.png"
    image.parent.mkdir(parents=True)
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ModelError) as raised:
        open_model(model)
    expected = f"edgecnn: error: {raised.value}"

    lines = {}
    for command in (
        ("predict", model, image),
        ("run", model, "--source", image),
        ("eval", model, tmp_path / "data"),
    ):
        result = run_cli(*command)
        assert result.code == 3 and "Traceback" not in result.stderr, result.stderr
        lines[command[0]] = error_lines(result.stderr)
    assert lines == {"predict": [expected], "run": [expected], "eval": [expected]}
    for needle in (
        str(model),
        UNSUPPORTED[kind],
        "no edgecnn task decodes",
        "`edgecnn bench` still times it",
    ):
        assert needle in expected, (needle, expected)
    assert "Unsupported output dtype" not in expected

    shown = run_cli("inspect", model)
    assert shown.code == 0, shown.stderr
    assert f"task: unsupported: {raised.value}" in shown.stdout


def test_bench_times_a_model_whose_declared_task_refuses_its_outputs(odd_models, tmp_path):
    from edgecnn.bench.runner import run_bench
    from edgecnn.metadata import ModelMetadata, embed_metadata
    from edgecnn.modelfile import read_model

    declared = tmp_path / "declared_detector.tflite"  # an embedding's [1, 16] said to be a detector's
    declared.write_bytes(embed_metadata(read_model(odd_models["embedding"]), ModelMetadata(task="detect")))
    with pytest.raises(ModelError, match=r"declared a detector"):
        open_model(declared)
    config = run_bench(declared, runs=5, warmup=1).results[0]
    assert config.task == NO_TASK and config.postprocess_ms is None and config.latency_ms.p50 > 0
