"""Frame sources on real files, folders and generated frames; camera and picamera2 failures as users see them."""

from __future__ import annotations

import sys
import time
import types
from typing import ClassVar

import cv2
import numpy as np
import pytest

from edgecnn.devices.sources import SourceEnded, SourceKind, open_source, parse_source
from edgecnn.errors import SourceError
from tests.run_support import numbered_frame, write_video


def read_until_end(source, *, pause: float = 0.0, limit: int = 10_000):
    """Frames an open file or folder source delivers until it ends, sleeping ``pause`` after each."""
    frames = []
    while len(frames) < limit:
        try:
            frame = source.read(5.0)
        except SourceEnded:
            break
        assert frame is not None, "a file source must not stall"
        frames.append(frame)
        if pause:
            time.sleep(pause)
    return frames


def read_all(source, limit: int = 10_000):
    source.open()
    try:
        return read_until_end(source, limit=limit)
    finally:
        source.close()


def test_parse_source_kinds(tmp_path):
    video = write_video(tmp_path / "clip.avi", [numbered_frame(0)])
    assert parse_source(None).kind is SourceKind.CAMERA and parse_source(None).index == 0
    assert parse_source(None, camera=2).describe() == "camera 2"
    assert parse_source("3").index == 3
    assert parse_source("demo").kind is SourceKind.SYNTHETIC
    assert parse_source("synthetic:digits").kind is SourceKind.SYNTHETIC
    assert parse_source("picamera2").kind is SourceKind.PICAMERA2
    assert parse_source("picamera2:1").index == 1
    assert parse_source("rtsp://127.0.0.1:8554/cam").kind is SourceKind.URL
    assert parse_source("http://127.0.0.1:8080/stream.mjpg").kind is SourceKind.URL
    assert parse_source(str(video)).kind is SourceKind.FILE
    assert parse_source(str(tmp_path)).kind is SourceKind.FOLDER
    assert parse_source(f"file://{video}").kind is SourceKind.FILE


@pytest.mark.parametrize(
    ("value", "camera", "words"),
    [
        ("/no/such/clip.mp4", None, ["not found", "camera index"]),
        ("ftp://127.0.0.1/x", None, ["ftp", "rtsp"]),
        ("synthetic:cats", None, ["synthetic:digits"]),
        ("demo", 1, ["either --camera"]),
        ("", None, ["Empty --source"]),
    ],
)
def test_parse_source_errors_say_what_to_do(value, camera, words):
    with pytest.raises(SourceError) as info:
        parse_source(value, camera=camera)
    for word in words:
        assert word in str(info.value)


def test_video_file_delivers_every_frame_in_order(tmp_path):
    video = write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(30)])
    frames = read_all(open_source(parse_source(str(video))))
    assert [f.index for f in frames] == list(range(30))
    brightness = [round(float(f.image.mean()) / 8) for f in frames]
    assert brightness == list(range(30))
    assert frames[0].image.shape == (120, 160, 3)


def test_slow_consumer_of_a_file_still_gets_every_frame(tmp_path):
    video = write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(12)])
    source = open_source(parse_source(str(video)))
    source.open()
    try:
        # Slower than the decoder: the bounded queue makes it wait, nothing is dropped.
        got = [f.index for f in read_until_end(source, pause=0.02)]
    finally:
        source.close()
    assert got == list(range(12)) and source.dropped == 0


def test_file_decoder_runs_at_most_a_few_frames_ahead(tmp_path):
    """Ordered mode is bounded: a consumer that pauses does not make the decoder buffer the whole file."""
    from edgecnn.devices.sources.base import ORDERED_BUFFER_FRAMES

    video = write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(40)])
    source = open_source(parse_source(str(video)))
    source.open()
    try:
        assert source.read(5.0).index == 0
        time.sleep(0.3)  # ample time to decode all 40 small frames if nothing held the decoder back
        buffered = len(source._session.items)
        rest = [f.index for f in read_until_end(source)]
    finally:
        source.close()
    assert 2 <= buffered <= ORDERED_BUFFER_FRAMES
    assert rest == list(range(1, 40)) and source.dropped == 0


def test_realtime_file_drops_frames_a_slow_consumer_cannot_take(tmp_path):
    video = write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(60)], fps=60)
    source = open_source(parse_source(str(video)), realtime=True)
    source.open()
    got = []
    try:
        while True:
            try:
                frame = source.read(5.0)
            except SourceEnded:
                break
            if frame is not None:
                got.append(frame.index)
                time.sleep(0.1)  # 6x slower than the file's 60 fps
    finally:
        source.close()
    assert source.dropped > 0
    assert got == sorted(got) and len(got) + source.dropped == 60
    assert got[-1] == 59  # the newest frame is never the one dropped


def test_image_folder_is_read_in_name_order(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"img_{i:02d}.png"), numbered_frame(i * 4))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "img_03.png").write_bytes(b"broken")  # skipped with a warning, not fatal
    frames = read_all(open_source(parse_source(str(tmp_path))))
    assert [round(float(f.image.mean()) / 32) for f in frames] == [0, 1, 2]


def test_demo_source_generates_paced_digit_frames():
    source = open_source(parse_source("demo"), width=320, height=240, fps=200)
    frames = read_all_live(source, 5)
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert all(f.image.max() == 255 and f.image[0, 0].max() == 0 for f in frames)
    assert [f.index for f in frames] == sorted(f.index for f in frames)


def read_all_live(source, count):
    source.open()
    frames = []
    try:
        while len(frames) < count:
            frame = source.read(5.0)
            assert frame is not None
            frames.append(frame)
    finally:
        source.close()
    return frames


def test_demo_source_shows_digits_the_seed_model_names(digits_model):
    """Every digit and handwriting variant the demo cycles through, classified by the seed model as-is."""
    from edgecnn.devices.sources.synthetic import DEMO_VARIANTS, DigitsGrabber
    from edgecnn.model import open_model

    classifier = open_model(digits_model.tflite)
    grabber = DigitsGrabber(640, 480, hold=1)
    grabber.open()
    shown = 10 * DEMO_VARIANTS
    named = [int(classifier.classify(grabber.grab()).classes[0].label) for _ in range(shown)]
    correct = sum(label == i % 10 for i, label in enumerate(named))
    assert correct >= shown - 2, named  # font-rendered digits scored 6-7 of 10 here
    assert grabber.grab().shape == (480, 640, 3)  # and then it starts over


def test_camera_that_does_not_exist_fails_with_causes():
    source = open_source(parse_source(None, camera=99))
    with pytest.raises(SourceError) as info:
        source.open()
    message = str(info.value)
    assert "camera 99" in message and "/dev/video99" in message
    assert "--source picamera2" in message and "video group" in message
    assert "\n" not in message


def test_camera_permission_and_busy_messages(monkeypatch, tmp_path):
    from edgecnn.devices.sources import opencv

    monkeypatch.setattr(opencv.platform, "system", lambda: "Linux")
    monkeypatch.setattr(opencv.os.path, "exists", lambda p: p == "/dev/video0")
    monkeypatch.setattr(opencv.os, "access", lambda p, mode: False)
    assert "video group" in str(opencv.camera_open_error(0)) and "permission" in str(
        opencv.camera_open_error(0)
    )
    monkeypatch.setattr(opencv.os, "access", lambda p, mode: True)
    busy = str(opencv.camera_open_error(0))
    assert "busy" in busy and "picamera2" in busy


def test_picamera2_missing_says_apt_and_system_site_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails even where it is installed
    source = open_source(parse_source("picamera2"))
    with pytest.raises(SourceError) as info:
        source.open()
    message = str(info.value)
    assert "python3-picamera2" in message and "--system-site-packages" in message


class _FakePicamera2:
    """Stands in for the CSI camera this machine lacks; the real Picamera2Grabber code drives it."""

    instances: ClassVar[list[_FakePicamera2]] = []

    def __init__(self, camera_num=0):
        self.camera_num = camera_num
        self.config = None
        self.started = False
        self.closed = False
        self.count = 0
        _FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info():
        return [{"Model": "imx708", "Num": 0}]

    def create_video_configuration(self, main, controls):
        return {"main": main, "controls": controls}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, name="main"):
        w, h = self.config["main"]["size"]
        self.count += 1
        image = np.zeros((h, w, 4), np.uint8)  # XRGB8888-like 4-channel buffer
        image[..., 0] = 10  # blue first: RGB888 is BGR in memory
        time.sleep(0.005)
        return image

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


def test_picamera2_backend_configures_and_streams(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = _FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    _FakePicamera2.instances.clear()
    source = open_source(parse_source("picamera2"), width=320, height=240, fps=15)
    frames = read_all_live(source, 3)
    cam = _FakePicamera2.instances[0]
    assert cam.config == {"main": {"size": (320, 240), "format": "RGB888"}, "controls": {"FrameRate": 15.0}}
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image[0, 0, 0] == 10
    assert cam.closed and not cam.started
    with pytest.raises(SourceError, match="camera 1 does not exist"):
        open_source(parse_source("picamera2:1")).open()


def test_picamera2_mode_over_the_pixel_budget_is_refused_before_the_camera_starts(monkeypatch):
    """picamera2 delivers the size it is asked for, so --width/--height over the budget are refused before
    picamera2 is even imported (it is not installed here: a size within budget reaches that error)."""
    import importlib.util

    from edgecnn.devices.sources.picamera import Picamera2Grabber
    from edgecnn.errors import InputError

    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(1280 * 720))
    with pytest.raises(InputError, match=r"picamera2 camera 0 has 1920x1080 frames .*--width/--height"):
        Picamera2Grabber(0, width=1920, height=1080).open()
    if importlib.util.find_spec("picamera2") is None:  # within budget: on to picamera2 itself
        with pytest.raises(SourceError, match="needs the picamera2 module"):
            Picamera2Grabber(0, width=1280, height=720).open()


@pytest.mark.parametrize(("width", "height"), [(6, 8), (8, 8), (15, 16), (161, 120)])
def test_write_video_refuses_sizes_opencvs_writer_mishandles(tmp_path, width, height):
    # 6x8 corrupts OpenCV 5.0's heap (the process aborts), an odd side is silently cut to even: refused
    # before the writer is made, so nothing is written and the process lives.
    from edgecnn.errors import InputError

    with pytest.raises(InputError, match=rf"{width}x{height} frames .* even width and height of at least 16"):
        write_video(tmp_path / "clip.avi", [np.zeros((height, width, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []


def test_write_video_refuses_a_frame_of_another_size_and_leaves_no_file(tmp_path):
    # OpenCV drops such a frame with only a warning; a video short of frames would be silently wrong.
    from edgecnn.errors import InputError

    frames = [np.zeros((64, 64, 3), np.uint8), np.zeros((32, 48, 3), np.uint8)]
    with pytest.raises(InputError, match=r"Frame 1 .* is 48x32, the first was 64x64"):
        write_video(tmp_path / "clip.avi", frames)
    assert list(tmp_path.iterdir()) == []
    ok = write_video(tmp_path / "ok.avi", [np.zeros((16, 16, 3), np.uint8)] * 3)
    assert ok.stat().st_size > 0
