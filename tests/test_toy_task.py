"""A task added from the test folder (tests/toytask.py) with one registry line flows through predict, run,
bench and eval; the same model without the line is refused by each with the one unsupported-task line, and
eval refuses a task whose module has no evaluator with one line.

The model is Coral's MobileNet (tests/data/coral) with edgecnn metadata declaring ``task = "toy"``: no
training, no download. Its peak on cat.bmp is class 283 (tiger cat, as test_predict checks through the
classify task), which is what the toy evaluator's dataset expects.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

import edgecnn.tasks
from edgecnn.bench.runner import run_bench
from edgecnn.errors import ModelError, UsageError
from edgecnn.eval.evaluate import evaluate
from edgecnn.metadata import embed_metadata, read_metadata
from edgecnn.model import open_model
from edgecnn.modelfile import read_model
from edgecnn.predict.files import predict
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import run
from tests import toytask
from tests.conftest import CAT, MOBILENET, error_lines, run_cli


@pytest.fixture
def toy_model(coral, tmp_path: Path) -> Path:
    model_file = read_model(MOBILENET)
    meta = dataclasses.replace(read_metadata(model_file), task="toy")
    path = tmp_path / "toy.tflite"
    path.write_bytes(embed_metadata(model_file, meta))
    return path


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(edgecnn.tasks.TASKS, "toy", "tests.toytask")  # the one registry line


def _peak_of_the_classifier() -> int:
    return predict(MOBILENET, [CAT]).results[0].classes[0].id


def test_predict_runs_the_toy_task(toy_model, toy):
    report = predict(toy_model, [CAT])
    assert report.task == "toy" and report.decoder == toytask.PeakDecoder.name
    result = report.to_dict()["results"][0]
    assert result["peak"]["index"] == _peak_of_the_classifier() == 283
    assert 0 < result["peak"]["value"] <= 1 and result["summary"].startswith("peak 283 at ")
    # --min-score, the output filter, reads the task's score like any other task's
    assert predict(toy_model, [CAT], min_score=1.0).results == []


def test_run_writes_toy_results(toy_model, toy, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        shutil.copy(CAT, frames / f"{i}.bmp")
    out = tmp_path / "out.jsonl"
    summary = run(RunOptions(model=toy_model, source=str(frames), jsonl=str(out), quiet=True))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.frames == 3 and len(records) == 3
    assert {r["task"] for r in records} == {"toy"} and {r["peak"]["index"] for r in records} == {283}


def test_bench_times_the_toy_decoder(toy_model, toy):
    result = run_bench(toy_model, runs=3, warmup=0)
    (config,) = result.results
    assert config.task == "toy" and config.decoder == toytask.PeakDecoder.name
    assert config.postprocess_ms is not None  # the decoder was timed, not skipped as undecodable


def test_eval_uses_the_toy_tasks_evaluator(toy_model, toy, tmp_path):
    data = tmp_path / "peaks"
    for peak in ("283", "0"):
        (data / peak).mkdir(parents=True)
        shutil.copy(CAT, data / peak / "cat.bmp")
    report = evaluate(toy_model, data)
    assert report.task == "toy" and report.headline == ("at peak", 50.0)  # the cat peaks at 283, not 0
    assert report.to_dict()["images"] == 2


def test_eval_refuses_a_task_without_an_evaluator(toy_model, toy, monkeypatch, tmp_path):
    monkeypatch.delattr(toytask, "evaluator")
    (tmp_path / "283").mkdir()
    shutil.copy(CAT, tmp_path / "283" / "cat.bmp")
    with pytest.raises(UsageError) as error:
        evaluate(toy_model, tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"{toy_model} is a toy model and edgecnn eval has no evaluator for toy models: it measures "
        "classify, detect, pose, segment models (`edgecnn predict` and `edgecnn bench` run it)."
    )


def test_without_the_registry_line_the_model_is_no_tasks(toy_model):
    with pytest.raises(ModelError, match=r"is a 'toy' model .* that no edgecnn task decodes"):
        open_model(toy_model)
    result = run_cli("predict", toy_model, CAT)
    assert result.code != 0 and len(error_lines(result.stderr)) == 1
