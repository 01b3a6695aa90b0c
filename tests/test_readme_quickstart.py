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

Exit 0 is not enough: each line must match one entry of :data:`EXPECTED`, which checks what the README says
the line prints (a new quick-start line needs an entry here, and the README's "What they print" list).
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


def _percent(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no {pattern!r} in:\n{text}"
    return float(match.group(1))


def check_train(out: str, work: Path) -> None:
    assert re.search(r"^trained seed on digits \[28, 28, 1\]: 3 epochs", out, re.MULTILINE), out
    assert _percent(r"test (\d+\.\d+)%", out) >= 85.0, out
    assert "wrote runs/digits/samples" in out, out
    assert sorted(p.name for p in (work / "runs/digits/samples").iterdir()) == [f"{d}.png" for d in range(10)]


def check_convert(out: str, work: Path) -> None:
    assert "converted model.keras -> runs/digits/model_int8.tflite (int8" in out, out
    assert _percent(r"top-1 agreement\s+(\d+\.\d+)%", out) >= 97.0, out


def check_inspect(out: str, work: Path) -> None:
    assert "labels: 10 (edgecnn)" in out and "compiled for Edge TPU: no" in out, out
    assert "edgetpu: compatible: all 8 ops map to the Edge TPU" in out, out
    # provenance reads as indented key: value lines, not a Python dict
    assert re.search(r"^provenance:\n  architecture: seed\n", out, re.MULTILINE), out
    assert re.search(r"^  verification:\n    accuracy_drop_pp: ", out, re.MULTILINE) and "{'" not in out, out


def check_predict_samples(out: str, work: Path) -> None:
    """Each held-out sample's top class against the true class in its name: most are read right."""
    found = re.findall(r"^runs/digits/samples/(\d)\.png .*\n\s+(\d\.\d+)\s+(\d+)\s+(\S+)$", out, re.MULTILINE)
    assert [truth for truth, *_ in found] == [str(d) for d in range(10)], out
    right = sum(truth == label for truth, _, _, label in found)
    assert right >= 8, f"only {right} of 10 held-out digits read right:\n{out}"


def check_predict_cat(out: str, work: Path) -> None:
    classes = re.findall(r"^\s+\d\.\d+\s+\d+\s+(.+)$", out, re.MULTILINE)
    assert classes == ["tiger cat", "Egyptian cat", "tabby, tabby cat"], out


def check_run(out: str, work: Path) -> None:
    """The demo source shows digit (frame // 10) % 10: several digits, mostly read right."""
    results = [
        (int(f), label) for f, label in re.findall(r"^#\d+ frame (\d+): (\S+) \d\.\d+", out, re.MULTILINE)
    ]
    assert len({label for _, label in results}) >= 3, out
    right = sum(label == str(frame // 10 % 10) for frame, label in results)
    assert right >= 0.75 * len(results), out
    assert re.search(r"^summary: 60 frames in .* stopped: max-frames$", out, re.MULTILINE), out


def check_bench(out: str, work: Path) -> None:
    assert re.search(r"^cpu\s+1\s+", out, re.MULTILINE) and "wrote runs/bench-int8.json" in out, out
    assert (work / "runs/bench-int8.json").is_file()


def check_report(out: str, work: Path) -> None:
    assert re.search(r"· cpu · 1 thread\s+\d+\.\d+ / \d+\.\d+", out), out


# The start of each quick-start line (after `edgecnn`), and what it must print on stdout.
EXPECTED = {
    "train --dataset digits": check_train,
    "convert runs/digits/model.keras": check_convert,
    "inspect runs/digits/model_int8.tflite": check_inspect,
    "predict runs/digits/model_int8.tflite runs/digits/samples": check_predict_samples,
    "predict tests/data/coral/mobilenet_v1_0.25_128_quant.tflite tests/data/coral/cat.bmp": check_predict_cat,
    "run runs/digits/model_int8.tflite --source demo": check_run,
    "bench runs/digits/model_int8.tflite": check_bench,
    "bench report runs/bench-int8.json": check_report,
}


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


@pytest.mark.slow  # runs TensorFlow
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
    checked: list[int] = []
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
        checks = [check for start, check in EXPECTED.items() if " ".join(argv[1:]).startswith(start)]
        assert len(checks) == 1, (
            f"quick-start line {number} has no (or several) entries in EXPECTED: {command}"
        )
        checks[0](proc.stdout, work)
        # Quiet by default: no native banners (LiteRT's XNNPACK line) reach the user.
        assert "INFO: Created TensorFlow Lite" not in proc.stderr, proc.stderr
        checked.append(number)
    assert len(checked) == len(EXPECTED), "an EXPECTED entry matches no quick-start line: update both"
