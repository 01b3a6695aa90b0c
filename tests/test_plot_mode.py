"""Files edgecnn writes are as readable as any other (0644): the bench chart too, not mkstemp's 0600."""

from __future__ import annotations

import stat

from edgecnn.bench.report import build_report, plot_report
from edgecnn.bench.results import save_result
from edgecnn.bench.runner import run_bench
from tests.conftest import MOBILENET


def test_bench_plot_is_world_readable(tmp_path, coral):
    saved = save_result(run_bench(MOBILENET, runs=3, warmup=1), tmp_path / "x86.json")
    png = plot_report(build_report([saved]), tmp_path / "latency.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(png.stat().st_mode) == 0o644
