"""Where an instance's files live, on the device (``/``) or in an image being built (``--root DIR``).

Two views of each path: ``host_*`` is where the installer writes (``DIR/etc/edgecnn/door.toml``) and
``target_*`` is what the running service sees (``/etc/edgecnn/door.toml``); configuration files name
target paths only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgecnn.errors import UsageError

TEMPLATE_NAME = "edgecnn@.service"
DROPIN_NAME = "50-edgecnn.conf"
UDEV_RULE_NAME = "99-edgecnn-coral.rules"
WANTED_BY = "multi-user.target"

# Paths as the service sees them; they must match the unit template (StateDirectory=, LogsDirectory=).
CONFIG_DIR = PurePosixPath("/etc/edgecnn")
UNIT_DIR = PurePosixPath("/etc/systemd/system")
UDEV_DIR = PurePosixPath("/etc/udev/rules.d")
STATE_DIR = PurePosixPath("/var/lib/edgecnn")
LOGS_DIR = PurePosixPath("/var/log/edgecnn")
MODELS_DIR = STATE_DIR / "models"

# A systemd instance name that is also a plain file name: no escaping games, no "/" or "..".
# Checked with fullmatch: ``$`` would also match before a final newline ("door\n" -> "door\n.toml").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def system_offline() -> bool:
    """No running system to touch, as systemd decides it: ``SYSTEMD_OFFLINE=1`` (systemd's own switch,
    which systemctl honours too), else ``/`` is not PID 1's root (a chroot; unknowable, so False, where
    ``/proc/1/root`` cannot be read)."""
    flag = os.environ.get("SYSTEMD_OFFLINE", "").strip().lower()
    if flag in ("1", "yes", "true", "on"):
        return True
    if flag in ("0", "no", "false", "off"):
        return False
    try:
        here, init = os.stat("/"), os.stat("/proc/1/root")
    except OSError:  # no /proc, or PID 1 not ours to look at
        return False
    return (here.st_dev, here.st_ino) != (init.st_dev, init.st_ino)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith((".toml", ".service")):
        raise UsageError(
            f"Bad service name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter "
            "or digit (e.g. door, cam-1)."
        )
    return name


def unit_name(name: str) -> str:
    return f"edgecnn@{name}.service"


@dataclass(frozen=True)
class Layout:
    """File locations for one root (``/`` on the device)."""

    root: Path = Path("/")

    def host(self, target: PurePosixPath) -> Path:
        """Where the installer reads or writes ``target`` (an absolute path as the service sees it)."""
        return self.root / target.relative_to("/")

    @property
    def offline(self) -> bool:
        """True when building an image, or inside a chroot or with ``SYSTEMD_OFFLINE=1`` (e.g. an image
        worked on with Ansible's chroot connection): nothing may touch a running system."""
        return self.root.resolve() != Path("/") or system_offline()

    def config(self, name: str) -> PurePosixPath:
        return CONFIG_DIR / f"{name}.toml"

    def models(self, name: str) -> PurePosixPath:
        return MODELS_DIR / name

    @property
    def template(self) -> PurePosixPath:
        return UNIT_DIR / TEMPLATE_NAME

    def dropin_dir(self, name: str) -> PurePosixPath:
        return UNIT_DIR / f"{unit_name(name)}.d"

    def dropin(self, name: str) -> PurePosixPath:
        return self.dropin_dir(name) / DROPIN_NAME

    def wants_link(self, name: str) -> PurePosixPath:
        return UNIT_DIR / f"{WANTED_BY}.wants" / unit_name(name)

    @property
    def udev_rule(self) -> PurePosixPath:
        return UDEV_DIR / UDEV_RULE_NAME

    def instance_names(self) -> list[str]:
        """Instances that have a configuration file, sorted."""
        folder = self.host(CONFIG_DIR)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.toml") if _NAME.fullmatch(p.stem))
