"""Run one of the shipped playbooks with ansible-runner and keep what happened to each host.

ansible-runner calls :meth:`EventCollector.__call__` with every event Ansible emits; per-host events
(``runner_on_ok``, ``runner_on_failed``, ``runner_on_unreachable``, ``runner_on_skipped``) become one
progress line each and counts per host, the first failure's message becomes the host's reason, and
structured results that a play hands back with ``set_fact: edgecnn_report=...`` are kept per host. Nothing
here reads ``ansible-playbook``'s text output.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError, RuntimeMissing, one_line
from edgecnn.fleet.inventory import FLEET_EXTRA_HINT, ansible_executable

log = logging.getLogger(__name__)

REPORT_FACT = "edgecnn_report"  # plays return structured results per host through this fact
MAX_FORKS = 20
Progress = Callable[[str], None]


class FleetError(EdgecnnError):
    """A playbook could not run at all (not a host failing: those are reported per host)."""


@dataclass
class HostResult:
    """What one playbook run did to one host."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    reason: str | None = None  # why it failed or was unreachable, for the summary
    failed_task: str | None = None
    report: dict[str, Any] = field(default_factory=dict)  # the play's edgecnn_report fact
    changed_tasks: list[str] = field(default_factory=list)
    ran: bool = False

    @property
    def state(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        if not self.ran:
            return "not run"
        return "changed" if self.changed else "ok"

    @property
    def success(self) -> bool:
        return self.state in ("ok", "changed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "state": self.state,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "reason": self.reason,
            "failed_task": self.failed_task,
            "changed_tasks": list(self.changed_tasks),
        }


def _reason(res: dict[str, Any]) -> str:
    """One line saying why a task failed: its msg, else the end of its stderr/stdout."""
    parts = []
    msg = res.get("msg")
    if msg:
        parts.append(str(msg))
    for key in ("stderr", "module_stderr", "stdout", "module_stdout"):
        text = str(res.get(key) or "").strip()
        if text:
            lines = [line for line in text.splitlines() if line.strip()]
            parts.append(" | ".join(lines[-3:]))
            break
    if not parts and res.get("results"):  # a loop: the first failed item
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                return _reason(item)
    text = ": ".join(parts) or "failed without a message"
    return one_line(text, 600)


class EventCollector:
    """The ``event_handler`` for ansible-runner: per-host counts, reasons, reports and progress lines."""

    def __init__(self, hosts: list[str], progress: Progress | None = None) -> None:
        self.results = {h: HostResult(h) for h in hosts}
        self.progress = progress
        self.stats_seen = False
        self._width = max((len(h) for h in hosts), default=8)

    def _host(self, name: str) -> HostResult:
        if name not in self.results:
            self.results[name] = HostResult(name)
            self._width = max(self._width, len(name))
        return self.results[name]

    def _say(self, host: str, state: str, task: str, detail: str = "") -> None:
        if self.progress is not None:
            line = f"  {host:<{self._width}}  {state:<11} {task}"
            self.progress(line + (f": {detail}" if detail else ""))

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            self._stats(data)
            return True
        host = data.get("host")
        if not host or not kind.startswith("runner_on_") or kind in ("runner_on_start",):
            return True
        task = str(data.get("task") or data.get("task_action") or "task")
        res = data.get("res") or {}
        result = self._host(host)
        result.ran = True
        if kind == "runner_on_ok":
            result.ok += 1
            facts = res.get("ansible_facts") or {}
            if isinstance(facts.get(REPORT_FACT), dict):
                result.report.update(facts[REPORT_FACT])
            if res.get("changed"):
                result.changed += 1
                result.changed_tasks.append(task)
                self._say(host, "changed", task)
            else:
                self._say(host, "ok", task)
        elif kind == "runner_on_failed":
            if data.get("ignore_errors"):
                self._say(host, "ignored", task, _reason(res))
                return True
            result.failed += 1
            if result.reason is None:
                result.reason, result.failed_task = _reason(res), task
            self._say(host, "FAILED", task, _reason(res))
        elif kind == "runner_on_unreachable":
            result.unreachable += 1
            if result.reason is None:
                result.reason, result.failed_task = f"unreachable: {_reason(res)}", task
            self._say(host, "UNREACHABLE", task, _reason(res))
        elif kind == "runner_on_skipped":
            result.skipped += 1
        return True

    def _stats(self, data: dict[str, Any]) -> None:
        """The play recap: authoritative counts (a rescued failure is not a failure)."""
        self.stats_seen = True
        for key, attr in (
            ("ok", "ok"),
            ("changed", "changed"),
            ("failures", "failed"),
            ("dark", "unreachable"),
        ):
            for host, count in (data.get(key) or {}).items():
                result = self._host(host)
                setattr(result, attr, int(count))
                result.ran = True


def _playbooks_dir() -> Any:
    return importlib.resources.files("edgecnn.fleet") / "playbooks"


def run_playbook(
    playbook: str,
    *,
    inventory: Path,
    hosts: list[str],
    extravars: dict[str, Any] | None = None,
    limit: str | None = None,
    check: bool = False,
    progress: Progress | None = None,
) -> dict[str, HostResult]:
    """Run the shipped ``playbook`` on ``hosts`` of ``inventory``; one :class:`HostResult` per host.

    Host failures are results, not exceptions; :class:`FleetError` means the playbook itself could not run
    (syntax, missing collection, ansible-playbook crashed).
    """
    try:
        import ansible_runner
    except ImportError:
        raise RuntimeMissing(f"edgecnn fleet needs ansible-runner: {FLEET_EXTRA_HINT}.") from None
    ansible_executable("ansible-playbook")  # a clear error now rather than ansible-runner's later
    collector = EventCollector(hosts, progress)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PYTHON_INTERPRETER": os.environ.get("ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        # Modules go to the host over stdin instead of temp files: a few processes less per task, which
        # counts on a Pi Zero or under emulation. Users may turn it off (e.g. sudo with requiretty).
        "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
        # ansible-runner turns SSH host key checking off unless told otherwise; keep Ansible's default.
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
    }
    cmdline = "--check" if check else None
    keep = bool(os.environ.get("EDGECNN_DEBUG"))
    with contextlib.ExitStack() as stack:
        project = stack.enter_context(importlib.resources.as_file(_playbooks_dir()))
        if keep:  # EDGECNN_DEBUG: keep ansible-runner's artifacts (job events, stdout) for a look
            private = tempfile.mkdtemp(prefix="edgecnn-fleet-run.")
            log.info("ansible-runner artifacts kept in %s", private)
        else:
            private = stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecnn-fleet-run."))
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(project),
            playbook=str(Path(project) / playbook),
            inventory=str(inventory),
            extravars=extravars or {},
            limit=limit,
            cmdline=cmdline,
            envvars=env,
            forks=min(MAX_FORKS, max(1, len(hosts))),
            event_handler=collector,
            quiet=True,
            suppress_env_files=True,
        )
        status, rc = runner.status, runner.rc
        tail = ""
        if not collector.stats_seen:
            try:
                tail = " | ".join(
                    line.strip() for line in runner.stdout.read().splitlines()[-6:] if line.strip()
                )
            except (OSError, AttributeError):
                tail = ""
    if not collector.stats_seen:
        raise FleetError(
            f"ansible-playbook {playbook} did not run ({status}, exit {rc}): {tail or 'no output'}. "
            "Run with EDGECNN_DEBUG=1 to keep ansible-runner's artifacts."
        )
    return collector.results
