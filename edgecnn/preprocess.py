"""Turn a BGR frame (OpenCV's order) into the tensor a model expects, as its metadata says.

:func:`prepare` also returns the :class:`Transform` it applied (crop, scale, letterbox border), so a task
that reports positions (detection boxes) maps them back to pixels of the original frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgecnn.errors import ModelError, UsageError
from edgecnn.metadata import CROP_CHOICES, ModelMetadata
from edgecnn.normalisation import InputNormalisation, input_normalisation

_DTYPES = {"uint8": np.uint8, "int8": np.int8, "float32": np.float32, "int16": np.int16}
_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}


@dataclass(frozen=True)
class InputSpec:
    """Everything needed to build the input tensor; computed once per model, used per frame."""

    height: int
    width: int
    channels: int
    dtype: Any
    colour: str
    normalisation: InputNormalisation  # pixel -> tensor value, and the rule that chose it
    interpolation: int
    crop: str
    letterbox: bool = False  # keep the aspect ratio and pad (Ultralytics' convention) instead of stretching
    # the normalisation's table as cv2.LUT takes it; None: the pixels are the tensor (uint8 raw pixels)
    lut: np.ndarray | None = None

    @classmethod
    def from_details(
        cls,
        details: dict[str, Any],
        meta: ModelMetadata,
        crop: str | None = None,
        *,
        letterbox: bool = False,
    ) -> InputSpec:
        shape = [int(d) for d in details["shape"]]
        if len(shape) != 4 or shape[0] != 1:
            raise ModelError(
                f"Unsupported input shape {shape}: edgecnn runs image models with a 1xHxWxC input. "
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
        norm = input_normalisation(dtype, scale, zero_point, channels, meta)
        identity = norm.raw and dtype == np.uint8
        return cls(
            height=shape[1],
            width=shape[2],
            channels=channels,
            dtype=dtype,
            colour=colour,
            normalisation=norm,
            lut=None if identity else np.ascontiguousarray(norm.table.reshape(1, 256, channels)),
            interpolation=_INTERPOLATION.get(meta.resize, cv2.INTER_LINEAR),
            crop=(crop or meta.crop).lower(),
            letterbox=letterbox,
        )


LETTERBOX_FILL = 114  # the grey Ultralytics pads with


@dataclass(frozen=True)
class Transform:
    """How a frame became the input tensor: crop at (``offset_x``, ``offset_y``), scale by ``scale_x``/``scale_y``
    (input pixels per frame pixel), then a letterbox border of ``pad_x``/``pad_y`` input pixels.

    ``frame = (input - pad) / scale + offset``: :meth:`to_frame` applies it to boxes.
    """

    frame_width: int
    frame_height: int
    input_width: int
    input_height: int
    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """``[..., 4]`` boxes (x1, y1, x2, y2) in input pixels -> frame pixels, clipped to the frame."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[..., 0::2] = (xyxy[..., 0::2] - self.pad_x) / self.scale_x + self.offset_x
        out[..., 1::2] = (xyxy[..., 1::2] - self.pad_y) / self.scale_y + self.offset_y
        np.clip(out[..., 0::2], 0, self.frame_width, out=out[..., 0::2])
        np.clip(out[..., 1::2], 0, self.frame_height, out=out[..., 1::2])
        return out


def _center_crop_box(h: int, w: int, aspect: float) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the largest centred crop with the given width/height ratio."""
    if w / h > aspect:
        new_w = round(h * aspect)
        return (w - new_w) // 2, 0, new_w, h
    new_h = round(w / aspect)
    return 0, (h - new_h) // 2, w, new_h


def center_crop(frame: np.ndarray, aspect: float) -> np.ndarray:
    """Largest centred crop with the given width/height ratio."""
    x, y, cw, ch = _center_crop_box(frame.shape[0], frame.shape[1], aspect)
    return frame[y : y + ch, x : x + cw]


def to_tensor(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR or grayscale uint8 image -> 1xHxWxC tensor of the model's dtype."""
    return prepare(frame_bgr, spec)[0]


def prepare(frame_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Transform]:
    """BGR or grayscale uint8 image -> (1xHxWxC tensor of the model's dtype, the transform applied).

    Crop and resize come before colour conversion: both are linear per channel, so the result is the same
    (up to rounding) while the conversion touches a 28x28 image instead of a 640x480 camera frame.
    """
    image = frame_bgr
    fh, fw = image.shape[:2]
    ox = oy = 0
    if spec.crop == "center":
        ox, oy, cw, ch = _center_crop_box(fh, fw, spec.width / spec.height)
        image = image[oy : oy + ch, ox : ox + cw]
    h, w = image.shape[:2]
    sx, sy = spec.width / w, spec.height / h
    px = py = 0
    if spec.letterbox and (w != spec.width or h != spec.height):
        r = min(sx, sy)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        px, py = (spec.width - nw) // 2, (spec.height - nh) // 2
        resized = cv2.resize(image, (nw, nh), interpolation=spec.interpolation)
        image = cv2.copyMakeBorder(
            resized,
            py,
            spec.height - nh - py,
            px,
            spec.width - nw - px,
            cv2.BORDER_CONSTANT,
            value=(LETTERBOX_FILL,) * 4,
        )
        sx, sy = nw / w, nh / h
    elif h != spec.height or w != spec.width:
        image = cv2.resize(image, (spec.width, spec.height), interpolation=spec.interpolation)
    transform = Transform(fw, fh, spec.width, spec.height, sx, sy, float(ox), float(oy), float(px), float(py))
    return _to_array(image, spec), transform


def _to_array(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if spec.colour == "GRAY":
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if spec.colour == "RGB" else cv2.COLOR_GRAY2BGR)
    elif spec.colour == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:  # frames are 8-bit; anything else is clipped to 0-255 first
        image = np.clip(image, 0, 255).astype(np.uint8)
    if spec.lut is not None:  # normalise (and quantize) through the 256-entry table: edgecnn.normalisation
        image = cv2.LUT(image, spec.lut)
    return np.ascontiguousarray(image.reshape(1, spec.height, spec.width, spec.channels))
