"""Fast host-side checks of the arm64 CI check: the script parses and its in-root helper judges right.

The real run (`.ci/arm64-check`) needs root, qemu and minutes; these tests only guard against a typo or a
helper that would pass a wrong output.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "arm64-check"


def _verify():
    spec = importlib.util.spec_from_file_location("arm64_verify", ROOT / "tools" / "arm64" / "verify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_is_executable_bash_that_parses() -> None:
    assert SCRIPT.stat().st_mode & 0o111
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(SCRIPT)], check=True)


@pytest.mark.parametrize(
    "doc",
    [
        {"top": [{"index": 283, "label": "tiger cat", "score": 0.32}]},
        [{"label": "tabby", "score": 0.2}, {"label": "tiger cat", "score": 0.3}],
        {"labels": ["tiger cat"]},
    ],
)
def test_label_found(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    assert _verify().main(["label", str(path), "tiger cat"]) == 0


@pytest.mark.parametrize("text", ['{"top": [{"label": "tabby", "score": 0.3}]}', "tiger cat", ""])
def test_label_missing_or_not_json_fails(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    assert _verify().main(["label", str(path), "tiger cat"]) == 1


@pytest.mark.parametrize(
    ("lines", "ok"),
    [
        (['{"frame": 0}'] * 20, True),
        (['{"frame": 0}'] * 20 + ['{"summary": true}'], True),
        ([], False),
        (['{"frame": 0}', "not json"], False),
        (['{"frame": 0}'] * 25, False),
    ],
)
def test_jsonl(tmp_path: Path, lines: list[str], ok: bool) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    assert _verify().main(["jsonl", str(path), "20"]) == (0 if ok else 1)
