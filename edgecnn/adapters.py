"""Pure functions over an interpreter-like object: set the input, read scores, pick the top k.

Modelled on pycoral's adapters; anything with ``get_input_details``/``set_tensor``/``get_tensor`` works,
so tests can pass a real interpreter of any runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Class:
    id: int
    label: str
    score: float


def input_details(interpreter: Any) -> dict[str, Any]:
    return interpreter.get_input_details()[0]  # type: ignore[no-any-return]


def input_size(interpreter: Any) -> tuple[int, int]:
    """(width, height) of the first input."""
    shape = input_details(interpreter)["shape"]
    return int(shape[2]), int(shape[1])


def quantize(real: np.ndarray, scale: float, zero_point: int, dtype: np.dtype[Any]) -> np.ndarray:
    """q = round(real / scale) + zero_point, clipped to the integer type's range."""
    info = np.iinfo(dtype)
    q = np.rint(real / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """real = scale * (q - zero_point), computed in float32 so int8 - zero_point cannot overflow."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def set_input(interpreter: Any, tensor: np.ndarray) -> None:
    interpreter.set_tensor(input_details(interpreter)["index"], tensor)


def output_scores(interpreter: Any) -> np.ndarray:
    """Dequantized scores of the first output, flattened."""
    details = interpreter.get_output_details()[0]
    raw = interpreter.get_tensor(details["index"]).reshape(-1)
    scale, zero_point = details["quantization"]
    if np.issubdtype(raw.dtype, np.integer) and scale:
        return dequantize(raw, scale, zero_point)
    return raw.astype(np.float32, copy=False)


def looks_like_probabilities(scores: np.ndarray) -> bool:
    """Softmax-like output: all in [0, 1] and summing to about 1.

    Quantized softmax rounds most of a 1001-class output to 0 (a uint8 MobileNet sums to ~0.95), so the sum
    check is loose; the graph check in ``ModelFile.output_from_softmax`` is tried first.
    """
    if not scores.size:
        return False
    return (
        float(scores.min()) >= -1e-6 and float(scores.max()) <= 1 + 1e-6 and 0.5 <= float(scores.sum()) <= 1.5
    )


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()  # type: ignore[no-any-return]


def top_k(scores: np.ndarray, k: int, labels: list[str] | None = None) -> list[Class]:
    """The best ``k`` classes, highest score first: at most as many as the model has, and none scoring
    exactly 0 after the first.

    A quantized softmax rounds most classes to exactly 0 (900 of MobileNet's 1001 on a clear photo), and
    which of those tied zeros came "5th" is only their index order: listing them says nothing and reads like
    padding. The best class is always kept, so a result is never empty.
    """
    k = max(1, min(k, scores.size))
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    idx = idx[:1].tolist() + [i for i in idx[1:].tolist() if scores[i] != 0]
    return [
        Class(int(i), labels[i] if labels and i < len(labels) else str(int(i)), float(scores[i])) for i in idx
    ]
