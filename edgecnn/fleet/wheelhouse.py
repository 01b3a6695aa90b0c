"""One wheelhouse per (architecture, Python) seen in the fleet, built on the operator's machine.

Devices in the field often cannot reach a package index, and nothing should compile on a Raspberry Pi.
So the operator's machine downloads binary wheels for each target with ``pip download --only-binary=:all:
--platform ... --python-version ... --implementation cp --abi ...`` and the devices install from that
folder with ``pip install --no-index --find-links``. The platform tags go from manylinux2014 (glibc
2.17) up to the glibc the device reported, so pip never picks a wheel the device cannot load.

The edgecnn wheel itself is built from the checkout edgecnn runs from (``pip wheel --no-deps`` of a copy
of the project, with a fixed ``SOURCE_DATE_EPOCH`` so that the same sources give the same bytes and a
second deploy changes nothing). An installed edgecnn (not a checkout) has no sources to build from: pass
the wheel you installed with ``--wheel FILE``.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgecnn.atomic import atomic_path, write_atomic
from edgecnn.digest import sha256_file
from edgecnn.errors import EdgecnnError, UsageError

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 1800.0
# 1980-01-02: the zip format's epoch is 1980; a fixed date makes the built wheel byte-for-byte repeatable.
SOURCE_DATE_EPOCH = "315619200"
MANYLINUX2014_GLIBC = 17  # manylinux2014 == manylinux_2_17
DEFAULT_GLIBC = "2.28"  # when a device did not report its glibc: Debian buster and newer have it
# manylinux2014 exists for these; manylinux_2_x for any architecture.
_MANYLINUX2014_ARCHS = ("x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x")
_COPY_IGNORE = (".git", ".venv", "venv", "build", "dist", "runs", "__pycache__", "*.egg-info", ".*_cache")
DOWNLOAD_STAMP = ".edgecnn-download.json"


class WheelhouseError(EdgecnnError):
    """pip could not download or build what a target needs (exit 1)."""


@dataclass(frozen=True)
class Target:
    """What a device can install: machine architecture (``uname -m``), CPython X.Y and glibc X.Y."""

    arch: str
    python: str
    glibc: str | None = None

    @property
    def key(self) -> str:
        return f"{self.arch}-cp{self.python.replace('.', '')}"

    @property
    def abi(self) -> str:
        return f"cp{self.python.replace('.', '')}"


def platform_tags(target: Target) -> list[str]:
    """manylinux tags a device with ``target.glibc`` can load, oldest first (``pip download --platform``)."""
    arch = target.arch
    major, _, minor = (target.glibc or DEFAULT_GLIBC).partition(".")
    if major != "2" or not (minor.isascii() and minor.isdigit()):
        raise UsageError(f"Unexpected glibc version {target.glibc!r} on a {arch} device (expected 2.N).")
    tags = [f"manylinux2014_{arch}"] if arch in _MANYLINUX2014_ARCHS else []
    tags += [f"manylinux_2_{n}_{arch}" for n in range(MANYLINUX2014_GLIBC, int(minor) + 1)]
    return tags


def download_argv(
    target: Target, requirements: Iterable[str], dest: Path, *, python: str = sys.executable
) -> list[str]:
    """``pip download`` of binary wheels for ``target`` (never this machine's platform) into ``dest``."""
    if not re.fullmatch(r"3\.\d{1,2}", target.python):
        raise UsageError(f"Unexpected Python version {target.python!r} (expected 3.N).")
    argv = [python, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest)]
    for tag in platform_tags(target):
        argv += ["--platform", tag]
    argv += ["--python-version", target.python, "--implementation", "cp"]
    for abi in (target.abi, "abi3", "none"):
        argv += ["--abi", abi]
    return [*argv, *requirements]


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's runtime requirements (``Requires-Dist`` without extras), from its METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise UsageError(f"{wheel} has no .dist-info/METADATA: is it a wheel?")
        meta = email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))
    return sorted(r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r.replace('"', "'"))


def wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    if len(parts) < 5 or not wheel.name.endswith(".whl"):
        raise UsageError(f"{wheel.name} is not a wheel file name (NAME-VERSION-TAGS.whl).")
    return parts[1]


def find_project_root() -> Path | None:
    """The checkout this edgecnn is imported from (editable install or ``python -m`` in the clone)."""
    import edgecnn

    root = Path(edgecnn.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and re.search(r'(?m)^name\s*=\s*"edgecnn"', pyproject.read_text(encoding="utf-8")):
        return root
    return None


def _run(argv: list[str], what: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    log.debug("running %s", argv)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired:
        raise WheelhouseError(f"{what}: pip did not finish within {PIP_TIMEOUT_S:.0f} s.") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-4:])
        raise WheelhouseError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def build_project_wheel(dest: Path, *, source: Path | None = None) -> Path:
    """``pip wheel --no-deps`` of a copy of the project (the checkout gets no build/ or egg-info)."""
    import importlib.util

    source = source or find_project_root()
    if source is None:
        raise UsageError(
            "edgecnn is not running from a checkout, so there are no sources to build its wheel from: pass "
            "--wheel FILE (the edgecnn wheel you installed, e.g. from `pip download edgecnn --no-deps`)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgecnn-fleet-src.") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*_COPY_IGNORE), symlinks=True)
        out = Path(tmp) / "wheel"
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
        if importlib.util.find_spec("setuptools") is not None:
            argv.append("--no-build-isolation")  # no index needed when setuptools is here already
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_NO_INPUT": "1"}
        _run([*argv, str(copy)], f"building the edgecnn wheel from {source}", env=env)
        wheels = sorted(out.glob("edgecnn-*.whl"))
        if len(wheels) != 1:
            raise WheelhouseError(f"expected one edgecnn wheel from {source}, got {[w.name for w in wheels]}")
        target = dest / wheels[0].name
        with atomic_path(target) as staged:
            shutil.copyfile(wheels[0], staged)
    return target


def folder_digest(folder: Path) -> str:
    """sha256 over the names and contents of the wheels in ``folder``: what a device's venv was built from."""
    digest = hashlib.sha256()
    for wheel in sorted(folder.glob("*.whl")):
        digest.update(f"{wheel.name} {sha256_file(wheel)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Wheelhouse:
    target: Target
    folder: Path
    wheel: Path  # the edgecnn wheel inside ``folder``
    digest: str  # folder_digest(folder)
    downloaded: bool  # False when the folder was reused as it was
    archive: Path  # the wheels as one tar: one transfer to a device instead of one per wheel


def pack(folder: Path, digest: str) -> Path:
    """The wheels of ``folder`` as ``folder.DIGEST.tar``: sorted, fixed owner and times, so the same
    wheels give the same bytes. Older archives of the folder are removed."""
    import tarfile

    archive = folder.parent / f"{folder.name}.{digest[:16]}.tar"
    if archive.is_file():
        return archive
    for old in folder.parent.glob(f"{folder.name}.*.tar"):
        old.unlink()
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for wheel in sorted(folder.glob("*.whl")):
            info = tar.gettarinfo(str(wheel), arcname=wheel.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "root", "root", 0o644
            with wheel.open("rb") as f:
                tar.addfile(info, f)
    return archive


def prepare_wheelhouse(target: Target, wheel: Path, cache: Path, *, online: bool = False) -> Wheelhouse:
    """``cache/<target.key>/`` with the edgecnn ``wheel`` and (unless ``online``) every runtime dependency.

    The download is skipped when the folder already holds the downloads for the same requirements and
    platform tags (a stamp file records them): a second deploy needs no index.
    """
    folder = cache / (target.key + ("-online" if online else ""))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("edgecnn-*.whl"):
        if old.name != wheel.name:
            old.unlink()
    placed = folder / wheel.name
    if not placed.is_file() or sha256_file(placed) != sha256_file(wheel):
        with atomic_path(placed) as tmp:
            shutil.copyfile(wheel, tmp)
    downloaded = False
    if not online:
        requirements = wheel_requirements(wheel)
        stamp_data = {
            "requirements": requirements,
            "platforms": platform_tags(target),
            "python": target.python,
        }
        stamp = folder / DOWNLOAD_STAMP
        try:
            current = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None
        if current != stamp_data:
            _run(
                download_argv(target, requirements, folder),
                f"downloading wheels for {target.key} (glibc {target.glibc or DEFAULT_GLIBC})",
                env={**os.environ, "PIP_NO_INPUT": "1"},
            )
            write_atomic(stamp, json.dumps(stamp_data, indent=1).encode("utf-8"))
            downloaded = True
    digest = folder_digest(folder)
    return Wheelhouse(target, folder, placed, digest, downloaded, pack(folder, digest))


def default_cache() -> Path:
    """``$EDGECNN_FLEET_CACHE``, else ``$XDG_CACHE_HOME/edgecnn/fleet`` (``~/.cache/edgecnn/fleet``)."""
    if os.environ.get("EDGECNN_FLEET_CACHE"):
        return Path(os.environ["EDGECNN_FLEET_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgecnn" / "fleet"
