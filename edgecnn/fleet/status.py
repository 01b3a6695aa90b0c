"""``edgecnn fleet status``: one table for the whole fleet.

``status.yml`` collects, on each host, ``edgecnn devices --json``, ``edgecnn service list --json`` and
(for instances that are active and serve) ``/healthz``, ``/latest`` and ``/metrics``; this module turns
them into rows. Metrics are read with prometheus-client's own parser. Without a running systemd (an
image, a chroot) the state is what the files say: ``enabled (offline)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from edgecnn.fleet.inventory import load_inventory
from edgecnn.fleet.runner import HostResult, Progress, run_playbook
from edgecnn.texttable import render


@dataclass
class InstanceStatus:
    name: str
    state: str  # active, failed, inactive, ..., or "enabled (offline)"
    health: str | None = None  # ok / unhealthy / no answer; None when not serving
    fps: float | None = None
    drops: int | None = None
    reconnects: int | None = None
    frames: int | None = None
    last_result: str | None = None
    error: str | None = None
    counts: dict[str, Any] | None = None  # tracking's line and zone counts (edgecnn.track), from /latest


@dataclass
class HostStatus:
    host: str
    state: str  # reachable / unreachable / failed
    board: str | None = None
    arch: str | None = None
    python: str | None = None
    runtime: str | None = None
    edgetpu: str | None = None  # the Edge TPU pairing verdict of `edgecnn devices`
    installed: bool = False
    instances: list[InstanceStatus] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "reachable" and self.error is None


@dataclass
class FleetStatus:
    hosts: list[HostStatus]

    @property
    def failed(self) -> list[HostStatus]:
        return [h for h in self.hosts if h.state != "reachable"]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"hosts": [asdict(h) for h in self.hosts], "failed": [h.host for h in self.failed]}


def _json_document(text: str) -> Any:
    """The JSON a command printed (the C++ runtime may print an INFO line before it on some builds)."""
    text = text.strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON in the output")
    return json.loads(text[start:])


def _metrics(text: str) -> dict[str, float]:
    """Sample values by name from a Prometheus exposition (counters as ``NAME_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                values[sample.name] = sample.value
    return values


def _describe_result(latest: Any) -> str | None:
    if not isinstance(latest, dict):
        return None
    summary = latest.get("summary")
    if isinstance(summary, str) and summary:  # the task's own one-line text (classes, objects, ...)
        return summary + (f" @ {latest['time']}" if latest.get("time") else "")
    classes = latest.get("classes") or latest.get("top") or []
    if classes and isinstance(classes[0], dict):
        top = classes[0]
        label = top.get("label", top.get("index", "?"))
        score = top.get("score")
        text = f"{label} {score:.2f}" if isinstance(score, (int, float)) else str(label)
        return text + (f" @ {latest['time']}" if latest.get("time") else "")
    return None


def _camera_results(inst: InstanceStatus, cameras: dict[str, Any]) -> None:
    """``/latest`` of a run of several cameras (``{"cameras": {NAME: latest}}``): the last result names
    each camera's, and the counts are per camera (``{NAME: counts}``, cameras without counts left out),
    so one camera's line does not stand for the whole run."""
    results = [f"{name}: {text}" for name, latest in cameras.items() if (text := _describe_result(latest))]
    inst.last_result = "; ".join(results) or None
    counts = {
        name: latest["counts"]
        for name, latest in cameras.items()
        if isinstance(latest, dict) and isinstance(latest.get("counts"), dict)
    }
    inst.counts = counts or None


def _instance(service: dict[str, Any], endpoints: dict[str, str], systemd_running: bool) -> InstanceStatus:
    name = str(service.get("name"))
    if systemd_running and service.get("active"):
        state = str(service["active"]) + (f" ({service['sub_state']})" if service.get("sub_state") else "")
    else:
        state = f"{service.get('enabled') or 'unknown'} (offline)"
    inst = InstanceStatus(name=name, state=state, error=service.get("config_error"))
    health = endpoints.get(f"{name}/healthz")
    if health is not None:
        try:
            body = json.loads(health) if health else {}
            inst.health = "ok" if body.get("status") in ("ok", "healthy") or body.get("ok") else "unhealthy"
        except ValueError:
            inst.health = "no answer"
    elif service.get("serve") and systemd_running:
        inst.health = "no answer"
    metrics = endpoints.get(f"{name}/metrics")
    if metrics:
        try:
            values = _metrics(metrics)
        except ValueError:
            values = {}
        inst.fps = values.get("edgecnn_fps")
        for attr, key in (
            ("drops", "edgecnn_frames_dropped_total"),
            ("reconnects", "edgecnn_reconnects_total"),
            ("frames", "edgecnn_frames_total"),
        ):
            if key in values:
                setattr(inst, attr, int(values[key]))
    latest = endpoints.get(f"{name}/latest")
    if latest:
        try:
            body = json.loads(latest)
            cameras = body.get("cameras") if isinstance(body, dict) else None
            if isinstance(cameras, dict):  # a run of several cameras: each camera's newest result
                _camera_results(inst, cameras)
            else:
                inst.last_result = _describe_result(body)
                counts = body.get("counts") if isinstance(body, dict) else None
                inst.counts = counts if isinstance(counts, dict) else None
        except ValueError:
            inst.last_result = None
    return inst


def host_status(result: HostResult) -> HostStatus:
    """A row from what ``status.yml`` reported for one host."""
    if not result.success:
        return HostStatus(result.host, result.state, error=result.reason or result.state)
    r = result.report
    status = HostStatus(result.host, "reachable", arch=r.get("arch"), python=r.get("python_version"))
    status.installed = str(r.get("installed")).lower() == "true"
    if not status.installed:
        status.error = "edgecnn not installed (run edgecnn fleet deploy)"
        return status
    systemd_running = str(r.get("systemd_running")).lower() == "true"
    try:
        probe = _json_document(str(r.get("devices_stdout") or ""))
        status.board = probe.get("board") or probe.get("name")
        status.arch = status.arch or probe.get("arch")
        status.python = (probe.get("python") or "").replace("CPython ", "") or status.python
        status.runtime = probe.get("runtime")
        status.edgetpu = (probe.get("edgetpu_runtime") or {}).get("verdict")
    except ValueError:
        status.error = f"edgecnn devices failed: {r.get('devices_stderr') or 'no output'}"
    endpoints = {str(k): str(v) for k, v in (r.get("endpoints") or [])}
    try:
        services = (
            _json_document(str(r.get("services_stdout") or "[]"))
            if str(r.get("services_stdout") or "").strip()
            else []
        )
    except ValueError:
        services = []
        status.error = f"edgecnn service list failed: {r.get('services_stderr') or 'no output'}"
    status.instances = [_instance(s, endpoints, systemd_running) for s in services if isinstance(s, dict)]
    return status


def fleet_status(
    inventory_path: str | os.PathLike[str], *, limit: str | None = None, progress: Progress | None = None
) -> FleetStatus:
    inventory = load_inventory(inventory_path, limit=limit)
    results = run_playbook(
        "status.yml", inventory=inventory.path, hosts=inventory.names, limit=limit, progress=progress
    )
    return FleetStatus([host_status(results.get(h) or HostResult(h)) for h in inventory.names])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_status(report: FleetStatus) -> str:
    header = (
        "HOST",
        "BOARD",
        "ARCH",
        "PYTHON",
        "RUNTIME",
        "EDGE TPU",
        "SERVICE",
        "STATE",
        "FPS",
        "DROPS",
        "RECONN",
        "LAST RESULT",
    )
    rows: list[tuple[str, ...]] = [header]
    for h in report.hosts:
        base = (h.host, _cell(h.board), _cell(h.arch), _cell(h.python), _cell(h.runtime), _cell(h.edgetpu))
        if h.state != "reachable" or not h.instances:
            note = h.error or ("no edgecnn service" if h.state == "reachable" else h.state)
            rows.append((*base, "-", note.upper() if h.state != "reachable" else note, "-", "-", "-", "-"))
            continue
        for i in h.instances:
            state = i.state + (f", health {i.health}" if i.health else "")
            rows.append(
                (
                    *base,
                    i.name,
                    state,
                    _cell(i.fps),
                    _cell(i.drops),
                    _cell(i.reconnects),
                    _cell(i.last_result),
                )
            )
    lines = render(header, rows[1:]).splitlines()
    bad = report.failed
    lines.append(
        f"{len(report.hosts) - len(bad)} of {len(report.hosts)} host(s) answered"
        + (f"; failed: {', '.join(f'{h.host} ({h.error})' for h in bad)}" if bad else "")
    )
    return "\n".join(lines)
