"""``edgecnn run [MODEL] [--camera N | --source ...] [--config FILE] ...``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, model_option


@app.command("run")
def run_command(
    model: Path | None = typer.Argument(
        None,
        metavar="MODEL",
        help="Path to a .tflite model (may come from --config instead).",
        show_default=False,
    ),
    model_opt: Path | None = model_option(),
    camera: int | None = typer.Option(
        None, "--camera", min=0, max=1000, help="Camera index (V4L2 /dev/videoN on Linux). Default: 0."
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="Video file, image folder, stream URL (rtsp://, http:// MJPEG), picamera2[:N], or demo.",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with the same keys as these flags (flags override it)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu (default), edgetpu (or edgetpu:usb, edgetpu:pci:N), or auto."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=64, help="CPU threads for the interpreter."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels file (one per line): overrides embedded labels."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", "-k", min=1, max=1000, help="Classes per result (default 1)."
    ),
    width: int | None = typer.Option(
        None, "--width", min=1, max=16384, help="Frame width to request from the camera."
    ),
    height: int | None = typer.Option(None, "--height", min=1, max=16384, help="Frame height to request."),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=0.001,
        max=1000,
        help="Frame rate to request (camera) or to pace at (--realtime, demo).",
    ),
    crop: str | None = typer.Option(
        None, "--crop", help="'center' to crop to the model's aspect before resizing."
    ),
    realtime: bool | None = typer.Option(
        None,
        "--realtime/--no-realtime",
        help="Play files at their frame rate, dropping frames like a camera.",
    ),
    loop: bool | None = typer.Option(
        None, "--loop/--no-loop", help="Start a video file or image folder again at its end, until stopped."
    ),
    jsonl: str | None = typer.Option(
        None, "--jsonl", help="Write one JSON object per result to FILE (appended), or '-' for stdout."
    ),
    min_score: float | None = typer.Option(
        None,
        "--min-score",
        min=0.0,
        max=1.0,
        help="Only output results whose score (top class, best object) is at least this; detectors also "
        "drop objects below it (default 0.4 for them).",
    ),
    max_detections: int | None = typer.Option(
        None,
        "--max-detections",
        min=1,
        max=10000,
        help="Detectors: at most this many objects per frame (100).",
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="Detectors: keep only these labels, comma-separated (person,car)."
    ),
    every: int | None = typer.Option(None, "--every", min=1, help="Only output every Nth classified frame."),
    on_change: bool | None = typer.Option(
        None,
        "--on-change/--no-on-change",
        help="Only output when the top label (detectors: the set of labels present) changes.",
    ),
    serve: str | None = typer.Option(
        None,
        "--serve",
        help="HOST:PORT for /healthz /latest /metrics /stream.mjpg (PORT alone binds 127.0.0.1).",
    ),
    serve_token: str | None = typer.Option(
        None,
        "--serve-token",
        metavar="TOKEN",
        envvar="EDGECNN_SERVE_TOKEN",
        show_envvar=True,
        help="Token that /, /latest and /stream.mjpg require (Bearer header, or open /?token=TOKEN once). "
        "Needed to --serve anything but loopback.",
    ),
    serve_token_file: Path | None = typer.Option(
        None,
        "--serve-token-file",
        metavar="FILE",
        help="Read the serve token from the first line of FILE (what `edgecnn service install` writes).",
    ),
    serve_token_all: bool | None = typer.Option(
        None, "--serve-token-all", help="Require the token for /healthz and /metrics too."
    ),
    serve_insecure: bool | None = typer.Option(
        None, "--serve-insecure", help="Allow --serve on a non-loopback address without a token."
    ),
    reconnect: bool | None = typer.Option(
        None,
        "--reconnect/--no-reconnect",
        help="Retry a source that fails or stops (capped backoff) instead of exiting.",
    ),
    max_frames: int | None = typer.Option(
        None, "--max-frames", min=1, help="Stop after N classified frames."
    ),
    duration: float | None = typer.Option(None, "--duration", min=0.001, help="Stop after S seconds."),
    stall_timeout: float | None = typer.Option(
        None,
        "--stall-timeout",
        min=0.05,
        max=3600,
        help="Seconds without a frame before the source counts as stalled (default 5).",
    ),
    quiet: bool | None = typer.Option(
        None, "--quiet/--no-quiet", "-q", help="No per-result lines; summary only."
    ),
    mqtt: str | None = typer.Option(
        None,
        "--mqtt",
        rich_help_panel="MQTT output",
        metavar="HOST[:PORT]",
        help="Publish results to this MQTT broker (port 1883, 8883 with TLS); needs pip install 'edgecnn\\[mqtt]'.",
    ),
    mqtt_topic: str | None = typer.Option(
        None,
        "--mqtt-topic",
        rich_help_panel="MQTT output",
        help="Topic prefix: PREFIX/result, PREFIX/availability, PREFIX/stats. Default: edgecnn/HOSTNAME "
        "(edgecnn/HOSTNAME/NAME with --config NAME.toml).",
    ),
    mqtt_tls: bool | None = typer.Option(
        None,
        "--mqtt-tls/--no-mqtt-tls",
        rich_help_panel="MQTT output",
        help="TLS to the broker (the system's CAs unless --mqtt-ca).",
    ),
    mqtt_ca: Path | None = typer.Option(
        None,
        "--mqtt-ca",
        rich_help_panel="MQTT output",
        help="CA certificate (PEM) that signed the broker's certificate; implies --mqtt-tls.",
    ),
    mqtt_username: str | None = typer.Option(
        None, "--mqtt-username", rich_help_panel="MQTT output", help="Username for the broker."
    ),
    mqtt_password_file: Path | None = typer.Option(
        None,
        "--mqtt-password-file",
        rich_help_panel="MQTT output",
        help="File whose first line is the broker password (keeps it out of ps and shell history).",
    ),
    mqtt_client_id: str | None = typer.Option(
        None,
        "--mqtt-client-id",
        rich_help_panel="MQTT output",
        help="MQTT client id (default edgecnn-HOSTNAME[-NAME]-PID).",
    ),
    mqtt_qos: int | None = typer.Option(
        None,
        "--mqtt-qos",
        rich_help_panel="MQTT output",
        min=0,
        max=1,
        help="1: at least once (default); 0: at most once.",
    ),
    mqtt_queue_size: int | None = typer.Option(
        None,
        "--mqtt-queue-size",
        rich_help_panel="MQTT output",
        min=1,
        max=1_000_000,
        help="Results kept while the broker is unreachable (default 1000); older ones are dropped and counted.",
    ),
) -> None:
    """Classify frames or detect objects (the model's task) from a camera, video, stream or folder until
    stopped; print a summary on exit.

    Example: edgecnn run digits_int8.tflite --camera 0 --serve 127.0.0.1:8080 --jsonl results.jsonl

    Example: edgecnn run --config /etc/edgecnn/door.toml --duration 60

    Example: edgecnn run model.tflite --camera 0 --mqtt broker.lan --mqtt-topic edgecnn/door --on-change

    SIGTERM or Ctrl-C finish the current frame, flush outputs and print the summary (exit 0).
    """
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
    options = merge_cli(
        base,
        {
            "model": _one_model(model, model_opt),
            "camera": camera,
            "source": source,
            "device": device,
            "threads": threads,
            "labels": labels,
            "top_k": top_k,
            "width": width,
            "height": height,
            "fps": fps,
            "crop": crop,
            "realtime": realtime,
            "loop": loop,
            "jsonl": jsonl,
            "min_score": min_score,
            "max_detections": max_detections,
            "classes": None if classes is None else [c.strip() for c in classes.split(",") if c.strip()],
            "every": every,
            "on_change": on_change,
            "serve": serve,
            "serve_token": serve_token,
            "serve_token_file": serve_token_file,
            "serve_token_all": serve_token_all,
            "serve_insecure": serve_insecure,
            "reconnect": reconnect,
            "max_frames": max_frames,
            "duration": duration,
            "stall_timeout": stall_timeout,
            "quiet": quiet,
            "mqtt": {
                "host": mqtt,
                "topic": mqtt_topic,
                "tls": mqtt_tls,
                "ca": None if mqtt_ca is None else str(mqtt_ca),
                "username": mqtt_username,
                "password_file": None if mqtt_password_file is None else str(mqtt_password_file),
                "client_id": mqtt_client_id,
                "qos": mqtt_qos,
                "queue_size": mqtt_queue_size,
            },
        },
    )
    validate_run_options(options)
    stop = threading.Event()
    with stop_on_signals(stop):
        run(options, stop_event=stop)  # the summary is printed by the human-readable output


def _one_model(positional: Path | None, option: Path | None) -> Path | None:
    """MODEL or -m/--model (either may also come from --config, so neither is required here)."""
    if positional is not None and option is not None:
        from edgecnn.errors import UsageError

        raise UsageError("Give the model once: as MODEL or as -m/--model, not both.")
    return positional if positional is not None else option
