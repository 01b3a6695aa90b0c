"""edgecnn fleet: inventories as Ansible reads them, wheelhouse commands, playbook runs through
ansible-runner on this machine (local connection) and a broken host, status rows and fleet bench rows.

The end-to-end deploy to real (emulated) arm64 hosts is .ci/fleet-check: it needs root and qemu-user
roots and minutes, so it is not part of this suite.
"""

from __future__ import annotations

import json
import platform
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("ansible_runner", reason="needs the fleet extra (pip install 'edgecnn[fleet]')")

from edgecnn.digest import sha256_file
from edgecnn.errors import UsageError
from edgecnn.fleet.inventory import load_inventory, parse_inventory_json
from edgecnn.fleet.wheelhouse import (
    Target,
    build_project_wheel,
    download_argv,
    folder_digest,
    pack,
    platform_tags,
    wheel_requirements,
)
from tests.conftest import MOBILENET, error_lines, run_cli


def _local_inventory(tmp_path: Path, *, broken: bool = False) -> Path:
    lines = [
        "[devices]",
        f"here ansible_connection=local ansible_python_interpreter={sys.executable} edgecnn_home={tmp_path / 'home'}",
    ]
    if broken:
        lines.append(
            f"gone ansible_connection=community.general.chroot ansible_host={tmp_path / 'no-such-root'}"
        )
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------- inventory
def test_ini_inventory_with_groups_vars_and_limit(tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        "[pis]\npi-1 ansible_host=192.0.2.11\npi-2 ansible_host=192.0.2.12\n\n"
        "[corals]\ncoral-1 ansible_host=192.0.2.21 edgecnn_venv=/srv/edgecnn\n\n"
        "[roots]\nimg ansible_host=/mnt/sd\n[roots:vars]\nansible_connection=community.general.chroot\n\n"
        "[all:vars]\nansible_user=pi\n"
    )
    inventory = load_inventory(inv)
    assert inventory.names == ["pi-1", "pi-2", "coral-1", "img"]
    coral = inventory.host("coral-1")
    assert coral.address == "192.0.2.21"
    assert coral.vars["edgecnn_venv"] == "/srv/edgecnn"
    assert coral.vars["ansible_user"] == "pi"
    assert not coral.is_chroot and coral.connection == "ssh"
    assert inventory.host("img").is_chroot and inventory.host("img").address == "/mnt/sd"

    limited = load_inventory(inv, limit="pis:!pi-2")
    assert limited.names == ["pi-1"]


def test_yaml_inventory(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    kitchen:\n      hosts:\n        pi-k:\n          ansible_host: 192.0.2.5\n"
        "    garage:\n      hosts:\n        pi-g: {}\n        pi-k: {}\n"
    )
    inventory = load_inventory(inv)
    assert sorted(inventory.names) == ["pi-g", "pi-k"]
    assert inventory.host("pi-k").address == "192.0.2.5"


def test_inventory_errors_name_the_fix(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_inventory(tmp_path / "missing.ini")
    empty = tmp_path / "empty.ini"
    empty.write_text("[pis]\n")
    with pytest.raises(UsageError, match="No hosts"):
        load_inventory(empty)
    some = tmp_path / "some.ini"
    some.write_text("[pis]\npi-1\n")
    with pytest.raises(UsageError, match="matching --limit"):
        load_inventory(some, limit="corals")


def test_inventory_json_order_and_children():
    data = {
        "_meta": {"hostvars": {"b": {"x": 1}}},
        "all": {"children": ["ungrouped", "g1", "g2"]},
        "g1": {"hosts": ["b", "a"]},
        "g2": {"hosts": ["a"], "children": ["g3"]},
        "g3": {"hosts": ["c"]},
        "ungrouped": {"hosts": []},
    }
    inventory = parse_inventory_json(data, path=Path("x"))
    assert inventory.names == ["b", "a", "c"]
    assert inventory.host("b").vars == {"x": 1}


# ------------------------------------------------------------------------------------------ wheelhouse
def test_platform_tags_follow_the_device_glibc():
    tags = platform_tags(Target("aarch64", "3.11", "2.36"))
    assert tags[0] == "manylinux2014_aarch64"
    assert "manylinux_2_17_aarch64" in tags and "manylinux_2_36_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags
    assert all(t.endswith("_aarch64") for t in tags)
    with pytest.raises(UsageError):
        platform_tags(Target("aarch64", "3.11", "musl"))


def test_download_argv_targets_the_device_not_this_machine(tmp_path):
    argv = download_argv(Target("aarch64", "3.13", "2.41"), ["numpy>=1.23"], tmp_path, python="/py")
    assert argv[:4] == ["/py", "-m", "pip", "download"]
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert argv[argv.index("--implementation") + 1] == "cp"
    abis = [argv[i + 1] for i, a in enumerate(argv) if a == "--abi"]
    assert abis == ["cp313", "abi3", "none"]
    platforms = [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"]
    assert "manylinux_2_41_aarch64" in platforms and "manylinux_2_28_aarch64" in platforms
    assert argv[-1] == "numpy>=1.23"
    with pytest.raises(UsageError):
        download_argv(Target("aarch64", "three", None), [], tmp_path)


@pytest.mark.slow  # builds the wheel twice (about 10 s): `make test-fast` leaves it to `make test`
def test_project_wheel_is_repeatable_and_ships_the_playbooks(tmp_path):
    first = build_project_wheel(tmp_path / "a")
    second = build_project_wheel(tmp_path / "b")
    # The same sources give the same bytes: what makes a second deploy change nothing.
    assert sha256_file(first) == sha256_file(second)
    with zipfile.ZipFile(first) as zf:
        names = set(zf.namelist())
    for playbook in ("deploy.yml", "facts.yml", "status.yml", "bench.yml", "files/make_video.py"):
        assert f"edgecnn/fleet/playbooks/{playbook}" in names
    requirements = wheel_requirements(first)
    assert any(r.startswith("numpy") for r in requirements)
    assert not any("tensorflow" in r for r in requirements), "extras must not reach the device"
    digest = folder_digest(tmp_path / "a")
    assert digest == folder_digest(tmp_path / "b")
    # The archive a device receives is repeatable too, and holds exactly the wheels.
    archive_a, archive_b = pack(tmp_path / "a", digest), pack(tmp_path / "b", digest)
    assert archive_a != archive_b and sha256_file(archive_a) == sha256_file(archive_b)
    with tarfile.open(archive_a) as tar:
        assert tar.getnames() == [first.name]


# ------------------------------------------------------------------------------- playbooks via ansible-runner
def test_facts_run_reports_each_host_and_names_the_unreachable_one(tmp_path):
    from edgecnn.fleet.deploy import gather_facts

    lines: list[str] = []
    inventory = load_inventory(_local_inventory(tmp_path, broken=True))
    facts, results = gather_facts(inventory, progress=lines.append)
    assert set(facts) == {"here"}
    here = facts["here"]
    assert here["arch"] == platform.machine()
    assert here["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert here["python_executable"]
    assert results["here"].state == "ok" and results["here"].changed == 0
    # The chroot connection reports a missing root as a failed task, SSH as unreachable: both name it.
    assert results["gone"].state in ("failed", "unreachable")
    assert "no-such-root" in (results["gone"].reason or "")
    assert any(line.split()[:2] == ["here", "ok"] for line in lines), lines
    assert any(line.split()[:2] == ["gone", "FAILED"] for line in lines), lines


def test_deploy_to_only_broken_hosts_names_them_and_exits_1(tmp_path, coral):
    inv = tmp_path / "broken.ini"
    inv.write_text(
        f"[devices]\ngone ansible_connection=community.general.chroot ansible_host={tmp_path / 'nothing'}\n"
    )
    result = run_cli("fleet", "deploy", str(inv), "--model", str(MOBILENET), "--json", timeout=300)
    assert result.code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] == ["gone"]
    assert report["hosts"][0]["state"] in ("failed", "unreachable")
    assert "nothing" in report["hosts"][0]["reason"]
    assert not error_lines(result.stderr)


def test_deploy_rejects_a_bad_name_before_touching_hosts(tmp_path, coral):
    result = run_cli(
        "fleet", "deploy", str(_local_inventory(tmp_path)), "--model", str(MOBILENET), "--name", "../x"
    )
    assert result.code == 2
    assert error_lines(result.stderr) and "Bad service name" in error_lines(result.stderr)[0]
    assert not (tmp_path / "home").exists()


def test_status_of_a_host_without_edgecnn_says_so(tmp_path):
    from edgecnn.fleet.status import fleet_status, format_status

    report = fleet_status(_local_inventory(tmp_path, broken=True))
    rows = {h.host: h for h in report.hosts}
    assert rows["here"].state == "reachable" and rows["here"].arch == platform.machine()
    assert rows["here"].error and "not installed" in rows["here"].error
    assert rows["gone"].state in ("failed", "unreachable")
    assert [h.host for h in report.failed] == ["gone"]
    table = format_status(report)
    assert table.splitlines()[0].split()[:3] == ["HOST", "BOARD", "ARCH"]
    assert "failed: gone" in table


def test_status_of_a_host_with_edgecnn_reads_its_probe(tmp_path):
    """edgecnn_venv points at this environment: `edgecnn devices --json` runs for real on the host."""
    from edgecnn.fleet.status import fleet_status

    inv = tmp_path / "hosts.ini"
    inv.write_text(
        f"[devices]\nhere ansible_connection=local ansible_python_interpreter={sys.executable} "
        f"edgecnn_venv={Path(sys.executable).parent.parent}\n"
    )
    report = fleet_status(inv)
    (row,) = report.hosts
    assert row.installed
    assert row.runtime and row.python == platform.python_version()
    assert row.edgetpu  # the pairing verdict, whatever it is on this machine


# ---------------------------------------------------------------------------------------- status parsing
def test_metrics_and_latest_become_fps_drops_reconnects_and_last_result():
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    from edgecnn.fleet.status import _instance

    registry = CollectorRegistry()
    Counter("edgecnn_frames", "f", registry=registry).inc(120)
    Counter("edgecnn_frames_dropped", "d", registry=registry).inc(7)
    Counter("edgecnn_reconnects", "r", registry=registry).inc(2)
    Gauge("edgecnn_fps", "fps", registry=registry).set(14.5)
    endpoints = {
        "door/metrics": generate_latest(registry).decode(),
        "door/healthz": json.dumps({"status": "ok"}),
        "door/latest": json.dumps({"classes": [{"label": "tiger cat", "score": 0.71}]}),
    }
    service = {
        "name": "door",
        "active": "active",
        "sub_state": "running",
        "enabled": "enabled",
        "serve": ":8080",
    }
    inst = _instance(service, endpoints, systemd_running=True)
    assert (inst.fps, inst.drops, inst.reconnects, inst.frames) == (14.5, 7, 2, 120)
    assert inst.state == "active (running)" and inst.health == "ok"
    assert inst.last_result and inst.last_result.startswith("tiger cat 0.71")

    offline = _instance({"name": "door", "enabled": "enabled"}, {}, systemd_running=False)
    assert offline.state == "enabled (offline)" and offline.fps is None


def test_latest_of_several_cameras_gives_each_camera_its_result_and_counts():
    """A run of several cameras answers ``/latest`` with every camera's: the status names each camera's
    last result and keeps each camera's counts, not the first camera's alone."""
    from edgecnn.fleet.status import _instance

    latest = {
        "cameras": {
            "door": {"summary": "person 0.91", "time": "12:00:01", "counts": {"gate": {"in": 3, "out": 1}}},
            "yard": {"summary": "car 0.80", "time": "12:00:02", "counts": {"drive": {"in": 2, "out": 0}}},
            "garage": None,  # no result yet
        }
    }
    service = {"name": "home", "active": "active", "enabled": "enabled", "serve": ":8080"}
    inst = _instance(service, {"home/latest": json.dumps(latest)}, systemd_running=True)
    assert inst.last_result == "door: person 0.91 @ 12:00:01; yard: car 0.80 @ 12:00:02"
    assert inst.counts == {"door": {"gate": {"in": 3, "out": 1}}, "yard": {"drive": {"in": 2, "out": 0}}}
    # One camera: /latest is that camera's result, as before.
    one = _instance(service, {"home/latest": json.dumps(latest["cameras"]["door"])}, systemd_running=True)
    assert one.last_result == "person 0.91 @ 12:00:01" and one.counts == {"gate": {"in": 3, "out": 1}}


# ------------------------------------------------------------------------------------------------ bench
def test_fleet_bench_rows_name_each_host(tmp_path, coral):
    from edgecnn.bench.report import build_report, format_report
    from edgecnn.bench.results import save_result
    from edgecnn.bench.runner import run_bench
    from edgecnn.fleet.bench import name_rows_by_host

    result = run_bench(MOBILENET, devices="cpu", threads="1", runs=3, warmup=1)
    files = []
    for host in ("pi-kitchen", "pi-garage"):
        path = tmp_path / f"{host}.json"
        save_result(result, path)
        name_rows_by_host(path, host)
        name_rows_by_host(path, host)  # idempotent: fetched again, named once
        files.append(path)
    report = build_report(files)
    labels = [row.label for row in report.rows]
    assert len(labels) == 2
    assert any("pi-kitchen" in label for label in labels) and any("pi-garage" in label for label in labels)
    machine = json.loads(files[0].read_text())["machine"]
    assert machine["name"].count("pi-kitchen") == 1 and machine["probe_name"] == result.machine_name
    assert "pi-garage" in format_report(report)


# ------------------------------------------------------------------ no running systemd: SYSTEMD_OFFLINE
def test_systemd_offline_switches_edgecnn_service_to_the_files(monkeypatch):
    """The deploy playbook sets SYSTEMD_OFFLINE=1 where systemd does not run (an image, a chroot whose
    /proc/1/root cannot be read): `edgecnn service` then works on the files, like systemctl does."""
    from edgecnn.service.layout import Layout
    from edgecnn.service.systemctl import systemd_booted

    monkeypatch.setenv("SYSTEMD_OFFLINE", "1")
    assert Layout().offline
    monkeypatch.setenv("SYSTEMD_OFFLINE", "0")
    assert not Layout().offline
    if systemd_booted():
        pytest.skip("systemd runs here: `service list` would ask it")
    live = run_cli("service", "list", "--json", env={"SYSTEMD_OFFLINE": "0"})
    assert live.code != 0 and "systemd is not running" in error_lines(live.stderr)[0]
    offline = run_cli("service", "list", "--json", env={"SYSTEMD_OFFLINE": "1"})
    assert offline.code == 0, offline.stderr
    assert isinstance(json.loads(offline.stdout), list)
