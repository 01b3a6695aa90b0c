"""How often the static Edge TPU check names exactly the ops ``edgetpu_compiler`` left on the CPU.

Usage: python benchmarks/edgetpu_check_agreement.py DIR [--json]

DIR (and its sub-folders) holds pairs ``X.tflite`` / ``X_edgetpu.tflite`` (the second made by the real compiler
from the first: Coral's public ``google-coral/test_data``, or YOLO exports users compiled and published). Every op
left in the compiled file besides ``edgetpu-custom-op`` is one the compiler put on the CPU; the check is *exact*
for a model when its multiset of CPU ops (by name) equals that one. When the compiler's log ``X_edgetpu.log`` lies
beside them, the check's per-op statuses are scored too: *log exact* when its ``(operator, status)`` counts equal
the log's table ("Mapped to Edge TPU", the root cause, "More than one subgraph is not supported").

Prints "N of M models exact", "K of L logs exact" and one line per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecnn.devices.backends.edgetpu.compiler import parse_summary
from edgecnn.devices.backends.edgetpu.static_check import agreement_with_compiled
from edgecnn.modelfile import read_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of X.tflite / X_edgetpu.tflite pairs")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    pairs = sorted(
        (p.with_name(p.name[: -len("_edgetpu.tflite")] + ".tflite"), p)
        for p in args.folder.rglob("*_edgetpu.tflite")
        if p.with_name(p.name[: -len("_edgetpu.tflite")] + ".tflite").is_file()
    )
    if not pairs:
        print(f"error: no X.tflite / X_edgetpu.tflite pairs in {args.folder}", file=sys.stderr)
        return 2
    results = []
    for source, compiled in pairs:
        if read_model(source).is_edgetpu:  # a compiled file under a plain name is no pair
            print(
                f"skipped {source.relative_to(args.folder)}: it is itself compiled for the Edge TPU",
                file=sys.stderr,
            )
            continue
        log = compiled.with_suffix(".log")
        rows = None
        if log.is_file():
            table = parse_summary(log.read_text(encoding="utf-8", errors="replace")).operations
            rows = [(r.operator, r.count, r.status) for r in table]
        result = agreement_with_compiled(read_model(source), read_model(compiled), rows)
        results.append((str(source.relative_to(args.folder).with_suffix("")), result))
    exact = sum(r.exact for _, r in results)
    logs = [r for _, r in results if r.log_exact is not None]
    logs_exact = sum(bool(r.log_exact) for r in logs)
    if args.json:
        print(
            json.dumps(
                {
                    "exact": exact,
                    "models": len(results),
                    "logs_exact": logs_exact,
                    "logs": len(logs),
                    "per_model": {n: r.to_dict() for n, r in results},
                },
                indent=2,
            )
        )
        return 0
    print(f"{exact} of {len(results)} models exact (CPU ops)")
    print(f"{logs_exact} of {len(logs)} compiler logs exact (per-op statuses)")
    for name, r in results:
        log = "" if r.log_exact is None else ("; log exact" if r.log_exact else "; log differs")
        if r.exact:
            print(f"  {name}: exact ({r.compiler_cpu_count} CPU ops){log}")
        else:
            print(
                f"  {name}: check-only {r.check_only or '{}'}  compiler-only {r.compiler_only or '{}'}{log}"
            )
        if r.log_exact is False:
            print(
                f"    log: check-only {r.log_check_only or '{}'}  compiler-only {r.log_compiler_only or '{}'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
