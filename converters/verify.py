"""Verification: the float Keras model vs the converted model, on held-out images.

The converted model runs through edgecnn's own runtime (:func:`edgecnn.model.open_model`), fed the
same uint8 images a camera would give it: the embedded metadata (colour, mean/std, resize) and the input
quantization are exercised exactly as on the device. The Keras model gets ``(pixel - mean) / std``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from edgecnn.model import open_model
from edgecnn.modelfile import ModelFile
from edgecnn.nativelog import native_chatter_filtered


@dataclass
class Verification:
    source: str
    samples: int
    float_accuracy: float | None  # None when the verification images carry no labels
    converted_accuracy: float | None
    accuracy_drop_pp: float | None  # percentage points lost by conversion
    top1_agreement: float  # fraction of images where both models pick the same class
    mean_abs_score_diff: float  # mean |p_float - p_converted| over images and classes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keras_scores(model: Any, images: np.ndarray, mean: Any, std: Any) -> np.ndarray:
    x = (images.astype(np.float32) - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


def runtime_scores(model_file: ModelFile, images: np.ndarray, colour: str) -> np.ndarray:
    """Probabilities from the converted model, one uint8 image at a time, through the device runtime."""
    with native_chatter_filtered():  # LiteRT's XNNPACK banner, mid-report; CPU only, no delegate to crash
        classifier = open_model(model_file, device="cpu", threads=1)
    scores = []
    for image in images:
        frame = image[..., 0] if colour == "GRAY" else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        scores.append(classifier.infer(classifier.preprocess(frame)))
    return np.stack(scores).astype(np.float32)


def compare(
    float_scores: np.ndarray, converted_scores: np.ndarray, labels: np.ndarray | None, source: str
) -> Verification:
    if float_scores.shape != converted_scores.shape:
        raise ValueError(f"score shapes differ: {float_scores.shape} vs {converted_scores.shape}")
    top_float, top_conv = float_scores.argmax(axis=1), converted_scores.argmax(axis=1)
    float_acc = conv_acc = drop = None
    if labels is not None and len(labels):
        float_acc = round(float(np.mean(top_float == labels)), 5)
        conv_acc = round(float(np.mean(top_conv == labels)), 5)
        drop = round((float_acc - conv_acc) * 100, 3)
    return Verification(
        source=source,
        samples=len(float_scores),
        float_accuracy=float_acc,
        converted_accuracy=conv_acc,
        accuracy_drop_pp=drop,
        top1_agreement=round(float(np.mean(top_float == top_conv)), 5),
        mean_abs_score_diff=round(float(np.mean(np.abs(float_scores - converted_scores))), 6),
    )
