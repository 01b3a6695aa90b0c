"""Everything ``edgecnn run`` can be told, declared once: each field of :class:`RunOptions` (and of
:class:`MqttOptions`, the ``[mqtt]`` table) carries its type (the annotation), default, range, help and CLI
flag in its metadata (:class:`OptionSpec`).

The CLI (``edgecnn.cli.run``, and ``edgecnn.cli.service`` for the run flags ``service install`` passes on)
takes its ranges, help and flags from here through ``edgecnn.cli._app.run_flag``, the TOML loader
(``edgecnn.run.config``) its keys, types and ranges, the MQTT settings (``edgecnn.run.mqtt_settings``) the
``[mqtt]`` keys, and ``service install`` the keys worth writing. Adding an option is one field here, one
``run_flag("key")`` parameter in ``edgecnn.cli.run``, and its use. The task options (``top_k``,
``object_threshold``, ``min_score``, ...) are declared in :mod:`edgecnn.tasks.options`, shared with
``predict``, ``bench`` and ``eval``; their fields here are made from those declarations (:func:`task_field`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.tasks.options import TASK_OPTIONS


@dataclass(frozen=True)
class OptionSpec:
    """How one option is told: its range (inclusive; ``None``: open), help text and CLI flags.

    ``config`` False: the option is CLI-only (a secret that a file names by path instead) or internal.
    """

    help: str = ""
    low: float | None = None
    high: float | None = None
    flags: tuple[str, ...] = ()  # CLI spellings; empty: --KEY-WITH-DASHES
    config: bool = True


@dataclass(frozen=True)
class Option:
    """One declared option as the readers see it: key, TOML/CLI value type and :class:`OptionSpec`."""

    key: str
    kind: type  # bool, int, float, str, Path, list (of str) or dict (a table)
    default: Any
    spec: OptionSpec
    flag_prefix: str = "--"

    @property
    def flags(self) -> tuple[str, ...]:
        """What typer.Option takes (``--realtime/--no-realtime``, ``-k``)."""
        return self.spec.flags or (self.flag_prefix + self.key.replace("_", "-"),)

    @property
    def flag(self) -> str:
        """The one spelling error messages name (``--realtime``, ``MODEL``, ``--mqtt-topic``)."""
        return self.flags[0].split("/")[0]


def option(default: Any = None, help: str = "", **spec: Any) -> Any:
    """A dataclass field whose metadata declares the option (see :class:`OptionSpec`)."""
    return field(default=default, metadata={"option": OptionSpec(help=help, **spec)})


def task_field(key: str) -> Any:
    """The field of a task option (``top_k``, ``object_threshold``, ...): its type comes from the field's
    annotation, and its default, range, help and flags from its one declaration in
    :mod:`edgecnn.tasks.options` (which ``predict``, ``bench`` and ``eval`` read too)."""
    o = TASK_OPTIONS[key]
    return option(o.default, o.help, low=o.low, high=o.high, flags=o.flags)


@dataclass
class MqttOptions:
    """The ``[mqtt]`` table / ``--mqtt*`` flags; checked and resolved by
    :func:`edgecnn.run.mqtt_settings.mqtt_settings`.

    ``RunOptions.mqtt`` holds these as a plain dict (only the keys that were set), so a file's table and the
    flags merge key by key.
    """

    host: str | None = option(
        help="Publish results to this MQTT broker (port 1883, 8883 with TLS); needs pip install 'edgecnn\\[mqtt]'.",
        flags=("--mqtt",),
    )  # HOST or HOST:PORT
    port: int | None = option(low=1, high=65535, flags=("--mqtt",))
    topic: str | None = option(
        help="Topic prefix: PREFIX/result, PREFIX/availability, PREFIX/stats. Default: edgecnn/HOSTNAME "
        "(edgecnn/HOSTNAME/NAME with --config NAME.toml)."
    )
    tls: bool | None = option(
        help="TLS to the broker (the system's CAs unless --mqtt-ca).", flags=("--mqtt-tls/--no-mqtt-tls",)
    )
    ca: str | None = option(
        help="CA certificate (PEM) that signed the broker's certificate; implies --mqtt-tls."
    )
    username: str | None = option(help="Username for the broker.")
    password_file: str | None = option(
        help="File whose first line is the broker password (keeps it out of ps and shell history)."
    )
    client_id: str | None = option(help="MQTT client id (default edgecnn-HOSTNAME[-NAME]-PID).")
    qos: int = option(1, "1: at least once (default); 0: at most once.", low=0, high=1)
    discovery: bool | None = option(
        help="Home Assistant MQTT discovery: a sensor per counting line direction and zone (default off).",
        flags=("--mqtt-discovery/--no-mqtt-discovery",),
    )
    queue_size: int = option(
        1000,
        "Results kept while the broker is unreachable (default 1000); older ones are dropped and counted.",
        low=1,
        high=1_000_000,
    )


@dataclass
class RunOptions:
    """Options of one run. Defaults are what ``edgecnn run MODEL`` does with no flags.

    Paths may be relative (to the working directory; :func:`~edgecnn.run.config.load_run_config` makes
    a config file's relative paths relative to the file). Check a filled-in instance with
    :func:`~edgecnn.run.config.validate_run_options`.
    """

    model: Path | None = option(
        help="Path to a .tflite model (may come from --config instead).", flags=("MODEL",)
    )
    # video file, image folder, URL, "picamera2[:N]", "demo"; None: camera
    source: str | None = option(
        help="Video file, image folder, stream URL (rtsp://, http:// MJPEG), picamera2[:N], or demo."
    )
    # camera index (default 0 when neither camera nor source is set)
    camera: int | None = option(
        help="Camera index (V4L2 /dev/videoN on Linux). Default: 0.", low=0, high=1000
    )
    device: str = option("cpu", "cpu (default), edgetpu (or edgetpu:usb, edgetpu:pci:N), or auto.")
    threads: int | None = option(help="CPU threads for the interpreter.", low=1, high=64)
    labels: Path | None = option(help="Labels file (one per line): overrides embedded labels.")
    top_k: int = task_field("top_k")
    width: int | None = option(help="Frame width to request from the camera.", low=1, high=16384)
    height: int | None = option(help="Frame height to request.", low=1, high=16384)
    fps: float | None = option(
        help="Frame rate to request (camera) or to pace at (--realtime, demo).", low=0.001, high=1000
    )
    crop: str | None = option(help="'center' to crop to the model's aspect before resizing.")
    realtime: bool = option(
        False,
        "Play files at their frame rate, dropping frames like a camera.",
        flags=("--realtime/--no-realtime",),
    )
    # files and folders start again at the end (a demo clip served until Ctrl-C)
    loop: bool = option(
        False,
        "Start a video file or image folder again at its end, until stopped.",
        flags=("--loop/--no-loop",),
    )
    # "-" for stdout, or a file path (appended to)
    jsonl: str | None = option(help="Write one JSON object per result to FILE (appended), or '-' for stdout.")
    # the task options (edgecnn.tasks.options): the detector's threshold, then the output filter
    object_threshold: float = task_field("object_threshold")
    min_score: float = task_field("min_score")
    max_detections: int = task_field("max_detections")
    classes: list[str] | None = task_field("classes")  # noqa: RUF009 (a dataclasses.field, default None)
    iou: float | None = task_field("iou")
    agnostic: bool = task_field("agnostic")
    every: int = option(1, "Only output every Nth processed frame.", low=1, high=1_000_000)
    on_change: bool = option(
        False,
        "Only output when the top label (detectors: the set of labels present) changes.",
        flags=("--on-change/--no-on-change",),
    )
    # HOST:PORT, ":PORT" or "PORT" (host 127.0.0.1)
    serve: str | None = option(
        help="HOST:PORT for /healthz /latest /metrics /stream.mjpg (PORT alone binds 127.0.0.1)."
    )
    # CLI only: a config file names a file instead
    serve_token: str | None = option(
        help="Token that /, /latest and /stream.mjpg require (Bearer header, or open /?token=TOKEN once). "
        "Needed to --serve anything but loopback.",
        config=False,
    )
    # first line is the token (service install writes one)
    serve_token_file: Path | None = option(
        help="Read the serve token from the first line of FILE (what `edgecnn service install` writes)."
    )
    serve_token_all: bool = option(False, "Require the token for /healthz and /metrics too.")
    serve_insecure: bool = option(False, "Allow --serve on a non-loopback address without a token.")
    reconnect: bool = option(
        False,
        "Retry a source that fails or stops (capped backoff) instead of exiting.",
        flags=("--reconnect/--no-reconnect",),
    )
    max_frames: int | None = option(help="Stop after N processed frames.", low=1, high=10**12)
    duration: float | None = option(help="Stop after S seconds.", low=0.001, high=10**9)
    # seconds without a frame before a source counts as stalled
    stall_timeout: float = option(
        5.0,
        "Seconds without a frame before the source counts as stalled (default 5).",
        low=0.05,
        high=3600,
    )
    quiet: bool = option(False, "No per-result lines; summary only.", flags=("--quiet/--no-quiet", "-q"))
    # the [mqtt] table / --mqtt* flags (MqttOptions' keys); None or {}: off
    mqtt: dict[str, Any] | None = option(help="The [mqtt] table (see MqttOptions).")
    # Tracking, lines and zones (edgecnn.track): on for any result with boxes (detectors), off for others.
    track: bool = option(
        True,
        "Results with boxes (detect, YOLO pose, MoveNet, YOLO seg): follow objects across frames and give each a track_id (default on; --no-track: off).",
        flags=("--track/--no-track",),
    )
    track_buffer: float = option(
        2.0,
        "Seconds an object may go unseen (occluded, missed) and keep its track ID (default 2).",
        low=0.0,
        high=3600,
    )
    track_min_hits: int = option(
        2,
        "Detections in a row before an object gets a track ID (default 2; 1: at once, so a one-frame false "
        "positive gets one too).",
        low=1,
        high=1000,
    )
    track_high_score: float = option(
        0.5,
        "Detections scoring at least this (and --object-threshold) start tracks and are matched first; "
        "lower ones (down to --track-low-score) only keep tracks going (default 0.5).",
        low=0.0,
        high=1.0,
    )
    # With tracking on, the detector runs at min(object_threshold, track_low_score) so the tracker's second
    # stage (ByteTrack's) sees the low-score detections; the result keeps those a track matched
    # (edgecnn.track.stage.TrackStage.publish_threshold), never the ones no track took.
    track_low_score: float = option(
        0.1,
        "Detections below --object-threshold but scoring at least this keep a track going (a half-hidden "
        "object) and are output with its ID; ones no track takes are not output (default 0.1, at most "
        "--track-high-score; set it to --object-threshold to output only objects over that).",
        low=0.0,
        high=1.0,
    )
    # "x1,y1,x2,y2" strings (flags) or [[lines]] tables (TOML); see edgecnn.track.spec
    lines: list[Any] | None = option(
        help="Counting line x1,y1,x2,y2 in pixels, or fractions of the frame when every value is <= 1 "
        "(0.5,0,0.5,1: a vertical line through the middle); repeatable. In a config file: an array of lines tables (docs/tracking.md).",
        flags=("--line", "--lines"),
    )
    zones: list[Any] | None = option(
        help="Zone x1,y1,x2,y2,x3,y3[,...] (a polygon, pixels or fractions as --line); repeatable. "
        "In a config file: an array of zones tables, with inertia and dwell (docs/tracking.md).",
        flags=("--zone", "--zones"),
    )
    events: Path | None = option(
        help="Append one JSON object per event (cross, enter, exit, dwell) to FILE.",
    )
    snapshots: Path | None = option(
        help="Write a JPEG of the frame for each event into this folder (oldest deleted past the limits).",
    )
    snapshots_keep: int = option(
        100, "Keep at most this many event snapshots (default 100).", low=1, high=10**7
    )
    snapshots_max_mb: float = option(
        100.0, "Keep at most this many megabytes of event snapshots (default 100).", low=0.1, high=10**7
    )
    # Event clips (edgecnn.run.clips): a folder turns them on
    clips: str | None = option(
        help="Write event clips (video with pre-roll, and a snapshot) into this folder; see --clip-labels."
    )
    clip_labels: list[str] | None = option(
        help="Labels that start a clip, comma-separated (person,car). Default: any label of a result. With "
        "lines or zones, their events (cross, enter, dwell) start clips, of these labels' objects only."
    )
    clip_pre: float = option(5.0, "Seconds of video kept before an event (default 5).", low=0.0, high=60)
    clip_post: float = option(
        5.0, "Seconds recorded after the last frame of an event (default 5).", low=0.0, high=600
    )
    clip_max_length: float = option(
        120.0,
        "Longest clip in seconds; a longer event continues in a new clip (default 120).",
        low=1,
        high=3600,
    )
    clip_max_mb: float = option(
        2048.0,
        "Delete the oldest clips when the folder holds more than this (MB, default 2048).",
        low=1,
        high=10**7,
    )
    clip_max_age_days: float = option(
        7.0, "Delete clips older than this many days (default 7).", low=0.001, high=36500
    )
    clip_buffer_mb: float = option(
        8.0, "Memory per camera for the pre-roll frames (MB of JPEG, default 8).", low=0.1, high=4096
    )
    clip_min_free_mb: float = option(
        64.0,
        "Stop recording while the clips disk has less free space than this (MB, default 64).",
        low=0,
        high=10**7,
    )
    clip_format: str = option("avi", "avi (MJPG, default) or mp4 (mp4v).")
    # [[cameras]] tables (edgecnn.run.cameras): several cameras in one run, sharing the model
    cameras: list[dict[str, Any]] | None = option(
        help="Several cameras sharing the model: a cameras table per camera in a config file (name, source)."
    )
    # Not config keys: where values came from (for error messages) and tuning knobs for tests.
    config_path: Path | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    human_interval: float = 0.5  # at most one human-readable line per this many seconds
    from_cli: frozenset[str] = field(default_factory=frozenset, repr=False)


def _value_type(hint: Any) -> type:
    """``int | None`` -> int, ``list[str] | None`` -> list, ``dict[str, Any] | None`` -> dict."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    origin = typing.get_origin(hint)
    return typing.cast(type, origin or hint)


@functools.cache
def declared(cls: type) -> dict[str, Option]:
    """The options declared on ``cls`` (RunOptions or MqttOptions), by key, in declaration order."""
    hints = typing.get_type_hints(cls)
    prefix = "--mqtt-" if cls is MqttOptions else "--"
    found: dict[str, Option] = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("option")
        if spec is not None:
            found[f.name] = Option(f.name, _value_type(hints[f.name]), f.default, spec, prefix)
    return found


def run_option(key: str) -> Option:
    """The declaration of a run option (``top_k``) or of an ``[mqtt]`` key (``mqtt.qos``)."""
    if key.startswith("mqtt."):
        return declared(MqttOptions)[key[len("mqtt.") :]]
    return declared(RunOptions)[key]


# Keys a config file may set: the CLI flags' long names with '_' for '-'. ``mqtt`` is a table with
# MQTT_KEYS (the ``--mqtt*`` flags; see edgecnn.run.mqtt_settings).
CONFIG_KEYS: tuple[str, ...] = tuple(k for k, o in declared(RunOptions).items() if o.spec.config)

# Keys of the ``[mqtt]`` table and the type each must have in TOML.
MQTT_KEYS: dict[str, type] = {k: o.kind for k, o in declared(MqttOptions).items()}


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a string"}


def type_mismatch(opt: Option, value: Any) -> str | None:
    """What a TOML value of ``opt`` must be (``"an integer"``), or ``None`` when ``value`` fits.

    Paths are strings in TOML; a float option takes an integer; a bool is never a number.
    """
    kind = opt.kind
    if kind is bool:
        fits = isinstance(value, bool)
    elif kind is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind in (str, Path):
        fits = isinstance(value, str)
    else:  # pragma: no cover - lists and tables are checked by their readers
        raise TypeError(f"no TOML check for {opt.key} ({kind.__name__})")
    return None if fits else _EXPECTED[kind]


def type_name(value: Any) -> str:
    """How error messages name a TOML value's type (``integer``, ``string``, ``table``)."""
    return {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table", list: "array"}.get(
        type(value), type(value).__name__
    )


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut short: a 4,000-digit number or a huge string stays a readable line."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else f"{str(value)[:limit]}..."
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_range(opt: Option) -> str:
    """``between 1 and 64``, ``at least 0``, ``at most 10``, or ``a finite number`` (no range)."""
    low, high = opt.spec.low, opt.spec.high
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    if low is not None:
        return f"at least {low:g}"
    if high is not None:
        return f"at most {high:g}"
    return "a finite number"


def in_range(opt: Option, value: float) -> bool:
    """Whether a number lies inside the declared range of ``opt``; NaN and infinities never do."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    low, high = opt.spec.low, opt.spec.high
    return (low is None or value >= low) and (high is None or value <= high)


def check_value(opt: Option, value: Any) -> str | None:
    """What is wrong with ``value`` for ``opt`` (``"must be between 1 and 64, got 0."``), or ``None``.

    The one check of a value's type, finiteness and range: the CLI flag (:func:`parse_cli`, through
    ``edgecnn.cli._app.run_flag``), the TOML file (``edgecnn.run.config``), the ``[mqtt]`` table
    (``edgecnn.run.mqtt_settings``) and ``service install`` (which validates through the config checks) all
    call it, so a value one of them refuses none of the others accepts. ``None`` (not set) always fits.
    """
    if value is None:
        return None
    if opt.kind in (bool, int, float, str, Path):
        expected = type_mismatch(opt, value)
        if expected is not None:
            return f"must be {expected}, got {type_name(value)} {_shown(value)}."
    if opt.kind in (int, float) and not in_range(opt, value):
        return f"must be {describe_range(opt)}, got {_shown(value)}."
    return None


def parse_cli(opt: Option, text: str) -> Any:
    """A CLI flag's text as the declared number, checked by :func:`check_value`; ValueError with the problem.

    ``float("nan")`` and ``float("1e999")`` parse, so parsing alone is no check: the range (which NaN and
    infinities never satisfy) is what refuses them, the same way for a flag and for a file.
    """
    if opt.kind not in (int, float) or not isinstance(text, str):
        return text
    try:
        value: Any = opt.kind(text.strip())
    except (ValueError, OverflowError):  # "abc"; an integer of more than 4,300 digits
        expected = "an integer" if opt.kind is int else "a number"
        raise ValueError(f"must be {expected}, got {_shown(text)}.") from None
    problem = check_value(opt, value)
    if problem is not None:
        raise ValueError(problem)
    return value
