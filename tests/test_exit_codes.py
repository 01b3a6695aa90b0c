"""One real case per exit code the documentation lists (docs/reference/errors.md), each ending in exactly one ``edgecnn: error:`` line.

The whole of stderr is checked, not only edgecnn's lines: native chatter (LiteRT's banner, OpenCV's
imdecode warning, libpng) must not come before the error either.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CAT, MOBILENET, MOBILENET_EDGETPU, ROOT, run_cli

DOCUMENTED_CODES = re.compile(
    r"(\d+) (usage|model|input|device|source|config|runtime missing|training|conversion|service)"
)


def _truncated_png(tmp: Path) -> Path:
    import cv2

    _, data = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    path = tmp / "cut.png"
    path.write_bytes(data.tobytes()[:500])
    return path


def _tiny_folder(tmp: Path) -> Path:
    import cv2

    for name, value in (("a", 0), ("b", 255)):
        (tmp / "tiny" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp / "tiny" / name / "1.png"), np.full((8, 8), value, np.uint8))
    return tmp / "tiny"


def _flat_keras(tmp: Path) -> Path:
    """A Keras model taking flat vectors: not an image classifier, so convert refuses it (exit 10)."""
    path = tmp / "flat.keras"
    code = (
        "import sys, keras\n"
        "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation='softmax')])\n"
        "m.save(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, timeout=300)
    return path


# code -> (argv builder given tmp_path, extra env, text the error line must contain)
CASES = {
    2: (lambda t: ["predict", MOBILENET, CAT, "--top-k", "0"], {}, "'--top-k'"),
    3: (lambda t: ["inspect", t / "junk.tflite"], {}, "not a TFLite model"),
    4: (lambda t: ["predict", MOBILENET, _truncated_png(t)], {}, "Cannot decode"),
    5: (lambda t: ["predict", MOBILENET_EDGETPU, CAT, "--device", "edgetpu"], {}, "Edge TPU"),
    6: (lambda t: ["run", MOBILENET, "--source", t / "missing.mp4"], {}, "--source"),
    7: (lambda t: ["run", "--config", t / "bad.toml"], {}, "unknown key 'bogus'"),
    8: (lambda t: ["predict", MOBILENET, CAT], {"EDGECNN_RUNTIME": "tflite_runtime"}, "not importable"),
    9: (lambda t: ["train", "--dataset", _tiny_folder(t), "-o", t / "run"], {}, "too small to split"),
    10: (lambda t: ["convert", _flat_keras(t), "-o", t / "flat.tflite"], {}, "input shape"),
    11: (lambda t: ["service", "status", "nosuch", "--root", t], {}, "No service 'nosuch'"),
}


def test_docs_list_exactly_these_codes():
    errors = (
        (ROOT / "docs" / "reference" / "errors.md").read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    )
    documented = {int(code) for code, _ in DOCUMENTED_CODES.findall(errors.split("\n## ", 1)[0])}
    assert documented == set(CASES), f"the docs list {sorted(documented)}, tests cover {sorted(CASES)}"


# `train` and `convert` (9, 10) start TensorFlow: slow.
@pytest.mark.parametrize(
    "code", [pytest.param(c, marks=pytest.mark.slow) if c in (9, 10) else c for c in sorted(CASES)]
)
def test_exit_code(code, tmp_path, coral):
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    (tmp_path / "bad.toml").write_text("bogus = 1\n")
    build, env, needle = CASES[code]
    result = run_cli(*map(str, build(tmp_path)), env=env, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.code == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, command",
    [
        (["run", "MODEL", "--threads", "0"], "edgecnn run"),
        (["run", "MODEL", "--duration", "0"], "edgecnn run"),
        (["run", "MODEL", "--fps", "0"], "edgecnn run"),
        (["predict", "MODEL", "--bogus"], "edgecnn predict"),
        (["predict", "MODEL"], "edgecnn predict"),
        (["bench", "report", "x.json", "--threshold", "0"], "edgecnn bench report"),
        (["--bogus"], "edgecnn"),
    ],
)
def test_usage_errors_are_one_line(args, command, coral):
    """Click/Typer usage errors: one line naming the problem and the command's --help, exit 2, no box."""
    result = run_cli(*[str(MOBILENET) if a == "MODEL" else a for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.code == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecnn: error: ") and lines[0].endswith(f"(see '{command} --help')"), lines[
        0
    ]
    assert not set("╭╰│") & set(result.stderr)
