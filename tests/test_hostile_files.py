"""Files people copy onto a device: FIFOs, devices, huge, deep or malformed ones, through every command.

Contract for each: one ``edgecnn: error:`` line naming the file, a non-zero exit, no traceback, no hang.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import ConfigError, InputError, ModelError, UsageError
from edgecnn.modelfile import parse_model, read_model
from edgecnn.safeio import MAX_NESTING, FileKind, loads_json, loads_toml, read_bytes, read_text
from tests.conftest import CAT, MOBILENET, error_lines, run_cli
from tests.model_mutations import MUTATIONS, mutated


def assert_one_error(result, *needles: str, code: int | None = None) -> str:
    """The contract: non-zero exit by code (not a signal), no traceback, exactly one error line."""
    assert result.code > 0, (result.code, result.stderr[-2000:])
    if code is not None:
        assert result.code == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = error_lines(result.stderr)
    errors = [line for line in lines if line.startswith("edgecnn: error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.tflite"
    os.mkfifo(path)
    return path


# -- safeio ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FileKind.MODEL, ModelError),
        (FileKind.LABELS, InputError),
        (FileKind.CONFIG, ConfigError),
        (FileKind.JSON, InputError),
    ],
)
def test_fifo_device_and_directory_are_refused_by_name(fifo, tmp_path, kind, error):
    with pytest.raises(error, match="is a FIFO"):
        read_bytes(fifo, kind)  # O_NONBLOCK: returns at once although nobody writes
    with pytest.raises(error, match="is a character device"):
        read_bytes("/dev/zero", kind)
    with pytest.raises(error, match="is a directory"):
        read_bytes(tmp_path, kind)
    with pytest.raises(error, match="not found"):
        read_bytes(tmp_path / "missing", kind)


def test_size_cap_fits_the_kind(tmp_path):
    big = tmp_path / "labels.txt"
    with big.open("wb") as fh:  # sparse: 9 MiB that take no disk
        fh.truncate(9 << 20)
    with pytest.raises(InputError, match=r"9 MiB, more than any labels file should be \(limit 8 MiB\)"):
        read_bytes(big, FileKind.LABELS)
    assert len(read_bytes(big, FileKind.MODEL)) == 9 << 20  # a 9 MiB model is an ordinary model


def test_text_must_be_utf8(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"cat\n\xff\xfedog\n")
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_text(path, FileKind.LABELS)
    path.write_bytes("\ufeffcat\ndog\n".encode())
    assert read_text(path, FileKind.LABELS) == "cat\ndog\n"  # a BOM is not part of the first label


def test_nesting_deeper_than_any_real_file_is_an_error():
    deep_toml = "x = " + "[" * 50_000 + "]" * 50_000
    with pytest.raises(ConfigError, match=f"more than {MAX_NESTING} levels deep"):
        loads_toml(deep_toml, "deep.toml")
    inline = "x = " + "{a = " * 5_000 + "1" + "}" * 5_000
    with pytest.raises(ConfigError, match="levels deep"):
        loads_toml(inline, "inline.toml")
    shallow_but_over = "x = " + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1)
    with pytest.raises(ConfigError, match="levels deep"):  # parses without recursion trouble: walked after
        loads_toml(shallow_but_over, "over.toml")
    with pytest.raises(InputError, match="levels deep"):
        loads_json("[" * 100_000 + "]" * 100_000, "deep.json")
    with pytest.raises(InputError, match="is not JSON"):
        loads_json("1" * 10_000, "digits.json")  # Python refuses to parse an int this long: one error too
    assert loads_toml('[mqtt]\nhost = "b"\n', "ok.toml") == {"mqtt": {"host": "b"}}


# -- model structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_malformed_models_are_refused_before_an_interpreter_sees_them(coral, name):
    with pytest.raises(ModelError, match=r"not a usable TFLite model|truncated or corrupt"):
        parse_model(mutated(MOBILENET.read_bytes(), name))


def test_real_models_pass_the_structural_check(coral, digits_model):
    for path in [*coral.glob("*.tflite"), digits_model.tflite]:
        assert read_model(path).outputs


def test_subgraph_outputs_minus_one_is_an_error_not_sigabrt(coral, tmp_path):
    """The bare interpreter aborts with "free(): invalid pointer" at exit on this file (SIGABRT)."""
    model = tmp_path / "outputs_minus_one.tflite"
    model.write_bytes(mutated(MOBILENET.read_bytes(), "output index -1"))
    for argv in (["predict", model, CAT], ["inspect", model], ["bench", "run", model, "--runs", "2"]):
        result = run_cli(*argv, timeout=60)
        assert result.code != -signal.SIGABRT
        assert_one_error(result, str(model), "output -1 is not one of its 89 tensors", code=3)


@pytest.mark.parametrize(
    "name", ["output is the input tensor", "output quantization scale 0", "operator list emptied"]
)
def test_results_that_cannot_be_right_are_refused_in_predict(coral, tmp_path, name):
    model = tmp_path / "m.tflite"
    model.write_bytes(mutated(MOBILENET.read_bytes(), name))
    assert_one_error(run_cli("predict", model, CAT), str(model), code=3)


def test_nonfinite_scores_are_an_error():
    from edgecnn.errors import ModelInvokeError
    from edgecnn.sanity import check_finite

    with pytest.raises(ModelInvokeError, match="1 NaN or infinite output values of 3"):
        check_finite(np.array([0.1, np.nan, 0.2], dtype=np.float32), "m.tflite")
    assert check_finite(np.zeros(3, dtype=np.float32), "m.tflite").shape == (3,)


# -- every command that reads a file ------------------------------------------------------------------


def _commands(path: Path, tmp_path: Path) -> dict[str, list]:
    (tmp_path / "r").mkdir(exist_ok=True)
    classes = tmp_path / "classes"
    (classes / "cat").mkdir(parents=True, exist_ok=True)
    (classes / "cat" / "cat.bmp").write_bytes(CAT.read_bytes())
    return {
        "eval model": ["eval", path, classes],
        "eval labels": ["eval", MOBILENET, classes, "--labels", path],
        "predict model": ["predict", path, CAT],
        "predict labels": ["predict", MOBILENET, CAT, "--labels", path],
        "predict image": ["predict", MOBILENET, path],
        "inspect": ["inspect", path],
        "run model": ["run", path, "--source", "demo", "--max-frames", "1"],
        "run config": ["run", "--config", path],
        "bench model": ["bench", "run", path, "--runs", "2"],
        "bench report": ["bench", "report", path],
        "service install model": ["service", "install", "x", "--model", path, "--root", tmp_path / "r"],
        "service install config": ["service", "install", "x", "--config", path, "--root", tmp_path / "r"],
        "fleet status": ["fleet", "status", path],
    }


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/urandom"])
def test_every_command_refuses_fifos_and_devices_without_hanging(coral, tmp_path, fifo, special):
    path = fifo if special == "fifo" else Path(special)
    expect = "is a FIFO" if special == "fifo" else "is a character device"
    for name, argv in _commands(path, tmp_path).items():
        result = run_cli(*argv, timeout=30)  # a hang is a TimeoutExpired, i.e. a failure
        assert_one_error(result, str(path), expect), name


def test_deep_config_and_json_through_the_cli(coral, tmp_path):
    (tmp_path / "root").mkdir()
    deep = tmp_path / "deep.toml"
    deep.write_text(f'model = "{MOBILENET}"\nx = ' + "[" * 50_000 + "]" * 50_000 + "\n")
    for argv in (
        ["run", "--config", deep],
        ["service", "install", "door", "--config", deep, "--root", tmp_path / "root"],
    ):
        assert_one_error(run_cli(*argv), str(deep), "levels deep", code=7)
    deep_json = tmp_path / "deep.json"
    deep_json.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_error(run_cli("bench", "report", deep_json), str(deep_json), "levels deep", code=4)


# -- labels and options -------------------------------------------------------------------------------


def test_labels_that_do_not_fit_the_class_count(coral, tmp_path):
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    assert_one_error(
        run_cli("predict", MOBILENET, CAT, "--labels", three),
        "3 labels for a model with 1001 classes",
        code=4,
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert_one_error(run_cli("predict", MOBILENET, CAT, "--labels", empty), "is empty", code=4)
    almost = tmp_path / "imagenet1000.txt"
    almost.write_text("".join(f"class{i}\n" for i in range(1000)))
    result = run_cli("predict", MOBILENET, CAT, "--labels", almost)
    assert result.code == 0, result.stderr
    warning = [line for line in error_lines(result.stderr) if "warning" in line]
    assert warning == [
        f"edgecnn: warning: Labels file {almost} has 1000 labels for 1001 classes: 1 are missing, so "
        "classes 1000..1000 show as their number."
    ]


def test_predict_crop_must_be_a_choice(coral):
    assert_one_error(
        run_cli("predict", MOBILENET, CAT, "--crop", "middle"), "'middle' is not a choice", code=2
    )
    assert run_cli("predict", MOBILENET, CAT, "--crop", "CENTER").code == 0


def test_usage_error_for_crop_in_the_library(coral):
    from edgecnn.model import open_model

    with pytest.raises(UsageError, match="center or none"):
        open_model(MOBILENET, crop="middle")


# -- images -------------------------------------------------------------------------------------------

HUGE_PNG = Path(__file__).parent / "data" / "hostile" / "huge_20000x20000.png"


def test_huge_image_is_refused_before_decoding(coral):
    """48 KB on disk, 400 MB decoded: OpenCV refuses it from the header (832 MB peak RSS without the limit)."""
    assert HUGE_PNG.stat().st_size < 100_000
    assert_one_error(
        run_cli("predict", MOBILENET, HUGE_PNG),
        str(HUGE_PNG),
        "more than 50,000,000 pixels",
        "EDGECNN_MAX_IMAGE_PIXELS",
        code=4,
    )
    small_budget = run_cli("predict", MOBILENET, CAT, env={"EDGECNN_MAX_IMAGE_PIXELS": "1000"})
    assert_one_error(small_budget, str(CAT), "more than 1,000 pixels", code=4)


def test_odd_images_decode_to_8bit_gray_or_bgr(tmp_path):
    import cv2

    from edgecnn.images import read_image

    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (8, 1))
    cases = {
        "16bit.png": ramp,
        "16bit_bgr.png": np.dstack([ramp] * 3),
        "bgra.png": np.dstack([ramp.astype(np.uint8)] * 4),
        "float.tiff": np.full((8, 8), np.nan, dtype=np.float32),
    }
    for name, array in cases.items():
        path = tmp_path / name
        assert cv2.imwrite(str(path), array), name
        image = read_image(path)
        assert image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] == 3), (name, image.shape)
    assert read_image(tmp_path / "16bit.png").max() == 255
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((tmp_path / "16bit.png").read_bytes()[:60])
    with pytest.raises(InputError, match="Cannot decode"):
        read_image(truncated)


# -- videos -------------------------------------------------------------------------------------------


def _video(path: Path, width: int, height: int, frames: int) -> Path:
    from edgecnn.devices.sources.synthetic import render_digit, write_video

    return write_video(path, (render_digit(i % 10, width, height) for i in range(frames)))


@pytest.mark.parametrize(
    ("budget", "refused"),
    [("76799", True), ("76800", False), ("1000", True)],
    ids=["one-pixel-over", "exactly-the-budget", "far-over"],
)
def test_video_frames_over_the_pixel_budget_are_refused_before_decoding(coral, tmp_path, budget, refused):
    """The same budget as still images, read from the capture's frame size after open (a 320x240 MJPG
    here; an 8000x8000 one of 1.3 MB peaked at 563 MB RSS in `run` before this check, 91 MB with it)."""
    video = _video(tmp_path / "clip.avi", 320, 240, 3)
    result = run_cli(
        "run", MOBILENET, "--source", video, "--jsonl", "-", env={"EDGECNN_MAX_IMAGE_PIXELS": budget}
    )
    if not refused:
        assert result.code == 0, result.stderr
        assert len([line for line in result.stdout.splitlines() if line.startswith("{")]) == 3
        return
    assert_one_error(
        result,
        str(video),
        "320x240 frames (76,800 pixels)",
        f"more than the {int(budget):,}-pixel image budget",
        "EDGECNN_MAX_IMAGE_PIXELS",
        code=4,
    )
    assert not result.stdout.strip()  # nothing classified, not even a partial summary of frames


def test_a_frame_over_the_budget_mid_stream_stops_the_run_with_input_error(tmp_path, monkeypatch):
    """A capture whose frames outgrow the budget after open (a stream that switches resolution, a
    camera that reports no size) is refused on the decoded frame, through the capture thread, as the
    same InputError: not a SourceError that --reconnect would retry forever."""
    from edgecnn.devices.sources.base import SourceEnded
    from edgecnn.devices.sources.spec import SourceKind, SourceSpec, open_source

    source = open_source(SourceSpec(SourceKind.FILE, str(_video(tmp_path / "grow.avi", 320, 240, 12))))
    source.open()  # within the default budget; the ordered buffer holds at most 4 decoded frames
    try:
        assert source.read(timeout=10.0) is not None
        monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "1000")
        got = 0
        with pytest.raises(InputError, match=r"grow\.avi has 320x240 frames .* EDGECNN_MAX_IMAGE_PIXELS"):
            for _ in range(20):
                try:
                    if source.read(timeout=5.0) is not None:
                        got += 1
                except SourceEnded:
                    break
        assert got <= 4, got  # at most the frames decoded before the budget changed, then the refusal
    finally:
        source.close()
