"""Which libedgetpu the loader will open, what it is, and whether it pairs with this TFLite runtime.

libedgetpu is compiled against one TensorFlow Lite version. Coral's own package (``libedgetpu1-std`` 16.0)
was built against TF 2.5 and crashes the process when loaded into a TFLite runtime newer than 2.11; the
fix is a libedgetpu and a runtime built from the same TensorFlow. This module finds the library exactly
the way :func:`edgecnn.devices.backends.edgetpu.delegate.load_edgetpu_delegate` does (per-OS name, ``EDGECNN_EDGETPU_LIB``
overrides it), asks dpkg which package installed it, asks the library itself (``edgetpu_version()``, called
in a child process so a broken library never takes this one down) and looks the pair up in
``edgetpu_pairings.json``: a table of public reports shipped as package data, not if-chains in code.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgecnn.devices.backends.edgetpu.delegate import EDGETPU_LIB_ENV, edgetpu_library
from edgecnn.errors import DeviceError, RuntimeMissing
from edgecnn.runtime import Runtime, get_runtime

log = logging.getLogger(__name__)

PAIRINGS_FILE = "edgetpu_pairings.json"
DPKG_TIMEOUT_S = 10.0
VERDICTS = ("known-good", "known-bad", "unknown", "not-installed")
_RUNTIME_VERSION = re.compile(r"RuntimeVersion\((\d+)\)")


@dataclass(frozen=True)
class LibraryInfo:
    """What a child process found when it opened the library (see ``edgecnn.devices.backends.edgetpu.probe``)."""

    requested: str  # the name or path the loader opens
    path: str | None = None  # the file the dynamic linker picked
    loads: bool = False
    error: str | None = None  # why it does not load (one line)
    version: str | None = None  # edgetpu_version(), when exported
    delegate_symbol: bool = False  # exports tflite_plugin_create_delegate
    crash: str | None = None  # signal name when merely opening it killed the child (e.g. "SIGSEGV")


@dataclass(frozen=True)
class LibraryBuild:
    """A row of the pairing table's ``libraries``, with its ``{tf}`` placeholder filled in."""

    id: str
    name: str
    built_for_tf: str | None
    sources: list[str]


@dataclass(frozen=True)
class Verdict:
    verdict: str  # one of VERDICTS
    reason: str | None = None
    fix: str | None = None
    sources: list[str] = field(default_factory=list)


@dataclass
class EdgeTPUDiagnosis:
    """libedgetpu and the TFLite runtime as this process would pair them (``edgecnn devices``)."""

    library: str  # what the loader opens: EDGECNN_EDGETPU_LIB or the per-OS name
    library_from_env: bool
    library_path: str | None
    library_loads: bool
    library_error: str | None
    version_string: str | None  # edgetpu_version()
    runtime_version: int | None  # the N of RuntimeVersion(N): 14 is libedgetpu 16.0
    delegate_symbol: bool
    package: str | None  # Debian package that installed the file (dpkg), e.g. libedgetpu1-std:arm64
    package_version: str | None
    build: str | None  # identified build, e.g. "libedgetpu 16.0 (Coral's libedgetpu1-std/-max package)"
    built_for_tf: str | None
    tflite_runtime: str | None  # ai-edge-litert, tflite-runtime, tensorflow
    tflite_runtime_module: str | None
    tflite_runtime_version: str | None
    verdict: str
    reason: str | None
    fix: str | None
    sources: list[str]
    known_good: list[str]  # the pairs the table knows to work, for the user picking one
    devices: list[
        dict[str, Any]
    ]  # Edge TPUs seen on the bus (edgecnn.devices.backends.edgetpu.bus.find_edgetpus)
    summary: str = ""

    def describe_library(self) -> str:
        """Short name for messages: "libedgetpu 16.0 (built for TF 2.5)" or the path and version string."""
        if self.build and self.built_for_tf:
            short = self.build.split(" (", 1)[0]
            return f"{short} (built for TF {self.built_for_tf})"
        where = self.library_path or self.library
        return f"{where} ({self.version_string or 'version unknown'})"

    def describe_runtime(self) -> str:
        if not self.tflite_runtime:
            return "no TFLite runtime"
        return f"{self.tflite_runtime} {self.tflite_runtime_version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the pairing table --------------------------------------------------------------------------------


@functools.cache
def load_pairings() -> dict[str, Any]:
    """The shipped table (``edgecnn/devices/edgetpu_pairings.json``)."""
    text = (
        resources.files("edgecnn.devices.backends.edgetpu")
        .joinpath(PAIRINGS_FILE)
        .read_text(encoding="utf-8")
    )
    table: dict[str, Any] = json.loads(text)
    return table


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric components: "2.5.0.post1" -> (2, 5, 0), "16.0tf2.17.1-1" -> (16, 0)."""
    parts = []
    for piece in version.split("."):
        match = re.match(r"[0-9]+", piece)
        if not match:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts)


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


def version_matches(version: str, row: dict[str, Any]) -> bool:
    """``versions`` (component prefix: "2.17.1" matches "2.17.1.post1"), ``min`` inclusive, ``below`` exclusive."""
    have = version_tuple(version)
    if not have:
        return False
    listed = row.get("versions")
    if listed is not None and not any(have[: len(version_tuple(v))] == version_tuple(v) for v in listed):
        return False
    if row.get("min") is not None and _compare(have, version_tuple(row["min"])) < 0:
        return False
    return not (row.get("below") is not None and _compare(have, version_tuple(row["below"])) >= 0)


def identify_library(
    package_version: str | None, version_string: str | None, table: dict[str, Any] | None = None
) -> LibraryBuild | None:
    """The first ``libraries`` row whose package-version pattern or exact version string matches."""
    table = table or load_pairings()
    for row in table.get("libraries", []):
        groups: dict[str, str] | None = None
        if package_version:
            for pattern in row.get("package_versions", []):
                match = re.match(pattern, package_version)
                if match:
                    groups = {k: v for k, v in match.groupdict().items() if v is not None}
                    break
        if groups is None and version_string and version_string in row.get("version_strings", []):
            groups = {}
        if groups is None:
            continue
        try:
            name = row["name"].format(**groups)
            built_for = row["built_for_tf"].format(**groups) if row.get("built_for_tf") else None
        except KeyError:  # a placeholder the matching pattern did not capture: the row is malformed
            log.debug("pairing row %s needs a group its pattern did not capture", row.get("id"))
            continue
        return LibraryBuild(row["id"], name, built_for, list(row.get("sources", [])))
    return None


def known_good_pairs(table: dict[str, Any] | None = None) -> list[str]:
    table = table or load_pairings()
    return [
        row["label"]
        for row in table.get("pairings", [])
        if row["verdict"] == "known-good" and row.get("label")
    ]


def pairing_verdict(
    build: LibraryBuild | None,
    runtime_name: str | None,
    runtime_version: str | None,
    table: dict[str, Any] | None = None,
) -> Verdict:
    """The first ``pairings`` row for this build and runtime, else ``unknown``."""
    table = table or load_pairings()
    good = known_good_pairs(table)
    suggestion = "known-good pairs: " + "; ".join(good) if good else None
    if build is None:
        return Verdict(
            "unknown",
            "this libedgetpu build is not in the pairing table (dpkg does not know the file and its "
            "edgetpu_version() string is not a known one)",
            suggestion,
        )
    if not runtime_name or not runtime_version:
        return Verdict("unknown", "no TFLite runtime is installed", "pip install ai-edge-litert")
    for row in table.get("pairings", []):
        if row["library"] != build.id or row["runtime"] not in (runtime_name, "*"):
            continue
        if row.get("built_for_tf") and row["built_for_tf"] != build.built_for_tf:
            continue
        if not version_matches(runtime_version, row):
            continue
        reason = row.get("reason") or row.get("label")
        return Verdict(row["verdict"], reason, row.get("fix"), list(row.get("sources", [])))
    return Verdict(
        "unknown",
        f"no public report pairs {build.name} with {runtime_name} {runtime_version}",
        suggestion,
        list(build.sources),
    )


# --- facts about the installed library ----------------------------------------------------------------


def _dpkg_candidates(path: str) -> list[str]:
    """The path as found, its target, and their /lib <-> /usr/lib twins (merged-/usr systems)."""
    paths = [path, os.path.realpath(path)]
    for p in list(paths):
        if p.startswith("/usr/lib/"):
            paths.append(p[len("/usr") :])
        elif p.startswith("/lib/"):
            paths.append("/usr" + p)
    return list(dict.fromkeys(paths))


def dpkg_package(path: str) -> tuple[str, str] | None:
    """``(package, version)`` of the Debian package that installed ``path``; ``None`` without dpkg or owner."""
    dpkg_query = shutil.which("dpkg-query")
    if not dpkg_query:
        return None
    for candidate in _dpkg_candidates(path):
        owner = _run([dpkg_query, "-S", candidate])
        if owner is None:
            continue
        # "libedgetpu1-std:arm64: /usr/lib/aarch64-linux-gnu/libedgetpu.so.1.0" (diversions start "diversion")
        lines = [ln for ln in owner.splitlines() if ln and not ln.startswith("diversion ")]
        if not lines:
            continue
        packages, sep, _ = lines[0].rpartition(": ")
        if not sep:
            continue
        package = packages.split(",")[0].strip()
        version = _run([dpkg_query, "-W", "-f=${Version}", package])
        if version:
            return package, version.strip()
    return None


def _run(argv: list[str]) -> str | None:
    """stdout of ``argv``, or ``None`` when it fails (the caller treats that as "dpkg does not know")."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DPKG_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", argv[0], exc)
        return None
    if proc.returncode != 0:
        log.debug("%s exited %d: %s", " ".join(argv), proc.returncode, proc.stderr.strip())
        return None
    return proc.stdout


def edgetpus_on_bus(sysfs_root: Path, dev_root: Path) -> list[dict[str, Any]]:
    """Edge TPUs the bus shows (a hint for messages; the library decides what actually works)."""
    from edgecnn.devices.backends.edgetpu.bus import find_edgetpus

    return [d.to_dict() for d in find_edgetpus(sysfs_root, dev_root)]


def _summary(d: EdgeTPUDiagnosis) -> str:
    runtime = d.describe_runtime()
    if d.verdict == "not-installed":
        return (
            f"{d.library} not found ({runtime}): no Edge TPU runtime installed; "
            "see docs/coral.md ('Raspberry Pi 5 and Coral USB') for a working pair"
        )
    text = f"{d.describe_library()} with {runtime}: {d.verdict}"
    if d.reason:
        text += f" ({d.reason})"
    return text


def diagnose_edgetpu(
    *,
    sysfs_root: Path = Path("/sys"),
    dev_root: Path = Path("/dev"),
    library: str | None = None,
    runtime: Runtime | None = None,
    library_info: LibraryInfo | None = None,
) -> EdgeTPUDiagnosis:
    """Find libedgetpu as the loader would, identify it, and judge its pairing with the TFLite runtime.

    ``library`` overrides the loader's choice (default: ``EDGECNN_EDGETPU_LIB`` or the per-OS name);
    ``library_info`` reuses what a probe child already reported instead of starting another child.
    Nothing here loads the library into this process.
    """
    from_env = library is None and bool(os.environ.get(EDGETPU_LIB_ENV))
    if library_info is None:
        from edgecnn.devices.backends.edgetpu.probe import inspect_library

        try:
            requested = library or edgetpu_library()
        except DeviceError as exc:
            library_info = LibraryInfo(requested=library or "libedgetpu", error=str(exc))
        else:
            library_info = inspect_library(requested)
    rt_name: str | None = None
    rt_module: str | None = None
    rt_version: str | None = None
    try:
        rt = runtime or get_runtime()
        rt_name, rt_module, rt_version = rt.name, rt.module, rt.version
    except RuntimeMissing:
        pass

    package = dpkg_package(library_info.path) if library_info.path else None
    version_number = None
    if library_info.version:
        match = _RUNTIME_VERSION.search(library_info.version)
        version_number = int(match.group(1)) if match else None
    build = identify_library(package[1] if package else None, library_info.version)
    if not library_info.loads:
        verdict = Verdict("not-installed", library_info.error, None)
    elif not library_info.delegate_symbol:
        verdict = Verdict(
            "unknown",
            f"{library_info.path or library_info.requested} exports no tflite_plugin_create_delegate: "
            "it is not an Edge TPU delegate library",
            f"point {EDGETPU_LIB_ENV} at libedgetpu.so.1 or unset it",
        )
    else:
        verdict = pairing_verdict(build, rt_name, rt_version)
    diagnosis = EdgeTPUDiagnosis(
        library=library_info.requested,
        library_from_env=from_env,
        library_path=library_info.path,
        library_loads=library_info.loads,
        library_error=library_info.error,
        version_string=library_info.version,
        runtime_version=version_number,
        delegate_symbol=library_info.delegate_symbol,
        package=package[0] if package else None,
        package_version=package[1] if package else None,
        build=build.name if build else None,
        built_for_tf=build.built_for_tf if build else None,
        tflite_runtime=rt_name,
        tflite_runtime_module=rt_module,
        tflite_runtime_version=rt_version,
        verdict=verdict.verdict,
        reason=verdict.reason,
        fix=verdict.fix,
        sources=verdict.sources,
        known_good=known_good_pairs(),
        devices=edgetpus_on_bus(sysfs_root, dev_root),
    )
    diagnosis.summary = _summary(diagnosis)
    return diagnosis
