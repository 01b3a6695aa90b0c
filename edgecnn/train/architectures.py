"""Model architectures, built from Keras layers only (no downloaded weights: devices and CI are offline).

Both convert to Edge TPU-friendly int8 graphs: every layer maps to a builtin TFLite op the Edge TPU runs
(CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, MEAN, RESHAPE, FULLY_CONNECTED, SOFTMAX); batch normalization folds
into the convolutions at conversion time. Normalization happens outside the model (metadata carries it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgecnn.errors import UsageError

# Smallest square input each architecture's strides and pools can take.
MIN_INPUT = {"seed": 10, "mobile": 32}
DEFAULT_INPUT = {"seed": None, "mobile": 96}  # None: the dataset's native size


def seed(keras: Any, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """The classic conv-pool-conv-pool-dense net: 28x28x1 digits in ~100k parameters."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="seed",
    )


def mobile(keras: Any, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """A small MobileNet-style net for RGB photos: depthwise-separable blocks, global average pooling."""
    layers = keras.layers

    def conv_bn(x: Any, filters: int, kernel: int, strides: int = 1) -> Any:
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU(6.0)(x)

    def separable(x: Any, filters: int, strides: int) -> Any:
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        return conv_bn(x, filters, 1)

    inputs = keras.Input(input_shape)
    x = conv_bn(inputs, 16, 3, strides=2)
    for filters, strides in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2)):
        x = separable(x, filters, strides)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobile")


ARCHITECTURES: dict[str, Callable[[Any, tuple[int, int, int], int], Any]] = {"seed": seed, "mobile": mobile}


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    from edgecnn.ml.deps import keras

    check_architecture(name, input_shape[0])
    return ARCHITECTURES[name](keras(), input_shape, num_classes)


def check_architecture(name: str, input_size: int) -> None:
    if name not in ARCHITECTURES:
        raise UsageError(f"Unknown architecture {name!r}: use {' or '.join(ARCHITECTURES)}.")
    if input_size < MIN_INPUT[name]:
        raise UsageError(
            f"--input-size {input_size} is too small for the {name} architecture: use at least "
            f"{MIN_INPUT[name]}."
        )
