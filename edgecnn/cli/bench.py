"""``edgecnn bench MODEL ...`` (same as ``bench run``), ``bench report FILE...``, ``bench formats MODEL.keras``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from edgecnn.cli._app import (
    app,
    deprecated_alias,
    echo_json,
    model_option,
    pick_model,
    run_flag,
    task_options,
)


class _DefaultRunGroup(TyperGroup):
    """``edgecnn bench MODEL ...`` means ``edgecnn bench run MODEL ...``: anything that is not a sub-command
    name (or the group's own --help) is routed to ``run``, so the short form in the docs works as written."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=_DefaultRunGroup,
    no_args_is_help=True,
    help=(
        "Measure latency per device and thread count, save it, and compare saved runs across machines.\n\n"
        "Examples: edgecnn bench model_int8.tflite --threads 1,2,4 -o pi5.json;  "
        "edgecnn bench report pi5.json x86.json --plot latency.png"
    ),
)
app.add_typer(bench_app, name="bench")


@bench_app.command("run")
def bench_run_command(
    model: Path | None = typer.Argument(
        None, metavar="MODEL", help="Path to a .tflite model.", show_default=False
    ),
    model_opt: Path | None = model_option(),
    device: str = typer.Option(
        "cpu", "--device", help="Comma list of devices: cpu, edgetpu (edgetpu:usb, edgetpu:pci:N), auto."
    ),
    threads: str = typer.Option("1", "--threads", help="Comma list of CPU thread counts (1-64), e.g. 1,2,4."),
    runs: int = typer.Option(100, "--runs", min=2, max=1_000_000, help="Timed inferences per configuration."),
    warmup: int = typer.Option(10, "--warmup", min=0, max=100_000, help="Untimed inferences before timing."),
    duration: float | None = typer.Option(
        None,
        "--duration",
        min=0.1,
        max=3600,
        help="Time for this many seconds per configuration instead of --runs.",
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Folder of images to feed (preprocessed before timing) instead of random pixels.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the random input."),
    save: Path | None = typer.Option(
        None, "--output", "-o", help="Write the full result as JSON (for bench report)."
    ),
    old_save: Path | None = typer.Option(None, "--save", hidden=True),
    json_out: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    top_k: int | None = run_flag("top_k"),
    object_threshold: float | None = run_flag("object_threshold"),
    max_detections: int | None = run_flag("max_detections"),
    classes: str | None = run_flag("classes"),
    iou: float | None = run_flag("iou"),
    agnostic: bool | None = run_flag("agnostic"),
) -> None:
    """Time a model per configuration (device x threads): load, first inference, latency percentiles.

    The task options (--top-k, --object-threshold, ...) are predict's and run's: the decode is timed as
    they would run it (NMS work grows with the candidates over --object-threshold).

    Example: edgecnn bench model_int8.tflite --device cpu,edgetpu --threads 1,4 --runs 500 -o pi5.json
    """
    from edgecnn.atomic import check_output
    from edgecnn.bench.results import save_result
    from edgecnn.bench.runner import format_result, run_bench

    save = deprecated_alias(save, old_save, new="--output", old_name="--save")
    if save is not None:  # a directory or a socket fails now, not after the timing
        check_output(save, what="bench result")
    result = run_bench(
        pick_model(model, model_opt),
        devices=device,
        threads=threads,
        runs=runs,
        warmup=warmup,
        duration_s=duration,
        images=images,
        seed=seed,
        decode=task_options(
            top_k=top_k,
            object_threshold=object_threshold,
            max_detections=max_detections,
            classes=classes,
            iou=iou,
            agnostic=agnostic,
        ),
    )
    if save is not None:
        save_result(result, save)
    if json_out:
        echo_json(result.to_dict())
    else:
        typer.echo(format_result(result))
        if save is not None:
            typer.echo(f"wrote {save}")


@bench_app.command("report")
def bench_report_command(
    files: list[Path] = typer.Argument(..., help="Result files (or folders of them) saved with bench -o."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write a bar chart PNG (needs edgecnn\\[plot])."
    ),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="Reference result file or folder (e.g. benchmarks/reference) to compare with.",
    ),
    threshold: float = typer.Option(
        30.0,
        "--threshold",
        min=1,
        max=1000,
        help="Flag medians slower than the reference by more than this %.",
    ),
    fail_on_regression: bool = typer.Option(
        False, "--fail-on-regression", help="Exit with status 1 when a regression is flagged (for CI)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare saved runs: rows per machine/device/threads, columns per model, median and p99, speed-up.

    Example: edgecnn bench report pi5.json x86.json --markdown --plot latency.png --reference benchmarks/reference
    """
    from edgecnn.atomic import check_output
    from edgecnn.bench.report import build_report, format_report, plot_report

    if plot is not None:
        check_output(plot, what="bench chart")
    report = build_report(list(files), reference=reference, threshold=threshold / 100)
    if plot is not None:
        plot_report(report, plot)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_report(report, markdown=markdown))
        if plot is not None:
            typer.echo(f"wrote {plot}")
    if fail_on_regression and report.regressions:
        raise typer.Exit(1)


@bench_app.command("formats")
def bench_formats_command(
    model: Path = typer.Argument(..., help="A trained Keras model (.keras)."),
    dataset: str = typer.Option(
        ..., "--dataset", help="Dataset for calibration and held-out accuracy, e.g. digits."
    ),
    threads: int = typer.Option(1, "--threads", min=1, max=64, help="CPU threads for the latency runs."),
    runs: int = typer.Option(100, "--runs", min=2, max=100_000, help="Timed inferences per format."),
    out_dir: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Keep the converted .tflite files in this folder (default: a temporary one).",
    ),
    old_out_dir: Path | None = typer.Option(None, "--out-dir", hidden=True),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """float32 / float16 / dynamic-range / int8 TFLite side by side: size, held-out accuracy, median latency.

    Needs the \\[train] extra (TensorFlow). Example: edgecnn bench formats digits.keras --dataset digits
    """
    from edgecnn.bench.formats import compare_formats, format_formats

    out_dir = deprecated_alias(out_dir, old_out_dir, new="--output", old_name="--out-dir")
    report = compare_formats(model, dataset=dataset, threads=threads, runs=runs, out_dir=out_dir)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_formats(report))
