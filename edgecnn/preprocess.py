"""Turn a BGR frame (OpenCV's order) into the tensor a model expects, as its metadata says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgecnn.adapters import quantize
from edgecnn.errors import ModelError, UsageError
from edgecnn.metadata import CROP_CHOICES, ModelMetadata

_DTYPES = {"uint8": np.uint8, "int8": np.int8, "float32": np.float32, "int16": np.int16}
_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}


@dataclass(frozen=True)
class InputSpec:
    """Everything needed to build the input tensor; computed once per model, used per frame."""

    height: int
    width: int
    channels: int
    dtype: Any
    scale: float | None
    zero_point: int
    colour: str
    mean: np.ndarray | None
    std: np.ndarray | None
    interpolation: int
    crop: str

    @classmethod
    def from_details(cls, details: dict[str, Any], meta: ModelMetadata, crop: str | None = None) -> InputSpec:
        shape = [int(d) for d in details["shape"]]
        if len(shape) != 4 or shape[0] != 1:
            raise ModelError(
                f"Unsupported input shape {shape}: edgecnn classifies images with a 1xHxWxC input. "
                "Re-export the model with a fixed batch of 1 (edgecnn convert does)."
            )
        dtype = np.dtype(details["dtype"])
        if dtype.name not in _DTYPES:
            raise ModelError(
                f"Unsupported input dtype {dtype.name}: edgecnn feeds uint8, int8 or float32 inputs."
            )
        scale, zero_point = details["quantization"]
        channels = shape[3]
        colour = meta.colour if channels == 3 else "GRAY"
        if channels not in (1, 3):
            raise ModelError(
                f"Unsupported input with {channels} channels: edgecnn feeds 1 (GRAY) or 3 (RGB/BGR)."
            )
        if crop is not None and crop.lower() not in CROP_CHOICES:
            raise UsageError(f"--crop {crop!r} is not a choice: use {' or '.join(CROP_CHOICES)}.")
        mean = None if meta.mean is None else np.asarray(meta.mean, dtype=np.float32)
        std = None if meta.std is None else np.asarray(meta.std, dtype=np.float32)
        return cls(
            height=shape[1],
            width=shape[2],
            channels=channels,
            dtype=dtype,
            scale=float(scale) if scale else None,
            zero_point=int(zero_point),
            colour=colour,
            mean=mean,
            std=std,
            interpolation=_INTERPOLATION.get(meta.resize, cv2.INTER_LINEAR),
            crop=(crop or meta.crop).lower(),
        )


def center_crop(frame: np.ndarray, aspect: float) -> np.ndarray:
    """Largest centred crop with the given width/height ratio."""
    h, w = frame.shape[:2]
    if w / h > aspect:
        new_w = round(h * aspect)
        x = (w - new_w) // 2
        return frame[:, x : x + new_w]
    new_h = round(w / aspect)
    y = (h - new_h) // 2
    return frame[y : y + new_h]


def to_tensor(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR or grayscale uint8 image -> 1xHxWxC tensor of the model's dtype.

    Crop and resize come before colour conversion: both are linear per channel, so the result is the same
    (up to rounding) while the conversion touches a 28x28 image instead of a 640x480 camera frame.
    """
    image = frame_bgr
    if spec.crop == "center":
        image = center_crop(image, spec.width / spec.height)
    if image.shape[0] != spec.height or image.shape[1] != spec.width:
        image = cv2.resize(image, (spec.width, spec.height), interpolation=spec.interpolation)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if spec.colour == "GRAY":
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if spec.colour == "RGB" else cv2.COLOR_GRAY2BGR)
    elif spec.colour == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    image = image.reshape(1, spec.height, spec.width, spec.channels)
    if spec.mean is None:
        # Raw pixels: what Coral's uint8 models expect (their input quantization encodes the normalization).
        if spec.dtype == np.uint8:
            return np.ascontiguousarray(image)
        if spec.dtype == np.int8:
            return (image.astype(np.int16) - 128).astype(np.int8)
        return image.astype(spec.dtype)
    real = (image.astype(np.float32) - spec.mean) / spec.std
    if spec.dtype == np.float32:
        return real.astype(np.float32, copy=False)
    if spec.scale is None:
        raise ModelError("Integer input tensor without quantization parameters: cannot map pixels to it.")
    return quantize(real, spec.scale, spec.zero_point, spec.dtype)
