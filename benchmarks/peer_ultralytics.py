"""Do ``edgecnn predict`` and Ultralytics' own ``predict`` find the same objects with the same TFLite export?

Usage (with the separate Ultralytics virtualenv's Python, see below)::

    benchmarks/.venv-ultralytics/bin/python benchmarks/peer_ultralytics.py MODEL|DIR... --images IMAGE|DIR...
        [--edgecnn .venv/bin/edgecnn] [--conf 0.25] [--iou 0.45] [--max-det 300] [--match-iou 0.5]
        [--round-ultralytics-input] [--json]

Every model (``*.tflite``; folders are searched recursively) runs on every image twice: once through
Ultralytics (``YOLO(model, task="detect").predict(..., conf, iou, max_det, device="cpu")``, its LiteRT
backend) and once through ``edgecnn predict --json --object-threshold CONF --max-detections MAX_DET`` (plus
``--iou IOU`` when that CLI has the flag; without it edgecnn's NMS IoU is its fixed 0.45, shown in the
decoder column). Ultralytics' own default NMS IoU is 0.7, so pass ``--iou 0.7`` to compare with a plain
``yolo predict``.

Objects are matched per image: same class id, greedily by IoU (the best remaining pair first), a pair counts
when its IoU >= ``--match-iou``. Per model the table shows the matched objects, those only Ultralytics or
only edgecnn found, the share of Ultralytics' objects matched, the mean IoU of the matches and the largest
score difference between matched objects. "target" is met when >= 99% of Ultralytics' objects are matched
with a mean IoU >= 0.95. ``--json`` adds every unmatched object. Boxes in ``edgecnn predict --json`` are
rounded to 0.1 px, so identical detections show an IoU of about 0.999.

Ultralytics' LiteRT backend quantizes an int8 input with ``astype`` after ``im / scale + zero_point``, which
truncates toward zero instead of rounding (the TFLite convention edgecnn follows): with scale 1/255 and zero
point -128, 63 of 256 pixel values come out one step low; with the older onnx2tf scale 0.018658 and zero
point -14 (one step is ~4.8 pixel levels) about half do. ``--round-ultralytics-input`` wraps the backend's
``forward`` so its cast rounds: what remains is then edgecnn's own difference.

The comparison needs PyTorch and Ultralytics, which edgecnn never depends on: they live in their own
virtualenv (git-ignored), with ``ai-edge-litert`` for Ultralytics' LiteRT backend (its
``nn/backends/litert.py`` imports ``ai_edge_litert.interpreter``) and ``rich`` for the table::

    python3 -m venv benchmarks/.venv-ultralytics
    benchmarks/.venv-ultralytics/bin/pip install ultralytics ai-edge-litert rich   # CPU is enough

The models are real Ultralytics TFLite exports (``*_float32``, ``*_int8`` = dynamic-range,
``*_integer_quant`` = int8 inside with float I/O, ``*_full_integer_quant`` = int8 I/O); keep them and the
images outside the repository. ``peer_ultralytics_pose.py`` makes the same comparison for YOLO pose
exports (people and their keypoints), reusing these helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
TARGET_MATCHED = 0.99
TARGET_IOU = 0.95


@dataclass(frozen=True)
class Found:
    id: int  # class id: matched on it (a file without metadata has no label names, and the two name ids apart)
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the image


@dataclass
class ModelFigures:
    model: str
    kind: str
    input: str
    decoder: str = ""
    images: int = 0
    matched: int = 0
    only_ultralytics: int = 0
    only_edgecnn: int = 0
    iou_sum: float = 0.0
    min_iou: float = 1.0
    max_score_diff: float = 0.0
    error: str | None = None
    unmatched: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.matched if self.matched else None

    @property
    def matched_share(self) -> float | None:
        total = self.matched + self.only_ultralytics
        return self.matched / total if total else None

    @property
    def meets_target(self) -> bool:
        share, iou = self.matched_share, self.mean_iou
        return self.error is None and (
            share is None or (share >= TARGET_MATCHED and (iou or 0) >= TARGET_IOU)
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["iou_sum"]
        if not self.matched:
            out["min_iou"] = None
        out.update(mean_iou=self.mean_iou, matched_share=self.matched_share, meets_target=self.meets_target)
        return out


SAME_BOX_PX = 0.1  # edgecnn's JSON rounds boxes to 0.1 px


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union; 1.0 for the same box up to the JSON's rounding, even one of no area
    (a badly quantized end-to-end export reports zero-width boxes, and both tools then agree exactly)."""
    if max(abs(x - y) for x, y in zip(a, b, strict=True)) <= SAME_BOX_PX:
        return 1.0
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(
    ours: list[Found], theirs: list[Found], min_iou: float
) -> tuple[list[tuple[int, int, float]], set[int], set[int]]:
    """Greedy same-class matching, best IoU first: (pairs (their index, our index, IoU), unmatched theirs, ours)."""
    pairs = sorted(
        (
            (iou(t.box, o.box), ti, oi)
            for ti, t in enumerate(theirs)
            for oi, o in enumerate(ours)
            if t.id == o.id
        ),
        reverse=True,
    )
    used_t: set[int] = set()
    used_o: set[int] = set()
    matched = []
    for value, ti, oi in pairs:
        if value < min_iou:
            break
        if ti in used_t or oi in used_o:
            continue
        used_t.add(ti)
        used_o.add(oi)
        matched.append((ti, oi, value))
    return matched, set(range(len(theirs))) - used_t, set(range(len(ours))) - used_o


def expand(paths: list[Path], suffixes: set[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in suffixes and f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"peer_ultralytics: error: {p} does not exist")
    return [p.resolve() for p in out]


def model_kind(path: Path) -> tuple[str, str]:
    """(kind of export, input "size dtype"), read from the tensors (Ultralytics' file names vary)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(path))
    inp = interp.get_input_details()[0]
    _, h, w, _ = (int(d) for d in inp["shape"])
    dtype = np.dtype(inp["dtype"]).name
    shape = f"{w}x{h} {dtype}"
    if dtype in {"int8", "uint8", "int16"}:
        scale, zero_point = inp["quantization"]
        return "full integer (int I/O)", f"{shape} (scale {scale:.6g}, zero {zero_point})"
    tensors = interp.get_tensor_details()
    ints = sum(np.dtype(t["dtype"]) == np.int8 for t in tensors)
    halves = sum(np.dtype(t["dtype"]) == np.float16 for t in tensors)
    if ints == 0:
        return ("float16" if halves else "float32"), shape
    # Dynamic-range files hold int8 weights only; integer-quantized ones int8 activations too (most tensors).
    return ("integer quant (float I/O)" if ints > len(tensors) / 2 else "dynamic range"), shape


def edgecnn_supports_iou(edgecnn: str) -> bool:
    done = subprocess.run([edgecnn, "predict", "--help"], capture_output=True, text=True, env=_plain_env())
    return "--iou" in done.stdout


def _plain_env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def run_edgecnn(
    edgecnn: str,
    model: Path,
    images: list[Path],
    conf: float,
    iou_threshold: float,
    max_det: int,
    with_iou: bool,
) -> tuple[str, dict[str, list[Found]]]:
    cmd = [edgecnn, "predict", str(model), *map(str, images), "--json", "--object-threshold", str(conf)]
    cmd += ["--max-detections", str(max_det)]
    if with_iou:
        cmd += ["--iou", str(iou_threshold)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_plain_env())
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip() or done.stdout.strip()).splitlines()[-1])
    report = json.loads(done.stdout)
    found = {
        str(Path(r["image"]).resolve()): [
            Found(int(o["id"]), o["label"], float(o["score"]), tuple(o["box"])) for o in r["objects"]
        ]
        for r in report["results"]
    }
    return str(report.get("decoder", "")), found


def round_ultralytics_input() -> None:
    """Make Ultralytics' LiteRT backend round its int8/int16 input quantization to nearest.

    Its ``forward`` computes ``im / scale + zero_point`` and casts with ``astype``, which truncates toward
    zero: with the common scale 1/255, zero point -128, 63 of the 256 pixel values land one step low
    (``p / 255 / (1 / 255)`` is a hair under ``p`` in float32). This shifts each value by half a step, in the
    direction the truncation drops, so the cast yields ``round(im / scale + zero_point)``; the backend's own
    code runs unchanged.
    """
    import numpy as np
    import torch
    from ultralytics.nn.backends.litert import LiteRTBackend

    original = LiteRTBackend.forward
    if getattr(original, "rounds_input", False):
        return

    def forward(self: Any, im: torch.Tensor) -> Any:
        details = self.input_details[0]
        if details["dtype"] in {np.int8, np.int16}:
            scale, zero_point = details["quantization"]
            limits = np.iinfo(details["dtype"])
            wanted = torch.round(im / scale + zero_point).clamp(limits.min, limits.max)
            im = (wanted + torch.where(wanted >= 0, 0.5, -0.5) - zero_point) * scale
        return original(self, im)

    forward.rounds_input = True  # type: ignore[attr-defined]
    LiteRTBackend.forward = forward  # type: ignore[method-assign]


def run_ultralytics(
    model: Path, images: list[Path], conf: float, iou_threshold: float, max_det: int
) -> dict[str, list[Found]]:
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="detect")
    found: dict[str, list[Found]] = {}
    for image in images:  # one at a time: the exports take batch 1
        (result,) = yolo.predict(
            str(image), conf=conf, iou=iou_threshold, max_det=max_det, device="cpu", verbose=False
        )
        names = result.names
        found[str(image)] = [
            Found(int(c), str(names[int(c)]), float(s), tuple(float(v) for v in box))
            for box, s, c in zip(
                result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist(), strict=True
            )
        ]
    return found


def compare(model: Path, images: list[Path], args: argparse.Namespace, with_iou: bool) -> ModelFigures:
    kind, shape = model_kind(model)
    figures = ModelFigures(str(model), kind, shape)
    try:
        figures.decoder, ours = run_edgecnn(
            args.edgecnn, model, images, args.conf, args.iou, args.max_det, with_iou
        )
    except (RuntimeError, json.JSONDecodeError, KeyError) as exc:
        figures.error = f"edgecnn: {exc}"
        return figures
    try:
        theirs = run_ultralytics(model, images, args.conf, args.iou, args.max_det)
    except Exception as exc:  # a file Ultralytics cannot run is one row, not the end of the comparison
        figures.error = f"ultralytics: {type(exc).__name__}: {exc}"
        return figures
    for image in map(str, images):
        t, o = theirs.get(image, []), ours.get(image, [])
        pairs, only_t, only_o = match(o, t, args.match_iou)
        figures.images += 1
        figures.matched += len(pairs)
        figures.only_ultralytics += len(only_t)
        figures.only_edgecnn += len(only_o)
        for ti, oi, value in pairs:
            figures.iou_sum += value
            figures.min_iou = min(figures.min_iou, value)
            figures.max_score_diff = max(figures.max_score_diff, abs(t[ti].score - o[oi].score))
        for who, objs, idx in (("ultralytics", t, only_t), ("edgecnn", o, only_o)):
            for i in sorted(idx):
                figures.unmatched.append({"image": image, "only": who, **asdict(objs[i])})
    return figures


def print_table(rows: list[ModelFigures], args: argparse.Namespace, with_iou: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"edgecnn vs Ultralytics predict: conf {args.conf:g}, NMS IoU {args.iou:g}"
        f"{'' if with_iou else ' (Ultralytics only: this edgecnn has no --iou)'}, same class, match IoU >= {args.match_iou:g}"
        f"{'; Ultralytics int8 input rounded' if args.round_ultralytics_input else ''}"
    )
    for name in ("model", "kind", "input", "images", "matched", "only Ultr.", "only edgecnn", "matched %",
                 "mean IoU", "min IoU", "max |score diff|", "target"):  # fmt: skip
        table.add_column(name, justify="left" if name in {"model", "kind", "input"} else "right")
    for r in rows:
        if r.error:
            table.add_row(Path(r.model).name, r.kind, r.input, *["-"] * 8, f"error: {r.error}")
            continue
        share, mean = r.matched_share, r.mean_iou
        table.add_row(
            Path(r.model).name,
            r.kind,
            r.input,
            str(r.images),
            str(r.matched),
            str(r.only_ultralytics),
            str(r.only_edgecnn),
            "-" if share is None else f"{100 * share:.1f}",
            "-" if mean is None else f"{mean:.4f}",
            "-" if not r.matched else f"{r.min_iou:.4f}",
            f"{r.max_score_diff:.4f}",
            "yes" if r.meets_target else "NO",
        )
    Console(width=200).print(table)


def run_comparison(
    argv: list[str] | None,
    description: str,
    compare: Callable[[Path, list[Path], argparse.Namespace, bool], Any],
    print_table: Callable[[list[Any], argparse.Namespace, bool], None],
    *,
    things: str = "objects",
    pair: str = "a same-class pair",
) -> int:
    """The command line both peer scripts share (this one for detection, ``peer_ultralytics_pose.py`` for pose):
    parse the arguments, find models and images, set Ultralytics up offline, then ``compare`` every model and
    print the rows as a table or one JSON object. ``things``/``pair`` only word the help."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files or folders of them")
    parser.add_argument(
        "--images", nargs="+", type=Path, required=True, help="image files or folders of them"
    )
    default_cli = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "edgecnn"
    parser.add_argument(
        "--edgecnn", default=str(default_cli), help="the edgecnn CLI to compare (default: %(default)s)"
    )
    parser.add_argument("--conf", type=float, default=0.25, help="score threshold for both (default 0.25)")
    parser.add_argument("--iou", type=float, default=0.45, help="NMS IoU for both (default 0.45)")
    parser.add_argument(
        "--max-det", type=int, default=300, help=f"{things} per image at most, both (default 300)"
    )
    parser.add_argument("--match-iou", type=float, default=0.5, help=f"{pair} matches at this IoU")
    parser.add_argument(
        "--round-ultralytics-input",
        action="store_true",
        help="diagnostic: make Ultralytics round its int8 input quantization instead of truncating",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if not Path(args.edgecnn).is_file():
        parser.error(
            f"--edgecnn {args.edgecnn}: no such file (make install, or point it at another venv's CLI)"
        )
    models = expand(args.models, {".tflite"})
    images = expand(args.images, IMAGE_SUFFIXES)
    if not models or not images:
        parser.error("no .tflite models or no images found")
    os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no update checks, nothing downloaded
    os.environ.setdefault("YOLO_VERBOSE", "False")
    with_iou = edgecnn_supports_iou(args.edgecnn)
    if args.round_ultralytics_input:
        round_ultralytics_input()
    rows = [compare(m, images, args, with_iou) for m in models]
    if args.json:
        print(
            json.dumps(
                {
                    "edgecnn": args.edgecnn,
                    "edgecnn_iou_flag": with_iou,
                    "conf": args.conf,
                    "iou": args.iou,
                    "max_det": args.max_det,
                    "match_iou": args.match_iou,
                    "ultralytics_input_rounded": args.round_ultralytics_input,
                    "images": [str(i) for i in images],
                    "models": [r.to_json() for r in rows],
                },
                indent=2,
            )
        )
    else:
        print_table(rows, args, with_iou)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_comparison(argv, __doc__ or "", compare, print_table)


if __name__ == "__main__":
    sys.exit(main())
