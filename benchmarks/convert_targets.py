"""Conversion targets for the seed model on digits, measured in one run.

Targets (issue 3): int8 file <= 0.30x the float32 TFLite size, top-1 agreement >= 99%, accuracy drop
<= 0.5 percentage points (held-out digits the calibration never saw), conversion under 15 s here.

Uses a training run (``--run DIR`` holding model.keras from `edgecnn train`; default: trains one with the
default recipe into a temporary directory first), then times ``edgecnn convert`` end to end as a user runs it
(a fresh process: Python start-up and the TensorFlow import included) and reads the figures from the
conversion_report.json it writes. The in-process library timings are printed as well.

    .venv/bin/python benchmarks/convert_targets.py [--run runs/digits] [--save results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.train_accuracy import machine  # noqa: E402

TARGETS = {"size_ratio": 0.30, "agreement": 0.99, "accuracy_drop_pp": 0.5, "seconds": 15.0}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", type=Path, help="Training run directory with model.keras (default: train one)."
    )
    parser.add_argument("--save", type=Path, help="Write the results as JSON.")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            from edgecnn.train import train

            run_dir = Path(tmp) / "run"
            report = train(output=run_dir, dataset="digits", verbose=0)
            print(f"trained the default digits recipe: test accuracy {report.test_accuracy:.2%}")
        output = Path(tmp) / "model_int8.tflite"
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgecnn",
                "convert",
                str(run_dir / "model.keras"),
                "-o",
                str(output),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 2
        report = json.loads(proc.stdout)
    v, sizes = report["verification"], report["sizes"]
    measured = {
        "size_ratio": sizes["output_vs_float32"],
        "agreement": v["top1_agreement"],
        "accuracy_drop_pp": v["accuracy_drop_pp"],
        "seconds": round(wall, 2),
    }
    checks = {
        "size_ratio": measured["size_ratio"] <= TARGETS["size_ratio"],
        "agreement": measured["agreement"] >= TARGETS["agreement"],
        "accuracy_drop_pp": measured["accuracy_drop_pp"] <= TARGETS["accuracy_drop_pp"],
        "seconds": measured["seconds"] < TARGETS["seconds"],
    }
    print(
        f"held-out images: {v['samples']} ({v['source']}); calibration: {report['calibration']['samples']} images"
    )
    print(
        f"int8 size / float32 TFLite size: {sizes['output_bytes']} / {sizes['float32_tflite_bytes']} bytes = "
        f"{measured['size_ratio']:.3f}x (target <= {TARGETS['size_ratio']:.2f}x): {'PASS' if checks['size_ratio'] else 'FAIL'}"
    )
    print(
        f"top-1 agreement float vs int8: {measured['agreement']:.2%} (target >= {TARGETS['agreement']:.0%}): "
        f"{'PASS' if checks['agreement'] else 'FAIL'}"
    )
    print(
        f"accuracy float {v['float_accuracy']:.2%} -> int8 {v['converted_accuracy']:.2%}: drop "
        f"{measured['accuracy_drop_pp']:+.2f} pp (target <= {TARGETS['accuracy_drop_pp']} pp): "
        f"{'PASS' if checks['accuracy_drop_pp'] else 'FAIL'}"
    )
    print(
        f"conversion: {measured['seconds']:.1f} s end to end (`edgecnn convert` process; library: converter "
        f"{report['seconds']['convert']} s, verification {report['seconds']['verify']} s, total "
        f"{report['seconds']['total']} s) (target < {TARGETS['seconds']:.0f} s): {'PASS' if checks['seconds'] else 'FAIL'}"
    )
    if args.save:
        args.save.write_text(
            json.dumps({"machine": machine(), "targets": TARGETS, "measured": measured}, indent=2) + "\n"
        )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
