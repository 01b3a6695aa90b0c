"""A small digits model for tests and demos, built with plain Keras (the full trainer lives in edgecnn.train).

Kept tiny and deterministic: the runtime's tests need a real int8 model this project produced, in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.metadata import ModelMetadata, embed_metadata
from edgecnn.modelfile import parse_model, write_atomic


def build_digits_fixture(images: np.ndarray, labels: np.ndarray, out_dir: Path, epochs: int = 4) -> Path:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x = images[..., None].astype("float32") / 255.0
    train_x, train_y = x[:-200], labels[:-200]
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1), batch_size=1),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    trainer = keras.Sequential([keras.Input((28, 28, 1)), *model.layers])
    trainer.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    trainer.fit(train_x, train_y, epochs=epochs, batch_size=32, verbose=0)

    def representative():
        for sample in train_x[:100]:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    data = converter.convert()
    meta = ModelMetadata(
        labels=[str(i) for i in range(10)],
        colour="GRAY",
        mean=0.0,
        std=255.0,
        outputs="probabilities",
        provenance={"tool": "edgecnn test fixture", "dataset": "digits"},
    )
    return write_atomic(out_dir / "digits_int8.tflite", embed_metadata(parse_model(data), meta))
