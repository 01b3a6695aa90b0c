"""How often the static Edge TPU check names exactly the ops ``edgetpu_compiler`` left on the CPU.

Usage: python benchmarks/edgetpu_check_agreement.py DIR [--json]

DIR (and its sub-folders) holds pairs ``X.tflite`` / ``X_edgetpu.tflite`` (the second made by the real compiler from the first,
e.g. Coral's public ``google-coral/test_data``). Every op left in the compiled file besides
``edgetpu-custom-op`` is one the compiler put on the CPU; the check is *exact* for a model when its
multiset of CPU ops (name, version) equals that one. Prints one line "N of M models exact" and, per model
that is not exact, the ops only the check or only the compiler put on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
        result = agreement_with_compiled(read_model(source), read_model(compiled))
        results.append((str(source.relative_to(args.folder).with_suffix("")), result))
    exact = sum(r.exact for _, r in results)
    if args.json:
        print(
            json.dumps(
                {"exact": exact, "models": len(results), "per_model": {n: r.to_dict() for n, r in results}},
                indent=2,
            )
        )
        return 0
    print(f"{exact} of {len(results)} models exact")
    for name, r in results:
        if r.exact:
            print(f"  {name}: exact ({r.compiler_cpu_count} CPU ops)")
        else:
            print(f"  {name}: check-only {r.check_only or '{}'}  compiler-only {r.compiler_only or '{}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
