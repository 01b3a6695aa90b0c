"""Every command the CLI offers is written about in a guide of the documentation site (docs/), and every
command has --help with an example. (Each command's reference page is generated: tests/test_docs_site.py.)"""

from __future__ import annotations

import itertools
import re

import pytest
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


def test_every_command_appears_in_a_guide():
    """The generated reference says what a flag does; a guide must say when to use the command at all."""
    pages = [p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts]
    assert len(pages) >= 10
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    commands = _commands(app)
    assert len(commands) >= 2
    missing = [path for path, _ in commands if not re.search(rf"`{re.escape(path)}\b", text)]
    assert not missing, f"commands no page under docs/ writes about: {missing}"


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


def _hidden_spellings() -> set[str]:
    """Old option names kept hidden for scripts (``--out``, ``--out-dir``): never to be advertised.

    A name another command documents is not one of them: ``eval --top-k`` is the hidden old spelling of
    ``--accuracy-k``, and ``--top-k`` is the documented classes-per-result option of predict and run;
    ``predict --save DIR`` is predict's own, bench's old hidden ``--save`` aside."""
    hidden, shown = set(), set()
    for _path, cmd in _commands(app):
        for param in cmd.params:
            names = {name for name in param.opts if name.startswith("--")}
            (hidden if getattr(param, "hidden", False) else shown).update(names)
    return hidden - shown


def _names(spelling: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])")  # --out, not --output


def test_no_help_text_advertises_a_hidden_spelling(monkeypatch):
    """``fleet --help`` said ``bench MODEL --save`` after the flag became ``-o/--output``."""
    from typer.testing import CliRunner

    hidden = _hidden_spellings()
    assert {"--out", "--out-dir"} <= hidden
    monkeypatch.setenv("TERMINAL_WIDTH", "400")
    monkeypatch.setenv("COLUMNS", "400")
    runner = CliRunner()
    paths = {path for path, _ in _commands(app)}
    paths |= {" ".join(path.split()[:n]) for path in paths for n in range(1, len(path.split()))}  # groups
    for path in sorted(paths):
        result = runner.invoke(app, [*path.split()[1:], "--help"], prog_name="edgecnn")
        assert result.exit_code == 0, result.output
        named = [h for h in hidden if _names(h).search(result.output)]
        assert not named, f"`{path} --help` names the hidden {named}: say -o/--output"


def test_no_message_in_the_source_advertises_a_hidden_spelling():
    """Every string literal under edgecnn/ (errors, docstrings, playbooks aside) spells the documented flag;
    the hidden names appear only where they are declared (``typer.Option``) and mapped (``old_name=``)."""
    import ast

    hidden = _hidden_spellings()
    found = []
    for file in sorted((ROOT / "edgecnn").rglob("*.py")):
        tree = ast.parse(file.read_text(), str(file))
        declared: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Option":
                declared.update(id(a) for a in node.args)
            if isinstance(node, ast.keyword) and node.arg == "old_name":
                declared.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in declared:
                for h in hidden:
                    if _names(h).search(node.value):
                        found.append(f"{file.relative_to(ROOT)}:{node.lineno} {h}")
    assert not found, f"hidden spellings in messages: {found}"


def test_bench_report_of_an_empty_folder_says_how_to_save_results(tmp_path):
    from tests.conftest import error_lines, run_cli

    result = run_cli("bench", "report", tmp_path)
    lines = error_lines(result.stderr)
    assert result.code != 0 and len(lines) == 1, result.stderr
    assert "edgecnn bench MODEL -o FILE.json" in lines[0] and "--save" not in lines[0]


def _sentences_in_help(path: str) -> list[str]:
    """Each paragraph of a command's or group's help as written in the source, on one line."""
    import inspect

    group = typer.main.get_command(app)
    cmd = group
    for name in path.split()[1:]:
        cmd = cmd.commands[name]
    source = inspect.cleandoc(cmd.help or "").replace("\\[", "[")
    return [" ".join(line.strip() for line in p.split("\n")) for p in source.split("\n\n") if p.strip()]


@pytest.mark.parametrize("columns", [400, 60])
def test_rendered_help_wraps_only_at_the_terminal_width(monkeypatch, columns):
    """Help paragraphs were wrapped at the source's margin, so `--help` broke lines mid-sentence on any
    terminal. Wide: each paragraph is one line. Narrow: every line is filled up to the width, none is
    broken early (a line plus the next line's first word would still have fit)."""
    from typer.testing import CliRunner

    monkeypatch.setenv("TERMINAL_WIDTH", str(columns))
    monkeypatch.setenv("COLUMNS", str(columns))
    runner = CliRunner()
    paths = {path for path, _ in _commands(app)}
    paths |= {" ".join(path.split()[:n]) for path in paths for n in range(1, len(path.split()))}  # groups
    checked = 0
    for path in sorted(paths):
        result = runner.invoke(app, [*path.split()[1:], "--help"], prog_name="edgecnn")
        assert result.exit_code == 0, result.output
        lines = [line.strip() for line in result.output.splitlines()]
        for paragraph in _sentences_in_help(path):
            if columns == 400:
                assert paragraph in lines, f"`{path} --help` breaks inside: {paragraph!r}"
                checked += 1
                continue
            # The rendered lines of this paragraph: consecutive lines that join back to it.
            start = next(i for i, line in enumerate(lines) if line and paragraph.startswith(line))
            block = []
            for line in lines[start:]:
                if not line:
                    break
                block.append(line)
            assert " ".join(block) == paragraph, f"`{path} --help` changed {paragraph!r}"
            for line, nxt in itertools.pairwise(block):
                room = columns - 2  # Rich's one-space margin on each side
                assert len(line) + 1 + len(nxt.split()[0]) > room, f"`{path} --help` broke early: {line!r}"
            checked += 1
    assert checked >= 50  # 52 paragraphs in 38 commands and groups when this was written


def test_no_option_help_holds_a_line_break():
    broken = [
        f"{path} {param.name}"
        for path, cmd in _commands(app)
        for param in cmd.params
        if "\n" in (getattr(param, "help", None) or "")
    ]
    assert not broken, broken


def test_readme_links_point_at_files_in_the_repository():
    """README.md is not part of the site's strict build: its relative links are checked here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", readme)
    assert len(targets) >= 5
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
