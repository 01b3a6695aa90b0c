"""Named flatbuffer-level mutations of a real model, via the schema's object API (never by hand).

Each takes a parsed ``schema.ModelT`` and changes it in place; :func:`mutated` packs the result. The unit
tests use the named ones (the classes of bad file the issue lists); the fuzz tests draw from them and from
random field edits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ai_edge_litert.schema_py_generated as schema
import flatbuffers
import numpy as np


def load(data: bytes) -> Any:
    return schema.ModelT.InitFromPackedBuf(data, 0)


def pack(model: Any) -> bytes:
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _ints(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def _graph(m: Any) -> Any:
    return m.subgraphs[0]


def _output_tensor(m: Any) -> Any:
    return _graph(m).tensors[int(_graph(m).outputs[0])]


def _set_output_scale_zero(m: Any) -> None:
    _output_tensor(m).quantization.scale = np.asarray([0.0], dtype=np.float32)


MUTATIONS: dict[str, Callable[[Any], None]] = {
    "input index past the tensor table": lambda m: setattr(
        _graph(m), "inputs", _ints([len(_graph(m).tensors)])
    ),
    "input index -1": lambda m: setattr(_graph(m), "inputs", _ints([-1])),
    "output index past the tensor table": lambda m: setattr(
        _graph(m), "outputs", _ints([len(_graph(m).tensors) + 5])
    ),
    "output index -1": lambda m: setattr(_graph(m), "outputs", _ints([-1])),
    "no outputs": lambda m: setattr(_graph(m), "outputs", _ints([])),
    "no inputs": lambda m: setattr(_graph(m), "inputs", _ints([])),
    "opcode index past the opcode table": lambda m: setattr(
        _graph(m).operators[0], "opcodeIndex", len(m.operatorCodes) + 3
    ),
    "tensor table shorter than its users": lambda m: setattr(_graph(m), "tensors", _graph(m).tensors[:3]),
    "operator list emptied": lambda m: setattr(_graph(m), "operators", []),
    "operator input past the tensor table": lambda m: setattr(
        _graph(m).operators[0], "inputs", _ints([10_000])
    ),
    "tensor buffer past the buffer table": lambda m: setattr(
        _graph(m).tensors[1], "buffer", len(m.buffers) + 1
    ),
    "output is the input tensor": lambda m: setattr(_graph(m), "outputs", _graph(m).inputs),
    "output quantization scale 0": _set_output_scale_zero,
    "negative dimension": lambda m: setattr(_output_tensor(m), "shape", _ints([1, -4])),
    "huge output shape": lambda m: setattr(_output_tensor(m), "shape", _ints([1 << 20, 1 << 20])),
    "no subgraphs": lambda m: setattr(m, "subgraphs", []),
    "constant data does not fit its shape": lambda m: setattr(
        m.buffers[int(_graph(m).operators[0].inputs[1])], "data", np.zeros(3, dtype=np.uint8)
    ),
}


def mutated(data: bytes, name: str) -> bytes:
    model = load(data)
    MUTATIONS[name](model)
    return pack(model)
