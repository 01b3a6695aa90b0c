"""How often the static Edge TPU check names exactly the ops ``edgetpu_compiler`` left on the CPU.

Usage: python benchmarks/edgetpu_check_agreement.py DIR [--json]

DIR (and its sub-folders) holds pairs ``X.tflite`` / ``X_edgetpu.tflite`` (the second made by the real compiler
from the first: Coral's public ``google-coral/test_data``, or YOLO exports users compiled and published). Every op
left in the compiled file besides ``edgetpu-custom-op`` is one the compiler put on the CPU; the check is *exact*
for a model when its multiset of CPU ops (by name) equals that one. When the compiler's log ``X_edgetpu.log`` lies
beside them, the check's per-op statuses are scored too: *log exact* when its ``(operator, status)`` counts equal
the log's table ("Mapped to Edge TPU", the root cause, "More than one subgraph is not supported").

Also scored: where the Edge TPU subgraph ends, the op type the check stops at against the first op of the
compiled file that reads the edgetpu-custom-op's outputs ("same stop"). That one also holds for a compiled file
published without its source, scored against a *stand-in*: a source of the same architecture and exporter at
another size, linked as ``X.tflite`` beside it (its CPU op counts then differ wherever the exports do).

Every compiled file, with or without its source, is also asked whether the check refuses an op the compiler
stopped at (an op reading the edgetpu-custom-op's outputs), run on the compiled file's own CPU part
(``static_check.stop_explained``): "explained" when it does. A compiled file whose Edge TPU subgraph ends at
ops the check maps on those very tensors is listed: no per-op rule explains where it stops.

Several folders can be given; each is scored on its own (``--json``: one object per folder).

Prints "N of M models exact", "K of L logs exact", "S of M stop at the same op", "E of C compiled files stop at
an op the check refuses" and one line per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgecnn.devices.backends.edgetpu.compiler import parse_summary
from edgecnn.devices.backends.edgetpu.static_check import (
    agreement_with_compiled,
    compiled_stop,
    stop_explained,
)
from edgecnn.errors import ModelError
from edgecnn.modelfile import read_model


def score(folder: Path) -> dict[str, Any] | None:
    """The agreement of every pair under ``folder``, or ``None`` when it holds no compiled file."""
    pairs = sorted(
        (p.with_name(p.name[: -len("_edgetpu.tflite")] + ".tflite"), p)
        for p in folder.rglob("*_edgetpu.tflite")
        if p.with_name(p.name[: -len("_edgetpu.tflite")] + ".tflite").is_file()
    )
    stops = compiled_stops(folder)
    if not pairs and not stops:
        return None
    results = []
    for source, compiled in pairs:
        if read_model(source).is_edgetpu:  # a compiled file under a plain name is no pair
            print(
                f"skipped {source.relative_to(folder)}: it is itself compiled for the Edge TPU",
                file=sys.stderr,
            )
            continue
        log = compiled.with_suffix(".log")
        rows = None
        if log.is_file():
            table = parse_summary(log.read_text(encoding="utf-8", errors="replace")).operations
            rows = [(r.operator, r.count, r.status) for r in table]
        result = agreement_with_compiled(read_model(source), read_model(compiled), rows)
        results.append((str(source.relative_to(folder).with_suffix("")), result))
    logs = [r for _, r in results if r.log_exact is not None]
    stopped = {n: st for n, st in stops.items() if st["stop_explained"] is not None}
    return {
        "exact": sum(r.exact for _, r in results),
        "models": len(results),
        "logs_exact": sum(bool(r.log_exact) for r in logs),
        "logs": len(logs),
        "same_stop": sum(r.same_stop for _, r in results),
        "compiled": len(stopped),
        "stops_explained": sum(bool(st["stop_explained"]) for st in stopped.values()),
        "compiled_whole": len(stops) - len(stopped),
        "unexplained_stops": {
            n: st["stop_compiler"] for n, st in stopped.items() if not st["stop_explained"]
        },
        "per_model": {n: r for n, r in results},
    }


def compiled_stops(folder: Path) -> dict[str, dict[str, Any]]:
    """For every compiled file under ``folder``: where its Edge TPU subgraph ends and whether a rule explains it.

    ``stop_explained`` is ``None`` for a file the compiler mapped whole (nothing on the CPU).
    """
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*_edgetpu.tflite")):
        try:
            compiled = read_model(path)
        except ModelError as exc:
            print(f"skipped {path.relative_to(folder)}: {exc}", file=sys.stderr)
            continue
        if compiled.is_edgetpu:
            name = str(path.relative_to(folder).with_suffix(""))
            out[name] = {"stop_compiler": compiled_stop(compiled), "stop_explained": stop_explained(compiled)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="folders of X.tflite / X_edgetpu.tflite pairs")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    scores = {}
    for folder in args.folders:
        scored = score(folder)
        if scored is None:
            print(
                f"error: no X.tflite / X_edgetpu.tflite pairs (nor compiled files) in {folder}",
                file=sys.stderr,
            )
            return 2
        scores[folder.name] = scored
    if args.json:
        out = {
            name: {**sc, "per_model": {n: r.to_dict() for n, r in sc["per_model"].items()}}
            for name, sc in scores.items()
        }
        print(json.dumps(out if len(out) > 1 else next(iter(out.values())), indent=2))
        return 0
    for name, sc in scores.items():
        if len(scores) > 1:
            print(f"{name}:")
        print(f"{sc['exact']} of {sc['models']} models exact (CPU ops)")
        print(f"{sc['logs_exact']} of {sc['logs']} compiler logs exact (per-op statuses)")
        print(f"{sc['same_stop']} of {sc['models']} stop at the same op")
        print(
            f"{sc['stops_explained']} of {sc['compiled']} compiled files stop at an op the check refuses "
            f"({sc['compiled_whole']} more mapped whole)"
        )
        for model, stop in sc["unexplained_stops"].items():
            print(f"  {model}: stops at {stop}, which the check maps")
        for model, r in sc["per_model"].items():
            log = "" if r.log_exact is None else ("; log exact" if r.log_exact else "; log differs")
            stop = "" if r.same_stop else f"; stops: check {r.stop_check}, compiler {r.stop_compiler}"
            if r.exact:
                print(f"  {model}: exact ({r.compiler_cpu_count} CPU ops){log}{stop}")
            else:
                print(
                    f"  {model}: check-only {r.check_only or '{}'}  compiler-only {r.compiler_only or '{}'}"
                    f"{log}{stop}"
                )
            if r.log_exact is False:
                print(
                    f"    log: check-only {r.log_check_only or '{}'}  compiler-only {r.log_compiler_only or '{}'}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
