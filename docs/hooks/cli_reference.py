"""MkDocs hook: one reference page per ``edgecnn`` command, generated from the Typer app at build time.

The pages are rendered from the same click command tree that ``--help`` reads
(``typer.main.get_command(app)``), so a flag, default, range or help sentence can never differ between
the terminal and the site, and a new command gets its page without anyone writing one. ``mkdocs.yml``
names ``reference/cli/index.md`` once in its nav; :func:`on_config` replaces that entry with the index
and every command's page, in the app's order. Used by ``mkdocs build``/``serve`` (``hooks:`` in
mkdocs.yml) and by ``tests/test_docs_site.py``. The same hook fills in two more generated parts: the
configuration keys (reference/config.md) and the README's quick start (getting-started.md).
"""

from __future__ import annotations

import enum
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX = "reference/cli/index.md"


@dataclass(frozen=True)
class CommandPage:
    """One command (or group) of the CLI and where its page lives."""

    path: str  # "edgecnn bench report"
    uri: str  # "reference/cli/bench-report.md"
    command: Any  # a click-style command: Typer 0.29 brings its own click (typer._click), so duck-typed

    @property
    def is_group(self) -> bool:
        return bool(getattr(self.command, "commands", None))


def command_pages() -> list[CommandPage]:
    """Every command and group under ``edgecnn``, depth first in the app's order (hidden ones left out)."""
    import typer.main

    from edgecnn.cli import app

    pages: list[CommandPage] = []

    def walk(cmd: Any, words: list[str]) -> None:
        if words:
            pages.append(
                CommandPage("edgecnn " + " ".join(words), f"reference/cli/{'-'.join(words)}.md", cmd)
            )
        for name, child in (getattr(cmd, "commands", None) or {}).items():
            if not child.hidden:
                walk(child, [*words, name])

    walk(typer.main.get_command(app), [])
    return pages


# --- Markdown rendering ------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`[^`]*`)")


def _text(text: str) -> str:
    """Help text as Markdown: Rich's ``\\[`` escape removed; outside code spans, ``<``, ``*``, ``_`` and
    ``|`` (table cells) escaped so help such as ``NAME_edgetpu.tflite`` or ``<class>`` reads as written."""
    text = text.replace("\\[", "[")
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = (
            parts[i]
            .replace("\\", "\\\\")
            .replace("<", "&lt;")
            .replace("*", "\\*")
            .replace("_", "\\_")
            .replace("|", "\\|")
        )
    return "".join(parts)


def _cell(text: str) -> str:
    return _text(text).replace("\n", " ")


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "argument"


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False))


def _argument_name(param: Any) -> str:
    return (param.metavar or param.name or "ARG").upper()


def _usage(page: CommandPage) -> str:
    pieces = [page.path]
    params = page.command.params
    if any(not _is_argument(p) and not p.hidden for p in params):
        pieces.append("[OPTIONS]")
    for p in params:
        if _is_argument(p):
            name = _argument_name(p) + ("..." if p.nargs == -1 else "")
            pieces.append(name if p.required else f"[{name}]")
    if page.is_group:
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _annotation(param: Any) -> Any:
    """The Python type the parameter was declared with (Typer keeps it; ``list[X]`` gives X)."""
    hint = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if typing.get_origin(hint) in (list, tuple):
        hint = typing.get_args(hint)[0]
    return hint


def _type(param: Any) -> str:
    if _is_flag(param):
        return "flag"
    if param.metavar and not _is_argument(param):
        return f"`{param.metavar}`"
    hint = _annotation(param)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return " \\| ".join(f"`{e.value}`" for e in hint)
    names = {int: "integer", float: "number", str: "text", Path: "path", bool: "flag"}
    return names.get(hint, getattr(hint, "__name__", "text")) + _range(
        getattr(param, "min", None), getattr(param, "max", None)
    )


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f", {low} to {high}"
    if low is not None:
        return f", at least {low}"
    if high is not None:
        return f", at most {high}"
    return ""


def _default(param: Any) -> str:
    default = param.default
    if param.required:
        return "required"
    if getattr(param, "show_default", True) is False:
        return ""
    if default is None or default == () or default == []:
        return ""
    if _is_flag(param):
        if not param.secondary_opts:
            return ""
        on, off = param.opts[-1], param.secondary_opts[-1]
        return _flag(on if default else off)
    if isinstance(default, enum.Enum):
        default = default.value
    return f"`{default}`"


def _names(param: Any) -> str:
    """An option's spellings (``--top-k``, ``-k``), each kept on one line: a phone's narrow column would
    otherwise break ``--batch-size`` at its hyphen."""
    if _is_argument(param):
        return f"`{_argument_name(param)}`" + ("..." if param.nargs == -1 else "")
    names = ", ".join(_flag(o) for o in param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(_flag(o) for o in param.secondary_opts)
    return names


def _flag(spelling: str) -> str:
    return f'<code class="flag">{spelling}</code>'


def _signature(param: Any) -> str:
    """The first column of an option's row: its spellings, then its type and default on a line below
    (two columns read on a phone; four did not)."""
    details = [_type(param)]
    default = _default(param)
    if default:
        details.append(default if default == "required" else f"default {default}")
    return f"{_names(param)}<br><small>{', '.join(details)}</small>"


def _help(param: Any) -> str:
    text = _cell(getattr(param, "help", None) or "")
    envvar = None if _is_argument(param) else param.envvar
    if envvar and getattr(param, "show_envvar", False):
        text += f" Environment: `{envvar}`."
    return text


def _split_help(help_text: str) -> tuple[list[str], list[str]]:
    """The command's help as (Markdown paragraphs, example command lines). ``Example:`` and
    ``Examples:`` paragraphs hold commands (several separated by ``;``); ``Example (note):`` keeps the note
    as a shell comment."""
    paragraphs, examples = [], []
    for para in (help_text or "").replace("\b", "").split("\n\n"):
        para = para.strip()
        match = re.match(r"Examples?(?: \(([^)]*)\))?:\s*(.*)", para, re.DOTALL)
        if match:
            note, body = match.groups()
            lines = [line.strip() for line in re.split(r";\s+", body.replace("\n", " ")) if line.strip()]
            if note and lines:
                lines[0] += f"   # {note}"
            examples += lines
        elif para:
            paragraphs.append(_text(para))
    return paragraphs, examples


def render_page(page: CommandPage, children: list[CommandPage]) -> str:
    cmd = page.command
    paragraphs, examples = _split_help(cmd.help or "")
    parts = [f"# {page.path}", *paragraphs, f"```text\n{_usage(page)}\n```"]
    if examples:
        parts.append("## Examples\n\n```sh\n" + "\n".join(examples) + "\n```")
    visible = [p for p in cmd.params if not getattr(p, "hidden", False)]
    arguments = [p for p in visible if _is_argument(p)]
    options = [p for p in visible if not _is_argument(p)]
    if arguments:
        rows = [f"| {_signature(p)} | {_help(p)} |" for p in arguments]
        parts.append("## Arguments\n\n| argument | what |\n| --- | --- |\n" + "\n".join(rows))
    if options:
        rows = [f"| {_signature(p)} | {_help(p)} |" for p in options]
        rows.append("| `-h`, `--help` | Show the help and exit. |")
        parts.append("## Options\n\n| option | what |\n| --- | --- |\n" + "\n".join(rows))
    if children:
        rows = [
            f"| [`{c.path}`]({c.uri.rsplit('/', 1)[1]}) | {_cell(_first_sentence(c))} |" for c in children
        ]
        parts.append("## Commands\n\n| command | what |\n| --- | --- |\n" + "\n".join(rows))
    parts.append(
        "*Generated from the command's own `--help` definition when the site is built: "
        f"`{page.path} --help` prints the same.*"
    )
    return "\n\n".join(p for p in parts if p) + "\n"


def _first_sentence(page: CommandPage) -> str:
    return (page.command.help or "").split("\n\n", 1)[0].strip()


def render_index(pages: list[CommandPage]) -> str:
    rows = [f"| [`{p.path}`]({p.uri.rsplit('/', 1)[1]}) | {_cell(_first_sentence(p))} |" for p in pages]
    return (
        "# Commands\n\n"
        "Every `edgecnn` command, with its arguments, options, defaults and ranges, generated from the program "
        "itself when this site is built. `edgecnn COMMAND --help` prints the same in a terminal. What the "
        "flags have in common across commands is in [Conventions](../conventions.md).\n\n"
        "| command | what |\n| --- | --- |\n" + "\n".join(rows) + "\n"
    )


def generated_pages() -> dict[str, str]:
    """``{uri: markdown}`` for the index and every command page."""
    pages = command_pages()
    out = {INDEX: render_index(pages)}
    for page in pages:
        prefix = page.path + " "
        children = [
            c for c in pages if c.path.startswith(prefix) and c.path.count(" ") == page.path.count(" ") + 1
        ]
        out[page.uri] = render_page(page, children)
    return out


# --- MkDocs hooks ------------------------------------------------------------------------------------


def _nav_entry() -> list[Any]:
    items: list[Any] = [INDEX]
    for page in command_pages():
        items.append({page.path.removeprefix("edgecnn "): page.uri})
    return items


def _replace_index(nav: list[Any]) -> bool:
    for i, item in enumerate(nav):
        if item == INDEX:
            nav[i] = {"Commands": _nav_entry()}
            return True
        if isinstance(item, dict):
            for key, value in item.items():
                if value == INDEX:
                    item[key] = _nav_entry()
                    return True
                if isinstance(value, list) and _replace_index(value):
                    return True
    return False


def on_config(config: Any) -> Any:
    if config.nav and not _replace_index(config.nav):
        from mkdocs.exceptions import PluginError

        raise PluginError(f"mkdocs.yml's nav does not name {INDEX}: the command reference has no place")
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, content in generated_pages().items():
        files.append(File.generated(config, uri, content=content))
    return files


# --- Configuration keys ------------------------------------------------------------------------------

CONFIG_MARKER = "<!-- generated: config keys -->"
_TOML_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array of strings"}


def config_keys_table() -> str:
    """Every key of a run configuration file and of its ``[mqtt]`` table, from their one declaration
    (``edgecnn.run.options``), as a Markdown table."""
    from edgecnn.run.options import CONFIG_KEYS, MqttOptions, RunOptions, declared

    rows = []

    def row(key: str, opt: Any) -> str:
        kind = "string (a path)" if opt.kind is Path else _TOML_TYPES.get(opt.kind, opt.kind.__name__)
        details = [kind + _range(opt.spec.low, opt.spec.high)]
        if opt.default not in (None, False) and opt.kind is not dict:
            details.append(f"default `{opt.default}`")
        details.append(f"flag `{opt.flag}`")
        return f"| `{key}`<br><small>{', '.join(details)}</small> | {_cell(opt.spec.help)} |"

    run = declared(RunOptions)
    for key in CONFIG_KEYS:
        if run[key].kind is not dict:
            rows.append(row(key, run[key]))
    for key, opt in declared(MqttOptions).items():
        rows.append(row(f"mqtt.{key}", opt))
    return "| key | what |\n| --- | --- |\n" + "\n".join(rows)


# --- The README's quick start ---------------------------------------------------------------------------

QUICKSTART_MARKER = "<!-- generated: README quick start -->"
_QUICKSTART = re.compile(
    r"<!-- --8<-- \[start:quickstart\] -->\n(.*?)<!-- --8<-- \[end:quickstart\] -->", re.S
)


def readme_quickstart(readme: str) -> str:
    """The README's quick start (between its ``--8<--`` markers), with the fence's ``quickstart`` tag, which
    tests/test_readme_quickstart.py looks for and Markdown does not know, dropped."""
    match = _QUICKSTART.search(readme)
    if not match:
        raise ValueError("README.md has no quick start between <!-- --8<-- [start:quickstart] --> markers")
    return re.sub(r"^```sh quickstart[ \t]*$", "```sh", match.group(1), flags=re.M)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_keys_table())
    if QUICKSTART_MARKER in markdown:
        readme = Path(config.config_file_path).parent / "README.md"
        markdown = markdown.replace(QUICKSTART_MARKER, readme_quickstart(readme.read_text(encoding="utf-8")))
    return markdown
