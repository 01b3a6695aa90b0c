"""``edgecnn train``: fit a small CNN and write everything the converter and a reader need.

The output directory holds ``model.keras``, ``labels.txt``, ``metrics.json`` (accuracies, per-class accuracy,
confusion matrix, and the dataset/preprocessing facts ``edgecnn convert`` reads back), ``curves.png`` and
``samples/<label>.png`` (the first held-out test image of each class).
Each file is written to a temporary name and renamed, and only after training succeeded, so a crash or
Ctrl-C never leaves a half-written run behind.

Normalization is ``(pixel - mean) / std`` with mean 0 and std 255 (pixels to [0, 1]); it happens outside the
model and travels in the converted model's metadata. Batch-norm statistics (the mobile net) are recomputed
on training images before each validation pass and at the end (see ``recalibrate_batch_norm``). A run that
ends near chance says so in ``warnings``. Augmentation (small shifts, rotations, zooms; flips
for photos only) runs in the input pipeline during training and is not part of the saved model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import __version__
from edgecnn.atomic import atomic_path, write_atomic
from edgecnn.digest import sha256_file
from edgecnn.errors import TrainingError, UsageError
from edgecnn.ml.datasets import Dataset, load_dataset, stratified_split, subsample
from edgecnn.ml.runinfo import CURVES_NAME, LABELS_NAME, METRICS_NAME, MODEL_NAME, SAMPLES_NAME
from edgecnn.train.architectures import DEFAULT_INPUT, check_architecture

log = logging.getLogger(__name__)

MEAN, STD = 0.0, 255.0
METRICS_SCHEMA = 1
# A run whose final accuracy ends this close to chance (1 / classes) learned nothing usable: say so.
CHANCE_MARGIN = 0.05
# Training images a batch-norm recalibration pass averages over (see recalibrate_batch_norm).
RECALIBRATION_IMAGES = 1024


@dataclass
class TrainOptions:
    dataset: str = "digits"
    architecture: str = "seed"
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    test_split: float = 0.2
    seed: int = 0
    augment: bool = True
    early_stopping: bool = True
    patience: int = 8
    input_size: int | None = None
    colour: str | None = None
    limit: int | None = None


@dataclass
class TrainReport:
    output: str
    model: str
    dataset: str
    architecture: str
    input_shape: list[int]
    labels: list[str]
    train_samples: int
    validation_samples: int
    test_samples: int
    epochs_run: int
    best_epoch: int
    train_accuracy: float
    validation_accuracy: float | None
    test_accuracy: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: list[list[int]]
    seconds: float
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(
    *,
    output: str | os.PathLike[str],
    dataset: str = "digits",
    architecture: str = "seed",
    epochs: int = 40,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    validation_split: float = 0.1,
    test_split: float = 0.2,
    seed: int = 0,
    augment: bool = True,
    early_stopping: bool = True,
    patience: int = 8,
    input_size: int | None = None,
    colour: str | None = None,
    limit: int | None = None,
    verbose: int | str = "auto",
) -> TrainReport:
    """Train ``architecture`` on ``dataset`` and write the run to ``output``.

    Defaults reach >= 97% test accuracy on digits (see ``benchmarks/train_accuracy.py``). ``limit`` caps the
    training images (stratified) for quick runs; ``verbose`` is Keras' (0 silent, 1 bar, 2 one line per
    epoch, ``auto``: bar on a terminal, lines otherwise).
    """
    opts = TrainOptions(
        dataset=dataset,
        architecture=architecture,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_split=validation_split,
        test_split=test_split,
        seed=seed,
        augment=augment,
        early_stopping=early_stopping,
        patience=patience,
        input_size=input_size,
        colour=colour,
        limit=limit,
    )
    _check_options(opts)
    if input_size is not None:
        check_architecture(architecture, input_size)  # before seconds of dataset loading
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"Output {out_dir} is a file: pass a directory for the run (e.g. runs/digits).")
    start = time.perf_counter()
    size = input_size or DEFAULT_INPUT[architecture]
    data = load_dataset(dataset, input_size=size, colour=colour, test_split=test_split, seed=seed)
    check_architecture(architecture, data.input_shape[0])
    if len(data.labels) < 2:
        raise TrainingError(f"Dataset {dataset} has fewer than two classes: nothing to learn.")

    from edgecnn.ml.deps import keras, tensorflow

    tf, k = tensorflow(), keras()
    k.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    splits = _split(data, opts)
    model, fitted = _fit(tf, k, data, splits, opts, verbose)
    scores = _score(model, splits, data.labels)
    warnings = training_warnings(scores, data.labels)
    seconds = time.perf_counter() - start
    files = _write_run(out_dir, model, data, opts, splits, fitted, scores, seconds, warnings)
    return TrainReport(
        output=str(out_dir),
        model=files["model"],
        dataset=data.name,
        architecture=architecture,
        input_shape=list(data.input_shape),
        labels=data.labels,
        train_samples=len(splits.y_fit),
        validation_samples=len(splits.y_val),
        test_samples=len(splits.y_test),
        epochs_run=fitted.epochs_run,
        best_epoch=fitted.best_epoch,
        train_accuracy=round(scores.train, 4),
        validation_accuracy=_round(scores.validation),
        test_accuracy=round(scores.test, 4),
        per_class_accuracy=scores.per_class,
        confusion_matrix=scores.confusion.tolist(),
        seconds=round(seconds, 1),
        files=files,
        warnings=warnings,
    )


@dataclass
class _Splits:
    """The images each stage of a run sees, normalized: fitted on, watched for early stopping, scored."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class _Fitted:
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int


@dataclass
class _Scores:
    test: float
    train: float
    validation: float | None
    confusion: np.ndarray
    per_class: dict[str, float]


def training_warnings(scores: _Scores, labels: list[str]) -> list[str]:
    """What a reader must not miss: a run that ends at chance still writes a model that converts and runs.

    The check uses the validation accuracy (the test accuracy when there is no validation split): less
    than ``CHANCE_MARGIN`` above ``1 / classes``, the model is no better than guessing. A test set answered
    with one class for every image is named too (the usual face of such a run).
    """
    warnings = []
    chance = 1.0 / len(labels)
    which, accuracy = (
        ("validation", scores.validation) if scores.validation is not None else ("test", scores.test)
    )
    if accuracy < chance + CHANCE_MARGIN:
        warnings.append(
            f"{which} accuracy {accuracy:.2%} is less than {CHANCE_MARGIN * 100:.0f} points above chance "
            f"({chance:.2%} for {len(labels)} classes): the model has not learned the task. Check that each "
            "class folder holds the right images, add images, train longer, or try the other --arch."
        )
    predicted = scores.confusion.sum(axis=0)
    true_classes = np.count_nonzero(scores.confusion.sum(axis=1))
    if true_classes > 1 and np.count_nonzero(predicted) == 1:
        label = labels[int(np.argmax(predicted))]
        warnings.append(f"every test image is predicted as {label!r}.")
    return warnings


def _split(data: Dataset, opts: TrainOptions) -> _Splits:
    """Cap the training pool at ``limit`` (stratified), carve the validation images out of it."""
    x_pool, y_pool = data.x_train, data.y_train
    if opts.limit is not None:
        keep = subsample(y_pool, opts.limit, opts.seed)
        x_pool, y_pool = x_pool[keep], y_pool[keep]
    if opts.validation_split > 0:
        idx_fit, idx_val = stratified_split(y_pool, opts.validation_split, opts.seed + 1)
    else:
        idx_fit, idx_val = np.arange(len(y_pool)), np.arange(0)
    splits = _Splits(
        x_fit=normalize(x_pool[idx_fit]),
        y_fit=y_pool[idx_fit],
        x_val=normalize(x_pool[idx_val]),
        y_val=y_pool[idx_val],
        x_test=normalize(data.x_test),
        y_test=data.y_test,
    )
    if len(splits.y_fit) == 0 or len(splits.y_test) == 0:
        raise TrainingError(
            f"Dataset {opts.dataset} is too small to split ({len(y_pool) + len(splits.y_test)} images): "
            "add images or lower --test-split/--validation-split."
        )
    if opts.early_stopping and len(splits.y_val) == 0:
        log.warning("No validation images (--validation-split 0): early stopping is off.")
    return splits


def _fit(
    tf: Any, k: Any, data: Dataset, splits: _Splits, opts: TrainOptions, verbose: int | str
) -> tuple[Any, _Fitted]:
    """Build and fit the model; an out-of-memory becomes advice on what to lower."""
    from edgecnn.train.architectures import build_model

    model = build_model(opts.architecture, data.input_shape, len(data.labels))
    model.compile(
        optimizer=k.optimizers.Adam(opts.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    pipeline = _pipeline(
        tf,
        k,
        splits.x_fit,
        splits.y_fit,
        opts.batch_size,
        opts.seed,
        augmentation(k, data, opts.seed) if opts.augment else None,
    )
    callbacks = []
    if opts.early_stopping and len(splits.y_val):
        callbacks.append(
            k.callbacks.EarlyStopping(
                monitor="val_loss", patience=opts.patience, restore_best_weights=True, verbose=0
            )
        )
    if batch_norm_layers(k, model):
        # After EarlyStopping, so its restored best weights get statistics too (on_train_end runs in order).
        callbacks.append(_recalibration_callback(k, splits.x_fit, opts.seed))
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    try:
        history = model.fit(
            pipeline,
            validation_data=(splits.x_val, splits.y_val) if len(splits.y_val) else None,
            epochs=opts.epochs,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles (seeded) itself
        )
    except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
        raise TrainingError(
            f"Out of memory while training ({type(exc).__name__}): lower --batch-size or --input-size."
        ) from exc
    hist = {key: [float(v) for v in values] for key, values in history.history.items()}
    epochs_run = len(hist.get("loss", []))
    best_epoch = int(np.argmin(hist["val_loss"])) + 1 if "val_loss" in hist and callbacks else epochs_run
    return model, _Fitted(hist, epochs_run, best_epoch)


def batch_norm_layers(keras: Any, model: Any) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(
    keras: Any, model: Any, images: np.ndarray, order: np.ndarray | None = None, batch_size: int = 64
) -> None:
    """Set every batch-norm layer's moving mean and variance to their average over ``images[order]``.

    Why: inference (validation, scoring, the converted model, which folds these statistics into the
    convolutions) uses the moving statistics, not the batch's. Keras updates them by an exponential average
    with momentum 0.99, i.e. over the last ~100 steps; a small folder gives 4-5 steps per epoch, so they mix
    the initial mean 0 / variance 1 with statistics of weights that have changed since, and 13 stacked
    layers compound the error (batch size 8, 17 steps an epoch, did no better). The mobile
    net then answered one class for every image at inference while it classified correctly with batch
    statistics, and early stopping, watching that meaningless validation loss, restored the epoch-1 weights.
    Neither a learning rate of 1e-2 or 1e-4, no dropout, 32x32 nor [-1, 1] inputs changed that; momentum 0.9
    reached the batch-statistics accuracy only from epoch 9. Here each batch gets the weight of its images in a running average (momentum = seen /
    (seen + n)) over un-augmented training images: exact, deterministic, independent of the step count.
    """
    norms = batch_norm_layers(keras, model)
    saved = [layer.momentum for layer in norms]
    order = np.arange(len(images)) if order is None else order
    seen = 0
    try:
        for start in range(0, len(order), batch_size):
            batch = images[order[start : start + batch_size]]  # one batch at a time: no copy of the set
            for layer in norms:
                layer.momentum = seen / (seen + len(batch))
            model(batch, training=True)
            seen += len(batch)
    finally:
        for layer, momentum in zip(norms, saved, strict=True):
            layer.momentum = momentum


def _recalibration_callback(keras: Any, images: np.ndarray, seed: int) -> Any:
    """Recalibrate batch norm before each validation pass and at the end (also without validation images).

    On at most ``RECALIBRATION_IMAGES`` training images, a forward pass that costs little next to an epoch,
    in a seeded random order: the split keeps folder (class) order, and batches of one class would miss the
    between-class part of the variance that the shuffled training batches saw.
    """
    order = np.random.default_rng(seed).permutation(len(images))[:RECALIBRATION_IMAGES]

    class Recalibrate(keras.callbacks.Callback):  # type: ignore[misc]
        def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
            recalibrate_batch_norm(keras, self.model, images, order)

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            recalibrate_batch_norm(keras, self.model, images, order)

    return Recalibrate()


def _score(model: Any, splits: _Splits, labels: list[str]) -> _Scores:
    predict_test = _predict(model, splits.x_test)
    confusion = confusion_matrix(splits.y_test, predict_test, len(labels))
    return _Scores(
        test=float(np.mean(predict_test == splits.y_test)),
        train=float(np.mean(_predict(model, splits.x_fit) == splits.y_fit)),
        validation=float(np.mean(_predict(model, splits.x_val) == splits.y_val))
        if len(splits.y_val)
        else None,
        confusion=confusion,
        per_class={
            label: round(float(confusion[i, i] / confusion[i].sum()), 4) if confusion[i].sum() else 0.0
            for i, label in enumerate(labels)
        },
    )


def _write_run(
    out_dir: Path,
    model: Any,
    data: Dataset,
    opts: TrainOptions,
    splits: _Splits,
    fitted: _Fitted,
    scores: _Scores,
    seconds: float,
    warnings: list[str],
) -> dict[str, str]:
    """The run folder: model, labels, metrics.json (what convert reads back), curves, samples."""
    from edgecnn.ml.deps import keras, tensorflow
    from edgecnn.train.curves import plot_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = save_keras_atomic(model, out_dir / MODEL_NAME)
    labels_path = write_atomic(out_dir / LABELS_NAME, ("\n".join(data.labels) + "\n").encode())
    metrics = {
        "schema": METRICS_SCHEMA,
        "tool": f"edgecnn {__version__}",
        "tensorflow": tensorflow().__version__,
        "keras": keras().__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": MODEL_NAME,
        "model_sha256": sha256_file(model_path),
        "architecture": opts.architecture,
        "params": int(model.count_params()),
        "dataset": {
            "name": data.name,
            "source": data.source,
            "labels": data.labels,
            "train": len(splits.y_fit),
            "validation": len(splits.y_val),
            "test": len(splits.y_test),
            "test_split": opts.test_split,
            "validation_split": opts.validation_split,
            "seed": opts.seed,
            "limit": opts.limit,
        },
        "preprocessing": {
            "colour": data.colour,
            "mean": MEAN,
            "std": STD,
            "resize": data.resize,
            "input_shape": list(data.input_shape),
        },
        "options": asdict(opts),
        "epochs_run": fitted.epochs_run,
        "best_epoch": fitted.best_epoch,
        "accuracy": {
            "train": round(scores.train, 4),
            "validation": _round(scores.validation),
            "test": round(scores.test, 4),
        },
        "per_class_accuracy": scores.per_class,
        "confusion_matrix": scores.confusion.tolist(),
        "history": fitted.history,
        "seconds": round(seconds, 1),
        "warnings": warnings,
    }
    metrics_path = write_atomic(out_dir / METRICS_NAME, (json.dumps(metrics, indent=2) + "\n").encode())
    title = f"{opts.architecture} on {Path(data.name).name}: test accuracy {scores.test:.2%}"
    curves = plot_curves(fitted.history, title=title, best_epoch=fitted.best_epoch)
    curves_path = write_atomic(out_dir / CURVES_NAME, curves)
    samples_path = write_samples(out_dir / SAMPLES_NAME, data)
    return {
        "model": str(model_path),
        "labels": str(labels_path),
        "metrics": str(metrics_path),
        "curves": str(curves_path),
        "samples": str(samples_path),
    }


def write_samples(folder: Path, data: Dataset) -> Path:
    """Write the first held-out test image of each class as ``folder/<label>.png``.

    They are images the model never trained on, from the same domain it did, picked by position in the
    test split, never by whether the model gets them right: what ``edgecnn predict`` should be tried on
    first (a digit photographed or drawn elsewhere is a different domain, see docs/getting-started.md).
    """
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for index, label in enumerate(data.labels):
        where = np.flatnonzero(data.y_test == index)
        if not where.size:
            continue
        image = data.x_test[where[0]]
        if image.shape[-1] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise TrainingError(f"Cannot encode a sample image for class {label!r} as PNG.")
        safe = label if label and all(c.isalnum() or c in "-_." for c in label) else f"class{index}"
        write_atomic(folder / f"{safe}.png", png.tobytes())
    return folder


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _check_options(opts: TrainOptions) -> None:
    if opts.architecture not in DEFAULT_INPUT:
        check_architecture(opts.architecture, 10**6)  # raises the "unknown architecture" message
    checks = [
        (opts.epochs >= 1, "--epochs must be at least 1"),
        (opts.batch_size >= 1, "--batch-size must be at least 1"),
        (0 <= opts.validation_split < 0.9, "--validation-split must be in [0, 0.9)"),
        (opts.patience >= 1, "--patience must be at least 1"),
        (opts.learning_rate > 0, "--learning-rate must be positive"),
        (opts.limit is None or opts.limit >= 10, "--limit must be at least 10 images"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(f"{message}.")


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the float input the model was trained on: ``(pixel - MEAN) / STD``."""
    return (images.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)


def augmentation(keras: Any, data: Dataset, seed: int) -> Any:
    """Training-time jitter: digits must not be mirrored; photos may be."""
    layers = keras.layers
    fill = "constant" if data.colour == "GRAY" else "reflect"  # GRAY sets: ink on a black background
    steps = [
        layers.RandomRotation(0.04, fill_mode=fill, seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode=fill, seed=seed + 1),
        layers.RandomZoom(0.1, fill_mode=fill, seed=seed + 2),
    ]
    if data.is_folder or data.name == "cifar10":
        steps.insert(0, layers.RandomFlip("horizontal", seed=seed + 3))
    return keras.Sequential(steps, name="augmentation")


def _pipeline(
    tf: Any, keras: Any, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: Any
) -> Any:
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda images, labels: (augment(images, training=True), labels))
    return ds.prefetch(tf.data.AUTOTUNE)


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    return np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows are the true class, columns the predicted one."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def save_keras_atomic(model: Any, path: Path) -> Path:
    """``model.save`` to a temporary ``.keras`` beside ``path``, then rename (Keras insists on the suffix)."""
    with atomic_path(path, suffix=".keras") as tmp, contextlib.redirect_stdout(sys.stderr):
        model.save(str(tmp))
    return path


def format_report(report: TrainReport) -> str:
    val = f"{report.validation_accuracy:.2%}" if report.validation_accuracy is not None else "n/a"
    worst = sorted(report.per_class_accuracy.items(), key=lambda kv: kv[1])[:3]
    lines = [
        f"trained {report.architecture} on {report.dataset} {report.input_shape}: "
        f"{report.epochs_run} epochs (best {report.best_epoch}) in {report.seconds:.0f} s",
        f"accuracy  train {report.train_accuracy:.2%}  validation {val}  test {report.test_accuracy:.2%}"
        f"  ({report.train_samples}/{report.validation_samples}/{report.test_samples} images)",
        "weakest classes (test): " + ", ".join(f"{label} {acc:.0%}" for label, acc in worst),
        *(f"warning: {warning}" for warning in report.warnings),
        *(f"wrote {path}" for path in report.files.values()),
        f"next: edgecnn convert {report.model} -o {Path(report.output) / 'model_int8.tflite'}",
    ]
    return "\n".join(lines)
