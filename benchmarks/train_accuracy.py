"""Does `edgecnn train --dataset digits` with its defaults reach >= 97% test accuracy?

Trains the default recipe (seed CNN, light augmentation, up to 40 epochs with early stopping on validation
loss) once per seed and prints the held-out test accuracy of each run; ``--baseline`` also trains the plain
recipe the issue measured (10 epochs, no augmentation, no early stopping) for comparison. Each run uses the
library function the CLI calls, in a temporary directory.

    .venv/bin/python benchmarks/train_accuracy.py [--seeds 0,1,2] [--baseline] [--save results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 0.97


def machine() -> str:
    model = Path("/proc/device-tree/model")
    if model.exists():
        return model.read_text(errors="replace").strip("\x00\n ")
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return f"{platform.system()} {platform.machine()} {cpu}".strip()


def run(seed: int, **options: object) -> dict[str, object]:
    from edgecnn.train import train

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = train(output=Path(tmp) / "run", dataset="digits", seed=seed, verbose=0, **options)  # type: ignore[arg-type]
        return {
            "seed": seed,
            "test_accuracy": report.test_accuracy,
            "validation_accuracy": report.validation_accuracy,
            "epochs_run": report.epochs_run,
            "best_epoch": report.best_epoch,
            "test_images": report.test_samples,
            "seconds": round(time.perf_counter() - start, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0", help="Comma list of seeds (default 0).")
    parser.add_argument("--baseline", action="store_true", help="Also train the plain 10-epoch recipe.")
    parser.add_argument("--save", type=Path, help="Write the results as JSON.")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    recipes = {"default": {}}
    if args.baseline:
        recipes["plain 10 epochs"] = {"epochs": 10, "augment": False, "early_stopping": False}
    print(f"machine: {machine()}")
    results: dict[str, list[dict[str, object]]] = {}
    for name, options in recipes.items():
        results[name] = []
        for seed in seeds:
            row = run(seed, **options)
            results[name].append(row)
            print(
                f"{name:<16} seed {seed}: test accuracy {row['test_accuracy']:.2%} on {row['test_images']} held-out "
                f"digits ({row['epochs_run']} epochs, best {row['best_epoch']}, {row['seconds']} s)",
                flush=True,
            )
    default = [float(r["test_accuracy"]) for r in results["default"]]  # type: ignore[arg-type]
    verdict = "PASS" if min(default) >= TARGET else "FAIL"
    print(
        f"default recipe: mean {statistics.mean(default):.2%}, min {min(default):.2%} over {len(default)} seed(s); "
        f"target >= {TARGET:.0%}: {verdict}"
    )
    if args.save:
        args.save.write_text(
            json.dumps({"machine": machine(), "target": TARGET, "results": results}, indent=2) + "\n"
        )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
