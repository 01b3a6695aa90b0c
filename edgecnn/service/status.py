"""``edgecnn service list`` and ``status``: what is installed, what systemd says, what ``/healthz`` says.

On a running system the state comes from ``systemctl show``; for an image (``--root``) only what the
files say (installed, enabled) is known. ``/healthz`` is asked with a short timeout, and an instance that
does not answer is reported, not raised: status is what you run when something is wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError, ServiceError
from edgecnn.httpget import get
from edgecnn.service import systemctl
from edgecnn.service.layout import Layout, check_name, unit_name
from edgecnn.texttable import render

HEALTHZ_TIMEOUT_S = 2.0
SHOW_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "NRestarts",
    "Result",
    "ExecMainStatus",
    "ActiveEnterTimestamp",
)


@dataclass(frozen=True)
class Health:
    url: str
    ok: bool
    status: int | None  # HTTP status, None when nothing answered
    body: Any  # parsed JSON when the answer was JSON, else text, else the connection error

    def describe(self) -> str:
        if self.status is None:
            return f"{self.url}: no answer ({self.body})"
        return f"{self.url}: HTTP {self.status} {'ok' if self.ok else 'unhealthy'}"


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    unit: str
    config: str
    model: str | None
    source: str | None
    device: str | None
    serve: str | None
    enabled: str  # enabled, disabled, not-found, ...
    active: str | None = None  # active, failed, activating, ...; None for an image (--root)
    sub_state: str | None = None
    main_pid: int | None = None
    restarts: int | None = None
    result: str | None = None
    exit_status: int | None = None
    since: str | None = None
    config_error: str | None = None
    health: Health | None = None
    token_file: str | None = None  # the --serve token service install wrote (root-only)
    token: str | None = None  # its value, when this user may read it
    cameras: list[dict[str, str]] = field(default_factory=list)  # [[cameras]]: name and source of each
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _read_config(layout: Layout, name: str) -> tuple[dict[str, Any], str | None]:
    """Selected keys of the instance config, and the one-line error if it does not load."""
    from edgecnn.run.config import load_run_config

    path = layout.host(layout.config(name))
    try:
        opts = load_run_config(path)
    except EdgecnnError as exc:
        return {}, str(exc)
    source = opts.source if opts.source is not None else f"camera {opts.camera or 0}"
    cameras = [
        {"name": t["name"], "source": str(t.get("source") or f"camera {t.get('camera') or 0}")}
        for t in opts.cameras or ()
    ]
    if cameras:
        source = f"{len(cameras)} cameras: " + ", ".join(c["name"] for c in cameras)
    return (
        {
            "model": str(opts.model) if opts.model else None,
            "source": source,
            "device": opts.device,
            "serve": opts.serve,
            "cameras": cameras,
        },
        None,
    )


def healthz_url(serve: str) -> str:
    """Where to reach an instance serving on ``serve`` from this machine (wildcards become loopback)."""
    from edgecnn.run.config import parse_serve

    host, port = parse_serve(serve)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def fetch_health(url: str, *, timeout: float = HEALTHZ_TIMEOUT_S) -> Health:
    """GET ``url``; a 2xx answer is healthy, any other answer or none is not (never raises)."""
    try:
        response = get(url, timeout=timeout, limit=65536)
    except (OSError, ValueError) as exc:
        return Health(url, False, None, str(exc))
    status = response.status
    text = response.body.decode("utf-8", errors="replace")
    body: Any = text.strip()
    if response.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = json.loads(text)
    return Health(url, 200 <= status < 300, status, body)


def _info(layout: Layout, name: str, *, live: bool, health: bool) -> ServiceInfo:
    unit = unit_name(name)
    keys, error = _read_config(layout, name)
    enabled = systemctl.is_enabled(unit, root=None if live else layout.root)
    state: dict[str, Any] = {}
    if live:
        props = systemctl.show(unit, SHOW_PROPERTIES)
        state = {
            "active": props.get("ActiveState") or None,
            "sub_state": props.get("SubState") or None,
            "main_pid": _int(props.get("MainPID")) or None,
            "restarts": _int(props.get("NRestarts")),
            "result": props.get("Result") or None,
            "exit_status": _int(props.get("ExecMainStatus")),
            "since": props.get("ActiveEnterTimestamp") or None,
        }
    found = None
    if health and live and keys.get("serve"):
        found = fetch_health(healthz_url(keys["serve"]))
    token_file, token = _token(layout, name)
    return ServiceInfo(
        token_file=token_file,
        token=token,
        name=name,
        unit=unit,
        config=str(layout.config(name)),
        model=keys.get("model"),
        source=keys.get("source"),
        device=keys.get("device"),
        serve=keys.get("serve"),
        enabled=enabled,
        config_error=error,
        health=found,
        cameras=keys.get("cameras") or [],
        **state,
    )


def _token(layout: Layout, name: str) -> tuple[str | None, str | None]:
    from edgecnn.run.access import read_token_file
    from edgecnn.service.unit import token_path

    path = layout.host(token_path(name))
    if not path.exists():
        return None, None
    try:
        return str(token_path(name)), read_token_file(path)
    except EdgecnnError:  # not root: the file is 0600
        return str(token_path(name)), None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _layout(root: str | os.PathLike[str] | None) -> tuple[Layout, bool]:
    layout = Layout(Path(root).absolute() if root is not None else Path("/"))
    if layout.offline:
        if not layout.root.is_dir():
            raise ServiceError(f"--root {layout.root} is not a folder.")
        return layout, False
    if not systemctl.systemd_booted():
        raise ServiceError(
            "systemd is not running on this machine (no /run/systemd/system): pass --root DIR to look at "
            "an image's instances."
        )
    return layout, True


def list_services(*, root: str | os.PathLike[str] | None = None) -> list[ServiceInfo]:
    """Every instance with a config in ``/etc/edgecnn`` (under ``root``), with its systemd state."""
    layout, live = _layout(root)
    return [_info(layout, name, live=live, health=False) for name in layout.instance_names()]


def service_status(name: str, *, root: str | os.PathLike[str] | None = None) -> ServiceInfo:
    """One instance: config, systemd state and, when it serves, its ``/healthz`` answer."""
    check_name(name)
    layout, live = _layout(root)
    if not layout.host(layout.config(name)).exists():
        raise ServiceError(
            f"No service {name!r}: {layout.host(layout.config(name))} does not exist; "
            "`edgecnn service list` shows the installed ones."
        )
    return _info(layout, name, live=live, health=True)


def format_list(infos: list[ServiceInfo]) -> str:
    if not infos:
        return "no edgecnn services installed (edgecnn service install NAME --model M --camera 0)"
    rows = [("NAME", "ENABLED", "ACTIVE", "DEVICE", "SOURCE", "SERVE")]
    for i in infos:
        rows.append(
            (
                i.name,
                i.enabled,
                i.active or "-",
                i.device or "-",
                i.source or (f"config error: {i.config_error}" if i.config_error else "-"),
                i.serve or "-",
            )
        )
    return render(rows[0], rows[1:])


def format_status(info: ServiceInfo) -> str:
    lines = [
        f"{info.unit}: {info.active or 'state unknown (image)'}"
        + (f" ({info.sub_state})" if info.sub_state else "")
    ]
    lines.append(f"  enabled: {info.enabled}")
    if info.since:
        lines.append(f"  since: {info.since}")
    if info.restarts:
        lines.append(f"  restarts: {info.restarts}")
    if info.result and info.result != "success":
        lines.append(f"  last result: {info.result} (exit status {info.exit_status})")
    lines.append(f"  config: {info.config}")
    if info.config_error:
        lines.append(f"  config error: {info.config_error}")
    else:
        lines.append(f"  model: {info.model}  device: {info.device}  source: {info.source}")
    if info.health is not None:
        lines.append(f"  health: {info.health.describe()}")
    elif info.serve:
        lines.append(f"  serves on {info.serve}")
    lines.extend(camera_lines(info))
    if info.token_file and info.serve:
        from edgecnn.run.config import parse_serve

        port = parse_serve(info.serve)[1]
        lines.append(
            f"  token: {info.token}  (in a browser, once: http://THIS-DEVICE:{port}/?token={info.token})"
            if info.token
            else f"  token: in {info.token_file}, readable by root: sudo edgecnn service status {info.name}"
        )
    if info.active == "failed" or (info.result and info.result != "success"):
        lines.append(f"  logs: journalctl -u {info.unit} -n 50")
    return "\n".join(lines)


def camera_lines(info: ServiceInfo) -> list[str]:
    """One line per camera of a multi-camera instance: its source and, when /healthz answered, its state."""
    health = info.health.body if info.health is not None and isinstance(info.health.body, dict) else {}
    states = health.get("cameras") if isinstance(health.get("cameras"), dict) else {}
    lines = []
    for camera in info.cameras:
        state = states.get(camera["name"]) if isinstance(states, dict) else None
        text = f"  camera {camera['name']}: {camera['source']}"
        if isinstance(state, dict):
            text += (
                f"  {state.get('status')}, {state.get('fps', 0)} fps, {state.get('reconnects', 0)} reconnects"
            )
            if state.get("detail"):
                text += f" ({state['detail']})"
        lines.append(text)
    return lines
