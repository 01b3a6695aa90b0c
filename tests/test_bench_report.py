"""``edgecnn bench report``: saved runs from two (fake) machines into one table, a PNG, and a reference check."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import cv2
import pytest

from edgecnn.bench.report import build_report, format_report, plot_report
from edgecnn.bench.results import BenchResult, LatencyStats, load_result, save_result
from edgecnn.bench.runner import run_bench
from edgecnn.devices.probe import probe_device
from edgecnn.errors import InputError, RuntimeMissing
from tests.conftest import MOBILENET, run_cli
from tests.test_devices import build_pi5, build_x86


def _scaled(result: BenchResult, factor: float) -> BenchResult:
    """The same run with every latency multiplied: what a slower board would have measured."""
    configs = []
    for c in result.results:
        lat = LatencyStats(**{k: round(v * factor, 4) for k, v in dataclasses.asdict(c.latency_ms).items()})
        configs.append(dataclasses.replace(c, latency_ms=lat))
    return dataclasses.replace(result, results=configs)


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory) -> tuple[Path, Path]:
    """Real bench runs, each labelled with a fake machine's probe; the Pi's latencies scaled up 4x."""
    base = tmp_path_factory.mktemp("machines")
    pi_probe = probe_device(build_pi5(base / "pi5"), path_env=str(base / "nobin"), diagnose_edgetpu=False)
    pc_probe = probe_device(build_x86(base / "pc"), path_env=str(base / "nobin"), diagnose_edgetpu=False)
    pi = run_bench(MOBILENET, threads="1,4", runs=5, warmup=1, probe=pi_probe)
    pc = run_bench(MOBILENET, threads="1", runs=5, warmup=1, probe=pc_probe)
    return save_result(_scaled(pi, 4.0), base / "pi5.json"), save_result(pc, base / "pc.json")


def test_table_rows_per_machine_columns_per_model(coral, two_machines):
    pi_path, pc_path = two_machines
    report = build_report([pi_path, pc_path])
    assert report.models == [MOBILENET.name]
    labels = [r.label for r in report.rows]
    assert labels == [
        "Raspberry Pi 5 Model B Rev 1.0 · cpu · 1 thread",
        "Raspberry Pi 5 Model B Rev 1.0 · cpu · 4 threads",
        "12th Gen Intel(R) Core(TM) i7-1260P · cpu · 1 thread",
    ]
    cells = [r.cells[MOBILENET.name] for r in report.rows]
    pc = load_result(pc_path).results[0].latency_ms
    assert (cells[2].median_ms, cells[2].p99_ms) == (pc.p50, pc.p99)
    slowest = max(c.median_ms for c in cells)
    assert min(c.speedup for c in cells) == 1.0
    assert cells[2].speedup == pytest.approx(slowest / pc.p50, rel=0.01)
    assert cells[2].speedup > 1.5  # the "PC" is the unscaled run

    text = format_report(report)
    assert "Raspberry Pi 5 Model B Rev 1.0 · cpu · 4 threads" in text and f"({cells[2].speedup:.2f}x)" in text
    md = format_report(report, markdown=True).splitlines()
    assert md[0] == f"| configuration | {MOBILENET.name} |"
    assert md[1] == "|---|---:|"
    assert len([line for line in md if line.startswith("| ")]) == 4  # header + 3 rows


def test_cli_report_writes_table_and_a_real_png(coral, two_machines, tmp_path):
    png = tmp_path / "plots" / "latency.png"
    result = run_cli("bench", "report", *two_machines, "--markdown", "--plot", png)
    assert result.code == 0, result.stderr
    assert "| Raspberry Pi 5 Model B Rev 1.0 · cpu · 1 thread |" in result.stdout
    image = cv2.imread(str(png))
    assert image is not None and image.ndim == 3 and min(image.shape[:2]) > 200
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(png.parent.glob(".*.tmp"))

    data = json.loads(run_cli("bench", "report", *two_machines, "--json").stdout)
    assert [r["threads"] for r in data["rows"]] == [1, 4, 1]
    assert data["regressions"] == 0


def test_same_named_models_get_readable_names_and_a_log_axis_with_values(coral, tmp_path):
    """Two different model_int8.tflite files were told apart as ``model_int8.tflite@86933398``: now by the
    shortest distinguishing path. Medians 600x apart (an Edge TPU beside a CPU) get a log axis, and every
    bar is labelled with its median."""
    from edgecnn.bench.report import build_figure
    from edgecnn.modelfile import parse_model, with_metadata

    cats = tmp_path / "runs" / "cats" / "model_int8.tflite"
    dogs = tmp_path / "runs" / "dogs" / "model_int8.tflite"
    cats.parent.mkdir(parents=True)
    dogs.parent.mkdir(parents=True)
    cats.write_bytes(MOBILENET.read_bytes())
    dogs.write_bytes(with_metadata(parse_model(MOBILENET.read_bytes()), "rebuilt", b"1"))  # another sha256
    fast = run_bench(cats, runs=5, warmup=1)
    slow = _scaled(run_bench(dogs, runs=5, warmup=1), 600.0)
    files = [save_result(fast, tmp_path / "cats.json"), save_result(slow, tmp_path / "dogs.json")]

    report = build_report(files)
    assert report.models == ["cats/model_int8.tflite", "dogs/model_int8.tflite"]
    text = run_cli("bench", "report", *files).stdout
    assert "cats/model_int8.tflite" in text and "@" not in text

    ax = build_figure(report).axes[0]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    medians = [report.rows[0].cells[m].median_ms for m in report.models]
    shown = sorted(float(label.get_text()) for label in ax.texts)
    assert shown == pytest.approx(sorted(medians), rel=0.01)  # each bar says its median (3 digits)
    assert [label.get_text() for label in ax.get_xticklabels()] == report.models

    close = build_report([files[0], save_result(_scaled(fast, 5.0), tmp_path / "five.json")])
    assert build_figure(close).axes[0].get_yscale() == "linear"  # within 10x: a linear axis reads best
    png = tmp_path / "latency.png"
    assert run_cli("bench", "report", *files, "--plot", png).code == 0
    assert cv2.imread(str(png)) is not None


def test_models_at_the_very_same_path_keep_a_short_hash():
    from edgecnn.bench.report import _distinct_tails

    tails = _distinct_tails({"a" * 64: "/srv/m.tflite", "b" * 64: "/srv/m.tflite", "c" * 64: "/opt/m.tflite"})
    assert tails == {
        "a" * 64: "srv/m.tflite (sha256 aaaaaaaa)",
        "b" * 64: "srv/m.tflite (sha256 bbbbbbbb)",
        "c" * 64: "opt/m.tflite",
    }


def test_plot_without_matplotlib_names_the_extra(coral, two_machines, tmp_path, monkeypatch):
    report = build_report(list(two_machines))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RuntimeMissing, match=r"pip install edgecnn\[plot\]"):
        plot_report(report, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_reference_flags_regressions_over_30_percent(coral, two_machines, tmp_path):
    pi_path, _ = two_machines
    pi = load_result(pi_path)
    ref_dir = tmp_path / "reference"
    # the reference was 2x faster on 1 thread (=> +100%), and only 10% faster on 4 threads (=> +11%)
    fast = _scaled(pi, 0.5)
    slight = _scaled(pi, 1 / 1.1)
    mixed = dataclasses.replace(pi, results=[fast.results[0], slight.results[1]])
    save_result(mixed, ref_dir / "pi5" / "mobilenet.json")

    report = build_report([pi_path], reference=ref_dir)
    by_threads = {c.threads: c for c in report.comparisons}
    assert by_threads[1].regression and by_threads[1].change == pytest.approx(1.0, abs=0.01)
    assert not by_threads[4].regression and by_threads[4].change == pytest.approx(0.1, abs=0.01)
    assert by_threads[1].matched_by == "sha256"
    assert any("noisy" in n for n in report.notes)
    text = format_report(report)
    assert "REGRESSION" in text and "+100%" in text and "noisy" in text

    ok = run_cli("bench", "report", pi_path, "--reference", ref_dir)
    assert ok.code == 0 and "REGRESSION" in ok.stdout
    failing = run_cli("bench", "report", pi_path, "--reference", ref_dir, "--fail-on-regression")
    assert failing.code == 1
    lenient = run_cli(
        "bench", "report", pi_path, "--reference", ref_dir, "--threshold", "150", "--fail-on-regression"
    )
    assert lenient.code == 0 and "REGRESSION" not in lenient.stdout


def test_reference_from_another_machine_or_model_build_is_noted(coral, two_machines):
    pi_path, pc_path = two_machines
    pc = load_result(pc_path)
    renamed = dataclasses.replace(pc, model=dataclasses.replace(pc.model, sha256="0" * 64))
    report = build_report([pi_path], reference=pc_path)
    assert any("measured on 12th Gen Intel" in n for n in report.notes)
    assert any("No reference for: " in n and "x4" in n for n in report.notes)
    ref = save_result(renamed, pc_path.parent / "renamed" / "ref.json")
    report = build_report([pc_path], reference=ref)
    assert report.comparisons[0].matched_by == "name"
    assert any("matched the reference by file name" in n for n in report.notes)


def test_report_input_errors(coral, tmp_path):
    (tmp_path / "x.json").write_text("[]")
    result = run_cli("bench", "report", tmp_path / "x.json")
    assert result.code == 4 and "not a valid edgecnn bench result" in result.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No bench results"):
        build_report([tmp_path / "empty"])


def test_repository_reference_is_valid_and_matches_the_shared_model(coral, tmp_path):
    """benchmarks/reference holds valid results; a new run of the shared model is matched by sha256."""
    from tests.conftest import ROOT

    reference = ROOT / "benchmarks" / "reference"
    files = sorted(reference.rglob("*.json"))
    assert files, "benchmarks/reference has no results"
    loaded = [load_result(f) for f in files]  # raises on any schema problem
    assert {r.model.name for r in loaded} >= {MOBILENET.name, "model_int8.tflite"}
    new = save_result(run_bench(MOBILENET, threads="1", runs=5, warmup=1), tmp_path / "new.json")
    report = build_report([new], reference=reference)
    [comparison] = report.comparisons
    assert comparison.matched_by == "sha256" and comparison.threads == 1
    assert comparison.reference_file.endswith("mobilenet_v1_0.25_128_quant.json")
    assert any("noisy" in n for n in report.notes)  # no assertion on the timing itself: shared machine
