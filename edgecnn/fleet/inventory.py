"""Which hosts an Ansible inventory names, as Ansible itself reads it.

The inventory is whatever Ansible accepts (INI, YAML, a folder, a dynamic script): ``ansible-inventory
--list`` resolves it, groups, ``group_vars`` and ``--limit`` included, and prints JSON; this module reads
that JSON. Parsing INI or YAML here would give a second, subtly different answer to "which hosts?".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import RuntimeMissing, UsageError

INVENTORY_TIMEOUT_S = 120.0
FLEET_EXTRA_HINT = "install the fleet extra on this machine: pip install 'edgecnn[fleet]'"


def ansible_executable(name: str) -> str:
    """``ansible-playbook``/``ansible-inventory`` of this environment first (a venv need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeMissing(f"{name} not found: {FLEET_EXTRA_HINT}.")
    return found


@dataclass(frozen=True)
class Host:
    """One inventory host: its name and the variables Ansible resolved for it."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection") or "ssh")

    @property
    def address(self) -> str:
        """Where Ansible connects: ``ansible_host`` (an address, or a folder for a chroot) or the name."""
        return str(self.vars.get("ansible_host") or self.name)

    @property
    def is_chroot(self) -> bool:
        return self.connection.rsplit(".", 1)[-1] == "chroot"


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: list[Host]
    limit: str | None = None

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def _group_hosts(data: dict[str, Any], group: str, seen: set[str]) -> list[str]:
    """Hosts of ``group`` and its children, in inventory order (``--list`` JSON layout)."""
    if group in seen:
        return []
    seen.add(group)
    entry = data.get(group) or {}
    names = list(entry.get("hosts") or [])
    for child in entry.get("children") or []:
        names += _group_hosts(data, child, seen)
    return names


def parse_inventory_json(data: dict[str, Any], *, path: Path, limit: str | None = None) -> Inventory:
    """The ``ansible-inventory --list`` document as an :class:`Inventory` (hosts in order, no duplicates)."""
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    ordered: list[str] = []
    for name in _group_hosts(data, "all", set()):
        if name not in ordered:
            ordered.append(name)
    return Inventory(path=path, hosts=[Host(n, dict(hostvars.get(n) or {})) for n in ordered], limit=limit)


def load_inventory(path: str | os.PathLike[str], *, limit: str | None = None) -> Inventory:
    """Resolve ``path`` with ``ansible-inventory --list`` (``limit`` as ``--limit``); at least one host."""
    inv = Path(path)
    if not inv.exists():
        raise UsageError(
            f"Inventory {inv} not found: pass an Ansible inventory file or folder (see docs/fleet.md)."
        )
    if not inv.is_dir():  # a FIFO or a device named hosts.ini must not reach Ansible
        from edgecnn.safeio import FileKind, check_file

        check_file(inv, FileKind.INVENTORY)
    argv = [ansible_executable("ansible-inventory"), "-i", str(inv), "--list"]
    if limit:
        argv += ["--limit", limit]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=INVENTORY_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"ansible-inventory did not finish within {INVENTORY_TIMEOUT_S:.0f} s for {inv}: a dynamic "
            "inventory script may hang; run `ansible-inventory -i INVENTORY --list` to see why."
        ) from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.strip().splitlines()[-3:]) or "no output"
        raise UsageError(f"Ansible cannot read the inventory {inv}: {detail}. Fix the file and retry.")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise UsageError(f"ansible-inventory printed no JSON for {inv} ({exc}).") from None
    inventory = parse_inventory_json(data, path=inv.absolute(), limit=limit)
    if not inventory.hosts:
        where = f" matching --limit {limit!r}" if limit else ""
        raise UsageError(
            f"No hosts{where} in the inventory {inv}: list devices under a group (see docs/fleet.md)."
        )
    return inventory
