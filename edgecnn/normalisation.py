"""Which numbers a model's input tensor gets for a pixel: one rule per model, decided once, shown by ``inspect``.

The real value the model expects is ``(pixel - mean) / std``, with mean and std told by the model, in this
order: edgecnn's metadata, TFLite Support's ``NormalizationOptions``, Ultralytics' export (pixel/255, whatever
the input dtype). An integer input then holds that real value quantized with the input tensor's OWN scale and
zero point (``q = round(real / scale) + zero_point``), as TFLite Support's metadata schema prescribes. This is
what Ultralytics' full-integer exports need: their int8 input is quantized with e.g. scale 0.018658, zero
point -14, so feeding ``pixel - 128`` (right only for scale 1/255, zero point -128) misreads every image.

When the model says nothing:

- **float input**: pixel/255, [0, 1] (the common convention).
- **uint8 input**: raw pixels, Coral's convention (the input quantization encodes the normalisation).
- **int8 (or int16) input**: the tensor's real range ``scale * (qmin - zero_point) .. scale * (qmax - zero_point)``
  is what it was calibrated on. If that range is [0, 1], [-1, 1] or [0, 255] (each end within 5 % of the
  span), pixels are normalised onto it; otherwise pixel/255 is assumed (calibration ranges of a model that
  expects [0, 1] need not be [0, 1]). Either way the value is quantized with the tensor's scale and zero
  point; for scale 1/255 and zero point -128 that is ``pixel - 128``.

The outcome is a table of 256 tensor values per channel (pixel value -> tensor value) that
:mod:`edgecnn.preprocess` applies with ``cv2.LUT``: the same numbers as the formula, without per-pixel
float arithmetic. Where the table is within one quantization step of the raw pixels (``pixel - 128`` for
int8), the raw pixels are fed exactly: Coral's uint8 MobileNets say mean = std = 127.5 with scale 1/128 and
zero point 128, which is ``q = 1.0039 * pixel``, and pycoral and TFLite Support's Task Library feed them raw
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.adapters import quantize
from edgecnn.errors import ModelError
from edgecnn.metadata import ModelMetadata

SOURCES = {
    "edgecnn": "edgecnn metadata",
    "tflite-support": "TFLite Support NormalizationOptions",
    "ultralytics": "Ultralytics",
}
# Real ranges an integer input's quantization is matched against (int8/int16 with no normalisation told).
IMAGE_RANGES: tuple[tuple[float, float, float, float], ...] = (  # (low, high, mean, std)
    (0.0, 1.0, 0.0, 255.0),
    (-1.0, 1.0, 127.5, 127.5),
    (0.0, 255.0, 0.0, 1.0),
)
RANGE_TOLERANCE = 0.05  # of the range's span, at each end


@dataclass(frozen=True, eq=False)
class InputNormalisation:
    """How pixels (0-255, per channel) become the input tensor's values, and why.

    ``mean``/``std`` of None: raw pixels (uint8; ``pixel - 128`` for int8). ``source`` is where the
    normalisation came from: edgecnn, tflite-support, ultralytics, tensor-range (matched from the int input's
    quantization) or default.
    """

    dtype: str  # float32, uint8, int8, int16
    scale: float | None
    zero_point: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    source: str
    raw: bool  # the tensor gets the pixels themselves (uint8) or pixel - 128 (int8), no arithmetic
    rule: str  # one line for people: what is fed and why
    table: np.ndarray = field(repr=False)  # (256, channels) of ``dtype``: pixel value -> tensor value

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "source": self.source,
            "raw_pixels": self.raw,
            "rule": self.rule,
        }


def _numbers(value: float | list[float] | None, channels: int, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = tuple(float(v) for v in (value if isinstance(value, list) else [value]))
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ModelError(
            f"The model's normalisation {name} has {len(values)} values for an input of {channels} channels: "
            "give one value or one per channel."
        )
    return values


def _one(values: tuple[float, ...]) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else "[" + ", ".join(f"{v:g}" for v in values) + "]"


def formula(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    """``pixel/255``, ``(pixel - 127.5) / 127.5``: the normalisation as people write it."""
    m, s = _one(mean), _one(std)
    if s == "1":
        return "pixel" if m == "0" else f"pixel - {m}"
    return f"pixel/{s}" if m == "0" else f"(pixel - {m}) / {s}"


def _tensor_range(dtype: np.dtype[Any], scale: float, zero_point: int) -> tuple[float, float]:
    info = np.iinfo(dtype)
    return scale * (info.min - zero_point), scale * (info.max - zero_point)


def _matched_range(
    dtype: np.dtype[Any], scale: float, zero_point: int
) -> tuple[float, float, float, float] | None:
    low, high = _tensor_range(dtype, scale, zero_point)
    for candidate in IMAGE_RANGES:
        lo, hi = candidate[:2]
        slack = RANGE_TOLERANCE * (hi - lo)
        if abs(low - lo) <= slack and abs(high - hi) <= slack:
            return candidate
    return None


def _raw_table(dtype: np.dtype[Any], channels: int) -> np.ndarray:
    pixels = np.arange(256, dtype=np.int16) - (128 if dtype == np.int8 else 0)
    return np.repeat(pixels[:, None], channels, axis=1).astype(dtype)


def input_normalisation(
    dtype: Any, scale: float | None, zero_point: int, channels: int, meta: ModelMetadata
) -> InputNormalisation:
    """The rule for an input of ``dtype`` (numpy or TFLite name) quantized with ``scale``/``zero_point``."""
    dt = np.dtype(dtype.lower() if isinstance(dtype, str) else dtype)
    scale = float(scale) if scale else None
    zero_point = int(zero_point) if scale else 0
    integer = np.issubdtype(dt, np.integer)
    quant = f"{dt.name} scale {scale:.6g} zero point {zero_point}" if integer and scale else dt.name
    mean = _numbers(meta.mean, channels, "mean")
    std = _numbers(meta.std, channels, "std")
    if mean is not None and std is not None:
        source = meta.norm_source or "edgecnn"
        told = f"{SOURCES.get(source, source)} {formula(mean, std)}"
    elif not integer:
        mean, std, source = (0.0,) * channels, (255.0,) * channels, "default"
        told = "the model does not say: pixel/255 assumed"
    elif dt == np.uint8 or not scale:
        source = "default"
        raw_text = {"uint8": "raw pixels (Coral's convention)", "int8": "pixel - 128"}.get(
            dt.name, "raw pixels"
        )
        told = f"the model does not say: {raw_text}"
    else:
        matched = _matched_range(dt, scale, zero_point)
        if matched is not None:
            lo, hi, m, s = matched
            mean, std, source = (m,) * channels, (s,) * channels, "tensor-range"
            told = f"the model does not say; its input range is [{lo:g}, {hi:g}]: {formula(mean, std)}"
        else:
            low, high = _tensor_range(dt, scale, zero_point)
            mean, std, source = (0.0,) * channels, (255.0,) * channels, "default"
            told = f"the model does not say (input range {low:.3g}..{high:.3g}): pixel/255 assumed"
    if mean is None or std is None:  # raw pixels, told or by convention
        return InputNormalisation(dt.name, scale, zero_point, None, None, source, True, f"{quant}; {told}",
                                  _raw_table(dt, channels))  # fmt: skip
    pixels = np.arange(256, dtype=np.float32)[:, None]
    real = (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    if not integer:
        return InputNormalisation(dt.name, None, 0, mean, std, source, False, f"{quant}; {told}",
                                  real.astype(dt))  # fmt: skip
    if scale is None:
        raise ModelError("Integer input tensor without quantization parameters: cannot map pixels to it.")
    table = quantize(real, scale, zero_point, dt)
    raw = _raw_table(dt, channels)
    same = dt in (np.uint8, np.int8) and int(np.abs(table.astype(np.int32) - raw).max()) <= 1
    how = "quantized with the tensor's scale/zero point"
    if same:
        how += (
            " (within one step of " + ("raw pixels" if dt == np.uint8 else "pixel - 128") + ": fed exactly)"
        )
        table = raw
    return InputNormalisation(dt.name, scale, zero_point, mean, std, source, same, f"{quant}; {told}, {how}",
                              table)  # fmt: skip
