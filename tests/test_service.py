"""``edgecnn service``: the unit systemd would load, its hardening score, and the installer's files.

systemd is not PID 1 here, but its offline tools are real: ``systemd-analyze verify`` and
``systemd-analyze security --offline=true`` judge the rendered unit, and ``systemctl --root=DIR`` creates
the ``.wants`` symlink exactly as it does when an SD-card image is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import tomllib

from edgecnn.errors import ConfigError, ServiceError, UsageError
from edgecnn.service import unit as unitmod
from edgecnn.service.install import install_service, uninstall_service
from edgecnn.service.layout import Layout, check_name
from edgecnn.service.status import healthz_url, list_services, service_status
from tests.conftest import MOBILENET, MOBILENET_EDGETPU, error_lines, run_cli

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEMCTL = shutil.which("systemctl")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
needs_systemctl = pytest.mark.skipif(SYSTEMCTL is None, reason="systemctl is not installed")
EXPOSURE_TARGET = 2.0
_OVERALL = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?) (\S+)")


def _exposure(argv: list[str]) -> tuple[float, str, str]:
    """Run ``systemd-analyze security`` and parse its "Overall exposure level" line."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_COLORS": "0"}
    )
    assert proc.returncode == 0, proc.stderr
    match = _OVERALL.search(proc.stdout)
    assert match, f"no overall exposure line in:\n{proc.stdout[-2000:]}"
    return float(match.group(2)), match.group(3), proc.stdout


def _installed_exposure(root: Path, name: str = "door") -> tuple[float, str, str]:
    """``systemd-analyze security`` of instance ``name`` as installed under ``root`` (drop-in included)."""
    return _exposure(
        [
            SYSTEMD_ANALYZE,
            "security",
            "--offline=true",
            f"--root={root}",
            "--no-pager",
            f"edgecnn@{name}.service",
        ]
    )


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with what it is: file hash, symlink target or directory."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _image_root(tmp_path: Path) -> Path:
    """A small OS tree like an SD card's root: the folders and an unrelated enabled service."""
    root = tmp_path / "img"
    for folder in (
        "etc/systemd/system/multi-user.target.wants",
        "etc/udev/rules.d",
        "var/lib",
        "var/log",
        "usr/bin",
    ):
        (root / folder).mkdir(parents=True)
    (root / "etc/systemd/system/other.service").write_text(
        "[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    )
    os.symlink(
        "/etc/systemd/system/other.service", root / "etc/systemd/system/multi-user.target.wants/other.service"
    )
    (root / "etc/udev/rules.d/70-other.rules").write_text('SUBSYSTEM=="tty", GROUP="dialout"\n')
    (root / "var/lib/other").mkdir()
    return root


# --- files shipped in the package ------------------------------------------------------------------


def test_unit_template_and_udev_rule_ship_as_package_data():
    template = resources.files("edgecnn.systemd").joinpath("edgecnn@.service")
    assert template.is_file()
    text = template.read_text()
    assert "@EXEC_START@ run --config /etc/edgecnn/%i.toml" in text
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=edgecnn",
        "DynamicUser=yes",
    ):
        assert key in text
    rule = resources.files("edgecnn.devices").joinpath("99-edgecnn-coral.rules").read_text()
    for vendor, product in (("1a6e", "089a"), ("18d1", "9302")):
        assert re.search(
            rf'ATTR\{{idVendor\}}=="{vendor}", ATTR\{{idProduct\}}=="{product}", GROUP="plugdev"', rule
        )
    assert 'SUBSYSTEM=="apex", GROUP="plugdev"' in rule
    assert "video" in resources.files("edgecnn.devices").joinpath("README-udev.md").read_text()


# --- rendering --------------------------------------------------------------------------------------


def test_rendered_unit_runs_this_environments_edgecnn():
    settings = unitmod.unit_settings()
    text = unitmod.render_unit(settings)
    exe = unitmod.default_executable()
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert f'ExecStart="{exe}" run --config /etc/edgecnn/%i.toml' in text
    assert "@EXEC_START@" not in text and "@PROTECT_HOME@" not in text
    # This environment's Python may live under /root (pyenv) or the checkout under /tmp (a CI clone):
    # then only those folders are shown, read-only.
    in_home = [p for p in settings.home_binds if unitmod._under(p, unitmod.HOME_DIRS)]
    if settings.home_binds:
        assert "BindReadOnlyPaths=" in text
        assert all(p.exists() for p in settings.home_binds)
    assert ("ProtectHome=tmpfs" if in_home else "ProtectHome=yes") in text


def test_home_paths_bind_a_virtualenv_under_home(tmp_path):
    # A console script whose #! names a Python in a home folder must stay visible to the service.
    fake_home_env = Path("/home/edgecnn-test-nonexistent/venv")
    script = tmp_path / "edgecnn"
    script.write_text(f"#!{fake_home_env}/bin/python3\nimport sys\n")
    found = unitmod.home_paths(script)
    assert fake_home_env in found
    outside = tmp_path / "plain"
    outside.write_text("#!/usr/bin/python3\n")
    assert not any(str(p).startswith("/home/edgecnn-test") for p in unitmod.home_paths(outside))


def test_an_environment_under_tmp_is_bound_past_private_tmp(tmp_path):
    # PrivateTmp=yes gives the service an empty /tmp: a venv there must be bound in, home stays hidden.
    env = Path("/tmp/edgecnn-test-nonexistent/venv")
    script = tmp_path / "edgecnn"
    script.write_text(f"#!{env}/bin/python3\n")
    settings = unitmod.UnitSettings(Path("/opt/x/bin/edgecnn"), [env])
    text = unitmod.render_unit(settings)
    assert env in unitmod.home_paths(script)
    assert f'BindReadOnlyPaths="{env}"' in text and "ProtectHome=yes" in text


def test_exec_quoting_escapes_specifiers_and_quotes():
    assert unitmod.quote_exec_word('/opt/a b/%i"$x\\') == '"/opt/a b/%%i\\"$$x\\\\"'
    assert unitmod.quote_path_word("/home/pi/a:b") == '"/home/pi/a\\:b"'
    with pytest.raises(UsageError):
        unitmod.quote_exec_word("/opt/bad\nline")


def test_dropin_only_when_needed():
    assert unitmod.render_dropin("door", edgetpu=False) is None
    tpu = unitmod.render_dropin("door", edgetpu=True)
    assert "DeviceAllow=char-usb_device rw" in tpu and "RestrictAddressFamilies=AF_NETLINK" in tpu
    assert "SupplementaryGroups=plugdev" in tpu
    ips = unitmod.render_dropin("door", edgetpu=False, allow_ip=["203.0.113.7", "2001:db8::/32"])
    assert "IPAddressAllow=203.0.113.7/32 2001:db8::/32" in ips
    with pytest.raises(UsageError, match="--allow-ip"):
        unitmod.render_dropin("door", edgetpu=False, allow_ip=["not-an-ip"])


@pytest.mark.parametrize(
    "name",
    [
        *["", "a/b", "../x", "-x", "door.toml", "x" * 65, "has space"],
        # '$' matches before a final newline: "door\n" passed a re.match(...$) check and wrote "door\n.toml"
        *["door\n", "door\r", "door\r\n", "door\x00", "\ndoor", "do\nor", "dör", "door\u2028", "٣"],
    ],
)
def test_bad_instance_names_are_refused(name):
    with pytest.raises(UsageError, match="Bad service name"):
        check_name(name)


# --- systemd's own judgement -------------------------------------------------------------------------


def _render_to(folder: Path, *, executable: Path | None = None, edgetpu: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = unitmod.render_unit(unitmod.unit_settings(executable))
    (folder / "edgecnn@.service").write_text(text)
    dropin = unitmod.render_dropin("door", edgetpu=edgetpu, allow_ip=["203.0.113.7"])
    if dropin:
        (folder / "edgecnn@door.service.d").mkdir(exist_ok=True)
        (folder / "edgecnn@door.service.d" / "50-edgecnn.conf").write_text(dropin)
    return folder / "edgecnn@door.service"


def _verify(instance: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(instance)], capture_output=True, text=True, timeout=60
    )


@needs_analyze
@pytest.mark.parametrize("edgetpu", [False, True])
def test_systemd_analyze_verify_accepts_rendered_unit(tmp_path, edgetpu):
    instance = _render_to(tmp_path / "units", edgetpu=edgetpu)
    proc = _verify(instance)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def _unit_values(text: str, section: str, key: str) -> list[str]:
    """Every ``key=`` value in ``[section]`` of a unit file, in order (systemd: the last one wins)."""
    values, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and line.startswith(f"{key}="):
            values.append(line.split("=", 1)[1])
    return values


@needs_analyze
@needs_systemctl
def test_description_says_what_the_instances_model_does(tmp_path, detectors):
    """The template is shared, so it names no task; each instance's drop-in says what its model does."""
    root = _image_root(tmp_path)
    install_service("door", model=detectors["ssd_int8"], source="demo", root=root)
    install_service("gate", model=MOBILENET, source="demo", root=root)
    units = root / "etc/systemd/system"
    template = _unit_values((units / "edgecnn@.service").read_text(), "Unit", "Description")
    assert template == ["edgecnn run (%i)"]
    for name, says in (("door", "edgecnn object detector (%i)"), ("gate", "edgecnn image classifier (%i)")):
        dropin = (units / f"edgecnn@{name}.service.d/50-edgecnn.conf").read_text()
        assert _unit_values(dropin, "Unit", "Description") == [says]  # drop-ins are read after the unit
        proc = _verify(units / f"edgecnn@{name}.service")  # systemd reads the drop-in without a complaint
        assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    assert unitmod.render_dropin("door", edgetpu=False, description="object detector").startswith(
        "# Written by `edgecnn service install door`"
    )


@needs_analyze
def test_systemd_analyze_verify_catches_what_we_would_get_wrong(tmp_path):
    # The check above can fail: an unknown key, or an ExecStart that does not exist, is reported.
    instance = _render_to(tmp_path / "units", executable=tmp_path / "no such dir" / "edgecnn")
    (tmp_path / "units" / "edgecnn@.service").write_text(
        (tmp_path / "units" / "edgecnn@.service").read_text() + "[Service]\nProtectHomes=yes\n"
    )
    proc = _verify(instance)
    assert "ProtectHomes" in proc.stderr
    assert "no such dir" in proc.stderr and proc.returncode != 0


@needs_analyze
def test_verify_accepts_an_executable_path_with_space_and_percent(tmp_path):
    odd = tmp_path / "my env 100%" / "bin"
    odd.mkdir(parents=True)
    os.symlink(unitmod.default_executable(), odd / "edgecnn")
    instance = _render_to(tmp_path / "units", executable=odd / "edgecnn")
    proc = _verify(instance)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


@needs_analyze
def test_security_exposure_of_rendered_unit_is_at_most_2(tmp_path):
    _render_to(tmp_path / "units")
    exposure, band, table = _exposure(
        [
            SYSTEMD_ANALYZE,
            "security",
            "--offline=true",
            "--no-pager",
            str(tmp_path / "units" / "edgecnn@.service"),
        ]
    )
    assert exposure <= EXPOSURE_TARGET, table
    assert band in ("OK", "SAFE"), table


@needs_analyze
@needs_systemctl
@pytest.mark.parametrize("device", ["cpu", "edgetpu"])
def test_security_exposure_of_installed_instance_is_at_most_2(tmp_path, device):
    # The installed tree, drop-in included (the Edge TPU one adds USB, PCIe and netlink access).
    root = _image_root(tmp_path)
    model = MOBILENET_EDGETPU if device == "edgetpu" else MOBILENET
    install_service("door", model=model, camera=0, device=device, serve="0.0.0.0:8080", root=root)
    exposure, _band, table = _installed_exposure(root)
    assert exposure <= EXPOSURE_TARGET, table
    if device == "edgetpu":
        assert "char-usb_device:rw" in table and "RestrictAddressFamilies=~AF_NETLINK" in table
    # What the service must still be able to do is allowed, not just scored.
    assert "char-video4linux:rw" in table


# --- install / uninstall under --root ------------------------------------------------------------------


@needs_systemctl
def test_install_root_writes_unit_config_model_rule_and_wants_link(tmp_path):
    root = _image_root(tmp_path)
    report = install_service(
        "door",
        model=MOBILENET_EDGETPU,
        camera=0,
        device="edgetpu",
        threads=2,
        serve="0.0.0.0:8080",
        root=root,
    )
    layout = Layout(root)
    assert report.enabled and not report.started and report.edgetpu
    unit = root / "etc/systemd/system/edgecnn@.service"
    assert f'ExecStart="{unitmod.default_executable()}" run --config /etc/edgecnn/%i.toml' in unit.read_text()
    link = root / "etc/systemd/system/multi-user.target.wants/edgecnn@door.service"
    assert link.is_symlink() and os.readlink(link) == "/etc/systemd/system/edgecnn@.service"
    copied = root / "var/lib/edgecnn/models/door" / MOBILENET_EDGETPU.name
    assert copied.read_bytes() == MOBILENET_EDGETPU.read_bytes()
    assert oct(copied.stat().st_mode & 0o777) == "0o644"  # the service's transient user must read it
    assert (
        root / "var/lib/edgecnn/models/door" / MOBILENET.name
    ).is_file() is False  # edgetpu: no twin needed
    rule = root / "etc/udev/rules.d/99-edgecnn-coral.rules"
    assert rule.read_text() == unitmod.read_udev_rule()
    assert (
        "char-usb_device" in (root / "etc/systemd/system/edgecnn@door.service.d/50-edgecnn.conf").read_text()
    )
    config = tomllib.loads((root / "etc/edgecnn/door.toml").read_text())
    assert config == {
        "model": f"/var/lib/edgecnn/models/door/{MOBILENET_EDGETPU.name}",
        "camera": 0,
        "device": "edgetpu",
        "threads": 2,
        "serve": "0.0.0.0:8080",
        "reconnect": True,  # a service rides out camera glitches unless told otherwise
    }
    # The file is what `edgecnn run --config` reads: its loader accepts it as written.
    from edgecnn.run.config import load_run_config

    opts = load_run_config(layout.host(layout.config("door")))
    assert str(opts.model) == config["model"] and opts.camera == 0 and opts.threads == 2
    # systemctl agrees it is enabled.
    proc = subprocess.run(
        [SYSTEMCTL, f"--root={root}", "is-enabled", "edgecnn@door.service"], capture_output=True, text=True
    )
    assert proc.stdout.strip() == "enabled"


@needs_systemctl
def test_install_auto_copies_cpu_twin_and_cpu_needs_no_rule(tmp_path):
    root = _image_root(tmp_path)
    install_service("door", model=MOBILENET_EDGETPU, camera=1, device="auto", root=root)
    models = root / "var/lib/edgecnn/models/door"
    assert sorted(p.name for p in models.iterdir()) == sorted([MOBILENET.name, MOBILENET_EDGETPU.name])
    install_service("gate", model=MOBILENET, source="demo", root=root)
    # No Edge TPU access for a CPU instance; its only drop-in line is that it needs no network (issue 19).
    dropin = (root / "etc/systemd/system/edgecnn@gate.service.d/50-edgecnn.conf").read_text()
    assert "DeviceAllow" not in dropin and "PrivateNetwork=yes" in dropin
    assert tomllib.loads((root / "etc/edgecnn/gate.toml").read_text())["source"] == "demo"
    names = [i.name for i in list_services(root=root)]
    assert names == ["door", "gate"]


@needs_systemctl
def test_uninstall_removes_what_install_wrote_and_nothing_else(tmp_path):
    root = _image_root(tmp_path)
    before = _tree(root)
    install_service("door", model=MOBILENET, camera=0, root=root)
    install_service(
        "gate", model=MOBILENET_EDGETPU, camera=1, device="edgetpu", serve="0.0.0.0:8081", root=root
    )
    middle = _tree(root)
    assert len(middle) > len(before) + 8
    report = uninstall_service("gate", root=root)
    after_gate = _tree(root)
    # gate's files and the udev rule (no other instance uses the Coral) are gone; door's are intact.
    assert not (root / "etc/udev/rules.d/99-edgecnn-coral.rules").exists()
    assert (root / "etc/systemd/system/edgecnn@.service").exists()
    assert {k: v for k, v in middle.items() if "gate" not in k and "coral" not in k} == after_gate
    assert any(p.endswith("edgecnn@gate.service") for p in report.removed)
    uninstall_service("door", root=root)
    assert _tree(root) == before


@needs_systemctl
def test_reinstall_replaces_config_and_drops_edgetpu_access(tmp_path):
    root = _image_root(tmp_path)
    install_service("door", model=MOBILENET_EDGETPU, camera=0, device="edgetpu", root=root)
    install_service("door", model=MOBILENET, camera=2, device="cpu", root=root)
    assert tomllib.loads((root / "etc/edgecnn/door.toml").read_text())["camera"] == 2
    assert [p.name for p in (root / "var/lib/edgecnn/models/door").iterdir()] == [MOBILENET.name]
    dropin = (root / "etc/systemd/system/edgecnn@door.service.d/50-edgecnn.conf").read_text()
    assert "DeviceAllow" not in dropin and "plugdev" not in dropin  # only PrivateNetwork=yes is left
    uninstall_service("door", root=root)
    assert not (root / "etc/udev/rules.d/99-edgecnn-coral.rules").exists()
    assert not (root / "var/lib/edgecnn").exists()


@needs_systemctl
def test_install_takes_run_keys_from_a_config_file(tmp_path):
    root = _image_root(tmp_path)
    base = tmp_path / "door.toml"
    base.write_text(
        f'model = "{MOBILENET}"\ncamera = 0\ntop_k = 3\nmin_score = 0.25\non_change = true\n'
        'jsonl = "/var/log/edgecnn/door.jsonl"\nreconnect = true\n'
    )
    install_service("door", config=base, threads=1, root=root)  # flags override the file
    written = tomllib.loads((root / "etc/edgecnn/door.toml").read_text())
    assert written["reconnect"] is True
    assert written["top_k"] == 3 and written["min_score"] == 0.25 and written["on_change"] is True
    assert written["jsonl"] == "/var/log/edgecnn/door.jsonl" and written["threads"] == 1
    assert written["model"] == f"/var/lib/edgecnn/models/door/{MOBILENET.name}"
    # An explicit reconnect = false is kept (the service then exits, and systemd restarts it).
    base.write_text(f'model = "{MOBILENET}"\ncamera = 0\nreconnect = false\n')
    install_service("door", config=base, root=root)
    assert "reconnect" not in tomllib.loads((root / "etc/edgecnn/door.toml").read_text())


@needs_systemctl
def test_status_and_list_of_an_image(tmp_path):
    root = _image_root(tmp_path)
    install_service("door", model=MOBILENET, camera=0, serve="0.0.0.0:8080", root=root)
    info = service_status("door", root=root)
    assert info.enabled == "enabled" and info.active is None and info.serve == "0.0.0.0:8080"
    assert info.config_error is None and info.source == "camera 0"
    assert healthz_url(info.serve) == "http://127.0.0.1:8080/healthz"
    assert healthz_url("[::]:9000") == "http://[::1]:9000/healthz"
    (root / "etc/edgecnn/door.toml").write_text('modle = "x"\n')
    broken = service_status("door", root=root)
    assert "modle" in broken.config_error


# --- errors: one line, key named, nothing written -------------------------------------------------------


def test_invalid_configs_fail_with_the_key_named(tmp_path):
    root = _image_root(tmp_path)
    before = _tree(root)
    with pytest.raises(UsageError, match=r"--model: model file .*missing\.tflite not found"):
        install_service("door", model=tmp_path / "missing.tflite", camera=0, root=root)
    with pytest.raises(UsageError, match=r"--source"):
        install_service("door", model=MOBILENET, source=str(tmp_path / "nope.mp4"), root=root)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'model = "{MOBILENET}"\ncamera = 0\nthreds = 2\n')
    with pytest.raises(ConfigError, match=r"unknown key 'threds' \(did you mean 'threads'\?\)"):
        install_service("door", config=bad, root=root)
    bad.write_text(f'model = "{tmp_path}/gone.tflite"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: model \(MODEL\): model file .*gone\.tflite not found"):
        install_service("door", config=bad, root=root)
    bad.write_text(f'model = "{MOBILENET}"\njsonl = "/home/pi/out.jsonl"\n')
    with pytest.raises(ConfigError, match=r"jsonl .*only under /var/log/edgecnn"):
        install_service("door", config=bad, root=root)
    bad.write_text(f'model = "{MOBILENET_EDGETPU}"\ndevice = "cpu"\n')
    with pytest.raises(ConfigError, match=r"device .*compiled for the Edge TPU"):
        install_service("door", config=bad, root=root)
    assert _tree(root) == before


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--model", "{tmp}/missing.tflite", "--camera", "0"], 2, "--model: model file"),
        (["--model", str(MOBILENET), "--source", "{tmp}/nope.mp4"], 2, "--source"),
        (["--config", "{tmp}/unknown.toml"], 7, "unknown key 'fsp'"),
        (["--model", str(MOBILENET), "--serve", "localhost:99999"], 2, "--serve"),
    ],
)
def test_cli_install_errors_are_one_line(tmp_path, args, code, needle):
    (tmp_path / "unknown.toml").write_text(f'model = "{MOBILENET}"\nfsp = 5\n')
    root = _image_root(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli("service", "install", "door", *argv, "--root", root)
    assert result.code == code, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("key", "value"), [("stall_timeout", "nan"), ("fps", "inf"), ("min_score", "-0.5")])
def test_cli_install_refuses_a_config_number_the_flag_refuses(tmp_path, key, value):
    """``service install --config`` checks a file's numbers with the run flags' own check: a service
    whose stall detector a NaN turned off is refused at install, nothing written."""
    from edgecnn.run.options import describe_range, run_option

    config = tmp_path / "door.toml"
    config.write_text(f'model = "{MOBILENET}"\ncamera = 0\n{key} = {value}\n')
    root = _image_root(tmp_path)
    before = _tree(root)
    result = run_cli("service", "install", "door", "--config", config, "--root", root)
    assert result.code == 7, result.stderr
    (line,) = error_lines(result.stderr)
    opt = run_option(key)
    assert line.endswith(f"{key} ({opt.flag}): must be {describe_range(opt)}, got {float(value)!r}."), line
    assert _tree(root) == before


@pytest.mark.parametrize("name", ["door\n", "door\r", "dör"])
def test_cli_install_refuses_a_name_with_a_newline_or_non_ascii(tmp_path, name):
    """In a real process (argv can carry a newline; NUL it cannot): one line, and nothing written."""
    root = _image_root(tmp_path)
    before = _tree(root)
    result = run_cli("service", "install", name, "--model", MOBILENET, "--camera", "0", "--root", root)
    assert result.code == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("edgecnn: error: Bad service name"), result.stderr
    assert _tree(root) == before and not list(root.rglob("door*"))


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="systemd is running here")
def test_install_without_root_dir_needs_running_systemd():
    if os.geteuid() == 0:
        with pytest.raises(ServiceError, match=r"systemd is not running.*--root DIR"):
            install_service("door", model=MOBILENET, camera=0)
    else:
        with pytest.raises(ServiceError, match="run it as root"):
            install_service("door", model=MOBILENET, camera=0)
    result = run_cli("service", "status", "door")
    assert result.code == ServiceError.exit_code
    assert len(error_lines(result.stderr)) == 1


@needs_systemctl
def test_cli_install_list_uninstall_json_roundtrip(tmp_path):
    root = _image_root(tmp_path)
    before = _tree(root)
    out = run_cli(
        "service", "install", "door", "--model", MOBILENET, "--camera", "0", "--root", root, "--json"
    )
    assert out.code == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["unit"] == "edgecnn@door.service" and report["enabled"] is True
    listed = run_cli("service", "list", "--root", root, "--json")
    assert [i["name"] for i in json.loads(listed.stdout)] == ["door"]
    assert json.loads(listed.stdout)[0]["enabled"] == "enabled"
    gone = run_cli("service", "uninstall", "door", "--root", root)
    assert gone.code == 0, gone.stderr
    assert _tree(root) == before
    again = run_cli("service", "uninstall", "door", "--root", root)
    assert again.code == ServiceError.exit_code and "No service 'door'" in error_lines(again.stderr)[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges for the check")
def test_install_as_non_root_says_run_it_as_root():
    import edgecnn.run.config  # noqa: F401  (imported while still root)

    os.seteuid(65534)
    try:
        with pytest.raises(
            ServiceError, match=r"run it as root \(sudo edgecnn service \.\.\.\), or pass --root DIR"
        ):
            install_service("door", model=MOBILENET, camera=0)
    finally:
        os.seteuid(0)


# --- the --serve token and the network a service gets (issue 19) ---------------------------------------


@needs_systemctl
def test_install_generates_a_root_only_token_for_a_network_serve_and_status_shows_it(tmp_path):
    from edgecnn.run.access import read_token_file

    root = _image_root(tmp_path)
    install_service("door", model=MOBILENET, camera=0, serve="0.0.0.0:8080", root=root)
    token_file = root / "etc/edgecnn/door.token"
    token = read_token_file(token_file)
    assert len(token) >= 40 and (token_file.stat().st_mode & 0o777) == 0o600
    dropin = (root / "etc/systemd/system/edgecnn@door.service.d/50-edgecnn.conf").read_text()
    assert "LoadCredential=serve-token:/etc/edgecnn/door.token" in dropin
    assert "PrivateNetwork" not in dropin  # it serves
    assert token not in (root / "etc/edgecnn/door.toml").read_text()  # the config stays world-readable
    install_service("door", model=MOBILENET, camera=0, serve="0.0.0.0:8080", root=root)
    assert read_token_file(token_file) == token  # a reinstall keeps the token users bookmarked
    info = service_status("door", root=root)
    assert info.token == token and info.token_file == "/etc/edgecnn/door.token"
    from edgecnn.service.status import format_status

    assert f"/?token={token}" in format_status(info)
    install_service("door", model=MOBILENET, camera=0, serve="127.0.0.1:8080", root=root)
    assert not token_file.exists()  # loopback only: no token needed, none kept
    uninstall_service("door", root=root)


def test_service_reads_its_token_from_the_systemd_credential(tmp_path, monkeypatch):
    from edgecnn.run.access import resolve_access

    (tmp_path / "serve-token").write_text("credential-token-0123456789abcdef\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.delenv("EDGECNN_SERVE_TOKEN", raising=False)
    access = resolve_access(
        "0.0.0.0", token=None, token_file=None, token_all=False, insecure=False, serve="0.0.0.0:8080"
    )
    assert access.token == "credential-token-0123456789abcdef"


@needs_analyze
@needs_systemctl
def test_edgetpu_instance_without_network_use_gets_private_network_and_keeps_netlink(tmp_path):
    # libedgetpu finds the Coral through sysfs with a fresh libusb context per attempt, so no network is
    # needed; libusb's netlink socket is (the container test starts libusb under these very families).
    root = _image_root(tmp_path)
    install_service("door", model=MOBILENET_EDGETPU, camera=0, device="edgetpu", root=root)
    dropin = (root / "etc/systemd/system/edgecnn@door.service.d/50-edgecnn.conf").read_text()
    assert "PrivateNetwork=yes" in dropin and "DeviceAllow=char-usb_device rw" in dropin
    families = [line for line in dropin.splitlines() if line.startswith("RestrictAddressFamilies=")]
    assert families == [
        "RestrictAddressFamilies=",
        "RestrictAddressFamilies=AF_UNIX",
        "RestrictAddressFamilies=AF_NETLINK",
    ], dropin
    private, _band, table = _installed_exposure(root)
    assert "✓ PrivateNetwork=" in table and "RestrictAddressFamilies=~AF_NETLINK" in table, table
    install_service(
        "door", model=MOBILENET_EDGETPU, camera=0, device="edgetpu", serve="0.0.0.0:8080", root=root
    )
    serving, _band, _table = _installed_exposure(root)
    assert private < serving <= EXPOSURE_TARGET, (private, serving)


@needs_analyze
@needs_systemctl
def test_instance_without_network_use_gets_private_network_and_scores_better(tmp_path):
    root = _image_root(tmp_path)
    install_service("door", model=MOBILENET, camera=0, root=root)  # no --serve, no MQTT, a camera
    install_service("gate", model=MOBILENET, camera=0, serve="0.0.0.0:8080", root=root)
    scores = {}
    for name in ("door", "gate"):
        exposure, _band, table = _installed_exposure(root, name)
        scores[name] = (exposure, table)
    door, door_table = scores["door"]
    gate, _ = scores["gate"]
    assert door < gate <= EXPOSURE_TARGET, scores
    assert "PrivateNetwork=" in door_table and "✓ PrivateNetwork=" in door_table, door_table
