"""``edgecnn bench report FILE...``: saved results side by side, as a table and a bar chart.

Rows are configurations (machine, device that ran the model, threads), columns are models; each cell is
the median and p99 latency and the speed-up over the slowest row for that model. ``--reference`` compares
the new files with reference results (``benchmarks/reference/``) and flags medians more than 30% slower;
a single flag on a shared machine is a reason to re-run, not proof of a regression.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.atomic import atomic_path
from edgecnn.bench.results import BenchResult, ConfigResult, load_result
from edgecnn.errors import InputError, RuntimeMissing, UsageError
from edgecnn.texttable import render

REGRESSION_THRESHOLD = 0.30
NOISE_NOTE = (
    "Shared and virtual machines are noisy (other jobs, frequency scaling, thermal limits): re-run a "
    "flagged configuration before trusting it, and compare like with like (same machine class, runtime)."
)


@dataclass(frozen=True)
class Cell:
    median_ms: float
    p99_ms: float
    speedup: float  # slowest median in this model's column / this median
    source: str  # the file it came from


@dataclass
class Row:
    machine: str
    device: str
    threads: int
    cells: dict[str, Cell] = field(default_factory=dict)  # model column -> cell

    @property
    def label(self) -> str:
        return f"{self.machine} · {self.device} · {self.threads} thread{'s' if self.threads != 1 else ''}"


@dataclass(frozen=True)
class Comparison:
    """One configuration of a new run against the matching reference configuration."""

    model: str
    machine: str
    device: str
    threads: int
    median_ms: float
    reference_ms: float
    change: float  # (new - reference) / reference; +0.45 = 45% slower
    regression: bool
    reference_machine: str
    matched_by: str  # "sha256" or "name"
    reference_file: str


@dataclass
class BenchReport:
    models: list[str]
    rows: list[Row]
    files: list[str]
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    threshold: float = REGRESSION_THRESHOLD

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regression]

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "rows": [
                {
                    "label": r.label,
                    **{k: v for k, v in asdict(r).items() if k != "cells"},
                    "cells": {m: asdict(c) for m, c in r.cells.items()},
                }
                for r in self.rows
            ],
            "files": self.files,
            # Percentages, the unit `--threshold 30` is typed in (``change`` stays the fraction, +0.45).
            "comparisons": [{**asdict(c), "change_pct": round(c.change * 100, 2)} for c in self.comparisons],
            "regressions": len(self.regressions),
            "threshold_pct": round(self.threshold * 100, 6),
            "notes": self.notes,
        }


def _machine_labels(results: list[BenchResult]) -> list[str]:
    """The probe's name, plus the hostname when two different hosts share a name (a fleet of Pi 5s)."""
    hosts_by_name: dict[str, set[str]] = {}
    for r in results:
        hosts_by_name.setdefault(r.machine_name, set()).add(str(r.machine.get("hostname") or ""))
    labels = []
    for r in results:
        host = r.machine.get("hostname")
        many = len(hosts_by_name[r.machine_name]) > 1
        labels.append(f"{r.machine_name} ({host})" if many and host else r.machine_name)
    return labels


def _model_columns(results: list[BenchResult]) -> list[str]:
    """Column name per file: the model file name, with a hash prefix when two different models share it."""
    shas_by_name: dict[str, set[str]] = {}
    for r in results:
        shas_by_name.setdefault(r.model.name, set()).add(r.model.sha256)
    return [
        f"{r.model.name}@{r.model.sha256[:8]}" if len(shas_by_name[r.model.name]) > 1 else r.model.name
        for r in results
    ]


def load_results(paths: list[str | os.PathLike[str]]) -> list[tuple[Path, BenchResult]]:
    """Load files, expanding folders to the ``*.json`` files inside them (recursively)."""
    loaded = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files = sorted(p.rglob("*.json"))
            if not files:
                raise InputError(
                    f"No bench results (*.json) in {p}: save some with `edgecnn bench MODEL --save`."
                )
            loaded += [(f, load_result(f)) for f in files]
        else:
            loaded.append((p, load_result(p)))
    return loaded


def _key(config: ConfigResult) -> tuple[str, int]:
    """Configurations match on the kind of device (cpu, edgetpu) and the thread count."""
    return (config.device_used.split(":")[0], config.threads)


def compare_to_reference(
    new: list[tuple[Path, BenchResult]],
    reference: list[tuple[Path, BenchResult]],
    *,
    threshold: float = REGRESSION_THRESHOLD,
) -> tuple[list[Comparison], list[str]]:
    """Match each new configuration with a reference one (same model, device kind, threads)."""
    comparisons = []
    notes = []
    unmatched = []
    for _, result in new:
        for config in result.results:
            best = None
            for ref_path, ref in reference:
                if ref.model.sha256 == result.model.sha256:
                    matched_by = "sha256"
                elif (ref.model.name, ref.model.input_shape, ref.model.input_dtype) == (
                    result.model.name,
                    result.model.input_shape,
                    result.model.input_dtype,
                ):
                    matched_by = "name"  # the same file name and input: a rebuild of the same model
                else:
                    continue
                for ref_config in ref.results:
                    if _key(ref_config) != _key(config):
                        continue
                    rank = (matched_by == "sha256", ref.machine_name == result.machine_name, ref.created)
                    if best is None or rank > best[0]:
                        best = (rank, ref_path, ref, ref_config, matched_by)
            if best is None:
                unmatched.append(f"{result.model.name} {config.device_used} x{config.threads}")
                continue
            _, ref_path, ref, ref_config, matched_by = best
            ref_ms = ref_config.latency_ms.p50
            change = (config.latency_ms.p50 - ref_ms) / ref_ms if ref_ms > 0 else 0.0
            comparisons.append(
                Comparison(
                    model=result.model.name,
                    machine=result.machine_name,
                    device=config.device_used,
                    threads=config.threads,
                    median_ms=config.latency_ms.p50,
                    reference_ms=ref_ms,
                    change=round(change, 4),
                    regression=change > threshold,
                    reference_machine=ref.machine_name,
                    matched_by=matched_by,
                    reference_file=str(ref_path),
                )
            )
            if ref.machine_name != result.machine_name:
                notes.append(
                    f"{result.model.name}: the reference was measured on {ref.machine_name}, this run on "
                    f"{result.machine_name}; the comparison is only indicative."
                )
            if matched_by == "name":
                notes.append(
                    f"{result.model.name}: matched the reference by file name (different sha256): the model "
                    "was rebuilt, so part of any change may be the model's."
                )
    if unmatched:
        notes.append("No reference for: " + ", ".join(unmatched) + ".")
    notes.append(NOISE_NOTE)
    return comparisons, list(dict.fromkeys(notes))


def build_report(
    files: list[str | os.PathLike[str]],
    *,
    reference: str | os.PathLike[str] | None = None,
    threshold: float = REGRESSION_THRESHOLD,
) -> BenchReport:
    """Load ``files`` (and ``reference``, a file or folder) into one comparison."""
    if not files:
        raise UsageError("No result files: edgecnn bench report FILE [FILE...].")
    if threshold <= 0:
        raise UsageError("--threshold must be a positive percentage, e.g. 30.")
    loaded = load_results(list(files))
    results = [r for _, r in loaded]
    machines = _machine_labels(results)
    columns = _model_columns(results)
    rows: dict[tuple[str, str, int], Row] = {}
    notes = []
    for (path, result), machine, column in zip(loaded, machines, columns, strict=True):
        for config in result.results:
            key = (machine, config.device_used, config.threads)
            row = rows.setdefault(key, Row(machine, config.device_used, config.threads))
            if column in row.cells:
                notes.append(
                    f"{column} on {row.label} appears in more than one file; showing {path.name} "
                    f"(the later argument)."
                )
            row.cells[column] = Cell(config.latency_ms.p50, config.latency_ms.p99, 1.0, str(path))
    models = list(dict.fromkeys(columns))
    for model in models:
        medians = [r.cells[model].median_ms for r in rows.values() if model in r.cells]
        slowest = max(medians)
        for r in rows.values():
            if model in r.cells:
                c = r.cells[model]
                speedup = slowest / c.median_ms if c.median_ms > 0 else 0.0
                r.cells[model] = Cell(c.median_ms, c.p99_ms, round(speedup, 2), c.source)
    report = BenchReport(
        models=models,
        rows=list(rows.values()),
        files=[str(p) for p, _ in loaded],
        notes=notes,
        threshold=threshold,
    )
    if reference is not None:
        ref_path = Path(reference)
        if not ref_path.exists():
            raise InputError(f"Reference not found: {ref_path}. Pass a result file or a folder of them.")
        report.comparisons, ref_notes = compare_to_reference(
            loaded, load_results([ref_path]), threshold=threshold
        )
        report.notes += ref_notes
    return report


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return f"{cell.median_ms:.3f} / {cell.p99_ms:.3f} ({cell.speedup:.2f}x)"


def format_report(report: BenchReport, *, markdown: bool = False) -> str:
    """The comparison table (plain text or Markdown), then reference comparisons and notes."""
    header = ["configuration", *report.models]
    body = [[row.label, *(_cell_text(row.cells.get(m)) for m in report.models)] for row in report.rows]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---", *["---:"] * len(report.models)]) + "|")
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        lines += render(header, body, right=range(1, len(header)), rule=True, header_left=True).splitlines()
    lines.append("")
    lines.append("cells: median / p99 latency in ms (speed-up over the slowest configuration for that model)")
    if report.comparisons:
        lines.append("")
        lines.append(
            f"against reference (flagged when the median is more than {report.threshold:.0%} slower):"
        )
        for c in report.comparisons:
            flag = "REGRESSION" if c.regression else "ok"
            lines.append(
                f"{'- ' if markdown else ''}{flag:<10} {c.model} {c.device} x{c.threads}: {c.median_ms:.3f} ms vs "
                f"{c.reference_ms:.3f} ms ({c.change:+.0%})"
            )
    for note in report.notes:
        lines.append(f"{'> ' if markdown else 'note: '}{note}")
    return "\n".join(lines)


def plot_report(report: BenchReport, out: str | os.PathLike[str]) -> Path:
    """Grouped bar chart (one group per model, one bar per configuration), median with a p99 whisker.

    matplotlib is the ``[plot]`` extra; the PNG is written to a temp file and renamed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeMissing(
            "The bar chart needs matplotlib: pip install edgecnn[plot] (or drop --plot)."
        ) from exc

    target = Path(out)
    if target.suffix.lower() != ".png":
        raise UsageError(f"--plot {target} must end in .png.")
    n_rows = max(1, len(report.rows))
    fig = Figure(
        figsize=(max(6.0, 1.2 + len(report.models) * (0.5 + 0.35 * n_rows)), 4.8), layout="constrained"
    )
    ax = fig.subplots()
    width = 0.8 / n_rows
    medians_all = []
    for i, row in enumerate(report.rows):
        xs, medians, whiskers = [], [], []
        for j, model in enumerate(report.models):
            cell = row.cells.get(model)
            if cell is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            medians.append(cell.median_ms)
            whiskers.append(max(0.0, cell.p99_ms - cell.median_ms))
        medians_all += medians
        ax.bar(
            xs, medians, width=width * 0.95, label=row.label, yerr=[[0] * len(whiskers), whiskers], capsize=3
        )
    ax.set_xticks(range(len(report.models)), report.models, rotation=15 if len(report.models) > 2 else 0)
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title("edgecnn bench: median latency (whisker: p99)")
    positive = [m for m in medians_all if m > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return target
