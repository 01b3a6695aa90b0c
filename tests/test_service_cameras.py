"""``edgecnn service install NAME --config cameras.toml``: one unit for several cameras; ``status`` per camera."""

from __future__ import annotations

import pytest
import tomllib

from edgecnn.errors import ConfigError
from edgecnn.run.config import load_run_config
from edgecnn.service.install import install_service
from edgecnn.service.layout import Layout
from edgecnn.service.status import Health, camera_lines, format_status, service_status
from tests.conftest import MOBILENET
from tests.test_service import _image_root, needs_systemctl

CAMERAS = """
model = "{model}"
device = "cpu"
serve = "127.0.0.1:8080"
clips = "{clips}"
clip_labels = ["person"]

[[cameras]]
name = "door"
source = "rtsp://door.lan/stream"
min_score = 0.5

[[cameras]]
name = "yard"
camera = 0
fps = 5
"""


@needs_systemctl
def test_one_unit_for_all_cameras_and_status_lists_each(tmp_path):
    root = _image_root(tmp_path)
    config = tmp_path / "cameras.toml"
    config.write_text(CAMERAS.format(model=MOBILENET, clips="/var/lib/edgecnn/clips/home"))
    report = install_service("home", config=config, root=root)
    assert report.unit == "edgecnn@home.service"
    written = tomllib.loads((root / "etc/edgecnn/home.toml").read_text())
    assert written["cameras"] == [
        {"name": "door", "source": "rtsp://door.lan/stream", "min_score": 0.5},
        {"name": "yard", "camera": 0, "fps": 5.0},
    ]
    assert "camera" not in written and "source" not in written  # each camera names its own
    assert written["reconnect"] is True  # live cameras: ride out glitches
    assert written["clips"] == "/var/lib/edgecnn/clips/home" and written["clip_labels"] == ["person"]
    layout = Layout(root)
    opts = load_run_config(layout.host(layout.config("home")))  # what the service will run
    assert [t["name"] for t in opts.cameras or []] == ["door", "yard"]
    dropin = (root / "etc/systemd/system/edgecnn@home.service.d/50-edgecnn.conf").read_text()
    assert "PrivateNetwork" not in dropin  # door is a network camera
    info = service_status("home", root=root)
    assert info.source == "2 cameras: door, yard"
    text = format_status(info)
    assert "  camera door: rtsp://door.lan/stream" in text and "  camera yard: camera 0" in text
    # With the instance's /healthz answer (the multi-camera body), each camera's state is on its line.
    body = {
        "status": "degraded",
        "down": ["yard"],
        "cameras": {
            "door": {"status": "ok", "fps": 5.0, "reconnects": 0},
            "yard": {"status": "reconnecting", "fps": 0.0, "reconnects": 3, "detail": "Cannot open camera 0"},
        },
    }
    served = info.__class__(
        **{**info.to_dict(), "health": Health("http://127.0.0.1:8080/healthz", False, 503, body)}
    )
    assert camera_lines(served) == [
        "  camera door: rtsp://door.lan/stream  ok, 5.0 fps, 0 reconnects",
        "  camera yard: camera 0  reconnecting, 0.0 fps, 3 reconnects (Cannot open camera 0)",
    ]


@needs_systemctl
def test_clips_outside_the_services_folders_are_refused(tmp_path):
    root = _image_root(tmp_path)
    config = tmp_path / "cameras.toml"
    config.write_text(CAMERAS.format(model=MOBILENET, clips="/srv/clips"))
    with pytest.raises(
        ConfigError, match=r"clips \(--clips\): the service can write only under /var/lib/edgecnn"
    ):
        install_service("home", config=config, root=root)
    assert not (root / "etc/edgecnn/home.toml").exists()
