"""Stand-in for Google's ``edgetpu_compiler`` (x86-64 Debian/Ubuntu only; absent on this machine).

Tests install it first on PATH as an executable named ``edgetpu_compiler`` (see tests/test_edgetpu_compiler.py).
It takes the real command line (``[-s] [-o DIR] [-m N] [-t S] model...``) and prints what compiler 16 prints,
in the same format (public: Coral's docs and the compiler output quoted in google-coral/edgetpu issues):
the version banner, "Model compiled successfully in N ms.", input/output model lines, on-chip/off-chip
memory, subgraph and operation counts, the operation log path and, with ``-s``, the operator table.
It writes ``<out_dir>/<name>_edgetpu.tflite`` (a byte copy of the input, so metadata survives exactly as the
real compiler keeps it) and ``<name>_edgetpu.log``. Like the real one, it refuses float (unquantized)
models and dynamic-shaped ones with exit status 1.

The op table counts the model's real operators (read with ai-edge-litert's flatbuffer schema).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import ai_edge_litert.schema_py_generated as schema

VERSION = "16.0.384591198"
_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _ops(model) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for graph in model.subgraphs:
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
            name = _NAMES.get(builtin, str(builtin))
            counts[name] = counts.get(name, 0) + 1
    return list(counts.items())


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:.2f}{unit}"
    return f"{n:.2f}B"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgetpu_compiler", add_help=True)
    parser.add_argument("-o", "--out_dir", default=".")
    parser.add_argument("-s", "--show_operations", action="store_true")
    parser.add_argument("-m", "--min_runtime_version", default="14")
    parser.add_argument("-t", "--timeout_sec", default="180")
    parser.add_argument("models", nargs="+")
    args = parser.parse_args(argv)
    print(f"Edge TPU Compiler version {VERSION}")
    for model_arg in args.models:
        path = Path(model_arg)
        if not path.is_file():
            print(f"Invalid model: {model_arg}\nCouldn't open file {model_arg}")
            return 1
        data = path.read_bytes()
        if not schema.Model.ModelBufferHasIdentifier(data, 0):
            print(f"Invalid model: {model_arg}\nModel is not a valid TensorFlow Lite flatbuffer.")
            return 1
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        graph = model.subgraphs[0]
        tensors = graph.tensors
        if any(t.shapeSignature is not None and any(d < 0 for d in t.shapeSignature) for t in tensors):
            print(
                "ERROR: Attempting to use a delegate that only supports static-sized tensors with a graph "
                "that has dynamic-sized tensors.\nCompilation failed: Model failed in Tflite interpreter. "
                "Please ensure model can be loaded/run in Tflite interpreter.\nCompilation child process "
                "completed within timeout period.\nCompilation failed! "
            )
            return 1
        float32 = schema.TensorType.FLOAT32
        compute = [
            op
            for op in graph.operators
            if _NAMES.get(model.operatorCodes[op.opcodeIndex].builtinCode) not in ("QUANTIZE", "DEQUANTIZE")
        ]
        if any(tensors[i].type == float32 for op in compute for i in op.outputs):
            print(f"Invalid model: {model_arg}\nModel not quantized")
            return 1
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        out_model = out_dir / f"{path.stem}_edgetpu.tflite"
        out_log = out_dir / f"{path.stem}_edgetpu.log"
        shutil.copyfile(path, out_model)
        ops = _ops(model)
        total = sum(count for _, count in ops)
        table = ["", f"{'Operator':<31}{'Count':<11}Status", ""]
        table += [f"{name:<31}{count:<11}Mapped to Edge TPU" for name, count in ops]
        out_log.write_text(
            "\n".join(
                [
                    f"Edge TPU Compiler version {VERSION}",
                    f"Input: {model_arg}",
                    f"Output: {out_model}",
                    *table,
                ]
            )
            + "\n"
        )
        params = sum(len(b.data) for b in model.buffers if b.data is not None)
        print("Started a compilation timeout timer of 180 seconds.")
        print("\nModel compiled successfully in 37 ms.\n")
        print(f"Input model: {model_arg}")
        print(f"Input size: {_size(len(data))}")
        print(f"Output model: {out_model}")
        print(f"Output size: {_size(len(data))}")
        print(f"On-chip memory used for caching model parameters: {_size(params)}")
        print(f"On-chip memory remaining for caching model parameters: {_size(8 * 1024**2 - params)}")
        print("Off-chip memory used for streaming uncached model parameters: 0.00B")
        print("Number of Edge TPU subgraphs: 1")
        print(f"Total number of operations: {total}")
        print(f"Operation log: {out_log}")
        if args.show_operations:
            print(f"Number of operations that will run on Edge TPU: {total}")
            print("Number of operations that will run on CPU: 0")
            print("\n".join(table))
        else:
            print("See the operation log file for individual operation details.")
        print("Compilation child process completed within timeout period.")
        print("Compilation succeeded! ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
