"""``edgecnn fleet deploy``: the same edgecnn, model and config on every host, the service enabled, healthy.

Two playbook runs. ``facts.yml`` asks every host for its architecture, Python, glibc and whether systemd
runs; unreachable hosts drop out there (and are named in the summary). This machine then builds the
edgecnn wheel and one wheelhouse per (architecture, Python) seen, and ``deploy.yml`` installs on the
reachable hosts: venv, model (sha256 checked), config, ``edgecnn service install``, health gate.

Idempotence rests on digests computed here: the venv is rebuilt only when the wheelhouse digest differs
from the one recorded on the host, the service reinstalled only when (model, config, venv, name) differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.digest import sha256_file
from edgecnn.errors import UsageError
from edgecnn.fleet.inventory import Inventory, load_inventory
from edgecnn.fleet.runner import HostResult, Progress, run_playbook
from edgecnn.fleet.wheelhouse import (
    Target,
    Wheelhouse,
    build_project_wheel,
    default_cache,
    prepare_wheelhouse,
    wheel_version,
)

HEALTH_FRAMES = 10
NOT_RUN_SERIAL = "not deployed: the rollout stopped after a batch failed (--serial)"


@dataclass
class FleetHost:
    """One host's outcome across the playbook runs of a command."""

    name: str
    state: str  # ok, changed, failed, unreachable, not run
    reason: str | None = None
    changed: int = 0
    changed_tasks: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.state in ("ok", "changed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "state": self.state,
            "reason": self.reason,
            "changed": self.changed,
            "changed_tasks": self.changed_tasks,
            "facts": self.facts,
        }


@dataclass
class DeployReport:
    name: str
    model: str
    model_sha256: str
    wheel: str
    check: bool
    hosts: list[FleetHost]
    wheelhouses: dict[str, str] = field(default_factory=dict)  # target key -> folder

    @property
    def failed(self) -> list[FleetHost]:
        return [h for h in self.hosts if not h.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "wheel": self.wheel,
            "check": self.check,
            "wheelhouses": self.wheelhouses,
            "hosts": [h.to_dict() for h in self.hosts],
            "failed": [h.name for h in self.failed],
        }


def default_name(model: Path, config: Path | None) -> str:
    """The instance name when --name is not given: the config's stem, else the model's (made valid)."""
    from edgecnn.service.layout import check_name

    stem = (config or model).stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip("-_.")[:64] or "edgecnn"
    return check_name(name)


def gather_facts(
    inventory: Inventory, *, progress: Progress | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, HostResult]]:
    """Run ``facts.yml``: (facts of the hosts that answered, results of all hosts)."""
    results = run_playbook(
        "facts.yml", inventory=inventory.path, hosts=inventory.names, limit=inventory.limit, progress=progress
    )
    facts = {h: r.report for h, r in results.items() if r.success and r.report.get("arch")}
    return facts, results


def _sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _limit_pattern(hosts: list[str]) -> str:
    return ":".join(hosts)


def merge_results(
    names: list[str], first: dict[str, HostResult], second: dict[str, HostResult] | None, *, serial: bool
) -> list[FleetHost]:
    """One line per inventory host: a failure in the first run wins, then the second run's outcome
    (``second=None``: there was only one run, ``first``)."""
    hosts = []
    for name in names:
        a = first.get(name) or HostResult(name)
        b = a if second is None else second.get(name)
        if not a.success:
            hosts.append(FleetHost(name, a.state, a.reason or "no answer from the host", facts=a.report))
        elif b is None or b.state == "not run":
            reason = NOT_RUN_SERIAL if serial else "not run"
            hosts.append(FleetHost(name, "not run", reason, facts=a.report))
        else:
            hosts.append(
                FleetHost(
                    name,
                    b.state,
                    None if b.success else (f"{b.failed_task}: {b.reason}" if b.failed_task else b.reason),
                    changed=b.changed,
                    changed_tasks=list(b.changed_tasks),
                    facts=a.report,
                )
            )
    return hosts


def deploy(
    inventory_path: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str],
    config: str | os.PathLike[str] | None = None,
    name: str | None = None,
    limit: str | None = None,
    serial: int | None = None,
    check: bool = False,
    online: bool = False,
    wheel: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    health_frames: int = HEALTH_FRAMES,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> DeployReport:
    """Deploy ``model`` (and ``config``) as ``edgecnn@NAME.service`` to every host of the inventory.

    Never raises for a host: failed and unreachable hosts are in the report with their reason.
    """
    model_path, config_path, name = _check_inputs(model, config, name, serial)
    inform = say or (lambda _line: None)
    inventory = load_inventory(inventory_path, limit=limit)

    inform(f"facts: {len(inventory.hosts)} host(s)")
    facts, first = gather_facts(inventory, progress=progress)

    cache_dir = Path(cache) if cache is not None else default_cache()
    if not facts:  # nobody answered: nothing to build or install
        return DeployReport(
            name=name,
            model=str(model_path),
            model_sha256=sha256_file(model_path),
            wheel=Path(wheel).name if wheel is not None else "",
            check=check,
            hosts=merge_results(inventory.names, first, {}, serial=serial is not None),
        )
    wheel_path = _wheel(wheel, cache_dir, inform)
    houses = _wheelhouses(facts, wheel_path, cache_dir / "wheelhouse", online=online, inform=inform)
    model_sha256 = sha256_file(model_path)
    config_sha256 = sha256_file(config_path) if config_path is not None else None
    per_host = _host_vars(facts, houses, name, model_sha256, config_sha256)

    second: dict[str, HostResult] = {}
    if per_host:
        extravars = {
            "edgecnn_name": name,
            "edgecnn_model": str(model_path),
            "edgecnn_model_name": model_path.name,
            "edgecnn_model_sha1": _sha1(model_path),
            "edgecnn_model_sha256": model_sha256,
            "edgecnn_config": str(config_path) if config_path is not None else "",
            "edgecnn_online": online,
            "edgecnn_serial": serial or 0,
            "edgecnn_health_frames": health_frames,
            "edgecnn_hosts": per_host,
        }
        reachable = [h for h in inventory.names if h in per_host]
        inform(f"deploy: edgecnn@{name} to {len(reachable)} host(s)" + (" (check mode)" if check else ""))
        second = run_playbook(
            "deploy.yml",
            inventory=inventory.path,
            hosts=reachable,
            extravars=extravars,
            limit=_limit_pattern(reachable),
            check=check,
            progress=progress,
        )
    return DeployReport(
        name=name,
        model=str(model_path),
        model_sha256=model_sha256,
        wheel=wheel_path.name,
        check=check,
        hosts=merge_results(inventory.names, first, second, serial=serial is not None),
        wheelhouses={k: str(v.folder) for k, v in houses.items()},
    )


def _check_inputs(
    model: str | os.PathLike[str],
    config: str | os.PathLike[str] | None,
    name: str | None,
    serial: int | None,
) -> tuple[Path, Path | None, str]:
    """(model, config, service name), each checked here: a broken model fails once, not on twenty devices."""
    from edgecnn.modelfile import read_model
    from edgecnn.run.config import load_run_config
    from edgecnn.service.layout import check_name

    model_path = Path(model).absolute()
    if not model_path.is_file():
        raise UsageError(f"Model {model_path} not found: pass --model FILE.tflite.")
    read_model(model_path)
    config_path = Path(config).absolute() if config is not None else None
    if config_path is not None:
        load_run_config(config_path)  # syntax and keys; paths in it are the devices' paths
    name = check_name(name) if name else default_name(model_path, config_path)
    if serial is not None and serial < 1:
        raise UsageError("--serial must be at least 1 (hosts per batch).")
    return model_path, config_path, name


def _wheel(wheel: str | os.PathLike[str] | None, cache_dir: Path, inform: Callable[[str], None]) -> Path:
    """The edgecnn wheel to install: the one given, or one built from this checkout."""
    if wheel is not None:
        wheel_path = Path(wheel).absolute()
        if not wheel_path.is_file():
            raise UsageError(f"--wheel {wheel_path} not found.")
        wheel_version(wheel_path)
        return wheel_path
    wheel_path = build_project_wheel(cache_dir / "wheel")
    inform(f"wheel: built {wheel_path.name} from the checkout")
    return wheel_path


def _target(facts_of: dict[str, Any]) -> Target:
    return Target(str(facts_of["arch"]), str(facts_of["python"]), str(facts_of.get("glibc") or "") or None)


def _wheelhouses(
    facts: dict[str, dict[str, Any]],
    wheel_path: Path,
    cache: Path,
    *,
    online: bool,
    inform: Callable[[str], None],
) -> dict[str, Wheelhouse]:
    """One wheelhouse per (architecture, Python, glibc) among the hosts that answered."""
    houses: dict[str, Wheelhouse] = {}
    for facts_of in facts.values():
        target = _target(facts_of)
        if target.key not in houses:
            houses[target.key] = wh = prepare_wheelhouse(target, wheel_path, cache, online=online)
            inform(
                f"wheelhouse {target.key}: {len(list(wh.folder.glob('*.whl')))} wheels in {wh.folder}"
                + (" (downloaded)" if wh.downloaded else " (reused)")
            )
    return houses


def _host_vars(
    facts: dict[str, dict[str, Any]],
    houses: dict[str, Wheelhouse],
    name: str,
    model_sha256: str,
    config_sha256: str | None,
) -> dict[str, dict[str, Any]]:
    """What the playbook needs per host: its wheelhouse, and the digest that says whether to reinstall."""
    per_host: dict[str, dict[str, Any]] = {}
    for host, facts_of in facts.items():
        house = houses[_target(facts_of).key]
        systemd_running = str(facts_of.get("systemd_running")).lower() == "true"
        per_host[host] = {
            "python_executable": facts_of["python_executable"],
            "wheelhouse": str(house.archive),
            "wheel": house.wheel.name,
            "venv_digest": house.digest,
            "install_digest": _digest(name, model_sha256, config_sha256, house.digest, systemd_running),
            "systemd_running": systemd_running,
        }
    return per_host


def format_summary(hosts: list[FleetHost], *, title: str) -> str:
    """``HOST  STATE  DETAIL`` per host, failures with their reason; a last line counting them."""
    width = max([len(h.name) for h in hosts] + [4])
    lines = [title]
    for h in hosts:
        if h.success:
            detail = f"changed={h.changed}"
            if h.changed_tasks:
                more = ", ..." if len(h.changed_tasks) > 4 else ""
                detail += f" ({', '.join(h.changed_tasks[:4])}{more})"
            state = h.state
        else:
            detail, state = h.reason or "", h.state.upper()
        lines.append(f"  {h.name:<{width}}  {state:<11}  {detail}")
    bad = [h.name for h in hosts if not h.success]
    failed = f"; failed: {', '.join(bad)}" if bad else ""
    lines.append(f"{len(hosts) - len(bad)} of {len(hosts)} host(s) succeeded{failed}")
    return "\n".join(lines)
