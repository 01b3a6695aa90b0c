"""Crash containment for the Edge TPU: try libedgetpu in a child process before this process loads it.

A libedgetpu built for another TensorFlow Lite version does not raise an exception: it kills the process
with a segmentation fault when the delegate is created or on the first invoke, and a systemd service
restarts into the same crash forever. So before the first Edge TPU delegate load in a process,
:func:`probe_edgetpu` runs ``python -m edgecnn.devices.backends.edgetpu.probe probe ...`` (same interpreter, same
environment, same runtime), which loads the delegate through the production loader
(:func:`edgecnn.devices.backends.edgetpu.delegate.load_edgetpu_delegate`) with the chosen device string, allocates the
model and runs one inference. When the child dies by a signal, hangs past the timeout or fails, the parent
raises one typed error saying what happened and what to do (:class:`~edgecnn.errors.DelegateCrashed`,
:class:`~edgecnn.errors.EdgeTPUNotFound`); the parent itself never touches the library.

The child reports its progress as JSON lines on a pipe of its own (the C++ runtime writes to stdout and
stderr freely), so the parent knows the stage the library died in. A passing probe is remembered per
(library sha256, runtime version, model sha256, device) in ``$XDG_CACHE_HOME/edgecnn`` (else
``~/.cache/edgecnn``), so a service restart does not pay for it twice.

``EDGECNN_PROBE_TIMEOUT`` (seconds, default 30) bounds the child: the first use of a Coral USB
Accelerator uploads its firmware, and a Raspberry Pi takes a second or two to import the runtime.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.devices.backends.edgetpu.delegate import EDGETPU_LIB_ENV, edgetpu_library, load_edgetpu_delegate
from edgecnn.devices.backends.edgetpu.pairing import EdgeTPUDiagnosis, LibraryInfo, diagnose_edgetpu
from edgecnn.digest import sha256_file
from edgecnn.errors import (
    DelegateCrashed,
    DeviceError,
    EdgecnnError,
    EdgeTPUNotFound,
    ModelInvokeError,
    UsageError,
    one_line,
)
from edgecnn.runtime import get_runtime

if TYPE_CHECKING:
    from edgecnn.modelfile import ModelFile
    from edgecnn.runtime import Runtime

log = logging.getLogger(__name__)

PROBE_TIMEOUT_ENV = "EDGECNN_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT_S = 30.0
LIBRARY_TIMEOUT_S = 20.0
CACHE_SUBDIR = "edgetpu-probe"
RTLD_DI_LINKMAP = 2  # <dlfcn.h>: dlinfo() request for the library's struct link_map
STAGES = {
    "open": "opening the library",
    "delegate": "creating the delegate",
    "allocate": "preparing the model",
    "invoke": "running the first inference",
}
NO_TPU_ON_BUS = "none on the bus: looked for USB 1a6e:089a/18d1:9302 and /dev/apex_*"

_passed: set[str] = set()  # (library name, runtime, model, device) probes that passed in this process


# --- child side ---------------------------------------------------------------------------------------


class _LinkMap(ctypes.Structure):
    # The first two fields of glibc's struct link_map: load address and the path the linker opened.
    _fields_ = [("l_addr", ctypes.c_void_p), ("l_name", ctypes.c_char_p)]


def _dlinfo() -> Any:
    for name in (None, "libdl.so.2"):  # glibc >= 2.34 has dlinfo in libc; older ones in libdl
        try:
            return ctypes.CDLL(name).dlinfo
        except (OSError, AttributeError):
            continue
    return None


def _loaded_path(lib: ctypes.CDLL, requested: str) -> str | None:
    """The file the dynamic linker picked for ``requested`` (a bare soname is searched like dlopen does)."""
    dlinfo = _dlinfo()
    if dlinfo is not None:
        link_map = ctypes.POINTER(_LinkMap)()
        dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        dlinfo.restype = ctypes.c_int
        if dlinfo(lib._handle, RTLD_DI_LINKMAP, ctypes.byref(link_map)) == 0 and link_map:
            name = link_map.contents.l_name
            if name:
                return os.path.abspath(name.decode(errors="replace"))
    return os.path.abspath(requested) if os.sep in requested else None


def _inspect(requested: str) -> dict[str, Any]:
    """dlopen the library and read its own version; runs in the child only."""
    try:
        lib = ctypes.CDLL(requested)
    except OSError as exc:
        return {"requested": requested, "loads": False, "error": one_line(exc)}
    version = None
    if hasattr(lib, "edgetpu_version"):
        fn = lib.edgetpu_version
        fn.argtypes = []
        fn.restype = ctypes.c_char_p
        raw = fn()
        version = raw.decode(errors="replace") if raw else None
    return {
        "requested": requested,
        "path": _loaded_path(lib, requested),
        "loads": True,
        "version": version,
        "delegate_symbol": hasattr(lib, "tflite_plugin_create_delegate"),
    }


def _probe(model: str, tpu: str | None, emit: Callable[..., None]) -> None:
    """Load the delegate the way production does, allocate the model, run one inference."""
    import numpy as np  # here, not at the top: the library-only child stays light

    runtime = get_runtime()
    emit(event="stage", stage="delegate")
    delegate = load_edgetpu_delegate(runtime, tpu)
    emit(event="stage", stage="allocate")
    interpreter = runtime.interpreter_class(model_path=model, experimental_delegates=[delegate])
    interpreter.allocate_tensors()
    emit(event="stage", stage="invoke")
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
    interpreter.invoke()


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecnn.devices.backends.edgetpu.probe")
    parser.add_argument("mode", choices=["library", "probe"])
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--library")
    parser.add_argument("--model")
    parser.add_argument("--device")
    args = parser.parse_args(argv)
    try:  # a crash here is expected and reported by the parent: no core file in the service's folder
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass

    def emit(**event: Any) -> None:
        os.write(args.report_fd, (json.dumps(event) + "\n").encode())

    stage = "open"
    try:
        emit(event="stage", stage=stage)
        info = _inspect(args.library or edgetpu_library())
        emit(event="library", **info)
        if args.mode == "library":
            return 0
        if not info["loads"]:
            emit(event="error", stage=stage, type="OSError", message=info["error"], cause=None)
            return 1

        def staged(**event: Any) -> None:
            nonlocal stage
            stage = event.get("stage", stage)
            emit(**event)

        _probe(args.model, args.device or None, staged)
        emit(event="ok")
        return 0
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        emit(
            event="error",
            stage=stage,
            type=type(exc).__name__,
            message=one_line(exc),
            cause=one_line(cause) if cause else None,
        )
        return 1


# --- parent side --------------------------------------------------------------------------------------


@dataclass
class ChildOutcome:
    events: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    signal: str | None = None  # "SIGSEGV" when the child died by a signal
    timed_out: bool = False
    stderr: str = ""

    def last(self, event: str) -> dict[str, Any] | None:
        found = [e for e in self.events if e.get("event") == event]
        return found[-1] if found else None

    @property
    def stage(self) -> str:
        stage = self.last("stage")
        return str(stage["stage"]) if stage else "open"


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)  # every writer has exited or been killed: read what is there, never wait
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def run_child(args: list[str], *, timeout: float, env: dict[str, str] | None = None) -> ChildOutcome:
    """Run ``python -m edgecnn.devices.backends.edgetpu.probe ARGS`` and collect its report, however it ends."""
    read_fd, write_fd = os.pipe()
    try:
        argv = [
            sys.executable,
            "-m",
            "edgecnn.devices.backends.edgetpu.probe",
            *args,
            "--report-fd",
            str(write_fd),
        ]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        timed_out = False
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            _, err = proc.communicate()
        except BaseException:  # Ctrl-C while waiting: do not leave the child holding the Coral
            proc.kill()
            proc.wait()
            raise
        raw = _read_all(read_fd)
    finally:
        os.close(read_fd)
    events = []
    for line in raw.decode(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    code = proc.returncode
    sig = None
    if code is not None and code < 0 and not timed_out:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
    stderr = err.decode(errors="replace") if err else ""
    log.debug("tpu probe %s: exit %s, events %s, stderr %s", args[0], code, events, stderr.strip()[-2000:])
    return ChildOutcome(events, code, sig, timed_out, stderr)


def _last_line(stderr: str, default: str) -> str:
    """The child's last line of stderr that says something: LiteRT's INFO banners (the XNNPACK one comes
    with every allocation) are no reason for a failure."""
    from edgecnn.nativelog import is_chatter

    lines = [line for line in stderr.splitlines() if line.strip() and not is_chatter(line)]
    return lines[-1] if lines else default


def inspect_library(requested: str | None = None, *, timeout: float = LIBRARY_TIMEOUT_S) -> LibraryInfo:
    """Open the library in a child and report its path, version and delegate symbol (never in-process)."""
    requested = requested or edgetpu_library()
    outcome = run_child(["library", "--library", requested], timeout=timeout)
    report = outcome.last("library")
    if report is not None:
        return LibraryInfo(
            requested=requested,
            path=report.get("path"),
            loads=bool(report.get("loads")),
            error=report.get("error"),
            version=report.get("version"),
            delegate_symbol=bool(report.get("delegate_symbol")),
        )
    if outcome.signal:
        return LibraryInfo(requested, error=f"crashed ({outcome.signal}) when opened", crash=outcome.signal)
    if outcome.timed_out:
        return LibraryInfo(requested, error=f"opening it did not finish within {timeout:g} s")
    error = outcome.last("error")
    last_line = _last_line(outcome.stderr, "no report")
    detail = error["message"] if error else one_line(last_line)
    return LibraryInfo(requested, error=f"the probe could not inspect it: {detail}")


def probe_timeout() -> float:
    raw = os.environ.get(PROBE_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_PROBE_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise UsageError(f"{PROBE_TIMEOUT_ENV}={raw!r} is not a number of seconds between 0 and 3600.")
    return value


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edgecnn``, else ``~/.cache/edgecnn``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "edgecnn"


def _sha256_file(path: str) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def probe_key(library: LibraryInfo, runtime: Runtime, model_sha256: str, tpu: str | None) -> dict[str, str]:
    library_sha = _sha256_file(library.path) if library.path else None
    return {
        "library_sha256": library_sha or f"unknown:{library.requested}",
        "runtime": runtime.describe(),
        "model_sha256": model_sha256,
        "device": tpu or "",
    }


def _key_id(key: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _cache_file(key: dict[str, str]) -> Path:
    return cache_dir() / CACHE_SUBDIR / f"{_key_id(key)}.json"


def probe_cached(key: dict[str, str]) -> bool:
    """A probe with this key passed in an earlier process (per the cache file)."""
    if key["library_sha256"].startswith("unknown:"):
        return False  # cannot tell whether the library changed: probe every process
    try:
        entry = json.loads(_cache_file(key).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(entry, dict) and entry.get("key") == key


def remember_probe(key: dict[str, str], library: LibraryInfo) -> None:
    if key["library_sha256"].startswith("unknown:"):
        return
    from edgecnn.modelfile import write_atomic

    entry = {"key": key, "library": library.path, "version": library.version, "passed_at": time.time()}
    try:
        write_atomic(_cache_file(key), json.dumps(entry, indent=2).encode())
    except OSError as exc:  # a read-only home (DynamicUser services) only costs a probe per start
        log.debug("cannot write the probe cache %s: %s", _cache_file(key), exc)


def _cpu_hint(model_file: ModelFile, cpu_model: str | os.PathLike[str] | None) -> str:
    if cpu_model:
        return f"run the CPU model {cpu_model}"
    if model_file.is_edgetpu:
        return "run the CPU model (the same name without _edgetpu) with --device cpu"
    return "run on the CPU with --device cpu"


def _bus_hint(diagnosis: EdgeTPUDiagnosis) -> str:
    if not diagnosis.devices:
        return f" ({NO_TPU_ON_BUS})"
    seen = ", ".join(f"{d.get('kind')} {d.get('path')}" for d in diagnosis.devices)
    return (
        f" although the bus shows {seen}: check permissions (Coral's udev rules, the plugdev group) and that "
        "no other process holds it"
    )


def _crash_message(sig: str, stage: str, d: EdgeTPUDiagnosis, cpu_hint: str) -> str:
    head = f"Edge TPU runtime crashed ({sig} while {STAGES.get(stage, stage)}) loading {d.describe_library()} into {d.describe_runtime()}"
    if d.verdict == "known-bad":
        return f"{head}: a known-bad pairing; {d.fix or 'install a matching libedgetpu and runtime'}, or {cpu_hint}."
    if d.verdict == "known-good":
        return (
            f"{head}: a pairing known to work, so suspect the device: check the Coral's cable and power "
            f"(a USB 3 port, no unpowered hub) and `edgecnn devices`, or {cpu_hint}."
        )
    return (
        f"{head}: libedgetpu and the TFLite runtime were probably built from different TensorFlow versions; "
        f"install a matching pair (`edgecnn devices --json` lists the known-good ones), or {cpu_hint}."
    )


def _diagnosis(library: LibraryInfo, runtime: Runtime) -> EdgeTPUDiagnosis:
    return diagnose_edgetpu(library=library.requested, runtime=runtime, library_info=library)


def _check_library(library: LibraryInfo, runtime: Runtime, hint: str) -> None:
    """Raise unless the library opened in a child without crashing and exports the delegate entry point."""
    if library.crash:
        d = _diagnosis(library, runtime)
        raise DelegateCrashed(_crash_message(library.crash, "open", d, hint))
    if not library.loads:
        where = "" if os.environ.get(EDGETPU_LIB_ENV) else f" or point {EDGETPU_LIB_ENV} at it"
        raise EdgeTPUNotFound(
            f"No Edge TPU runtime: {library.requested} cannot be opened ({library.error}). Install libedgetpu "
            f"(`edgecnn devices --json` lists pairs known to work with {runtime.describe()}){where}, or {hint}."
        )
    if not library.delegate_symbol:
        raise EdgeTPUNotFound(
            f"{library.path or library.requested} is not an Edge TPU delegate library (it exports no "
            f"tflite_plugin_create_delegate): point {EDGETPU_LIB_ENV} at libedgetpu.so.1 or unset it, or {hint}."
        )


def _probe_failure(
    outcome: ChildOutcome,
    model_file: ModelFile,
    library: LibraryInfo,
    runtime: Runtime,
    timeout: float,
    hint: str,
) -> EdgecnnError:
    """The error for a probe child that did not pass: crashed, hung, or said why (by stage)."""
    stage = outcome.stage
    if outcome.signal:
        return DelegateCrashed(_crash_message(outcome.signal, stage, _diagnosis(library, runtime), hint))
    if outcome.timed_out:
        d = _diagnosis(library, runtime)
        return DelegateCrashed(
            f"Edge TPU runtime hung while {STAGES.get(stage, stage)} ({d.describe_library()} in "
            f"{d.describe_runtime()}, no answer within {timeout:g} s): check that the Coral is attached and "
            f"powered (`edgecnn devices`), raise {PROBE_TIMEOUT_ENV} if it is only slow, or {hint}."
        )
    error = outcome.last("error")
    if error is None:
        last = _last_line(outcome.stderr, f"exit code {outcome.returncode}")
        return DeviceError(
            f"The Edge TPU probe failed while {STAGES.get(stage, stage)}: {one_line(last)}. "
            f"Run with EDGECNN_DEBUG=1 for details, or {hint}."
        )
    detail = error.get("cause") or error.get("message") or error.get("type")
    if stage == "delegate":
        return EdgeTPUNotFound(
            f"No Edge TPU could be opened through {library.path or library.requested}: {detail}"
            f"{_bus_hint(_diagnosis(library, runtime))}. Plug in the Coral (`edgecnn devices` shows what is seen), or {hint}."
        )
    cls = DeviceError if model_file.is_edgetpu else ModelInvokeError
    return cls(
        f"The Edge TPU failed while {STAGES.get(stage, stage)} ({model_file.path or 'model from memory'}): "
        f"{str(detail).rstrip('.')}. {runtime_fix(str(detail))}, or {hint}."
    )


def probe_edgetpu(
    model_file: ModelFile,
    tpu: str | None,
    runtime: Runtime,
    *,
    cpu_model: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    use_cache: bool = True,
) -> None:
    """Raise unless libedgetpu loads, allocates ``model_file`` and runs it once, in a child process.

    ``tpu`` is pycoral's device string (usb, usb:N, pci, pci:N, :N or None for the first); ``cpu_model``
    names the CPU twin for the messages. Returns quietly when the probe passes or passed before.
    """
    timeout = probe_timeout() if timeout is None else timeout
    requested = edgetpu_library()
    model_sha = hashlib.sha256(model_file.data).hexdigest()
    # Once per process: after a pass the library is in this process already, nothing left to protect.
    in_process = _key_id(
        {"library": requested, "runtime": runtime.describe(), "model": model_sha, "device": tpu or ""}
    )
    if use_cache and in_process in _passed:
        return
    hint = _cpu_hint(model_file, cpu_model)
    library = inspect_library(requested, timeout=min(timeout, LIBRARY_TIMEOUT_S))
    _check_library(library, runtime, hint)
    key = probe_key(library, runtime, model_sha, tpu)
    if use_cache and probe_cached(key):
        log.debug("Edge TPU probe passed before for %s", key)
        _passed.add(in_process)
        return

    outcome = _run_probe(model_file, tpu, runtime, timeout)
    if outcome.last("ok") is not None and outcome.returncode == 0:
        remember_probe(key, library)
        _passed.add(in_process)
        return
    raise _probe_failure(outcome, model_file, library, runtime, timeout, hint)


_RUNTIME_MISMATCH = re.compile(
    r"requires runtime version \((\d+)\), which is newer than this runtime version \((\d+)\)"
)


def runtime_fix(detail: str) -> str:
    """What to do about a failed Edge TPU prepare: for libedgetpu's "Package requires runtime version (14),
    which is newer than this runtime version (13)" the ``-m`` to recompile with, else the general advice."""
    match = _RUNTIME_MISMATCH.search(detail)
    if match:
        needs, have = match.groups()
        return (
            f"The model was compiled for Edge TPU runtime {needs} and this libedgetpu is runtime {have}: "
            f"recompile with edgetpu_compiler -m {have} (edgecnn inspect --target edgetpu says whether its ops "
            "allow that), or install a newer libedgetpu"
        )
    return "Update libedgetpu or recompile the model for it"


def _run_probe(model_file: ModelFile, tpu: str | None, runtime: Runtime, timeout: float) -> ChildOutcome:
    env = dict(os.environ)
    env["EDGECNN_RUNTIME"] = runtime.module.split(".")[0]  # the child must use the parent's runtime
    temp: str | None = None
    try:
        if model_file.path is not None and model_file.path.is_file():
            model = os.fspath(model_file.path.absolute())
        else:
            fd, temp = tempfile.mkstemp(suffix=".tflite", prefix="edgecnn-probe-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(model_file.data)
            model = temp
        args = ["probe", "--model", model]
        if tpu:
            args += ["--device", tpu]
        return run_child(args, timeout=timeout, env=env)
    finally:
        if temp:
            Path(temp).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
