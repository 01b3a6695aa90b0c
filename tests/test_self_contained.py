"""A clone is all the project needs: nothing refers to a folder beside the checkout.

A user who clones the repository, or builds the wheel from an sdist, has no folder beside the checkout:
test data, benchmarks, CI scripts and the README must use the repository's own ``tests/data``.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT, TESTDATA

# Spelled in pieces so this file does not itself hold what it looks for (a plain grep stays clean).
_SHARED = "sha" + "red"
FORBIDDEN = (f"../{_SHARED}", f"{_SHARED}/testdata", f'"{_SHARED}" / "testdata"', f'parent / "{_SHARED}"')


def tracked_files() -> list[str]:
    proc = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.skip("not a git checkout: nothing to scan")
    return proc.stdout.splitlines()


def test_nothing_refers_to_a_folder_beside_the_checkout():
    offenders = []
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file() or path.suffix in {".tflite", ".bmp", ".png", ".jpg"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {needle}" for needle in FORBIDDEN if needle in text]
    assert not offenders, "files refer to data outside the repository:\n" + "\n".join(offenders)


def test_every_test_data_file_is_listed_with_its_source():
    readme = (TESTDATA / "README.md").read_text(encoding="utf-8")
    files = [p for p in TESTDATA.rglob("*") if p.is_file() and p.name != "README.md"]
    assert files
    missing = [str(p.relative_to(TESTDATA)) for p in files if f"`{p.name}`" not in readme]
    assert not missing, f"tests/data/README.md does not list: {missing}"
    total = sum(p.stat().st_size for p in files)
    assert total < 8 * 1024 * 1024, f"tests/data is {total / 1e6:.1f} MB: keep it to a few MB"
