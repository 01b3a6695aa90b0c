"""Run Google's ``edgetpu_compiler`` and read what it reports.

The compiler ships only for x86-64 Debian/Ubuntu (Coral's apt repository); edgecnn never installs it,
it says how. It is run as an argv list with ``-s`` (print the operation table) and ``-o DIR`` into a
temporary directory, its exit status is checked, and its summary (ops on the Edge TPU vs the CPU, on-chip
and off-chip parameter memory, subgraphs) is parsed from the text it prints, e.g.::

    Edge TPU Compiler version 16.0.384591198
    Model compiled successfully in 52 ms.
    Input model: model_int8.tflite
    Output model: model_int8_edgetpu.tflite
    On-chip memory used for caching model parameters: 113.50KiB
    On-chip memory remaining for caching model parameters: 7.83MiB
    Off-chip memory used for streaming uncached model parameters: 0.00B
    Number of Edge TPU subgraphs: 1
    Total number of operations: 6
    Operation log: model_int8_edgetpu.log
    Number of operations that will run on Edge TPU: 6
    Number of operations that will run on CPU: 0
    Operator                       Count      Status
    CONV_2D                        2          Mapped to Edge TPU
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ConversionError, RuntimeMissing

COMPILER = "edgetpu_compiler"
COMPILE_TIMEOUT_S = 600
MAPPED = "Mapped to Edge TPU"
INSTALL_HINT = (
    "It ships only for x86-64 Debian/Ubuntu: add Coral's apt repository "
    "(curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | "
    "sudo gpg --dearmor -o /usr/share/keyrings/coral-edgetpu.gpg; "
    'echo "deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt '
    'coral-edgetpu-stable main" | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list; sudo apt-get update), then '
    "sudo apt-get install edgetpu-compiler. Elsewhere compile on such a machine (or Coral's Colab "
    "notebook) and copy the _edgetpu.tflite back"
)
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@dataclass
class OperationRow:
    operator: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED


@dataclass
class CompileSummary:
    compiler_version: str | None = None
    compile_ms: int | None = None
    on_chip_used_bytes: int | None = None
    on_chip_remaining_bytes: int | None = None
    off_chip_used_bytes: int | None = None
    subgraphs: int | None = None
    total_ops: int | None = None
    edgetpu_ops: int | None = None
    cpu_ops: int | None = None
    operations: list[OperationRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompileResult:
    model_path: Path  # the compiled <name>_edgetpu.tflite (in the compiler's output directory)
    log_path: Path | None
    summary: CompileSummary
    output: str  # everything the compiler printed


def find_compiler() -> str:
    """Path of ``edgetpu_compiler`` on PATH, or :class:`RuntimeMissing` with install instructions."""
    found = shutil.which(COMPILER)
    if found:
        return found
    machine = platform.machine().lower()
    where = (
        f" This machine is {platform.system()} {machine}, where it does not exist."
        if machine not in ("x86_64", "amd64") or platform.system() != "Linux"
        else ""
    )
    raise RuntimeMissing(
        f"{COMPILER} is not on PATH, so the model cannot be compiled for the Edge TPU.{where} {INSTALL_HINT}."
    )


def compile_model(
    model: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, timeout: float = COMPILE_TIMEOUT_S
) -> CompileResult:
    """Compile ``model`` into ``out_dir`` (``-s`` summary, ``-o`` directory); raise on any failure."""
    compiler = find_compiler()
    model_path = Path(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    argv = [compiler, "-s", "-o", str(out), str(model_path)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(
            f"{COMPILER} did not finish within {timeout:.0f} s on {model_path.name}: try a smaller model."
        ) from exc
    except OSError as exc:
        raise ConversionError(f"Cannot run {compiler}: {exc.strerror}. Reinstall edgetpu-compiler.") from exc
    text = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise ConversionError(
            f"{COMPILER} failed on {model_path.name} (exit {proc.returncode}): {_failure_reason(text)}. "
            "Run `edgecnn inspect MODEL --target edgetpu` to see which ops it cannot take."
        )
    summary = parse_summary(text)
    compiled = out / f"{model_path.stem}_edgetpu.tflite"
    if not compiled.is_file():
        raise ConversionError(
            f"{COMPILER} exited 0 but wrote no {compiled.name} in {out}: {_failure_reason(text)}."
        )
    log_file = out / f"{model_path.stem}_edgetpu.log"
    return CompileResult(compiled, log_file if log_file.is_file() else None, summary, text)


def parse_summary(text: str) -> CompileSummary:
    """The figures ``edgetpu_compiler -s`` prints; fields it did not print stay None."""
    summary = CompileSummary()
    patterns: dict[str, str] = {
        "compiler_version": r"Edge TPU Compiler version (\S+)",
        "compile_ms": r"compiled successfully in (\d+) ms",
        "on_chip_used_bytes": r"On-chip memory used for caching model parameters: ([\d.]+\s*[KMG]?i?B)",
        "on_chip_remaining_bytes": r"On-chip memory remaining for caching model parameters: ([\d.]+\s*[KMG]?i?B)",
        "off_chip_used_bytes": r"Off-chip memory used for streaming uncached model parameters: ([\d.]+\s*[KMG]?i?B)",
        "subgraphs": r"Number of Edge TPU subgraphs: (\d+)",
        "total_ops": r"Total number of operations: (\d+)",
        "edgetpu_ops": r"Number of operations that will run on Edge TPU: (\d+)",
        "cpu_ops": r"Number of operations that will run on CPU: (\d+)",
    }
    for key, pattern in patterns.items():
        match = re.search(pattern, text)
        if not match:
            continue
        value = match.group(1)
        if key == "compiler_version":
            setattr(summary, key, value)
        elif key.endswith("_bytes"):
            setattr(summary, key, parse_size(value))
        else:
            setattr(summary, key, int(value))
    summary.operations = _operation_table(text)
    if summary.operations:
        # Without CPU ops the compiler omits the two "Number of operations that will run" lines.
        if summary.edgetpu_ops is None:
            summary.edgetpu_ops = sum(row.count for row in summary.operations if row.mapped)
        if summary.cpu_ops is None:
            summary.cpu_ops = sum(row.count for row in summary.operations if not row.mapped)
    return summary


def parse_size(text: str) -> int:
    """``113.50KiB`` -> 116224 bytes (the compiler's binary units)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMG]?i?B)\s*", text)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def _operation_table(text: str) -> list[OperationRow]:
    rows = []
    in_table = False
    for line in text.splitlines():
        if re.fullmatch(r"\s*Operator\s+Count\s+Status\s*", line):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        match = re.fullmatch(r"\s*([A-Z][A-Z0-9_]*|[a-z][a-z0-9_-]*)\s+([0-9]+)\s+(\S.*?)\s*", line)
        if not match:
            in_table = False
            continue
        rows.append(OperationRow(match.group(1), int(match.group(2)), match.group(3)))
    return rows


def _failure_reason(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    interesting = [
        line
        for line in lines
        if not line.startswith("Edge TPU Compiler version") and "timeout timer" not in line
    ]
    return " ".join(interesting[:3])[:300] or "no output"
