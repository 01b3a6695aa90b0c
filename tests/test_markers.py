"""`make test-fast` stays fast: every fixture in tests/ that reaches TensorFlow is in conftest's SLOW_FIXTURES.

The fixtures' source is read with ``ast`` (nothing is imported or run): a fixture reaches TensorFlow when its
own code, or a helper in tests/ it calls (followed through imports), imports ``tensorflow`` or ``keras``
(in code or in a subprocess's code string), or uses ``edgecnn.train``, ``edgecnn.converters`` or
``edgecnn.demo``. Such a fixture must be listed, or depend on a listed one (then pytest's fixture closure
marks its tests anyway).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field

from tests.conftest import ROOT, SLOW_FIXTURES

TESTS = ROOT / "tests"
TF_MODULES = ("tensorflow", "keras", "edgecnn.train", "edgecnn.converters", "edgecnn.demo")
TF_TEXT = re.compile(r"\b(?:import|from)\s+(?:tensorflow|keras)\b")


@dataclass
class Module:
    source: str
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # name -> module it comes from


def _is_tf_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in TF_MODULES)


def _tests_module(name: str) -> str | None:
    """``tests.detectors`` or ``detectors`` -> ``detectors`` when tests/detectors.py exists."""
    short = name.removeprefix("tests.")
    return short if "." not in short and (TESTS / f"{short}.py").is_file() else None


def _imports(nodes: list[ast.stmt] | list[ast.AST]) -> dict[str, str]:
    found = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.update({alias.asname or alias.name: node.module for alias in node.names})
        elif isinstance(node, ast.Import):
            found.update({(alias.asname or alias.name).split(".")[0]: alias.name for alias in node.names})
    return found


def _parse_tests() -> dict[str, Module]:
    modules = {}
    for path in sorted(TESTS.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        module = Module(source, imports=_imports(tree.body))
        module.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        modules[path.stem] = module
    return modules


def _is_fixture(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def fixtures(modules: dict[str, Module]) -> dict[str, list[tuple[str, ast.FunctionDef]]]:
    """Fixture name -> where it is defined (a name such as ``bench_json`` can be defined in two files)."""
    found: dict[str, list[tuple[str, ast.FunctionDef]]] = {}
    for name, module in modules.items():
        for function in module.functions.values():
            if _is_fixture(function):
                found.setdefault(function.name, []).append((name, function))
    return found


def reaches_tensorflow(
    modules: dict[str, Module],
    module: str,
    function: ast.FunctionDef,
    seen: set[tuple[str, str]] | None = None,
) -> bool:
    seen = set() if seen is None else seen
    if (module, function.name) in seen:
        return False
    seen.add((module, function.name))
    source = ast.get_source_segment(modules[module].source, function) or ""
    if TF_TEXT.search(source):
        return True
    local = _imports(list(ast.walk(function)))
    if any(_is_tf_module(m) for m in local.values()):
        return True
    names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
    for name in names:
        origin = local.get(name) or modules[module].imports.get(name)
        if origin is None and name in modules[module].functions:
            callee: tuple[str, str] | None = (module, name)
        elif origin is not None and _is_tf_module(origin):
            return True
        elif origin is not None and (helper := _tests_module(origin)) and name in modules[helper].functions:
            callee = (helper, name)
        else:
            callee = None
        if callee and reaches_tensorflow(modules, callee[0], modules[callee[0]].functions[callee[1]], seen):
            return True
    return False


def _closure(name: str, defined: dict[str, list[tuple[str, ast.FunctionDef]]]) -> set[str]:
    """The fixture and every fixture (from tests/) it depends on, as pytest resolves ``item.fixturenames``."""
    done: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in done:
            continue
        done.add(current)
        for _, function in defined.get(current, []):
            todo.extend(a.arg for a in function.args.args if a.arg in defined)
    return done


def test_every_fixture_that_reaches_tensorflow_is_marked_slow():
    modules = _parse_tests()
    defined = fixtures(modules)
    missing = [
        f"{module}.py::{name}"
        for name, places in sorted(defined.items())
        for module, function in places
        if reaches_tensorflow(modules, module, function) and not _closure(name, defined) & SLOW_FIXTURES
    ]
    assert not missing, (
        f"add to SLOW_FIXTURES in tests/conftest.py (they build models with TensorFlow): {missing}"
    )


def test_slow_fixtures_all_exist():
    stale = SLOW_FIXTURES - set(fixtures(_parse_tests()))
    assert not stale, f"SLOW_FIXTURES names fixtures that tests/ no longer defines: {sorted(stale)}"


def test_the_scan_tells_tensorflow_fixtures_from_light_ones():
    modules = _parse_tests()
    defined = fixtures(modules)

    def reaches(name: str) -> bool:
        return any(reaches_tensorflow(modules, m, f) for m, f in defined[name])

    # direct import, edgecnn.train, a helper in tests/ (odd_outputs), a module-level edgecnn.demo import
    for heavy in ("digits_run", "models", "detectors", "odd", "fixed_detectors", "quick_demo", "flat_model"):
        assert reaches(heavy), heavy
    for light in ("coral", "frames", "small_run", "scenes", "wheel", "fifo"):
        assert not reaches(light), light


def _collect(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return out.stdout


def test_the_hook_marks_tests_of_slow_fixtures_and_spares_the_rest():
    # tests/test_unsupported_models.py uses odd_models throughout; its module carries no mark of its own.
    assert "no tests collected" in _collect("-m", "not slow", "tests/test_unsupported_models.py")
    assert "test_unsupported_models.py::" in _collect("-m", "slow", "tests/test_unsupported_models.py")
    fast = _collect("-m", "not slow", "tests/test_edgetpu_compiler.py")
    assert "test_summary_parser_reads_cpu_fallbacks_and_sizes" in fast
    assert "test_dynamic_batch_model_fails_with_the_op_named" not in fast  # dynamic_int8 needs digits_run
