"""What kind of TFLite file a model is, and how to get the one the Edge TPU compiler takes.

The compiler maps int8/uint8 ops only. A TFLite file that reaches ``inspect --target edgetpu`` or
``convert X.tflite --edgetpu`` was often made by another tool (Ultralytics writes four next to each other:
``_float32``, ``_float16``, ``_int8`` and ``_full_integer_quant``), so the useful advice is which file, or which
export option, in *that* tool gives a full-integer model, not an edgecnn flag that only applies to Keras input.

Kinds, from the flatbuffer alone:

- ``full-integer``: int8/uint8 activations, input and output;
- ``integer, float input/output``: int8 inside, float at the ends (QUANTIZE/DEQUANTIZE run on the CPU);
- ``dynamic-range``: int8 weights but float input and activations (what TensorFlow's ``Optimize.DEFAULT``
  without a representative dataset makes; Ultralytics' ``_int8.tflite`` from some versions);
- ``float16``: float16 weights, float activations;
- ``float32``: nothing quantized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import ai_edge_litert.schema_py_generated as schema

from edgecnn.metadata import ultralytics_metadata
from edgecnn.modelfile import ModelFile, opcode_name

_INT = (schema.TensorType.INT8, schema.TensorType.UINT8)
_FLOAT = schema.TensorType.FLOAT32


class Kind(str, Enum):
    FULL_INTEGER = "full-integer"
    INTEGER_FLOAT_IO = "integer, float input/output"
    DYNAMIC_RANGE = "dynamic-range"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


_DESCRIPTION = {
    Kind.FULL_INTEGER: "full-integer (int8/uint8 activations, input and output): what edgetpu_compiler takes",
    Kind.INTEGER_FLOAT_IO: (
        "integer inside with float input/output: the QUANTIZE/DEQUANTIZE at the ends run on the CPU"
    ),
    Kind.DYNAMIC_RANGE: (
        "dynamic-range quantized: int8 weights but float input and float activations, so the Edge TPU can "
        "run none of its ops"
    ),
    Kind.FLOAT16: "float16 weights with float activations: the Edge TPU can run none of its ops",
    Kind.FLOAT32: "float32, not quantized: the Edge TPU can run none of its ops",
}


@dataclass(frozen=True)
class ModelKind:
    """``kind`` of the file, ``producer`` ("ultralytics" when its export metadata says so) and its input side."""

    kind: Kind
    producer: str | None
    imgsz: int | None

    @property
    def full_integer(self) -> bool:
        return self.kind is Kind.FULL_INTEGER

    def describe(self) -> str:
        made = " (an Ultralytics export)" if self.producer == "ultralytics" else ""
        return _DESCRIPTION[self.kind] + made

    def fix(self, *, grouped_convolution: bool = False) -> str | None:
        """What to do, in the tool that made the file, to get a full-integer model; ``None`` when it is one.

        ``grouped_convolution``: the file has a grouped CONV_2D (YOLO11's attention). Ultralytics converts it
        without groups for ``format=edgetpu`` only (onnx2tf's disable_group_convolution, 8.3.149 and newer):
        its ``format=tflite int8=True`` files keep CONV_2D v6, which edgetpu_compiler cannot parse.
        """
        if self.kind is Kind.FULL_INTEGER:
            return None
        if self.producer == "ultralytics":
            size = f" imgsz={self.imgsz}" if self.imgsz else ""
            if grouped_convolution:
                return (
                    "re-export full-integer from Ultralytics 8.3.149 or newer: yolo export model=best.pt "
                    f"format=edgetpu{size} data=your_data.yaml (it converts without grouped convolutions and "
                    "compiles *_full_integer_quant.tflite; format=tflite int8=True keeps CONV_2D v6, which "
                    "edgetpu_compiler cannot parse)"
                )
            return (
                "re-export full-integer from Ultralytics: yolo export model=best.pt format=edgetpu"
                f"{size} data=your_data.yaml (it compiles *_full_integer_quant.tflite), or format=tflite "
                f"int8=True{size} data=your_data.yaml and give that *_full_integer_quant.tflite to "
                "edgecnn convert --edgetpu"
            )
        if self.kind is Kind.INTEGER_FLOAT_IO:
            return (
                "re-convert with integer input and output (TensorFlow: converter.inference_input_type = "
                "converter.inference_output_type = tf.int8); from a Keras model, edgecnn convert --quantize "
                "int8 --io int8 does it"
            )
        return (
            "re-convert full-integer: TensorFlow's converter with a representative_dataset, "
            "target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] and inference_input_type = "
            "inference_output_type = tf.int8; from a Keras model, edgecnn convert --quantize int8 --io int8"
        )


def model_kind(model_file: ModelFile) -> ModelKind:
    """Classify ``model_file`` (its first subgraph) by the types of its weights and activations."""
    model = model_file.model
    graph = model.subgraphs[0]
    tensors = graph.tensors or []
    constant = [_is_constant(model, t) for t in tensors]
    hybrid = False
    for op in graph.operators or []:
        name, _ = opcode_name(model.operatorCodes[op.opcodeIndex])
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        float_in = any(tensors[i].type == _FLOAT and not constant[i] for i in ins)
        hybrid |= float_in and any(tensors[i].type in _INT and constant[i] for i in ins)
    any_int = any(t.type in _INT for t in tensors)
    if any(t.type == schema.TensorType.FLOAT16 for t in tensors):
        kind = Kind.FLOAT16
    elif hybrid:
        kind = Kind.DYNAMIC_RANGE
    elif not any_int:
        kind = Kind.FLOAT32
    elif not _integer_io(model_file):
        kind = Kind.INTEGER_FLOAT_IO
    else:
        kind = Kind.FULL_INTEGER
    ultra = ultralytics_metadata(model_file.appended)
    return ModelKind(kind, "ultralytics" if ultra is not None else None, _imgsz(model_file, ultra))


def smaller_imgsz(imgsz: int, excess: float, stride: int = 32) -> int | None:
    """The largest multiple of ``stride`` at which tensors ``excess`` times too big fit, or ``None``.

    The size-limited tensors of a detector's head (per-scale maps, the anchors axis) grow with the input
    area, so they fit when the side shrinks by ``sqrt(excess)``.
    """
    if excess <= 1:
        return imgsz
    side = int(imgsz / math.sqrt(excess)) // stride * stride
    return side if side >= stride else None


def _integer_io(model_file: ModelFile) -> bool:
    return all(t.dtype in ("INT8", "UINT8") for t in [*model_file.inputs, *model_file.outputs])


def _imgsz(model_file: ModelFile, ultra: dict[str, Any] | None) -> int | None:
    if ultra is not None:
        size = ultra.get("imgsz")
        if isinstance(size, list) and size and all(isinstance(v, int) for v in size):
            return max(size)
        if isinstance(size, int):
            return size
    shapes = [list(t.shape) for t in model_file.inputs]
    if len(shapes) == 1 and len(shapes[0]) == 4:
        return int(max(shapes[0][1], shapes[0][2]))
    return None


def _is_constant(model: Any, tensor: Any) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0
