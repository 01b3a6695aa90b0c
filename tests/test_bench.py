"""``edgecnn bench``: real runs on the shared Coral model and the digits model, saved-result schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgecnn.bench.results import BenchResult, load_result, save_result, validate
from edgecnn.bench.runner import latency_stats, parse_devices, parse_threads, run_bench, time_invokes
from edgecnn.devices.probe import find_edgetpus, probe_device
from edgecnn.errors import EdgeTPUNotFound, InputError, UsageError
from tests.conftest import CAT, MOBILENET, MOBILENET_EDGETPU, error_lines, run_cli
from tests.test_devices import build_pi5


@pytest.fixture(scope="module")
def small_run() -> BenchResult:
    return run_bench(MOBILENET, threads="1,2", runs=8, warmup=1)


def test_bench_measures_each_configuration(coral, small_run):
    assert [(r.device, r.device_used, r.threads) for r in small_run.results] == [
        ("cpu", "cpu", 1),
        ("cpu", "cpu", 2),
    ]
    for r in small_run.results:
        lat = r.latency_ms
        assert r.runs == 8
        assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
        assert lat.min <= lat.mean <= lat.max and lat.stdev >= 0
        assert r.load_ms > 0 and r.first_inference_ms > 0 and r.throughput_ips > 0
        assert r.peak_rss_mb is not None and r.peak_rss_mb > 10
        assert r.rss_scope == "configuration"  # VmHWM is reset per configuration on Linux
        assert any("only 8 timed runs" in w for w in r.warnings)
    model = small_run.model
    assert model.name == MOBILENET.name and model.size_bytes == MOBILENET.stat().st_size
    import hashlib

    assert model.sha256 == hashlib.sha256(MOBILENET.read_bytes()).hexdigest()
    assert (model.input_shape, model.input_dtype, model.edgetpu_compiled) == (
        [1, 128, 128, 3],
        "uint8",
        False,
    )
    assert small_run.runtime["name"] == "ai-edge-litert"
    assert small_run.machine["name"] == probe_device(diagnose_edgetpu=False).name
    assert small_run.settings.threads == [1, 2] and small_run.settings.input == "random"


def test_saved_json_round_trips(coral, small_run, tmp_path):
    path = save_result(small_run, tmp_path / "run.json")
    data = json.loads(path.read_text())
    assert list(data)[:5] == ["format", "schema_version", "units", "created", "edgecnn_version"]
    assert data["format"] == "edgecnn-bench" and data["schema_version"] == 1
    assert "perf_counter_ns" in data["units"]["latency_ms"]
    assert validate(data) == []
    loaded = load_result(path)
    assert loaded == small_run
    assert loaded.to_dict() == small_run.to_dict()
    # and a second save of the loaded result is byte-identical
    again = save_result(loaded, tmp_path / "again.json")
    assert again.read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers


def test_schema_validation_names_each_problem(coral, small_run, tmp_path):
    good = small_run.to_dict()

    broken = json.loads(json.dumps(good))
    del broken["model"]["sha256"]
    broken["results"][0]["latency_ms"]["p99"] = "fast"
    broken["results"][1]["threads"] = True
    errors = validate(broken)
    assert "model.sha256 is missing" in errors
    assert any("results[0].latency_ms.p99 must be" in e for e in errors)
    assert any("results[1].threads must not be a boolean" in e for e in errors)

    newer = {**good, "schema_version": 99}
    assert "newer than this edgecnn reads" in validate(newer)[0]
    assert validate({"format": "something-else"}) == ["format is 'something-else', expected 'edgecnn-bench'"]
    assert validate([1, 2]) == ["the document must be a JSON object"]
    inverted = json.loads(json.dumps(good))
    inverted["results"][0]["latency_ms"]["min"] = 1e9
    assert any("min <= p50 <= p99 <= max" in e for e in validate(inverted))

    (tmp_path / "bad.json").write_text(json.dumps(broken))
    with pytest.raises(
        InputError, match=r"bad.json is not a valid edgecnn bench result \(model.sha256 is missing"
    ):
        load_result(tmp_path / "bad.json")
    (tmp_path / "notjson.json").write_text("{nope")
    with pytest.raises(InputError, match="is not JSON"):
        load_result(tmp_path / "notjson.json")
    with pytest.raises(InputError, match="not found"):
        load_result(tmp_path / "missing.json")


def test_cli_bench_as_written_saves_and_prints_json(coral, tmp_path):
    out = tmp_path / "x86.json"
    result = run_cli(
        "bench", MOBILENET, "--threads", "1,2", "--runs", "5", "--warmup", "2", "--save", out, "--json"
    )
    assert result.code == 0, result.stderr
    printed = json.loads(result.stdout)
    saved = json.loads(out.read_text())
    assert printed == saved
    assert [r["threads"] for r in saved["results"]] == [1, 2]
    assert saved["settings"] == {
        "devices": ["cpu"],
        "threads": [1, 2],
        "runs": 5,
        "warmup": 2,
        "duration_s": None,
        "input": "random",
        "seed": 0,
    }
    # options before the model, and the explicit sub-command, work too
    text = run_cli("bench", "--runs", "3", "--device", "cpu", MOBILENET)
    assert text.code == 0, text.stderr
    assert "p50" in text.stdout and "mobilenet_v1_0.25_128_quant.tflite" in text.stdout
    explicit = run_cli("bench", "run", MOBILENET, "--runs", "3")
    assert explicit.code == 0, explicit.stderr


def test_edgetpu_without_a_tpu_fails_with_one_clear_line(coral, tmp_path):
    if find_edgetpus():
        pytest.skip("an Edge TPU is attached here")
    with pytest.raises(EdgeTPUNotFound, match="No Edge TPU"):
        run_bench(MOBILENET, devices="edgetpu", runs=3)
    save = tmp_path / "never.json"
    result = run_cli("bench", MOBILENET, "--device", "cpu,edgetpu", "--runs", "3", "--save", save)
    assert result.code == 5
    [line] = error_lines(result.stderr)
    assert line.startswith("edgecnn: error: No Edge TPU") and "--device cpu" in line
    assert "Traceback" not in result.stderr
    assert result.stdout == "" and not save.exists()  # failed before timing anything on the CPU


def test_edgetpu_compiled_model_on_cpu_says_what_to_do(coral):
    with pytest.raises(EdgeTPUNotFound, match="compiled for the Edge TPU"):
        run_bench(MOBILENET_EDGETPU, devices="cpu", runs=3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "--threads 0 is out of range"),
        (["--threads", "two"], "'two' is not a number"),
        (["--device", "gpu"], "Unknown device 'gpu'"),
    ],
)
def test_bad_options_are_usage_errors(coral, args, message):
    result = run_cli("bench", MOBILENET, "--runs", "3", *args)
    assert result.code == 2
    assert message in " ".join(error_lines(result.stderr))


def test_option_parsing():
    assert parse_devices("cpu, edgetpu:usb,cpu") == ["cpu", "edgetpu:usb"]
    assert parse_threads("4,1,4") == [4, 1]
    with pytest.raises(UsageError):
        parse_threads(",")
    with pytest.raises(UsageError, match="at least 2"):
        run_bench(MOBILENET, runs=1)


def test_latency_stats_on_known_samples():
    stats = latency_stats(np.arange(1, 101, dtype=np.int64) * 1_000_000)  # 1..100 ms
    assert (stats.min, stats.max, stats.mean) == (1.0, 100.0, 50.5)
    assert stats.p50 == 50.5 and stats.p90 == pytest.approx(90.1) and stats.p99 == pytest.approx(99.01)
    assert stats.stdev == pytest.approx(29.0115, abs=1e-3)


def test_time_invokes_counts_and_duration(coral):
    from edgecnn.model import open_model

    clf = open_model(MOBILENET)
    tensors = [clf.preprocess(cv2.imread(str(CAT)))]
    samples, wall = time_invokes(clf.interpreter, tensors, runs=7)
    assert samples.shape == (7,) and (samples > 0).all() and wall > 0
    # a fake clock that advances 1 ms per read: a 10 ms budget stops after a handful of runs
    ticks = iter(range(0, 10**12, 1_000_000))
    samples, _ = time_invokes(
        clf.interpreter, tensors * 2, runs=1000, duration_s=0.01, clock=lambda: next(ticks)
    )
    assert 2 <= samples.size < 10 and (samples == 1_000_000).all()


def test_bench_with_images_and_duration(coral, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(CAT, folder / "cat.bmp")
    cv2.imwrite(str(folder / "grey.png"), np.full((60, 80), 128, np.uint8))
    result = run_bench(MOBILENET, images=folder, duration_s=0.2, warmup=1)
    [config] = result.results
    assert result.settings.input == f"images:{folder}" and result.settings.duration_s == 0.2
    assert config.runs >= 2
    with pytest.raises(InputError, match="No images"):
        run_bench(MOBILENET, images=tmp_path / "imgs" / "..", runs=3)


def test_bench_digits_int8_model(digits_model):
    result = run_bench(digits_model.tflite, runs=20, warmup=2)
    assert result.model.input_dtype == "int8" and result.model.input_shape == [1, 28, 28, 1]
    assert result.results[0].latency_ms.p50 > 0


def test_pi_governor_and_throttling_during_the_run_are_warned(coral, tmp_path):
    """On a (fake) Pi the bench reads vcgencmd before and after each configuration."""
    root = build_pi5(tmp_path / "pi5")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    counter = tmp_path / "calls"
    # first call: nothing happened yet; later calls: throttled now and since boot
    (bin_dir / "vcgencmd").write_text(
        f'#!/bin/sh\nif [ -e "{counter}" ]; then echo throttled=0x40004; else touch "{counter}"; '
        "echo throttled=0x0; fi\n"
    )
    (bin_dir / "vcgencmd").chmod(0o755)
    probe = probe_device(root, path_env=str(tmp_path / "nobin"), diagnose_edgetpu=False)
    result = run_bench(MOBILENET, runs=3, probe=probe, sysfs_root=root / "sys", path_env=str(bin_dir))
    [config] = result.results
    assert (config.throttling_before, config.throttling_after) == ("0x0", "0x40004")
    assert any("throttled now" in w for w in config.warnings)
    assert any("governor is 'ondemand'" in w for w in config.warnings)
    assert config.temperature_before_c == config.temperature_after_c == 61.3
    assert result.machine["board"] == "Raspberry Pi 5 Model B Rev 1.0"


def test_bench_path_imports_no_tensorflow(coral):
    code = (
        "import sys\nfrom edgecnn.bench.runner import run_bench\nfrom edgecnn.bench.report import build_report\n"
        f"run_bench({str(MOBILENET)!r}, runs=3)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")


def test_help_lists_sub_commands_with_examples():
    group = run_cli("bench", "--help")
    assert group.code == 0
    for name in ("run", "report", "formats"):
        assert name in group.stdout
    run_help = run_cli("bench", "run", "--help")
    assert "--duration" in run_help.stdout and "Example" in run_help.stdout


def test_auto_on_an_edgetpu_model_without_tpu_says_the_cpu_twin_ran(coral):
    if find_edgetpus():
        pytest.skip("an Edge TPU is attached here")
    result = run_bench(MOBILENET_EDGETPU, devices="auto", runs=3)
    [config] = result.results
    assert (config.device, config.device_used) == ("auto", "cpu")
    assert any(
        f"ran the CPU model {MOBILENET.name} instead of {MOBILENET_EDGETPU.name}" in w
        for w in config.warnings
    )
