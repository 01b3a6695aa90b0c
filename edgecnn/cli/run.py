"""``edgecnn run [MODEL] [--camera N | --source ...] [--config FILE] ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgecnn.cli._app import app, model_option, run_flag
from edgecnn.run.options import run_option


def _help(key: str) -> str:
    return run_option(key).spec.help


def _mqtt_option(key: str, **extra: Any) -> Any:
    return run_flag(f"mqtt.{key}", rich_help_panel="MQTT output", **extra)


@app.command("run")
def run_command(
    model: Path | None = typer.Argument(None, metavar="MODEL", help=_help("model"), show_default=False),
    model_opt: Path | None = model_option(),
    camera: int | None = run_flag("camera"),
    source: str | None = run_flag("source"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with the same keys as these flags (flags override it)."
    ),
    device: str | None = run_flag("device"),
    threads: int | None = run_flag("threads"),
    labels: Path | None = run_flag("labels"),
    top_k: int | None = run_flag("top_k"),
    width: int | None = run_flag("width"),
    height: int | None = run_flag("height"),
    fps: float | None = run_flag("fps"),
    crop: str | None = run_flag("crop"),
    realtime: bool | None = run_flag("realtime"),
    loop: bool | None = run_flag("loop"),
    jsonl: str | None = run_flag("jsonl"),
    object_threshold: float | None = run_flag("object_threshold"),
    min_score: float | None = run_flag("min_score"),
    max_detections: int | None = run_flag("max_detections"),
    classes: str | None = run_flag("classes"),
    iou: float | None = run_flag("iou"),
    agnostic: bool | None = run_flag("agnostic"),
    every: int | None = run_flag("every"),
    on_change: bool | None = run_flag("on_change"),
    serve: str | None = run_flag("serve"),
    serve_token: str | None = run_flag(
        "serve_token", metavar="TOKEN", envvar="EDGECNN_SERVE_TOKEN", show_envvar=True
    ),
    serve_token_file: Path | None = run_flag("serve_token_file", metavar="FILE"),
    serve_token_all: bool | None = run_flag("serve_token_all"),
    serve_insecure: bool | None = run_flag("serve_insecure"),
    reconnect: bool | None = run_flag("reconnect"),
    max_frames: int | None = run_flag("max_frames"),
    duration: float | None = run_flag("duration"),
    stall_timeout: float | None = run_flag("stall_timeout"),
    quiet: bool | None = run_flag("quiet"),
    clips: str | None = run_flag("clips", metavar="DIR", rich_help_panel="Event clips"),
    clip_labels: str | None = run_flag("clip_labels", rich_help_panel="Event clips"),
    clip_pre: float | None = run_flag("clip_pre", rich_help_panel="Event clips"),
    clip_post: float | None = run_flag("clip_post", rich_help_panel="Event clips"),
    clip_max_length: float | None = run_flag("clip_max_length", rich_help_panel="Event clips"),
    clip_max_mb: float | None = run_flag("clip_max_mb", rich_help_panel="Event clips"),
    clip_max_age_days: float | None = run_flag("clip_max_age_days", rich_help_panel="Event clips"),
    clip_buffer_mb: float | None = run_flag("clip_buffer_mb", rich_help_panel="Event clips"),
    clip_min_free_mb: float | None = run_flag("clip_min_free_mb", rich_help_panel="Event clips"),
    clip_format: str | None = run_flag("clip_format", rich_help_panel="Event clips"),
    track: bool | None = run_flag("track", rich_help_panel="Tracking and events"),
    track_buffer: float | None = run_flag("track_buffer", rich_help_panel="Tracking and events"),
    track_min_hits: int | None = run_flag("track_min_hits", rich_help_panel="Tracking and events"),
    track_high_score: float | None = run_flag("track_high_score", rich_help_panel="Tracking and events"),
    track_low_score: float | None = run_flag("track_low_score", rich_help_panel="Tracking and events"),
    lines: list[str] | None = run_flag("lines", metavar="X1,Y1,X2,Y2", rich_help_panel="Tracking and events"),
    zones: list[str] | None = run_flag("zones", metavar="X1,Y1,...", rich_help_panel="Tracking and events"),
    events: Path | None = run_flag("events", metavar="FILE", rich_help_panel="Tracking and events"),
    snapshots: Path | None = run_flag("snapshots", metavar="DIR", rich_help_panel="Tracking and events"),
    snapshots_keep: int | None = run_flag("snapshots_keep", rich_help_panel="Tracking and events"),
    snapshots_max_mb: float | None = run_flag("snapshots_max_mb", rich_help_panel="Tracking and events"),
    mqtt: str | None = _mqtt_option("host", metavar="HOST[:PORT]"),
    mqtt_topic: str | None = _mqtt_option("topic"),
    mqtt_tls: bool | None = _mqtt_option("tls"),
    mqtt_ca: Path | None = _mqtt_option("ca"),
    mqtt_username: str | None = _mqtt_option("username"),
    mqtt_password_file: Path | None = _mqtt_option("password_file"),
    mqtt_client_id: str | None = _mqtt_option("client_id"),
    mqtt_qos: int | None = _mqtt_option("qos"),
    mqtt_queue_size: int | None = _mqtt_option("queue_size"),
    mqtt_discovery: bool | None = _mqtt_option("discovery"),
) -> None:
    """Classify frames or detect objects (the model's task) from a camera, video, stream or folder until
    stopped; print a summary on exit.

    Example: edgecnn run digits_int8.tflite --camera 0 --serve 127.0.0.1:8080 --jsonl results.jsonl

    Example: edgecnn run --config /etc/edgecnn/door.toml --duration 60

    Example: edgecnn run model.tflite --camera 0 --mqtt broker.lan --mqtt-topic edgecnn/door --on-change

    Example: edgecnn run detect.tflite --source rtsp://door.lan/s --clips clips --clip-labels person

    Example: edgecnn run --config cameras.toml  (one model shared by the cameras the file lists)

    Example: edgecnn run detector.tflite --source door.mp4 --line 0.5,0,0.5,1 --events events.jsonl

    SIGTERM or Ctrl-C finish the current frame, flush outputs and print the summary (exit 0).
    """
    flags = dict(locals())  # the parameters, by name: the declared keys (mqtt_KEY for [mqtt] keys)
    from edgecnn.run.footprint import configure_process

    configure_process()  # before any thread or numpy import: malloc arenas, OpenBLAS threads
    import threading

    from edgecnn.run.config import load_run_config, merge_cli, validate_run_options
    from edgecnn.run.options import RunOptions
    from edgecnn.run.pipeline import run
    from edgecnn.run.signals import stop_on_signals

    if source is not None:
        # A source named on the command line that cannot be opened exits 6 (SourceError), as when it fails
        # later; `service install` validates the same option as a usage error instead.
        from edgecnn.devices.sources.spec import parse_source
        from edgecnn.errors import SourceError

        try:
            parse_source(source)
        except SourceError as exc:
            raise SourceError(f"--source: {exc}") from None
    base = load_run_config(config) if config is not None else RunOptions()
    options = merge_cli(base, _cli_values(flags, model=_one_model(model, model_opt)))
    validate_run_options(options)
    stop = threading.Event()
    with stop_on_signals(stop):
        if options.cameras:
            from edgecnn.run.cameras import run_cameras

            run_cameras(options, stop_event=stop)  # each camera's summary is printed by its human output
        else:
            run(options, stop_event=stop)  # the summary is printed by the human-readable output


def _cli_values(flags: dict[str, Any], *, model: Path | None) -> dict[str, Any]:
    """The parameters of :func:`run_command` as merge_cli's dict: every declared run option (None: not
    given), ``classes`` split at commas, and the ``--mqtt*`` flags as the ``mqtt`` table."""
    from edgecnn.run.options import MqttOptions, RunOptions, declared

    values = {key: flags[key] for key in declared(RunOptions) if key in flags}
    values["model"] = model
    for key in ("lines", "zones"):  # repeatable flags: typer gives () when none is given
        values[key] = list(flags[key] or ()) or None
    for key in ("classes", "clip_labels"):
        listed = flags[key]
        values[key] = None if listed is None else [c.strip() for c in listed.split(",") if c.strip()]
    mqtt: dict[str, Any] = {}
    for key in declared(MqttOptions):
        if key == "port":  # part of --mqtt HOST[:PORT]
            continue
        value = flags["mqtt" if key == "host" else f"mqtt_{key}"]
        mqtt[key] = str(value) if isinstance(value, Path) else value
    values["mqtt"] = mqtt
    return values


def _one_model(positional: Path | None, option: Path | None) -> Path | None:
    """MODEL or -m/--model (either may also come from --config, so neither is required here)."""
    if positional is not None and option is not None:
        from edgecnn.errors import UsageError

        raise UsageError("Give the model once: as MODEL or as -m/--model, not both.")
    return positional if positional is not None else option
