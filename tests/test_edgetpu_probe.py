"""Edge TPU pairing diagnosis and crash containment, driven through the production loader.

This machine has no Coral, so the tests build stand-ins for libedgetpu from ``tests/fakes/fake_edgetpu.c``
with the C compiler (one raises SIGSEGV when the delegate is created, one returns NULL, one hangs, one
lacks the delegate symbol, one reports libedgetpu 16.0's real version string) and point
``EDGECNN_EDGETPU_LIB`` at them. Everything above the library is the real code path:
``edgecnn predict`` -> ``open_model`` -> ``_edgetpu_delegate`` -> probe child -> ``load_edgetpu_delegate``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgecnn.devices.backends.edgetpu import pairing as diag
from edgecnn.devices.backends.edgetpu.delegate import EDGETPU_LIB_ENV
from edgecnn.devices.backends.edgetpu.probe import inspect_library, probe_edgetpu, probe_timeout
from edgecnn.errors import DelegateCrashed, EdgeTPUNotFound, UsageError
from edgecnn.model import open_model
from edgecnn.modelfile import read_model
from edgecnn.runtime import get_runtime
from tests.conftest import CAT, MOBILENET, MOBILENET_EDGETPU, error_lines, run_cli

FAKE_SOURCE = Path(__file__).parent / "fakes" / "fake_edgetpu.c"
# What Coral's libedgetpu1-std 16.0 returns from edgetpu_version() (google-coral/edgetpu#660).
CORAL_16_VERSION = "BuildLabel(COMPILER=6.3.0 20170516,DATE=redacted,TIME=redacted), RuntimeVersion(14)"
VARIANTS = {
    "segv": ["-DCREATE_SEGV", f'-DVERSION="{CORAL_16_VERSION}"'],
    "segv_unversioned": ["-DCREATE_SEGV"],
    "null": ["-DCREATE_NULL"],
    "hang": ["-DCREATE_HANG", f'-DVERSION="{CORAL_16_VERSION}"'],
    "nosym": ["-DNO_CREATE"],
    "prepare_segv": ["-DPREPARE_SEGV", f'-DVERSION="{CORAL_16_VERSION}"'],
    "works": [f'-DVERSION="{CORAL_16_VERSION}"'],
}


@pytest.fixture(scope="session")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the stand-in libedgetpu")
    out = tmp_path_factory.mktemp("fake_edgetpu")
    built = {}
    for name, defines in VARIANTS.items():
        target = out / f"libfake_{name}.so"
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-O0", "-o", str(target), *defines, str(FAKE_SOURCE)],
            check=True,
            capture_output=True,
        )
        built[name] = target
    return built


@pytest.fixture
def cache_home(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def cli(*args: object, lib: Path | str, cache_home: Path, **extra: str):
    env = {EDGETPU_LIB_ENV: str(lib), "XDG_CACHE_HOME": str(cache_home), **extra}
    return run_cli(*map(str, args), env=env)


def only_error(result) -> str:
    lines = error_lines(result.stderr)
    errors = [line for line in lines if line.startswith("edgecnn: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return errors[0]


# --- crash containment through the CLI --------------------------------------------------------------


def test_crashing_library_gives_one_line_and_exit_5(coral, fakes, cache_home):
    result = cli(
        "predict", MOBILENET_EDGETPU, CAT, "--device", "edgetpu", lib=fakes["segv"], cache_home=cache_home
    )
    assert result.code == 5, result.stderr
    line = only_error(result)
    assert "Edge TPU runtime crashed (SIGSEGV while creating the delegate)" in line
    assert f"libedgetpu 16.0 (built for TF 2.5) into {get_runtime().describe()}" in line
    assert "a known-bad pairing" in line and "16.0tf2.17.1" in line
    assert f"run the CPU model {MOBILENET}" in line
    assert result.stdout == ""
    assert not (cache_home / "edgecnn" / "edgetpu-probe").exists()  # only passing probes are cached


def test_crash_from_unidentified_library_names_the_likely_cause(coral, fakes, cache_home):
    lib = fakes["segv_unversioned"]
    result = cli("predict", MOBILENET_EDGETPU, CAT, "--device", "edgetpu", lib=lib, cache_home=cache_home)
    assert result.code == 5
    line = only_error(result)
    assert f"loading {lib} (version unknown)" in line
    assert "probably built from different TensorFlow versions" in line


def test_crash_while_preparing_the_model_names_the_stage(coral, fakes, cache_home):
    # The delegate is created fine and dies in Prepare, which the interpreter calls while allocating.
    result = cli(
        "predict", MOBILENET, CAT, "--device", "edgetpu", lib=fakes["prepare_segv"], cache_home=cache_home
    )
    assert result.code == 5
    line = only_error(result)
    assert "crashed (SIGSEGV while preparing the model)" in line
    assert "run on the CPU with --device cpu" in line  # no CPU twin for a model that is already a CPU model


def test_library_returning_no_delegate_is_edgetpu_not_found(coral, fakes, cache_home):
    result = cli(
        "predict", MOBILENET_EDGETPU, CAT, "--device", "edgetpu", lib=fakes["null"], cache_home=cache_home
    )
    assert result.code == 5
    line = only_error(result)
    assert f"No Edge TPU could be opened through {fakes['null']}" in line
    assert "fake libedgetpu: no Edge TPU device found" in line  # what the library reported
    assert f"run the CPU model {MOBILENET}" in line


def test_library_without_the_delegate_symbol(coral, fakes, cache_home):
    for extra in ([], ["--no-probe"]):  # the loader itself refuses it too, without a traceback
        result = cli(
            "predict",
            MOBILENET_EDGETPU,
            CAT,
            "--device",
            "edgetpu",
            *extra,
            lib=fakes["nosym"],
            cache_home=cache_home,
        )
        assert result.code == 5, (extra, result.stderr)
        assert "exports no tflite_plugin_create_delegate" in only_error(result)


def test_hanging_library_is_killed_after_the_timeout(coral, fakes, cache_home):
    result = cli(
        "predict",
        MOBILENET_EDGETPU,
        CAT,
        "--device",
        "edgetpu",
        lib=fakes["hang"],
        cache_home=cache_home,
        EDGECNN_PROBE_TIMEOUT="2",
    )
    assert result.code == 5
    line = only_error(result)
    assert "Edge TPU runtime hung while creating the delegate" in line
    assert "no answer within 2 s" in line and "EDGECNN_PROBE_TIMEOUT" in line


def test_missing_library(coral, tmp_path, cache_home):
    missing = tmp_path / "libedgetpu.so.1"
    result = cli("predict", MOBILENET_EDGETPU, CAT, "--device", "edgetpu", lib=missing, cache_home=cache_home)
    assert result.code == 5
    line = only_error(result)
    assert f"No Edge TPU runtime: {missing} cannot be opened" in line


def test_auto_falls_back_to_the_twin_with_the_crash_in_one_warning(coral, fakes, cache_home):
    result = cli(
        "predict",
        MOBILENET_EDGETPU,
        CAT,
        "--device",
        "auto",
        "--json",
        lib=fakes["segv"],
        cache_home=cache_home,
    )
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"] == "cpu" and report["model"].endswith("mobilenet_v1_0.25_128_quant.tflite")
    assert report["results"][0]["classes"][0]["label"] == "tiger cat"
    warnings = [line for line in error_lines(result.stderr) if line.startswith("edgecnn: warning:")]
    assert len(warnings) == 1, result.stderr
    assert "crashed (SIGSEGV while creating the delegate)" in warnings[0]
    assert f"running the CPU model {MOBILENET} instead" in warnings[0]
    assert "Traceback" not in result.stderr


def test_auto_without_any_library_warns_once_and_runs_the_twin(coral, tmp_path, cache_home):
    result = cli(
        "predict",
        MOBILENET_EDGETPU,
        CAT,
        "--device",
        "auto",
        lib=tmp_path / "libedgetpu.so.1",
        cache_home=cache_home,
    )
    assert result.code == 0, result.stderr
    assert "tiger cat" in result.stdout
    warnings = [line for line in error_lines(result.stderr) if line.startswith("edgecnn: warning:")]
    assert len(warnings) == 1 and "no Edge TPU works here" in warnings[0]


def test_passing_probe_is_cached_and_no_probe_skips_it(coral, fakes, cache_home):
    # The working stand-in claims no nodes, so a CPU model runs through it: the probe passes.
    args = ("predict", MOBILENET, CAT, "--device", "edgetpu", "--json")
    first = cli(*args, lib=fakes["works"], cache_home=cache_home, EDGECNN_DEBUG="1")
    assert first.code == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["device"] == "edgetpu" and report["results"][0]["classes"][0]["label"] == "tiger cat"
    assert "tpu probe probe: exit 0" in first.stderr and "passed before" not in first.stderr
    entries = list((cache_home / "edgecnn" / "edgetpu-probe").glob("*.json"))
    assert len(entries) == 1
    entry = json.loads(entries[0].read_text())
    assert entry["key"]["runtime"] == get_runtime().describe() and entry["version"] == CORAL_16_VERSION
    assert not list(entries[0].parent.glob(".*.tmp"))  # written atomically

    second = cli(*args, lib=fakes["works"], cache_home=cache_home, EDGECNN_DEBUG="1")
    assert second.code == 0
    assert "Edge TPU probe passed before" in second.stderr and "tpu probe probe:" not in second.stderr

    skipped = cli(*args, "--no-probe", lib=fakes["works"], cache_home=cache_home / "other", EDGECNN_DEBUG="1")
    assert skipped.code == 0
    assert "tpu probe" not in skipped.stderr and json.loads(skipped.stdout)["device"] == "edgetpu"


# --- the library API ----------------------------------------------------------------------------------


def test_parent_survives_and_raises_typed_errors(coral, fakes, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(EDGETPU_LIB_ENV, str(fakes["segv"]))
    with pytest.raises(DelegateCrashed, match=r"SIGSEGV while creating the delegate"):
        open_model(MOBILENET_EDGETPU, device="edgetpu")
    monkeypatch.setenv(EDGETPU_LIB_ENV, str(fakes["null"]))
    with pytest.raises(EdgeTPUNotFound, match="No Edge TPU could be opened"):
        probe_edgetpu(read_model(MOBILENET_EDGETPU), "usb", get_runtime())


def test_probe_runs_once_per_process_and_the_cache_follows_the_library_file(
    coral, fakes, monkeypatch, tmp_path
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lib = tmp_path / "libedgetpu.so.1"
    shutil.copy(fakes["works"], lib)
    monkeypatch.setenv(EDGETPU_LIB_ENV, str(lib))
    model, runtime = read_model(MOBILENET), get_runtime()
    probe_edgetpu(model, None, runtime)  # passes: the working stand-in runs the CPU model
    # Swap a crashing library in under the same name. This process already passed the probe for that name,
    # so it does not probe again; without the cache, or in a new process (new sha256), the crash is caught.
    shutil.copy(fakes["segv"], tmp_path / "swap.so")
    os.replace(tmp_path / "swap.so", lib)
    probe_edgetpu(model, None, runtime)
    with pytest.raises(DelegateCrashed):
        probe_edgetpu(model, None, runtime, use_cache=False)
    result = cli("predict", MOBILENET, CAT, "--device", "edgetpu", lib=lib, cache_home=tmp_path / "cache")
    assert result.code == 5 and "SIGSEGV" in only_error(result)


def test_auto_fallback_in_process_logs_one_line(coral, fakes, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(EDGETPU_LIB_ENV, str(fakes["segv"]))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("edgecnn")
    logger.addHandler(handler)
    try:
        clf = open_model(MOBILENET_EDGETPU, device="auto")
    finally:
        logger.removeHandler(handler)
    assert clf.device == "cpu" and clf.path == MOBILENET
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "SIGSEGV" in warnings[0]


def test_library_is_inspected_in_a_child(fakes):
    info = inspect_library(str(fakes["works"]))
    assert info.loads and info.delegate_symbol and info.crash is None
    assert info.path == str(fakes["works"]) and info.version == CORAL_16_VERSION
    nosym = inspect_library(str(fakes["nosym"]))
    assert nosym.loads and not nosym.delegate_symbol and nosym.version is None
    missing = inspect_library("/nonexistent/libedgetpu.so.1")
    assert not missing.loads and "No such file" in (missing.error or "")


def test_diagnosis_of_coral_16_with_this_runtime(fakes, monkeypatch, tmp_path):
    monkeypatch.setenv(EDGETPU_LIB_ENV, str(fakes["works"]))
    d = diag.diagnose_edgetpu(sysfs_root=tmp_path / "sys", dev_root=tmp_path / "dev")
    runtime = get_runtime()
    assert d.library == str(fakes["works"]) and d.library_from_env and d.library_path == str(fakes["works"])
    assert d.library_loads and d.delegate_symbol
    assert d.version_string == CORAL_16_VERSION and d.runtime_version == 14
    assert d.package is None  # dpkg does not know a file built in a temp folder
    assert d.built_for_tf == "2.5" and d.build and d.build.startswith("libedgetpu 16.0")
    assert (d.tflite_runtime, d.tflite_runtime_version) == (runtime.name, runtime.version)
    old_tflite = runtime.name == "tflite-runtime" and diag.version_matches(runtime.version, {"below": "2.12"})
    expected = "known-good" if old_tflite else "known-bad"  # ai-edge-litert and tf.lite >= 2.12 crash with it
    assert d.verdict == expected
    assert d.sources and d.devices == []
    data = d.to_dict()
    assert json.loads(json.dumps(data))["verdict"] == expected and data["summary"]


def test_diagnosis_without_a_library(tmp_path, monkeypatch):
    monkeypatch.setenv(EDGETPU_LIB_ENV, str(tmp_path / "libedgetpu.so.1"))
    d = diag.diagnose_edgetpu()
    assert d.verdict == "not-installed" and not d.library_loads
    assert d.tflite_runtime == get_runtime().name and get_runtime().describe() in d.summary


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query absent (not a Debian system)")
def test_diagnosis_names_the_debian_package():
    # libc is on every Debian machine and dpkg knows it: the same lookup names libedgetpu1-std on a Pi.
    d = diag.diagnose_edgetpu(library="libc.so.6")
    assert d.library_loads and d.library_path and os.path.exists(d.library_path)
    assert d.package and d.package.split(":")[0] == "libc6" and d.package_version
    assert not d.delegate_symbol and d.verdict == "unknown"
    assert diag.dpkg_package("/nonexistent/libedgetpu.so.1") is None


def test_devices_json_reports_version_and_verdict(fakes, cache_home, tmp_path):
    result = cli("devices", "--json", lib=fakes["works"], cache_home=cache_home)
    assert result.code == 0, result.stderr
    runtime = json.loads(result.stdout)["edgetpu_runtime"]
    assert runtime["version_string"] == CORAL_16_VERSION
    assert runtime["verdict"] in ("known-bad", "known-good") and runtime["built_for_tf"] == "2.5"
    assert runtime["tflite_runtime"] == get_runtime().name

    missing = cli("devices", "--json", lib=tmp_path / "libedgetpu.so.1", cache_home=cache_home)
    assert missing.code == 0 and "Traceback" not in missing.stderr
    data = json.loads(missing.stdout)
    assert data["edgetpu_runtime"]["verdict"] == "not-installed"
    assert data["edgetpu_runtime"]["tflite_runtime_version"] == get_runtime().version


# --- the pairing table ----------------------------------------------------------------------------------


def test_pairing_table_is_well_formed():
    table = diag.load_pairings()
    ids = {row["id"] for row in table["libraries"]}
    assert len(ids) == len(table["libraries"])
    for row in table["libraries"]:
        assert row["sources"] and (row.get("package_versions") or row.get("version_strings"))
    for row in table["pairings"]:
        assert row["library"] in ids and row["sources"], row
        assert row["verdict"] in ("known-good", "known-bad"), row
        if row["verdict"] == "known-bad":
            assert row["reason"] and row["fix"], row
        else:
            assert row["label"], row


@pytest.mark.parametrize(
    ("package_version", "version_string", "runtime", "version", "verdict", "tf"),
    [
        ("16.0", None, "tflite-runtime", "2.5.0.post1", "known-good", "2.5"),
        ("16.0", None, "tflite-runtime", "2.11.1", "known-good", "2.5"),
        ("16.0", None, "tflite-runtime", "2.12.0", "known-bad", "2.5"),
        (None, CORAL_16_VERSION, "ai-edge-litert", "2.3.0", "known-bad", "2.5"),
        ("16.0", None, "tensorflow", "2.21.0", "known-bad", "2.5"),
        ("16.0tf2.17.1-1", None, "tflite-runtime", "2.17.1", "known-good", "2.17.1"),
        ("16.0tf2.17.1-1", None, "tflite-runtime", "2.16.1", "unknown", "2.17.1"),
        ("16.0tf2.13.1-2", None, "tflite-runtime", "2.14.1", "known-good", "2.13.1"),
        ("16.0pp3", None, "tflite-runtime", "2.10.1", "unknown", "2.10.1"),
        ("16.0tf2.17.1-1", None, "ai-edge-litert", "2.3.0", "unknown", "2.17.1"),
        ("99.0", "something else", "ai-edge-litert", "2.3.0", "unknown", None),
    ],
)
def test_pairing_verdicts(package_version, version_string, runtime, version, verdict, tf):
    build = diag.identify_library(package_version, version_string)
    assert (build.built_for_tf if build else None) == tf
    result = diag.pairing_verdict(build, runtime, version)
    assert result.verdict == verdict
    if verdict == "known-bad":
        assert "16.0tf2.17.1" in (result.fix or "")
    if verdict == "unknown":
        assert "known-good pairs" in (result.fix or "")


def test_version_comparison():
    assert diag.version_tuple("2.5.0.post1") == (2, 5, 0)
    assert diag.version_tuple("16.0tf2.17.1-1") == (16, 0)
    assert diag.version_matches("2.11.1", {"below": "2.12"})
    assert not diag.version_matches("2.12", {"below": "2.12"})
    assert diag.version_matches("2.17.1.post1", {"versions": ["2.17.1"]})
    assert not diag.version_matches("2.17.10", {"versions": ["2.17.1"]})
    assert not diag.version_matches("unknown", {"min": "2.0"})


def test_probe_timeout_setting(monkeypatch):
    monkeypatch.delenv("EDGECNN_PROBE_TIMEOUT", raising=False)
    assert probe_timeout() == 30.0
    monkeypatch.setenv("EDGECNN_PROBE_TIMEOUT", "7.5")
    assert probe_timeout() == 7.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("EDGECNN_PROBE_TIMEOUT", bad)
        with pytest.raises(UsageError, match="EDGECNN_PROBE_TIMEOUT"):
            probe_timeout()


@pytest.mark.parametrize("probe", [[], ["--no-probe"]])
def test_an_edge_tpu_run_prints_no_xnnpack_banner(coral, fakes, cache_home, probe):
    """LiteRT prints "Created TensorFlow Lite XNNPACK delegate" when it allocates beside a delegate too: that
    allocation is filtered (crash-safely, by a separate process) like a CPU one. A model failing there
    leaves only edgecnn's line; a working one leaves stderr empty."""
    failing = Path(__file__).parent / "data" / "coral" / "model_invoking_error.tflite"
    result = cli(
        "predict", failing, CAT, "--device", "edgetpu", *probe, lib=fakes["works"], cache_home=cache_home
    )
    assert result.code == 3, result.stderr
    (line,) = error_lines(result.stderr)
    assert result.stderr == line + "\n", result.stderr
    ok = cli(
        "predict", MOBILENET, CAT, "--device", "edgetpu", *probe, lib=fakes["works"], cache_home=cache_home
    )
    assert ok.code == 0 and ok.stderr == "", ok.stderr
    loud = cli(
        "predict", MOBILENET, CAT, "--device", "edgetpu", "--no-probe", lib=fakes["works"], cache_home=cache_home,
        EDGECNN_DEBUG="1",
    )  # fmt: skip
    assert loud.code == 0 and "XNNPACK delegate for CPU" in loud.stderr


def test_a_delegate_crash_while_allocating_still_shows_its_output(coral, fakes, cache_home):
    """--no-probe lets the delegate crash the process itself, inside the filtered allocation: the process
    dies by its signal as before (the filter takes nothing away from a crash)."""
    result = cli(
        "predict", MOBILENET, CAT, "--device", "edgetpu", "--no-probe", lib=fakes["prepare_segv"],
        cache_home=cache_home,
    )  # fmt: skip
    assert result.code == -11, (result.code, result.stderr)
    assert "XNNPACK" not in result.stderr


def test_a_probe_failure_is_not_explained_by_a_banner():
    """A child that died without reporting is explained by its last stderr line: never LiteRT's banner."""
    from edgecnn.devices.backends.edgetpu.probe import _last_line

    stderr = "boom: the real reason\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n\n"
    assert _last_line(stderr, "none") == "boom: the real reason"
    assert (
        _last_line("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", "exit code 1")
        == "exit code 1"
    )
