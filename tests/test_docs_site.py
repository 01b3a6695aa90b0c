"""The documentation site builds with ``mkdocs build --strict``: no broken link or anchor, no missing page,
and a reference page for every command of the CLI, generated from the Typer app (docs/hooks/cli_reference.py).

The build runs as a real ``mkdocs`` process into a temporary folder, once per module; the checks then read
the HTML it wrote. Needs the ``docs`` extra (``make test`` installs it); skipped with the reason without it.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "NO_MKDOCS_2_WARNING": "1", "HOME": str(site.parent)},
    )


def _hook():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    result = _mkdocs_build(ROOT / "mkdocs.yml", out)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    return out


def _text_of(markup: str) -> str:
    body = re.sub(r"<script.*?</script>|<style.*?</style>", "", markup, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def _text(page: Path) -> str:
    """The page's visible text, tags removed and entities decoded (enough to find a flag or a sentence)."""
    return _text_of(page.read_text(encoding="utf-8"))


def test_every_command_has_a_reference_page_with_its_usage_and_every_option(site):
    hook = _hook()
    pages = hook.command_pages()
    assert {p.path for p in pages} >= {"edgecnn run", "edgecnn bench report", "edgecnn service install"}
    for page in pages:
        built = site / page.uri.removesuffix(".md") / "index.html"
        assert built.is_file(), f"no reference page for `{page.path}` ({built.relative_to(site)})"
        text = _text(built)
        assert hook._usage(page) in text, f"{built}: no usage line for `{page.path}`"
        for param in page.command.params:
            if getattr(param, "hidden", False) or getattr(param, "param_type_name", "") == "argument":
                continue
            for spelling in [*param.opts, *param.secondary_opts]:
                assert spelling in text, f"`{page.path}` reference page does not show {spelling}"
    index = _text(site / "reference" / "cli" / "index.html")
    assert all(p.path in index for p in pages)


def test_hidden_spellings_stay_out_of_the_reference(site):
    """A command's hidden old spellings (bench --save, eval --top-k) are not on its page, unless that same
    command also shows the spelling as a real option."""
    hook = _hook()
    checked = 0
    for page in hook.command_pages():
        text = _text(site / page.uri.removesuffix(".md") / "index.html")
        shown = {s for p in page.command.params if not getattr(p, "hidden", False) for s in p.opts}
        for param in page.command.params:
            if not getattr(param, "hidden", False):
                continue
            for hidden in set(param.opts) - shown:
                checked += 1
                assert not re.search(rf"(?<![\w-]){hidden}(?![\w-])", text), (
                    f"`{page.path}`: {hidden} is hidden but documented"
                )
    assert checked >= 2  # bench's --save/--out-dir at least: the test is not vacuous


def test_quick_start_on_the_site_is_the_one_the_readme_test_runs(site):
    from tests.test_readme_quickstart import quickstart_commands

    commands = quickstart_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 8
    page = (site / "getting-started" / "index.html").read_text(encoding="utf-8")
    blocks = [_text_of(block) for block in re.findall(r"<pre.*?</pre>", page, flags=re.S)]
    block = next((b for b in blocks if commands[0] in b), "")
    assert all(command in block for command in commands), f"the quick start is not one code block:\n{blocks}"
    assert "quickstart" not in block


def test_every_run_config_key_is_on_the_configuration_page(site):
    from edgecnn.run.options import CONFIG_KEYS, MQTT_KEYS

    text = _text(site / "reference" / "config" / "index.html")
    keys = [k for k in CONFIG_KEYS if k != "mqtt"] + [f"mqtt.{k}" for k in MQTT_KEYS]
    missing = [k for k in keys if k not in text]
    assert not missing, f"configuration keys missing from the page: {missing}"


def test_every_metric_run_exports_is_documented():
    """The names a real ``/metrics`` scrape shows (MQTT ones included) each appear on some page."""
    from edgecnn.run.metrics import RunMetrics
    from edgecnn.run.mqtt import MqttCounts

    metrics = RunMetrics(model="m.tflite", device="cpu", source="demo", fps=lambda: 0.0)
    metrics.watch_mqtt(lambda: MqttCounts(published=0, dropped=0, queued=0, connects=0, connected=False))
    exposition = metrics.exposition().decode()
    samples = set(re.findall(r"^(edgecnn_\w+?)(?:_bucket|_count|_sum)?[{ ]", exposition, re.MULTILINE))
    shown = {name for name in samples if not name.endswith("_created")}
    assert len(shown) >= 15, exposition
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    missing = sorted(name for name in shown if name not in docs)
    assert not missing, f"/metrics names no page documents: {missing}"


def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is what catches broken links: prove it on a copy of the docs with one added."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copy(ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    page = tmp_path / "docs" / "troubleshooting.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n")
    result = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0 and "no-such-page.md" in result.stderr, result.stderr[-2000:]
