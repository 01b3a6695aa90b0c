"""Install, uninstall and list ``edgecnn@NAME.service`` instances.

``install_service`` checks everything before it writes anything: the configuration goes through the same
loader and validator as ``edgecnn run --config`` (:mod:`edgecnn.run.config`), the model must parse as
TFLite, and paths the sandbox hides (home folders, read-only locations for ``jsonl``) are refused with
the key named. Then, each file written atomically: the model (and its CPU twin) into
``/var/lib/edgecnn/models/NAME/``, ``/etc/edgecnn/NAME.toml``, the unit template, the per-instance drop-in
and, for the Edge TPU, the udev rule. Finally ``systemctl --root=DIR enable`` (an image) or
``daemon-reload`` + ``enable --now`` (this machine).

``uninstall_service`` removes exactly what ``install_service`` writes; the template and the udev rule go
with the last instance that needs them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgecnnError, ServiceError, UsageError
from edgecnn.safeio import FileKind, read_bytes
from edgecnn.service import systemctl
from edgecnn.service.layout import (
    CONFIG_DIR,
    LOGS_DIR,
    MODELS_DIR,
    STATE_DIR,
    Layout,
    check_name,
    unit_name,
)
from edgecnn.service.unit import (
    HOME_DIRS,
    UnitSettings,
    read_udev_rule,
    render_dropin,
    render_unit,
    token_path,
    unit_settings,
    uses_edgetpu,
)

if TYPE_CHECKING:  # for the types only: the functions below import these where they use them
    from edgecnn.modelfile import ModelFile
    from edgecnn.run.options import RunOptions

log = logging.getLogger(__name__)

FILE_MODE = 0o644  # the service's transient user must read config and models written by root
DIR_MODE = 0o755
# Folders the unit makes writable for the service (StateDirectory=, LogsDirectory=).
WRITABLE_DIRS = (STATE_DIR, LOGS_DIR)


@dataclass(frozen=True)
class InstallReport:
    name: str
    unit: str
    root: str
    config: str  # as the service sees it
    model: str  # as the service sees it
    files: list[str]  # written, as paths on this machine
    executable: str
    edgetpu: bool
    enabled: bool
    started: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class UninstallReport:
    name: str
    unit: str
    root: str
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _require_live_system() -> None:
    if os.geteuid() != 0:
        raise ServiceError(
            "Installing a system service writes /etc and runs systemctl: run it as root (sudo edgecnn "
            "service ...), or pass --root DIR to prepare an image without touching this machine."
        )
    if not systemctl.systemd_booted():
        raise ServiceError(
            "systemd is not running on this machine (no /run/systemd/system): pass --root DIR to prepare "
            "an image (e.g. a mounted SD card) and enable the service offline."
        )


def _under(path: PurePosixPath, parents: tuple[PurePosixPath, ...]) -> bool:
    return any(path == p or p in path.parents for p in parents)


def _is_local_source(value: str) -> bool:
    """A file or folder (as opposed to a camera index, URL, picamera2 or the demo generator)."""
    from edgecnn.devices.sources.spec import SourceKind, parse_source

    try:
        return parse_source(value).kind in (SourceKind.FILE, SourceKind.FOLDER)
    except EdgecnnError:
        return "://" not in value and not value.lower().startswith(("picamera2", "synthetic:"))


def _options(
    *,
    config: Path | None,
    cli: dict[str, Any],
) -> RunOptions:
    """RunOptions from ``--config FILE`` (if any) with the install flags applied over it."""
    from edgecnn.run.config import load_run_config, merge_cli
    from edgecnn.run.options import RunOptions

    base = load_run_config(config) if config is not None else RunOptions()
    if cli.get("source") is not None and _is_local_source(cli["source"]):
        cli = {**cli, "source": str(Path(cli["source"]).expanduser().absolute())}
    return merge_cli(base, cli)


def _fail(opts: RunOptions, key: str, problem: str) -> EdgecnnError:
    """Same shape as edgecnn.run.config's messages: the flag for CLI values, file and key otherwise."""
    from edgecnn.run.config import option_error

    if key == "model" and key in opts.from_cli:
        return UsageError(f"--model: {problem}")  # install takes --model, not a MODEL argument
    return option_error(opts, key, problem)


def _check_model(opts: RunOptions) -> ModelFile:
    from edgecnn.modelfile import read_model

    if opts.model is None or str(opts.model) == "":
        raise UsageError('No model: pass --model FILE.tflite (or set model = "..." in the --config file).')
    model = Path(opts.model).expanduser().absolute()
    if not os.path.lexists(model):
        raise _fail(opts, "model", f"model file {model} not found.")
    try:
        return read_model(model)
    except EdgecnnError as exc:
        raise _fail(opts, "model", str(exc)) from None


def _model_path(model_file: ModelFile) -> Path:
    """The file the model was read from (:func:`_check_model` reads it from one: never None here)."""
    assert model_file.path is not None
    return model_file.path


def _check_model_opens(opts: RunOptions, model_file: ModelFile) -> None:
    """Open the model the way ``edgecnn run`` will (its task, decoder, labels, options), so a model that
    predict and run refuse is refused here, not by a unit that then fails on every start. An Edge TPU
    model cannot be allocated on this CPU: its file was checked by read_model, the rest waits for the TPU."""
    if model_file.is_edgetpu:
        return
    from edgecnn.errors import InputError, RuntimeMissing
    from edgecnn.model import open_model
    from edgecnn.nativelog import native_chatter_filtered
    from edgecnn.run.pipeline import decode_options

    crop = None if opts.crop in (None, "none") else opts.crop
    try:
        with native_chatter_filtered():
            open_model(
                model_file,
                device="cpu",
                threads=1,
                labels=opts.labels,
                crop=crop,
                decode=decode_options(opts),
            )
    except RuntimeMissing:
        return  # an image being prepared on a host without a TFLite runtime: the file checks still ran
    except InputError as exc:
        raise _fail(opts, "labels", str(exc)) from None
    except EdgecnnError as exc:
        raise _fail(opts, "model", str(exc)) from None


def _check_sandbox_paths(opts: RunOptions, layout: Layout) -> RunOptions:
    """Paths the sandbox hides or keeps read-only; returns options whose paths make sense on this host."""
    changes: dict[str, Any] = {}
    if opts.jsonl is not None and opts.jsonl != "-":
        target = PurePosixPath(opts.jsonl)
        if not target.is_absolute() or not _under(target.parent, WRITABLE_DIRS):
            raise _fail(
                opts,
                "jsonl",
                f"the service can write only under {LOGS_DIR} or {STATE_DIR} (ProtectSystem=strict), not "
                f"{opts.jsonl}: use {LOGS_DIR}/NAME.jsonl, or '-' for the journal.",
            )
        changes["jsonl"] = None  # created by systemd at start (LogsDirectory=), not here
    if opts.clips is not None:
        target = PurePosixPath(opts.clips)
        if not target.is_absolute() or not _under(target, WRITABLE_DIRS):
            raise _fail(
                opts,
                "clips",
                f"the service can write only under {STATE_DIR} or {LOGS_DIR} (ProtectSystem=strict), not "
                f"{opts.clips}: use {STATE_DIR}/clips/NAME.",
            )
        changes["clips"] = None  # created by the run in the service's state folder, not here
    # Tracking's events file and snapshot folder (edgecnn.track): the same rule as jsonl.
    for key, example in (("events", "NAME-events.jsonl"), ("snapshots", "NAME-snapshots")):
        value = getattr(opts, key)
        if value is None:
            continue
        target = PurePosixPath(value)
        folder = target.parent if key == "events" else target
        if not target.is_absolute() or not _under(folder, WRITABLE_DIRS):
            raise _fail(
                opts,
                key,
                f"the service can write only under {LOGS_DIR} or {STATE_DIR} (ProtectSystem=strict), not "
                f"{value}: use {STATE_DIR}/{example}.",
            )
        changes[key] = None
    if opts.source is not None and _is_local_source(opts.source):
        target = PurePosixPath(opts.source)
        if _under(target, tuple(PurePosixPath(p) for p in HOME_DIRS)):
            raise _fail(
                opts,
                "source",
                f"{opts.source} is in a home folder, which the service cannot see (ProtectHome=): move it to "
                f"/srv or {STATE_DIR}.",
            )
        if layout.offline:
            changes["source"] = str(layout.host(target))
    return dataclasses.replace(opts, **changes)


def _keys_in(config: str | os.PathLike[str] | None) -> set[str]:
    """Keys a config file sets (it parsed already: load_run_config checked it)."""
    if config is None:
        return set()
    from edgecnn.safeio import loads_toml, read_text

    return set(loads_toml(read_text(config, FileKind.CONFIG), config))


def _live_source(opts: RunOptions) -> bool:
    from edgecnn.devices.sources.spec import parse_source

    return parse_source(opts.source, camera=opts.camera).live


def _model_copies(opts: RunOptions, model_file: ModelFile, device: str) -> list[Path]:
    """The model, plus its CPU twin when the device may fall back to the CPU (``auto``)."""
    from edgecnn.devices.backends import DeviceKind, backends_for, parse_device
    from edgecnn.metadata import read_metadata

    copies = [_model_path(model_file)]
    if parse_device(device).key == DeviceKind.AUTO.value:
        for backend in backends_for(device):
            twin = (
                backend.cpu_fallback(model_file, read_metadata(model_file))
                if backend.claims(model_file)
                else None
            )
            if twin is not None and twin not in copies:
                copies.append(twin)
    return copies


def config_dict(opts: RunOptions) -> dict[str, Any]:
    """The keys of ``opts`` worth writing: set, and different from RunOptions' defaults."""
    from edgecnn.run.options import CONFIG_KEYS, RunOptions

    defaults = RunOptions()
    keep = {"model", "device"}
    data: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        value = getattr(opts, key)
        if value is None or (key not in keep and value == getattr(defaults, key)):
            continue
        data[key] = str(value) if isinstance(value, (Path, PurePosixPath)) else value
    if opts.source is None and not opts.cameras:  # [[cameras]] tables name their own sources
        data["camera"] = 0 if opts.camera is None else opts.camera
    return data


def render_config(name: str, data: dict[str, Any]) -> str:
    import tomli_w

    header = (
        f"# edgecnn@{name}.service runs `edgecnn run --config {CONFIG_DIR}/{name}.toml`.\n"
        f"# Written by `edgecnn service install {name}`; the keys are edgecnn run's flags with '_' for '-'.\n"
        f"# After editing: systemctl restart edgecnn@{name}\n\n"
    )
    return header + tomli_w.dumps(data)


def _write(path: Path, data: bytes, written: list[str]) -> None:
    from edgecnn.modelfile import write_atomic

    _mkdirs(path.parent)
    # A unit or config file must be a real file: a device, FIFO or link there (a masked unit links to
    # /dev/null; under --root a link points into the host) is refused, never written through.
    write_atomic(path, data, FILE_MODE, what="service file", streams=False, symlinks=False)
    written.append(str(path))


def _write_secret(path: Path, text: str, written: list[str]) -> None:
    """Write ``text`` readable by root only (systemd hands it to the service as a credential)."""
    from edgecnn.modelfile import write_atomic

    _mkdirs(path.parent)
    write_atomic(path, (text + "\n").encode(), mode=0o600, what="secret file", streams=False, symlinks=False)
    written.append(str(path))


def _serve_token(opts: RunOptions, layout: Layout, name: str) -> str | None:
    """The token of an instance that serves beyond loopback: kept across reinstalls, generated once.

    None when it serves on loopback only, not at all, with ``serve_insecure``, or names its own
    ``serve_token_file``.
    """
    from edgecnn.run.access import is_loopback, new_token, read_token_file
    from edgecnn.run.config import parse_serve

    if opts.serve is None or opts.serve_insecure or opts.serve_token_file is not None:
        return None
    host, _port = parse_serve(opts.serve)
    if is_loopback(host):
        return None
    existing = layout.host(token_path(name))
    if existing.exists():
        try:
            return read_token_file(existing)
        except EdgecnnError:
            log.warning("%s does not hold a usable token: writing a new one.", existing)
    return new_token()


def _needs_no_network(opts: RunOptions) -> bool:
    """No --serve, no MQTT and a local source: the instance can run without any network.

    The Edge TPU too: libedgetpu finds the Coral (also after its re-enumeration 1a6e:089a -> 18d1:9302)
    with a fresh ``libusb_init`` and device list per attempt (driver/usb/local_usb_device.cc), which
    read sysfs rather than netlink events. libusb still opens a netlink socket for its hotplug monitor
    at init, so the Edge TPU drop-in keeps AF_NETLINK (inside the private namespace).
    """
    from edgecnn.devices.sources.spec import SourceKind, parse_source

    if opts.serve is not None or opts.mqtt:
        return False
    sources = [(t.get("source"), t.get("camera")) for t in opts.cameras or ()] or [(opts.source, opts.camera)]
    try:
        kinds = [parse_source(source, camera=camera).kind for source, camera in sources]
    except EdgecnnError:
        return False
    return SourceKind.URL not in kinds


def _mkdirs(folder: Path) -> None:
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        path.mkdir(mode=DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask


def install_service(
    name: str,
    *,
    model: str | os.PathLike[str] | None = None,
    camera: int | None = None,
    source: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    serve: str | None = None,
    config: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    start: bool = True,
    executable: str | os.PathLike[str] | None = None,
    allow_ip: list[str] | tuple[str, ...] = (),
) -> InstallReport:
    """Install ``edgecnn@NAME.service`` running ``edgecnn run --config /etc/edgecnn/NAME.toml``.

    Flags override keys of ``config`` (a TOML file with ``edgecnn run``'s keys). With ``root`` every file
    goes under that folder and the instance is enabled there with ``systemctl --root`` (needs no running
    systemd and no root privileges); otherwise this machine's systemd is reloaded and the instance
    enabled and, unless ``start=False``, started (needs root).
    """
    check_name(name)
    layout = _install_layout(root)
    if camera is not None and source is not None:
        raise UsageError("Give either --camera N or --source, not both.")
    cli = {
        "model": Path(model).expanduser().absolute() if model is not None else None,
        "camera": camera,
        "source": source,
        "device": device,
        "threads": threads,
        "serve": serve,
    }
    plan = _plan(name, layout, cli, config=config, executable=executable, allow_ip=allow_ip)

    # Everything is checked: write. Models first, so a config never names a model that is not there.
    folders = _candidate_folders(layout, name)
    existed = {folder for folder in folders if folder.exists()}
    written: list[str] = []
    final = _copy_models(name, layout, plan, written)
    config_target = layout.config(name)
    _write(layout.host(config_target), render_config(name, config_dict(final)).encode(), written)
    _drop_stale_models(layout.host(layout.models(name)), written)
    _write_unit_files(name, layout, plan, written)

    unit = unit_name(name)
    started = _enable(unit, layout, plan.edgetpu, start=start, folders=folders, existed=existed)
    return InstallReport(
        name=name,
        unit=unit,
        root=str(layout.root),
        config=str(config_target),
        model=str(final.model),
        files=written,
        executable=str(plan.settings.executable),
        edgetpu=plan.edgetpu,
        enabled=True,
        started=started,
    )


@dataclass(frozen=True)
class _Plan:
    """An install with every check passed and every file's content known; nothing is written yet."""

    opts: RunOptions  # --config with the flags over it (reconnect on for a live source)
    model_file: ModelFile  # the model as read and parsed
    token: str | None  # the serve token to write, if the instance needs one
    settings: UnitSettings
    edgetpu: bool
    dropin: str | None
    unit_text: str


def _install_layout(root: str | os.PathLike[str] | None) -> Layout:
    """This machine (which must run systemd, as root) or an image's root folder (which must exist)."""
    layout = Layout(Path(root).absolute() if root is not None else Path("/"))
    if not layout.offline:
        _require_live_system()
    elif not layout.root.is_dir():
        raise UsageError(f"--root {layout.root} is not a folder: mount or create the image's root first.")
    return layout


def _plan(
    name: str,
    layout: Layout,
    cli: dict[str, Any],
    *,
    config: str | os.PathLike[str] | None,
    executable: str | os.PathLike[str] | None,
    allow_ip: list[str] | tuple[str, ...],
) -> _Plan:
    """The checks, in the order their errors should come: config and flags, model, sandbox, device."""
    from edgecnn.run.config import validate_run_options

    opts = _options(config=Path(config) if config is not None else None, cli=cli)
    model_file = _check_model(opts)
    check = _check_sandbox_paths(opts, layout)
    token = _serve_token(opts, layout, name)
    validate_run_options(dataclasses.replace(check, model=_model_path(model_file), serve_token=token))
    _check_model_opens(opts, model_file)
    if model_file.is_edgetpu and not uses_edgetpu(opts.device):
        raise _fail(
            opts,
            "device",
            f"{_model_path(model_file).name} is compiled for the Edge TPU: use --device edgetpu or auto, or "
            "install the CPU model.",
        )
    if "reconnect" not in _keys_in(config) and _live_source(opts):
        # A service rides out a camera or stream glitch instead of exiting (see the unit's start limit).
        opts = dataclasses.replace(opts, reconnect=True)
    settings = _checked_settings(layout, executable)
    edgetpu = uses_edgetpu(opts.device)
    dropin = render_dropin(
        name,
        edgetpu=edgetpu,
        description=_model_description(opts, model_file),
        allow_ip=allow_ip,
        serve_token=token is not None,
        private_network=_needs_no_network(opts),
    )
    return _Plan(opts, model_file, token, settings, edgetpu, dropin, render_unit(settings))


def _model_description(opts: RunOptions, model_file: ModelFile) -> str:
    """What the model does (``image classifier``, ``object detector``), from its task; a model no task
    runs is refused here rather than by a service that would fail at every start."""
    from edgecnn.metadata import read_metadata
    from edgecnn.tasks import describe_model

    try:
        return describe_model(model_file, read_metadata(model_file))
    except EdgecnnError as exc:
        raise _fail(opts, "model", str(exc)) from None


def _checked_settings(layout: Layout, executable: str | os.PathLike[str] | None) -> UnitSettings:
    """The unit's settings; its edgecnn must be executable here (in an image it may come later: a warning)."""
    settings = unit_settings(Path(executable) if executable is not None else None)
    exe_host = layout.host(PurePosixPath(settings.executable))
    if not os.access(exe_host, os.X_OK):
        if not layout.offline:
            raise ServiceError(
                f"{exe_host} is not an executable edgecnn: pass --executable /path/to/venv/bin/edgecnn (the "
                "console script of the environment the service should run)."
            )
        log.warning(
            "The unit runs %s, which is not in the image at %s: pass --executable with the path of edgecnn "
            "inside the image, unless you install it there later.",
            settings.executable,
            exe_host,
        )
    return settings


def _copy_models(name: str, layout: Layout, plan: _Plan, written: list[str]) -> RunOptions:
    """Copy the model (and its CPU twin) and the labels file; returns the options naming the copies."""
    opts = plan.opts
    models_dir = layout.models(name)
    target_model = PurePosixPath()
    for index, path in enumerate(_model_copies(opts, plan.model_file, opts.device)):
        target = models_dir / path.name
        _write(layout.host(target), read_bytes(path, FileKind.MODEL), written)
        if index == 0:
            target_model = target
    changes: dict[str, Any] = {"model": target_model}
    if opts.labels is not None:
        labels_target = models_dir / f"{Path(opts.labels).name}"
        _write(layout.host(labels_target), read_bytes(opts.labels, FileKind.LABELS), written)
        changes["labels"] = labels_target
    return dataclasses.replace(opts, **changes)


def _drop_stale_models(models_dir: Path, written: list[str]) -> None:
    """A reinstall with another model: drop the old one."""
    for stale in models_dir.iterdir():
        if str(stale) not in written and stale.is_file():
            stale.unlink()


def _write_unit_files(name: str, layout: Layout, plan: _Plan, written: list[str]) -> None:
    """The serve token, the unit template, the drop-in and the Coral udev rule; a reinstall without the
    token or drop-in removes the old one."""
    token_file = layout.host(token_path(name))
    if plan.token is not None:
        _write_secret(token_file, plan.token, written)
    elif token_file.exists():
        token_file.unlink()  # reinstalled without a network --serve: no token to keep
    _write(layout.host(layout.template), plan.unit_text.encode(), written)
    dropin_path = layout.host(layout.dropin(name))
    if plan.dropin is not None:
        _write(dropin_path, plan.dropin.encode(), written)
    elif dropin_path.exists():
        dropin_path.unlink()  # reinstalled without the Edge TPU: drop its access
    if plan.edgetpu:
        _write(layout.host(layout.udev_rule), read_udev_rule().encode(), written)


def _enable(
    unit: str, layout: Layout, edgetpu: bool, *, start: bool, folders: list[Path], existed: set[Path]
) -> bool:
    """Enable the instance (in the image, or here with a reload and a (re)start); True when started.

    The folders the install created are recorded after an offline enable, which makes the wants folder.
    """
    started = False
    if layout.offline:
        systemctl.enable(unit, root=layout.root)
    _record_created(layout, [f for f in folders if f not in existed and f.is_dir()])
    if not layout.offline:
        systemctl.daemon_reload()
        if edgetpu:
            _reload_udev()
        systemctl.enable(unit)
        if start:
            # restart, not start: a reinstall must pick up the new config when the instance is running.
            systemctl.systemctl("restart", unit)
            started = True
    return started


def _reload_udev() -> None:
    """Apply the Coral rule to a device that is plugged in already (best effort: udev may be absent)."""
    udevadm = shutil.which("udevadm")
    if udevadm is None or not Path("/run/udev/control").exists():
        log.warning("udev is not running: replug the Coral after the next boot for its permissions.")
        return
    for argv in (
        [udevadm, "control", "--reload-rules"],
        [udevadm, "trigger", "--subsystem-match=usb", "--subsystem-match=apex", "--action=add"],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ServiceError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}; "
                "replug the Coral to apply 99-edgecnn-coral.rules."
            )


def _instance_needs_edgetpu(layout: Layout, name: str) -> bool:
    from edgecnn.devices.backends.edgetpu.sandbox import DROPIN_MARKER

    dropin = layout.host(layout.dropin(name))
    return dropin.is_file() and DROPIN_MARKER in dropin.read_text(encoding="utf-8")


def _remove(path: Path, removed: list[str]) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
        removed.append(str(path))
    elif path.is_dir():
        shutil.rmtree(path)
        removed.append(str(path))


# The folders installs created that were not there before (one host path per line), so the last
# uninstall removes them again when empty; folders that existed (/etc/udev/rules.d) are never listed.
CREATED_RECORD = CONFIG_DIR / ".created-folders"


def _candidate_folders(layout: Layout, name: str) -> list[Path]:
    """Every folder an install of ``name`` may create, outer ones included (up to the root)."""
    targets = [
        layout.models(name) / "x",
        layout.config(name),
        layout.template,
        layout.dropin(name),
        layout.udev_rule,
        layout.wants_link(name),
    ]
    root = layout.host(PurePosixPath("/"))
    found: list[Path] = []
    for target in targets:
        for folder in layout.host(target).parents:
            if folder == root or root not in folder.parents:
                break
            if folder not in found:
                found.append(folder)
    return found


def _record_created(layout: Layout, created: list[Path]) -> None:
    if not created:
        return
    record = layout.host(CREATED_RECORD)
    known = _read_created(layout)
    lines = sorted({str(p) for p in [*known, *created]})
    _write(record, ("\n".join(lines) + "\n").encode(), [])


def _read_created(layout: Layout) -> list[Path]:
    record = layout.host(CREATED_RECORD)
    try:
        text = record.read_text(encoding="utf-8")
    except OSError:
        return []
    return [Path(line) for line in text.splitlines() if line.strip()]


def _rmdir_if_empty(path: Path, removed: list[str]) -> None:
    try:
        path.rmdir()
    except OSError:
        return
    removed.append(str(path))


def _clean_state(unit: str, removed: list[str]) -> None:
    """Last instance gone: let systemd remove /var/lib/private/edgecnn and its /var/lib/edgecnn link
    (DynamicUser= moved our model folder there). /var/log/edgecnn, results, is kept."""
    try:
        systemctl.systemctl("clean", "--what=state", unit)
    except ServiceError as exc:
        log.warning("%s Remove /var/lib/private/edgecnn by hand if you want the space back.", exc)
        return
    removed.append(str(STATE_DIR))


def uninstall_service(name: str, *, root: str | os.PathLike[str] | None = None) -> UninstallReport:
    """Stop and disable ``edgecnn@NAME``, then remove its config, models and drop-in (and the template
    and udev rule when no other instance needs them). Nothing else is touched."""
    check_name(name)
    layout = Layout(Path(root).absolute() if root is not None else Path("/"))
    if not layout.offline:
        _require_live_system()
    unit = unit_name(name)
    config = layout.host(layout.config(name))
    known = config.exists() or layout.host(layout.wants_link(name)).is_symlink()
    if not known:
        raise ServiceError(
            f"No service {name!r} here: {config} does not exist. `edgecnn service list"
            + (f" --root {layout.root}" if layout.offline else "")
            + "` shows the installed ones."
        )
    removed: list[str] = []
    link = layout.host(layout.wants_link(name))
    had_link = link.is_symlink()
    if layout.host(layout.template).exists():
        if layout.offline:
            systemctl.disable(unit, root=layout.root)
        else:
            systemctl.disable(unit, now=True)
            if not [n for n in layout.instance_names() if n != name]:
                _clean_state(unit, removed)
    if link.is_symlink():  # disable removed it, unless the template was gone already
        link.unlink()
    if had_link:
        removed.append(str(link))
    _remove(layout.host(layout.dropin(name)), removed)
    _rmdir_if_empty(layout.host(layout.dropin_dir(name)), removed)
    _remove(config, removed)
    _remove(layout.host(token_path(name)), removed)
    _remove(layout.host(layout.models(name)), removed)
    others = [n for n in layout.instance_names() if n != name]
    if not others:
        created = _read_created(layout)
        _remove(layout.host(CREATED_RECORD), removed)
        _remove(layout.host(layout.template), removed)
        _rmdir_if_empty(layout.host(MODELS_DIR), removed)
        _rmdir_if_empty(layout.host(STATE_DIR), removed)
        _rmdir_if_empty(layout.host(CONFIG_DIR), removed)
        for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
            _rmdir_if_empty(folder, removed)  # folders the installs made (in an image: etc/udev/...)
    if not any(_instance_needs_edgetpu(layout, n) for n in others):
        _remove(layout.host(layout.udev_rule), removed)
    if not layout.offline:
        systemctl.daemon_reload()
        systemctl.systemctl("reset-failed", unit, ok=(0, 1, 5))
    return UninstallReport(name=name, unit=unit, root=str(layout.root), removed=removed)
