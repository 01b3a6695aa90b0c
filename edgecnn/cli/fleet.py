"""``edgecnn fleet deploy|status|bench INVENTORY``: many devices through Ansible (the ``[fleet]`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, deprecated_alias, echo_json

fleet_app = typer.Typer(
    help=(
        "Deploy, observe and benchmark many devices listed in an Ansible inventory (needs the fleet extra "
        "on this machine: pip install 'edgecnn\\[fleet]'; devices need Python 3 and SSH).\n\n"
        "Example: edgecnn fleet deploy hosts.ini --model door_int8.tflite --config door.toml"
    ),
    no_args_is_help=True,
)
app.add_typer(fleet_app, name="fleet")

_INVENTORY = typer.Argument(
    ..., exists=True, resolve_path=True, help="Ansible inventory (INI, YAML or a folder) naming the devices."
)
_LIMIT_HELP = "Only hosts matching this Ansible pattern (e.g. 'pis:!pi-03')."


def _progress(line: str) -> None:
    typer.echo(line, err=True)


@fleet_app.command("deploy")
def deploy_command(
    inventory: Path = _INVENTORY,
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        exists=True,
        dir_okay=False,
        resolve_path=True,
        help="The .tflite model to deploy.",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        resolve_path=True,
        help="Instance config NAME.toml (edgecnn run keys: source, serve, ...; paths as on the devices).",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Instance name (edgecnn@NAME.service). Default: the config's or model's file stem.",
    ),
    limit: str | None = typer.Option(None, "--limit", "-l", help=_LIMIT_HELP),
    serial: int | None = typer.Option(
        None,
        "--serial",
        min=1,
        max=10_000,
        help="Roll out N hosts at a time; a batch that fails (health gate included) stops the rollout.",
    ),
    check: bool = typer.Option(
        False, "--check", help="Dry run (Ansible check mode): show what would change."
    ),
    online: bool = typer.Option(
        False, "--online", help="Devices install dependencies from their own package index, not a wheelhouse."
    ),
    wheel: Path | None = typer.Option(
        None,
        "--wheel",
        exists=True,
        dir_okay=False,
        resolve_path=True,
        help="The edgecnn wheel to install (default: built from the checkout edgecnn runs from).",
    ),
    health_frames: int = typer.Option(
        10, "--health-frames", min=1, max=10_000, help="Frames the offline health gate runs the model on."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the per-host outcome as JSON."),
) -> None:
    """Install edgecnn, the model and edgecnn@NAME.service on every host, then check each is healthy.

    Builds one wheelhouse per (architecture, Python) the hosts report, so devices need no package index.
    A second run with the same inputs changes nothing. Exits 1 when any host failed or was unreachable.

    Example: edgecnn fleet deploy hosts.ini --model door_int8.tflite --config door.toml --serial 2
    """
    from edgecnn.fleet.deploy import deploy, format_summary

    report = deploy(
        inventory,
        model=model,
        config=config,
        name=name,
        limit=limit,
        serial=serial,
        check=check,
        online=online,
        wheel=wheel,
        health_frames=health_frames,
        progress=_progress,
        say=_progress,
    )
    if json_out:
        echo_json(report.to_dict())
    else:
        title = f"fleet deploy edgecnn@{report.name} ({Path(report.model).name}, {report.wheel})"
        typer.echo(format_summary(report.hosts, title=title + (" [check mode]" if report.check else "")))
    if report.failed:
        raise typer.Exit(1)


@fleet_app.command("status")
def status_command(
    inventory: Path = _INVENTORY,
    limit: str | None = typer.Option(None, "--limit", "-l", help=_LIMIT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One table for the fleet: board, arch, Python, TFLite runtime, Edge TPU verdict, service state, fps,
    drops, reconnects and the last result of every instance.

    Example: edgecnn fleet status hosts.ini --json
    """
    from edgecnn.fleet.status import fleet_status, format_status

    report = fleet_status(inventory, limit=limit, progress=_progress)
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(format_status(report))
    if report.failed:
        raise typer.Exit(1)


@fleet_app.command("bench")
def bench_command(
    inventory: Path = _INVENTORY,
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        exists=True,
        dir_okay=False,
        resolve_path=True,
        help="The .tflite model to time.",
    ),
    runs: int = typer.Option(100, "--runs", min=2, max=1_000_000, help="Timed inferences per host."),
    threads: str = typer.Option("1", "--threads", help="Comma list of CPU thread counts, e.g. 1,4."),
    out: Path = typer.Option(
        Path("fleet-bench"),
        "--output",
        "-o",
        file_okay=False,
        help="Folder for the fetched result files (HOST.json).",
    ),
    old_out: Path | None = typer.Option(None, "--out", hidden=True, file_okay=False),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write a bar chart PNG (needs edgecnn\\[plot])."
    ),
    limit: str | None = typer.Option(None, "--limit", "-l", help=_LIMIT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """`edgecnn bench MODEL -o FILE` on every host (edgecnn deployed there already), results fetched into
    --output, and one `edgecnn bench report` across the fleet, rows named by each device's probe.

    Example: edgecnn fleet bench hosts.ini --model door_int8.tflite --runs 200 --plot fleet.png
    """
    from edgecnn.bench.report import format_report, plot_report
    from edgecnn.fleet.bench import fleet_bench

    out = deprecated_alias(out, old_out, new="--output", old_name="--out", default=Path("fleet-bench"))
    result = fleet_bench(
        inventory, model=model, runs=runs, threads=threads, out=out, limit=limit, progress=_progress
    )
    if result.report is not None and plot is not None:
        plot_report(result.report, plot)
    if json_out:
        echo_json(result.to_dict())
    else:
        if result.report is not None:
            typer.echo(format_report(result.report))
            typer.echo(f"results in {out}" + (f", plot {plot}" if plot is not None else ""))
        from edgecnn.fleet.deploy import format_summary

        typer.echo(format_summary(result.hosts, title="fleet bench"))
    if result.failed:
        raise typer.Exit(1)
