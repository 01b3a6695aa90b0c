"""Everything ``edgecnn run`` can be told, as one dataclass shared by the CLI, config files and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Keys a config file may set: the CLI flags' long names with '_' for '-'. ``mqtt`` is a table with
# MQTT_KEYS (the ``--mqtt*`` flags; see edgecnn.run.mqtt).
CONFIG_KEYS = (
    "model",
    "source",
    "camera",
    "device",
    "threads",
    "labels",
    "top_k",
    "width",
    "height",
    "fps",
    "crop",
    "realtime",
    "loop",
    "jsonl",
    "min_score",
    "max_detections",
    "classes",
    "every",
    "on_change",
    "serve",
    "serve_token_file",
    "serve_token_all",
    "serve_insecure",
    "reconnect",
    "max_frames",
    "duration",
    "stall_timeout",
    "quiet",
    "mqtt",
)

# Keys of the ``[mqtt]`` table and the type each must have in TOML.
MQTT_KEYS: dict[str, type] = {
    "host": str,  # HOST or HOST:PORT (the --mqtt flag)
    "port": int,
    "topic": str,
    "tls": bool,
    "ca": str,
    "username": str,
    "password_file": str,
    "client_id": str,
    "qos": int,
    "queue_size": int,
}


@dataclass
class RunOptions:
    """Options of one run. Defaults are what ``edgecnn run MODEL`` does with no flags.

    Paths may be relative (to the working directory; :func:`~edgecnn.run.config.load_run_config` makes
    a config file's relative paths relative to the file). Check a filled-in instance with
    :func:`~edgecnn.run.config.validate_run_options`.
    """

    model: Path | None = None
    source: str | None = None  # video file, image folder, URL, "picamera2[:N]", "demo"; None: camera
    camera: int | None = None  # camera index (default 0 when neither camera nor source is set)
    device: str = "cpu"
    threads: int | None = None
    labels: Path | None = None
    top_k: int = 1
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    crop: str | None = None
    realtime: bool = False
    loop: bool = False  # files and folders start again at the end (a demo clip served until Ctrl-C)
    jsonl: str | None = None  # "-" for stdout, or a file path (appended to)
    min_score: float = 0.0  # results below are not output; for detectors also the object threshold (0: 0.4)
    max_detections: int = 100  # detectors: at most this many objects per frame
    classes: list[str] | None = None  # detectors: keep only these labels
    every: int = 1
    on_change: bool = False
    serve: str | None = None  # HOST:PORT, ":PORT" or "PORT" (host 127.0.0.1)
    serve_token: str | None = None  # --serve-token (CLI only: a config file names a file instead)
    serve_token_file: Path | None = None  # first line is the token (service install writes one)
    serve_token_all: bool = False  # also protect /healthz and /metrics
    serve_insecure: bool = False  # allow a non-loopback bind without a token
    reconnect: bool = False
    max_frames: int | None = None
    duration: float | None = None
    stall_timeout: float = 5.0  # seconds without a frame before a source counts as stalled
    quiet: bool = False
    mqtt: dict[str, Any] | None = None  # the [mqtt] table / --mqtt* flags (MQTT_KEYS); None or {}: off
    # Not config keys: where values came from (for error messages) and tuning knobs for tests.
    config_path: Path | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    human_interval: float = 0.5  # at most one human-readable line per this many seconds
    from_cli: frozenset[str] = field(default_factory=frozenset, repr=False)
