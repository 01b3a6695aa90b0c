"""Regenerate ``benchmarks/reference/<machine>/``: bench results that later runs are compared against.

Benchmarks two models with ``edgecnn bench`` on this machine and saves one result file per model:

- the shared Coral test model ``mobilenet_v1_0.25_128_quant.tflite`` (uint8, third-party);
- the seed CNN trained on digits and converted to int8 by ``edgecnn train`` + ``edgecnn convert``,
  saved as ``model_int8.tflite`` (the name ``edgecnn convert`` gives it), so a CI run that trains and
  converts the same way is matched by file name and input shape.

Compare a new run with:  edgecnn bench report new.json --reference benchmarks/reference

    .venv/bin/python benchmarks/make_reference.py [--runs 1000] [--threads 1,2] [--epochs 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
MOBILENET = ROOT / "tests" / "data" / "coral" / "mobilenet_v1_0.25_128_quant.tflite"


def machine_slug(name: str, arch: str, cores: int | None) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{arch}-{words}-{cores or 0}c"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reference")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from edgecnn.converters.pipeline import convert
    from edgecnn.devices.probe import probe_device
    from edgecnn.train.trainer import train

    probe = probe_device(diagnose_edgetpu=False)
    folder = args.out / machine_slug(probe.name, probe.arch, probe.cores)
    with tempfile.TemporaryDirectory(prefix="edgecnn-ref-") as tmp:
        run = train(output=Path(tmp) / "run", dataset="digits", epochs=args.epochs, verbose=0)
        digits = Path(tmp) / "model_int8.tflite"
        convert(run.model, output=digits, quantize="int8")
        for model, name in ((MOBILENET, MOBILENET.stem), (digits, "digits_seed_int8")):
            # A fresh `edgecnn bench` process: this one holds TensorFlow, which would inflate the peak RSS.
            path = folder / f"{name}.json"
            argv = [
                sys.executable, "-m", "edgecnn", "bench", str(model), "--threads", args.threads,
                "--runs", str(args.runs), "--warmup", str(args.warmup), "--save", str(path),
            ]  # fmt: skip
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            print(proc.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
