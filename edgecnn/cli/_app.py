"""The Typer application object and small helpers shared by command modules."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
from pathlib import Path
from typing import Any

import typer

from edgecnn import __version__

app = typer.Typer(
    name="edgecnn",
    help=(
        "Train, convert, run and measure small CNN image classifiers and object detectors on Raspberry Pi "
        "and Coral Edge TPU."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """edgecnn: from a CNN to a camera-fed classifier or detector on a Raspberry Pi or a Coral."""


def reflow(text: str | None) -> str | None:
    """Help text with each paragraph on one line, so the terminal wraps it and not the source's margin.

    Docstrings are wrapped at the source's 110 columns; Typer joins the first paragraph's lines but keeps
    the line breaks of the others, which then break mid-sentence on any terminal. Paragraphs are
    separated by a blank line; one starting with ``\\b`` (Click's no-rewrap marker) is kept as written.
    """
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.split("\n")) for p in paragraphs
    )


def reflow_help(group: typer.Typer) -> None:
    """Reflow the help of every command and sub-group registered on ``group`` (see :func:`reflow`)."""
    if isinstance(group.info.help, str):
        group.info.help = reflow(group.info.help)
    for command in group.registered_commands:
        command.help = reflow(command.help if command.help is not None else inspect.getdoc(command.callback))
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            reflow_help(sub.typer_instance)


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def echo_json(data: Any) -> None:
    """Print ``data`` (dataclasses, paths, numpy values allowed) as one JSON document."""
    typer.echo(json.dumps(data, indent=2, default=_default))


def deprecated_alias(value: Any, old: Any, *, new: str, old_name: str, default: Any = None) -> Any:
    """``value`` of the documented option, or of its hidden older spelling (the old save flag for ``--output``).

    The old spelling keeps scripts working without a second documented name; giving both is an error.
    """
    if old is None or old == default:
        return value
    if value is not None and value != default:
        from edgecnn.errors import UsageError

        raise UsageError(f"{old_name} is the old spelling of {new}: give only {new}.")
    return old


def pick_model(positional: Path | None, option: Path | None) -> Path:
    """The model, given as the first argument or as ``-m/--model`` (the same way in every command)."""
    from edgecnn.errors import UsageError

    if positional is not None and option is not None:
        raise UsageError("Give the model once: as MODEL or as -m/--model, not both.")
    model = positional if positional is not None else option
    if model is None:
        raise UsageError("No model: pass MODEL (a .tflite file) or -m/--model MODEL.")
    return model


def model_option() -> Any:
    """``-m/--model``: every command that takes a model accepts it this way (and as MODEL where it is first)."""
    return typer.Option(None, "--model", "-m", help="The model, instead of the MODEL argument.")


def run_flag(key: str, **extra: Any) -> Any:
    """The typer option of a declared run option (edgecnn.run.options): flags, range and help from there.

    The default is None (not given), so a --config file's value stands unless the flag is passed.
    ``edgecnn run`` and ``edgecnn service install`` both take their run flags from here, so they cannot
    drift from each other or from the config file's checks. A number is parsed and checked by the
    declaration's own :func:`~edgecnn.run.options.parse_cli` (type, finiteness, range: the check a config
    file's value gets), so a flag and a file refuse the same values with the same words; ``min``/``max``
    are passed only so the help shows the range (typer does not enforce them beside a parser).
    """
    from edgecnn.run.options import parse_cli, run_option

    opt = run_option(key)
    if opt.kind in (int, float):

        def parse(text: str) -> Any:
            try:
                return parse_cli(opt, text)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None

        extra.setdefault("parser", parse)
    return typer.Option(None, *opt.flags, min=opt.spec.low, max=opt.spec.high, help=opt.spec.help, **extra)


def task_options(**flags: Any) -> Any:
    """The :class:`~edgecnn.tasks.DecodeOptions` of a command's task flags (``run_flag("top_k")``, ...,
    passed by their keys): a flag not given (None) keeps its declared default (edgecnn.tasks.options)."""
    from edgecnn.tasks.options import DecodeOptions

    return DecodeOptions.from_values(flags)
