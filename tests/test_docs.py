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


def _help_texts(cmd) -> list[str]:
    """The command's docstring and every option's help, as written in the source (Rich escapes removed)."""
    texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    return [t.replace("\\[", "[") for t in texts]


def test_help_keeps_every_bracketed_word(monkeypatch):
    """Rich reads ``[plot]`` as markup and drops it: every ``[word]`` written in help text must be shown."""
    from typer.testing import CliRunner

    monkeypatch.setenv("TERMINAL_WIDTH", "400")
    monkeypatch.setenv("COLUMNS", "400")
    runner = CliRunner()
    checked = 0
    for path, cmd in _commands(app):
        words = {m for text in _help_texts(cmd) for m in re.findall(r"\[[A-Za-z][\w-]*\]", text)}
        if not words:
            continue
        result = runner.invoke(app, [*path.split()[1:], "--help"], prog_name="edgecnn")
        assert result.exit_code == 0, result.output
        lost = sorted(w for w in words if w not in result.output)
        assert not lost, f"`{path} --help` lost {lost} (escape them as \\\\[word] for Rich)"
        checked += 1
    assert checked >= 3  # bench report, bench formats, fleet bench, run --mqtt at least
