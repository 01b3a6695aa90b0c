"""Edge TPU: the static compatibility check on real models, and the edgetpu_compiler wrapper.

The compiler exists only for x86-64 Debian/Ubuntu and is not installed here: the wrapper is tested with a
stand-in executable (tests/fakes/edgetpu_compiler.py) put first on PATH, which takes the real command line,
prints the real compiler's summary format and writes a real .tflite; the production code path (which,
argv, exit status, parsing, metadata carry-over, atomic writes) is the one under test.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import ai_edge_litert.schema_py_generated as schema
import numpy as np
import pytest

from edgecnn.atomic import write_atomic
from edgecnn.devices.backends.edgetpu.compiler import compile_model, find_compiler, parse_size, parse_summary
from edgecnn.devices.backends.edgetpu.static_check import predict_compilation, supported_ops
from edgecnn.errors import ConversionError, RuntimeMissing
from edgecnn.metadata import read_metadata
from edgecnn.modelfile import parse_model, read_model
from tests.conftest import ROOT, error_lines, run_cli

FAKE = ROOT / "tests" / "fakes" / "edgetpu_compiler.py"


@pytest.fixture
def fake_compiler_dir(tmp_path: Path) -> Path:
    """A directory holding an executable ``edgetpu_compiler`` that runs the stand-in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKE)!r}, run_name='__main__')\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


@pytest.fixture(scope="module")
def dynamic_int8(digits_run, tmp_path_factory) -> Path:
    """The digits model converted the naive way (dynamic batch): SHAPE/STRIDED_SLICE/PACK around Flatten."""
    import keras
    import tensorflow as tf

    from edgecnn.converters.calibration import representative_dataset
    from edgecnn.train import load_dataset

    model = keras.models.load_model(digits_run / "model.keras", compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(load_dataset("digits").x_train[:50], 0.0, 255.0)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("dynamic") / "dynamic_int8.tflite"
    return write_atomic(path, converter.convert())


def test_seed_int8_model_passes_the_static_check(digits_model):
    check = predict_compilation(read_model(digits_model.tflite))
    assert check.compatible and not check.compiled and not check.problems
    assert (check.mapped, check.cpu) == (8, 0)
    assert all(op.edgetpu for op in check.operators)


def test_dynamic_batch_model_fails_with_the_op_named(dynamic_int8):
    mf = read_model(dynamic_int8)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= {op.name for op in mf.operators()}
    check = predict_compilation(mf)
    assert not check.compatible
    text = " ".join(check.problems)
    assert "dynamic shapes" in text
    shape_index = next(
        i
        for i, op in enumerate(mf.model.subgraphs[0].operators)
        if mf.model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.SHAPE
    )
    assert (
        f"SHAPE v1 (op {shape_index}) cannot run on the Edge TPU: not in the Edge TPU's supported operations"
        in text
    )
    assert "the compiler stops mapping at CONV_2D (op 0)" in text
    first_cpu = check.operators[0]
    assert not first_cpu.edgetpu and first_cpu.reason == "dynamic-shaped tensors"
    assert check.mapped == 0 and check.cpu == len(check.operators)


def test_float_model_fails_naming_float_tensors(digits_run):
    from edgecnn.converters.keras_to_tflite import fixed_batch, load_keras_model, to_tflite

    mf = parse_model(
        to_tflite(
            fixed_batch(load_keras_model(digits_run / "model.keras")), quantize="float32", io_type="float32"
        )
    )
    check = predict_compilation(mf)
    assert not check.compatible and check.mapped == 0
    assert check.problems[0] == "8 of 8 ops work on float tensors, which the Edge TPU does not run."
    assert check.kind is not None and check.kind.startswith("float32, not quantized")
    assert check.advice[0].startswith(
        "re-convert full-integer: TensorFlow's converter with a representative_dataset"
    )
    assert check.operators[0].reason.startswith("works on FLOAT32 tensors")  # each op still says why


def test_op_version_newer_than_the_compiler_is_rejected(digits_model):
    mf = read_model(digits_model.tflite)
    conv = next(code for code in mf.model.operatorCodes if code.builtinCode == 3)  # CONV_2D
    conv.version = 6
    check = predict_compilation(mf)
    assert not check.compatible
    assert "op version 6 is newer than edgetpu_compiler 16.0.384591198 accepts (max v5)" in check.problems[0]
    assert supported_ops().max_versions["TRANSPOSE_CONV"] == 3  # v4 is rejected, as the issue says


def test_inspect_target_edgetpu(digits_model, dynamic_int8):
    ok = run_cli("inspect", digits_model.tflite, "--target", "edgetpu", "--json")
    assert ok.code == 0, ok.stderr
    data = json.loads(ok.stdout)["extra"]["edgetpu"]
    assert data["compatible"] is True and data["mapped"] == 8
    bad = run_cli("inspect", dynamic_int8, "--target", "edgetpu")
    assert bad.code == 0, bad.stderr
    assert "edgetpu: NOT fully compatible" in bad.stdout, bad.stdout
    assert "SHAPE v1 x1  CPU: not in the Edge TPU" in bad.stdout, bad.stdout


def test_compiler_wrapper_parses_the_summary(digits_model, fake_compiler_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_compiler_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert find_compiler() == str(fake_compiler_dir / "edgetpu_compiler")
    result = compile_model(digits_model.tflite, tmp_path / "out")
    assert result.model_path == tmp_path / "out" / f"{digits_model.tflite.stem}_edgetpu.tflite"
    assert result.log_path is not None and result.log_path.is_file()
    s = result.summary
    assert s.compiler_version == "16.0.384591198" and s.compile_ms == 37
    assert (s.subgraphs, s.total_ops, s.edgetpu_ops, s.cpu_ops) == (1, 8, 8, 0)
    assert s.on_chip_used_bytes and s.on_chip_used_bytes > 50_000 and s.off_chip_used_bytes == 0
    assert {(r.operator, r.count, r.mapped) for r in s.operations} >= {
        ("CONV_2D", 2, True),
        ("SOFTMAX", 1, True),
    }


def test_compiler_failure_exit_status_is_checked(digits_run, fake_compiler_dir, tmp_path, monkeypatch):
    from edgecnn.converters.keras_to_tflite import fixed_batch, load_keras_model, to_tflite

    monkeypatch.setenv("PATH", f"{fake_compiler_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    float_model = write_atomic(
        tmp_path / "float.tflite",
        to_tflite(
            fixed_batch(load_keras_model(digits_run / "model.keras")), quantize="float32", io_type="float32"
        ),
    )
    with pytest.raises(
        ConversionError, match=r"edgetpu_compiler failed on float.tflite \(exit 1\): .*Model not quantized"
    ):
        compile_model(float_model, tmp_path / "out")


def test_summary_parser_reads_cpu_fallbacks_and_sizes():
    text = "\n".join(
        [
            "Edge TPU Compiler version 16.0.384591198",
            "Started a compilation timeout timer of 180 seconds.",
            "",
            "Model compiled successfully in 412 ms.",
            "",
            "Input model: net.tflite",
            "Input size: 2.50MiB",
            "Output model: net_edgetpu.tflite",
            "Output size: 2.71MiB",
            "On-chip memory used for caching model parameters: 2.31MiB",
            "On-chip memory remaining for caching model parameters: 5.42MiB",
            "Off-chip memory used for streaming uncached model parameters: 12.25KiB",
            "Number of Edge TPU subgraphs: 1",
            "Total number of operations: 40",
            "Operation log: net_edgetpu.log",
            "",
            "Operator                       Count      Status",
            "",
            "CONV_2D                        30         Mapped to Edge TPU",
            "LEAKY_RELU                     1          Operation not supported",
            "FULLY_CONNECTED                9          More than one subgraph is not supported",
            "Compilation child process completed within timeout period.",
            "Compilation succeeded! ",
        ]
    )
    s = parse_summary(text)
    assert s.compile_ms == 412 and s.total_ops == 40 and s.subgraphs == 1
    assert s.on_chip_used_bytes == round(2.31 * 1024**2) and s.off_chip_used_bytes == 12544
    assert (s.edgetpu_ops, s.cpu_ops) == (30, 10)  # computed from the table: no count lines printed
    assert [r.operator for r in s.operations] == ["CONV_2D", "LEAKY_RELU", "FULLY_CONNECTED"]
    assert parse_size("0.00B") == 0 and parse_size("7.99MiB") == round(7.99 * 1024**2)


def test_convert_edgetpu_writes_compiled_model_with_metadata(digits_run, fake_compiler_dir, tmp_path):
    out_model = tmp_path / "out" / "digits_int8.tflite"
    env = {"PATH": f"{fake_compiler_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = run_cli("convert", digits_run / "model.keras", "-o", out_model, "--edgetpu", "--json", env=env)
    assert result.code == 0, result.stderr
    for chatter in ("oneDNN", "fully_quantize", "XNNPACK delegate"):  # native INFO lines stay out of stderr
        assert chatter not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    tpu_path = tmp_path / "out" / "digits_int8_edgetpu.tflite"
    assert report["edgetpu"]["output"] == str(tpu_path) and tpu_path.is_file()
    assert (tmp_path / "out" / "digits_int8_edgetpu.log").is_file()
    assert report["edgetpu"]["check"]["compatible"] is True
    compiler = report["edgetpu"]["compiler"]
    assert compiler["compiler_version"] == "16.0.384591198" and (
        compiler["edgetpu_ops"],
        compiler["cpu_ops"],
    ) == (8, 0)
    cpu_meta = read_metadata(read_model(out_model))
    tpu_meta = read_metadata(read_model(tpu_path))
    assert tpu_meta.cpu_twin == "digits_int8.tflite" and cpu_meta.cpu_twin is None
    assert tpu_meta.labels == cpu_meta.labels == [str(i) for i in range(10)]
    assert (tpu_meta.colour, tpu_meta.mean, tpu_meta.std) == ("GRAY", 0.0, 255.0)
    assert tpu_meta.provenance["edgetpu"]["compiler_version"] == "16.0.384591198"
    assert tpu_meta.provenance["verification"] == cpu_meta.provenance["verification"]
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert not leftovers


@pytest.mark.slow  # runs TensorFlow
def test_edgetpu_conversion_of_an_incompatible_model_writes_nothing(fake_compiler_dir, tmp_path, monkeypatch):
    import keras

    from edgecnn.converters.pipeline import convert

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3),
            keras.layers.LeakyReLU(0.1),  # int8 in TFLite, not an Edge TPU operation
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    source = tmp_path / "leaky.keras"
    model.save(source)
    monkeypatch.setenv("PATH", f"{fake_compiler_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with pytest.raises(ConversionError, match=r"not Edge TPU compatible: LEAKY_RELU v1 \(op 1\) cannot run"):
        convert(
            source,
            output=tmp_path / "out" / "leaky.tflite",
            calibration="digits",
            calibration_samples=20,
            edgetpu=True,
        )
    assert not (tmp_path / "out").exists()


def test_absent_compiler_says_how_to_install(digits_run, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(
        "convert",
        digits_run / "model.keras",
        "-o",
        tmp_path / "m.tflite",
        "--edgetpu",
        env={"PATH": str(empty)},
    )
    assert result.code == 8, result.stderr
    (line,) = error_lines(result.stderr)
    assert "edgetpu_compiler is not on PATH" in line
    assert "coral-edgetpu-stable" in line and "sudo apt-get install edgetpu-compiler" in line
    assert not (tmp_path / "m.tflite").exists()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(RuntimeMissing, match="x86-64 Debian/Ubuntu"):
        find_compiler()


def test_the_supported_ops_table_ships_as_package_data():
    table = supported_ops()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "MAX_POOL_2D", "RESHAPE"} <= set(
        table.max_versions
    )
    assert "LEAKY_RELU" not in table.max_versions and "SHAPE" not in table.max_versions
    assert np.all(np.array(list(table.max_versions.values())) >= 1)
