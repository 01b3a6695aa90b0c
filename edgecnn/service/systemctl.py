"""The one place that runs ``systemctl``: argv lists, exit status checked, one-line :class:`ServiceError`.

``systemctl --root=DIR`` edits unit symlinks in an image without a running systemd, which is how
``edgecnn service install --root`` enables an instance for an SD card.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from edgecnn.errors import ServiceError

log = logging.getLogger(__name__)

SYSTEMCTL_TIMEOUT_S = 150.0  # `restart` waits for READY=1, up to the unit's TimeoutStartSec=2min


def systemd_booted() -> bool:
    """sd_booted(3): systemd is PID 1 when /run/systemd/system exists."""
    return Path("/run/systemd/system").is_dir()


def _binary() -> str:
    path = shutil.which("systemctl")
    if path is None:
        raise ServiceError(
            "systemctl not found: edgecnn service needs systemd (Debian, Raspberry Pi OS, Ubuntu); "
            "install the systemd package."
        )
    return path


def systemctl(
    *args: str,
    root: Path | None = None,
    ok: Sequence[int] = (0,),
    timeout: float = SYSTEMCTL_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``systemctl [--root=DIR] ARGS...``; an exit status outside ``ok`` raises ServiceError."""
    argv = [_binary()]
    if root is not None:
        argv.append(f"--root={os.fspath(root)}")
    argv += ["--no-pager", *args]
    log.debug("running %s", argv)
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(
            f"`{' '.join(argv[1:])}` did not finish within {timeout:.0f} s: see `journalctl -xe`."
        ) from None
    if proc.returncode not in ok:
        detail = " ".join((proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-2:])
        hint = _hint(args, root)
        raise ServiceError(
            f"`systemctl {' '.join(argv[1:])}` failed (exit {proc.returncode}): {detail}{hint}"
        )
    return proc


def _hint(args: Sequence[str], root: Path | None) -> str:
    starting = bool(args) and (args[0] in ("start", "restart") or "--now" in args)
    if root is None and starting and args[0] != "disable":
        return f" See `journalctl -u {args[-1]}` for why it did not start."
    return ""


def daemon_reload() -> None:
    systemctl("daemon-reload")


def enable(unit: str, *, root: Path | None = None, now: bool = False) -> None:
    systemctl("enable", *(["--now"] if now else []), unit, root=root)


def disable(unit: str, *, root: Path | None = None, now: bool = False) -> None:
    systemctl("disable", *(["--now"] if now else []), unit, root=root)


def is_enabled(unit: str, *, root: Path | None = None) -> str:
    """``enabled``, ``disabled``, ``static``, ... or ``not-found`` (is-enabled exits 1 for all but enabled)."""
    proc = systemctl("is-enabled", unit, root=root, ok=(0, 1, 4))
    state = proc.stdout.strip().splitlines()
    return state[-1] if state else "not-found"


def show(unit: str, properties: Sequence[str]) -> dict[str, str]:
    """Properties of a loaded unit from the running manager (``systemctl show``'s KEY=VALUE lines)."""
    proc = systemctl("show", unit, "--property=" + ",".join(properties))
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values
