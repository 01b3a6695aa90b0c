"""``edgecnn fleet bench``: ``edgecnn bench MODEL -o FILE`` on every host, one ``bench report`` across the fleet.

Each fetched result keeps its device probe (board, CPU, runtime); the machine name gets the inventory
host appended (``Raspberry Pi 5 Model B Rev 1.0 · pi-kitchen``, the probe's own name kept as
``probe_name``) so that two devices of the same kind stay two rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.fleet.deploy import FleetHost, merge_results
from edgecnn.fleet.inventory import load_inventory
from edgecnn.fleet.runner import Progress, run_playbook

BENCH_TIMEOUT_S = 3600


@dataclass
class FleetBench:
    hosts: list[FleetHost]
    files: list[Path]
    report: Any  # edgecnn.bench.report.BenchReport, None when no host produced a result

    @property
    def failed(self) -> list[FleetHost]:
        return [h for h in self.hosts if not h.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hosts": [h.to_dict() for h in self.hosts],
            "files": [str(f) for f in self.files],
            "report": self.report.to_dict() if self.report is not None else None,
            "failed": [h.name for h in self.failed],
        }


def name_rows_by_host(path: Path, host: str) -> None:
    """Append the inventory host to the result's machine name (idempotent), rewriting the file atomically."""
    from edgecnn.atomic import write_atomic

    data = json.loads(path.read_text(encoding="utf-8"))
    machine = data.setdefault("machine", {})
    probe_name = machine.get("probe_name") or machine.get("name") or "unknown machine"
    machine["probe_name"] = probe_name
    machine["fleet_host"] = host
    machine["name"] = f"{probe_name} · {host}"
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def fleet_bench(
    inventory_path: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str],
    runs: int = 100,
    threads: str = "1",
    out: str | os.PathLike[str] = "fleet-bench",
    limit: str | None = None,
    progress: Progress | None = None,
) -> FleetBench:
    from edgecnn.bench.report import build_report
    from edgecnn.modelfile import read_model

    model_path = Path(model).absolute()
    if not model_path.is_file():
        raise UsageError(f"Model {model_path} not found: pass --model FILE.tflite.")
    read_model(model_path)
    from edgecnn.atomic import output_folder

    out_dir = output_folder(Path(out).absolute(), what="fleet bench results")
    inventory = load_inventory(inventory_path, limit=limit)
    for name in inventory.names:  # a stale file from an earlier run must not pass for this one's
        (out_dir / f"{name}.json").unlink(missing_ok=True)
    extravars = {
        "edgecnn_model": str(model_path),
        "edgecnn_model_name": model_path.name,
        "edgecnn_model_sha1": hashlib.sha1(model_path.read_bytes(), usedforsecurity=False).hexdigest(),
        "edgecnn_bench_runs": runs,
        "edgecnn_bench_threads": threads,
        "edgecnn_bench_out": str(out_dir),
        "edgecnn_bench_timeout": BENCH_TIMEOUT_S,
    }
    results = run_playbook(
        "bench.yml",
        inventory=inventory.path,
        hosts=inventory.names,
        extravars=extravars,
        limit=limit,
        progress=progress,
    )
    hosts = merge_results(inventory.names, results, None, serial=False)
    files = []
    for h in hosts:
        path = out_dir / f"{h.name}.json"
        if h.success and path.is_file():
            name_rows_by_host(path, h.name)
            files.append(path)
        elif h.success:
            h.state, h.reason = "failed", f"no result fetched to {path}"
    paths: list[str | os.PathLike[str]] = list(files)
    report = build_report(paths) if paths else None
    return FleetBench(hosts, files, report)
