"""Every command the CLI offers is documented in README.md, and every command has --help with an example."""

from __future__ import annotations

import re

import typer.main

from edgecnn.cli import app
from tests.conftest import ROOT


def _commands(group: typer.Typer, prefix: str = "edgecnn") -> list[tuple[str, object]]:
    click_group = typer.main.get_command(group)
    found = []

    def walk(cmd, path):
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, child in sub.items():
                walk(child, f"{path} {name}")
        else:
            found.append((path, cmd))

    walk(click_group, prefix)
    return found


def test_every_command_appears_in_readme():
    readme = (ROOT / "README.md").read_text()
    commands = _commands(app)
    assert len(commands) >= 2
    missing = [path for path, _ in commands if not re.search(rf"`{re.escape(path)}\b", readme)]
    assert not missing, f"commands not documented in README.md: {missing}"


def test_every_command_has_help_with_an_example():
    for path, cmd in _commands(app):
        help_text = cmd.help or ""
        assert help_text.strip(), f"{path} has no help"
        assert "Example" in help_text or "example" in help_text, f"{path} --help shows no example"
