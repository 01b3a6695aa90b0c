"""Old = new: the same work through two edgecnn installs gives the same results.

Runs ``predict --json``, ``run --jsonl``, ``eval --json`` and ``bench --json`` of an old install (main) and
a new one (a branch) on the same models and images, each side with its own spelling of the same request
(an old ``--min-score S`` for a detector's threshold is the new ``--object-threshold S``), and compares the
outputs with every timing and timestamp removed. Prints one line per comparison and the totals; exits 1 on
any difference.

    python benchmarks/old_new_sweep.py --old /work/main/.venv/bin/python --new .venv/bin/python \\
        tests/data/coral/*.tflite /work/shared/testdata/coral/*.tflite ~/.cache/edgecnn-tests/detectors-*/*.tflite

Images: every .bmp beside the models given plus 8 generated shape scenes (tests/detectors.py, the scenes the
session-trained detectors know); detectors are also evaluated on a YOLO folder of 12 more scenes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIMING = ("_ms", "timestamp", "created", "load_ms", "throughput", "rss", "temperature", "throttling")


def _untimed(value: Any) -> Any:
    """``value`` without timings, timestamps, versions and the machine's description (bench's ``machine``
    names the libedgetpu help page, whose wording is not behaviour)."""
    if isinstance(value, dict):
        return {
            k: _untimed(v)
            for k, v in value.items()
            if not any(t in k for t in TIMING)
            and k not in ("latency", "wall_s", "runtime", "edgecnn_version", "machine")
        }
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


_ABSENT = "(absent)"


def _differences(a: Any, b: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Where two JSON values differ: (path, old, new) of each differing leaf."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in dict.fromkeys([*a, *b])
            for d in _differences(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{where}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")
        ]
    return [] if a == b else [(where, a, b)]


def _cli(python: str, args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [python, "-m", "edgecnn", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    return done.returncode, done.stdout, done.stderr


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgecnn: error:")]


class Sweep:
    def __init__(self, old: str, new: str, work: Path) -> None:
        self.old, self.new, self.work = old, new, work
        self.same = self.different = 0

    def compare(self, what: str, old_args: Sequence[Any], new_args: Sequence[Any], read: str = "json") -> Any:
        """Run both; compare exit codes, error lines and the untimed output. Returns the new side's output."""
        results = []
        for side, python, args in (("old", self.old, old_args), ("new", self.new, new_args)):
            out = self.work / f"{side}.jsonl"
            out.unlink(missing_ok=True)
            argv = [str(a).replace("{jsonl}", str(out)) for a in args]
            code, stdout, stderr = _cli(python, argv, self.work)
            if read == "jsonl":
                body: Any = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else None
            else:
                body = json.loads(stdout) if code == 0 and stdout.strip() else None
            results.append((code, _errors(stderr), _untimed(body)))
        ok = results[0] == results[1]
        self.same += ok
        self.different += not ok
        code, errors, body = results[1]
        size = len(body) if isinstance(body, list) else len(body.get("results", [])) if body else 0
        figures = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), dict) else {}
        shown = ", ".join(
            f"{k} {figures[k]}" for k in ("top1_pct", "topk_pct", "map50_pct", "map50_95_pct") if k in figures
        )
        detail = f"exit {code}" + (f", {errors[0][:90]}" if errors else f", {shown or f'{size} records'}")
        print(f"{'same' if ok else 'DIFFERENT':9} {what}: {detail}")
        if not ok:
            for where, a, b in _differences(list(results[0]), list(results[1]))[:5]:
                print(f"    {where or '.'}: old {json.dumps(a)[:300]}  new {json.dumps(b)[:300]}")
        return body


def _images(models: list[Path], folder: Path) -> tuple[Path, Path]:
    """A folder of the .bmp files beside the models plus 8 shape scenes; a YOLO dataset of 12 more."""
    import cv2

    from tests.detectors import CLASSES, make_scenes

    photos = folder / "images"
    photos.mkdir()
    for bmp in sorted({p for m in models for p in m.parent.glob("*.bmp")}):
        if "mask" not in bmp.name and not (photos / bmp.name).exists():
            shutil.copy(bmp, photos / bmp.name)
    for i, scene in enumerate(make_scenes(8, seed=101)):
        cv2.imwrite(str(photos / f"scene{i}.png"), scene.image)
    yolo = folder / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    (yolo / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for i, scene in enumerate(make_scenes(12, seed=202)):
        h, w = scene.image.shape[:2]
        cv2.imwrite(str(yolo / "images" / f"{i:03d}.png"), scene.image)
        rows = "".join(
            f"{b.label} {(b.x1 + b.x2) / 2 / w!r} {(b.y1 + b.y2) / 2 / h!r} {(b.x2 - b.x1) / w!r} "
            f"{(b.y2 - b.y1) / h!r}\n"
            for b in scene.boxes
        )
        (yolo / "labels" / f"{i:03d}.txt").write_text(rows)
    return photos, yolo


def sweep_model(s: Sweep, model: Path, photos: Path, yolo: Path, classes_dir: Path) -> None:
    name = model.name
    first = s.compare(
        f"{name} predict", ["predict", model, photos, "--json"], ["predict", model, photos, "--json"]
    )
    task = first.get("task") if isinstance(first, dict) else None
    if task == "classify":
        for extra in (["--top-k", "5"], ["--top-k", "3", "--crop", "center"]):
            s.compare(f"{name} predict {' '.join(extra)}", ["predict", model, photos, "--json", *extra],
                      ["predict", model, photos, "--json", *extra])  # fmt: skip
        for extra in ([], ["--top-k", "3", "--min-score", "0.3"]):
            s.compare(f"{name} run {' '.join(extra)}", ["run", model, "--source", photos, "--jsonl", "{jsonl}", "-q", *extra],
                      ["run", model, "--source", photos, "--jsonl", "{jsonl}", "-q", *extra], read="jsonl")  # fmt: skip
        s.compare(f"{name} eval (old --top-k 3, new --accuracy-k 3)",
                  ["eval", model, classes_dir, "--top-k", "3", "--json", "-q"],
                  ["eval", model, classes_dir, "--accuracy-k", "3", "--json", "-q"])  # fmt: skip
    elif task == "detect":
        for score in ("0.05", "0.6"):
            s.compare(f"{name} predict (old --min-score {score}, new --object-threshold {score})",
                      ["predict", model, photos, "--json", "--min-score", score],
                      ["predict", model, photos, "--json", "--object-threshold", score])  # fmt: skip
        for extra in (
            ["--max-detections", "2"],
            ["--iou", "0.7", "--agnostic"],
            ["--classes", "circle,square"],
        ):
            s.compare(f"{name} predict {' '.join(extra)}", ["predict", model, photos, "--json", *extra],
                      ["predict", model, photos, "--json", *extra])  # fmt: skip
        run = ["run", model, "--source", photos, "--jsonl", "{jsonl}", "-q"]
        s.compare(f"{name} run", run, run, read="jsonl")
        s.compare(f"{name} run (old --min-score 0.6, new --object-threshold 0.6 --min-score 0.6)",
                  [*run, "--min-score", "0.6"], [*run, "--object-threshold", "0.6", "--min-score", "0.6"],
                  read="jsonl")  # fmt: skip
        s.compare(
            f"{name} run (old --min-score 0, new default)", [*run, "--min-score", "0"], run, read="jsonl"
        )
        s.compare(
            f"{name} eval", ["eval", model, yolo, "--json", "-q"], ["eval", model, yolo, "--json", "-q"]
        )
    # eval's refusals: a dataset of another task's layout; a model no task decodes
    other = yolo if task == "classify" else classes_dir
    s.compare(
        f"{name} eval on {other.name} (refused?)", ["eval", model, other, "-q"], ["eval", model, other, "-q"]
    )
    bench = ["bench", model, "--runs", "3", "--warmup", "1", "--json"]
    s.compare(f"{name} bench (task, decoder, settings)", bench, bench)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="Python of the old install (main's venv)")
    parser.add_argument("--new", default=sys.executable, help="Python of the new install")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args(argv)
    models = sorted({m.resolve() for m in args.models if m.suffix == ".tflite"})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos, yolo = _images(models, work)
        classes_dir = work / "classes" / "tiger cat"
        classes_dir.mkdir(parents=True)
        for bmp in photos.glob("*.bmp"):
            shutil.copy(bmp, classes_dir / bmp.name)
        sweep = Sweep(str(Path(args.old).absolute()), str(Path(args.new).absolute()), work)
        for model in models:
            sweep_model(sweep, model, photos, yolo, classes_dir.parent)
    print(f"{sweep.same} same, {sweep.different} different, over {len(models)} models")
    return 1 if sweep.different else 0


if __name__ == "__main__":
    raise SystemExit(main())
