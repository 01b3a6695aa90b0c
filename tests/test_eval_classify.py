"""``edgecnn eval`` on class folders: figures checked against the test's own classification of each image.

The test runs the TFLite interpreter itself (its own quantization of the input, its own ranking of the
dequantized scores), builds ``DATA/<label>/`` folders from what it found, and expects eval's top-1 and
top-k to be exactly the ones it computes.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.errors import InputError, UsageError
from edgecnn.eval.classify import OTHER, score_predictions
from edgecnn.eval.evaluate import check_gate, evaluate
from edgecnn.metadata import read_metadata
from edgecnn.modelfile import read_model
from tests.conftest import MOBILENET, error_lines, run_cli

K = 3


@pytest.fixture(scope="session")
def digits_float(digits_run: Path) -> Path:
    """The same Keras digits model converted to float32 TFLite (the 'float build' users compare against)."""
    from edgecnn.converters.pipeline import convert

    report = convert(
        digits_run / "model.keras", output=digits_run / "model_float32.tflite", quantize="float32"
    )
    return Path(report.output)


def _ranking(model: Path, image: np.ndarray) -> list[int]:
    """Class ids by descending score, computed without edgecnn's runtime code."""
    from ai_edge_litert.interpreter import Interpreter

    meta = read_metadata(read_model(model))
    assert (meta.colour, meta.mean, meta.std) == ("GRAY", 0.0, 255.0)  # the contract this test re-implements
    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    real = image.astype(np.float32).reshape(inp["shape"]) / 255.0
    if inp["dtype"] == np.float32:
        tensor = real
    else:
        scale, zero = inp["quantization"]
        tensor = np.clip(np.round(real / scale) + zero, -128, 127).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], tensor)
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"]).reshape(-1)
    scale, zero = out["quantization"]
    scores = (raw.astype(np.float64) - zero) * scale if scale else raw.astype(np.float64)
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def _build_folder(root: Path, images: np.ndarray, folders: list[str]) -> list[Path]:
    paths = []
    for i, (image, label) in enumerate(zip(images, folders, strict=True)):
        path = root / label / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)  # PNG: lossless, eval decodes the exact pixels ranked here
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def labelled(digits_model, tmp_path_factory):
    """40 held-out digits filed under: their true label, except image 0 under its 2nd-ranked class (top-1
    wrong, top-k right) and image 1 under its last-ranked class (wrong in both)."""
    images = digits_model.images[:40]
    ranks = [_ranking(digits_model.tflite, im) for im in images]
    folders = [str(int(y)) for y in digits_model.labels[:40]]
    folders[0] = str(ranks[0][1])
    folders[1] = str(ranks[1][-1])
    root = tmp_path_factory.mktemp("eval_digits")
    _build_folder(root, images, folders)
    return root, images, folders, ranks


def test_top1_and_topk_are_exactly_what_the_test_computes(digits_model, labelled):
    root, _, folders, ranks = labelled
    top1 = [str(r[0]) == f for r, f in zip(ranks, folders, strict=True)]
    topk = [f in {str(c) for c in r[:K]} for r, f in zip(ranks, folders, strict=True)]
    assert not top1[0] and topk[0]  # the planted case: wrong top-1, right in top-k
    assert not top1[1] and not topk[1]

    report = evaluate(digits_model.tflite, root, accuracy_k=K)

    assert report.model.images == 40 and report.model.top_k == K
    assert report.model.top1_pct == pytest.approx(100 * sum(top1) / 40)
    assert report.model.topk_pct == pytest.approx(100 * sum(topk) / 40)
    assert report.model.topk_pct > report.model.top1_pct
    for cls in report.model.per_class:
        mine = [t for t, f in zip(top1, folders, strict=True) if f == cls.label]
        assert (cls.images, cls.top1_correct) == (len(mine), sum(mine))
    cm = report.model.confusion
    assert cm.columns[-1] == OTHER
    row = cm.rows.index(folders[0])
    assert cm.counts[row][cm.columns.index(str(ranks[0][0]))] >= 1  # image 0 is counted where it went
    assert sum(map(sum, cm.counts)) == 40


def test_against_float_build_reports_agreement(digits_model, digits_float, labelled):
    root, images, folders, ranks = labelled
    float_top1 = [_ranking(digits_float, im)[0] for im in images]
    same = sum(r[0] == f for r, f in zip(ranks, float_top1, strict=True))
    float_acc = 100 * sum(str(t) == f for t, f in zip(float_top1, folders, strict=True)) / 40

    report = evaluate(digits_model.tflite, root, accuracy_k=K, against=digits_float)

    assert report.against is not None and report.comparison is not None
    assert report.comparison.agreement_pct == pytest.approx(100 * same / 40)
    assert report.comparison.disagreements == 40 - same
    differ = {Path(d.image).name: (d.model, d.against) for d in report.comparison.disagreeing_images}
    assert differ == {
        f"img{i:03d}.png": (str(r[0]), str(f))
        for i, (r, f) in enumerate(zip(ranks, float_top1, strict=True))
        if r[0] != f
    }
    assert report.against.top1_pct == pytest.approx(float_acc)
    assert report.comparison.top1_difference_pts == pytest.approx(report.model.top1_pct - float_acc)
    assert report.against.model.endswith("model_float32.tflite")


def test_score_predictions_counts_duplicate_labels_and_other():
    top1, topk, per_class, cm = score_predictions(
        truth=["a", "a", "b", "b"],
        ranked=[["a", "b"], ["b", "a"], ["zebra", "b"], ["b", "a"]],
        classes=["a", "b"],
        k=2,
    )
    assert (top1, topk) == (50.0, 100.0)
    assert [(c.label, c.images, c.top1_correct) for c in per_class] == [("a", 2, 1), ("b", 2, 1)]
    assert cm.counts == [[1, 1, 0], [0, 1, 1]]


def test_gate_and_cli_exit_codes(digits_model, labelled, tmp_path):
    root, *_ = labelled
    out = tmp_path / "report.json"
    ok = run_cli("eval", digits_model.tflite, root, "-k", str(K), "--fail-under", "50", "-o", out, "--json")
    assert ok.code == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["task"] == "classify" and doc == json.loads(out.read_text())
    achieved = doc["model"]["top1_pct"]
    assert 50 < achieved < 100  # image 0 and 1 are wrong by construction

    bar = achieved + 0.5
    low = run_cli("eval", digits_model.tflite, root, "--fail-under", str(bar))
    assert low.code == 1
    assert error_lines(low.stderr) == [
        f"edgecnn: error: top-1 accuracy {achieved:.2f}% is below --fail-under {bar:g}%."
    ]
    assert "top-1 accuracy" in low.stdout  # the table is still printed before the verdict

    report = evaluate(digits_model.tflite, root)
    assert check_gate(report, min_agreement=50)[0].message.startswith("--min-agreement needs --against")


def test_unknown_folder_lists_closest_labels_and_writes_nothing(coral, tmp_path):
    data = tmp_path / "data"
    (data / "tigre cat").mkdir(parents=True)
    cv2.imwrite(str(data / "tigre cat" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "out.json"
    result = run_cli("eval", MOBILENET, data, "-o", out)
    assert result.code == InputError.exit_code
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "tigre cat" in lines[0] and "'tiger cat'" in lines[0]
    assert not out.exists() and "Traceback" not in result.stderr


def test_synonym_folder_name_is_suggested(coral, tmp_path):
    (tmp_path / "tabby").mkdir()
    cv2.imwrite(str(tmp_path / "tabby" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="closest labels: 'tabby, tabby cat'"):
        evaluate(MOBILENET, tmp_path)


@pytest.mark.parametrize(
    ("layout", "needle"),
    [
        ({"3": []}, "No images in"),
        ({"3": ["bad.png"]}, "Cannot decode"),
        ({}, "No class folders"),
        ({"train": ["a.png"], "val": ["b.png"]}, "holds dataset splits"),
    ],
)
def test_bad_folders_are_one_line_errors(digits_model, tmp_path, layout, needle):
    data = tmp_path / "data"
    data.mkdir()
    for folder, files in layout.items():
        (data / folder).mkdir()
        for name in files:
            if name == "bad.png":
                (data / folder / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
            else:
                cv2.imwrite(str(data / folder / name), np.zeros((28, 28), np.uint8))
    out = tmp_path / "out.json"
    result = run_cli("eval", digits_model.tflite, data, "-o", out)
    assert result.code == InputError.exit_code, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not out.exists()


def test_detection_dataset_with_a_classifier_is_a_clear_error(digits_model, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((28, 28), np.uint8))
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(UsageError, match="YOLO detection dataset"):
        evaluate(digits_model.tflite, tmp_path)


def test_eval_help_has_an_example():
    result = run_cli("eval", "--help")
    assert result.code == 0 and "Example: edgecnn eval" in result.stdout


def test_against_with_other_labels_or_itself_is_refused(digits_model, labelled):
    root, *_ = labelled
    with pytest.raises(InputError, match="matches no label of the --against model"):
        evaluate(digits_model.tflite, root, against=MOBILENET)
    with pytest.raises(UsageError, match="names the evaluated model itself"):
        evaluate(digits_model.tflite, root, against=digits_model.tflite)


def test_tables_show_the_matrix_or_the_top_confusions():
    from rich.console import Console

    from edgecnn.eval.classify import ClassificationReport, ClassificationScore

    def report(n: int) -> ClassificationReport:
        classes = [f"c{i}" for i in range(n)]
        truth = classes * 2
        ranked = [[c] for c in classes] + [[classes[(i + 1) % n]] for i in range(n)]
        top1, topk, per_class, cm = score_predictions(truth, ranked, classes, 1)
        score = ClassificationScore(
            "m.tflite", "cpu", "rt", "edgecnn", 2 * n, 1, top1, topk, per_class, cm, 1.0
        )
        return ClassificationReport("classify", "DATA", score, None, None)

    def text(n: int) -> str:
        console = Console(record=True, width=200)
        for table in report(n).tables():
            console.print(table)
        return console.export_text()

    small, large = text(3), text(20)
    assert "confusion matrix" in small and "50.00%" in small
    assert "most frequent" in large and "confusion matrix" not in large
    confusion_rows = [line for line in large.splitlines() if line.endswith("│      1 │")]
    assert len(confusion_rows) == 10  # the top 10 of the 20 off-diagonal cells
