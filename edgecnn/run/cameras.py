"""Several cameras in one ``edgecnn run``: ``[[cameras]]`` tables, one shared model, one HTTP endpoint.

A config file lists the cameras; the rest of the file holds what they share (model, device, outputs)::

    model = "/opt/edgecnn/detect_edgetpu.tflite"
    device = "edgetpu"
    serve = "127.0.0.1:8080"
    jsonl = "/var/lib/edgecnn/results.jsonl"
    reconnect = true
    clips = "/var/lib/edgecnn/clips"
    clip_labels = ["person"]

    [[cameras]]
    name = "door"
    source = "rtsp://door.lan/stream"
    min_score = 0.5

    [[cameras]]
    name = "yard"
    source = "rtsp://yard.lan/stream"
    fps = 5
    classes = ["person", "car"]

The model is opened once and shared through :class:`~edgecnn.run.scheduler.InferenceScheduler`; each
camera then runs the ordinary one-camera :class:`~edgecnn.run.pipeline.Pipeline` (its own source thread,
reconnect, stall detection, human lines, clips) in a thread of its own, with a
:class:`~edgecnn.run.scheduler.SharedModel`. So a camera that dies reconnects (or, without ``reconnect``,
ends) alone while the others go on. Every output names its camera: JSONL records carry ``camera``, MQTT
topics are ``PREFIX/CAMERA/...``, ``/metrics`` series have a ``camera`` label, and the HTTP endpoint has
a grid page at ``/`` and ``/camera/NAME/`` (``stream.mjpg``, ``latest``, ``healthz``) per camera.
``/healthz`` is 200 only while every camera delivers, and names the cameras that do not.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.run.options import RunOptions
from edgecnn.tasks.options import TASK_OPTIONS

log = logging.getLogger("edgecnn.run")

# What a [[cameras]] table may set; everything else (model, device, outputs) is the run's. The task options
# (object_threshold, min_score, classes, ...) are every one edgecnn.tasks.options declares: each camera
# gets its own decoder (edgecnn.run.scheduler.SharedModel) and output filter.
CAMERA_KEYS = (
    "name",
    "source",
    "camera",
    "fps",
    "width",
    "height",
    "realtime",
    "loop",
    *TASK_OPTIONS,
    "every",
    "on_change",
    "stall_timeout",
    "clip_labels",
    "track",
    "track_buffer",
    "track_min_hits",
    "track_high_score",
    "track_low_score",
    "lines",  # the camera's own counting lines and zones ([[cameras.lines]]), as [[lines]]/[[zones]]
    "zones",
    "max_frames",
    "duration",
)
SWITCH_INTERVAL_S = 0.001
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_camera_tables(
    value: Any, where: str, check: Callable[[str, Any, str], Any]
) -> list[dict[str, Any]]:
    """The ``cameras`` key of a config file: an array of tables, each with a unique ``name`` and keys of
    :data:`CAMERA_KEYS`, typed by ``check`` (the file's own key check)."""
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        raise ConfigError(
            f'{where}cameras must be [[cameras]] tables, each with a name and a source (name = "door").'
        )
    tables: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, table in enumerate(value):
        name = table.get("name")
        here = f"{where}cameras[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{here}: name must be 1-64 letters, digits, '_' or '-' (it is a topic level and a URL "
                f"part), got {name!r}."
            )
        if name in names:
            raise ConfigError(f"{here}: the name {name!r} is used twice: give each camera its own.")
        names.add(name)
        checked: dict[str, Any] = {"name": name}
        for key, sub in table.items():
            if key == "name":
                continue
            if key not in CAMERA_KEYS:
                raise ConfigError(
                    f"{here}: {key!r} cannot be set per camera; per-camera keys: {', '.join(CAMERA_KEYS)} "
                    "(the others are the run's: put them at the top of the file)."
                )
            checked[key] = check(key, sub, f"{here}: ")
        tables.append(checked)
    return tables


def camera_options(opts: RunOptions) -> list[tuple[str, RunOptions]]:
    """Each camera's name and options (the run's, with its table's keys over them). No [[cameras]]: the
    run's one camera, named ``""`` (its outputs stay as a one-camera run's)."""
    if not opts.cameras:
        return [("", opts)]
    found = []
    for table in opts.cameras:
        values = {k: v for k, v in table.items() if k != "name"}
        if "source" in values or "camera" in values:
            values.setdefault("source", None)
            values.setdefault("camera", None)
        found.append((table["name"], dataclasses.replace(opts, **values, cameras=None)))
    return found


def validate_cameras(opts: RunOptions, fail: Callable[[str, str], EdgecnnError]) -> None:
    """Each camera's options through the run's checks; an error names the file and the camera."""
    from edgecnn.run.config import validate_run_options

    if opts.source is not None or opts.camera is not None:
        key = "source" if opts.source is not None else "camera"
        raise fail(key, "with [[cameras]] tables, give each camera its source in its own table.")
    where = f"{opts.config_path}: " if opts.config_path else ""
    for name, cam in camera_options(opts):
        if cam.source is None and cam.camera is None:
            raise ConfigError(
                f'{where}camera {name!r} has no source: add source = "rtsp://..." or camera = 0.'
            )
        try:
            validate_run_options(
                dataclasses.replace(cam, config_path=None, from_cli=frozenset()), check_model=False
            )
        except EdgecnnError as exc:
            raise ConfigError(f"{where}camera {name!r}: {exc}") from None


# -- HTTP ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """A request for one camera: its live state and the path under ``/camera/NAME``."""

    live: Any
    path: str


class CameraDirectory:
    """The HTTP view of several cameras (``edgecnn.run.server`` asks :meth:`route` first)."""

    def __init__(self, lives: Mapping[str, Any]) -> None:
        self.lives = dict(lives)
        self.names = list(self.lives)

    def health(self) -> tuple[bool, dict[str, Any]]:
        cameras = {}
        down = []
        for name, live in self.lives.items():
            ok, body = live.health()
            cameras[name] = body
            if not ok:
                down.append(name)
        status = "ok" if not down else "degraded"
        body = {"status": status, "down": down, "cameras": cameras}
        if down:
            body["detail"] = "not delivering: " + ", ".join(f"{n} ({cameras[n]['status']})" for n in down)
        return not down, body

    def route(self, path: str) -> Routed | tuple[int, str, bytes] | None:
        """A finished answer (status, content type, body), a camera's request, or None: no such camera."""
        if path in ("/", "/index.html"):
            return HTTPStatus.OK, "text/html; charset=utf-8", self.grid_page().encode()
        if path == "/healthz":
            ok, body = self.health()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            return status, "application/json", (json.dumps(body) + "\n").encode()
        if path == "/cameras":
            return HTTPStatus.OK, "application/json", (json.dumps({"cameras": self.names}) + "\n").encode()
        if path == "/latest":  # every camera's newest result, by name (null: none yet)
            latest = {name: live.latest() for name, live in self.lives.items()}
            if all(v is None for v in latest.values()):
                status, body = HTTPStatus.SERVICE_UNAVAILABLE, {"status": "no result yet", "cameras": latest}
            else:
                status, body = HTTPStatus.OK, {"cameras": latest}
            return status, "application/json", (json.dumps(body) + "\n").encode()
        first = self.lives[self.names[0]]
        if path == "/events":  # every camera's newest events, by time (each names its camera)
            return Routed(self, path)
        if not path.startswith("/camera/"):
            return Routed(first, path)  # /stream.mjpg of the first camera; /metrics of all
        name, _, rest = path[len("/camera/") :].partition("/")
        if name not in self.lives:
            return None
        if not rest and not path.endswith("/"):  # /camera/door -> the page, whose links are relative
            return HTTPStatus.OK, "text/html; charset=utf-8", _redirect_page(f"/camera/{name}/").encode()
        return Routed(self.lives[name], "/" + rest)

    def events(self, limit: int) -> list[dict[str, Any]]:
        """``/events``: the newest ``limit`` events of all cameras, oldest first."""
        merged = [e for live in self.lives.values() for e in live.events(limit)]
        merged.sort(key=lambda e: e.get("timestamp", 0.0))
        return merged[-limit:] if limit > 0 else []

    def grid_page(self) -> str:
        tiles = "\n".join(
            f'<figure><a href="camera/{html.escape(n)}/"><img src="camera/{html.escape(n)}/stream.mjpg" '
            f'alt="{html.escape(n)}"></a><figcaption><a href="camera/{html.escape(n)}/">{html.escape(n)}</a> '
            f"&middot; {html.escape(self.lives[n].source)}</figcaption></figure>"
            for n in self.names
        )
        return GRID_PAGE.replace("__TILES__", tiles)


def _redirect_page(target: str) -> str:
    return f'<!doctype html><meta http-equiv="refresh" content="0; url={html.escape(target)}">'


GRID_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgecnn cameras</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1rem;background:#111;color:#eee}
a{color:#9cf}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:1rem}
figure{margin:0}img{width:100%;background:#222}
</style></head><body>
<h1>edgecnn cameras</h1>
<main>
__TILES__
</main>
<p><a href="healthz">/healthz</a> &middot; <a href="metrics">/metrics</a> &middot; <a href="clips">/clips</a></p>
</body></html>
"""


class CameraMetrics:
    """``/metrics`` of every camera: each camera's own registry, every series labelled ``camera``."""

    def __init__(self, per_camera: Mapping[str, Any]) -> None:
        self.per_camera = dict(per_camera)

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import Metric

        families: dict[str, Metric] = {}
        for camera, metrics in self.per_camera.items():
            for family in metrics.registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    merged.samples.append(sample._replace(labels={"camera": camera, **sample.labels}))

        class _All:
            def collect(self) -> Any:
                return iter(families.values())

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_All())  # type: ignore[arg-type]
        return bytes(generate_latest(registry))


# -- the run -------------------------------------------------------------------------------------------


class _SharedSink:
    """One output (the JSONL file) written by every camera's thread: one lock, closed by the last camera."""

    def __init__(self, sink: Any, users: int) -> None:
        self.sink, self.users = sink, users
        self._lock = threading.Lock()

    def emit(self, result: Any) -> None:
        with self._lock:
            self.sink.emit(result)

    def close(self, summary: Any) -> None:
        with self._lock:
            self.users -= 1
            if self.users == 0:
                self.sink.close(summary)


class _SharedEvents:
    """The run's events file (``events``), written by every camera's track stage under one lock; each
    event names its camera."""

    def __init__(self, options: RunOptions, stop: threading.Event) -> None:
        from edgecnn.track.outputs import EventsFile

        self.file = EventsFile(Path(options.events), stop)  # type: ignore[arg-type]  # checked: not None
        self._lock = threading.Lock()

    def track_step(self, step: Any, stage: Any) -> None:
        with self._lock:
            self.file.track_step(step, stage)

    def close(self) -> None:
        with self._lock:
            self.file.close(None)


class CappedSource:
    """A live source read at most ``fps`` times a second (a camera's ``fps`` cap): frames that arrive
    sooner are skipped and counted as dropped. Most RTSP/HTTP cameras cannot be told a frame rate, and a
    camera that needs 2 inferences a second should not take 15 turns of the shared model."""

    def __init__(self, source: Any, fps: float) -> None:
        self._source, self._interval = source, 1.0 / fps
        self.name, self.live = source.name, source.live
        self._next = 0.0
        self._skipped = 0

    @property
    def dropped(self) -> int:
        return int(getattr(self._source, "dropped", 0)) + self._skipped

    def open(self) -> None:
        self._source.open()

    def close(self) -> None:
        self._source.close()

    def read(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            frame = self._source.read(max(0.0, deadline - time.monotonic()))
            if frame is None:
                return None
            now = time.monotonic()
            if now >= self._next:
                # On schedule, keep the average rate; after a gap (a stall), start again from now.
                base = self._next if now - self._next < self._interval else now
                self._next = base + self._interval
                return frame
            self._skipped += 1
            if now >= deadline:
                return None


def _camera_source(cam: RunOptions) -> Any:
    """The camera's frame source (not opened: its loop opens it), capped at its ``fps`` when live."""
    from edgecnn.devices.sources import open_source, parse_source

    spec = parse_source(cam.source, camera=cam.camera)
    source = open_source(
        spec, width=cam.width, height=cam.height, fps=cam.fps, realtime=cam.realtime, loop=cam.loop
    )
    return CappedSource(source, cam.fps) if cam.fps and source.live else source


def _camera_tag(name: str) -> Callable[[Any, Any], Any]:
    def tag(image: Any, result: Any) -> Any:
        return dataclasses.replace(result, camera=name)

    return tag


def run_cameras(
    options: RunOptions,
    *,
    stop_event: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    model: Any = None,
) -> dict[str, Any]:
    """Run every camera of ``options.cameras`` on one shared model until each ends or ``stop_event`` is set;
    return each camera's :class:`~edgecnn.run.stats.RunSummary`. A camera that fails (without
    ``reconnect``) ends alone; its error is raised once every camera has ended."""
    from edgecnn.model import open_model
    from edgecnn.run.clips import safe_name
    from edgecnn.run.config import parse_serve, serve_access, validate_run_options
    from edgecnn.run.live import LiveState
    from edgecnn.run.metrics import RunMetrics
    from edgecnn.run.outputs import JsonlSink
    from edgecnn.run.pipeline import Pipeline, decode_options
    from edgecnn.run.scheduler import InferenceScheduler, SharedModel
    from edgecnn.tasks import open_decoder

    validate_run_options(options, check_model=model is None)
    # The inference worker comes back from invoke() (which releases the GIL) needing the GIL again; with
    # Python's default 5 ms switch interval a busy camera thread could keep the shared model idle that
    # long after every inference. A shorter interval hands it back within about a millisecond.
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
    from edgecnn.run.footprint import fix_mmap_threshold

    fix_mmap_threshold()
    stop = stop_event or threading.Event()
    cameras = camera_options(options)
    if model is None:
        crop = None if options.crop in (None, "none") else options.crop
        model = open_model(
            options.model,  # type: ignore[arg-type]  # validated
            device=options.device,
            threads=options.threads,
            labels=options.labels,
            crop=crop,
            decode=decode_options(options),
        )
    model_name = Path(model.path).name if model.path else str(options.model)
    scheduler = InferenceScheduler(model)
    clips = _open_clips(options)
    # A file is opened once for all cameras; "-" stays each camera's (standard output, lines on stderr).
    shared_file = options.jsonl is not None and options.jsonl != "-"
    jsonl = _SharedSink(JsonlSink(str(options.jsonl), stop), len(cameras)) if shared_file else None
    events = _SharedEvents(options, stop) if options.events is not None and options.track else None
    base_mqtt = _mqtt_base(options)
    pipelines: dict[str, Pipeline] = {}
    lives: dict[str, LiveState] = {}
    metrics: dict[str, RunMetrics] = {}
    recorders = []
    for name, cam in cameras:
        live = LiveState(
            source=cam.source or f"camera {cam.camera}",
            stall_timeout=cam.stall_timeout,
            model=model_name,
            device=model.device,
        )
        lives[name] = live
        metrics[name] = RunMetrics(model=model_name, device=model.device, source=live.source, fps=live.fps)
        recorder = None
        if clips is not None:
            from edgecnn.run.clips import ClipCollector, ClipRecorder

            settings = dataclasses.replace(clips.settings, labels=frozenset(cam.clip_labels or ()))
            recorder = ClipRecorder(name, settings, clips)
            recorders.append(recorder)
            metrics[name].registry.register(ClipCollector([recorder], clips))
            live.health_extras["clips"] = recorder.health
        mqtt = None
        if base_mqtt is not None:
            mqtt = {
                **(options.mqtt or {}),
                "topic": f"{base_mqtt[0]}/{name}",
                "client_id": f"{base_mqtt[1]}-{name}",
            }
        # The events file is the run's (one, shared); snapshots go to a folder per camera.
        snapshots = None if cam.snapshots is None else Path(cam.snapshots) / safe_name(name)
        run_opts = dataclasses.replace(
            cam,
            serve=None,
            jsonl="-" if cam.jsonl == "-" else None,
            clips=None,
            mqtt=mqtt,
            events=None,
            snapshots=snapshots,
        )
        shared = SharedModel.of(
            model,
            scheduler,
            name,
            open_decoder(model.model_file, model.meta, model.interpreter, model.labels, decode_options(cam)),
        )
        pipelines[name] = Pipeline(
            run_opts,
            source=_camera_source(cam),
            model=shared,
            sinks=[jsonl] if jsonl is not None else [],
            stop_event=stop,
            env={},  # systemd hears from the run (_Watchdog), not from each camera
            taps=[_camera_tag(name)],
            live=live,
            metrics=metrics[name],
            camera=name,
            clips=recorder,
            track_listeners=[events] if events is not None else [],
        )
    server = None
    if options.serve is not None:
        from edgecnn.run.server import RunServer

        host, port = parse_serve(options.serve)
        directory = CameraDirectory(lives)
        server = RunServer(
            host,
            port,
            next(iter(lives.values())),
            CameraMetrics(metrics),
            access=serve_access(options),
            clips=clips,
            cameras=directory,
        )
        server.start()
        log.info("serving %s  (/ grid, /camera/NAME/, /healthz, /events, /metrics, /clips)", server.url)
    summaries: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def run_one(name: str, pipeline: Pipeline) -> None:
        try:
            summaries[name] = pipeline.run()
        except BaseException as exc:  # this camera alone ends; the others go on
            errors[name] = exc
            lives[name].set_status("stopped", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            log.error("camera %s stopped: %s", name, exc)

    threads = [
        threading.Thread(target=run_one, args=(name, p), name=f"camera-{name}", daemon=True)
        for name, p in pipelines.items()
    ]
    for thread in threads:
        thread.start()
    watchdog = _Watchdog(env, scheduler, lives)
    try:
        for thread in threads:
            while thread.is_alive():
                watchdog.tick()
                thread.join(0.1)
    finally:
        watchdog.close()
        stop.set()
        for thread in threads:
            thread.join(10)
        scheduler.close()
        for recorder in recorders:  # finish the open clips (their post-roll cut short by the end)
            recorder.close()
        if events is not None:
            events.close()
        if server is not None:
            server.stop()
    if errors:
        name, exc = next(iter(errors.items()))
        if isinstance(exc, EdgecnnError):
            raise type(exc)(f"camera {name}: {exc}") from exc
        raise exc
    return summaries


class _Watchdog:
    """systemd for the whole run: READY after the first result of any camera, ``WATCHDOG=1`` while the
    shared model makes progress (so one dead camera does not get every camera restarted, while a hung
    runtime or all cameras gone does), and a status line naming the cameras down."""

    STATUS_EVERY_S = 10.0

    def __init__(self, env: Mapping[str, str] | None, scheduler: Any, lives: Mapping[str, Any]) -> None:
        from edgecnn.run.notify import Notifier

        self.notifier = Notifier(env)
        self.scheduler, self.lives = scheduler, lives
        self.ready = False
        self.served = 0
        self.last_ping = self.last_status = time.monotonic()

    def tick(self) -> None:
        notifier = self.notifier
        if not notifier.enabled:
            return
        served = sum(self.scheduler.served.values())
        now = time.monotonic()
        if not self.ready and served:
            self.ready = True
            notifier.ready(f"{len(self.lives)} cameras")
        interval = notifier.watchdog_interval
        if interval is not None and served > self.served and now - self.last_ping >= interval:
            notifier.watchdog()
            self.last_ping, self.served = now, served
        if now - self.last_status >= self.STATUS_EVERY_S:
            down = [name for name, live in self.lives.items() if not live.health()[0]]
            notifier.status(
                f"{len(self.lives) - len(down)} of {len(self.lives)} cameras ok"
                + (f"; down: {', '.join(down)}" if down else "")
            )
            self.last_status = now

    def close(self) -> None:
        self.notifier.stopping()
        self.notifier.close()


def _open_clips(options: RunOptions) -> Any:
    from edgecnn.run.clips import ClipSettings, ClipStore

    settings = ClipSettings.from_options(options)
    if settings is None:
        return None
    store = ClipStore(settings)
    store.open()
    return store


def _mqtt_base(options: RunOptions) -> tuple[str, str] | None:
    """The run's MQTT topic prefix and client id; each camera publishes under PREFIX/CAMERA."""
    if not options.mqtt:
        return None
    from edgecnn.run.config import option_error
    from edgecnn.run.mqtt_settings import mqtt_settings

    settings = mqtt_settings(options, lambda key, problem: option_error(options, key, problem))
    return None if settings is None else (settings.topic, settings.client_id)
