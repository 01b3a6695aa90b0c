"""Human-readable tables for evaluation reports (Rich), one function per task's report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from edgecnn.eval.classify import ClassificationReport, ClassificationScore
    from edgecnn.eval.detect import DetectionReport

# Above this many classes the confusion matrix is listed as its largest off-diagonal cells instead.
MATRIX_MAX_CLASSES = 12
TOP_CONFUSIONS = 10


def _fmt(value: float | None, unit: str = "%") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} pts"


def _summary(title: str, rows: list[tuple[str, str, str | None]], against: bool) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("model", justify="right")
    if against:
        table.add_column("--against", justify="right")
    for name, a, b in rows:
        table.add_row(name, a, *([b or ""] if against else []))
    return table


def _model_rows(a: Any, b: Any | None) -> list[tuple[str, str, str | None]]:
    return [
        ("file", Path(a.model).name, Path(b.model).name if b else None),
        ("device", f"{a.device} ({a.runtime})", f"{b.device} ({b.runtime})" if b else None),
    ]


def _median_row(a: Any, b: Any | None) -> tuple[str, str, str | None]:
    return (
        "median inference",
        _fmt(a.median_inference_ms, " ms"),
        _fmt(b.median_inference_ms, " ms") if b else None,
    )


def _confusion(score: ClassificationScore) -> Table:
    cm = score.confusion
    if len(cm.rows) <= MATRIX_MAX_CLASSES:
        table = Table(
            title="confusion matrix (rows: folder, columns: top-1 prediction)", title_justify="left"
        )
        table.add_column("")
        for column in cm.columns:
            table.add_column(column, justify="right")
        for row, counts in zip(cm.rows, cm.counts, strict=True):
            table.add_row(row, *(str(c) if c else "·" for c in counts))
        return table
    cells = [
        (count, row, column)
        for row, counts in zip(cm.rows, cm.counts, strict=True)
        for column, count in zip(cm.columns, counts, strict=True)
        if count and row != column
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    table = Table(title=f"most frequent confusions (of {len(cells)})", title_justify="left")
    for name in ("folder", "predicted", "images"):
        table.add_column(name, justify="right" if name == "images" else "left")
    for count, row, column in cells[:TOP_CONFUSIONS]:
        table.add_row(row, column, str(count))
    return table


def classification_tables(report: ClassificationReport) -> list[Table]:
    a, b = report.model, report.against
    rows = _model_rows(a, b)
    rows += [
        ("images", str(a.images), str(b.images) if b else None),
        ("top-1 accuracy", _fmt(a.top1_pct), _fmt(b.top1_pct) if b else None),
        (f"top-{a.top_k} accuracy", _fmt(a.topk_pct), _fmt(b.topk_pct) if b else None),
        _median_row(a, b),
    ]
    if report.comparison:
        c = report.comparison
        rows += [
            ("top-1 agreement", _fmt(c.agreement_pct), f"{c.disagreements} image(s) differ"),
            ("top-1 difference", _signed(c.top1_difference_pts), ""),
        ]
    per_class = Table(title="per class", title_justify="left")
    per_class.add_column("folder")
    per_class.add_column("images", justify="right")
    per_class.add_column("top-1", justify="right")
    if b:
        per_class.add_column("--against top-1", justify="right")
    for i, cls in enumerate(a.per_class):
        extra = [_fmt(b.per_class[i].top1_pct)] if b else []
        per_class.add_row(cls.label, str(cls.images), _fmt(cls.top1_pct), *extra)
    tables = [_summary(f"eval {report.data}: classification", rows, b is not None), per_class, _confusion(a)]
    if report.comparison and report.comparison.disagreeing_images:
        differ = report.comparison.disagreeing_images
        table = Table(
            title=f"images where the models disagree ({len(differ)}; all in --json)", title_justify="left"
        )
        for name in ("image", "folder", "model", "--against"):
            table.add_column(name)
        for d in differ[:TOP_CONFUSIONS]:
            table.add_row(str(Path(d.image).relative_to(report.data)), d.folder, d.model, d.against)
        tables.append(table)
    return tables


def detection_tables(report: DetectionReport) -> list[Table]:
    a, b = report.model, report.against
    rows = _model_rows(a, b)
    rows += [
        ("images / objects", f"{a.images} / {a.objects}", f"{b.images} / {b.objects}" if b else None),
        ("classes matched by", a.matched_by, b.matched_by if b else None),
        ("mAP@0.5", _fmt(a.map50_pct), _fmt(b.map50_pct) if b else None),
        ("mAP@0.5:0.95", _fmt(a.map50_95_pct), _fmt(b.map50_95_pct) if b else None),
        _median_row(a, b),
    ]
    if report.comparison:
        c = report.comparison
        rows += [
            ("agreement (mAP@0.5 vs --against)", _fmt(c.agreement_pct), ""),
            ("mAP@0.5 difference", _signed(c.map50_difference_pts), ""),
            ("mAP@0.5:0.95 difference", _signed(c.map50_95_difference_pts), ""),
        ]
    per_class = Table(title="per class", title_justify="left")
    for name in ("class", "objects", "AP@0.5", "AP@0.5:0.95"):
        per_class.add_column(name, justify="left" if name == "class" else "right")
    if b:
        per_class.add_column("--against AP@0.5", justify="right")
    for i, cls in enumerate(a.per_class):
        extra = [_fmt(b.per_class[i].ap50_pct)] if b else []
        per_class.add_row(cls.label, str(cls.objects), _fmt(cls.ap50_pct), _fmt(cls.ap50_95_pct), *extra)
    return [_summary(f"eval {report.data} ({report.format}): detection", rows, b is not None), per_class]
