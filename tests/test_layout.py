"""The package layout's one rule: imports point down, from the CLI to the stages to the runtime core.

Read from the source (every ``import``, at module level or inside a function), so a lazy import that runs
back up is caught too, not only the ones a test happens to execute. The rooms are named in
``edgecnn/__init__.py``'s docstring.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

# Installed name -> folder (setup.py maps converters/ and devices/ into the package).
FOLDERS = {
    "edgecnn": ROOT / "edgecnn",
    "edgecnn.converters": ROOT / "converters",
    "edgecnn.devices": ROOT / "devices",
}
# The runtime core and the shared helpers: the top-level modules of edgecnn, plus these rooms.
CORE_ROOMS = {"tasks", "devices"}
STAGES = {
    "train",
    "converters",
    "ml",
    "inspect",
    "predict",
    "eval",
    "run",
    "bench",
    "service",
    "fleet",
    "demo",
}


def modules() -> Iterator[tuple[str, Path]]:
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join([package, *parts]), path


def imported(name: str, path: Path) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def room(module: str) -> str | None:
    """The sub-package of edgecnn a module lives in; ``None`` for a top-level module (or edgecnn itself)."""
    parts = module.split(".")
    if parts[0] != "edgecnn" or len(parts) < 2:
        return None
    return (
        parts[1]
        if (FOLDERS["edgecnn"] / parts[1]).is_dir() or parts[1] in ("converters", "devices")
        else None
    )


def edges() -> list[tuple[str, str]]:
    return [
        (name, target)
        for name, path in modules()
        for target in sorted(set(imported(name, path)))
        if target == "edgecnn" or target.startswith("edgecnn.")
    ]


def test_the_scan_sees_the_imports_it_must():
    found = edges()
    assert ("edgecnn.cli.predict", "edgecnn.predict.files") in found  # lazy, inside the command
    assert ("edgecnn.cli.inspect", "edgecnn.inspect.contents") in found
    assert ("edgecnn.model", "edgecnn.runtime") in found
    assert room("edgecnn.predict.files") == "predict" and room("edgecnn.model") is None
    assert room("edgecnn.devices.sources.synthetic") == "devices"
    assert {room(name) for name, _ in modules()} >= STAGES | CORE_ROOMS | {"cli", None}


def test_nothing_below_the_cli_imports_it():
    # ``python -m edgecnn`` and ``python -m edgecnn.demo`` are entry points, not stages.
    up = [
        (name, target)
        for name, target in edges()
        if room(target) == "cli" and room(name) != "cli" and not name.endswith("__main__")
    ]
    assert up == []


def test_the_runtime_core_imports_no_stage():
    up = [
        (name, target)
        for name, target in edges()
        if (room(name) is None or room(name) in CORE_ROOMS) and room(target) in STAGES | {"cli"}
        if not name.endswith("__main__")
    ]
    assert up == []


def test_the_top_level_holds_no_command():
    """A command's library function lives in its stage's room, not beside the runtime core."""
    commands = {p.stem for p in (FOLDERS["edgecnn"] / "cli").glob("*.py")} - {"__init__", "_app"}
    top = {p.stem for p in FOLDERS["edgecnn"].glob("*.py")}
    assert "predict" in commands and "model" in top
    assert top & (commands | STAGES) == set()


def test_a_task_names_its_evaluator_in_the_eval_stage_and_imports_none():
    """eval depends on the tasks, not the reverse: a task module's ``evaluator()`` hook returns a module of
    the eval stage, loaded by name (``edgecnn.tasks.stage_evaluator``) only when eval calls it."""
    import subprocess
    import sys

    from edgecnn.tasks import TASKS, task_module

    for name in TASKS:
        hook = getattr(task_module(name), "evaluator", None)
        if hook is not None:
            assert room(hook().__name__) == "eval", name
    code = (
        "import sys\n"
        "from edgecnn.tasks import TASKS, task_module\n"
        "[task_module(name) for name in TASKS]\n"
        "print(sorted(m for m in sys.modules if m.startswith('edgecnn.eval')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
