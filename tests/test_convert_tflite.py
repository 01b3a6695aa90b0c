"""``edgecnn convert MODEL.tflite --edgetpu``: a full-integer TFLite from any tool, checked and compiled.

The compiler is physically absent here: like tests/test_edgetpu_compiler.py, the stand-in
tests/fakes/edgetpu_compiler.py goes first on PATH (it takes the real command line, prints the real
summary format and writes a real .tflite); everything else is the production path.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from edgecnn.converters.tflite_edgetpu import _carry_metadata, compile_tflite
from edgecnn.errors import RuntimeMissing, UsageError
from edgecnn.metadata import ultralytics_metadata
from edgecnn.modelfile import ModelFile, read_model
from tests.conftest import MOBILENET, MOBILENET_EDGETPU, ROOT, error_lines, run_cli
from tests.edgetpu_graphs import yolov8_head
from tests.test_edgetpu_yolo import _float_conv, _ultralytics

FAKE = ROOT / "tests" / "fakes" / "edgetpu_compiler.py"


@pytest.fixture
def compiler_path(tmp_path: Path) -> str:
    """PATH with an executable ``edgetpu_compiler`` that runs the stand-in first."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKE)!r}, run_name='__main__')\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def _write(model: ModelFile, path: Path) -> Path:
    """The model's bytes plus its appended files (Ultralytics' metadata.json zip), as an export writes them."""
    import io
    import zipfile

    sink = io.BytesIO()
    if model.appended:
        with zipfile.ZipFile(sink, "w") as archive:
            for name, content in model.appended.items():
                archive.writestr(name, content)
    path.write_bytes(model.data + sink.getvalue())
    return path


@pytest.fixture
def yolo_tflite(tmp_path: Path) -> Path:
    """A full-integer YOLOv8 head at 640 px with Ultralytics' metadata: its head stays on the CPU."""
    return _write(_ultralytics(yolov8_head(640), 640), tmp_path / "best_full_integer_quant.tflite")


def test_a_full_integer_tflite_is_checked_then_compiled(yolo_tflite, compiler_path, tmp_path):
    result = run_cli("convert", yolo_tflite, "--edgetpu", env={"PATH": compiler_path})
    assert result.code == 0, result.stderr
    out = tmp_path / "best_full_integer_quant_edgetpu.tflite"
    assert result.stdout.startswith(f"compiled best_full_integer_quant.tflite (full-integer) -> {out}")
    assert "edgetpu: NOT fully compatible:" in result.stdout  # the check's lines, as inspect prints them
    assert "format=edgetpu imgsz=160" in result.stdout
    assert "edgetpu_compiler 16.0.384591198:" in result.stdout
    compiled = read_model(out)
    assert ultralytics_metadata(compiled.appended)["imgsz"] == [640, 640]  # the runtime still reads it
    assert (tmp_path / "best_full_integer_quant_edgetpu.log").is_file()
    report = json.loads((tmp_path / "best_full_integer_quant_edgetpu_report.json").read_text())
    assert report["kind"] == "full-integer" and report["check"]["cpu"] == 24
    assert report["compiler"]["compiler_version"] == "16.0.384591198"


def test_json_prints_the_report(yolo_tflite, compiler_path, tmp_path):
    out = tmp_path / "tpu" / "model_edgetpu.tflite"
    out.parent.mkdir()
    result = run_cli("convert", yolo_tflite, "--edgetpu", "-o", out, "--json", env={"PATH": compiler_path})
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output"] == str(out) and out.is_file()
    assert data["check"]["smaller_imgsz"] == 160 and data["check"]["log"]
    assert data["report"] == str(out.with_name("model_edgetpu_report.json"))


def test_a_dynamic_range_tflite_is_one_error_line_with_the_re_export(tmp_path, compiler_path):
    model = _write(_ultralytics(_float_conv("int8"), 320), tmp_path / "best_int8.tflite")
    result = run_cli("convert", model, "--edgetpu", env={"PATH": compiler_path})
    assert result.code == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("edgecnn: error: best_int8.tflite is dynamic-range quantized")
    assert "yolo export model=best.pt format=edgetpu imgsz=320" in line
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_int8.tflite", "bin"]  # nothing written


def test_without_the_compiler_the_install_steps_and_the_checks_verdict(yolo_tflite, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("convert", yolo_tflite, "--edgetpu", env={"PATH": str(empty)})
    assert result.code == 8, result.stderr
    (line,) = error_lines(result.stderr)
    assert "edgetpu_compiler is not on PATH" in line and "sudo apt-get install edgetpu-compiler" in line
    assert "The static check predicts" in line and "24 on the CPU" in line
    assert not (tmp_path / "best_full_integer_quant_edgetpu.tflite").exists()


def test_tflite_options_that_would_do_nothing_are_refused(yolo_tflite):
    plain = run_cli("convert", yolo_tflite)
    assert plain.code == 2 and "add --edgetpu to compile it" in error_lines(plain.stderr)[0]
    flags = run_cli("convert", yolo_tflite, "--edgetpu", "--io", "uint8", "--calibration", "digits")
    assert flags.code == 2 and "--io, --calibration: for a Keras model only" in error_lines(flags.stderr)[0]


def test_library_refusals(tmp_path, compiler_path, monkeypatch):
    monkeypatch.setenv("PATH", compiler_path)
    with pytest.raises(UsageError, match="already compiled for the Edge TPU"):
        compile_tflite(MOBILENET_EDGETPU, output=tmp_path / "x_edgetpu.tflite")
    with pytest.raises(UsageError, match="is the input model"):
        compile_tflite(MOBILENET, output=MOBILENET)
    float_model = _write(_float_conv("float32"), tmp_path / "f.tflite")
    with pytest.raises(UsageError, match=r"float32, not quantized.*re-convert full-integer"):
        compile_tflite(float_model)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeMissing, match="predicts 31 ops on the Edge TPU and 0 on the CPU"):
        compile_tflite(MOBILENET, output=tmp_path / "m_edgetpu.tflite")


def test_metadata_the_compiler_drops_is_carried_over(tmp_path):
    source = read_model(_write(_ultralytics(yolov8_head(160), 160), tmp_path / "s.tflite"))
    bare = yolov8_head(160).data  # what a compiler that keeps no appended files would write
    carried = read_model(
        _write_bytes(_carry_metadata(source, bare, tmp_path / "c.tflite"), tmp_path / "c.tflite")
    )
    assert carried.appended == source.appended
    mobilenet = read_model(MOBILENET)  # labels in TFLite Support's appended zip
    assert _carry_metadata(mobilenet, mobilenet.data, tmp_path / "m.tflite") == mobilenet.data


def _write_bytes(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path
