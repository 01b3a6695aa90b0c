"""``edgecnn devices``."""

from __future__ import annotations

import typer

from edgecnn.cli._app import app, echo_json


@app.command("devices")
def devices_command(
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """What this machine is and can do: board, CPU, memory, OS, runtime, governor, temperature, throttling,
    Edge TPUs (USB/PCIe) and whether libedgetpu loads, cameras.

    Example: edgecnn devices --json
    """
    from edgecnn.devices.probe import format_probe, probe_device

    probe = probe_device()
    if json_out:
        echo_json(probe.to_dict())
    else:
        typer.echo(format_probe(probe))
