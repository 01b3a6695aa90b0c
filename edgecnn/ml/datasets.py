"""Datasets for ``edgecnn train`` and ``edgecnn convert``: built-in names or an image folder.

Every dataset comes back as uint8 images at the model's input size, in the colour order the model sees
(``GRAY`` or ``RGB``), with a fixed held-out test split. The converter reloads the same dataset with the same
seed to calibrate on training images and verify on test images the model never saw.

``digits`` (scikit-learn's bundled 8x8 handwritten digits, upscaled) needs no network and is the default.
``mnist``, ``fashion_mnist`` and ``cifar10`` come through ``keras.datasets``, which downloads into the Keras
cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) once; offline, they work only when the file is
already there, and the error says where to put it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import InputError, TrainingError, UsageError, one_line
from edgecnn.images import IMAGE_SUFFIXES, read_image

log = logging.getLogger(__name__)

COLOURS = ("GRAY", "RGB")
_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}
# keras.datasets downloads with urllib and no timeout: bound it so a filtered network fails in seconds.
DOWNLOAD_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class KerasFile:
    cache_path: str  # relative to $KERAS_HOME/datasets, exactly where keras.datasets looks
    url: str


_TF_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)

KERAS_DATASETS: dict[str, tuple[KerasFile, ...]] = {
    "mnist": (KerasFile("mnist.npz", _TF_DATASETS + "mnist.npz"),),
    "fashion_mnist": tuple(KerasFile(f"fashion-mnist/{name}", _TF_DATASETS + name) for name in _FASHION),
    # keras.datasets.cifar10 stores the downloaded tar.gz under this odd name and extracts it beside it.
    "cifar10": (
        KerasFile(
            "cifar-10-batches-py-target_archive", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
        ),
    ),
}

LABELS: dict[str, list[str]] = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
BUILTIN = tuple(LABELS)
_NATIVE = {
    "digits": (28, "GRAY"),
    "mnist": (28, "GRAY"),
    "fashion_mnist": (28, "GRAY"),
    "cifar10": (32, "RGB"),
}


@dataclass
class Dataset:
    """uint8 images ``N x H x W x C`` (C = 1 for GRAY, 3 for RGB) with integer labels."""

    name: str  # built-in name, or the image folder's absolute path
    labels: list[str]
    colour: str
    resize: str  # interpolation used to reach the input size: the runtime must resize the same way
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # one line for reports: where the images came from

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def is_folder(self) -> bool:
        return self.name not in BUILTIN


def keras_cache_dir() -> Path:
    """Where keras.datasets caches downloads: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"


def describe_dataset_choices() -> str:
    return ", ".join(BUILTIN) + " or an image folder DIR/<class>/*.jpg|png"


def load_dataset(
    spec: str,
    *,
    input_size: int | None = None,
    colour: str | None = None,
    test_split: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Load a built-in dataset by name or an image folder ``DIR/<class>/*.jpg|png``.

    ``input_size`` resizes to a square input (default: the native 28 or 32 of a built-in set, 32 for folders);
    ``colour`` is ``GRAY`` or ``RGB`` (default: the dataset's own; RGB for folders). ``test_split`` is the
    stratified held-out fraction for datasets without an official test set (digits, folders).
    """
    if colour is not None:
        colour = colour.upper()
        if colour not in COLOURS:
            raise UsageError(f"Unknown colour {colour!r}: use gray or rgb.")
    if not 0.0 < test_split < 0.9:
        raise UsageError(f"--test-split must be between 0 and 0.9 (got {test_split}).")
    if spec in BUILTIN:
        native_size, native_colour = _NATIVE[spec]
        size = input_size or native_size
        want = colour or native_colour
        if spec == "digits":
            images, labels = _digits(size)
            idx_train, idx_test = stratified_split(labels, test_split, seed)
            x_train, y_train, x_test, y_test = (
                images[idx_train],
                labels[idx_train],
                images[idx_test],
                labels[idx_test],
            )
            source = "scikit-learn digits (8x8, upscaled)"
        else:
            (x_train, y_train), (x_test, y_test) = _keras_dataset(spec)
            x_train, x_test = (_fit(x, size, "bilinear") for x in (x_train, x_test))
            source = f"keras.datasets.{spec}"
        x_train, x_test = (_to_colour(x, want) for x in (x_train, x_test))
        return Dataset(
            spec, list(LABELS[spec]), want, "bilinear", x_train, y_train, x_test, y_test, source=source
        )
    folder = Path(spec)
    if folder.is_dir():
        return _image_folder(folder, input_size or 32, colour or "RGB", test_split, seed)
    raise UsageError(
        f"Unknown dataset {spec!r}: use {describe_dataset_choices()} (no folder {spec!r} exists)."
    )


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of every class held out, at least one per class when possible."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = 0 if len(idx) < 2 or fraction <= 0 else min(max(round(len(idx) * fraction), 1), len(idx) - 1)
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def subsample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` samples (stratified: every class keeps its share)."""
    if count >= len(labels):
        return np.arange(len(labels))
    _, idx = stratified_split(labels, count / len(labels), seed)
    # Per-class rounding can miss the total by a few: top up or trim at random to exactly ``count``.
    rng = np.random.default_rng(seed)
    if len(idx) < count:
        rest = np.setdiff1d(np.arange(len(labels)), idx)
        idx = np.concatenate([idx, rng.choice(rest, count - len(idx), replace=False)])
    elif len(idx) > count:
        idx = rng.choice(idx, count, replace=False)
    return np.sort(idx)


def _digits(size: int) -> tuple[np.ndarray, np.ndarray]:
    from edgecnn.ml.deps import sklearn_digits

    images, target = sklearn_digits()
    # 0..16 ink levels -> 0..255, then upscaled bilinearly like a camera frame would be resized.
    pixels = (np.asarray(images) * (255.0 / 16.0)).astype(np.uint8)
    big = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in pixels])
    return big[..., None], np.asarray(target).astype(np.int64)


def _fit(images: np.ndarray, size: int, resize: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:3] == (size, size):
        return images
    out = [cv2.resize(im, (size, size), interpolation=_INTERPOLATION[resize]) for im in images]
    return np.stack([o if o.ndim == 3 else o[..., None] for o in out])


def _to_colour(images: np.ndarray, colour: str) -> np.ndarray:
    channels = images.shape[-1]
    if colour == "GRAY" and channels == 3:
        return np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])[..., None]
    if colour == "RGB" and channels == 1:
        return np.repeat(images, 3, axis=-1)
    return images


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _keras_dataset(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """keras.datasets.<name>.load_data(), turning "cannot download" into instructions for the cache."""
    from edgecnn.ml.deps import keras

    loader = getattr(keras().datasets, name)
    cache = keras_cache_dir()
    files = KERAS_DATASETS[name]
    missing = [f for f in files if not (cache / f.cache_path).exists()]
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:
        reason = one_line(exc, 200)
        where = "; ".join(f"{f.url} and save it as {cache / f.cache_path}" for f in (missing or files))
        state = (
            "is not in the Keras cache"
            if missing
            else "is in the Keras cache but unusable (incomplete or corrupt?)"
        )
        raise TrainingError(
            f"Dataset {name} {state} and could not be downloaded ({reason}). On a machine with internet, "
            f"download {where} (the Keras cache; KERAS_HOME moves it), or train offline with --dataset digits "
            "or an image folder."
        ) from exc
    return (x_train, np.asarray(y_train).reshape(-1).astype(np.int64)), (
        x_test,
        np.asarray(y_test).reshape(-1).astype(np.int64),
    )


def _image_folder(folder: Path, size: int, colour: str, test_split: float, seed: int) -> Dataset:
    folder = folder.resolve()
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[tuple[Path, int]] = []
    empty = []
    for index, cls in enumerate(classes):
        images = sorted(f for f in cls.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            empty.append(cls.name)
        files.extend((f, index) for f in images)
    if len(classes) < 2:
        raise InputError(
            f"{folder} has {len(classes)} class folder(s): an image-folder dataset needs at least two, "
            "laid out as DIR/<class>/*.jpg|png."
        )
    if empty:
        raise InputError(
            f"Class folder(s) without images in {folder}: {', '.join(empty)}. Put .jpg/.png files in each "
            "DIR/<class>/ or remove the empty folders."
        )
    x = np.stack([_load_image(path, size, colour) for path, _ in files])
    y = np.array([label for _, label in files], dtype=np.int64)
    idx_train, idx_test = stratified_split(y, test_split, seed)
    return Dataset(
        str(folder),
        [c.name for c in classes],
        colour,
        "area",
        x[idx_train],
        y[idx_train],
        x[idx_test],
        y[idx_test],
        source=f"image folder {folder} ({len(files)} images)",
    )


def _load_image(path: Path, size: int, colour: str) -> np.ndarray:
    """One image file as ``size x size`` uint8 in ``colour`` order (OpenCV reads BGR)."""
    return load_frame(read_image(path), size, colour, "area")


def load_frame(frame: np.ndarray, size: int | tuple[int, int], colour: str, resize: str) -> np.ndarray:
    """A BGR/BGRA/gray uint8 frame as ``H x W x C`` in ``colour`` order at ``size`` (int or (h, w))."""
    h, w = (size, size) if isinstance(size, int) else size
    image = frame
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if colour == "GRAY":
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=_INTERPOLATION.get(resize, cv2.INTER_LINEAR))
    return image.reshape(h, w, 1 if colour == "GRAY" else 3)
