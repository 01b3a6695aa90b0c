"""Keras model -> TFLite flatbuffer: fixed batch of 1, then int8 / float16 / dynamic-range / float32.

Why the batch re-wrap: Keras exports a dynamic batch dimension, which surrounds Flatten with
SHAPE/STRIDED_SLICE/PACK ops and leaves ``-1`` in the shape signatures; the Edge TPU compiler rejects
dynamic tensors and the device gains nothing from them. Calling the model on ``keras.Input(shape,
batch_size=1)`` gives static shapes everywhere; for the seed CNN (TF 2.21) the int8 graph is just
CONV_2D v3, MAX_POOL_2D v2, RESHAPE, FULLY_CONNECTED v4 and SOFTMAX v2.

TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConversionError, ModelError, UsageError, one_line
from edgecnn.modelfile import ModelFile, opcode_name, parse_model
from edgecnn.nativelog import native_chatter_filtered
from edgecnn.safeio import FileKind, check_file

log = logging.getLogger(__name__)


class Quantization(str, Enum):
    INT8 = "int8"  # full-integer: int8 weights and activations, needs a representative dataset
    FLOAT16 = "float16"  # float16 weights, float compute (GPU delegates); half the size
    DYNAMIC = "dynamic"  # int8 weights, float activations quantized on the fly
    FLOAT32 = "float32"  # no quantization: the reference


class IOType(str, Enum):
    INT8 = "int8"
    UINT8 = "uint8"
    FLOAT32 = "float32"


_SHAPE_OPS = ("QUANTIZE", "DEQUANTIZE")


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """Load a ``.keras`` (or legacy ``.h5``) model without its optimizer, with typed errors."""
    p = Path(path)
    if not p.exists():
        raise ModelError(
            f"Keras model not found: {p}. Pass the model.keras written by `edgecnn train` (e.g. runs/digits/model.keras)."
        )
    if p.is_dir():
        hint = " (it holds model.keras)" if (p / "model.keras").exists() else ""
        raise ModelError(f"{p} is a directory{hint}: pass the .keras file itself.")
    if p.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ModelError(
            f"{p} is not a Keras model file: pass a .keras file (edgecnn train writes model.keras)."
        )
    check_file(p, FileKind.KERAS)  # a FIFO or a device named model.keras must not hang the loader
    from edgecnn.ml.deps import keras

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return keras().models.load_model(p, compile=False)
    except Exception as exc:  # zip errors, unknown layers, h5 errors: all mean "not a model we can read"
        reason = one_line(exc, 200)
        raise ModelError(
            f"Cannot load Keras model {p}: {reason}. Re-save it with model.save('model.keras') (Keras 3)."
        ) from exc


def image_input_shape(model: Any) -> tuple[int, int, int]:
    """(H, W, C) of a single-image-input classifier, or a :class:`ConversionError` naming the shape."""
    inputs = model.inputs if isinstance(model.inputs, list) else [model.inputs]
    if len(inputs) != 1:
        raise ConversionError(
            f"The model has {len(inputs)} inputs: edgecnn converts single-input image classifiers."
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]) or shape[3] not in (1, 3):
        raise ConversionError(
            f"Wrong input shape {_shape_text(shape)}: edgecnn converts image classifiers with a "
            "(batch, height, width, 1 or 3) input and fixed height/width. Add a keras.Input((H, W, C)) "
            "and reshape inside the model if it takes flat vectors."
        )
    if shape[0] not in (None, 1):
        raise ConversionError(
            f"Input shape {_shape_text(shape)} fixes a batch of {shape[0]}: save the model with a "
            "free batch dimension (keras.Input((H, W, C)))."
        )
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    if len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        shapes = ", ".join(_shape_text(tuple(o.shape)) for o in outputs)
        raise ConversionError(
            f"Output shape {shapes} is not (batch, classes): edgecnn converts classifiers with one score "
            "vector output."
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def _shape_text(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def num_classes(model: Any) -> int:
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    return int(outputs[0].shape[-1])


def ends_with_softmax(model: Any) -> bool:
    layer = model.layers[-1] if model.layers else None
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or type(layer).__name__ == "Softmax"


def fixed_batch(model: Any) -> Any:
    """The same layers (shared weights) behind ``keras.Input(shape, batch_size=1)``: static shapes."""
    from edgecnn.ml.deps import keras

    k = keras()
    height, width, channels = image_input_shape(model)
    inputs = k.Input((height, width, channels), batch_size=1, name="image")
    return k.Model(inputs, model(inputs), name=f"{model.name}_batch1")


def to_tflite(
    model: Any,
    *,
    quantize: Quantization | str = Quantization.INT8,
    io_type: IOType | str = IOType.INT8,
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
) -> bytes:
    """Convert a (fixed-batch) Keras model; int8 needs ``representative`` (normalized float samples).

    Raises :class:`ConversionError` naming the layer when int8 conversion leaves a layer in float (the
    converter silently keeps ops without an int8 kernel, e.g. SIN, between DEQUANTIZE/QUANTIZE).
    """
    quantize, io_type = Quantization(quantize), IOType(io_type)
    if quantize is not Quantization.INT8 and io_type is not IOType.FLOAT32:
        raise UsageError(
            f"--io {io_type.value} needs --quantize int8: {quantize.value} models take float32 input."
        )
    from edgecnn.ml.deps import tensorflow

    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize is Quantization.INT8:
        if representative is None:
            raise ConversionError("int8 quantization needs a representative dataset (calibration images).")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[
            io_type.value
        ]
        converter.inference_output_type = converter.inference_input_type
    elif quantize is Quantization.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize is Quantization.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), native_chatter_filtered(), warnings.catch_warnings():
            # The converter warns that int8 inputs carry no statistics: expected, the input scale comes
            # from the representative dataset.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs", category=UserWarning)
            data = bytes(converter.convert())
    except Exception as exc:
        raise ConversionError(_converter_failure(exc, model)) from exc
    finally:
        if chatter.getvalue().strip():
            log.debug("converter output:\n%s", chatter.getvalue())
    if quantize is Quantization.INT8:
        float_ops = float_operators(parse_model(data))
        if float_ops:
            named = ", ".join(f"layer {_layer_for(t, model)!r} ({op})" for op, t in float_ops)
            raise ConversionError(
                f"int8 quantization left {named} in float: no int8 kernel exists for it. Replace that layer "
                "with one TFLite runs in int8, or convert with --quantize dynamic or float16 (CPU only)."
            )
    return data


def float_operators(model_file: ModelFile) -> list[tuple[str, str]]:
    """(op, output tensor name) of compute ops working on float32 tensors, skipping (de)quantize shims."""
    result = []
    model = model_file.model
    float32 = 0  # schema.TensorType.FLOAT32
    for graph in model.subgraphs:
        for op in graph.operators or []:
            name, _ = opcode_name(model.operatorCodes[op.opcodeIndex])
            if name in _SHAPE_OPS:
                continue
            tensors = [graph.tensors[i] for i in list(op.outputs if op.outputs is not None else [])]
            if any(t.type == float32 for t in tensors):
                out_name = (
                    tensors[0].name.decode() if isinstance(tensors[0].name, bytes) else str(tensors[0].name)
                )
                result.append((name, out_name))
    return result


def _layer_for(tensor_name: str, model: Any) -> str:
    """Map a TFLite tensor name such as ``functional_1/sequential_1/wave_1/Sin`` to the Keras layer ``wave``.

    The deepest path component that names a leaf layer wins (Keras adds ``_N`` suffixes to name scopes).
    """
    names = _all_layer_names(model)
    for part in reversed(tensor_name.split("/")):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in names:
                return candidate
    return tensor_name


def _all_layer_names(model: Any) -> set[str]:
    """Names of leaf layers (not of nested models), at any depth."""
    names = set()
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            names |= _all_layer_names(layer)
        else:
            names.add(layer.name)
    return names


def _converter_failure(exc: BaseException, model: Any) -> str:
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)' op", text)))
    known = _all_layer_names(model)
    # The converter's locations quote the TF op path, e.g. "functional_1/wave_1/Sin@__inference_...".
    layers = sorted(
        {name for path in re.findall(r'"([^"]+/[^"]+)"', text) if (name := _layer_for(path, model)) in known}
    )
    first = next((line.strip() for line in text.splitlines() if "error" in line.lower()), text.strip()[:200])
    detail = f" (ops: {', '.join(ops)})" if ops else ""
    where = f" in layer(s) {', '.join(repr(name) for name in layers)}" if layers else ""
    return (
        f"TFLite conversion failed{where}{detail}: {one_line(first, 300)}. Use layers TFLite supports "
        "as builtin ops (Conv2D, DepthwiseConv2D, pooling, Dense, ReLU, Softmax...)."
    )
