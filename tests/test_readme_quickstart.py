"""The README's quick start runs verbatim.

Every fenced block whose info string is ``sh quickstart`` (opened with three backticks followed by
``sh quickstart``) is extracted from README.md, and its lines run in order, each as one process: split
with ``shlex`` and run without a shell, in a fresh working directory ``TMP/work`` holding a link
``tests/data`` to the repository's test data (so ``tests/data/...`` resolves as it does at the root of a
clone), with this virtualenv's ``bin`` first on PATH (so ``edgecnn`` is the one under test). Each must
exit 0. Conventions for README authors: one command per line (a trailing backslash continues it), blank
lines and ``#`` comment lines are skipped, a leading ``$ `` prompt is dropped, and no shell syntax (pipes,
redirections, ``&&``, ``;``, ``cd``, variables): every line must finish on its own (``--duration`` for
``edgecnn run``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
TEST_DATA = ROOT / "tests" / "data"
FENCE = re.compile(r"^```sh quickstart[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SHELL_TOKENS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}
COMMAND_TIMEOUT_S = 600


def quickstart_commands(markdown: str) -> list[str]:
    """The command lines of every ``sh quickstart`` block, in document order."""
    commands = []
    for block in FENCE.findall(markdown):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if not pending and line.startswith("$ "):
                line = line[2:].lstrip()
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            commands.append(pending + line)
            pending = ""
        if pending.strip():
            commands.append(pending.strip())
    return commands


def test_extractor_reads_only_quickstart_blocks():
    sample = (
        "Intro\n\n```sh\nmake demo\n```\n\n"
        "```sh quickstart\n# train first\n$ edgecnn train --dataset digits \\\n    -o runs/digits --epochs 3\n\n"
        "edgecnn inspect runs/digits/model_int8.tflite\n```\n\ntext\n\n"
        "```sh quickstart\nedgecnn predict m.tflite 'tests/data/a b.bmp'\n```\n"
    )
    assert quickstart_commands(sample) == [
        "edgecnn train --dataset digits -o runs/digits --epochs 3",
        "edgecnn inspect runs/digits/model_int8.tflite",
        "edgecnn predict m.tflite 'tests/data/a b.bmp'",
    ]
    assert shlex.split(quickstart_commands(sample)[2])[-1] == "tests/data/a b.bmp"


def test_readme_quickstart_runs_verbatim(tmp_path):
    commands = quickstart_commands(README.read_text(encoding="utf-8"))
    if not commands:
        pytest.skip(
            "README.md has no ```sh quickstart block yet: add one with the quick-start commands, one per line."
        )
    work = tmp_path / "work"
    work.mkdir()
    (work / "tests").mkdir()
    (work / "tests" / "data").symlink_to(TEST_DATA, target_is_directory=True)
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "EDGECNN_DEBUG"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for number, command in enumerate(commands, 1):
        argv = shlex.split(command)
        shell = [token for token in argv if token in SHELL_TOKENS or token == "cd" or "$" in token]
        assert not shell, (
            f"quick-start line {number} needs a shell ({shell}), but lines run without one: {command}"
        )
        program = shutil.which(argv[0], path=env["PATH"])
        assert program, f"quick-start line {number}: {argv[0]} is not on PATH: {command}"
        proc = subprocess.run(
            [program, *argv[1:]],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert proc.returncode == 0, (
            f"README quick-start line {number} failed with exit {proc.returncode}: {command}\n"
            f"--- stdout (end)\n{proc.stdout[-2000:]}\n--- stderr (end)\n{proc.stderr[-3000:]}"
        )
