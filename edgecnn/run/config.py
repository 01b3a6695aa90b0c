"""``edgecnn run --config FILE.toml``: the same keys as the CLI flags, checked before anything starts.

A config file is what a systemd service runs from (``/etc/edgecnn/NAME.toml``), so every mistake must be
caught at install time with one line naming the file and the key. This module imports no OpenCV, no
TFLite runtime and no camera code: :func:`load_run_config` and :func:`validate_run_options` are safe to
call from an installer on a machine where the camera is busy.

Example::

    model = "/opt/edgecnn/digits_int8.tflite"
    camera = 0                  # or: source = "rtsp://cam.local/stream" / "picamera2" / "demo"
    device = "auto"
    serve = "127.0.0.1:8080"
    jsonl = "/var/lib/edgecnn/results.jsonl"
    reconnect = true
    top_k = 3

    [mqtt]                      # results over MQTT (edgecnn.run.mqtt); same keys as the --mqtt* flags
    host = "broker.lan"         # or "broker.lan:1883"; then port, topic, tls, ca, username,
    topic = "edgecnn/door"      # password_file, client_id, qos, queue_size
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, EdgecnnError, UsageError
from edgecnn.run.options import (
    CONFIG_KEYS,
    MqttOptions,
    RunOptions,
    check_value,
    declared,
    run_option,
    type_mismatch,
    type_name,
)
from edgecnn.safeio import FileKind, file_problem, loads_toml, read_text

_PATH_KEYS = tuple(k for k, o in declared(RunOptions).items() if o.kind is Path)
CROP_CHOICES = ("center", "none")
_MQTT_PATH_KEYS = ("ca", "password_file")


def flag(key: str) -> str:
    """The CLI flag of a config key; ``mqtt.topic`` -> ``--mqtt-topic``, ``mqtt.host``/``mqtt.port`` -> ``--mqtt``."""
    return run_option(key).flag


def _check_type(key: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}{key} must be {expected}, got {type_name(value)} {value!r}.")

    if key == "mqtt":
        if not isinstance(value, dict):
            raise bad("a table ([mqtt])")
        mqtt_keys = declared(MqttOptions)
        for sub, sub_value in value.items():
            if sub not in mqtt_keys:
                close = difflib.get_close_matches(sub, mqtt_keys, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"{where}unknown key {sub!r} in [mqtt]{hint}; known keys: {', '.join(mqtt_keys)}."
                )
            if type_mismatch(mqtt_keys[sub], sub_value) is not None:
                raise ConfigError(f"{where}mqtt.{sub} {check_value(mqtt_keys[sub], sub_value)}")
        return value
    if key == "cameras":  # [[cameras]]: each table's keys are checked like the file's own
        from edgecnn.run.cameras import check_camera_tables

        return check_camera_tables(value, where, lambda sub, v, w: _check_type(sub, v, w))
    if key in ("classes", "clip_labels"):  # label lists: "person,car" or ["person", "car"]
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise bad('a list of label names (["person", "car"]) or a comma-separated string')
        return [i.strip() for i in items if i.strip()] or None
    if key in ("lines", "zones"):  # [[lines]]/[[zones]] tables or strings of points; checked in full below
        if not isinstance(value, list):
            raise bad(f"an array of tables ([[{key}]]) or of strings of points")
        return value
    if key == "source" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # source = 0 means camera 0
    opt = declared(RunOptions)[key]
    if type_mismatch(opt, value) is not None:
        raise ConfigError(f"{where}{key} {check_value(opt, value)}")
    # Ranges (and NaN, inf) are checked by validate_run_options with check_value, after CLI overrides.
    return _as_float(value) if opt.kind is float else value


def _as_float(value: float) -> float:
    """A TOML number as a float; an integer too large for one is infinite (and out of every range)."""
    try:
        return float(value)
    except OverflowError:  # fps = 1000...0 (400 digits)
        return math.inf if value > 0 else -math.inf


def load_run_config(path: str | os.PathLike[str]) -> RunOptions:
    """Read a TOML run configuration into :class:`RunOptions`; raise ConfigError (one line) on any problem.

    Checks the syntax, unknown keys (with a "did you mean") and value types. Relative paths (model,
    labels, jsonl, a source file or folder) are taken relative to the file's folder, so a config file and
    its model can move together. It does not check that the model exists or that the values make sense
    together: call :func:`validate_run_options` on the result (after applying any CLI overrides). No side
    effects: it opens no camera, model or socket.
    """
    try:
        import tomllib  # noqa: F401
    except ImportError:  # Python 3.10
        raise ConfigError(
            f"Reading {path} needs Python 3.11 or newer (tomllib); pass the options as flags instead."
        ) from None
    file = Path(path)
    where = f"{file}: "
    data = loads_toml(read_text(file, FileKind.CONFIG), file)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}unknown key {key!r}{hint}; known keys: {', '.join(CONFIG_KEYS)}.")
        values[key] = _check_type(key, value, where)
    base = file.resolve().parent
    for key in (*_PATH_KEYS, "jsonl", "source", "clips"):
        value = values.get(key)
        if not isinstance(value, str) or not value or (key == "jsonl" and value == "-"):
            continue
        if key == "source" and not _looks_like_local_path(value):
            continue
        expanded = Path(os.path.expanduser(value))
        values[key] = str(expanded if expanded.is_absolute() else base / expanded)
    for table in values.get("cameras") or ():  # a camera's local video file or folder, as source above
        value = table.get("source")
        if isinstance(value, str) and value and _looks_like_local_path(value):
            expanded = Path(os.path.expanduser(value))
            table["source"] = str(expanded if expanded.is_absolute() else base / expanded)
    for key in _PATH_KEYS:
        if key in values:
            values[key] = Path(values[key])
    if values.get("mqtt"):
        mqtt = dict(values["mqtt"])
        for key in _MQTT_PATH_KEYS:
            if mqtt.get(key):
                expanded = Path(os.path.expanduser(mqtt[key]))
                mqtt[key] = str(expanded if expanded.is_absolute() else base / expanded)
        values["mqtt"] = mqtt
    return RunOptions(**values, config_path=file)


def _looks_like_local_path(value: str) -> bool:
    from edgecnn.devices.sources.spec import DEMO_NAMES

    lowered = value.lower()
    return not (
        "://" in value
        or (value.isascii() and value.isdigit())
        or lowered in DEMO_NAMES
        or lowered.startswith(("picamera2", "synthetic:"))
    )


def merge_cli(options: RunOptions, cli: dict[str, Any]) -> RunOptions:
    """Apply CLI flags (``None`` = not given) over ``options``; ``--camera``/``--source`` replace both keys.

    ``mqtt`` (a dict of ``--mqtt*`` flags) is merged key by key into the file's ``[mqtt]`` table; a broker
    given with ``--mqtt`` replaces the file's host and port.
    """
    given = {key: value for key, value in cli.items() if value is not None}
    if "camera" in given or "source" in given:
        given.setdefault("camera", None)
        given.setdefault("source", None)
    from_cli = {k for k in given if cli.get(k) is not None}
    mqtt_cli = {k: v for k, v in (given.pop("mqtt", None) or {}).items() if v is not None}
    if mqtt_cli:
        merged = dict(options.mqtt or {})
        if "host" in mqtt_cli:
            merged.pop("port", None)
        given["mqtt"] = {**merged, **mqtt_cli}
        from_cli |= {f"mqtt.{k}" for k in mqtt_cli}
    else:
        from_cli.discard("mqtt")
    return dataclasses.replace(options, **given, from_cli=frozenset(from_cli))


def validate_run_options(
    opts: RunOptions, *, check_model: bool = True, check_source: bool = True
) -> RunOptions:
    """Check that ``opts`` can start a run; raise ConfigError (or UsageError for a CLI flag) in one line.

    The message names the key (``top_k``) and, for a value from a file, the file; for a value given on
    the command line it names the flag (``--top-k``). Checks: a model is given and is a file; the
    source parses (a file or folder must exist; a camera is not opened); device, serve address, crop,
    ranges of numbers; the labels file exists; the folder of a JSONL file exists; the ``[mqtt]``
    table (broker address, topic, qos, CA and password files exist). Returns ``opts``
    unchanged so calls can be chained. Safe to call from an installer: no side effects.
    ``check_model``/``check_source`` off skip the model and source checks (a caller that injects an
    opened model or its own frame source).
    """
    from edgecnn.devices.backends import parse_device
    from edgecnn.devices.sources.spec import parse_source

    def fail(key: str, problem: str) -> EdgecnnError:
        return option_error(opts, key, problem)

    if check_model:
        _check_model(opts, fail)
    for key, opt in declared(RunOptions).items():
        if opt.kind in (int, float):  # the one check of type, finiteness and range (the CLI's too)
            problem = check_value(opt, getattr(opts, key))
            if problem is not None:
                raise fail(key, problem)
    if opts.track_low_score > opts.track_high_score:  # the second stage's scores lie under the first's
        key = "track_low_score"
        if "track_high_score" in opts.from_cli and key not in opts.from_cli:
            key = "track_high_score"  # the value just given is the one to change
        raise fail(
            key,
            f"--track-low-score ({opts.track_low_score:g}) must be at most --track-high-score "
            f"({opts.track_high_score:g}): lower the first or raise the second.",
        )
    if opts.labels is not None:
        _check_regular(opts.labels, FileKind.LABELS, "labels", fail)
    if check_source:
        try:
            parse_source(opts.source, camera=opts.camera)
        except EdgecnnError as exc:
            key = "camera" if opts.source is None else "source"
            raise fail(key, str(exc)) from None
    try:
        parse_device(opts.device)
    except EdgecnnError as exc:
        raise fail("device", str(exc)) from None
    if opts.serve is not None:
        try:
            serve_access(opts)
        except EdgecnnError as exc:
            raise fail("serve", str(exc).replace("Bad --serve address", "bad address")) from None
    if opts.crop is not None and opts.crop.lower() not in CROP_CHOICES:
        raise fail("crop", f"use 'center' (or 'none'), got {opts.crop!r}.")
    if opts.jsonl is not None and opts.jsonl != "-":
        parent = Path(opts.jsonl).expanduser().parent
        if not parent.is_dir():
            raise fail("jsonl", f"folder {parent} does not exist: create it or pass --jsonl - for stdout.")
    if not opts.track:
        for key in ("lines", "zones", "events", "snapshots"):
            if getattr(opts, key):
                raise fail(key, "counting and events need tracking: drop --no-track (track = false).")
    if opts.lines or opts.zones:
        from edgecnn.track.spec import parse_all

        parse_all(opts.lines, opts.zones, fail)
    if opts.events is not None:
        parent = Path(opts.events).expanduser().parent
        if not parent.is_dir():
            raise fail("events", f"folder {parent} does not exist: create it or choose another file.")
    if opts.mqtt:  # an empty table is MQTT off: the settings module stays unimported then
        from edgecnn.run.mqtt_settings import mqtt_settings  # no sink, no paho: only checks

        mqtt_settings(opts, fail)
    if opts.clips is not None or opts.clip_format != "avi":
        _check_clips(opts, fail)
    if opts.cameras:
        from edgecnn.run.cameras import validate_cameras

        validate_cameras(opts, fail)
    return opts


def _check_clips(opts: RunOptions, fail: Callable[[str, str], EdgecnnError]) -> None:
    from edgecnn.run.clips import FORMATS

    if opts.clip_format not in FORMATS:
        raise fail("clip_format", f"use {' or '.join(FORMATS)}, got {opts.clip_format!r}.")
    if opts.clips is not None:
        folder = Path(opts.clips).expanduser()
        if folder.exists() and not folder.is_dir():
            raise fail("clips", f"{folder} is not a folder: name a folder for the clips (it is created).")
        if not folder.exists() and not folder.parent.is_dir():
            raise fail("clips", f"folder {folder.parent} does not exist: create it first.")


def option_error(opts: RunOptions, key: str, problem: str) -> EdgecnnError:
    """The one-line error for a bad value of ``key`` (``top_k``, ``mqtt.topic``): UsageError naming the flag
    when it came from the command line, else ConfigError naming the file (if any) and the key."""
    if key in opts.from_cli:
        return UsageError(f"{flag(key)}: {problem}")
    where = f"{opts.config_path}: " if opts.config_path else ""
    return ConfigError(f"{where}{key} ({flag(key)}): {problem}")


def _check_model(opts: RunOptions, fail: Callable[[str, str], EdgecnnError]) -> None:
    if opts.model is None or str(opts.model) == "":
        if opts.config_path:
            raise ConfigError(
                f'{opts.config_path}: no model: set model = "/path/to/model.tflite" in the file or pass MODEL.'
            )
        raise UsageError("No model: pass MODEL (a .tflite file) or --config FILE with a model key.")
    _check_regular(opts.model, FileKind.MODEL, "model", fail)


def _check_regular(
    path: str | os.PathLike[str], kind: FileKind, key: str, fail: Callable[[str, str], EdgecnnError]
) -> None:
    """A regular file within the kind's size cap (a FIFO or a device is refused by name, never opened)."""
    problem = file_problem(path, kind)
    if problem is not None:
        raise fail(key, f"{kind.what} {problem}." if problem.endswith("not found") else f"{problem}.")


def serve_access(opts: RunOptions) -> Any:
    """The :class:`~edgecnn.run.access.Access` rule for ``opts.serve`` (a UsageError without a needed token)."""
    from edgecnn.run.access import resolve_access

    assert opts.serve is not None
    host, _port = parse_serve(opts.serve)
    return resolve_access(
        host,
        token=opts.serve_token,
        token_file=opts.serve_token_file,
        token_all=opts.serve_token_all,
        insecure=opts.serve_insecure,
        serve=opts.serve,
    )


def parse_serve(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[::1]:PORT``, ``:PORT`` or ``PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    from edgecnn.run.address import BracketError, split_address

    bracket = UsageError(f"Bad --serve address {value!r}: use [IPV6]:PORT, e.g. [::1]:8080.")
    try:
        host, port_text = split_address(value, lone="port")
    except BracketError:
        raise bracket from None
    if port_text is None and value.strip().startswith("["):  # [::1] without a port
        raise bracket
    host = host or "127.0.0.1"
    if port_text is None or not _digits(port_text) or not 0 <= int(port_text) <= 65535:
        raise UsageError(
            f"Bad --serve address {value!r}: use HOST:PORT with a port 0-65535, e.g. 127.0.0.1:8080."
        )
    return host, int(port_text)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true for '²', which ``int()`` refuses."""
    return text.isascii() and text.isdigit()
