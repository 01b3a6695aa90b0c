"""``edgecnn service install|uninstall|list|status``: ``edgecnn run`` as a hardened systemd service."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli._app import app, echo_json, run_flag

service_app = typer.Typer(
    help="Install `edgecnn run` as a hardened systemd service (edgecnn@NAME.service) and look after it.",
    no_args_is_help=True,
)
app.add_typer(service_app, name="service")

_ROOT_HELP = (
    "Work on an image mounted at DIR (e.g. an SD card) instead of this machine: no running systemd needed."
)


@service_app.command("install")
def install_command(
    name: str = typer.Argument(..., help="Instance name: edgecnn@NAME.service, /etc/edgecnn/NAME.toml."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="The .tflite model; copied to /var/lib/edgecnn/models/NAME/."
    ),
    camera: int | None = run_flag("camera"),
    source: str | None = run_flag("source"),
    device: str | None = run_flag("device"),
    threads: int | None = run_flag("threads"),
    serve: str | None = run_flag("serve"),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="A TOML file with more `edgecnn run` keys (top_k, jsonl, every, ...); the flags above override it.",
    ),
    root: Path | None = typer.Option(None, "--root", metavar="DIR", help=_ROOT_HELP),
    no_start: bool = typer.Option(False, "--no-start", help="Enable but do not start it now."),
    executable: Path | None = typer.Option(
        None,
        "--executable",
        help="The edgecnn the service runs (default: this environment's). Set it when building an image.",
    ),
    allow_ip: list[str] | None = typer.Option(
        None,
        "--allow-ip",
        help="Also allow this address or prefix (the LAN is allowed already), e.g. an MQTT broker. Repeatable.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Install edgecnn@NAME.service: validated config, model copy, hardened unit; enable and start it.

    The run flags (--camera, --source, --device, --threads, --serve) are `edgecnn run`'s; with --device
    edgetpu or auto the Coral udev rule is installed too.

    Example: sudo edgecnn service install door --model door_int8.tflite --camera 0 --serve 0.0.0.0:8080

    Example (SD card image): edgecnn service install door --model m.tflite --camera 0 --root /mnt/sd
    --executable /opt/edgecnn/bin/edgecnn
    """
    from edgecnn.service.install import install_service

    report = install_service(
        name,
        model=model,
        camera=camera,
        source=source,
        device=device,
        threads=threads,
        serve=serve,
        config=config,
        root=root,
        start=not no_start,
        executable=executable,
        allow_ip=allow_ip or [],
    )
    if json_out:
        echo_json(report.to_dict())
        return
    where = f" in {report.root}" if report.root != "/" else ""
    state = "enabled and started" if report.started else "enabled"
    typer.echo(f"installed {report.unit}{where}: {state}")
    typer.echo(f"  config {report.config}, model {report.model}")
    if report.edgetpu:
        typer.echo("  Edge TPU access: udev rule 99-edgecnn-coral.rules, plugdev group")
    for path in report.files:
        typer.echo(f"  wrote {path}")
    if report.root == "/":
        typer.echo(f"  logs: journalctl -u {report.unit} -f")


@service_app.command("uninstall")
def uninstall_command(
    name: str = typer.Argument(..., help="Instance name."),
    root: Path | None = typer.Option(None, "--root", metavar="DIR", help=_ROOT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stop, disable and remove edgecnn@NAME.service, its config and its model copy.

    The unit template and the Coral udev rule go with the last instance that uses them.

    Example: sudo edgecnn service uninstall door
    """
    from edgecnn.service.install import uninstall_service

    report = uninstall_service(name, root=root)
    if json_out:
        echo_json(report.to_dict())
        return
    typer.echo(f"removed {report.unit}")
    for path in report.removed:
        typer.echo(f"  removed {path}")


@service_app.command("list")
def list_command(
    root: Path | None = typer.Option(None, "--root", metavar="DIR", help=_ROOT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List installed instances with their enabled and active state.

    Example: edgecnn service list --json
    """
    from edgecnn.service.status import format_list, list_services

    infos = list_services(root=root)
    if json_out:
        echo_json([i.to_dict() for i in infos])
    else:
        typer.echo(format_list(infos))


@service_app.command("status")
def status_command(
    name: str = typer.Argument(..., help="Instance name."),
    root: Path | None = typer.Option(None, "--root", metavar="DIR", help=_ROOT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """systemd's state of edgecnn@NAME.service and, when it serves, its /healthz answer.

    Example: edgecnn service status door
    """
    from edgecnn.service.status import format_status, service_status

    info = service_status(name, root=root)
    if json_out:
        echo_json(info.to_dict())
    else:
        typer.echo(format_status(info))
