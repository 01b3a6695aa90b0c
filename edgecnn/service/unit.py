"""Render ``edgecnn@.service`` (shipped in ``edgecnn.systemd``) and the per-instance drop-in.

The template names the executable as ``@EXEC_START@`` and home access as ``@PROTECT_HOME@``; both are
filled in here, from the environment that installs the service. A virtualenv under ``/home`` or ``/root``
(usual on a Raspberry Pi, and pyenv's Pythons live there too) would be invisible behind
``ProtectHome=yes``, so for those the unit gets ``ProtectHome=tmpfs`` plus read-only binds of exactly the
folders it needs.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from edgecnn.errors import ServiceError, UsageError
from edgecnn.service.layout import TEMPLATE_NAME, UDEV_RULE_NAME, unit_name

# Hidden by ProtectHome=yes (systemd.exec(5)).
HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))
# Replaced by the service's own empty folders under PrivateTmp=yes.
TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))
# Keywords systemd accepts in IPAddressAllow= besides addresses and prefixes.
IP_KEYWORDS = ("any", "localhost", "link-local", "multicast")
_PLACEHOLDERS = ("@EXEC_START@", "@PROTECT_HOME@")


def read_template() -> str:
    """The unit template as shipped in the wheel."""
    return resources.files("edgecnn.systemd").joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")


def read_udev_rule() -> str:
    """The Coral udev rule, as the Edge TPU backend ships it (``edgecnn.devices``)."""
    from edgecnn.devices.backends import get_backend

    text = get_backend("edgetpu").sandbox().udev_rule_text
    if text is None:  # pragma: no cover - the Edge TPU backend always ships its rule
        raise ServiceError(f"{UDEV_RULE_NAME} is missing from the installed package.")
    return text


def default_executable() -> Path:
    """The ``edgecnn`` console script of the environment this Python runs in.

    Beside ``sys.executable`` in a virtualenv; otherwise the script this process was started as, or the
    one on PATH. The first that exists wins; the venv's path is returned when none does (the installer
    then asks for ``--executable``).
    """
    beside = Path(sys.executable).parent / "edgecnn"
    started_as = Path(sys.argv[0]) if sys.argv and Path(sys.argv[0]).name == "edgecnn" else None
    on_path = shutil.which("edgecnn")
    for candidate in (beside, started_as, Path(on_path) if on_path else None):
        if candidate is not None and candidate.is_file():
            return Path(os.path.abspath(candidate))
    return beside


def _check_text(value: str, what: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"{what} {value!r} contains control characters: systemd cannot express it.")


def quote_exec_word(word: str) -> str:
    """One ExecStart= word, double-quoted (systemd.syntax(7)): backslash and quote escaped, ``%`` and
    ``$`` doubled so systemd neither expands specifiers nor environment variables in it."""
    _check_text(word, "ExecStart= argument")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def quote_path_word(path: str) -> str:
    """A path for BindReadOnlyPaths=: quoted, specifiers escaped, ``:`` escaped (it separates src:dst)."""
    _check_text(path, "path")
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace(":", "\\:")
    return f'"{escaped}"'


def _under(path: Path, parents: Iterable[Path]) -> bool:
    return any(path == p or p in path.parents for p in parents)


def _interpreter(executable: Path) -> Path | None:
    """The interpreter named on a console script's ``#!`` line, if it has one."""
    try:
        with executable.open("rb") as fh:
            first = fh.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words and words[0].startswith("/") else None


def _minimal(paths: Iterable[Path]) -> list[Path]:
    """Drop paths inside another listed path; sorted."""
    unique = sorted(set(paths))
    return [p for p in unique if not any(q != p and q in p.parents for q in unique)]


def home_paths(executable: Path) -> list[Path]:
    """Folders under /home, /root or /run/user that the service must see to run ``executable``.

    The console script, its environment (``bin/..``), the interpreter on its ``#!`` line and where that
    really lives (pyenv, a venv's base Python), and, for the running environment, ``sys.prefix``,
    ``sys.base_prefix`` and the folder edgecnn is imported from (an editable install).
    """
    candidates: list[Path] = [executable.parent.parent]
    interpreter = _interpreter(executable)
    if interpreter is not None:
        candidates += [interpreter.parent.parent, interpreter.resolve().parent.parent]
    if executable.parent.resolve() == Path(sys.executable).parent.resolve():
        import edgecnn

        candidates += [Path(sys.prefix), Path(sys.base_prefix), Path(edgecnn.__file__).parent.parent]
    resolved = [Path(os.path.realpath(p)) for p in candidates] + [
        Path(os.path.abspath(p)) for p in candidates
    ]
    return _minimal(p for p in resolved if _under(p, HOME_DIRS + TMP_DIRS))


@dataclass(frozen=True)
class UnitSettings:
    executable: Path
    home_binds: list[Path] = field(default_factory=list)


def unit_settings(executable: Path | None = None) -> UnitSettings:
    exe = Path(executable) if executable is not None else default_executable()
    if not exe.is_absolute():
        raise UsageError(f"--executable {exe} must be an absolute path (systemd runs it from /).")
    return UnitSettings(exe, home_paths(exe))


def render_unit(settings: UnitSettings) -> str:
    """The template with ExecStart= and home access filled in."""
    text = read_template()
    in_home = [p for p in settings.home_binds if _under(p, HOME_DIRS)]
    if settings.home_binds:
        binds = " ".join(quote_path_word(str(p)) for p in settings.home_binds)
        home = (
            "# The Python environment lives in a home or temporary folder, which ProtectHome=/PrivateTmp= hide:\n"
            "# show only that, read-only.\n"
            f"ProtectHome={'tmpfs' if in_home else 'yes'}\nBindReadOnlyPaths={binds}"
        )
    else:
        home = "ProtectHome=yes"
    text = text.replace("@EXEC_START@", quote_exec_word(str(settings.executable)))
    text = text.replace("@PROTECT_HOME@", home)
    left = [p for p in _PLACEHOLDERS if p in text]
    if left:
        raise ServiceError(
            f"Unit template still has {left} after rendering: the installed package is damaged."
        )
    return text


def check_ip(value: str) -> str:
    """An IPAddressAllow= entry: a systemd keyword, an address or a prefix."""
    text = value.strip()
    if text in IP_KEYWORDS:
        return text
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise UsageError(
            f"--allow-ip {value!r} is not an address, a prefix (192.0.2.0/24) or one of {', '.join(IP_KEYWORDS)}."
        ) from None


SERVE_TOKEN_CREDENTIAL = "serve-token"


def token_path(name: str) -> PurePosixPath:
    """Where ``service install`` keeps an instance's serve token (mode 0600, root)."""
    return PurePosixPath("/etc/edgecnn") / f"{name}.token"


def uses_edgetpu(device: str | None) -> bool:
    """Whether an instance may open a Coral: ``edgetpu``, ``edgetpu:...`` or ``auto`` (per the registry)."""
    if not device:
        return False
    from edgecnn.devices.backends import backends_for

    return any(backend.key == "edgetpu" for backend in backends_for(device))


def render_dropin(
    name: str,
    *,
    edgetpu: bool,
    description: str | None = None,
    allow_ip: Iterable[str] = (),
    serve_token: bool = False,
    private_network: bool = False,
) -> str | None:
    """Per-instance additions to the template, or None when the template alone is enough.

    ``description``: what the instance's model does (``object detector``), for ``Description=``: the
    template is shared by every instance, so only the drop-in can say it. ``serve_token``: hand ``/etc/edgecnn/NAME.token`` (root-only) to the service as the ``serve-token``
    credential, which ``edgecnn run`` reads from ``$CREDENTIALS_DIRECTORY``. ``private_network``: the
    instance neither serves, publishes nor reads a stream, so it gets no network at all.
    """
    lines: list[str] = []
    if serve_token:
        lines += [
            "# The --serve token (root-only file); edgecnn run reads it from $CREDENTIALS_DIRECTORY.",
            f"LoadCredential={SERVE_TOKEN_CREDENTIAL}:{token_path(name)}",
        ]
    if private_network:
        lines += [
            "# No --serve, no MQTT, no network stream: no network (a loopback of its own), no IP sockets.",
            "PrivateNetwork=yes",
            "RestrictAddressFamilies=",
            "RestrictAddressFamilies=AF_UNIX",
        ]
    if edgetpu:  # what the Edge TPU backend says its devices need (edgecnn.devices.backends.edgetpu.sandbox)
        from edgecnn.devices.backends import get_backend

        lines += get_backend("edgetpu").sandbox().dropin
    ips = [check_ip(v) for v in allow_ip]
    if ips:
        lines += [
            "# Addresses beyond the LAN that this instance talks to (--allow-ip).",
            "IPAddressAllow=" + " ".join(ips),
        ]
    if not lines and description is None:
        return None
    header = (
        f"# Written by `edgecnn service install {name}`; removed by `edgecnn service uninstall {name}`.\n"
        f"# Applies to {unit_name(name)} only.\n"
    )
    if description is not None:
        _check_text(description, "Description")
        header += f"[Unit]\nDescription=edgecnn {description.replace('%', '%%')} (%i)\n"
    return header + ("[Service]\n" + "\n".join(lines) + "\n" if lines else "")
