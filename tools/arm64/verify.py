"""Checks that `.ci/arm64-check` runs inside an emulated arm64 root, with the venv's Python.

This file is copied into each root and run there, so it uses the standard library only (plus cv2 and the
installed ``edgecnn`` for the subcommands that need them) and must work on Python 3.11 and 3.13.
Every subcommand prints one short line that the script shows next to PASS/FAIL, and exits non-zero
with the reason on stderr when the check fails.

    verify.py no-tf-import -- predict MODEL IMAGE --json   run the CLI in-process, refuse any TF import
    verify.py json FILE                                     FILE holds one JSON document
    verify.py label FILE LABEL                              ... which names LABEL somewhere
    verify.py jsonl FILE MAX                                FILE holds 1..MAX JSON lines
    verify.py make-video OUT IMAGE FRAMES                   write an MJPG .avi of IMAGE, read it back
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import importlib.util
import io
import json
import sys
from contextlib import redirect_stdout, suppress
from typing import Any

# Import names (top-level packages) that must never be imported by the runtime, and the distributions
# that must never be installed by `pip install edgecnn` without extras.
BANNED_IMPORTS = ("tensorflow", "keras", "tf_keras", "tensorflow_cpu")
BANNED_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tf-nightly", "keras", "tf-keras")


class Failure(Exception):
    """A check failed; the message says why."""


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Records every attempt to import a banned top-level package, even one that would fail.

    A failed ``import tensorflow`` inside a try/except leaves nothing in ``sys.modules``, yet on a device
    where TensorFlow *is* installed it would silently load it; so attempts are what count.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.split(".")[0] in BANNED_IMPORTS:
            self.attempts.append(fullname)
        return None  # let the normal finders decide


def no_tf_import(cli_args: list[str]) -> str:
    installed = []
    for dist in BANNED_DISTS:
        with suppress(importlib.metadata.PackageNotFoundError):
            installed.append(f"{dist} {importlib.metadata.version(dist)}")
    found = [name for name in BANNED_IMPORTS if importlib.util.find_spec(name) is not None]
    if installed or found:
        raise Failure(f"installed in the venv: {', '.join(installed + found)}")

    (entry,) = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "edgecnn"]
    recorder = _ImportRecorder()
    sys.meta_path.insert(0, recorder)
    sys.argv = ["edgecnn", *cli_args]
    out = io.StringIO()
    code: object = 0
    try:
        with redirect_stdout(out):
            entry.load()()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.meta_path.remove(recorder)
    if code not in (0, None):
        raise Failure(f"edgecnn {' '.join(cli_args)} exited {code}; output: {out.getvalue()[-500:]}")
    leaked = sorted(set(recorder.attempts) | {m for m in sys.modules if m.split(".")[0] in BANNED_IMPORTS})
    if leaked:
        raise Failure(f"`edgecnn {' '.join(cli_args)}` tried to import {', '.join(leaked)}")
    runtimes = [m for m in ("ai_edge_litert", "tflite_runtime") if m in sys.modules]
    return f"not installed, not imported (runtime: {', '.join(runtimes) or 'none loaded'})"


def _load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Failure(f"{path} is not JSON ({exc}); it starts with: {text[:300]!r}") from None


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def check_json(path: str) -> str:
    doc = _load_json(path)
    if isinstance(doc, dict):
        return f"JSON object, keys: {', '.join(list(doc)[:8])}"
    return f"JSON {type(doc).__name__} of {len(doc) if isinstance(doc, list) else 1}"


def check_label(path: str, label: str) -> str:
    """Find ``label`` anywhere in the document; report the score beside it when there is one.

    Scores differ between Python/NumPy builds (0.316 on bookworm, 0.324 on trixie), so only the label
    is compared.
    """
    doc = _load_json(path)
    labelled = [node for node in _walk(doc) if isinstance(node, dict) and "label" in node]
    for rank, node in enumerate(labelled, 1):
        if node["label"] == label:
            score = next((node[k] for k in ("score", "probability", "confidence") if k in node), None)
            shown = f" score {score:.3f}" if isinstance(score, (int, float)) else ""
            return f"{label!r}{shown} (rank {rank} of {len(labelled)} labels)"
    if any(node == label for node in _walk(doc)):
        return f"{label!r}"
    raise Failure(f"label {label!r} not in the output: {json.dumps(doc)[:400]}")


def check_jsonl(path: str, max_lines: int) -> str:
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    if not lines:
        raise Failure(f"{path} is empty")
    for n, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            raise Failure(f"{path} line {n} is not JSON ({exc}): {line[:200]!r}") from None
    if len(lines) > max_lines + 1:  # one summary line beside the per-frame ones is fine
        raise Failure(f"{path} has {len(lines)} lines for --max-frames {max_lines}")
    return f"{len(lines)} JSON lines"


def make_video(out: str, image: str, frames: int) -> str:
    import cv2  # only here: the other checks must not depend on it

    img = cv2.imread(image, cv2.IMREAD_COLOR)
    if img is None:
        raise Failure(f"cv2 cannot read {image}")
    img = cv2.resize(img, (320, 240))
    writer = cv2.VideoWriter(out, cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (320, 240))
    if not writer.isOpened():
        raise Failure(f"cv2.VideoWriter cannot open {out} (MJPG)")
    for i in range(frames):
        writer.write(cv2.flip(img, 1) if i % 2 else img)
    writer.release()
    cap = cv2.VideoCapture(out)
    read = 0
    while cap.read()[0]:
        read += 1
    cap.release()
    if read != frames:
        raise Failure(f"wrote {frames} frames to {out} but read back {read}")
    return f"{frames}-frame MJPG video"


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["no-tf-import", "--", *cli_args]:
                print(no_tf_import(cli_args))
            case ["json", path]:
                print(check_json(path))
            case ["label", path, label]:
                print(check_label(path, label))
            case ["jsonl", path, max_lines]:
                print(check_jsonl(path, int(max_lines)))
            case ["make-video", out, image, frames]:
                print(make_video(out, image, int(frames)))
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except Failure as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
